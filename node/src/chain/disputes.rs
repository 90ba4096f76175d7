//! Open membership and disputes on the contract: an operator's stake (join, ask back, withdraw),
//! and the dispute over a token whose attested pixel digest a re-generation could not reproduce
//! (open with the mint's evidence, vote, resolve), read back as [`DisputeState`].

use alloy::network::ReceiptResponse;
use alloy::primitives::{Address, B256, U256};
use serde::Serialize;

use super::bindings::GenmintNFT;
use super::client::ChainClient;
use super::error::{ChainError, ContractRejection};
use super::mint::MintedEvent;
use crate::provenance::eip712::GenerationRequest;

/// An operator's stake as the contract records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StakeInfo {
    /// Wei locked as surety.
    pub staked: U256,
    /// Wei asked back, still slashable, withdrawable from `unlock_at`.
    pub unstaking: U256,
    /// Unix seconds; 0 when nothing is asked back.
    pub unlock_at: u64,
    pub open_disputes: u16,
    /// Registered by the owner (a member without stake).
    pub curated: bool,
    /// Slashed or taken down by the owner: staking does not make it a node again.
    pub barred: bool,
}

/// Where a token's dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    /// Never disputed, or the last dispute ended without a quorum.
    None,
    /// Re-checkers may vote until the deadline.
    Open,
    /// A quorum re-derived the challenger's digest: the node was slashed and the token is marked.
    FraudConfirmed,
    /// A quorum re-derived the node's digest.
    Rejected,
}

impl DisputeStatus {
    /// The contract's `DisputeStatus` value.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Open,
            2 => Self::FraudConfirmed,
            3 => Self::Rejected,
            _ => Self::None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Open => "open",
            Self::FraudConfirmed => "fraud_confirmed",
            Self::Rejected => "rejected",
        }
    }
}

/// A token's dispute as the contract records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeState {
    pub status: DisputeStatus,
    pub challenger: Address,
    /// Unix seconds: votes before it, resolution from it.
    pub deadline: u64,
    pub confirmations: u16,
    pub rejections: u16,
}

impl From<GenmintNFT::Dispute> for DisputeState {
    fn from(d: GenmintNFT::Dispute) -> Self {
        Self {
            status: DisputeStatus::from_code(d.status),
            challenger: d.challenger,
            deadline: d.deadline.to::<u64>(),
            confirmations: d.confirmations,
            rejections: d.rejections,
        }
    }
}

/// What an open dispute is about, as its `DisputeOpened` event logs it; votes and the resolution
/// repeat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeEvidence {
    /// The prompt topic of the token's `AigcData` (keccak256 of the ABI-encoded request).
    pub prompt_hash: B256,
    /// The pixel digest the node attested.
    pub attested_digest: B256,
    /// The pixel digest the challenger re-derived.
    pub rechecked_digest: B256,
}

impl From<DisputeEvidence> for GenmintNFT::Evidence {
    fn from(e: DisputeEvidence) -> Self {
        Self {
            promptHash: e.prompt_hash,
            attestedDigest: e.attested_digest,
            recheckedDigest: e.rechecked_digest,
        }
    }
}

impl ChainClient {
    /// Adds `amount` wei to the sender's stake; from `NODE_STAKE` in all it is a node.
    pub async fn stake(&self, amount: U256) -> Result<(), ChainError> {
        let receipt = self.transact("stake", self.contract.stake().value(amount)).await?;
        tracing::info!(%amount, tx_hash = %receipt.transaction_hash(), "staked");
        Ok(())
    }

    /// Asks `amount` wei of the sender's stake back; it unlocks after the contract's delay.
    pub async fn request_unstake(&self, amount: U256) -> Result<(), ChainError> {
        let receipt = self.transact("requestUnstake", self.contract.requestUnstake(amount)).await?;
        tracing::info!(%amount, tx_hash = %receipt.transaction_hash(), "asked stake back");
        Ok(())
    }

    /// Sends the sender's unlocked stake to it.
    pub async fn withdraw_stake(&self) -> Result<(), ChainError> {
        let receipt = self.transact("withdrawStake", self.contract.withdrawStake()).await?;
        tracing::info!(tx_hash = %receipt.transaction_hash(), "withdrew stake");
        Ok(())
    }

    /// The stake the contract records for `operator`.
    pub async fn stake_of(&self, operator: Address) -> Result<StakeInfo, ChainError> {
        let s = self.contract.stakeOf(operator).call().await.map_err(|e| self.call_error("stakeOf", e))?;
        Ok(StakeInfo {
            staked: U256::from(s.staked),
            unstaking: U256::from(s.unstaking),
            unlock_at: s.unlockAt.to::<u64>(),
            open_disputes: s.openDisputes,
            curated: s.curated,
            barred: s.barred,
        })
    }

