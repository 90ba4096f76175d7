//! Measures the network on loopback: N in-process nodes (each joining through 1-3 earlier nodes,
//! not a full mesh), then
//!
//! - advert propagation: a new advert (new sequence) from one node until every other node has it;
//! - job dispatch: Status round trips between two nodes, answered by the receiver's event loop;
//! - handle throughput: `peers()` and `adverts()` calls per second from several tasks.
//!
//! Run it with `scripts/bench-p2p.sh [--nodes 20] [--rounds 10] [--requests 1000] [--seconds 2]`.

use std::collections::HashSet;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use genmint_p2p::advert::{Advert, AdvertVerifier};
use genmint_p2p::wire::{JobRequest, JobResponse, JobStatus};
use genmint_p2p::{InboundJob, Keypair, Multiaddr, NetworkConfig, NetworkEvent, NetworkHandle, PeerId};
use tokio::sync::mpsc;

#[path = "support/sample_advert.rs"]
mod sample_advert;
use sample_advert::sample_advert;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The bench's stand-in for the node's EIP-191 check: every advert carries this signature.
const SIGNATURE_BYTE: &str = "ab";
/// How long the whole mesh may take to form before the bench gives up.
const MESH_PATIENCE: Duration = Duration::from_secs(120);
/// How long one advert may take to reach everyone before the bench gives up.
const ROUND_PATIENCE: Duration = Duration::from_secs(30);

struct Settings {
    nodes: usize,
    rounds: usize,
    requests: usize,
    seconds: u64,
}

impl Settings {
    fn from_args() -> BenchResult<Self> {
        let mut settings = Settings { nodes: 20, rounds: 10, requests: 1000, seconds: 2 };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || value.parse::<usize>().map_err(|e| format!("{flag} {value}: {e}"));
            match flag.as_str() {
                "--nodes" => settings.nodes = number()?,
                "--rounds" => settings.rounds = number()?,
                "--requests" => settings.requests = number()?,
                "--seconds" => settings.seconds = number()? as u64,
                _ => {
                    return Err(
                        format!("unknown flag {flag}; use --nodes, --rounds, --requests, --seconds").into()
                    );
                }
            }
        }
        if settings.nodes < 2 {
            return Err("--nodes must be at least 2".into());
        }
        Ok(settings)
    }
}

struct BenchVerifier;

impl AdvertVerifier for BenchVerifier {
    fn verify(&self, advert: &Advert) -> Result<(), String> {
        match advert.binding_signature == signature() {
            true => Ok(()),
            false => Err("not the bench signature".into()),
        }
    }
}

fn signature() -> String {
    format!("0x{}", SIGNATURE_BYTE.repeat(65))
}

fn advert(peer: &PeerId, sequence: u64) -> Advert {
    let model = (format!("0x{}", "56".repeat(32)), "bench-model".into());
    sample_advert(peer, format!("0x{}", "12".repeat(20)), model, signature(), sequence)
}

/// An advert some node received: (receiver, publisher, sequence, when).
type Arrival = (usize, PeerId, u64, Instant);

struct Node {
    handle: NetworkHandle,
    peer: PeerId,
}

/// Starts node `index`, joining through `bootstrap`; its event loop answers Status requests and
/// reports every advert arrival.
async fn start_node(
    index: usize,
    bootstrap: Vec<Multiaddr>,
    arrivals: mpsc::Sender<Arrival>,
) -> BenchResult<Node> {
    let config = NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootstrap,
        network_id: "bench".into(),
        ..NetworkConfig::default()
    };
    let (handle, mut events) =
        genmint_p2p::spawn(Keypair::generate_ed25519(), config, Arc::new(BenchVerifier)).await?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::InboundJob(InboundJob { request, responder, .. }) => {
                    responder.respond(answer(request));
                }
                NetworkEvent::Advert(received) => {
                    let Ok(publisher) = received.advert.peer_id.parse() else { continue };
                    let arrival = (index, publisher, received.advert.sequence, Instant::now());
                    if arrivals.send(arrival).await.is_err() {
                        return;
                    }
                }
                NetworkEvent::SpotCheck(_)
                | NetworkEvent::PeerConnected(_)
                | NetworkEvent::PeerDisconnected(_) => {}
            }
        }
    });
    Ok(Node { peer: handle.local_peer_id(), handle })
}

fn answer(request: JobRequest) -> JobResponse {
    match request {
        JobRequest::Status { job_id } => JobResponse::Status(JobStatus {
            job_id,
            state: "generating".into(),
            step: Some(7),
            steps: Some(20),
            token_id: None,
            tx_hash: None,
            error: None,
            pixel_digest: None,
            image_cid: None,
            metadata_cid: None,
            minted_by: None,
        }),
        _ => JobResponse::Ack,
    }
}

/// The earlier nodes node `index` joins through: 1 to 3 of them, spread over the network.
fn bootstrap_of(index: usize) -> Vec<usize> {
    let mut chosen = Vec::new();
    for candidate in [index - 1, index / 2, (index * 7 + 3) % index].into_iter().take(1 + index % 3) {
        if !chosen.contains(&candidate) {
            chosen.push(candidate);
        }
    }
    chosen
}

async fn start_network(count: usize, arrivals: &mpsc::Sender<Arrival>) -> BenchResult<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(count);
    for index in 0..count {
        let mut bootstrap = Vec::new();
        for earlier in if index == 0 { Vec::new() } else { bootstrap_of(index) } {
            let node = &nodes[earlier];
            let addr =
                node.handle.listen_addrs().await?.into_iter().next().ok_or("a node listens nowhere")?;
            bootstrap.push(addr.with_p2p(node.peer).map_err(|_| "address already names a peer")?);
        }
        nodes.push(start_node(index, bootstrap, arrivals.clone()).await?);
    }
    Ok(nodes)
}

