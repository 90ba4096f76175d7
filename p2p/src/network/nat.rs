//! Reachability behind NAT: what AutoNAT says of this node, the relays it holds a circuit relay v2
//! reservation on, and how its connections were made.
//!
//! ```text
//! AutoNAT probes (peers dial us back) ─► Reachability: public | private | unknown
//!   private ─► reserve on connected peers that offer the relay hop protocol (at most MAX_AUTO_RELAYS)
//!   public  ─► those automatic reservations are given up
//! NatConfig::relays ─► listen on <relay>/p2p-circuit at start, and again (1 s, doubling to 30 s) after it ends
//! reservation accepted ─► the relay client confirms <relay>/p2p-circuit as an external address
//!   ─► identify and our advert carry it ─► peers dial us through the relay
//!   ─► DCUtR tries a direct connection; the relayed one serves while that fails
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::autonat;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm};
use serde::Serialize;

use super::peer_of;
use crate::advert::MAX_ADVERTISED_ADDRESSES;
use crate::behaviour::Behaviour;

/// Relays picked by the node itself while AutoNAT says it is private (named relays come on top).
pub(super) const MAX_AUTO_RELAYS: usize = 2;
/// The most relays a node may name in its configuration.
pub const MAX_RELAYS: usize = 8;
/// A named relay whose reservation ended (or never came) is asked again after a wait that
/// doubles from this with every failure in a row ...
const RELAY_RETRY_FIRST: Duration = Duration::from_secs(1);
/// ... up to this.
const RELAY_RETRY_MAX: Duration = Duration::from_secs(30);

/// How a node behind NAT stays reachable, and whether it helps others to.
#[derive(Debug, Clone, Default)]
pub struct NatConfig {
    /// Serve as a circuit relay v2 for peers behind NAT (a node with a public address). Bounded
    /// by libp2p's defaults for reservations (128, 4 per peer, one hour each) and circuits
    /// (16, 4 per peer), with genmint's limits per circuit (10 minutes, 1 MiB).
    pub relay_service: bool,
    /// Relays to hold a reservation on from the start, each ending in `/p2p/<peer id>`.
    pub relays: Vec<Multiaddr>,
    /// Addresses this node is reachable at, announced as they are (a public address, a port
    /// forward). Without them a relay announces the addresses it binds (for a wildcard, every
    /// interface's but loopback), and other nodes wait for AutoNAT to confirm one.
    pub external_addresses: Vec<Multiaddr>,
    /// Let AutoNAT ask and answer peers at private IP addresses. Off on the internet, where a
    /// private address says nothing about reachability; on for a network that is private as a
    /// whole (a lab, test namespaces).
    pub private_addresses: bool,
}

impl NatConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.external_addresses.len() > MAX_ADVERTISED_ADDRESSES {
            return Err(format!("at most {MAX_ADVERTISED_ADDRESSES} external addresses are announced"));
        }
        if self.relays.len() > MAX_RELAYS {
            return Err(format!("{} relays named, at most {MAX_RELAYS} allowed", self.relays.len()));
        }
        for relay in &self.relays {
            if relay.iter().any(|p| p == Protocol::P2pCircuit) {
                return Err(format!("relay address {relay} must be the relay's own, without /p2p-circuit"));
            }
            if peer_of(relay).is_none() {
                return Err(format!("relay address {relay} must end with /p2p/<relay's peer id>"));
            }
        }
        Ok(())
    }
}

/// Whether peers can dial this node, as AutoNAT found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Not probed yet, or no peer could probe it (e.g. only peers at private addresses).
    Unknown,
    /// Peers dialed it back.
    Public,
    /// Peers could not dial it back: it is reached through relays.
    Private,
}

