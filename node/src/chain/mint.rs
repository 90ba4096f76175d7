//! Minting and reading back mints, shaped for exactly-once minting across restarts.
//!
//! A job store calls [`ChainClient::send_mint`], persists the returned transaction hash, then
//! calls [`ChainClient::receipt_for`]. After a restart it looks for the stored hash's receipt with
//! [`ChainClient::find_mint_receipt`] and checks [`ChainClient::token_exists`] before sending
//! again; the contract refuses a second mint of the same request in any case (`AlreadyMinted`),
//! because the token id is the request digest.

use alloy::network::ReceiptResponse;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;

use super::bindings::GenmintNFT;
use super::client::{ChainClient, ensure_success, find_receipt, wait_for_receipt};
use super::error::ChainError;
use crate::provenance::eip712::{self, Attestation, GenerationRequest};

/// A mint transaction that was accepted by the RPC but may not be mined yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingMint {
    pub tx_hash: B256,
    pub token_id: U256,
}

/// A mined, successful mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintOutcome {
    pub tx_hash: B256,
    pub block_number: u64,
    pub token_id: U256,
}

/// The `Minted` event of one token: everything needed to re-check both signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedEvent {
    pub token_id: U256,
    pub creator: Address,
    pub node: Address,
    pub model_hash: B256,
    pub pixel_digest: B256,
    pub image_cid: String,
    pub metadata_cid: String,
    pub creator_signature: Bytes,
    pub node_signature: Bytes,
    pub tx_hash: B256,
    pub block_number: u64,
}

impl ChainClient {
    /// Mints the token for a signed request and attestation and waits (bounded) for the receipt.
    pub async fn mint(
        &self,
        request: &GenerationRequest,
        creator_signature: &Bytes,
        attestation: &Attestation,
        node_signature: &Bytes,
    ) -> Result<MintOutcome, ChainError> {
        let pending = self.send_mint(request, creator_signature, attestation, node_signature).await?;
        self.receipt_for(pending.tx_hash).await
    }

    /// Submits the mint without waiting for it to be mined. The contract's checks run first (as
    /// the gas estimate), so a request it would refuse fails here with
    /// [`ChainError::Rejected`] and nothing is sent.
    pub async fn send_mint(
        &self,
        request: &GenerationRequest,
        creator_signature: &Bytes,
        attestation: &Attestation,
        node_signature: &Bytes,
    ) -> Result<PendingMint, ChainError> {
        let token_id = eip712::token_id(eip712::request_digest(request, &self.domain()));
        let call = self.contract.mint(
            request.into(),
            creator_signature.clone(),
            attestation.into(),
            node_signature.clone(),
        );
        let tx_hash = self.submit("mint", call).await?;
        tracing::info!(%tx_hash, token_id = %format_args!("{token_id:#x}"), "mint sent");
        Ok(PendingMint { tx_hash, token_id })
    }

    /// Waits (bounded by the receipt timeout) for a mint transaction and reads its outcome. A
    /// reverted mint is [`ChainError::Reverted`]; check [`Self::token_exists`] to tell a lost race
    /// (already minted) from other failures.
    pub async fn receipt_for(&self, tx_hash: B256) -> Result<MintOutcome, ChainError> {
        let receipt =
            wait_for_receipt(self.contract.provider(), &self.rpc_url, tx_hash, self.receipt_timeout).await?;
        self.mint_outcome(&receipt)
    }

    /// The outcome of a mint transaction if it has been mined, without waiting.
    pub async fn find_mint_receipt(&self, tx_hash: B256) -> Result<Option<MintOutcome>, ChainError> {
        match find_receipt(self.contract.provider(), &self.rpc_url, tx_hash).await? {
            Some(receipt) => self.mint_outcome(&receipt).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the chain knows the transaction at all, mined or pending. A mint that is neither
    /// was dropped and may be sent again.
    pub async fn transaction_known(&self, tx_hash: B256) -> Result<bool, ChainError> {
        let tx = self
            .contract
            .provider()
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(|e| ChainError::from_transport("eth_getTransactionByHash", &self.rpc_url, e))?;
        Ok(tx.is_some())
    }

    /// The `Minted` event of a token, or `None` if the token does not exist. Looks only at the
    /// block the provenance record names, so it works on RPCs that limit log ranges.
    pub async fn minted_event(&self, token_id: U256) -> Result<Option<MintedEvent>, ChainError> {
        let Some(provenance) = self.provenance(token_id).await? else { return Ok(None) };
        let block = provenance.mint_block;
        let logs = self
            .contract
            .Minted_filter()
            .topic1(B256::from(token_id))
            .from_block(block)
            .to_block(block)
            .query()
            .await
            .map_err(|e| self.call_error("eth_getLogs", e))?;
        let Some((event, log)) = logs.into_iter().next() else {
            return Err(ChainError::Rpc {
                call: "eth_getLogs",
                detail: format!("no Minted event for token {token_id:#x} in its mint block {block}"),
            });
        };
        Ok(Some(MintedEvent {
            token_id: event.tokenId,
            creator: event.creator,
            node: event.node,
            model_hash: event.modelHash,
            pixel_digest: event.pixelDigest,
            image_cid: event.imageCid,
            metadata_cid: event.metadataCid,
            creator_signature: event.creatorSignature,
            node_signature: event.nodeSignature,
            tx_hash: log.transaction_hash.unwrap_or_default(),
            block_number: log.block_number.unwrap_or(block),
        }))
    }

    fn mint_outcome(&self, receipt: &TransactionReceipt) -> Result<MintOutcome, ChainError> {
        ensure_success(receipt)?;
        let tx_hash = receipt.transaction_hash();
        let minted = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == self.address())
            .find_map(|log| log.log_decode::<GenmintNFT::Minted>().ok())
            .ok_or_else(|| ChainError::UnexpectedReceipt {
                tx_hash,
                detail: format!("it has no Minted event from {}: is it a mint?", self.address()),
            })?;
        Ok(MintOutcome {
            tx_hash,
            block_number: receipt.block_number().unwrap_or_default(),
            token_id: minted.inner.data.tokenId,
        })
    }
}
