//! What can go wrong talking to the chain, with messages that say what to do next, and the
//! contract's custom errors decoded into [`ContractRejection`].

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

use super::bindings::GenmintNFT::GenmintNFTErrors;

/// Errors from [`ChainClient`](super::ChainClient).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChainError {
    #[error("`{url}` is not an RPC URL: {reason}")]
    BadRpcUrl { url: String, reason: String },
    #[error(
        "cannot reach the RPC at {url}: is anvil (or your node) running? `genmint dev` starts one ({detail})"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "no contract at {address} on chain {chain_id}: deploy one with `genmint contracts deploy`, or fix the configured address"
    )]
    NoContract { address: Address, chain_id: u64 },
    #[error("the contract refused: {reason}")]
    Rejected { reason: ContractRejection },
    #[error("this client has no signing key: connect with one to send transactions")]
    ReadOnly,
    #[error("transaction {tx_hash} was mined in block {block_number} but reverted")]
    Reverted { tx_hash: B256, block_number: u64 },
    #[error(
        "no receipt for transaction {tx_hash} after {waited:?}: it may still be pending; check again before resending"
    )]
    ReceiptTimeout { tx_hash: B256, waited: Duration },
    #[error("transaction {tx_hash} succeeded but {detail}")]
    UnexpectedReceipt { tx_hash: B256, detail: String },
    #[error("RPC `{call}` failed: {detail}")]
    Rpc { call: &'static str, detail: String },
    #[error(
        "the metadata CID {cid} is not a CIDv1 of a raw sha2-256 block (`bafkrei…`), the only form the contract stores: keep metadata under the 1 MiB chunk size"
    )]
    UnsupportedMetadataCid { cid: String },
    #[error("the node's attestation signature is not a 65-byte ECDSA signature: {detail}")]
    BadNodeSignature { detail: String },
    #[error("{detail}")]
    Deployment { detail: String },
    #[error(
        "gas is dearer than the node's ceiling: base fee {base_fee} wei plus tip {tip} wei per gas is over [chain] max_fee_per_gas_wei = {ceiling}; waiting for the chain to get cheaper (or raise the ceiling)"
    )]
    FeeAboveCeiling { base_fee: u128, tip: u128, ceiling: u128 },
}

/// Why the contract reverted, decoded from its custom errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractRejection {
    #[error(
        "the creator's signature does not match the request (signed by another key, for another chain or contract, or the request changed after signing)"
    )]
    BadCreatorSignature,
    #[error("the node's signature does not match the attestation or its node address")]
    BadNodeSignature,
    #[error("node operator {node} is not registered or was deactivated: the contract owner must register it")]
    NodeNotRegistered { node: Address },
    #[error("model {model_hash} is not registered or was deactivated: the contract owner must register it")]
    ModelNotRegistered { model_hash: B256 },
    #[error(
        "the request expired at {deadline} (chain time is {now}): sign a new request with a later deadline"
    )]
    RequestExpired { deadline: u64, now: U256 },
    #[error("token {token_id:#x} is already minted: this request was minted before")]
    AlreadyMinted { token_id: U256 },
    #[error(
        "{account} has {available} wei of funds but the request's fee is {needed} wei: the creator must deposit more (`deposit` on the contract)"
    )]
    InsufficientFunds { account: Address, available: U256, needed: U256 },
    #[error("minting is paused by the contract owner; try again after it is resumed")]
    Paused,
    #[error("a batch takes 1 to {max} jobs, this one has {size}")]
    BatchSize { size: U256, max: U256 },
    #[error("the ERC-7007 data does not match token {token_id:#x}")]
    AigcDataMismatch { token_id: U256 },
    #[error("{account} is not the contract owner: only the owner manages the registries")]
    NotOwner { account: Address },
    #[error("token {token_id:#x} does not exist")]
    NonexistentToken { token_id: U256 },
    #[error(
        "the stake is locked until {unlock_at} (unix seconds) with {open_disputes} dispute(s) open against it: ask for it with `requestUnstake`, wait out the delay and the disputes, then withdraw"
    )]
    StakeLocked { unlock_at: u64, open_disputes: u16 },
    #[error(
        "token {token_id:#x} already has a dispute (status {status}: 1 open, 2 fraud confirmed, 3 rejected): a decided dispute is final, an open one takes votes"
    )]
    DisputeExists { token_id: U256, status: u8 },
    #[error(
        "the dispute over token {token_id:#x} takes votes until {deadline} (unix seconds): resolve it after that"
    )]
    WindowOpen { token_id: U256, deadline: u64 },
    #[error(
        "the dispute over token {token_id:#x} stopped taking votes at {deadline} (unix seconds): resolve it"
    )]
    WindowClosed { token_id: U256, deadline: u64 },
    #[error(
        "{account} may not vote on this dispute: voters are active nodes other than the token's node and the challenger"
    )]
    NotAVoter { account: Address },
    #[error("{voter} already voted on the dispute over token {token_id:#x}")]
    AlreadyVoted { token_id: U256, voter: Address },
    #[error("token {token_id:#x} has no open dispute")]
    NoOpenDispute { token_id: U256 },
    #[error("the re-derived digest {digest} is the one the node attested: there is nothing to dispute")]
    NotAMismatch { digest: B256 },
    #[error("contract error {0}")]
    Other(String),
    #[error("revert with unrecognised data {data}")]
    Unrecognised { data: Bytes },
}

