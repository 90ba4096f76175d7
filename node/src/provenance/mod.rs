//! Provenance types shared by every part of the node; pure data and hashing, no I/O.
//!
//! `eip712` holds the signed request and attestation, `metadata` the pinned token metadata, `png`
//! the deterministic image encoding.

pub mod eip712;
pub mod metadata;

pub mod png;