/// This node's standing behind NAT, for `GET /v1/peers` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct NatStatus {
    pub reachability: Reachability,
    /// The address AutoNAT confirmed, when public.
    pub public_address: Option<Multiaddr>,
    /// The `/p2p-circuit` addresses of accepted reservations: where peers reach this node.
    pub relayed_addresses: Vec<Multiaddr>,
    /// Whether this node relays for others.
    pub relay_service: bool,
    /// Hole punches (DCUtR) since start that turned a relayed connection into a direct one.
    pub hole_punches_succeeded: u64,
    pub hole_punches_failed: u64,
}

/// One reservation this node holds or is asking for.
struct Reservation {
    relay: PeerId,
    /// `<relay address>/p2p/<relay>/p2p-circuit`, what the listener was opened on.
    circuit: Multiaddr,
    /// Named in the configuration: asked again when it ends.
    named: bool,
    listener: Option<ListenerId>,
    /// The addresses the listener reported once the relay accepted (one per relay address).
    accepted: Vec<Multiaddr>,
    retry_at: Option<Instant>,
    /// Reservations that ended or failed since the last one was accepted.
    failures: u32,
}

pub(super) struct Nat {
    config: NatConfig,
    reachability: Reachability,
    public_address: Option<Multiaddr>,
    reservations: Vec<Reservation>,
    /// Connected peers that offer the relay hop protocol, with an address of a direct connection.
    relay_peers: HashMap<PeerId, Multiaddr>,
    hole_punches_succeeded: u64,
    hole_punches_failed: u64,
}

impl Nat {
    pub fn new(config: NatConfig) -> Self {
        let reservations = config
            .relays
            .iter()
            .filter_map(|addr| {
                let relay = peer_of(addr)?;
                let circuit = addr.clone().with(Protocol::P2pCircuit);
                Some(Reservation {
                    relay,
                    circuit,
                    named: true,
                    listener: None,
                    accepted: Vec::new(),
                    retry_at: None,
                    failures: 0,
                })
            })
            .collect();
        Self {
            config,
            reachability: Reachability::Unknown,
            public_address: None,
            reservations,
            relay_peers: HashMap::new(),
            hole_punches_succeeded: 0,
            hole_punches_failed: 0,
        }
    }

    /// Announces the configured external addresses and asks the named relays for a reservation
    /// (the relay client dials each one first).
    pub fn start(&mut self, swarm: &mut Swarm<Behaviour>) {
        for addr in &self.config.external_addresses {
            swarm.add_external_address(addr.clone());
        }
        let now = Instant::now();
        for reservation in &mut self.reservations {
            reservation.retry_at = Some(now);
        }
        self.housekeeping(swarm);
    }

    /// The relays this node holds or asks a reservation of: their connections must stay.
    pub fn relays(&self) -> impl Iterator<Item = &PeerId> {
        self.reservations.iter().map(|r| &r.relay)
    }

