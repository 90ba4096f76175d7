//! The EVM chain client (alloy): deploy `GenmintNFT`, manage its registries and deposits, mint, and
//! read provenance back.
//!
//! [`ChainClient`] wraps one contract behind one HTTP RPC endpoint, or several with
//! [`Failover`]. It speaks in the provenance
//! types of [`crate::provenance::eip712`]; the contract bindings generated from the committed
//! artifact stay private to this module. Reverts come back as [`ChainError::Rejected`] with the
//! contract's custom error decoded into a [`ContractRejection`]. Minting is split into
//! [`ChainClient::send_mint`] and [`ChainClient::receipt_for`] so a caller can persist the
//! transaction hash in between; [`MintBatcher`] sends the mints that are ready together as one
//! `mintBatch` transaction. `disputes` holds open membership (stake) and disputes of forged tokens.

mod batch;
mod bindings;
mod client;
mod disputes;
mod error;
mod events;
mod failover;
mod fees;
mod history;
mod mint;

pub use batch::{MAX_BATCH_JOBS, MintBatcher};
pub use bindings::abi_encode_request;
pub use client::{ChainClient, DEFAULT_ROYALTY_BPS, Deployment, ModelInfo, Provenance, Replacement};
pub use disputes::{DisputeEvidence, DisputeState, DisputeStatus, StakeInfo};
pub use error::{ChainError, ContractRejection};
pub use events::MintLog;
pub use failover::Failover;
pub use fees::{BUMP_PER_MILLE, FeePolicy, Fees};
pub use mint::{MintJob, MintOutcome, MintedEvent, PendingMint};

/// The committed contract artifact the bindings are generated from (ABI, bytecode, compiler).
pub const ARTIFACT_JSON: &str = include_str!("../../../contracts/artifacts/GenmintNFT.json");
