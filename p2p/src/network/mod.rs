//! The network as the node sees it: [`spawn`] starts one task that owns the libp2p swarm and
//! returns a cloneable [`NetworkHandle`] plus a bounded stream of [`NetworkEvent`]s.
//!
//! ```text
//! NetworkHandle ── Command + oneshot reply ─► (bounded queue) ─► actor task: Swarm<Behaviour>
//!                                                                  │ try_send, never waits
//! node's event loop ◄── NetworkEvent (bounded queue) ◄──────────────┘
//!        └─ InboundJob.responder.respond(..) ─► pending answers (bounded) ─► the asking peer
//! ```

mod actor;
mod advert_book;
mod adverts;
mod answers;
mod dilation;
mod nat;
mod peers;
mod spot_checks;

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use self::actor::{Actor, Command, Transport};
pub use self::answers::Responder;
pub(crate) use self::dilation::Dilation;
pub use self::nat::{MAX_RELAYS, NatConfig, NatStatus, Reachability};
use crate::advert::{Advert, AdvertVerifier, ReceivedAdvert};
use crate::memory_link::MemoryLink;
use crate::spot_check::{ReceivedSpotCheck, SpotCheck, SpotCheckTicket, SpotCheckVerifier, Verdict};
use crate::wire::{self, JobRequest, JobResponse, WireError};

/// Commands the handles may queue before a sender waits for the swarm task.
const COMMAND_QUEUE: usize = 256;
/// Events the swarm task may queue for the node; beyond that it drops them (answering jobs "busy").
const EVENT_QUEUE: usize = 256;

/// How the node joins the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0` and `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, each ending in `/p2p/<peer id>`; dialled and added to Kademlia.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network by mDNS.
    pub mdns: bool,
    /// Separates networks: the advert topic is `genmint/adverts/1/{network_id}`.
    pub network_id: String,
    /// How often our advert is published again (peers drop adverts they stop hearing).
    pub advert_interval: Duration,
    /// Peers' adverts not heard for this long are dropped; a few advert intervals. An advert that
    /// announces a longer refresh interval is kept three of those.
    pub advert_ttl: Duration,
    /// Adverts a second the whole network should publish: past `advert_interval ×` this many
    /// nodes, each node repeats its advert less often (the adverts it holds over this rate, at
    /// most 20 minutes), so that gossip traffic per node stops growing with the network. 0 keeps
    /// `advert_interval` at any size.
    pub network_advert_rate: f64,
    /// How long a job-protocol request or a provider lookup may take.
    pub request_timeout: Duration,
    /// The most connections (in and out) the node keeps: past it, the longest idle are closed; up
    /// to twice as many are accepted meanwhile, so that newcomers still get in.
    pub max_connections: u32,
    /// Reachability behind NAT: relays, serving as one, AutoNAT.
    pub nat: NatConfig,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"];
        Self {
            listen: listen.iter().filter_map(|a| a.parse().ok()).collect(),
            bootstrap: Vec::new(),
            mdns: false,
            network_id: "dev".into(),
            advert_interval: Duration::from_secs(10),
            advert_ttl: Duration::from_secs(30),
            network_advert_rate: 10.0,
            request_timeout: Duration::from_secs(10),
            max_connections: 128,
            nat: NatConfig::default(),
        }
    }
}

impl NetworkConfig {
    fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |reason: String| Err(NetworkError::Config(reason));
        if self.network_id.is_empty() || self.network_id.len() > 128 {
            return invalid("network_id must be 1 to 128 characters".into());
        }
        for (name, value) in [
            ("advert_interval", self.advert_interval),
            ("advert_ttl", self.advert_ttl),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be longer than zero"));
            }
        }
        if self.advert_ttl <= self.advert_interval {
            return invalid(format!(
                "advert_ttl ({:?}) must exceed advert_interval ({:?}), or adverts expire between publications",
                self.advert_ttl, self.advert_interval
            ));
        }
        if !(self.network_advert_rate.is_finite() && self.network_advert_rate >= 0.0) {
            return invalid(format!("network_advert_rate {} must be 0 or more", self.network_advert_rate));
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        for addr in &self.bootstrap {
            if peer_of(addr).is_none() {
                return invalid(format!("bootstrap address {addr} must end with /p2p/<peer id>"));
            }
        }
        self.nat.validate().map_err(NetworkError::Config)
    }
}