    /// Asks again the named relays whose reservation ended a while ago.
    pub fn housekeeping(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = Instant::now();
        let local = *swarm.local_peer_id();
        for reservation in &mut self.reservations {
            if reservation.listener.is_some() || reservation.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            reservation.retry_at = None;
            if reservation.relay == local {
                continue;
            }
            match swarm.listen_on(reservation.circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(relay = %reservation.circuit, "asking a relay for a reservation");
                    reservation.listener = Some(listener);
                }
                Err(e) => {
                    tracing::warn!(relay = %reservation.circuit, error = %e, "cannot listen through the relay");
                    reservation.failed(now);
                }
            }
        }
    }

    /// AutoNAT changed its mind.
    pub fn on_status(&mut self, status: autonat::v1::NatStatus, swarm: &mut Swarm<Behaviour>) {
        (self.reachability, self.public_address) = match status {
            autonat::v1::NatStatus::Public(addr) => (Reachability::Public, Some(addr)),
            autonat::v1::NatStatus::Private => (Reachability::Private, None),
            autonat::v1::NatStatus::Unknown => (Reachability::Unknown, None),
        };
        tracing::info!(reachability = ?self.reachability, address = ?self.public_address, "AutoNAT");
        match self.reachability {
            Reachability::Private => self.reserve_automatically(swarm),
            // Each one goes from the list when its listener reports that it closed.
            Reachability::Public => {
                for reservation in self.reservations.iter().filter(|r| !r.named) {
                    if let Some(listener) = reservation.listener {
                        swarm.remove_listener(listener);
                    }
                }
            }
            Reachability::Unknown => {}
        }
    }

    /// Identify says `peer`, connected directly at `addr`, offers the relay hop protocol.
    pub fn relay_offered(&mut self, peer: PeerId, addr: Multiaddr, swarm: &mut Swarm<Behaviour>) {
        self.relay_peers.insert(peer, addr);
        if self.reachability == Reachability::Private {
            self.reserve_automatically(swarm);
        }
    }

    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.relay_peers.remove(peer);
    }

    pub fn hole_punched(&mut self, peer: PeerId, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.hole_punches_succeeded += 1;
                tracing::info!(%peer, "hole punched: a direct connection replaces the relayed one");
            }
            Err(error) => {
                self.hole_punches_failed += 1;
                tracing::info!(%peer, %error, "hole punching failed; the relayed connection stays");
            }
        }
    }

    /// Whether `bound`, bound for the listen address `configured`, is announced as an external
    /// address: only a relay's without configured ones, so that the relay hands it to the peers it
    /// reserves for (they are dialed through it). A wildcard stands for every interface but
    /// loopback; an address named outright is taken at its word.
    pub fn announces(&self, configured: &Multiaddr, bound: &Multiaddr) -> bool {
        if !self.config.relay_service || !self.config.external_addresses.is_empty() {
            return false;
        }
        let ip = |addr: &Multiaddr| {
            addr.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            })
        };
        match (ip(configured), ip(bound)) {
            (Some(wildcard), Some(bound)) if wildcard.is_unspecified() => !bound.is_loopback(),
            (Some(_), Some(_)) => true,
            _ => false,
        }
    }

    /// A listener reported an address; `true` if it is one of ours (the relay accepted).
    pub fn listening(&mut self, listener: ListenerId, addr: &Multiaddr) -> bool {
        let Some(reservation) = self.reservations.iter_mut().find(|r| r.listener == Some(listener)) else {
            return false;
        };
        tracing::info!(address = %addr, "reachable through a relay");
        if !reservation.accepted.contains(addr) {
            reservation.accepted.push(addr.clone());
        }
        reservation.failures = 0;
        true
    }

    /// A listener's address went away; `true` if it was one of ours.
    pub fn not_listening(&mut self, listener: ListenerId, addr: &Multiaddr) -> bool {
        let Some(reservation) = self.reservations.iter_mut().find(|r| r.listener == Some(listener)) else {
            return false;
        };
        reservation.accepted.retain(|a| a != addr);
        true
    }

    /// A listener ended; `true` if it was one of ours. A named relay is asked again later.
    pub fn listener_closed(&mut self, listener: ListenerId, reason: &dyn std::fmt::Debug) -> bool {
        let Some(index) = self.reservations.iter().position(|r| r.listener == Some(listener)) else {
            return false;
        };
        let reservation = &mut self.reservations[index];
        tracing::info!(relay = %reservation.circuit, ?reason, "relay reservation ended");
        if reservation.named {
            reservation.listener = None;
            reservation.accepted.clear();
            reservation.failed(Instant::now());
        } else {
            self.reservations.remove(index);
        }
        true
    }

    pub fn status(&self) -> NatStatus {
        NatStatus {
            reachability: self.reachability,
            public_address: self.public_address.clone(),
            relayed_addresses: self.reservations.iter().flat_map(|r| r.accepted.iter().cloned()).collect(),
            relay_service: self.config.relay_service,
            hole_punches_succeeded: self.hole_punches_succeeded,
            hole_punches_failed: self.hole_punches_failed,
        }
    }

    /// Reserves on connected relay peers until MAX_AUTO_RELAYS automatic reservations are held.
    fn reserve_automatically(&mut self, swarm: &mut Swarm<Behaviour>) {
        let held = self.reservations.iter().filter(|r| !r.named).count();
        let candidates: Vec<(PeerId, Multiaddr)> = self
            .relay_peers
            .iter()
            .filter(|(peer, _)| !self.reservations.iter().any(|r| r.relay == **peer))
            .map(|(peer, addr)| (*peer, addr.clone()))
            .take(MAX_AUTO_RELAYS.saturating_sub(held))
            .collect();
        for (relay, addr) in candidates {
            let circuit = without_peer(addr).with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(relay = %circuit, "private behind NAT; asking a peer for a relay reservation");
                    self.reservations.push(Reservation {
                        relay,
                        circuit,
                        named: false,
                        listener: Some(listener),
                        accepted: Vec::new(),
                        retry_at: None,
                        failures: 0,
                    });
                }
                Err(e) => tracing::debug!(relay = %circuit, error = %e, "cannot listen through the relay"),
            }
        }
    }
}

