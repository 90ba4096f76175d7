//! Minting and reading back mints, shaped for exactly-once minting across restarts.
//!
//! A job store calls [`ChainClient::send_mint`] (or [`ChainClient::send_mint_batch`] for several
//! jobs), persists the returned transaction hash, then calls [`ChainClient::receipt_for`]. After a
//! restart it looks for the stored hash's receipt with [`ChainClient::find_mint_receipt`] and checks
//! [`ChainClient::token_exists`] before sending again; the contract refuses a second mint of the same
//! request in any case (`AlreadyMinted`), because the token id is the request digest.

use alloy::network::ReceiptResponse;
use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;

use super::bindings::GenmintNFT;
use super::client::{ChainClient, ensure_success, find_receipt, wait_for_receipt};
use super::error::ChainError;
use crate::ipfs::Cid;
use crate::provenance::eip712::{self, Attestation, GenerationRequest};

/// A mint transaction that was accepted by the RPC but may not be mined yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingMint {
    pub tx_hash: B256,
    pub token_id: U256,
}

/// A mined, successful mint of one token (a batch transaction mints several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintOutcome {
    pub tx_hash: B256,
    pub block_number: u64,
    /// The hash of the block that holds the mint: a reorg that replaces that block changes it.
    pub block_hash: B256,
    pub token_id: U256,
    /// This mint's share of what the transaction cost (gas used × effective gas price, divided
    /// among the tokens it minted).
    pub gas_spent_wei: u128,
}

/// One signed job for [`ChainClient::send_mint_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintJob {
    pub request: GenerationRequest,
    pub creator_signature: Bytes,
    pub attestation: Attestation,
    /// 65 bytes `r ‖ s ‖ v`.
    pub node_signature: Bytes,
}

/// A token's ERC-7007 `AigcData` event from its mint: the outputs and both signatures, which with
/// the request (committed to by the token id) and the stored record re-prove every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedEvent {
    pub token_id: U256,
    /// keccak256 of the ABI-encoded request (the ERC-7007 prompt).
    pub prompt_hash: B256,
    pub pixel_digest: B256,
    pub image_cid: String,
    /// The node's signature, 65 bytes `r ‖ s ‖ v` (the event carries its 64-byte compact form).
    pub node_signature: Bytes,
    pub creator_signature: Bytes,
    /// The event's raw ERC-7007 `aigcData` and `proof`, for the contract's `verify`.
    pub aigc_data: Bytes,
    pub proof: Bytes,
    pub tx_hash: B256,
    pub block_number: u64,
}

