//! What the node knows about each connected peer: its connections, what identify and ping said.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// The most listen addresses kept (and handed to Kademlia) per peer.
pub(super) const MAX_PEER_ADDRS: usize = 16;

#[derive(Default)]
struct Peer {
    connections: Vec<(ConnectionId, Multiaddr)>,
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
}

impl PeerBook {
    pub fn connected(&mut self, peer: PeerId, connection: ConnectionId, remote: Multiaddr) {
        self.peers.entry(peer).or_default().connections.push((connection, remote));
    }

    pub fn closed(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.connections.retain(|(id, _)| *id != connection);
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

    pub fn pinged(&mut self, peer: PeerId, rtt: Duration) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.rtt = Some(rtt);
        }
    }

    pub fn list(&self) -> impl Iterator<Item = PeerSummary> + '_ {
        self.peers.iter().map(|(peer_id, entry)| {
            let mut addresses = entry.listen_addrs.clone();
            for (_, remote) in &entry.connections {
                if !addresses.contains(remote) {
                    addresses.push(remote.clone());
                }
            }
            PeerSummary {
                peer_id: *peer_id,
                addresses,
                rtt: entry.rtt,
                agent_version: entry.agent_version.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    #[test]
    fn a_peer_lives_from_its_first_connection_to_its_last() {
        let mut book = PeerBook::default();
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let quic: Multiaddr = "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap();
        let (first, second) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        book.connected(peer, first, tcp.clone());
        book.connected(peer, second, quic.clone());
        book.identified(peer, "genmint/0.1.0".into(), std::slice::from_ref(&quic));
        book.pinged(peer, Duration::from_millis(3));

        let listed: Vec<_> = book.list().collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addresses, vec![quic, tcp]);
        assert_eq!(listed[0].rtt, Some(Duration::from_millis(3)));
        assert_eq!(listed[0].agent_version.as_deref(), Some("genmint/0.1.0"));

        book.closed(peer, first);
        assert_eq!(book.list().count(), 1);
        book.closed(peer, second);
        assert_eq!(book.list().count(), 0);
    }
}
