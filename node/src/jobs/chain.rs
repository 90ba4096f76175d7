//! The chain as jobs see it: [`MintChain`] holds exactly the calls admission, minting and
//! confirmation make. [`ChainMinter`] is what the product runs (the alloy [`ChainClient`] and its
//! [`MintBatcher`]); unit tests run a fake.

use alloy::primitives::{Address, U256};
use futures_util::future::BoxFuture;

use crate::chain::{ChainClient, ChainError, MintBatcher, MintJob, MintOutcome, PendingMint};
use crate::provenance::ids::TxHash;

/// The chain calls a job makes.
pub trait MintChain: Send + Sync {
    /// The creator's deposit (and earned fees) in wei, from which the signed fee is paid.
    fn funds_of(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>>;

    /// Whether the token has been minted (by anyone).
    fn token_exists(&self, token_id: U256) -> BoxFuture<'_, Result<bool, ChainError>>;

    /// The transaction that minted the token, if it is minted.
    fn mint_transaction(&self, token_id: U256) -> BoxFuture<'_, Result<Option<TxHash>, ChainError>>;

    /// Sends the mint (perhaps batched with others) without waiting for it to be mined.
    fn send_mint(&self, job: MintJob) -> BoxFuture<'_, Result<PendingMint, ChainError>>;

    /// Waits (bounded) for the mint's receipt: mined and minting the token, reverted, or not yet.
    fn receipt_for(&self, tx_hash: TxHash, token_id: U256) -> BoxFuture<'_, Result<MintOutcome, ChainError>>;

    /// Whether the chain knows the transaction at all, mined or pending.
    fn transaction_known(&self, tx_hash: TxHash) -> BoxFuture<'_, Result<bool, ChainError>>;
}

/// The chain the product mints on: one contract through alloy, mints batched.
pub struct ChainMinter {
    pub client: ChainClient,
    pub batcher: MintBatcher,
}

impl MintChain for ChainMinter {
    fn funds_of(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>> {
        Box::pin(self.client.funds_of(account))
    }

    fn token_exists(&self, token_id: U256) -> BoxFuture<'_, Result<bool, ChainError>> {
        Box::pin(self.client.token_exists(token_id))
    }

    fn mint_transaction(&self, token_id: U256) -> BoxFuture<'_, Result<Option<TxHash>, ChainError>> {
        Box::pin(async move { Ok(self.client.minted_event(token_id).await?.map(|e| TxHash(e.tx_hash))) })
    }

    fn send_mint(&self, job: MintJob) -> BoxFuture<'_, Result<PendingMint, ChainError>> {
        Box::pin(self.batcher.send(job))
    }

    fn receipt_for(&self, tx_hash: TxHash, token_id: U256) -> BoxFuture<'_, Result<MintOutcome, ChainError>> {
        Box::pin(self.client.receipt_for(tx_hash.0, token_id))
    }

    fn transaction_known(&self, tx_hash: TxHash) -> BoxFuture<'_, Result<bool, ChainError>> {
        Box::pin(self.client.transaction_known(tx_hash.0))
    }
}