impl From<GenmintNFTErrors> for ContractRejection {
    fn from(error: GenmintNFTErrors) -> Self {
        use GenmintNFTErrors as E;
        match error {
            E::BadCreatorSignature(_) => Self::BadCreatorSignature,
            E::BadNodeSignature(_) => Self::BadNodeSignature,
            E::NodeNotRegistered(e) => Self::NodeNotRegistered { node: e.node },
            E::ModelNotRegistered(e) => Self::ModelNotRegistered { model_hash: e.modelHash },
            E::RequestExpired(e) => Self::RequestExpired { deadline: e.deadline, now: e.nowTimestamp },
            E::AlreadyMinted(e) => Self::AlreadyMinted { token_id: e.tokenId },
            E::InsufficientFunds(e) => {
                Self::InsufficientFunds { account: e.account, available: e.available, needed: e.needed }
            }
            E::EnforcedPause(_) => Self::Paused,
            E::BatchSize(e) => Self::BatchSize { size: e.size, max: e.max },
            E::AigcDataMismatch(e) => Self::AigcDataMismatch { token_id: e.tokenId },
            E::OwnableUnauthorizedAccount(e) => Self::NotOwner { account: e.account },
            E::ERC721NonexistentToken(e) => Self::NonexistentToken { token_id: e.tokenId },
            E::StakeLocked(e) => Self::StakeLocked { unlock_at: e.unlockAt, open_disputes: e.openDisputes },
            E::DisputeExists(e) => Self::DisputeExists { token_id: e.tokenId, status: e.status },
            E::WindowOpen(e) => Self::WindowOpen { token_id: e.tokenId, deadline: e.deadline },
            E::WindowClosed(e) => Self::WindowClosed { token_id: e.tokenId, deadline: e.deadline },
            E::NotAVoter(e) => Self::NotAVoter { account: e.account },
            E::AlreadyVoted(e) => Self::AlreadyVoted { token_id: e.tokenId, voter: e.voter },
            E::NoOpenDispute(e) => Self::NoOpenDispute { token_id: e.tokenId },
            E::NotAMismatch(e) => Self::NotAMismatch { digest: e.digest },
            other => Self::Other(format!("{other:?}")),
        }
    }
}

impl ChainError {
    /// Classifies an error from a contract call: a decoded revert, an unreachable RPC, or another
    /// RPC failure.
    pub(super) fn from_contract(call: &'static str, url: &str, error: alloy::contract::Error) -> Self {
        if let Some(decoded) = error.as_decoded_interface_error::<GenmintNFTErrors>() {
            return Self::Rejected { reason: decoded.into() };
        }
        if let Some(data) = error.as_revert_data() {
            return Self::Rejected { reason: ContractRejection::Unrecognised { data } };
        }
        match error {
            alloy::contract::Error::TransportError(e) => Self::from_transport(call, url, e),
            other => Self::Rpc { call, detail: other.to_string() },
        }
    }

    /// Classifies a provider error: an unreachable RPC or another RPC failure.
    pub(super) fn from_transport(call: &'static str, url: &str, error: TransportError) -> Self {
        match error {
            // A connection that fails outright (refused, reset, timed out) arrives as `Custom`;
            // HTTP status errors mean something answered.
            RpcError::Transport(kind @ (TransportErrorKind::Custom(_) | TransportErrorKind::BackendGone)) => {
                Self::Unreachable { url: url.to_owned(), detail: kind.to_string() }
            }
            other => Self::Rpc { call, detail: other.to_string() },
        }
    }

    /// Whether trying again cannot help: the contract refused, or the mint's inputs are in a form
    /// the contract cannot take.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. } | Self::UnsupportedMetadataCid { .. } | Self::BadNodeSignature { .. }
        )
    }

    /// The contract's reason, when the contract refused.
    pub fn rejection(&self) -> Option<&ContractRejection> {
        match self {
            Self::Rejected { reason } => Some(reason),
            _ => None,
        }
    }
}
