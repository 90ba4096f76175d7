//! The swarm task: the one owner of the libp2p `Swarm`. It serves handle commands, turns swarm
//! events into node events, validates gossip adverts and spot checks, and keeps every pending
//! operation bounded.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, ListenerId, MemoryTransport};
use libp2p::core::{Transport as _, upgrade};
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::identity::Keypair;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, autonat, dcutr, identify, mdns, noise, relay, tcp, yamux,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::adverts::{Adverts, Refusal};
use super::answers::{Answer, PendingAnswers, Unanswered};
use super::nat::{Nat, NatStatus};
use super::peers::{MAX_PEER_ADDRS, PeerBook};
use super::spot_checks::SpotChecks;
use super::{
    Dilation, InboundJob, NetworkConfig, NetworkError, NetworkEvent, PeerInfo, Verifiers, peer_of, peer_seed,
};
use crate::advert::{Advert, ReceivedAdvert};
use crate::behaviour::{ANSWER_PATIENCE, Behaviour, BehaviourEvent, KAD_PROTOCOL};
use crate::memory_link::{DelayedStream, MemoryLink};
use crate::spot_check::{ReceivedSpotCheck, SpotCheck, SpotCheckTicket, Verdict};
use crate::wire::{JobRequest, JobResponse};

/// Inbound job requests waiting for the node's answer.
const MAX_PENDING_ANSWERS: usize = 256;
/// Our job requests waiting for a peer's answer.
const MAX_PENDING_REQUESTS: usize = 1024;
/// Provider lookups running at once.
const MAX_PENDING_LOOKUPS: usize = 64;
/// Dials from `NetworkHandle::dial` waiting for their connection.
const MAX_PENDING_DIALS: usize = 64;
/// Providers one lookup collects before it stops.
const MAX_PROVIDERS: usize = 64;
/// How long `spawn` waits for the listen addresses to be bound.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to close cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Connections no protocol needs (no gossip mesh, no request in flight) close after this.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How often expired adverts are dropped and deferred publications are made.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);
/// How often the connection count is checked against its watermarks (and a node alone rejoins).
const TRIM_INTERVAL: Duration = Duration::from_secs(5);
/// Connections kept free below `max_connections` for peers that join.
const TRIM_HEADROOM: usize = 8;
/// Bootstrap peers a node dials at a time (Kademlia finds the rest).
const BOOTSTRAP_DIALS: usize = 2;
/// A peer whose connection opened or carried a job message this recently is not trimmed.
const TRIM_GRACE: Duration = Duration::from_secs(30);

