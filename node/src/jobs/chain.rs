//! The chain as jobs see it: [`MintChain`] holds exactly the calls admission, minting and
//! confirmation make. [`ChainMinter`] is what the product runs (the alloy [`ChainClient`] and its
//! [`MintBatcher`]); unit tests run a fake.

use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use futures_util::future::BoxFuture;

use crate::chain::{ChainClient, ChainError, MintBatcher, MintJob, MintOutcome, PendingMint, Replacement};
use crate::ipfs::Cid;
use crate::provenance::ids::{PixelDigest, TxHash};

/// A token's mint as the contract records it: what a job of an already minted request shows,
/// whichever node minted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMint {
    pub tx_hash: TxHash,
    /// The operator of the node that generated and minted the token.
    pub node: Address,
    pub image_cid: Cid,
    pub metadata_cid: Cid,
    pub pixel_digest: PixelDigest,
    /// That node's attestation signature, 65 bytes.
    pub node_signature: Bytes,
}

/// When a mint counts as final on this chain: how many confirmations (the mint's own block
/// included), and how often a confirming mint looks at the chain again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finality {
    pub confirmations: u64,
    pub poll: Duration,
}

/// The chain calls a job makes.
pub trait MintChain: Send + Sync {
    /// The creator's deposit (and earned fees) in wei, from which the signed fee is paid.
    fn funds_of(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>>;

    /// The token's mint (by any node), or `None` while it is not minted.
    fn minted(&self, token_id: U256) -> BoxFuture<'_, Result<Option<ChainMint>, ChainError>>;

    /// Sends the mint (perhaps batched with others) without waiting for it to be mined.
    fn send_mint(&self, job: MintJob) -> BoxFuture<'_, Result<PendingMint, ChainError>>;

    /// Waits (bounded) for the mint's receipt: mined and minting the token, reverted, or not yet.
    fn receipt_for(&self, tx_hash: TxHash, token_id: U256) -> BoxFuture<'_, Result<MintOutcome, ChainError>>;

    /// The mint's receipt as the chain has it now, without waiting: `None` while it is pending, or
    /// once a reorg took its block away.
    fn mint_receipt(
        &self,
        tx_hash: TxHash,
        token_id: U256,
    ) -> BoxFuture<'_, Result<Option<MintOutcome>, ChainError>>;

    /// The number of the newest block.
    fn head_block(&self) -> BoxFuture<'_, Result<u64, ChainError>>;

    /// Whether the chain knows the transaction at all, mined or pending.
    fn transaction_known(&self, tx_hash: TxHash) -> BoxFuture<'_, Result<bool, ChainError>>;

    /// Replaces a stuck pending transaction (same nonce, fees raised): by the same call, or by a
    /// transfer that frees the nonce. `None`: it is no longer pending.
    fn replace(
        &self,
        tx_hash: TxHash,
        with: Replacement,
    ) -> BoxFuture<'_, Result<Option<TxHash>, ChainError>>;
}

/// The chain the product mints on: one contract through alloy, mints batched.
pub struct ChainMinter {
    pub client: ChainClient,
    pub batcher: MintBatcher,
}

impl ChainMinter {
    async fn read_mint(&self, token_id: U256) -> Result<Option<ChainMint>, ChainError> {
        let Some(record) = self.client.provenance(token_id).await? else { return Ok(None) };
        let Some(event) = self.client.minted_event(token_id).await? else { return Ok(None) };
        let cid = |what: &str, text: &str| {
            text.parse::<Cid>().map_err(|e| ChainError::Rpc {
                call: "provenance",
                detail: format!("token {token_id:#x} records an unreadable {what} CID {text:?}: {e}"),
            })
        };
        Ok(Some(ChainMint {
            tx_hash: TxHash(event.tx_hash),
            node: record.node,
            image_cid: cid("image", &event.image_cid)?,
            metadata_cid: cid("metadata", &record.metadata_cid)?,
            pixel_digest: PixelDigest(event.pixel_digest),
            node_signature: event.node_signature,
        }))
    }
}

impl MintChain for ChainMinter {
    fn funds_of(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>> {
        Box::pin(self.client.funds_of(account))
    }

    fn minted(&self, token_id: U256) -> BoxFuture<'_, Result<Option<ChainMint>, ChainError>> {
        Box::pin(self.read_mint(token_id))
    }

    fn send_mint(&self, job: MintJob) -> BoxFuture<'_, Result<PendingMint, ChainError>> {
        Box::pin(self.batcher.send(job))
    }

    fn receipt_for(&self, tx_hash: TxHash, token_id: U256) -> BoxFuture<'_, Result<MintOutcome, ChainError>> {
        Box::pin(self.client.receipt_for(tx_hash.0, token_id))
    }

    fn mint_receipt(
        &self,
        tx_hash: TxHash,
        token_id: U256,
    ) -> BoxFuture<'_, Result<Option<MintOutcome>, ChainError>> {
        Box::pin(self.client.find_mint_receipt(tx_hash.0, token_id))
    }

    fn head_block(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(self.client.head_block())
    }

    fn transaction_known(&self, tx_hash: TxHash) -> BoxFuture<'_, Result<bool, ChainError>> {
        Box::pin(self.client.transaction_known(tx_hash.0))
    }

    fn replace(
        &self,
        tx_hash: TxHash,
        with: Replacement,
    ) -> BoxFuture<'_, Result<Option<TxHash>, ChainError>> {
        Box::pin(async move { Ok(self.client.replace(tx_hash.0, with).await?.map(TxHash)) })
    }
}