/// A number of the node's own, from its peer id: spreads what every node does at once (advert
/// jitter, which bootstrap peers it dials first).
pub(crate) fn peer_seed(peer: &PeerId) -> u64 {
    peer.to_bytes().iter().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b))
}

/// What went wrong in the network, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid network settings: {0}")]
    Config(String),
    #[error("cannot start the network: {0}")]
    Setup(String),
    #[error(
        "cannot listen on {addr}: {reason} (is another process, another genmint node perhaps, using this port? choose a free one in p2p.listen)"
    )]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("peer {peer} did not answer within {after:?}; it may be overloaded or gone")]
    Timeout { peer: PeerId, after: Duration },
    #[error("peer {peer} could not be asked: {reason}")]
    Remote { peer: PeerId, reason: String },
    #[error("too many {what} in flight; retry shortly")]
    Busy { what: &'static str },
    #[error("advert not published: {0}")]
    InvalidAdvert(String),
    #[error("spot check not published: {0}")]
    SpotCheck(String),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the network has stopped (the node is shutting down)")]
    Closed,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A peer sent a job-protocol request; answer through `responder` (dropping it answers Error).
    InboundJob(InboundJob),
    /// A verified advert arrived (new peer or higher sequence).
    Advert(ReceivedAdvert),
    /// A peer's spot check passed the network's checks; give the verdict with
    /// [`NetworkHandle::judge_spot_check`] (until then gossip does not forward it).
    SpotCheck(Box<ReceivedSpotCheck>),
    PeerConnected(PeerId),
    PeerDisconnected(PeerId),
}

/// A job-protocol request from a peer, waiting for the node's answer.
#[derive(Debug)]
pub struct InboundJob {
    pub peer: PeerId,
    pub request: JobRequest,
    pub responder: Responder,
}

/// A connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Where the peer says it listens, then the addresses of our connections to it.
    pub addresses: Vec<Multiaddr>,
    /// The latest ping round trip.
    pub rtt: Option<Duration>,
    /// What the peer calls itself, e.g. `genmint/0.1.0`.
    pub agent_version: Option<String>,
    /// Its fresh, verified advert, if one arrived.
    pub advert: Option<ReceivedAdvert>,
    /// Every connection to it runs through a relay (no direct one, hole punching did not succeed
    /// or is still trying).
    pub relayed: bool,
}

/// Talks to the swarm task; cheap to clone, every call is one bounded round trip.
#[derive(Clone)]
pub struct NetworkHandle {
    local_peer_id: PeerId,
    request_timeout: Duration,
    commands: mpsc::Sender<Command>,
}

/// What checks the signatures the network cannot check itself (they need the node's keys and chain).
#[derive(Clone)]
pub struct Verifiers {
    pub adverts: Arc<dyn AdvertVerifier>,
    /// Without one the node takes no part in spot checks: it neither receives, relays nor
    /// publishes them.
    pub spot_checks: Option<Arc<dyn SpotCheckVerifier>>,
}

/// Starts the swarm on its own tokio task, without spot checks ([`spawn_with`] takes part in them).
pub async fn spawn(
    keypair: Keypair,
    config: NetworkConfig,
    verifier: Arc<dyn AdvertVerifier>,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    spawn_with(keypair, config, Verifiers { adverts: verifier, spot_checks: None }).await
}

/// Starts the swarm on its own tokio task. Returns once every listen address is bound (so
/// `listen_addrs` is complete) or with an error naming the address that failed.
pub async fn spawn_with(
    keypair: Keypair,
    config: NetworkConfig,
    verifiers: Verifiers,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    start(keypair, config, verifiers, Transport::Internet).await
}

/// Starts a node whose connections run in memory through `link` (listen and bootstrap addresses
/// are `/memory/<port>`, port 0 picks one): the real behaviours, noise and yamux, without
/// sockets, so that a simulation runs thousands of nodes in one process; slowed down by
/// `link.time_dilation`, every duration of `config` included.
pub async fn spawn_in_memory(
    keypair: Keypair,
    config: NetworkConfig,
    verifiers: Verifiers,
    link: MemoryLink,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    start(keypair, config, verifiers, Transport::Memory(link)).await
}

