//! The chain steps: send the mint (`Pinned` → `Minting`, the transaction hash stored before
//! waiting) and confirm it (`Minting` → `Minted`). Minting is exactly-once: the token id is the
//! request digest, the contract refuses a second mint, and before (re)sending the job asks the
//! chain whether the token exists already. Confirmation never sends twice: a pending transaction
//! is waited for, and only one the chain no longer knows is sent again.
//!
//! A request the chain has minted already (a replay posted to this node, or a mint by a peer that
//! won a race) is answered from the chain: the job records the contract's transaction, node,
//! CIDs, pixel digest and attestation signature, and nothing is generated or pinned again.

use tracing::{info, warn};

use super::chain::ChainMint;
#[cfg(test)]
use super::error::JobError;
use super::error::StepError;
use super::service::Jobs;
use super::state::JobState;
use super::store::{JobOutputs, JobRecord, JobRoute};
use crate::chain::{ChainError, MintJob};

impl Jobs {
    /// Before local work starts (queueing, generating, pinning): whether the chain holds the token
    /// already, in which case the job now records that mint. When the chain cannot be asked the
    /// work goes on: the mint step asks again before anything is sent.
    pub(super) async fn answered_from_chain(&self, job: &JobRecord) -> Result<bool, StepError> {
        match self.parts.chain.minted(job.id.token_id()).await {
            Ok(Some(mint)) => {
                info!(job = %job.id, node = %mint.node, tx = %mint.tx_hash, "request minted already; answering from the chain");
                self.minted_elsewhere(job, mint).await?;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                warn!(job = %job.id, error = %e, "cannot ask the chain whether the request is minted; going on");
                Ok(false)
            }
        }
    }

    pub(super) async fn mint(&self, job: &JobRecord) -> Result<(), StepError> {
        if let Some(mint) = self.parts.chain.minted(job.id.token_id()).await? {
            return self.minted_elsewhere(job, mint).await;
        }
        let signed = Self::signed(job)?;
        let missing = |field: &str| StepError::invalid(format!("pinned job has no {field}"));
        let outputs = &job.outputs;
        let image_cid = outputs.image_cid.as_ref().ok_or_else(|| missing("image CID"))?;
        let metadata_cid = outputs.metadata_cid.as_ref().ok_or_else(|| missing("metadata CID"))?;
        let node_signature =
            outputs.node_signature.clone().ok_or_else(|| missing("attestation signature"))?;
        let attestation = self.attestation(job.id, &signed, outputs.pixel_digest, image_cid, metadata_cid)?;
        let mint = MintJob {
            request: signed.request,
            creator_signature: signed.signature,
            attestation,
            node_signature,
        };
        let pending = self.parts.chain.send_mint(mint).await?;
        let outputs = JobOutputs { tx_hash: Some(pending.tx_hash.into()), ..JobOutputs::default() };
        self.advance(job.id, JobState::Minting, outputs).await
    }

    pub(super) async fn confirm(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = job.id.token_id();
        let tx_hash =
            job.outputs.tx_hash.ok_or_else(|| StepError::invalid("minting job has no transaction hash"))?;
        let chain = &self.parts.chain;
        let receipt = tokio::select! {
            receipt = chain.receipt_for(tx_hash, token_id) => receipt,
            // The transaction hash is stored: a restart picks the wait up again.
            () = self.tasks().stopping() => return Err(StepError::Stopped),
        };
        let error = match receipt {
            Ok(outcome) => {
                if let Ok(signed) = Self::signed(job) {
                    let fee = signed.request.fee;
                    self.parts.metrics.fee_earned(u128::try_from(fee).map_or(f64::MAX, |wei| wei as f64));
                }
                let outputs = JobOutputs {
                    token_id: Some(outcome.token_id),
                    minted_by: Some(self.operator()),
                    ..JobOutputs::default()
                };
                return self.advance(job.id, JobState::Minted, outputs).await;
            }
            Err(error @ (ChainError::Reverted { .. } | ChainError::ReceiptTimeout { .. })) => error,
            Err(e) => return Err(e.into()),
        };
        if let Some(mint) = chain.minted(token_id).await? {
            return self.minted_elsewhere(job, mint).await;
        }
        if matches!(error, ChainError::Reverted { .. }) {
            return Err(StepError::fatal(error));
        }
        // Still pending: keep waiting; the chain decides, never a second send.
        if chain.transaction_known(tx_hash).await? {
            return Ok(());
        }
        // Neither mined nor pending: the transaction was dropped; go back and send it again.
        warn!(job = %job.id, %tx_hash, "mint transaction dropped; sending it again");
        self.advance(job.id, JobState::Pinned, JobOutputs::default()).await
    }

