//! The contract's mint log read by block range: each ERC-7007 `AigcData` event names a minted
//! token, the block and transaction that minted it, and its image CID. The gallery indexes it from
//! where it stopped; peers' spot checks look at the latest blocks.

use std::ops::RangeInclusive;

use alloy::primitives::U256;
use alloy::providers::Provider;

use super::client::ChainClient;
use super::error::ChainError;
use crate::ipfs::Cid;
use crate::provenance::ids::TxHash;

/// One mint, as its event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintLog {
    pub token_id: U256,
    pub block_number: u64,
    /// The event's place in its block: orders mints within a block.
    pub log_index: u64,
    pub tx_hash: TxHash,
    /// `None` when the event's data does not hold a readable CID.
    pub image_cid: Option<Cid>,
}

impl ChainClient {
    /// The latest block number.
    pub async fn head_block(&self) -> Result<u64, ChainError> {
        self.contract
            .provider()
            .get_block_number()
            .await
            .map_err(|e| ChainError::from_transport("eth_blockNumber", &self.rpc_url, e))
    }

    /// Every mint in `blocks`, in chain order. One log query, so keep the range within what the
    /// RPC allows per query.
    pub async fn mints_in(&self, blocks: RangeInclusive<u64>) -> Result<Vec<MintLog>, ChainError> {
        let logs = self
            .contract
            .AigcData_filter()
            .from_block(*blocks.start())
            .to_block(*blocks.end())
            .query()
            .await
            .map_err(|e| self.call_error("eth_getLogs", e))?;
        Ok(logs
            .into_iter()
            .map(|(event, log)| MintLog {
                token_id: event.tokenId,
                block_number: log.block_number.unwrap_or_default(),
                log_index: log.log_index.unwrap_or_default(),
                tx_hash: TxHash(log.transaction_hash.unwrap_or_default()),
                image_cid: event
                    .aigcData
                    .get(32..)
                    .and_then(|bytes| std::str::from_utf8(bytes).ok())
                    .and_then(|text| text.parse().ok()),
            })
            .collect())
    }

    /// The tokens whose mint lies in the latest `blocks` blocks, oldest first, each once.
    pub async fn recently_minted(&self, blocks: u64) -> Result<Vec<U256>, ChainError> {
        let head = self.head_block().await?;
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .mints_in(head.saturating_sub(blocks)..=head)
            .await?
            .into_iter()
            .map(|mint| mint.token_id)
            .filter(|token| seen.insert(*token))
            .collect())
    }
}
