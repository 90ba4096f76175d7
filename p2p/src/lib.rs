//! The genmint peer-to-peer network.
//!
//! For now this crate holds the versioned wire types that nodes exchange (`wire`); the libp2p
//! behaviour, the swarm actor with its cloneable handle, adverts and job forwarding build on them.
//! It depends on no other genmint crate: the node converts its own types into these at the edge.

pub mod wire;
