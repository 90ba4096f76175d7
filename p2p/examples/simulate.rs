//! Simulates a genmint network in one process: N real nodes (gossipsub, Kademlia, the job protocol,
//! signed adverts) over in-memory links with a chosen one-way latency and segment loss, joining
//! through a few bootstrap nodes. Every node advertises; one in five advertises the model jobs
//! ask for. After a warm-up it measures
//!
//! - advert propagation: publishers raise their advert's sequence, one a second; for each new
//!   advert, the time until 50 % and 99 % of the other nodes received it;
//! - traffic: bytes each node received per second in that window (every protocol, handshakes
//!   included), counted by the links;
//! - job placement: nodes pick a peer whose advert offers the model and submit a job over the
//!   job protocol; a job is placed when a capable peer accepts it (up to three peers tried);
//! - memory: resident memory grown while the network started, per node.
//!
//! Run it with `scripts/simulate-network.sh --nodes 100 --latency-ms 20 --loss 1 --secs 20`.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use genmint_p2p::advert::{Advert, AdvertVerifier};
use genmint_p2p::memory_link::{MemoryLink, Traffic};
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{InboundJob, Keypair, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, Verifiers};
use tokio::sync::mpsc;

#[path = "support/sample_advert.rs"]
mod sample_advert;
use sample_advert::sample_advert;

type SimResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The simulation's stand-in for the node's EIP-191 check: every advert carries this signature.
const SIGNATURE: &str = "cd";
/// The model jobs ask for; node `i` offers it when `i % CAPABLE_EVERY == 0`.
const WANTED_MODEL: &str = "11";
const OTHER_MODEL: &str = "22";
const CAPABLE_EVERY: usize = 5;
/// Peers a job is offered to before it counts as not placed.
const PLACEMENT_TRIES: usize = 3;

struct Settings {
    nodes: usize,
    bootstrap: usize,
    latency: Duration,
    loss: f64,
    warmup: Duration,
    secs: u64,
    jobs: usize,
    advert_interval: Duration,
}

impl Settings {
    fn from_args() -> SimResult<Self> {
        let mut s = Settings {
            nodes: 100,
            bootstrap: 3,
            latency: Duration::ZERO,
            loss: 0.0,
            warmup: Duration::from_secs(15),
            secs: 20,
            jobs: 100,
            advert_interval: NetworkConfig::default().advert_interval,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || value.parse::<f64>().map_err(|e| format!("{flag} {value}: {e}"));
            match flag.as_str() {
                "--nodes" => s.nodes = number()? as usize,
                "--bootstrap" => s.bootstrap = number()? as usize,
                "--latency-ms" => s.latency = Duration::from_secs_f64(number()? / 1000.0),
                "--loss" => s.loss = number()? / 100.0,
                "--warmup" => s.warmup = Duration::from_secs_f64(number()?),
                "--secs" => s.secs = number()? as u64,
                "--jobs" => s.jobs = number()? as usize,
                "--advert-interval" => s.advert_interval = Duration::from_secs_f64(number()?),
                _ => {
                    return Err(format!(
                        "unknown flag {flag}; use --nodes, --bootstrap, --latency-ms, --loss (%), \
                         --warmup (s), --secs, --jobs, --advert-interval (s)"
                    )
                    .into());
                }
            }
        }
        if s.nodes < 2 * CAPABLE_EVERY || s.bootstrap == 0 || s.bootstrap >= s.nodes {
            return Err(format!("need --nodes ≥ {} and 1 ≤ --bootstrap < --nodes", 2 * CAPABLE_EVERY).into());
        }
        if !(0.0..1.0).contains(&s.loss) {
            return Err("--loss is a percentage below 100".into());
        }
        Ok(s)
    }
}

struct SimVerifier;

impl AdvertVerifier for SimVerifier {
    fn verify(&self, advert: &Advert) -> Result<(), String> {
        match advert.binding_signature == format!("0x{}", SIGNATURE.repeat(65)) {
            true => Ok(()),
            false => Err("not the simulation's signature".into()),
        }
    }
}

fn model_hash(byte: &str) -> String {
    format!("0x{}", byte.repeat(32))
}

fn advert_of(index: usize, peer: &PeerId, sequence: u64) -> Advert {
    let model = if index.is_multiple_of(CAPABLE_EVERY) { WANTED_MODEL } else { OTHER_MODEL };
    let operator = format!("0x{:040x}", index + 1);
    let signature = format!("0x{}", SIGNATURE.repeat(65));
    sample_advert(peer, operator, (model_hash(model), format!("model-{model}")), signature, sequence)
}

