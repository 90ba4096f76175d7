//! Which token to check next: one minted in the latest [`RECENT_BLOCKS`] blocks by another node
//! with this node's model and not checked here yet, chosen at random, after any disputed token the
//! checker asked to look at first ([`Candidates::prefer`]). For it, the signed request
//! from its metadata (the CID recomputed here, the request hashing to the token id) and the pixel
//! digest its mint attested.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

use alloy::primitives::{Address, B256, U256};
use genmint_model_runtime::{GenerationParams, ModelHash};
use genmint_p2p::spot_check::CheckEnvelope;

use super::{SpotCheckParts, SpotCheckStoreError};
use crate::chain::ChainError;
use crate::ipfs::ContentStore;
use crate::jobs::admission;
use crate::provenance::eip712::{GenerationRequest, request_digest, token_id};
use crate::provenance::metadata::{LatentTraceRecord, TokenMetadata};
use crate::verify::{self, FetchError};

/// How far back (in blocks) the node looks for mints to check.
pub const RECENT_BLOCKS: u64 = 2_000;
/// The newest mints of the window considered in one round.
const MAX_RECENT_TOKENS: usize = 256;
/// Tokens looked at closely (chain record, metadata) in one round at most.
const MAX_LOOKS_PER_ROUND: usize = 8;
/// Tokens remembered as not for this node (another model, minted here, unreadable).
const MAX_PASSED_OVER: usize = 4096;

/// Why no candidate could be looked for.
#[derive(Debug, thiserror::Error)]
pub enum CandidatesError {
    #[error("listing recent mints: {0}")]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] SpotCheckStoreError),
}

/// A token this node can re-generate, with what its mint attested.
pub struct Candidate {
    pub token_id: U256,
    /// The model that made it, served here.
    pub model: ModelHash,
    pub params: GenerationParams,
    pub minted_by: Address,
    pub expected_pixel_digest: B256,
    /// The minted image, for the perceptual comparison when the pixels differ.
    pub image_cid: String,
    /// How the minting node says it generated.
    pub minted_envelope: CheckEnvelope,
    /// The latent trace the minting node committed to, for a step check.
    pub latent_trace: Option<LatentTraceRecord>,
}

/// Why a token is not checked (now).
enum Pass {
    /// Never for this node: remembered, not looked at again.
    NotForUs(String),
    /// Perhaps later (Kubo or the chain did not answer).
    NotNow(String),
}

/// Picks tokens to check, remembering the ones that are not for this node.
#[derive(Default)]
pub struct Candidates {
    passed_over: HashSet<U256>,
    passed_over_order: VecDeque<U256>,
    /// Disputed tokens to look at before the random rest, minted recently or not.
    preferred: Vec<U256>,
}

impl Candidates {
    /// The next token to check, or `None` when no recent mint is left for this node to check.
    pub async fn next<S: ContentStore + Sync>(
        &mut self,
        parts: &SpotCheckParts<S>,
    ) -> Result<Option<Candidate>, CandidatesError> {
        let minted = parts.chain.recently_minted(RECENT_BLOCKS).await?;
        let checker = parts.operator.address();
        let mut tokens = Vec::new();
        for token in minted.into_iter().rev().take(MAX_RECENT_TOKENS) {
            if !self.passed_over.contains(&token) && !parts.checks.has_check(token, checker).await? {
                tokens.push(token);
            }
        }
        let order = RandomState::new();
        tokens.sort_by_key(|token| order.hash_one(token));
        for token in std::mem::take(&mut self.preferred).into_iter().rev() {
            if !self.passed_over.contains(&token) && !parts.checks.has_check(token, checker).await? {
                tokens.retain(|t| *t != token);
                tokens.insert(0, token);
            }
        }
        for token in tokens.into_iter().take(MAX_LOOKS_PER_ROUND) {
            match look(parts, token).await {
                Ok(candidate) => return Ok(Some(candidate)),
                Err(Pass::NotForUs(reason)) => {
                    tracing::debug!(token = %token_hex(token), reason, "not a token for this node to check");
                    self.pass_over(token);
                }
                Err(Pass::NotNow(reason)) => {
                    tracing::debug!(token = %token_hex(token), reason, "cannot look at the token now")
                }
            }
        }
        Ok(None)
    }

