//! Integration tests of the node's parts against real services: the chain client on anvil with the
//! real contract, the shared EIP-712 vectors, and the IPFS layer on a real Kubo daemon.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain_anvil;
mod eip712_vectors;
mod hostile;
mod ipfs_kubo;
mod layers;