/// An advert some node received: (receiver, publisher, sequence, when).
type Arrival = (usize, PeerId, u64, Instant);

struct Node {
    handle: NetworkHandle,
    traffic: Arc<Traffic>,
}

/// Starts node `index`; its event loop accepts jobs for the model it offers and reports every
/// advert that arrives.
async fn start_node(
    index: usize,
    settings: &Settings,
    bootstrap: Vec<genmint_p2p::Multiaddr>,
    arrivals: mpsc::UnboundedSender<Arrival>,
) -> SimResult<Node> {
    let config = NetworkConfig {
        listen: vec!["/memory/0".parse()?],
        bootstrap,
        network_id: "simulation".into(),
        advert_interval: settings.advert_interval,
        advert_ttl: settings.advert_interval * 3,
        ..NetworkConfig::default()
    };
    let link = MemoryLink { latency: settings.latency, loss: settings.loss, traffic: Arc::default() };
    let traffic = link.traffic.clone();
    let verifiers = Verifiers { adverts: Arc::new(SimVerifier), spot_checks: None };
    let (handle, mut events) =
        genmint_p2p::spawn_in_memory(Keypair::generate_ed25519(), config, verifiers, link).await?;
    let capable = index.is_multiple_of(CAPABLE_EVERY);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::InboundJob(InboundJob { request, responder, .. }) => {
                    responder.respond(admit(request, capable));
                }
                NetworkEvent::Advert(received) => {
                    let Ok(publisher) = received.advert.peer_id.parse() else { continue };
                    let _ = arrivals.send((index, publisher, received.advert.sequence, Instant::now()));
                }
                NetworkEvent::SpotCheck(_)
                | NetworkEvent::PeerConnected(_)
                | NetworkEvent::PeerDisconnected(_) => {}
            }
        }
    });
    handle.set_advert(advert_of(index, &handle.local_peer_id(), 1)).await?;
    Ok(Node { handle, traffic })
}

/// A capable node accepts a job for the wanted model; any other refuses it as the node would.
fn admit(request: JobRequest, capable: bool) -> JobResponse {
    match request {
        JobRequest::Submit { job_id, .. } if capable => JobResponse::Accepted { job_id },
        JobRequest::Submit { job_id, .. } => JobResponse::Rejected {
            job_id,
            code: "unknown_model".into(),
            message: "this node does not serve the model".into(),
        },
        _ => JobResponse::Ack,
    }
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or_default() * 1024
}

/// The `share` quantile of `values` (sorted in place); `None` when there are none.
fn quantile(values: &mut [Duration], share: f64) -> Option<Duration> {
    values.sort();
    let last = values.len().checked_sub(1)?;
    Some(values[((last as f64) * share).round() as usize])
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
}

