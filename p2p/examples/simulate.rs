//! Simulates a genmint network in one process: N real nodes (gossipsub, Kademlia, the job protocol,
//! signed adverts) over in-memory links with a chosen one-way latency and segment loss, joining
//! through a few bootstrap nodes, `--join-rate` nodes a second. Every node advertises; one in five
//! advertises the model jobs ask for. After a warm-up it measures
//!
//! - advert propagation: publishers raise their advert's sequence, one a second; for each new
//!   advert, the time until 50 % and 99 % of the other nodes received it;
//! - traffic: bytes each node received per second in that window (every protocol, handshakes
//!   included), counted by the links;
//! - job placement: through the window, nodes pick a peer whose advert offers the model and submit
//!   a job over the job protocol; a job is placed when a capable peer accepts it (up to three
//!   peers a try; an origin that knows no capable peer yet waits a second and tries again, as a
//!   node holds a job until a peer turns up, for at most `PLACEMENT_PATIENCE`);
//! - memory: resident memory grown while the network started, per node.
//!
//! With `--churn P`, P % of the nodes leave each minute during the window (never a bootstrap
//! node) and as many new ones, with new identities, join through the bootstrap nodes. An advert
//! then counts only the nodes that had been up `JOIN_GRACE` when it was published and were still
//! up `DRAIN` later; a job only counts if its origin stayed.
//!
//! With `--dilation K` every node runs K times slower than real time (its link delays, intervals,
//! timeouts and protocol timers, and the simulation's own schedule, all stretched K-fold), so that
//! more nodes than the machine's cores keep up with in real time still behave as real ones would;
//! every time and rate printed is in simulated time (the wall clock divided by K).
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
/// Peers a job is offered to in one try.
const PLACEMENT_TRIES: usize = 3;
/// How long an origin keeps trying to place a job.
const PLACEMENT_PATIENCE: Duration = Duration::from_secs(10);
/// How long a node that just joined has before adverts count it as a receiver.
const JOIN_GRACE: Duration = Duration::from_secs(5);
/// How long after the last publication arrivals are still counted.
const DRAIN: Duration = Duration::from_secs(5);

struct Settings {
    nodes: usize,
    bootstrap: usize,
    latency: Duration,
    loss: f64,
    warmup: Duration,
    secs: u64,
    jobs: usize,
    advert_interval: Duration,
    /// Share of the nodes replaced per minute during the window.
    churn: f64,
    /// `NetworkConfig::network_advert_rate`.
    advert_rate: f64,
    /// How many times slower than real time the network runs (`MemoryLink::time_dilation`).
    dilation: u32,
    /// Nodes started a second at first (0: all at once).
    join_rate: f64,
}

impl Settings {
    /// `duration` of simulated time on the wall clock.
    fn wall(&self, duration: Duration) -> Duration {
        duration * self.dilation
    }