/// Waits until `sequence` of `publisher` has arrived at every node but the publisher.
async fn await_everywhere(
    arrivals: &mut mpsc::Receiver<Arrival>,
    nodes: usize,
    publisher: PeerId,
    sequence: u64,
    patience: Duration,
) -> BenchResult<Instant> {
    let mut reached = HashSet::new();
    let mut last = Instant::now();
    let deadline = tokio::time::Instant::now() + patience;
    while reached.len() < nodes - 1 {
        let arrival = tokio::time::timeout_at(deadline, arrivals.recv()).await;
        let (receiver, from, seq, at) = arrival
            .map_err(|_| {
                format!("advert {sequence} reached {} of {} nodes in {patience:?}", reached.len(), nodes - 1)
            })?
            .ok_or("event loops ended")?;
        if from == publisher && seq >= sequence && reached.insert(receiver) {
            last = at;
        }
    }
    Ok(last)
}

/// Every node's advert reaches every other node: the mesh has formed.
async fn form_mesh(nodes: &[Node], arrivals: &mut mpsc::Receiver<Arrival>) -> BenchResult<Duration> {
    let started = Instant::now();
    for node in nodes {
        node.handle.set_advert(advert(&node.peer, 1)).await?;
    }
    let mut missing: HashSet<(usize, PeerId)> = HashSet::new();
    for (index, _) in nodes.iter().enumerate() {
        for other in nodes.iter().filter(|n| n.peer != nodes[index].peer) {
            missing.insert((index, other.peer));
        }
    }
    let deadline = tokio::time::Instant::now() + MESH_PATIENCE;
    while !missing.is_empty() {
        let arrival = tokio::time::timeout_at(deadline, arrivals.recv()).await;
        let (receiver, publisher, _, _) = arrival
            .map_err(|_| format!("{} adverts still missing", missing.len()))?
            .ok_or("event loops ended")?;
        missing.remove(&(receiver, publisher));
    }
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn measure_adverts(
    nodes: &[Node],
    arrivals: &mut mpsc::Receiver<Arrival>,
    rounds: usize,
) -> BenchResult<Vec<Duration>> {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // A different publisher each round, spread over the network.
        let publisher = &nodes[(round * 7) % nodes.len()];
        let sequence = 100 + round as u64;
        let changed = Advert { queue_depth: round as u32, ..advert(&publisher.peer, sequence) };
        let started = Instant::now();
        publisher.handle.set_advert(changed).await?;
        let last = await_everywhere(arrivals, nodes.len(), publisher.peer, sequence, ROUND_PATIENCE).await?;
        times.push(last.duration_since(started));
    }
    times.sort();
    Ok(times)
}

async fn measure_dispatch(from: &Node, to: &Node, requests: usize) -> BenchResult<Vec<Duration>> {
    // Warm up the connection and the receiver's event loop.
    for _ in 0..10 {
        from.handle.request(to.peer, JobRequest::Status { job_id: "warm".into() }).await?;
    }
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests {
        let started = Instant::now();
        let answer =
            from.handle.request(to.peer, JobRequest::Status { job_id: format!("0x{i:064x}") }).await?;
        times.push(started.elapsed());
        if !matches!(answer, JobResponse::Status(_)) {
            return Err(format!("unexpected answer {answer:?}").into());
        }
    }
    times.sort();
    Ok(times)
}

async fn measure_handle(handle: &NetworkHandle, seconds: u64) -> BenchResult<f64> {
    const CALLERS: usize = 8;
    let calls = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let (handle, calls) = (handle.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match caller % 2 {
                    0 => handle.peers().await.map(drop)?,
                    _ => handle.adverts().await.map(drop)?,
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), genmint_p2p::NetworkError>(())
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(calls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let settings = Settings::from_args()?;
    // RUST_LOG=genmint_p2p=debug shows what the nodes do.
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    println!("genmint-p2p bench: {} nodes on loopback TCP, {profile} profile", settings.nodes);

    let (arrival_sender, mut arrivals) = mpsc::channel(16 * 1024);
    let started = Instant::now();
    let nodes = start_network(settings.nodes, &arrival_sender).await?;
    println!("started {} nodes in {}", nodes.len(), ms(started.elapsed()));
    let formed = form_mesh(&nodes, &mut arrivals).await?;
    println!("every advert at every node after {}", ms(formed));
    let mut peers = Vec::new();
    for node in &nodes {
        peers.push(node.handle.peers().await?.len());
    }
    let (fewest, most) = (peers.iter().min().unwrap_or(&0), peers.iter().max().unwrap_or(&0));
    println!("connected peers per node: {fewest} to {most} (of {})", nodes.len() - 1);

    let times = measure_adverts(&nodes, &mut arrivals, settings.rounds).await?;
    println!(
        "advert to all {} other nodes ({} rounds): min {}  p50 {}  max {}",
        nodes.len() - 1,
        times.len(),
        ms(times[0]),
        ms(percentile(&times, 0.5)),
        ms(times[times.len() - 1])
    );

    let times = measure_dispatch(&nodes[1], &nodes[0], settings.requests).await?;
    println!(
        "job dispatch round trip ({} Status requests): p50 {}  p99 {}  max {}",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1])
    );

    let rate = measure_handle(&nodes[0].handle, settings.seconds).await?;
    println!("handle commands (peers/adverts, 8 tasks, {} s): {rate:.0} per second", settings.seconds);

    for node in &nodes {
        node.handle.shutdown().await?;
    }
    Ok(())
}
