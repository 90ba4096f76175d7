//! Reads of past chain state, for verification: the registries as of a block, and finding the
//! token whose mint event names an image, or whose watermark tag a copy carries.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;

use super::client::{ChainClient, ModelInfo};
use super::error::ChainError;
use crate::provenance::watermark::WatermarkTag;

/// Blocks one `eth_getLogs` call covers when searching for a token (RPC providers cap ranges).
const LOG_SEARCH_SPAN: u64 = 50_000;

fn at(block: Option<u64>) -> BlockId {
    block.map_or(BlockId::latest(), BlockId::number)
}

impl ChainClient {
    /// Whether `operator` was a registered, active node at `block` (the latest block if `None`).
    pub async fn is_node_at(&self, operator: Address, block: Option<u64>) -> Result<bool, ChainError> {
        self.contract.isNode(operator).block(at(block)).call().await.map_err(|e| self.call_error("isNode", e))
    }

    /// What the model registry recorded for a model at `block` (the latest block if `None`); empty
    /// and inactive if it was not registered then.
    pub async fn model_info_at(&self, model_hash: B256, block: Option<u64>) -> Result<ModelInfo, ChainError> {
        let info = self
            .contract
            .modelInfo(model_hash)
            .block(at(block))
            .call()
            .await
            .map_err(|e| self.call_error("modelInfo", e))?;
        Ok(ModelInfo {
            name: info.name_,
            author: info.author,
            license_uri: info.licenseUri,
            active: info.active,
        })
    }

    /// The token whose mint event names `image_cid`, searching blocks `from_block..=latest`.
    pub async fn token_by_image_cid(
        &self,
        image_cid: &str,
        from_block: u64,
    ) -> Result<Option<U256>, ChainError> {
        self.find_minted(from_block, |_, aigc_data| {
            aigc_data.len() > 32 && &aigc_data[32..] == image_cid.as_bytes()
        })
        .await
    }

    /// The token whose watermark tag is `tag` (the tag of this chain, this contract and the token
    /// id), searching the mint events of blocks `from_block..=latest`.
    pub async fn token_by_watermark(
        &self,
        tag: WatermarkTag,
        from_block: u64,
    ) -> Result<Option<U256>, ChainError> {
        let (chain_id, contract) = (self.chain_id(), self.address());
        self.find_minted(from_block, |token_id, _| {
            WatermarkTag::for_token(chain_id, contract, B256::from(token_id.to_be_bytes::<32>())) == tag
        })
        .await
    }

    /// The first token whose mint event (token id, `aigcData`) matches, from `from_block` on.
    async fn find_minted(
        &self,
        from_block: u64,
        matches: impl Fn(U256, &[u8]) -> bool,
    ) -> Result<Option<U256>, ChainError> {
        let latest = self
            .contract
            .provider()
            .get_block_number()
            .await
            .map_err(|e| ChainError::Rpc { call: "eth_blockNumber", detail: e.to_string() })?;
        let mut start = from_block;
        while start <= latest {
            let end = latest.min(start + LOG_SEARCH_SPAN - 1);
            let logs = self
                .contract
                .AigcData_filter()
                .from_block(start)
                .to_block(end)
                .query()
                .await
                .map_err(|e| self.call_error("eth_getLogs", e))?;
            if let Some((event, _)) =
                logs.into_iter().find(|(event, _)| matches(event.tokenId, &event.aigcData))
            {
                return Ok(Some(event.tokenId));
            }
            start = end + 1;
        }
        Ok(None)
    }
}
