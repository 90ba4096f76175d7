//! Provenance types shared by every part of the node: data, hashing and signatures.
//!
//! `eip712` holds the signed request and attestation, `metadata` the pinned token metadata, `png`
//! the deterministic image encoding, `credentials` the C2PA manifest embedded in every pinned image
//! and the node's signing certificate (the only module here that touches files).

pub mod credentials;
pub mod eip712;
pub mod metadata;
pub mod png;
