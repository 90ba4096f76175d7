//! The chain steps: send the mint (`Pinned` → `Minting`, the transaction hash stored before
//! waiting) and confirm it (`Minting` → `Minted`). Minting is exactly-once: the token id is the
//! request digest, the contract refuses a second mint, and before (re)sending the job asks the
//! chain whether the token exists already. Confirmation never sends twice: a pending transaction
//! is waited for, and only one the chain no longer knows is sent again.

use tracing::warn;

#[cfg(test)]
use super::error::JobError;
use super::error::StepError;
use super::service::Jobs;
use super::state::JobState;
use super::store::{JobOutputs, JobRecord, JobRoute};
use crate::chain::{ChainError, MintJob};

impl Jobs {
    pub(super) async fn mint(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = job.id.token_id();
        if self.parts.chain.token_exists(token_id).await? {
            return self.minted_elsewhere(job).await;
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
        match receipt {
            Ok(outcome) => {
                let outputs = JobOutputs { token_id: Some(outcome.token_id), ..JobOutputs::default() };
                self.advance(job.id, JobState::Minted, outputs).await
            }
            Err(ChainError::Reverted { .. } | ChainError::ReceiptTimeout { .. })
                if chain.token_exists(token_id).await? =>
            {
                self.minted_elsewhere(job).await
            }
            Err(e @ ChainError::Reverted { .. }) => Err(StepError::fatal(e)),
            // Still pending: keep waiting; the chain decides, never a second send.
            Err(ChainError::ReceiptTimeout { .. }) if chain.transaction_known(tx_hash).await? => Ok(()),
            // Neither mined nor pending: the transaction was dropped; go back and send it again.
            Err(ChainError::ReceiptTimeout { .. }) => {
                warn!(job = %job.id, %tx_hash, "mint transaction dropped; sending it again");
                self.advance(job.id, JobState::Pinned, JobOutputs::default()).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The token exists already (an earlier attempt of this node, or another node): record the
    /// transaction that minted it. A forwarded job may be in any state its executor last reported,
    /// so the chain's word is mirrored rather than checked as a local step.
    pub(super) async fn minted_elsewhere(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = job.id.token_id();
        let tx_hash = self.parts.chain.mint_transaction(token_id).await?;
        let outputs = JobOutputs { token_id: Some(token_id), tx_hash, ..JobOutputs::default() };
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

    use alloy::primitives::{B256, Bytes};

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
            (done.state, done.outputs.token_id, done.outputs.tx_hash),
            (JobState::Minted, Some(job.id.token_id()), Some(SENT))
        );
    }

    #[tokio::test]
    async fn a_reverted_mint_of_a_token_minted_elsewhere_records_that_mint() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(reverted()));
        h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.confirm(&job).await.unwrap();
        let done = state_of(&h, &job).await;
        assert_eq!((done.state, done.outputs.tx_hash), (JobState::Minted, Some(ELSEWHERE)));
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
        h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.confirm(&job).await.unwrap();
        assert_eq!(state_of(&h, &job).await.outputs.tx_hash, Some(ELSEWHERE));
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
        let _: Bytes = Bytes::new();
    }
}
