//! Peer spot checks: nodes that serve a model re-generate tokens other nodes minted with it and tell
//! the network whether the pixels came out as attested, so a node that mints images its model did
//! not make is found out, visibly.
//!
//! ```text
//! checker (every p2p.spot_check_interval_secs, only while no job waits):
//!   candidates: recent AigcData mints ─► minted by another node, this node's model, not checked
//!               here yet ─► one at random ─► metadata (CID recomputed) ─► the signed request
//!   re-generate at the lowest priority ─► pixel digest ⇄ the mint's attested digest; when they
//!   differ, dHash distance to the minted image: match | similar (other hardware, near) | mismatch
//!   SpotCheck signed by the operator key (signature) ─► job store ─► gossip ─► log
//! receiver: a peer's check (signature and publisher checked by the network) ─► registered checker?
//!   the chain agrees on minter and digest? ─► job store, and gossip forwards it (else rejected)
//! GET /v1/tokens/{id}/provenance ─► report: every check of the token, and any mismatch, visibly
//! ```
//! Spot checks reach the gossip through [`SpotCheckNetwork`] and the chain through
//! [`SpotCheckChain`], traits this module owns: the network layer and the alloy client implement
//! them, unit tests run fakes. The checks live in the node's database ([`SpotCheckStore`]).

mod candidates;
mod checker;
mod receiver;
mod report;
pub mod signature;
mod store;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use futures_util::future::BoxFuture;
use genmint_p2p::NetworkError;
use genmint_p2p::spot_check::{Outcome, SpotCheck, SpotCheckTicket, Verdict};

pub use self::checker::SpotChecker;
pub use self::receiver::receive;
pub use self::report::{PeerCheck, PeerChecks};
pub use self::store::{MAX_SPOT_CHECKS, SpotCheckStore, SpotCheckStoreError};
use crate::chain::{ChainClient, ChainError, MintedEvent, Provenance};
use crate::config::SpotChecksConfig;
use crate::jobs::JobStore;
use crate::jobs::Models;

/// The gossip, as spot checks need it.
pub trait SpotCheckNetwork: Send + Sync {
    /// Tells the network this node's check.
    fn publish(&self, check: SpotCheck) -> BoxFuture<'_, Result<(), NetworkError>>;

    /// Gives the verdict on a peer's check (gossip forwards only accepted ones).
    fn judge(&self, ticket: SpotCheckTicket, verdict: Verdict) -> BoxFuture<'_, Result<(), NetworkError>>;

    /// Whether `operator` is a registered node on the contract.
    fn is_registered(&self, operator: Address) -> BoxFuture<'_, bool>;
}

/// The chain reads spot checks make.
pub trait SpotCheckChain: Send + Sync {
    /// Tokens minted in the latest `blocks` blocks, oldest first.
    fn recently_minted(&self, blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>>;

    fn provenance(&self, token_id: U256) -> BoxFuture<'_, Result<Option<Provenance>, ChainError>>;

    fn minted_event(&self, token_id: U256) -> BoxFuture<'_, Result<Option<MintedEvent>, ChainError>>;

    /// Tokens whose dispute opened in the latest `blocks` blocks, oldest first.
    fn recently_disputed(&self, blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>>;

    /// Votes `digest`, the pixel digest this node re-derived, on the token's dispute if one is open
    /// and takes this node's vote; whether it voted.
    fn vote_if_disputed(&self, token_id: U256, digest: B256) -> BoxFuture<'_, Result<bool, ChainError>>;
}

impl SpotCheckChain for ChainClient {
    fn recently_minted(&self, blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>> {
        Box::pin(ChainClient::recently_minted(self, blocks))
    }

    fn provenance(&self, token_id: U256) -> BoxFuture<'_, Result<Option<Provenance>, ChainError>> {
        Box::pin(ChainClient::provenance(self, token_id))
    }

    fn minted_event(&self, token_id: U256) -> BoxFuture<'_, Result<Option<MintedEvent>, ChainError>> {
        Box::pin(ChainClient::minted_event(self, token_id))
    }

    fn vote_if_disputed(&self, token_id: U256, digest: B256) -> BoxFuture<'_, Result<bool, ChainError>> {
        Box::pin(ChainClient::vote_if_disputed(self, token_id, digest))
    }

    fn recently_disputed(&self, blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>> {
        Box::pin(ChainClient::recently_disputed(self, blocks))
    }
}

/// What checking and judging spot checks need; `S` is the content store minted files are read from.
pub struct SpotCheckParts<S> {
    pub network: Arc<dyn SpotCheckNetwork>,
    pub chain: Arc<dyn SpotCheckChain>,
    pub content: S,
    pub checks: SpotCheckStore,
    /// The job store, to make way for creators' jobs.
    pub jobs: JobStore,
    /// The models this node serves: it checks tokens of these only.
    pub models: Models,
    pub operator: PrivateKeySigner,
    pub domain: Eip712Domain,
    pub chain_id: u64,
    pub contract: Address,
    /// How this node checks (`[spot_checks]`).
    pub spot_checks: SpotChecksConfig,
}

/// Logs a check, made by `whom`: a mismatch as a warning.
fn log(check: &SpotCheck, whom: &str) {
    match check.outcome {
        Outcome::Match => tracing::info!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            "spot check by {whom}: the re-generated pixels match the attested ones"
        ),
        Outcome::Similar => tracing::info!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            perceptual_distance = ?check.perceptual_distance,
            minted_device = %check.minted_envelope.device_class,
            checker_device = %check.checker_envelope.device_class,
            "spot check by {whom}: other hardware, the same picture (not bit-exact)"
        ),
        Outcome::Mismatch => tracing::warn!(
            token = %check.token_id,
            minted_by = %check.minted_by,
            checker = %check.checker,
            expected = %check.expected_pixel_digest,
            regenerated = %check.regenerated_pixel_digest,
            perceptual_distance = ?check.perceptual_distance,
            same_envelope = check.same_envelope(),
            minted_device = %check.minted_envelope.device_class,
            checker_device = %check.checker_envelope.device_class,
            "spot check by {whom}: the re-generated pixels differ from the attested ones"
        ),
    }
}
