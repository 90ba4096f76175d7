//! Provenance types shared by every part of the node: data, hashing and signatures.
//!
//! `ids` names the 32-byte identifiers (job id, pixel digest, transaction hash), `eip712` holds the
//! signed request and attestation, `metadata` the pinned token metadata, `png` the deterministic
//! image encoding, `credentials` the C2PA manifest embedded in every pinned image and the node's
//! signing certificate (the only module here that touches files), `watermark` the invisible mark
//! in the pixels that leads a copy back to its token, `fingerprint` the perceptual hash copies are
//! matched by.

pub mod credentials;
pub mod eip712;
pub mod fingerprint;
pub mod ids;
pub mod metadata;
pub mod png;
pub mod watermark;