    /// `duration` on the wall clock in simulated time.
    fn simulated(&self, duration: Duration) -> Duration {
        duration / self.dilation
    }
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
            churn: 0.0,
            advert_rate: NetworkConfig::default().network_advert_rate,
            dilation: 1,
            join_rate: 100.0,
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
                "--churn" => s.churn = number()? / 100.0,
                "--advert-rate" => s.advert_rate = number()?,
                "--dilation" => s.dilation = number()? as u32,
                "--join-rate" => s.join_rate = number()?,
                _ => {
                    return Err(format!(
                        "unknown flag {flag}; use --nodes, --bootstrap, --latency-ms, --loss (%), \
                         --warmup (s), --secs, --jobs, --advert-interval (s), --churn (% a minute), --advert-rate (adverts a second, network-wide), --dilation (times slower than real time), --join-rate (nodes a second at first; 0: at once)"
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
        if !(1..=100).contains(&s.dilation) {
            return Err("--dilation is 1 (real time) to 100".into());
        }
        if !(0.0..=1.0).contains(&s.churn) {
            return Err("--churn is a percentage of the nodes a minute, at most 100".into());
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
type Arrival = (PeerId, PeerId, u64, Instant);

struct Node {
    handle: NetworkHandle,
    traffic: Arc<Traffic>,
    joined: Instant,
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
        network_advert_rate: settings.advert_rate,
        ..NetworkConfig::default()
    };
    let link = MemoryLink {
        latency: settings.latency,
        loss: settings.loss,
        time_dilation: settings.dilation,
        traffic: Arc::default(),
    };
    let traffic = link.traffic.clone();
    let verifiers = Verifiers { adverts: Arc::new(SimVerifier), spot_checks: None };
    let (handle, mut events) =
        genmint_p2p::spawn_in_memory(Keypair::generate_ed25519(), config, verifiers, link).await?;
    let capable = index.is_multiple_of(CAPABLE_EVERY);
    let local = handle.local_peer_id();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::InboundJob(InboundJob { request, responder, .. }) => {
                    responder.respond(admit(request, capable));
                }
                NetworkEvent::Advert(received) => {
                    let Ok(publisher) = received.advert.peer_id.parse() else { continue };
                    let _ = arrivals.send((local, publisher, received.advert.sequence, Instant::now()));
                }
                NetworkEvent::SpotCheck(_)
                | NetworkEvent::PeerConnected(_)
                | NetworkEvent::PeerDisconnected(_) => {}
            }
        }
    });
    handle.set_advert(advert_of(index, &handle.local_peer_id(), 1)).await?;
    Ok(Node { handle, traffic, joined: Instant::now() })
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

/// CPU seconds this process has used (user and system), from /proc/self/stat's clock ticks.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime and stime are 12 and 13.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or_default();
    (ticks(11) + ticks(12)) / 100.0
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

/// The simulated nodes, slot by slot: churn replaces a slot's node with a new one.
struct Population {
    nodes: Vec<Node>,
    bootstrap: Vec<genmint_p2p::Multiaddr>,
    arrivals: mpsc::UnboundedSender<Arrival>,
    /// Every node that ran: when it joined and, once it did, when it left.
    lives: HashMap<PeerId, (Instant, Option<Instant>)>,
    /// Bytes received by the nodes that left.
    retired_received: u64,
    random: u64,
}

impl Population {
    /// Starts `settings.nodes` nodes, the bootstrap ones first, each joining through those before
    /// it, `settings.join_rate` a (simulated) second (0: as fast as they start).
    async fn start(settings: &Settings, arrivals: mpsc::UnboundedSender<Arrival>) -> SimResult<Self> {
        let begun = Instant::now();
        let mut population = Population {
            nodes: Vec::with_capacity(settings.nodes),
            bootstrap: Vec::new(),
            arrivals,
            lives: HashMap::new(),
            retired_received: 0,
            random: 0x9E37_79B9_7F4A_7C15,
        };
        for index in 0..settings.nodes {
            if settings.join_rate > 0.0 {
                let due = settings.wall(Duration::from_secs_f64(index as f64 / settings.join_rate));
                tokio::time::sleep_until((begun + due).into()).await;
            }
            let node = start_node(index, settings, population.bootstrap.clone(), population.arrivals.clone())
                .await?;
            if index < settings.bootstrap {
                let addr =
                    node.handle.listen_addrs().await?.into_iter().next().ok_or("a node listens nowhere")?;
                let addr = addr.with_p2p(node.handle.local_peer_id()).map_err(|_| "address names a peer")?;
                population.bootstrap.push(addr);
            }
            population.lives.insert(node.handle.local_peer_id(), (node.joined, None));
            population.nodes.push(node);
        }
        Ok(population)
    }

    /// Bytes received by every node that ran, those that left included.
    fn received(&self) -> u64 {
        self.retired_received + self.nodes.iter().map(|n| n.traffic.received()).sum::<u64>()
    }

    /// One of the slots `from..`, drawn with xorshift64.
    fn draw(&mut self, from: usize) -> usize {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        from + (self.random % (self.nodes.len() - from) as u64) as usize
    }

    /// The node in a random non-bootstrap slot leaves; a new one takes its slot and joins.
    async fn churn_one(&mut self, settings: &Settings) -> SimResult<()> {
        let slot = self.draw(settings.bootstrap);
        let newcomer = start_node(slot, settings, self.bootstrap.clone(), self.arrivals.clone()).await?;
        self.lives.insert(newcomer.handle.local_peer_id(), (newcomer.joined, None));
        let leaver = std::mem::replace(&mut self.nodes[slot], newcomer);
        leaver.handle.shutdown().await?;
        self.retired_received += leaver.traffic.received();
        if let Some(life) = self.lives.get_mut(&leaver.handle.local_peer_id()) {
            life.1 = Some(Instant::now());
        }
        Ok(())
    }