    /// The token exists already (an earlier attempt of this node, or another node): record the
    /// mint as the contract has it, its CIDs, digest and node included, over anything this node
    /// made. A forwarded job may be in any state its executor last reported, so the chain's word
    /// is mirrored rather than checked as a local step.
    pub(super) async fn minted_elsewhere(&self, job: &JobRecord, mint: ChainMint) -> Result<(), StepError> {
        let outputs = JobOutputs {
            pixel_digest: Some(mint.pixel_digest),
            image_cid: Some(mint.image_cid),
            metadata_cid: Some(mint.metadata_cid),
            node_signature: Some(mint.node_signature),
            tx_hash: Some(mint.tx_hash),
            token_id: Some(job.id.token_id()),
            minted_by: Some(mint.node),
            error: None,
        };
        match job.route {
            JobRoute::Local => self.advance(job.id, JobState::Minted, outputs).await,
            JobRoute::Forwarded => {
                let minted = self.parts.store.mirror(job.id, JobState::Minted, outputs).await?;
                self.events.state(&minted);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::B256;

    use super::*;
    use crate::chain::MintOutcome;
    use crate::ipfs::Cid;
    use crate::jobs::testing::{FakeChain, Harness, MODEL, Setup, lock, unreachable};
    use crate::provenance::ids::{JobId, PixelDigest, TxHash};

    const SENT: TxHash = TxHash(B256::repeat_byte(0x51));
    const ELSEWHERE: TxHash = TxHash(B256::repeat_byte(0xee));

    /// A job already in `state`, with the outputs a job has there.
    async fn job_in(h: &Harness, state: JobState) -> JobRecord {
        let signed = h.sign(h.request(MODEL, 9));
        let id = JobId(crate::provenance::eip712::request_digest(&signed.request, h.jobs.domain()));
        let store = h.jobs.store();
        store.insert(id, serde_json::to_string(&signed).unwrap(), JobRoute::Local, None).await.unwrap();
        let image_cid = Cid::raw_sha256(b"image");
        let metadata_cid = Cid::raw_sha256(b"metadata");
        let pixel_digest = Some(PixelDigest(B256::repeat_byte(3)));
        let attestation = h.jobs.attestation(id, &signed, pixel_digest, &image_cid, &metadata_cid).unwrap();
        let signature =
            crate::provenance::eip712::sign_attestation(&h.operator, &attestation, h.jobs.domain()).unwrap();
        let outputs = JobOutputs {
            pixel_digest,
            image_cid: Some(image_cid),
            metadata_cid: Some(metadata_cid),
            node_signature: Some(signature),
            tx_hash: (state == JobState::Minting).then_some(SENT),
            ..JobOutputs::default()
        };
        store.mirror(id, state, outputs).await.unwrap()
    }

    fn harness(chain: FakeChain) -> Harness {
        Harness::new(Setup { chain, ..Setup::default() })
    }

    async fn state_of(h: &Harness, job: &JobRecord) -> JobRecord {
        h.jobs.job(job.id).await.unwrap().unwrap()
    }

    fn scripted(chain: &FakeChain, answer: Result<MintOutcome, ChainError>) {
        lock(&chain.receipts).push_back(answer);
    }

    fn timeout() -> ChainError {
        ChainError::ReceiptTimeout { tx_hash: SENT.0, waited: Duration::from_secs(1) }
    }

    fn reverted() -> ChainError {
        ChainError::Reverted { tx_hash: SENT.0, block_number: 3 }
    }

    #[tokio::test]
    async fn a_mined_mint_is_minted_with_its_token() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        h.jobs.confirm(&job).await.unwrap();
        let done = state_of(&h, &job).await;
        assert_eq!(
            (done.state, done.outputs.token_id, done.outputs.tx_hash, done.outputs.minted_by),
            (JobState::Minted, Some(job.id.token_id()), Some(SENT), Some(h.operator.address()))
        );
    }

    #[tokio::test]
    async fn a_reverted_mint_of_a_token_minted_elsewhere_records_that_mint_with_the_chains_cids() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(reverted()));
        let chain = h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.confirm(&job).await.unwrap();
        let done = state_of(&h, &job).await;
        assert_eq!(done.state, JobState::Minted);
        expect_chain_record(&done, &chain);
    }