    /// Looks at `token` first in the next round (a disputed token: its re-check is a vote).
    pub fn prefer(&mut self, token: U256) {
        if !self.preferred.contains(&token) {
            self.preferred.push(token);
        }
    }

    /// Remembers a token that will never be for this node to check.
    pub fn pass_over(&mut self, token: U256) {
        if self.passed_over.insert(token) {
            self.passed_over_order.push_back(token);
        }
        while self.passed_over_order.len() > MAX_PASSED_OVER {
            if let Some(oldest) = self.passed_over_order.pop_front() {
                self.passed_over.remove(&oldest);
            }
        }
    }
}

/// A token id as spot checks and the API write it: 0x and 64 hex digits.
pub fn token_hex(token: U256) -> String {
    B256::from(token).to_string()
}

async fn look<S: ContentStore + Sync>(parts: &SpotCheckParts<S>, token: U256) -> Result<Candidate, Pass> {
    let chain = &parts.chain;
    let not_now = |e: ChainError| Pass::NotNow(e.to_string());
    let not_for_us = |reason: String| Pass::NotForUs(reason);
    let record =
        chain.provenance(token).await.map_err(not_now)?.ok_or(Pass::NotForUs("no chain record".into()))?;
    if record.node == parts.operator.address() {
        return Err(not_for_us("minted by this node".into()));
    }
    let bytes = fetch_checked(&parts.content, &record.metadata_cid).await?;
    let metadata: TokenMetadata =
        serde_json::from_slice(&bytes).map_err(|e| not_for_us(format!("not genmint metadata: {e}")))?;
    let request: GenerationRequest = serde_json::from_value(metadata.provenance.request)
        .map_err(|e| not_for_us(format!("the metadata's request is unreadable: {e}")))?;
    let Some(model) = parts.models.get(&request.modelHash.0) else {
        return Err(not_for_us(format!(
            "model {}, this node serves {}",
            request.modelHash,
            parts.models.describe()
        )));
    };
    if token_id(request_digest(&request, &parts.domain)) != token {
        return Err(not_for_us(
            "the metadata's request is not the minted one (`genmint verify` says more)".into(),
        ));
    }
    let params = admission::generation_params(&request, model).map_err(|r| not_for_us(r.message))?;
    let event =
        chain.minted_event(token).await.map_err(not_now)?.ok_or(Pass::NotForUs("no mint event".into()))?;
    let envelope = metadata.provenance.envelope;
    Ok(Candidate {
        token_id: token,
        model: model.hash,
        params,
        minted_by: record.node,
        expected_pixel_digest: event.pixel_digest,
        image_cid: event.image_cid,
        minted_envelope: CheckEnvelope {
            engine: envelope.engine,
            dtype: envelope.dtype,
            device_class: envelope.device_class,
        },
        latent_trace: metadata.provenance.latent_trace,
    })
}

/// The metadata bytes behind `cid`, accepted only if they hash to it.
async fn fetch_checked(content: &(impl ContentStore + Sync), cid: &str) -> Result<Vec<u8>, Pass> {
    verify::fetch_checked(content, cid, verify::MAX_METADATA_BYTES).await.map_err(|e| match e {
        FetchError::Ipfs(e) => Pass::NotNow(e.to_string()),
        other => Pass::NotForUs(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_over_tokens_are_remembered_up_to_the_bound() {
        let mut candidates = Candidates::default();
        for token in 0..MAX_PASSED_OVER as u64 + 10 {
            candidates.pass_over(U256::from(token));
        }
        candidates.pass_over(U256::from(MAX_PASSED_OVER as u64 + 9));
        assert_eq!(candidates.passed_over.len(), MAX_PASSED_OVER);
        assert_eq!(candidates.passed_over_order.len(), MAX_PASSED_OVER);
        assert!(!candidates.passed_over.contains(&U256::from(9)), "the oldest went first");
        assert!(candidates.passed_over.contains(&U256::from(10)));
    }

    #[test]
    fn token_ids_are_written_as_64_hex_digits() {
        assert_eq!(token_hex(U256::from(0xab)), format!("0x{}ab", "0".repeat(62)));
    }
}
