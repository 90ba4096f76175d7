//! The gallery's indexer: a task that reads the contract's mint events from the block after the
//! last one stored up to the chain's head, a bounded span per query, looks each token up (the
//! chain's record, then its metadata and image on IPFS: the image for its fingerprint) and stores
//! the span's tokens with the next block.

use std::time::Duration;

use tracing::{debug, warn};

use super::{GalleryStore, GalleryStoreError, GalleryToken};
use crate::chain::{ChainClient, ChainError, MintLog};
use crate::ipfs::{Cid, ContentStore};
use crate::provenance::ids::JobId;
use crate::provenance::metadata::TokenMetadata;
use crate::provenance::{fingerprint, png};

/// How often the indexer looks for new blocks.
pub const INDEX_INTERVAL: Duration = Duration::from_secs(2);
/// Blocks one log query covers (RPC providers cap ranges).
const SPAN: u64 = 10_000;
/// The largest metadata document read.
const MAX_METADATA_BYTES: usize = 1 << 20;
/// The largest pinned image read for its fingerprint.
const MAX_IMAGE_BYTES: usize = 32 << 20;
/// How long one token's metadata (or image) may take to arrive before the token is listed without it.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum IndexError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] GalleryStoreError),
}

/// Indexes the contract's tokens into the gallery store.
pub struct GalleryIndexer<C> {
    pub chain: ChainClient,
    pub content: C,
    pub store: GalleryStore,
}

impl<C: ContentStore + Sync> GalleryIndexer<C> {
    /// Catches up with the chain every [`INDEX_INTERVAL`], until the task is stopped.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.catch_up().await {
                warn!(error = %e, "indexing the gallery failed; trying again shortly");
            }
            tokio::time::sleep(INDEX_INTERVAL).await;
        }
    }

    /// Reads every block from the stored next block to the head.
    async fn catch_up(&self) -> Result<(), IndexError> {
        let head = self.chain.head_block().await?;
        let mut next = self.store.next_block().await?;
        while next <= head {
            let end = head.min(next.saturating_add(SPAN - 1));
            let mut tokens = Vec::new();
            for mint in self.chain.mints_in(next..=end).await? {
                if let Some(token) = self.describe(mint).await? {
                    tokens.push(token);
                }
            }
            debug!(from = next, to = end, tokens = tokens.len(), "indexed blocks");
            self.store.record(tokens, end + 1).await?;
            next = end + 1;
        }
        Ok(())
    }

    /// The token a mint event names, from the chain's record and the metadata it points to.
    async fn describe(&self, mint: MintLog) -> Result<Option<GalleryToken>, IndexError> {
        let Some(record) = self.chain.provenance(mint.token_id).await? else {
            // Not on chain (any more): nothing to list.
            return Ok(None);
        };
        let metadata_cid: Option<Cid> = record.metadata_cid.parse().ok();
        let metadata = match &metadata_cid {
            Some(cid) => self.metadata(cid).await,
            None => None,
        };
        let provenance = metadata.as_ref().map(|m| &m.provenance);
        let fingerprint = match &mint.image_cid {
            Some(cid) => self.fingerprint(cid).await,
            None => None,
        };
        Ok(Some(GalleryToken {
            id: JobId::of_token(mint.token_id),
            token_id: mint.token_id,
            block_number: mint.block_number,
            log_index: mint.log_index,
            tx_hash: mint.tx_hash,
            creator: record.creator,
            node: record.node,
            image_cid: mint.image_cid,
            metadata_cid,
            model_hash: provenance.and_then(|p| p.model_hash.parse().ok()),
            model_name: provenance.map(|p| p.model_name.clone()),
            prompt: metadata.as_ref().map(|m| m.prompt.clone()),
            fingerprint,
        }))
    }

    /// The token's metadata, or `None` (logged) when it cannot be had in time.
    async fn metadata(&self, cid: &Cid) -> Option<TokenMetadata> {
        let bytes = self.read(cid, MAX_METADATA_BYTES, "metadata").await?;
        serde_json::from_slice(&bytes)
            .inspect_err(|e| warn!(%cid, error = %e, "a token's metadata is not genmint metadata"))
            .ok()
    }

    /// The dHash of the token's pinned image, or `None` (logged) when it cannot be had in time.
    async fn fingerprint(&self, cid: &Cid) -> Option<u64> {
        let bytes = self.read(cid, MAX_IMAGE_BYTES, "image").await?;
        tokio::task::spawn_blocking(move || png::decode(&bytes).map(|image| fingerprint::dhash(&image)))
            .await
            .ok()?
            .inspect_err(|e| warn!(%cid, error = %e, "a token's image is not a PNG genmint reads"))
            .ok()
    }

    /// The bytes of `cid` (the token's `what`), or `None` (logged) when they cannot be had in time.
    async fn read(&self, cid: &Cid, max_bytes: usize, what: &str) -> Option<Vec<u8>> {
        match tokio::time::timeout(METADATA_TIMEOUT, self.content.cat(cid, max_bytes)).await {
            Ok(Ok(bytes)) => Some(bytes),
            Ok(Err(e)) => {
                warn!(%cid, error = %e, "cannot read a token's {}; indexing it without", what);
                None
            }
            Err(_) => {
                warn!(%cid, "a token's {} did not arrive in time; indexing it without", what);
                None
            }
        }
    }
}
