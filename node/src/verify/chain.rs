//! [`TokenChain`]: the chain reads verification makes, and nothing else, so the checks can run
//! against an in-memory chain in tests. [`ChainClient`] is the implementation the product runs; it
//! only delegates.

use std::future::Future;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::Eip712Domain;

use crate::chain::{ChainClient, ChainError, DisputeState, MintedEvent, ModelInfo, Provenance};
use crate::provenance::eip712::{self, GenerationRequest};
use crate::provenance::watermark::WatermarkTag;

/// One deployed `GenmintNFT` as verification reads it: the token's record and mint event, the
/// contract's own ERC-7007 `verify`, and the registries at a block (`None`: the latest).
pub trait TokenChain {
    /// The chain the contract is on.
    fn chain_id(&self) -> u64;

    /// The contract's address.
    fn address(&self) -> Address;

    /// The EIP-712 domain requests and attestations for this contract are signed under.
    fn domain(&self) -> Eip712Domain {
        eip712::domain(self.chain_id(), self.address())
    }

    /// The token's owner, or `None` if the token does not exist.
    fn owner_of(&self, token_id: U256) -> impl Future<Output = Result<Option<Address>, ChainError>> + Send;

    /// The token's stored record, or `None` if the token does not exist.
    fn provenance(
        &self,
        token_id: U256,
    ) -> impl Future<Output = Result<Option<Provenance>, ChainError>> + Send;

    /// The `AigcData` event of the token's mint, or `None` if the token does not exist.
    fn minted_event(
        &self,
        token_id: U256,
    ) -> impl Future<Output = Result<Option<MintedEvent>, ChainError>> + Send;

    /// The contract's ERC-7007 `verify` of a request with the mint event's `aigcData` and `proof`.
    fn verify_aigc(
        &self,
        request: &GenerationRequest,
        aigc_data: &Bytes,
        proof: &Bytes,
    ) -> impl Future<Output = Result<bool, ChainError>> + Send;

    /// Whether `operator` was a registered, active node at `block`.
    fn is_node_at(
        &self,
        operator: Address,
        block: Option<u64>,
    ) -> impl Future<Output = Result<bool, ChainError>> + Send;

    /// What the model registry recorded for a model at `block` (inactive if it was not registered).
    fn model_info_at(
        &self,
        model_hash: B256,
        block: Option<u64>,
    ) -> impl Future<Output = Result<ModelInfo, ChainError>> + Send;

    /// The token whose mint event names `image_cid`, searching from `from_block` on.
    fn token_by_image_cid(
        &self,
        image_cid: &str,
        from_block: u64,
    ) -> impl Future<Output = Result<Option<U256>, ChainError>> + Send;

    /// The token's on-chain dispute (status `None` if never disputed).
    fn dispute_of(&self, token_id: U256) -> impl Future<Output = Result<DisputeState, ChainError>> + Send;

    /// The token whose watermark tag is `tag`, searching mint events from `from_block` on.
    fn token_by_watermark(
        &self,
        tag: WatermarkTag,
        from_block: u64,
    ) -> impl Future<Output = Result<Option<U256>, ChainError>> + Send;
}

impl TokenChain for ChainClient {
    fn chain_id(&self) -> u64 {
        ChainClient::chain_id(self)
    }

    fn address(&self) -> Address {
        ChainClient::address(self)
    }

    fn owner_of(&self, token_id: U256) -> impl Future<Output = Result<Option<Address>, ChainError>> + Send {
        ChainClient::owner_of(self, token_id)
    }

    fn provenance(
        &self,
        token_id: U256,
    ) -> impl Future<Output = Result<Option<Provenance>, ChainError>> + Send {
        ChainClient::provenance(self, token_id)
    }

    fn minted_event(
        &self,
        token_id: U256,
    ) -> impl Future<Output = Result<Option<MintedEvent>, ChainError>> + Send {
        ChainClient::minted_event(self, token_id)
    }

    fn verify_aigc(
        &self,
        request: &GenerationRequest,
        aigc_data: &Bytes,
        proof: &Bytes,
    ) -> impl Future<Output = Result<bool, ChainError>> + Send {
        ChainClient::verify_aigc(self, request, aigc_data, proof)
    }

    fn is_node_at(
        &self,
        operator: Address,
        block: Option<u64>,
    ) -> impl Future<Output = Result<bool, ChainError>> + Send {
        ChainClient::is_node_at(self, operator, block)
    }

    fn model_info_at(
        &self,
        model_hash: B256,
        block: Option<u64>,
    ) -> impl Future<Output = Result<ModelInfo, ChainError>> + Send {
        ChainClient::model_info_at(self, model_hash, block)
    }

    fn dispute_of(&self, token_id: U256) -> impl Future<Output = Result<DisputeState, ChainError>> + Send {
        ChainClient::dispute_of(self, token_id)
    }

    fn token_by_image_cid(
        &self,
        image_cid: &str,
        from_block: u64,
    ) -> impl Future<Output = Result<Option<U256>, ChainError>> + Send {
        ChainClient::token_by_image_cid(self, image_cid, from_block)
    }

    fn token_by_watermark(
        &self,
        tag: WatermarkTag,
        from_block: u64,
    ) -> impl Future<Output = Result<Option<U256>, ChainError>> + Send {
        ChainClient::token_by_watermark(self, tag, from_block)
    }
}