#[tokio::main]
async fn main() -> SimResult<()> {
    let settings = Settings::from_args()?;
    let (arrival_sender, mut arrivals) = mpsc::unbounded_channel();
    let memory_before = resident_bytes();
    let started = Instant::now();
    let mut nodes: Vec<Node> = Vec::with_capacity(settings.nodes);
    let mut bootstrap = Vec::new();
    for index in 0..settings.nodes {
        let joins = if index < settings.bootstrap { bootstrap[..index].to_vec() } else { bootstrap.clone() };
        let node = start_node(index, &settings, joins, arrival_sender.clone()).await?;
        if index < settings.bootstrap {
            let addr =
                node.handle.listen_addrs().await?.into_iter().next().ok_or("a node listens nowhere")?;
            bootstrap.push(addr.with_p2p(node.handle.local_peer_id()).map_err(|_| "address names a peer")?);
        }
        nodes.push(node);
    }
    println!(
        "{} nodes started in {:.1} s; warming up {:?}",
        settings.nodes,
        started.elapsed().as_secs_f64(),
        settings.warmup
    );
    tokio::time::sleep(settings.warmup).await;
    let memory_per_node = resident_bytes().saturating_sub(memory_before) / settings.nodes as u64;
    let mut connected = Vec::with_capacity(nodes.len());
    for node in &nodes {
        connected.push(node.handle.peers().await?.len());
    }
    connected.sort_unstable();
    while arrivals.try_recv().is_ok() {}
    eprintln!("warmed up in {:.1} s; publishing for {} s", started.elapsed().as_secs_f64(), settings.secs);

    // One publisher a second raises its sequence; every arrival of those adverts is timed.
    let received_before: u64 = nodes.iter().map(|n| n.traffic.received()).sum();
    let window = Instant::now();
    let mut published: HashMap<(PeerId, u64), Instant> = HashMap::new();
    for second in 0..settings.secs as usize {
        let index = (second * 7919) % settings.nodes;
        let node = &nodes[index];
        let peer = node.handle.local_peer_id();
        node.handle.set_advert(advert_of(index, &peer, 2 + second as u64)).await?;
        published.insert((peer, 2 + second as u64), Instant::now());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!("{} adverts published; placing {} jobs", published.len(), settings.jobs);
    let window_secs = window.elapsed().as_secs_f64();
    let received_after: u64 = nodes.iter().map(|n| n.traffic.received()).sum();
    let bytes_per_node_second =
        (received_after - received_before) as f64 / settings.nodes as f64 / window_secs;

    let mut reach: HashMap<(PeerId, u64), Vec<Duration>> = HashMap::new();
    while let Ok((_, publisher, sequence, at)) = arrivals.try_recv() {
        if let Some(sent) = published.get(&(publisher, sequence)) {
            reach.entry((publisher, sequence)).or_default().push(at.saturating_duration_since(*sent));
        }
    }
    let others = settings.nodes - 1;
    let (mut to_half, mut to_most, mut everywhere) = (Vec::new(), Vec::new(), 0);
    for key in published.keys() {
        let mut times = reach.remove(key).unwrap_or_default();
        times.sort();
        everywhere += usize::from(times.len() >= others);
        let nth = |share: f64| times.get(((others as f64 * share).ceil() as usize).max(1) - 1).copied();
        // An advert that never reached the share counts as the whole window.
        to_half.push(nth(0.5).unwrap_or(Duration::from_secs_f64(window_secs)));
        to_most.push(nth(0.99).unwrap_or(Duration::from_secs_f64(window_secs)));
    }

    // Job placement through adverts and the job protocol.
    let (mut placed, mut latencies) = (0, Vec::new());
    for job in 0..settings.jobs {
        let origin = &nodes[(job * 104_729 + 1) % settings.nodes].handle;
        let begun = Instant::now();
        let capable: Vec<PeerId> = origin
            .adverts()
            .await?
            .into_iter()
            .filter(|a| a.advert.models.iter().any(|m| m.hash == model_hash(WANTED_MODEL)))
            .filter_map(|a| a.advert.peer_id.parse().ok())
            .collect();
        for attempt in 0..PLACEMENT_TRIES.min(capable.len()) {
            let peer = capable[(job + attempt * 31) % capable.len()];
            let request = JobRequest::Submit { job_id: format!("job-{job}"), signed_request: "{}".into() };
            if let Ok(JobResponse::Accepted { .. }) = origin.request(peer, request).await {
                placed += 1;
                latencies.push(begun.elapsed());
                break;
            }
        }
    }

    println!(
        "nodes {} (bootstrap {}), latency {:?}, loss {:.1} %",
        settings.nodes,
        settings.bootstrap,
        settings.latency,
        settings.loss * 100.0
    );
    println!(
        "connections per node: min {} median {} max {}",
        connected[0],
        connected[connected.len() / 2],
        connected[connected.len() - 1]
    );
    println!(
        "advert reach over {} adverts: 50 % of nodes p50 {} max {}; 99 % of nodes p50 {} max {}; reached every node: {}/{}",
        published.len(),
        ms(quantile(&mut to_half, 0.5)),
        ms(quantile(&mut to_half, 1.0)),
        ms(quantile(&mut to_most, 0.5)),
        ms(quantile(&mut to_most, 1.0)),
        everywhere,
        published.len()
    );
    println!("received bytes per node per second (all protocols): {bytes_per_node_second:.0}");
    println!(
        "jobs placed on a capable peer: {placed}/{} ({:.1} %); placement latency p50 {} p99 {}",
        settings.jobs,
        100.0 * placed as f64 / settings.jobs.max(1) as f64,
        ms(quantile(&mut latencies.clone(), 0.5)),
        ms(quantile(&mut latencies, 0.99))
    );
    println!("resident memory per node: {:.1} MiB", memory_per_node as f64 / (1024.0 * 1024.0));
    Ok(())
}
