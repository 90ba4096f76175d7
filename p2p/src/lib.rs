//! The genmint peer-to-peer network: how nodes find each other, tell each other what they offer,
//! and hand each other jobs. It depends on no other genmint crate; the node converts its own types
//! into these at the edge.
//!
//! ```text
//!            NetworkHandle (Clone) ── bounded commands, oneshot replies ──┐
//!                                                                         ▼
//!  node ◄── bounded NetworkEvents ── swarm task (owns the libp2p Swarm, never waits on the node)
//!                                     │ TCP + QUIC(v1), noise, yamux, circuit relay v2 (client)
//!                                     ├ identify "/genmint/id/1", ping (peer info, round trips)
//!                                     ├ Kademlia "/genmint/kad/1": peer discovery, model providers
//!                                     ├ mDNS (optional): peers on the LAN
//!                                     ├ gossipsub "genmint/adverts/1/{network id}": signed adverts
//!                                     ├ gossipsub "genmint/spot-checks/1/{network id}": spot checks
//!                                     ├ request-response "/genmint/job/1": Submit/Status/Cancel/Update/Pin
//!                                     └ AutoNAT v1, relay v2 (server, optional), DCUtR: nodes behind NAT
//! ```
//!
//! - [`wire`]: the job protocol's messages, in a versioned envelope, at most
//!   [`wire::MAX_MESSAGE_BYTES`]; on a stream each is framed by a length prefix that is checked
//!   before the body is read.
//! - [`advert`]: what a node offers, bound to its operator by a signature the node's
//!   [`advert::AdvertVerifier`] checks. A node republishes its advert every `advert_interval`, or
//!   less often in a large network so that the whole network publishes about
//!   `network_advert_rate` a second (the same sequence says "still here", a higher one is a
//!   change), and announces its models as Kademlia provider records. Receivers validate every
//!   advert before gossip forwards it (a rejected one goes no further than the first node), keep
//!   the newest per peer, and drop it when it is not repeated within `advert_ttl` (or three of
//!   the refresh intervals it announces, when longer).
//! - [`spot_check`]: a node's re-generation of a token another node minted, signed by its
//!   operator and checked by the node's [`spot_check::SpotCheckVerifier`]. The network delivers a
//!   peer's check only when the publisher's advert binds it to the checking operator; the node
//!   gives the final verdict ([`NetworkHandle::judge_spot_check`]) before gossip forwards it.
//! - [`pin`]: a request to keep a copy of a token's content, and the holder's signed receipt;
//!   the node checks both, the network only carries them.
//! - `bounded_json`: the size-bounded JSON those three are encoded in; bytes over a format's
//!   limit are refused before they are parsed.
//! - `network`: [`spawn`] starts the swarm task and returns a [`NetworkHandle`] and the event
//!   receiver. Inbound job requests arrive as [`NetworkEvent::InboundJob`] with a [`Responder`];
//!   [`NetworkHandle::request`] gives up after `request_timeout`, while the answering side keeps
//!   the stream open longer, so that a slow answer reads as a timeout, not as a broken stream.
//!
//! - behind NAT ([`NatConfig`], [`NetworkHandle::nat_status`]): AutoNAT finds out whether peers
//!   can dial the node; a private node holds circuit relay v2 reservations (on the relays the
//!   operator names, or on up to two connected peers that offer the service), its advert and
//!   identify carry the `/p2p-circuit` addresses, peers dial it through the relay, and DCUtR tries
//!   to punch a direct connection beside the relayed one.
//!
//! Everything is bounded: command and event queues, pending requests, answers, dials and
//! lookups, message and advert sizes, connections. When the node falls behind, inbound jobs are
//! answered `busy` rather than queued without end.

pub mod advert;
mod behaviour;
mod bounded_json;
mod codec;
pub mod memory_link;
mod network;
pub mod pin;
mod ping;
pub mod spot_check;
pub mod wire;

#[cfg(test)]
mod hostile;
#[cfg(any(test, feature = "hostile-input"))]
pub mod hostile_input;

pub use bounded_json::Gossiped;
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use network::{
    InboundJob, MAX_RELAYS, NatConfig, NatStatus, NetworkConfig, NetworkError, NetworkEvent, NetworkHandle,
    PeerInfo, Reachability, Responder, Verifiers, spawn, spawn_in_memory, spawn_with,
};