impl MintedEvent {
    /// Decodes `aigcData` (pixel digest ‖ image CID) and `proof` (node r ‖ vs ‖ creator signature).
    fn decode(token_id: U256, prompt_hash: B256, aigc_data: Bytes, proof: Bytes) -> Option<Self> {
        if aigc_data.len() < 32 || proof.len() < 64 {
            return None;
        }
        let image_cid = String::from_utf8(aigc_data[32..].to_vec()).ok()?;
        let node_signature = Signature::from_erc2098(&proof[..64]).as_bytes();
        Some(Self {
            token_id,
            prompt_hash,
            pixel_digest: B256::from_slice(&aigc_data[..32]),
            image_cid,
            node_signature: Bytes::copy_from_slice(&node_signature),
            creator_signature: Bytes::copy_from_slice(&proof[64..]),
            aigc_data,
            proof,
            tx_hash: B256::ZERO,
            block_number: 0,
        })
    }
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
        self.receipt_for(pending.tx_hash, pending.token_id).await
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
        let job = job(request, creator_signature, attestation, node_signature)?;
        let tx_hash = self.submit("mint", self.contract.mint(job)).await?;
        tracing::info!(%tx_hash, token_id = %format_args!("{token_id:#x}"), "mint sent");
        Ok(PendingMint { tx_hash, token_id })
    }

    /// Submits one `mintBatch` transaction for all `jobs` (all or none), without waiting. As with
    /// [`Self::send_mint`], a batch the contract would refuse (any job in it) fails here with
    /// [`ChainError::Rejected`] and nothing is sent. Returns one pending mint per job, in order, all
    /// with the same transaction hash.
    pub async fn send_mint_batch(&self, jobs: &[MintJob]) -> Result<Vec<PendingMint>, ChainError> {
        let domain = self.domain();
        let token_ids: Vec<U256> =
            jobs.iter().map(|j| eip712::token_id(eip712::request_digest(&j.request, &domain))).collect();
        let calls = jobs
            .iter()
            .map(|j| job(&j.request, &j.creator_signature, &j.attestation, &j.node_signature))
            .collect::<Result<Vec<_>, _>>()?;
        let tx_hash = self.submit("mintBatch", self.contract.mintBatch(calls)).await?;
        tracing::info!(%tx_hash, jobs = jobs.len(), "batch mint sent");
        Ok(token_ids.into_iter().map(|token_id| PendingMint { tx_hash, token_id }).collect())
    }

    /// Waits (bounded by the receipt timeout) for the transaction that mints `token_id` and reads its
    /// outcome. A reverted mint is [`ChainError::Reverted`]; check [`Self::token_exists`] to tell a
    /// lost race (already minted) from other failures.
    pub async fn receipt_for(&self, tx_hash: B256, token_id: U256) -> Result<MintOutcome, ChainError> {
        let receipt =
            wait_for_receipt(self.contract.provider(), &self.rpc_url, tx_hash, self.receipt_timeout).await?;
        self.mint_outcome(&receipt, token_id)
    }

    /// The outcome of the transaction that mints `token_id` if it has been mined, without waiting.
    pub async fn find_mint_receipt(
        &self,
        tx_hash: B256,
        token_id: U256,
    ) -> Result<Option<MintOutcome>, ChainError> {
        match find_receipt(self.contract.provider(), &self.rpc_url, tx_hash).await? {
            Some(receipt) => self.mint_outcome(&receipt, token_id).map(Some),
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

    /// The `AigcData` event of a token's mint, or `None` if the token does not exist. Looks only at
    /// the block the token's record names, so it works on RPCs that limit log ranges.
    pub async fn minted_event(&self, token_id: U256) -> Result<Option<MintedEvent>, ChainError> {
        let Some(provenance) = self.provenance(token_id).await? else { return Ok(None) };
        let block = provenance.mint_block;
        let logs = self
            .contract
            .AigcData_filter()
            .topic1(B256::from(token_id))
            .from_block(block)
            .to_block(block)
            .query()
            .await
            .map_err(|e| self.call_error("eth_getLogs", e))?;
        // The first: `addAigcData` may announce the same data again later, never in the mint block
        // before the mint.
        let Some((event, log)) = logs.into_iter().next() else {
            return Err(ChainError::Rpc {
                call: "eth_getLogs",
                detail: format!("no AigcData event for token {token_id:#x} in its mint block {block}"),
            });
        };
        let mut minted = MintedEvent::decode(token_id, event.prompt, event.aigcData, event.proof)
            .ok_or_else(|| ChainError::Rpc {
                call: "eth_getLogs",
                detail: format!("the AigcData event of token {token_id:#x} is malformed"),
            })?;
        minted.tx_hash = log.transaction_hash.unwrap_or_default();
        minted.block_number = log.block_number.unwrap_or(block);
        Ok(Some(minted))
    }

    fn mint_outcome(&self, receipt: &TransactionReceipt, token_id: U256) -> Result<MintOutcome, ChainError> {
        ensure_success(receipt)?;
        let tx_hash = receipt.transaction_hash();
        let mints: Vec<U256> = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == self.address())
            .filter_map(|log| log.log_decode::<GenmintNFT::Transfer>().ok())
            .filter(|log| log.inner.data.from == Address::ZERO)
            .map(|log| log.inner.data.tokenId)
            .collect();
        if !mints.contains(&token_id) {
            return Err(ChainError::UnexpectedReceipt {
                tx_hash,
                detail: format!("it does not mint token {token_id:#x} on {}", self.address()),
            });
        }
        Ok(MintOutcome {
            tx_hash,
            block_number: receipt.block_number().unwrap_or_default(),
            block_hash: receipt.block_hash().unwrap_or_default(),
            token_id,
            gas_spent_wei: u128::from(receipt.gas_used) * receipt.effective_gas_price / mints.len() as u128,
        })
    }
}

/// The contract's mint input for a signed request and a signed attestation: the attestation in
/// the contract's compact form, the metadata CID as its sha2-256 digest (the contract rebuilds the
/// CID) and the node's signature in ERC-2098 form (64 bytes).
fn job(
    request: &GenerationRequest,
    creator_signature: &Bytes,
    attestation: &Attestation,
    node_signature: &Bytes,
) -> Result<GenmintNFT::Job, ChainError> {
    let metadata_digest = raw_block_digest(&attestation.metadataCid)
        .ok_or_else(|| ChainError::UnsupportedMetadataCid { cid: attestation.metadataCid.clone() })?;
    let node_signature = Signature::from_raw(node_signature)
        .map_err(|e| ChainError::BadNodeSignature { detail: e.to_string() })?
        .as_erc2098();
    Ok(GenmintNFT::Job {
        request: request.into(),
        creatorSignature: creator_signature.clone(),
        output: GenmintNFT::Output {
            pixelDigest: attestation.pixelDigest,
            metadataDigest: metadata_digest,
            node: attestation.node,
            imageCid: attestation.imageCid.clone(),
        },
        nodeSignature: GenmintNFT::CompactSignature {
            r: B256::from_slice(&node_signature[..32]),
            vs: B256::from_slice(&node_signature[32..]),
        },
    })
}

/// The sha2-256 digest inside a CIDv1 of a raw block (`bafkrei…`), the only CID form the contract
/// stores; `None` for anything else (a dag-pb CID of a file over one chunk, another hash).
fn raw_block_digest(cid: &str) -> Option<B256> {
    const RAW_SHA256_PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
    let cid: Cid = cid.parse().ok()?;
    let bytes = cid.as_bytes();
    (bytes.len() == 36 && bytes[..4] == RAW_SHA256_PREFIX).then(|| B256::from_slice(&bytes[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_block_digests_come_out_of_raw_cids_only() {
        let digest = raw_block_digest("bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta");
        assert_eq!(
            digest,
            Some(alloy::primitives::b256!(
                "0x9b1b4dae9864c55ef2b56be85ef06bf394fba2667709a60e35d376b53f3b6998"
            ))
        );
        // dag-pb (a file of several chunks) and junk have no raw-block digest.
        assert_eq!(raw_block_digest("bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq"), None);
        assert_eq!(raw_block_digest("not a cid"), None);
    }
}