    /// The wei each of the contract's terms takes: the node stake and the dispute bond.
    pub async fn stake_terms(&self) -> Result<(U256, U256), ChainError> {
        let stake = self.contract.NODE_STAKE().call().await.map_err(|e| self.call_error("NODE_STAKE", e))?;
        let bond =
            self.contract.DISPUTE_BOND().call().await.map_err(|e| self.call_error("DISPUTE_BOND", e))?;
        Ok((stake, bond))
    }

    /// The token's dispute (status `None` if it was never disputed).
    pub async fn dispute_of(&self, token_id: U256) -> Result<DisputeState, ChainError> {
        let d =
            self.contract.disputeOf(token_id).call().await.map_err(|e| self.call_error("disputeOf", e))?;
        Ok(d.into())
    }

    /// Disputes a minted token with the sender's re-derived `rechecked` digest, posting its request
    /// and the mint's outputs and signature (the contract checks them against the token) and the
    /// dispute bond. Returns the evidence votes and the resolution repeat.
    pub async fn open_dispute(
        &self,
        request: &GenerationRequest,
        minted: &MintedEvent,
        rechecked: B256,
    ) -> Result<DisputeEvidence, ChainError> {
        let (_, bond) = self.stake_terms().await?;
        let signature = GenmintNFT::CompactSignature {
            r: B256::from_slice(&minted.proof[..32]),
            vs: B256::from_slice(&minted.proof[32..64]),
        };
        let call = self
            .contract
            .openDispute(request.into(), minted.pixel_digest, minted.image_cid.clone(), signature, rechecked)
            .value(bond);
        let receipt = self.transact("openDispute", call).await?;
        tracing::info!(token = %minted.token_id, %rechecked, tx_hash = %receipt.transaction_hash(), "opened dispute");
        Ok(DisputeEvidence {
            prompt_hash: minted.prompt_hash,
            attested_digest: minted.pixel_digest,
            rechecked_digest: rechecked,
        })
    }

    /// The evidence of the token's latest dispute, from its `DisputeOpened` event since the mint;
    /// `None` if it was never disputed.
    pub async fn dispute_evidence(&self, token_id: U256) -> Result<Option<DisputeEvidence>, ChainError> {
        let Some(provenance) = self.provenance(token_id).await? else { return Ok(None) };
        let logs = self
            .contract
            .DisputeOpened_filter()
            .topic1(B256::from(token_id))
            .from_block(provenance.mint_block)
            .query()
            .await
            .map_err(|e| self.call_error("eth_getLogs", e))?;
        Ok(logs.into_iter().last().map(|(event, _)| DisputeEvidence {
            prompt_hash: event.promptHash,
            attested_digest: event.attestedDigest,
            rechecked_digest: event.recheckedDigest,
        }))
    }

    /// Votes on the token's open dispute with the pixel digest the sender re-derived.
    pub async fn vote_on_dispute(
        &self,
        token_id: U256,
        evidence: DisputeEvidence,
        digest: B256,
    ) -> Result<(), ChainError> {
        let receipt = self.transact("vote", self.contract.vote(token_id, evidence.into(), digest)).await?;
        tracing::info!(token = %token_id, %digest, tx_hash = %receipt.transaction_hash(), "voted on dispute");
        Ok(())
    }

    /// Tokens whose dispute opened in the latest `blocks` blocks, oldest first, each once.
    pub async fn recently_disputed(&self, blocks: u64) -> Result<Vec<U256>, ChainError> {
        let head = self.head_block().await?;
        let logs = self
            .contract
            .DisputeOpened_filter()
            .from_block(head.saturating_sub(blocks))
            .to_block(head)
            .query()
            .await
            .map_err(|e| self.call_error("eth_getLogs", e))?;
        let mut seen = std::collections::HashSet::new();
        Ok(logs.into_iter().map(|(event, _)| event.tokenId).filter(|token| seen.insert(*token)).collect())
    }

    /// Votes `digest` on the token's dispute if one is open and this sender may vote on it (an active
    /// node, neither the token's node nor the challenger, not voted yet, inside the window); whether
    /// it voted.
    pub async fn vote_if_disputed(&self, token_id: U256, digest: B256) -> Result<bool, ChainError> {
        if self.dispute_of(token_id).await?.status != DisputeStatus::Open {
            return Ok(false);
        }
        let Some(evidence) = self.dispute_evidence(token_id).await? else { return Ok(false) };
        match self.vote_on_dispute(token_id, evidence, digest).await {
            Ok(()) => Ok(true),
            Err(ChainError::Rejected {
                reason:
                    ContractRejection::AlreadyVoted { .. }
                    | ContractRejection::NotAVoter { .. }
                    | ContractRejection::WindowClosed { .. },
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Resolves the token's dispute after its window; returns how it ended.
    pub async fn resolve_dispute(
        &self,
        token_id: U256,
        evidence: DisputeEvidence,
    ) -> Result<DisputeState, ChainError> {
        let receipt =
            self.transact("resolveDispute", self.contract.resolveDispute(token_id, evidence.into())).await?;
        tracing::info!(token = %token_id, tx_hash = %receipt.transaction_hash(), "resolved dispute");
        self.dispute_of(token_id).await
    }
}
