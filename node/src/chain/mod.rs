//! The EVM chain client (alloy): deploy `GenmintNFT`, manage its node and model registries, mint,
//! and read provenance back.
//!
//! [`ChainClient`] wraps one contract behind one HTTP RPC endpoint. It speaks in the provenance
//! types of [`crate::provenance::eip712`]; the contract bindings generated from the committed
//! artifact stay private to this module. Reverts come back as [`ChainError::Rejected`] with the
//! contract's custom error decoded into a [`ContractRejection`]. Minting is split into
//! [`ChainClient::send_mint`] and [`ChainClient::receipt_for`] so a caller can persist the
//! transaction hash in between.

mod bindings;
mod client;
mod error;
mod mint;

pub use client::{ChainClient, ModelInfo, Provenance};
pub use error::{ChainError, ContractRejection};
pub use mint::{MintOutcome, MintedEvent, PendingMint};