    /// The nodes an advert published at `at` by `publisher` should reach: up `JOIN_GRACE` before,
    /// and still up `DRAIN` after.
    fn receivers_of<'a>(
        &'a self,
        settings: &Settings,
        publisher: &'a PeerId,
        at: Instant,
    ) -> impl Iterator<Item = &'a PeerId> {
        let (grace, drain) = (settings.wall(JOIN_GRACE), settings.wall(DRAIN));
        self.lives.iter().filter_map(move |(peer, (joined, left))| {
            let up_before = *joined + grace <= at;
            let up_after = left.is_none_or(|left| left >= at + drain);
            (peer != publisher && up_before && up_after).then_some(peer)
        })
    }

    fn left_before(&self, peer: &PeerId, at: Instant) -> bool {
        self.lives.get(peer).is_some_and(|(_, left)| left.is_some_and(|left| left <= at))
    }
}

/// Places job `job` from `origin`: the capable peers its adverts name, up to `PLACEMENT_TRIES` of
/// them a try, a try a (simulated) second until `PLACEMENT_PATIENCE` runs out. Returns when it
/// was placed, and how long that took on the wall clock.
async fn place(origin: NetworkHandle, job: usize, dilation: u32) -> (PeerId, Instant, Option<Duration>) {
    let begun = Instant::now();
    let placed = async {
        while begun.elapsed() < PLACEMENT_PATIENCE * dilation {
            let capable: Vec<PeerId> = origin
                .adverts()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a.advert.models.iter().any(|m| m.hash == model_hash(WANTED_MODEL)))
                .filter_map(|a| a.advert.peer_id.parse().ok())
                .collect();
            for attempt in 0..PLACEMENT_TRIES.min(capable.len()) {
                let peer = capable[(job + attempt * 31) % capable.len()];
                let request =
                    JobRequest::Submit { job_id: format!("job-{job}"), signed_request: "{}".into() };
                if let Ok(JobResponse::Accepted { .. }) = origin.request(peer, request).await {
                    return Some(begun.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_secs(1) * dilation).await;
        }
        None
    };
    let placed = placed.await;
    (origin.local_peer_id(), Instant::now(), placed)
}

#[tokio::main]
async fn main() -> SimResult<()> {
    // RUST_LOG (e.g. `libp2p_gossipsub=debug`) picks what the nodes log, to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::from_args()?;
    let (arrival_sender, mut arrivals) = mpsc::unbounded_channel();
    let memory_before = resident_bytes();
    let started = Instant::now();
    let mut population = Population::start(&settings, arrival_sender).await?;
    println!(
        "{} nodes started in {:.1} s (wall clock); warming up {:?}",
        settings.nodes,
        started.elapsed().as_secs_f64(),
        settings.warmup
    );
    tokio::time::sleep(settings.wall(settings.warmup)).await;
    let memory_per_node = resident_bytes().saturating_sub(memory_before) / settings.nodes as u64;
    let mut connected = Vec::with_capacity(settings.nodes);
    for node in &population.nodes {
        connected.push(node.handle.peers().await?.len());
    }
    connected.sort_unstable();
    while arrivals.try_recv().is_ok() {}
    eprintln!("warmed up in {:.1} s; measuring for {} s", started.elapsed().as_secs_f64(), settings.secs);

    // Each (simulated) second: churn what is due, one publisher raises its sequence, a share of the
    // jobs starts.
    let received_before = population.received();
    let (window, cpu_before) = (Instant::now(), cpu_seconds());
    let churn_per_second = settings.churn * settings.nodes as f64 / 60.0;
    let (mut churn_due, mut replaced) = (0.0, 0);
    let mut published: HashMap<(PeerId, u64), Instant> = HashMap::new();
    let mut placements = tokio::task::JoinSet::new();
    for second in 0..settings.secs as usize {
        let tick = Instant::now();
        churn_due += churn_per_second;
        while churn_due >= 1.0 {
            population.churn_one(&settings).await?;
            (churn_due, replaced) = (churn_due - 1.0, replaced + 1);
        }
        let index = (second * 7919) % settings.nodes;
        let node = &population.nodes[index];
        let peer = node.handle.local_peer_id();
        node.handle.set_advert(advert_of(index, &peer, 2 + second as u64)).await?;
        published.insert((peer, 2 + second as u64), Instant::now());
        let jobs = (second * settings.jobs / settings.secs as usize)
            ..((second + 1) * settings.jobs / settings.secs as usize);
        for job in jobs {
            let origin = population.draw(0);
            placements.spawn(place(population.nodes[origin].handle.clone(), job, settings.dilation));
        }
        tokio::time::sleep_until((tick + settings.wall(Duration::from_secs(1))).into()).await;
    }
    tokio::time::sleep(settings.wall(DRAIN)).await;
    let wall_secs = window.elapsed().as_secs_f64();
    let window_secs = settings.simulated(window.elapsed()).as_secs_f64();
    let cpu_used = cpu_seconds() - cpu_before;
    let cpu_share = cpu_used / wall_secs;
    let bytes_per_node_second =
        (population.received() - received_before) as f64 / settings.nodes as f64 / window_secs;
    eprintln!("{} adverts published, {replaced} nodes replaced; waiting for the jobs", published.len());
    let (mut placed, mut counted, mut latencies) = (0, 0, Vec::new());
    while let Some(outcome) = placements.join_next().await {
        let (origin, ended, latency) = outcome?;
        if population.left_before(&origin, ended) {
            continue;
        }
        counted += 1;
        if let Some(latency) = latency {
            placed += 1;
            latencies.push(settings.simulated(latency));
        }
    }

    let mut first_arrival: HashMap<(PeerId, u64), HashMap<PeerId, Instant>> = HashMap::new();
    while let Ok((receiver, publisher, sequence, at)) = arrivals.try_recv() {
        if published.contains_key(&(publisher, sequence)) {
            first_arrival.entry((publisher, sequence)).or_default().entry(receiver).or_insert(at);
        }
    }
    let (mut to_half, mut to_most, mut everywhere) = (Vec::new(), Vec::new(), 0);
    for (key @ (publisher, _), sent) in &published {
        let arrivals = first_arrival.remove(key).unwrap_or_default();
        let receivers: Vec<&PeerId> = population.receivers_of(&settings, publisher, *sent).collect();
        let mut times: Vec<Duration> = receivers
            .iter()
            .filter_map(|peer| arrivals.get(*peer))
            .map(|at| settings.simulated(at.saturating_duration_since(*sent)))
            .collect();
        times.sort();
        everywhere += usize::from(times.len() >= receivers.len());
        let nth =
            |share: f64| times.get(((receivers.len() as f64 * share).ceil() as usize).max(1) - 1).copied();
        // An advert that never reached the share counts as the whole window.
        to_half.push(nth(0.5).unwrap_or(Duration::from_secs_f64(window_secs)));
        to_most.push(nth(0.99).unwrap_or(Duration::from_secs_f64(window_secs)));
    }

    println!(
        "nodes {} (bootstrap {}), latency {:?}, loss {:.1} %, churn {:.0} % a minute ({replaced} replaced in {:.0} s), network advert rate {}/s, time dilation {}",
        settings.nodes,
        settings.bootstrap,
        settings.latency,
        settings.loss * 100.0,
        settings.churn * 100.0,
        window_secs,
        settings.advert_rate,
        settings.dilation
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
        "jobs placed on a capable peer: {placed}/{counted} ({:.1} %; {} left out: their origin left); placement latency p50 {} p99 {}",
        100.0 * placed as f64 / counted.max(1) as f64,
        settings.jobs - counted,
        ms(quantile(&mut latencies.clone(), 0.5)),
        ms(quantile(&mut latencies, 0.99))
    );
    println!("resident memory per node: {:.1} MiB", memory_per_node as f64 / (1024.0 * 1024.0));
    // In real time the network would need the CPU it used per simulated second.
    let real_time_cores = cpu_used / window_secs;
    println!(
        "CPU: {cpu_share:.2} cores busy ({:.2} in real time, {:.2} % of a core per node; the machine has {})",
        real_time_cores,
        100.0 * real_time_cores / settings.nodes as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
