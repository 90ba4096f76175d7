//! Content that outlives its node: every token this node mints is pinned by
//! `[replication] copies` other nodes, each of which signs a receipt, so the image and metadata
//! stay on IPFS when the minting node and its Kubo are gone.
//!
//! ```text
//! minter (replicator): job minted here ─► replication_pending (durable) ─► each round: peers
//!   ranked by rendezvous hash of (token, peer id) over registered adverts, those holding it skipped
//!   ─► PinRequest(token, CIDs, Kubo addresses holding it now, receipts so far) ─► receipts
//!   checked (signature, holder = the peer's operator, CIDs) and stored ─► short: backoff, again;
//!   enough: the holders are told each other's receipts
//! holder: PinRequest ─► chain: token minted with exactly these CIDs? ─► budget
//!   (max_pinned_bytes) ─► its Kubo connects to the providers and fetches both files (CIDs
//!   recomputed here, capped at the budget left) ─► pins them ─► signed PinReceipt
//! remote pinning services ([[replication.remote]]): this node's Kubo is asked to pin both files
//!   there (Kubo speaks the Pinning Service API), at once after the mint
//! GET /v1/tokens/{id}/holders, provenance, `genmint verify`: the receipts, each signature
//!   checked, whether this node's Kubo holds the content now, and the remote pins' status
//! ```
//! The network is reached through [`ReplicationNetwork`] and the chain through
//! [`ReplicationChain`]; the network layer and the alloy client implement them, unit tests run
//! fakes. Receipts and the tokens still short of copies live in the node's database.

mod holder;
mod holders;
mod receipt;
mod replicator;
mod store;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use futures_util::future::BoxFuture;
use genmint_p2p::pin::{PinReceipt, PinRequest};

pub use self::holder::{InboundPin, serve_holder};
pub use self::holders::{
    ContentHolders, HolderView, RemotePinView, holders_of, pinned_here, views as holder_views,
};
pub use self::receipt::{covers, verify as verify_receipt};
pub use self::replicator::Replicator;
pub use self::store::{Pending, ReplicationStore, ReplicationStoreError};
use crate::chain::{ChainClient, ChainError};
use crate::config::ReplicationConfig;
use crate::metrics::ReplicationMetrics;

/// A peer that may hold copies: its genmint peer id and the operator its advert binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub peer_id: String,
    pub operator: Address,
}

/// How a peer answered a pin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAnswer {
    Pinned(PinReceipt),
    /// `code` names the reason (`over_budget`, `not_minted`, `wrong_cids`, `unavailable`,
    /// `same_kubo`, `disabled`, `busy`, `bad_request`).
    Refused {
        code: String,
        message: String,
    },
}

/// The network, as replication needs it.
pub trait ReplicationNetwork: Send + Sync {
    /// This node's genmint peer id.
    fn local_peer_id(&self) -> String;

    /// Registered peers with a fresh advert.
    fn candidates(&self) -> BoxFuture<'_, Vec<Candidate>>;

    /// Asks `peer` to pin; `Err` when it could not be asked or did not answer.
    fn ask_to_pin(&self, peer: &str, request: PinRequest) -> BoxFuture<'_, Result<PinAnswer, String>>;

    /// Whether `operator` is a registered node on the contract.
    fn is_registered(&self, operator: Address) -> BoxFuture<'_, bool>;
}

/// The chain, as replication needs it.
pub trait ReplicationChain: Send + Sync {
    /// The token's image CID (its mint event's) and metadata CID (its record's); `None` when the
    /// token does not exist.
    fn token_cids(&self, token: U256) -> BoxFuture<'_, Result<Option<(String, String)>, ChainError>>;
}

impl ReplicationChain for ChainClient {
    fn token_cids(&self, token: U256) -> BoxFuture<'_, Result<Option<(String, String)>, ChainError>> {
        Box::pin(async move {
            let Some(record) = self.provenance(token).await? else { return Ok(None) };
            let Some(event) = self.minted_event(token).await? else { return Ok(None) };
            Ok(Some((event.image_cid, record.metadata_cid)))
        })
    }
}

/// What both sides of replication need; `S` is this node's content store (its Kubo).
pub struct ReplicationParts<S> {
    pub network: Arc<dyn ReplicationNetwork>,
    pub chain: Arc<dyn ReplicationChain>,
    pub content: S,
    pub store: ReplicationStore,
    pub config: ReplicationConfig,
    pub operator: PrivateKeySigner,
    pub chain_id: u64,
    pub contract: Address,
    /// How long a holder may take over one request (the askers give up after about this long).
    pub hold_timeout: std::time::Duration,
    pub metrics: ReplicationMetrics,
}

/// Unix seconds now.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