impl Reservation {
    /// Schedules the next try: the first soon (the relay may only have been dialed by someone
    /// else at the same moment), later ones further apart.
    fn failed(&mut self, now: Instant) {
        let wait = RELAY_RETRY_FIRST.saturating_mul(1 << self.failures.min(8)).min(RELAY_RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + wait);
    }
}

/// `addr` without a trailing `/p2p/<peer id>`.
fn without_peer(mut addr: Multiaddr) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn relay_addr() -> Multiaddr {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}").parse().unwrap()
    }

    #[test]
    fn relays_must_name_their_peer_and_not_be_circuits() {
        let good = NatConfig { relays: vec![relay_addr()], ..NatConfig::default() };
        assert_eq!(good.validate(), Ok(()));
        let anonymous =
            NatConfig { relays: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()], ..good.clone() };
        assert!(anonymous.validate().unwrap_err().contains("/p2p/"));
        let circuit = NatConfig { relays: vec![relay_addr().with(Protocol::P2pCircuit)], ..good.clone() };
        assert!(circuit.validate().unwrap_err().contains("without /p2p-circuit"));
        let many = NatConfig { relays: (0..=MAX_RELAYS).map(|_| relay_addr()).collect(), ..good };
        assert!(many.validate().unwrap_err().contains("at most"));
    }

    #[test]
    fn a_relay_announces_what_it_binds_but_loopback_behind_a_wildcard() {
        let addr = |text: &str| text.parse::<Multiaddr>().unwrap();
        let relay = Nat::new(NatConfig { relay_service: true, ..NatConfig::default() });
        let wildcard = addr("/ip4/0.0.0.0/tcp/4001");
        assert!(relay.announces(&wildcard, &addr("/ip4/203.0.113.7/tcp/4001")));
        assert!(!relay.announces(&wildcard, &addr("/ip4/127.0.0.1/tcp/4001")));
        let loopback = addr("/ip4/127.0.0.1/tcp/0");
        assert!(relay.announces(&loopback, &addr("/ip4/127.0.0.1/tcp/4001")));

        let plain = Nat::new(NatConfig::default());
        assert!(!plain.announces(&wildcard, &addr("/ip4/203.0.113.7/tcp/4001")));
        let configured = Nat::new(NatConfig {
            relay_service: true,
            external_addresses: vec![addr("/ip4/198.51.100.1/tcp/4001")],
            ..NatConfig::default()
        });
        assert!(!configured.announces(&wildcard, &addr("/ip4/203.0.113.7/tcp/4001")));
    }

    #[test]
    fn a_relay_address_loses_its_peer_id() {
        assert_eq!(without_peer(relay_addr()), "/ip4/127.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap());
    }
}
