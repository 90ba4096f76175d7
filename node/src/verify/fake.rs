//! An in-memory stand-in for the chain, so verification runs in tests without anvil:
//! [`FakeChain`] answers [`TokenChain`] from maps the test fills in (IPFS is
//! [`crate::ipfs::MemoryStore`]).

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes, U256};

use super::TokenChain;
use crate::chain::{ChainError, DisputeState, DisputeStatus, MintedEvent, ModelInfo, Provenance};
use crate::provenance::eip712::GenerationRequest;
use crate::provenance::watermark::WatermarkTag;

/// A minted token as the chain holds it.
#[derive(Debug, Clone)]
pub(crate) struct FakeToken {
    pub owner: Address,
    pub record: Provenance,
    pub event: MintedEvent,
}

/// A `GenmintNFT` in memory. Registries are histories of `(from block, state)` in block order, so a
/// read at a block sees the last change at or before it, and a read at `None` the last change.
#[derive(Debug, Clone)]
pub(crate) struct FakeChain {
    pub chain_id: u64,
    pub contract: Address,
    pub tokens: HashMap<U256, FakeToken>,
    pub nodes: HashMap<Address, Vec<(u64, bool)>>,
    pub models: HashMap<B256, Vec<(u64, ModelInfo)>>,
    /// What the contract's ERC-7007 `verify` answers, whatever it is given.
    pub verify_aigc: bool,
    /// Disputes by token; a token missing here was never disputed.
    pub disputes: HashMap<U256, DisputeState>,
}

impl FakeChain {
    pub fn new(chain_id: u64, contract: Address) -> Self {
        Self {
            chain_id,
            contract,
            tokens: HashMap::new(),
            nodes: HashMap::new(),
            models: HashMap::new(),
            verify_aigc: true,
            disputes: HashMap::new(),
        }
    }

    /// Registers (`active`) or deactivates a node from `block` on.
    pub fn set_node(&mut self, node: Address, block: u64, active: bool) {
        self.nodes.entry(node).or_default().push((block, active));
    }

    /// Records a model's registry entry from `block` on.
    pub fn set_model(&mut self, model_hash: B256, block: u64, info: ModelInfo) {
        self.models.entry(model_hash).or_default().push((block, info));
    }

    /// The token for `token_id`, for a test to change what the chain says about it.
    pub fn token_mut(&mut self, token_id: U256) -> Option<&mut FakeToken> {
        self.tokens.get_mut(&token_id)
    }
}

/// The state a registry history gives at `block` (the latest if `None`).
fn as_of<T: Clone>(history: Option<&Vec<(u64, T)>>, block: Option<u64>) -> Option<T> {
    let history = history?;
    let seen = history.iter().take_while(|(from, _)| block.is_none_or(|block| *from <= block));
    seen.last().map(|(_, state)| state.clone())
}

impl TokenChain for FakeChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn address(&self) -> Address {
        self.contract
    }

    async fn owner_of(&self, token_id: U256) -> Result<Option<Address>, ChainError> {
        Ok(self.tokens.get(&token_id).map(|token| token.owner))
    }

    async fn provenance(&self, token_id: U256) -> Result<Option<Provenance>, ChainError> {
        Ok(self.tokens.get(&token_id).map(|token| token.record.clone()))
    }

    async fn minted_event(&self, token_id: U256) -> Result<Option<MintedEvent>, ChainError> {
        Ok(self.tokens.get(&token_id).map(|token| token.event.clone()))
    }

    async fn verify_aigc(
        &self,
        _request: &GenerationRequest,
        _aigc_data: &Bytes,
        _proof: &Bytes,
    ) -> Result<bool, ChainError> {
        Ok(self.verify_aigc)
    }

    async fn is_node_at(&self, operator: Address, block: Option<u64>) -> Result<bool, ChainError> {
        Ok(as_of(self.nodes.get(&operator), block).unwrap_or(false))
    }

    async fn model_info_at(&self, model_hash: B256, block: Option<u64>) -> Result<ModelInfo, ChainError> {
        // An unregistered model reads as the contract's empty struct.
        let empty = || ModelInfo {
            name: String::new(),
            author: String::new(),
            license_uri: String::new(),
            active: false,
        };
        Ok(as_of(self.models.get(&model_hash), block).unwrap_or_else(empty))
    }

    async fn dispute_of(&self, token_id: U256) -> Result<DisputeState, ChainError> {
        Ok(self.disputes.get(&token_id).cloned().unwrap_or(DisputeState {
            status: DisputeStatus::None,
            challenger: Address::ZERO,
            deadline: 0,
            confirmations: 0,
            rejections: 0,
        }))
    }

    async fn token_by_image_cid(&self, image_cid: &str, from_block: u64) -> Result<Option<U256>, ChainError> {
        let found = self
            .tokens
            .iter()
            .find(|(_, token)| token.event.image_cid == image_cid && token.event.block_number >= from_block);
        Ok(found.map(|(token_id, _)| *token_id))
    }

    async fn token_by_watermark(
        &self,
        tag: WatermarkTag,
        from_block: u64,
    ) -> Result<Option<U256>, ChainError> {
        let found = self.tokens.iter().find(|(token_id, token)| {
            token.event.block_number >= from_block
                && WatermarkTag::for_token(
                    self.chain_id,
                    self.contract,
                    B256::from(token_id.to_be_bytes::<32>()),
                ) == tag
        });
        Ok(found.map(|(token_id, _)| *token_id))
    }
}