    /// The job shows the contract's mint, not what this node made of the request.
    fn expect_chain_record(job: &JobRecord, chain: &ChainMint) {
        let outputs = &job.outputs;
        assert_eq!(outputs.tx_hash, Some(chain.tx_hash));
        assert_eq!(outputs.minted_by, Some(chain.node));
        assert_eq!(outputs.image_cid.as_ref(), Some(&chain.image_cid));
        assert_eq!(outputs.metadata_cid.as_ref(), Some(&chain.metadata_cid));
        assert_eq!(outputs.pixel_digest, Some(chain.pixel_digest));
        assert_eq!(outputs.node_signature.as_ref(), Some(&chain.node_signature));
        assert_eq!(outputs.token_id, Some(job.id.token_id()));
    }

    #[tokio::test]
    async fn a_request_minted_already_is_answered_from_the_chain_and_never_generated_or_pinned() {
        let h = harness(FakeChain::default());
        let signed = h.sign(h.request(MODEL, 21));
        let id = JobId(crate::provenance::eip712::request_digest(&signed.request, h.jobs.domain()));
        let chain = h.chain.mint_elsewhere(id.token_id(), ELSEWHERE);
        let (job, _) = h.jobs.submit(&signed).await.unwrap();
        let done = h.wait_for(job.id, JobState::Minted).await;
        expect_chain_record(&done, &chain);
        assert!(h.content.is_empty(), "nothing pinned");
        assert!(lock(&h.chain.sent).is_empty(), "nothing sent");
        assert!(!h.images_dir().join(format!("{}.png", job.id)).exists(), "nothing generated");
    }

    #[tokio::test]
    async fn a_generated_job_whose_request_a_peer_minted_meanwhile_is_not_pinned() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Generated).await;
        let chain = h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.resume_all().await.unwrap();
        let done = h.wait_for(job.id, JobState::Minted).await;
        expect_chain_record(&done, &chain);
        assert!(h.content.is_empty(), "nothing pinned");
    }

    #[tokio::test]
    async fn a_reverted_mint_of_no_token_fails_the_job() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(reverted()));
        let err = h.jobs.confirm(&job).await.unwrap_err();
        assert!(matches!(err, StepError::Fatal(ref e) if e.to_string().contains("reverted")), "{err:?}");
    }

    #[tokio::test]
    async fn a_pending_mint_is_waited_for_and_never_sent_twice() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        lock(&h.chain.known_transactions).insert(SENT);
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&job).await.unwrap();
        assert_eq!(state_of(&h, &job).await.state, JobState::Minting);
        assert!(lock(&h.chain.sent).is_empty());
    }

    #[tokio::test]
    async fn a_dropped_mint_goes_back_to_be_sent_again() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&job).await.unwrap();
        assert_eq!(state_of(&h, &job).await.state, JobState::Pinned);
    }

    #[tokio::test]
    async fn a_timed_out_mint_of_a_token_minted_elsewhere_records_that_mint() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(timeout()));
        let chain = h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.confirm(&job).await.unwrap();
        expect_chain_record(&state_of(&h, &job).await, &chain);
    }

    #[tokio::test]
    async fn an_unreachable_chain_is_worth_another_try() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(unreachable()));
        let err = h.jobs.confirm(&job).await.unwrap_err();
        assert!(matches!(err, StepError::Retry(JobError::Chain(ChainError::Unreachable { .. }))), "{err:?}");
        assert_eq!(state_of(&h, &job).await.state, JobState::Minting);
    }

    #[tokio::test]
    async fn minting_sends_the_stored_attestation_unless_the_token_exists() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Pinned).await;
        h.jobs.mint(&job).await.unwrap();
        let sent = state_of(&h, &job).await;
        assert_eq!(sent.state, JobState::Minting);
        let mints = lock(&h.chain.sent).clone();
        assert_eq!(mints.len(), 1);
        assert_eq!(mints[0].node_signature, job.outputs.node_signature.clone().unwrap_or_default());
        assert_eq!(sent.outputs.tx_hash, Some(TxHash(B256::repeat_byte(1))));

        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Pinned).await;
        h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.mint(&job).await.unwrap();
        assert!(lock(&h.chain.sent).is_empty(), "a minted token is never sent again");
        assert_eq!(state_of(&h, &job).await.state, JobState::Minted);
    }
}