async fn start(
    keypair: Keypair,
    config: NetworkConfig,
    verifiers: Verifiers,
    transport: Transport,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    config.validate()?;
    let dilation = match &transport {
        Transport::Memory(link) => Dilation::new(link.time_dilation)?,
        Transport::Internet => Dilation::NONE,
    };
    let config = dilation.config(config);
    let (local_peer_id, request_timeout) = (keypair.public().to_peer_id(), config.request_timeout);
    let (event_sender, events) = mpsc::channel(EVENT_QUEUE);
    let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
    // Every log line of this swarm names it: several nodes may share a process (tests, benches).
    let span = tracing::info_span!("p2p", peer = %local_peer_id);
    let actor = Actor::start(keypair, config, dilation, verifiers, event_sender, transport)
        .instrument(span.clone())
        .await?;
    tokio::spawn(actor.run(command_receiver).instrument(span));
    Ok((NetworkHandle { local_peer_id, request_timeout, commands }, events))
}

impl NetworkHandle {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The bound listen addresses (port 0 resolved, wildcards expanded), without `/p2p`, in the
    /// order of `NetworkConfig::listen`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.call(Command::ListenAddrs).await
    }

    /// Connects to `addr` (optionally ending in `/p2p/<peer id>`); returns once connected.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Our advert: published now (if it changed) and every advert_interval; each model hash is
    /// also announced as a Kademlia provider record. Adverts are gossipsub messages signed by the
    /// peer key; receivers require message source == advert.peer_id. The advert must name this
    /// node's peer id, pass [`Advert::validate_shape`] and the verifier, and a changed advert
    /// needs a higher sequence.
    pub async fn set_advert(&self, advert: Advert) -> Result<(), NetworkError> {
        self.call(|reply| Command::SetAdvert { advert: Box::new(advert), reply }).await?
    }

    /// Fresh (not expired), verified adverts of other peers, one per peer (highest sequence).
    pub async fn adverts(&self) -> Result<Vec<ReceivedAdvert>, NetworkError> {
        self.call(Command::Adverts).await
    }

    /// Publishes one of our spot checks on `genmint/spot-checks/1/{network id}` (once; gossipsub
    /// signs it with the peer key). It must pass [`SpotCheck::validate_shape`] and the verifier,
    /// and its checker must be the operator our advert names, or peers reject it.
    pub async fn publish_spot_check(&self, check: SpotCheck) -> Result<(), NetworkError> {
        self.call(|reply| Command::PublishSpotCheck { check: Box::new(check), reply }).await?
    }

    /// The node's verdict on a received spot check: accepted ones travel on through gossip, rejected
    /// ones count against the peer that sent them.
    pub async fn judge_spot_check(
        &self,
        ticket: SpotCheckTicket,
        verdict: Verdict,
    ) -> Result<(), NetworkError> {
        self.call(|reply| Command::JudgeSpotCheck { ticket, verdict, reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.call(Command::Peers).await
    }

    /// Whether peers can reach this node directly, and the relays it is reached through.
    pub async fn nat_status(&self) -> Result<NatStatus, NetworkError> {
        self.call(Command::NatStatus).await
    }

    /// Kademlia provider lookup for a model hash: other peers that announced it (bounded time:
    /// request_timeout). This node itself is left out.
    pub async fn find_providers(&self, model_hash: &str) -> Result<Vec<PeerId>, NetworkError> {
        let model_hash = model_hash.to_owned();
        self.call(|reply| Command::FindProviders { model_hash, reply }).await?
    }

    /// One job-protocol round trip (times out after request_timeout).
    pub async fn request(&self, peer: PeerId, request: JobRequest) -> Result<JobResponse, NetworkError> {
        // Refuse an oversized request here, with a clear error, rather than as a broken stream.
        wire::encode(&request)?;
        let round_trip = self.call(|reply| Command::Request { peer, request: Box::new(request), reply });
        match tokio::time::timeout(self.request_timeout, round_trip).await {
            Ok(answer) => answer?,
            Err(_) => Err(NetworkError::Timeout { peer, after: self.request_timeout }),
        }
    }

    /// Stops the swarm task and waits for it to end.
    pub async fn shutdown(&self) -> Result<(), NetworkError> {
        self.call(Command::Shutdown).await
    }

    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| NetworkError::Closed)?;
        answer.await.map_err(|_| NetworkError::Closed)
    }
}

/// The peer id at the end of `addr`, if it names one.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}