/// What a [`super::NetworkHandle`] asks of the swarm task.
pub(super) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    SetAdvert {
        advert: Box<Advert>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Adverts(oneshot::Sender<Vec<ReceivedAdvert>>),
    PublishSpotCheck {
        check: Box<SpotCheck>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    JudgeSpotCheck {
        ticket: SpotCheckTicket,
        verdict: Verdict,
        reply: oneshot::Sender<()>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    NatStatus(oneshot::Sender<NatStatus>),
    FindProviders {
        model_hash: String,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetworkError>>,
    },
    Request {
        peer: PeerId,
        request: Box<JobRequest>,
        reply: oneshot::Sender<Result<JobResponse, NetworkError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// What the swarm's connections run over.
pub(super) enum Transport {
    /// TCP and QUIC over the host's network, with DNS: what nodes run.
    Internet,
    /// libp2p's in-memory transport (`/memory/<port>` addresses) through a simulated link, with
    /// the same noise and yamux upgrades: simulated networks of many nodes in one process.
    Memory(MemoryLink),
}

/// The swarm over `transport`, with the relay client's transport beside it (dialing and listening
/// through relays); every transport carries the same behaviour.
fn build_swarm(
    keypair: Keypair,
    config: &NetworkConfig,
    dilation: Dilation,
    transport: Transport,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
    let idle =
        |c: libp2p::swarm::Config| c.with_idle_connection_timeout(dilation.stretch(IDLE_CONNECTION_TIMEOUT));
    let behaviour = |key: &Keypair, relay_client: relay::client::Behaviour| {
        Behaviour::new(key, config, dilation, relay_client)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
    };
    let builder = SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let swarm = match transport {
        Transport::Internet => builder
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .map_err(|e| setup(&e))?
            .with_quic()
            .with_dns()
            .map_err(|e| setup(&e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| setup(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build(),
        Transport::Memory(link) => builder
            .with_other_transport(|key| {
                let noise: Box<dyn std::error::Error + Send + Sync> = match noise::Config::new(key) {
                    Ok(noise) => return Ok(memory_transport(noise, link)),
                    Err(e) => Box::new(e),
                };
                Err(noise)
            })
            .map_err(|e| setup(&e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| setup(&e))?
            .with_behaviour(behaviour)
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}

/// Which of `peers` bootstrap peers a node (`seed`, from its id) dials on its `joins`-th try:
/// `BOOTSTRAP_DIALS` consecutive ones from a place of its own, the next ones on the next try.
fn bootstrap_turn(peers: usize, seed: usize, joins: usize) -> Vec<usize> {
    let first = seed.wrapping_add(joins.wrapping_mul(BOOTSTRAP_DIALS));
    (0..BOOTSTRAP_DIALS.min(peers)).map(|turn| first.wrapping_add(turn) % peers).collect()
}

/// Memory connections through `link`, secured and multiplexed as TCP ones are.
fn memory_transport(noise: noise::Config, link: MemoryLink) -> Boxed<(PeerId, StreamMuxerBox)> {
    MemoryTransport::default()
        .map(move |stream, _| DelayedStream::new(stream, link.clone()))
        .upgrade(upgrade::Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .boxed()
}

struct PendingDial {
    addr: Multiaddr,
    reply: oneshot::Sender<Result<(), NetworkError>>,
}

struct ProviderLookup {
    found: HashSet<PeerId>,
    reply: oneshot::Sender<Result<Vec<PeerId>, NetworkError>>,
}

pub(super) struct Actor {
    swarm: Swarm<Behaviour>,
    config: NetworkConfig,
    dilation: Dilation,
    /// Each listener's bound addresses, in the order of `config.listen`.
    listeners: Vec<(ListenerId, Vec<Multiaddr>)>,
    /// The listen address each listener was opened for.
    configured: HashMap<ListenerId, Multiaddr>,
    events: mpsc::Sender<NetworkEvent>,
    adverts: Adverts,
    /// `None` when the node takes no part in spot checks.
    spot_checks: Option<SpotChecks>,
    peers: PeerBook,
    nat: Nat,
    answers: PendingAnswers,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<JobResponse, NetworkError>>>,
    lookups: HashMap<QueryId, ProviderLookup>,
    dials: HashMap<ConnectionId, PendingDial>,
    /// Times the node dialled its bootstrap peers: each time it starts elsewhere in the list.
    joins: usize,
}

impl Actor {
    /// Builds the swarm, binds every listen address and starts joining through the bootstrap peers.
    pub async fn start(
        keypair: Keypair,
        config: NetworkConfig,
        dilation: Dilation,
        verifiers: Verifiers,
        events: mpsc::Sender<NetworkEvent>,
        transport: Transport,
    ) -> Result<Self, NetworkError> {
        let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
        let mut swarm = build_swarm(keypair, &config, dilation, transport)?;

        let local = *swarm.local_peer_id();
        let pacing = (config.advert_interval, config.advert_ttl, config.network_advert_rate);
        let adverts = Adverts::new(local, &config.network_id, pacing, dilation, verifiers.adverts);
        swarm.behaviour_mut().gossipsub.subscribe(adverts.topic()).map_err(|e| setup(&e))?;
        let spot_checks =
            verifiers.spot_checks.map(|verifier| SpotChecks::new(local, &config.network_id, verifier));
        if let Some(spot_checks) = &spot_checks {
            swarm.behaviour_mut().gossipsub.subscribe(spot_checks.topic()).map_err(|e| setup(&e))?;
        }

        let mut listeners = Vec::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            listeners.push((id, Vec::new()));
        }
        let configured: HashMap<ListenerId, Multiaddr> =
            listeners.iter().map(|(id, _)| *id).zip(config.listen.iter().cloned()).collect();
        let waiting = configured.clone();

        let mut actor = Self {
            swarm,
            listeners,
            configured,
            adverts,
            spot_checks,
            answers: PendingAnswers::new(MAX_PENDING_ANSWERS, config.request_timeout * ANSWER_PATIENCE),
            nat: Nat::new(config.nat.clone()),
            config,
            dilation,
            events,
            peers: PeerBook::default(),
            requests: HashMap::new(),
            lookups: HashMap::new(),
            dials: HashMap::new(),
            joins: 0,
        };
        actor.await_listeners(waiting).await?;
        actor.bootstrap();
        actor.nat.start(&mut actor.swarm);
        actor.adverts.set_addresses(actor.swarm.external_addresses());
        Ok(actor)
    }

    async fn await_listeners(
        &mut self,
        mut waiting: HashMap<ListenerId, Multiaddr>,
    ) -> Result<(), NetworkError> {
        let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
        tokio::pin!(deadline);
        while !waiting.is_empty() {
            let event = tokio::select! {
                event = self.swarm.select_next_some() => event,
                () = &mut deadline => {
                    let addr = waiting.into_values().next().unwrap_or_else(Multiaddr::empty);
                    let reason = format!("not bound within {LISTEN_TIMEOUT:?}");
                    return Err(NetworkError::Listen { addr, reason });
                }
            };
            let failed = match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    waiting.remove(listener_id);
                    None
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    waiting.remove(listener_id).map(|addr| (addr, error.to_string()))
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => waiting
                    .remove(listener_id)
                    .map(|addr| (addr, reason.as_ref().err().map_or("closed".into(), ToString::to_string))),
                _ => None,
            };
            if let Some((addr, reason)) = failed {
                return Err(NetworkError::Listen { addr, reason });
            }
            self.on_swarm_event(event);
        }
        Ok(())
    }

    /// Adds the bootstrap peers to Kademlia, dials `BOOTSTRAP_DIALS` of them (others on each
    /// rejoin, and each node its own, so that newcomers spread over the list instead of all
    /// filling every bootstrap node) and asks Kademlia to fill the routing table through them.
    fn bootstrap(&mut self) {
        let local = *self.swarm.local_peer_id();
        let peers: Vec<(PeerId, Multiaddr)> = self
            .config
            .bootstrap
            .iter()
            // `NetworkConfig::validate` made sure every bootstrap address names its peer.
            .filter_map(|addr| peer_of(addr).filter(|peer| *peer != local).map(|peer| (peer, addr.clone())))
            .collect();
        let dialled = bootstrap_turn(peers.len(), peer_seed(&local) as usize, self.joins);
        self.joins += 1;
        for (index, (peer, addr)) in peers.iter().enumerate() {
            let mut transport_addr = addr.clone();
            transport_addr.pop();
            self.swarm.behaviour_mut().kademlia.add_address(peer, transport_addr);
            if !dialled.contains(&index) {
                continue;
            }
            if let Err(e) = self.swarm.dial(DialOpts::peer_id(*peer).addresses(vec![addr.clone()]).build()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        if !self.config.bootstrap.is_empty()
            && let Err(e) = self.swarm.behaviour_mut().kademlia.bootstrap()
        {
            tracing::debug!(error = %e, "Kademlia bootstrap not started");
        }
    }

    /// Runs until a shutdown command or until every handle is gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let republish = tokio::time::sleep(self.adverts.refresh_interval());
        tokio::pin!(republish);
        let mut housekeeping = tokio::time::interval(self.dilation.stretch(HOUSEKEEPING_INTERVAL));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trim = tokio::time::interval(self.dilation.stretch(TRIM_INTERVAL));
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!("network started");

        let shutdown_reply = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.on_command(command),
                    None => break None,
                },
                Some((answer, channel)) = self.answers.next() => self.send_answer(answer, channel),
                _ = &mut republish => {
                    let next = self.adverts.republish(self.swarm.behaviour_mut());
                    republish.as_mut().reset(tokio::time::Instant::now() + next);
                }
                _ = housekeeping.tick() => {
                    self.adverts.housekeeping(&mut self.swarm.behaviour_mut().gossipsub);
                    self.nat.housekeeping(&mut self.swarm);
                }
                _ = trim.tick() => {
                    self.trim_connections();
                    self.rejoin_if_alone();
                }
            }
        };
        self.close().await;
        tracing::info!("network stopped");
        // The swarm, its sockets and every pending reply go before the shutdown is confirmed.
        drop(self);
        if let Some(reply) = shutdown_reply {
            // The caller may have stopped waiting; the task is over either way.
            let _ = reply.send(());
        }
    }

    /// Closes every connection and gives peers a moment to see it, so they notice at once.
    async fn close(&mut self) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            // Err only means the peer disconnected meanwhile.
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let drain = async {
            while self.swarm.connected_peers().next().is_some() {
                self.swarm.select_next_some().await;
            }
        };
        if tokio::time::timeout(self.dilation.stretch(CLOSE_GRACE), drain).await.is_err() {
            tracing::debug!("some connections did not close in time; dropping them");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let addrs = self.listeners.iter().flat_map(|(_, addrs)| addrs.iter().cloned()).collect();
                let _ = reply.send(addrs);
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::SetAdvert { advert, reply } => {
                let _ = reply.send(self.adverts.set(self.swarm.behaviour_mut(), *advert));
            }
            Command::Adverts(reply) => {
                let _ = reply.send(self.adverts.book().fresh(Instant::now()).cloned().collect());
            }
            Command::PublishSpotCheck { check, reply } => {
                let published = match &self.spot_checks {
                    Some(spot_checks) => {
                        spot_checks.publish(&mut self.swarm.behaviour_mut().gossipsub, &check)
                    }
                    None => Err(NetworkError::SpotCheck("this node takes no part in spot checks".into())),
                };
                let _ = reply.send(published);
            }
            Command::JudgeSpotCheck { ticket, verdict, reply } => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                    Verdict::Reject => MessageAcceptance::Reject,
                };
                self.report(&ticket.message_id, &ticket.propagation_source, acceptance);
                let _ = reply.send(());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_infos());
            }
            Command::NatStatus(reply) => {
                let _ = reply.send(self.nat.status());
            }
            Command::FindProviders { model_hash, reply } => self.find_providers(&model_hash, reply),
            Command::Request { peer, request, reply } => self.request(peer, *request, reply),
            // Handled by the loop in `run`.
            Command::Shutdown(_) => {}
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<(), NetworkError>>) {
        if self.dials.len() >= MAX_PENDING_DIALS {
            let _ = reply.send(Err(NetworkError::Busy { what: "dials" }));
            return;
        }
        let opts = match peer_of(&addr) {
            Some(peer) if peer == *self.swarm.local_peer_id() => {
                let reason = "it is this node's own address".into();
                let _ = reply.send(Err(NetworkError::Dial { addr, reason }));
                return;
            }
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(()));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Disconnected)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(connection, PendingDial { addr, reply });
            }
            Err(e) => {
                let _ = reply.send(Err(NetworkError::Dial { addr, reason: e.to_string() }));
            }
        }
    }

    fn find_providers(
        &mut self,
        model_hash: &str,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetworkError>>,
    ) {
        if self.lookups.len() >= MAX_PENDING_LOOKUPS {
            let _ = reply.send(Err(NetworkError::Busy { what: "provider lookups" }));
            return;
        }
        let key = self.adverts.provider_key(model_hash);
        let id = self.swarm.behaviour_mut().kademlia.get_providers(key);
        self.lookups.insert(id, ProviderLookup { found: HashSet::new(), reply });
    }

    fn request(
        &mut self,
        peer: PeerId,
        request: JobRequest,
        reply: oneshot::Sender<Result<JobResponse, NetworkError>>,
    ) {
        if self.requests.len() >= MAX_PENDING_REQUESTS {
            let _ = reply.send(Err(NetworkError::Busy { what: "job requests" }));
            return;
        }
        if peer == *self.swarm.local_peer_id() {
            let reason = "it is this node; handle the job locally".into();
            let _ = reply.send(Err(NetworkError::Remote { peer, reason }));
            return;
        }
        self.dial_advertised(peer);
        self.peers.touched(&peer);
        let id = self.swarm.behaviour_mut().jobs.send_request(&peer, request);
        self.requests.insert(id, reply);
    }

    /// Dials an unconnected peer at the addresses its advert carries (a relay's `/p2p-circuit`
    /// address when it is behind NAT), and at those Kademlia knows; a request to it waits for
    /// the connection.
    fn dial_advertised(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        let addresses = self.adverts.addresses_of(&peer);
        if addresses.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addresses)
            .extend_addresses_through_behaviour()
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "not dialing the advertised addresses");
        }
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let now = Instant::now();
        self.peers
            .list()
            .map(|peer| PeerInfo {
                advert: self.adverts.book().get(&peer.peer_id, now).cloned(),
                peer_id: peer.peer_id,
                addresses: peer.addresses,
                rtt: peer.rtt,
                agent_version: peer.agent_version,
                relayed: peer.relayed,
            })
            .collect()
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, endpoint, num_established, ..
            } => {
                let relayed = endpoint.is_relayed();
                self.peers.connected(peer_id, connection_id, endpoint.get_remote_address().clone(), relayed);
                if let Some(dial) = self.dials.remove(&connection_id) {
                    let _ = dial.reply.send(Ok(()));
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, cause, .. } => {
                self.peers.closed(peer_id, connection_id);
                if num_established == 0 {
                    self.nat.peer_gone(&peer_id);
                    tracing::debug!(peer = %peer_id, cause = ?cause, "peer disconnected");
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                match self.dials.remove(&connection_id) {
                    Some(PendingDial { addr, reply }) => {
                        let _ = reply.send(Err(NetworkError::Dial { addr, reason: error.to_string() }));
                    }
                    None => tracing::debug!(peer = ?peer_id, error = %error, "outgoing connection failed"),
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                tracing::debug!(from = %send_back_addr, error = %error, "incoming connection failed");
            }
            SwarmEvent::NewListenAddr { listener_id, address }
                if self.nat.listening(listener_id, &address) => {}
            SwarmEvent::NewListenAddr { listener_id, address } => {
                tracing::info!(%address, "listening");
                if self.configured.get(&listener_id).is_some_and(|c| self.nat.announces(c, &address)) {
                    self.swarm.add_external_address(address.clone());
                    self.adverts.set_addresses(self.swarm.external_addresses());
                }
                if let Some((_, addrs)) = self.listeners.iter_mut().find(|(id, _)| *id == listener_id) {
                    addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { listener_id, address }
                if self.nat.not_listening(listener_id, &address) => {}
            SwarmEvent::ExpiredListenAddr { listener_id, address } => {
                tracing::info!(%address, "no longer listening");
                if let Some((_, addrs)) = self.listeners.iter_mut().find(|(id, _)| *id == listener_id) {
                    addrs.retain(|a| *a != address);
                    self.swarm.remove_external_address(&address);
                    self.adverts.set_addresses(self.swarm.external_addresses());
                }
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(error = %error, "listener failed"),
            SwarmEvent::ListenerClosed { listener_id, ref reason, .. }
                if self.nat.listener_closed(listener_id, reason) => {}
            SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                tracing::warn!(?addresses, ?reason, "listener closed");
                self.listeners.retain(|(id, _)| *id != listener_id);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.adverts.set_addresses(self.swarm.external_addresses());
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
                self.adverts.set_addresses(self.swarm.external_addresses());
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.peers.identified(peer_id, info.agent_version, &info.listen_addrs);
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME)
                    && let Some(addr) = self.peers.direct_address(&peer_id)
                {
                    self.nat.relay_offered(peer_id, addr, &mut self.swarm);
                }
                if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) {
                    for addr in info.listen_addrs.into_iter().take(MAX_PEER_ADDRS) {
                        self.swarm.behaviour_mut().kademlia.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Ping(event) => {
                if let Ok(rtt) = event.result {
                    self.peers.pinged(event.peer, rtt);
                }
            }
            BehaviourEvent::Kademlia(event) => self.on_kademlia_event(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kademlia.add_address(&peer, addr.clone());
                    by_peer.entry(peer).or_default().push(addr);
                }
                for (peer, addrs) in by_peer {
                    if let Err(e) = self.swarm.dial(DialOpts::peer_id(peer).addresses(addrs).build()) {
                        tracing::debug!(%peer, error = %e, "not dialling peer found by mDNS");
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })
                if topic == self.adverts.topic().hash() =>
            {
                tracing::debug!(peer = %peer_id, "peer joined the advert topic");
                self.adverts.peer_subscribed(&mut self.swarm.behaviour_mut().gossipsub);
            }
            BehaviourEvent::Jobs(event) => self.on_job_event(event),
            BehaviourEvent::Autonat(autonat::v1::Event::StatusChanged { new, .. }) => {
                self.nat.on_status(new, &mut self.swarm);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            }) => tracing::info!(relay = %relay_peer_id, "relay accepted our reservation"),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::Relay(event) => tracing::debug!(?event, "relay service"),
            BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result }) => {
                self.nat.hole_punched(remote_peer_id, result.map(|_| ()).map_err(|e| e.to_string()));
            }
            _ => {}
        }
    }

    fn on_kademlia_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { is_new_peer: true, .. } => self.adverts.routing_grew(),
            kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetProviders(result),
                step,
                ..
            } => {
                let Some(lookup) = self.lookups.get_mut(&id) else { return };
                let local = *self.swarm.local_peer_id();
                match result {
                    Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                        let others = providers.into_iter().filter(|p| *p != local);
                        lookup.found.extend(others.take(MAX_PROVIDERS));
                    }
                    Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => {}
                    Err(e) => tracing::debug!(error = %e, "provider lookup ended early"),
                }
                let enough = lookup.found.len() >= MAX_PROVIDERS;
                if (step.last || enough)
                    && let Some(lookup) = self.lookups.remove(&id)
                {
                    if !step.last
                        && let Some(mut query) = self.swarm.behaviour_mut().kademlia.query_mut(&id)
                    {
                        query.finish();
                    }
                    let _ = lookup.reply.send(Ok(lookup.found.into_iter().take(MAX_PROVIDERS).collect()));
                }
            }
            kad::Event::OutboundQueryProgressed { result: QueryResult::StartProviding(Err(e)), .. } => {
                tracing::debug!(error = %e, "provider announcement reached no peer yet");
            }
            _ => {}
        }
    }

    /// Keeps room for newcomers: within `TRIM_HEADROOM` of `max_connections`, the longest idle
    /// peers outside the gossip mesh, the bootstrap list and our relays are disconnected down to
    /// three quarters of it. Gossipsub's streams keep every connection alive, so
    /// without this a node would hold one to every peer it ever met (the DHT meets many), each
    /// costing pings and gossip, until the limit refused newcomers (measured: at 300 simulated
    /// nodes, the bootstrap nodes were full and nobody else could join).
    fn trim_connections(&mut self) {
        let max = self.config.max_connections as usize;
        let watermarks = (max * 3 / 4, max.saturating_sub(TRIM_HEADROOM));
        if self.peers.len() <= watermarks.1 {
            return;
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut protected: HashSet<PeerId> = gossipsub.all_mesh_peers().copied().collect();
        protected.extend(self.config.bootstrap.iter().filter_map(peer_of));
        protected.extend(self.nat.relays().copied());
        let surplus = self.peers.surplus(watermarks, &protected, self.dilation.stretch(TRIM_GRACE));
        tracing::debug!(connected = self.peers.len(), dropping = surplus.len(), "trimming connections");
        for peer in surplus {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// A node connected to nobody dials its bootstrap peers again (every `TRIM_INTERVAL`): they
    /// may have been down or full when it started (measured: 1,000 simulated nodes joining at
    /// once, the bootstrap nodes took 128 each and the rest stayed alone), or every peer left.
    fn rejoin_if_alone(&mut self) {
        if self.peers.len() == 0 && !self.config.bootstrap.is_empty() {
            tracing::info!("connected to no peer; dialling the bootstrap peers again");
            self.bootstrap();
        }
    }

    fn on_job_event(&mut self, event: request_response::Event<JobRequest, JobResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.peers.touched(&peer);
                    self.on_inbound_job(peer, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(self.outbound_error(peer, error)));
                }
            }
            // A peer's unreadable request never gets here: libp2p drops its stream (and logs it).
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::warn!(%peer, error = %e, "our answer to a job request could not be sent");
                }
                error => tracing::debug!(%peer, error = %error, "inbound job request failed"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn outbound_error(&self, peer: PeerId, error: OutboundFailure) -> NetworkError {
        match error {
            OutboundFailure::Timeout => {
                NetworkError::Timeout { peer, after: self.config.request_timeout * ANSWER_PATIENCE }
            }
            OutboundFailure::DialFailure => NetworkError::Remote {
                peer,
                reason: "no connection could be made (unknown or unreachable)".into(),
            },
            OutboundFailure::UnsupportedProtocols => {
                NetworkError::Remote { peer, reason: "it does not speak the genmint job protocol".into() }
            }
            error => NetworkError::Remote { peer, reason: error.to_string() },
        }
    }

    fn on_inbound_job(&mut self, peer: PeerId, request: JobRequest, channel: ResponseChannel<JobResponse>) {
        if self.answers.is_full() {
            tracing::warn!(%peer, "too many job requests waiting for answers; refusing one");
            if self.swarm.behaviour_mut().jobs.send_response(channel, busy()).is_err() {
                tracing::debug!(%peer, "the refused peer had already gone");
            }
            return;
        }
        let responder = self.answers.open(channel);
        self.emit(NetworkEvent::InboundJob(InboundJob { peer, request, responder }));
    }

    fn send_answer(&mut self, answer: Answer, channel: ResponseChannel<JobResponse>) {
        let response = match answer {
            Ok(response) => response,
            Err(Unanswered::Dropped) => JobResponse::Error {
                code: "no_answer".into(),
                message: "the node dropped the request without answering".into(),
            },
            Err(Unanswered::TimedOut) => {
                tracing::debug!("a job request was not answered in time");
                return;
            }
        };
        if self.swarm.behaviour_mut().jobs.send_response(channel, response).is_err() {
            tracing::debug!("the asking peer stopped waiting before the answer");
        }
    }

    /// Hands an event to the node without ever waiting; a job that cannot be delivered is refused.
    fn emit(&mut self, event: NetworkEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(NetworkEvent::InboundJob(job))) => {
                tracing::warn!(peer = %job.peer, "event queue full; answering a job request busy");
                job.responder.respond(busy());
            }
            Err(TrySendError::Closed(NetworkEvent::InboundJob(job))) => {
                job.responder.respond(JobResponse::Error {
                    code: "unavailable".into(),
                    message: "the node is not taking job requests".into(),
                })
            }
            Err(TrySendError::Full(event)) => tracing::warn!(?event, "event queue full; event dropped"),
            Err(TrySendError::Closed(_)) => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        if let Some(spot_checks) = &self.spot_checks
            && message.topic == spot_checks.topic().hash()
        {
            return self.on_spot_check(source, id, message);
        }
        let acceptance = match self.adverts.judge(&message) {
            Ok(new) => {
                if let Some(received) = new {
                    tracing::debug!(peer = %received.advert.peer_id, sequence = received.advert.sequence, "advert");
                    self.emit(NetworkEvent::Advert(received));
                }
                MessageAcceptance::Accept
            }
            Err(Refusal::Ignore(reason)) => {
                tracing::trace!(from = %source, reason, "advert ignored");
                MessageAcceptance::Ignore
            }
            Err(Refusal::Reject(reason)) => {
                tracing::warn!(from = %source, publisher = ?message.source, reason, "advert rejected");
                MessageAcceptance::Reject
            }
        };
        self.report(&id, &source, acceptance);
    }

    /// A spot check that passes the network's checks goes to the node, and gossip holds it until
    /// the node's verdict ([`Command::JudgeSpotCheck`]); one the node cannot take now is ignored.
    fn on_spot_check(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let Some(spot_checks) = &self.spot_checks else { return };
        let acceptance = match spot_checks.judge(&message, self.adverts.book()) {
            Ok(check) => {
                let publisher = message.source.unwrap_or(source);
                let ticket = SpotCheckTicket { message_id: id.clone(), propagation_source: source };
                let received = ReceivedSpotCheck { check, publisher, ticket };
                match self.events.try_send(NetworkEvent::SpotCheck(Box::new(received))) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(from = %source, error = %e, "event queue full or closed; spot check ignored");
                        MessageAcceptance::Ignore
                    }
                }
            }
            Err(Refusal::Ignore(reason)) => {
                tracing::debug!(from = %source, reason, "spot check ignored");
                MessageAcceptance::Ignore
            }
            Err(Refusal::Reject(reason)) => {
                tracing::warn!(from = %source, publisher = ?message.source, reason, "spot check rejected");
                MessageAcceptance::Reject
            }
        };
        self.report(&id, &source, acceptance);
    }

    fn report(&mut self, id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, acceptance);
    }
}

fn busy() -> JobResponse {
    JobResponse::Error {
        code: "busy".into(),
        message: "the node has too many requests waiting; retry shortly".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn newcomers_dial_a_few_bootstrap_peers_and_others_on_each_try() {
        assert_eq!(bootstrap_turn(1, 7, 0), vec![0]);
        assert_eq!(bootstrap_turn(0, 7, 0), Vec::<usize>::new());
        let tries: Vec<Vec<usize>> = (0..3).map(|joins| bootstrap_turn(5, 12, joins)).collect();
        assert!(tries.iter().all(|dialled| dialled.len() == BOOTSTRAP_DIALS));
        let covered: HashSet<usize> = tries.into_iter().flatten().collect();
        assert_eq!(covered.len(), 5, "three tries reach every bootstrap peer");
        let firsts: HashSet<usize> = (0..50).map(|seed| bootstrap_turn(5, seed, 0)[0]).collect();
        assert_eq!(firsts.len(), 5, "nodes start at different places");
    }
}
