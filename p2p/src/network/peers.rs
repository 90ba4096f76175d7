//! What the node knows about each connected peer: its connections, what identify and ping said.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// The most listen addresses kept (and handed to Kademlia) per peer.
pub(super) const MAX_PEER_ADDRS: usize = 16;

/// One connection: its remote address, and whether it runs through a relay (the remote address
/// of a relayed connection the peer opened is only `/p2p/<peer id>`).
struct Connection {
    id: ConnectionId,
    remote: Multiaddr,
    relayed: bool,
}

struct Peer {
    connections: Vec<Connection>,
    /// When the first of its connections opened, or a job message last went either way.
    active: Instant,
    listen_addrs: Vec<Multiaddr>,
    rtt: Option<Duration>,
    agent_version: Option<String>,
}

/// Connected peers; an entry lives from a peer's first connection to its last one closing.
#[derive(Default)]
pub(super) struct PeerBook {
    peers: HashMap<PeerId, Peer>,
}

/// A peer as [`PeerBook::list`] reports it.
pub(super) struct PeerSummary {
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
    pub rtt: Option<Duration>,
    pub agent_version: Option<String>,
    /// Every connection runs through a relay.
    pub relayed: bool,
}

impl PeerBook {
    pub fn connected(&mut self, peer: PeerId, id: ConnectionId, remote: Multiaddr, relayed: bool) {
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            connections: Vec::new(),
            active: Instant::now(),
            listen_addrs: Vec::new(),
            rtt: None,
            agent_version: None,
        });
        entry.connections.push(Connection { id, remote, relayed });
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// A job message went to or came from `peer`: its connection is in use.
    pub fn touched(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.active = Instant::now();
        }
    }

    /// The peers to disconnect so that `keep` remain: none while at most `high` are connected;
    /// past it, the longest idle first among those not in `protected` and idle for more than
    /// `grace` (a peer just met may be about to take a job or join the mesh).
    pub fn surplus(
        &self,
        (keep, high): (usize, usize),
        protected: &HashSet<PeerId>,
        grace: Duration,
    ) -> Vec<PeerId> {
        if self.peers.len() <= high {
            return Vec::new();
        }
        let now = Instant::now();
        let mut candidates: Vec<(&PeerId, Instant)> = self
            .peers
            .iter()
            .filter(|(peer, entry)| !protected.contains(peer) && now.duration_since(entry.active) > grace)
            .map(|(peer, entry)| (peer, entry.active))
            .collect();
        candidates.sort_by_key(|(_, active)| *active);
        let excess = self.peers.len().saturating_sub(keep);
        candidates.into_iter().take(excess).map(|(peer, _)| *peer).collect()
    }

    pub fn closed(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.connections.retain(|c| c.id != connection);
            if entry.connections.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    pub fn identified(&mut self, peer: PeerId, agent_version: String, listen_addrs: &[Multiaddr]) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.agent_version = Some(agent_version);
            entry.listen_addrs = listen_addrs.iter().take(MAX_PEER_ADDRS).cloned().collect();
        }
    }

    /// The remote address of one of the connections to `peer` that runs through no relay.
    pub fn direct_address(&self, peer: &PeerId) -> Option<Multiaddr> {
        let entry = self.peers.get(peer)?;
        entry.connections.iter().find(|c| !c.relayed).map(|c| c.remote.clone())
    }

    pub fn pinged(&mut self, peer: PeerId, rtt: Duration) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.rtt = Some(rtt);
        }
    }

    pub fn list(&self) -> impl Iterator<Item = PeerSummary> + '_ {
        self.peers.iter().map(|(peer_id, entry)| {
            let mut addresses = entry.listen_addrs.clone();
            for Connection { remote, relayed, .. } in &entry.connections {
                if !relayed && !addresses.contains(remote) {
                    addresses.push(remote.clone());
                }
            }
            PeerSummary {
                peer_id: *peer_id,
                addresses,
                rtt: entry.rtt,
                agent_version: entry.agent_version.clone(),
                relayed: entry.connections.iter().all(|c| c.relayed),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    #[test]
    fn past_the_high_watermark_the_longest_idle_unprotected_peers_go() {
        let mut book = PeerBook::default();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let peers: Vec<PeerId> = (0..6).map(|_| Keypair::generate_ed25519().public().to_peer_id()).collect();
        for (i, peer) in peers.iter().enumerate() {
            book.connected(*peer, ConnectionId::new_unchecked(i), addr.clone(), false);
            // Connected a minute ago, one second apart: peers[0] has been idle longest.
            book.peers.get_mut(peer).unwrap().active = Instant::now() - Duration::from_secs(60 - i as u64);
        }
        let grace = Duration::from_secs(30);
        assert!(book.surplus((3, 6), &HashSet::new(), grace).is_empty(), "at the high watermark");
        let protected = HashSet::from([peers[0]]);
        assert_eq!(book.surplus((3, 5), &protected, grace), vec![peers[1], peers[2], peers[3]]);
        book.touched(&peers[1]);
        assert_eq!(book.surplus((3, 5), &protected, grace), vec![peers[2], peers[3], peers[4]], "in use");
        assert_eq!(book.surplus((3, 5), &protected, Duration::from_secs(58)), vec![peers[2]], "in grace");
    }

    #[test]
    fn a_peer_lives_from_its_first_connection_to_its_last() {
        let mut book = PeerBook::default();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let quic: Multiaddr = "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap();
        let (first, second) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        book.connected(peer, first, tcp.clone(), false);
        book.connected(peer, second, quic.clone(), false);
        book.identified(peer, "genmint/0.1.0".into(), std::slice::from_ref(&quic));
        book.pinged(peer, Duration::from_millis(3));

        let listed: Vec<_> = book.list().collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addresses, vec![quic, tcp.clone()]);
        assert_eq!(listed[0].rtt, Some(Duration::from_millis(3)));
        assert_eq!(listed[0].agent_version.as_deref(), Some("genmint/0.1.0"));
        assert!(!listed[0].relayed);
        assert_eq!(book.direct_address(&peer), Some(tcp));

        book.closed(peer, first);
        assert_eq!(book.list().count(), 1);
        book.closed(peer, second);
        assert_eq!(book.list().count(), 0);
    }

    #[test]
    fn a_peer_reached_only_through_a_relay_is_relayed() {
        let mut book = PeerBook::default();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let relay = Keypair::generate_ed25519().public().to_peer_id();
        let circuit: Multiaddr =
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{peer}").parse().unwrap();
        book.connected(peer, ConnectionId::new_unchecked(1), circuit, true);
        assert!(book.list().all(|p| p.relayed));
        assert_eq!(book.direct_address(&peer), None);
        let punched: Multiaddr = "/ip4/127.0.0.1/tcp/5001".parse().unwrap();
        book.connected(peer, ConnectionId::new_unchecked(2), punched.clone(), false);
        assert!(book.list().all(|p| !p.relayed));
        assert_eq!(book.direct_address(&peer), Some(punched));
    }
}
