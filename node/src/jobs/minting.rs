//! The chain steps: send the mint (`Pinned` → `Minting`, the transaction hash stored before
//! waiting), wait for its receipt (`Minting` → `Confirming`) and count confirmations until the
//! chain's depth (`Confirming` → `Minted`). Minting is exactly-once: the token id is the request
//! digest, the contract refuses a second mint, and before (re)sending the job asks the chain
//! whether the token exists already. Confirmation never sends twice: a pending transaction is
//! waited for, and only one the chain no longer knows (dropped from the mempool, or taken away by
//! a reorg with its block) is sent again, once per loss (`resends` counts them).
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
use crate::chain::{ChainError, MintJob, MintOutcome, Replacement};
use crate::provenance::ids::TxHash;

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

    /// `Minting`: waits (bounded) for the transaction's receipt.
    pub(super) async fn confirm(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = job.id.token_id();
        let tx_hash = Self::sent_transaction(job)?;
        let chain = &self.parts.chain;
        let receipt = tokio::select! {
            receipt = chain.receipt_for(tx_hash, token_id) => receipt,
            // The transaction hash is stored: a restart picks the wait up again.
            () = self.tasks().stopping() => return Err(StepError::Stopped),
        };
        let error = match receipt {
            Ok(outcome) => {
                self.parts.metrics.gas_spent(outcome.gas_spent_wei as f64);
                return self.mined(job, outcome).await;
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
        // Still pending: never a second mint, but the same one dearer, or nothing at all once the
        // request expired.
        if chain.transaction_known(tx_hash).await? {
            return self.stuck(job, tx_hash).await;
        }
        // Neither mined nor pending: the transaction was dropped; go back and send it again.
        warn!(job = %job.id, %tx_hash, "mint transaction dropped; sending it again");
        self.send_again(job).await
    }

    /// A mint still pending after the receipt wait: sent again with the same nonce and fees raised
    /// (at least 12.5 %, within the ceiling) so it can be mined; or, once its request expired (it
    /// could only revert now), replaced by a 0-value transfer that frees its nonce for the
    /// transactions after it, and the job ends `expired`.
    async fn stuck(&self, job: &JobRecord, tx_hash: TxHash) -> Result<(), StepError> {
        let expired = Self::past_deadline(job);
        let with = if expired { Replacement::Transfer } else { Replacement::SameCall };
        let replacement = match self.parts.chain.replace(tx_hash, with).await {
            Ok(Some(replacement)) => replacement,
            // Mined or gone meanwhile: the next look at the chain tells which.
            Ok(None) => return Ok(()),
            Err(error @ ChainError::FeeAboveCeiling { .. }) => {
                info!(job = %job.id, %tx_hash, %error, "stuck mint not re-priced; it keeps waiting");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if expired {
            let reason = format!(
                "the request's deadline passed while its mint {tx_hash} waited unmined; it was replaced by                  transaction {replacement} (a 0-value transfer) so the node's later transactions can go: sign                  the request again with a later deadline"
            );
            return self.advance(job.id, JobState::Expired, JobOutputs::failure(reason)).await;
        }
        info!(job = %job.id, %tx_hash, %replacement, "stuck mint re-priced");
        let outputs = JobOutputs { tx_hash: Some(replacement), ..JobOutputs::default() };
        self.advance(job.id, JobState::Minting, outputs).await
    }

    /// The mint's receipt is in (at its first sight, or again in another block after a reorg):
    /// `Minted` if the block is deep enough already, `Confirming` otherwise.
    async fn mined(&self, job: &JobRecord, outcome: MintOutcome) -> Result<(), StepError> {
        let head = self.parts.chain.head_block().await?;
        let needed = self.parts.finality.confirmations;
        let confirmations = confirmations_at(head, outcome.block_number);
        let outputs = JobOutputs {
            tx_hash: Some(TxHash(outcome.tx_hash)),
            token_id: Some(outcome.token_id),
            minted_by: Some(self.operator()),
            mint_block: Some(outcome.block_number),
            mint_block_hash: Some(outcome.block_hash),
            confirmations: Some(confirmations),
            confirmations_needed: Some(needed),
            ..JobOutputs::default()
        };
        self.deepened(job, confirmations >= needed, outputs).await
    }

    /// Records how deep the mint is: `Minted` (and the request's fee earned) once deep enough,
    /// `Confirming` before.
    async fn deepened(&self, job: &JobRecord, deep: bool, outputs: JobOutputs) -> Result<(), StepError> {
        if !deep {
            return self.advance(job.id, JobState::Confirming, outputs).await;
        }
        if let Ok(signed) = Self::signed(job) {
            let fee = signed.request.fee;
            self.parts.metrics.fee_earned(u128::try_from(fee).map_or(f64::MAX, |wei| wei as f64));
        }
        self.advance(job.id, JobState::Minted, outputs).await
    }

    /// `Confirming`: counts the blocks from the mint's up to the head until there are enough. The
    /// receipt is read again every time, so a reorg that replaces the mint's block is seen: a mint
    /// re-included elsewhere counts again from its new block, a pending one is waited for
    /// (`Minting`), and one the chain forgot is sent again (`Pinned`), once per loss.
    pub(super) async fn follow_confirmations(&self, job: &JobRecord) -> Result<(), StepError> {
        let token_id = job.id.token_id();
        let tx_hash = Self::sent_transaction(job)?;
        let chain = &self.parts.chain;
        let outcome = match chain.mint_receipt(tx_hash, token_id).await {
            Ok(Some(outcome)) => outcome,
            Ok(None) => return self.reorged(job, tx_hash).await,
            // Re-included by a reorg but reverted there (a peer's mint of the request came first).
            Err(error @ ChainError::Reverted { .. }) => match chain.minted(token_id).await? {
                Some(mint) => return self.minted_elsewhere(job, mint).await,
                None => return Err(StepError::fatal(error)),
            },
            Err(e) => return Err(e.into()),
        };
        if job.outputs.mint_block_hash != Some(outcome.block_hash) {
            warn!(job = %job.id, %tx_hash, block = outcome.block_number, "a reorg moved the mint to another block; counting again");
            return self.mined(job, outcome).await;
        }
        let confirmations = confirmations_at(chain.head_block().await?, outcome.block_number);
        let needed = self.parts.finality.confirmations;
        if confirmations >= needed || job.outputs.confirmations != Some(confirmations) {
            let outputs = JobOutputs {
                confirmations: Some(confirmations),
                confirmations_needed: Some(needed),
                ..JobOutputs::default()
            };
            return self.deepened(job, confirmations >= needed, outputs).await;
        }
        match self.tasks().sleep(self.parts.finality.poll).await {
            true => Ok(()),
            false => Err(StepError::Stopped),
        }
    }

    /// The mint's block is gone from the chain.
    async fn reorged(&self, job: &JobRecord, tx_hash: TxHash) -> Result<(), StepError> {
        let chain = &self.parts.chain;
        if chain.transaction_known(tx_hash).await? {
            warn!(job = %job.id, %tx_hash, "a reorg took the mint's block away; the transaction is pending again");
            return self.advance(job.id, JobState::Minting, JobOutputs::default()).await;
        }
        if let Some(mint) = chain.minted(job.id.token_id()).await? {
            return self.minted_elsewhere(job, mint).await;
        }
        warn!(job = %job.id, %tx_hash, "a reorg dropped the mint; sending it again");
        self.send_again(job).await
    }

    /// Back to `Pinned`, counting the resend: the mint step checks the chain and sends it anew.
    async fn send_again(&self, job: &JobRecord) -> Result<(), StepError> {
        let resends = job.outputs.resends.unwrap_or(0).saturating_add(1);
        let outputs = JobOutputs { resends: Some(resends), ..JobOutputs::default() };
        self.advance(job.id, JobState::Pinned, outputs).await
    }

    fn sent_transaction(job: &JobRecord) -> Result<TxHash, StepError> {
        job.outputs
            .tx_hash
            .ok_or_else(|| StepError::invalid(format!("{} job has no transaction hash", job.state)))
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
            ..JobOutputs::default()
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

/// Confirmations of a mint in block `mint_block` with the chain's head at `head`: the mint's own
/// block is the first; none while the head (a lagging endpoint's) is below it.
fn confirmations_at(head: u64, mint_block: u64) -> u64 {
    head.saturating_add(1).saturating_sub(mint_block)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::B256;

    use super::*;
    use crate::chain::MintOutcome;
    use crate::ipfs::Cid;
    use crate::jobs::Finality;
    use crate::jobs::testing::{
        FakeChain, Harness, MINT_BLOCK, MINT_BLOCK_HASH, MINT_GAS_WEI, MODEL, REPLACEMENT, Setup, lock,
        mined, unreachable,
    };
    use crate::provenance::eip712::GenerationRequest;
    use crate::provenance::ids::{JobId, PixelDigest, TxHash};

    const SENT: TxHash = TxHash(B256::repeat_byte(0x51));
    const ELSEWHERE: TxHash = TxHash(B256::repeat_byte(0xee));

    /// A job already in `state`, with the outputs a job has there.
    async fn job_in(h: &Harness, state: JobState) -> JobRecord {
        job_for(h, state, h.request(MODEL, 9)).await
    }

    async fn job_for(h: &Harness, state: JobState, request: GenerationRequest) -> JobRecord {
        let signed = h.sign(request);
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
    async fn a_stuck_mint_is_re_priced_never_sent_twice_and_waits_while_the_ceiling_forbids() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        lock(&h.chain.known_transactions).insert(SENT);
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&job).await.unwrap();
        let repriced = state_of(&h, &job).await;
        assert_eq!((repriced.state, repriced.outputs.tx_hash), (JobState::Minting, Some(REPLACEMENT)));
        assert_eq!(lock(&h.chain.replaced).as_slice(), [(SENT, Replacement::SameCall)]);
        assert!(lock(&h.chain.sent).is_empty(), "no second mint");

        let ceiling = ChainError::FeeAboveCeiling { base_fee: 50, tip: 1, ceiling: 10 };
        lock(&h.chain.replace_answers).push_back(Err(ceiling));
        lock(&h.chain.known_transactions).insert(REPLACEMENT);
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&repriced).await.unwrap();
        assert_eq!(state_of(&h, &job).await.outputs.tx_hash, Some(REPLACEMENT), "waits as it is");
    }

    #[tokio::test]
    async fn a_stuck_mint_of_an_expired_request_is_replaced_by_a_transfer_and_the_job_expires() {
        let h = harness(FakeChain::default());
        let mut request = h.request(MODEL, 10);
        request.deadline = 1;
        let job = job_for(&h, JobState::Minting, request).await;
        lock(&h.chain.known_transactions).insert(SENT);
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&job).await.unwrap();
        let expired = state_of(&h, &job).await;
        assert_eq!(expired.state, JobState::Expired);
        assert!(
            expired.outputs.error.as_deref().unwrap_or_default().contains("0-value transfer"),
            "{expired:?}"
        );
        assert_eq!(lock(&h.chain.replaced).as_slice(), [(SENT, Replacement::Transfer)]);
    }

    #[tokio::test]
    async fn a_dropped_mint_goes_back_to_be_sent_again() {
        let h = harness(FakeChain::default());
        let job = job_in(&h, JobState::Minting).await;
        scripted(&h.chain, Err(timeout()));
        h.jobs.confirm(&job).await.unwrap();
        let pinned = state_of(&h, &job).await;
        assert_eq!((pinned.state, pinned.outputs.resends), (JobState::Pinned, Some(1)));
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

    /// A job whose mint needs `blocks` confirmations and has its receipt: the job as sent, and
    /// as it is now.
    async fn mined_job(blocks: u64) -> (Harness, JobRecord, JobRecord) {
        let h = Harness::new(Setup {
            chain: FakeChain::default(),
            finality: Finality { confirmations: blocks, poll: Duration::from_millis(1) },
            ..Setup::default()
        });
        let job = job_in(&h, JobState::Minting).await;
        h.jobs.confirm(&job).await.unwrap();
        let now = state_of(&h, &job).await;
        (h, job, now)
    }

    #[tokio::test]
    async fn a_mint_is_confirming_until_the_chain_is_deep_enough_and_shows_its_progress() {
        let (h, job, confirming) = mined_job(3).await;
        let outputs = &confirming.outputs;
        assert_eq!(confirming.state, JobState::Confirming);
        assert_eq!((outputs.confirmations, outputs.confirmations_needed), (Some(1), Some(3)));
        assert_eq!((outputs.mint_block, outputs.mint_block_hash), (Some(MINT_BLOCK), Some(MINT_BLOCK_HASH)));
        // No new block: nothing changes.
        h.jobs.follow_confirmations(&confirming).await.unwrap();
        assert_eq!(state_of(&h, &job).await, confirming);
        *lock(&h.chain.blocks_after) = 1;
        h.jobs.follow_confirmations(&confirming).await.unwrap();
        let second = state_of(&h, &job).await;
        assert_eq!((second.state, second.outputs.confirmations), (JobState::Confirming, Some(2)));
        *lock(&h.chain.blocks_after) = 2;
        h.jobs.follow_confirmations(&second).await.unwrap();
        let done = state_of(&h, &job).await;
        assert_eq!((done.state, done.outputs.confirmations), (JobState::Minted, Some(3)));
        assert_eq!(done.outputs.token_id, Some(job.id.token_id()));
        assert!(lock(&h.chain.sent).is_empty(), "nothing sent again");
        assert_eq!(h.metrics.gas_spent_wei(), MINT_GAS_WEI as f64, "the receipt's gas, counted once");
    }

    #[tokio::test]
    async fn a_reorg_that_drops_the_mint_sends_it_again_once_and_one_that_moves_it_counts_again() {
        let (h, job, confirming) = mined_job(3).await;
        // Re-included in another block: counted from there, nothing sent.
        let moved = MintOutcome {
            block_number: 2,
            block_hash: B256::repeat_byte(0xb2),
            ..mined(SENT, job.id.token_id())
        };
        lock(&h.chain.current_receipts).push_back(Some(moved));
        *lock(&h.chain.blocks_after) = 1;
        h.jobs.follow_confirmations(&confirming).await.unwrap();
        let recounted = state_of(&h, &job).await;
        assert_eq!(
            (recounted.state, recounted.outputs.mint_block, recounted.outputs.confirmations),
            (JobState::Confirming, Some(2), Some(1))
        );
        // Gone with its block and unknown to the chain: back to be sent again, counted once.
        lock(&h.chain.current_receipts).push_back(None);
        h.jobs.follow_confirmations(&recounted).await.unwrap();
        let pinned = state_of(&h, &job).await;
        assert_eq!((pinned.state, pinned.outputs.resends), (JobState::Pinned, Some(1)));
        assert_eq!(pinned.outputs.confirmations, None, "the lost mint's confirmations are cleared");
        h.jobs.mint(&pinned).await.unwrap();
        assert_eq!(lock(&h.chain.sent).len(), 1, "sent again exactly once");
        let resent = state_of(&h, &job).await;
        assert_eq!((resent.state, resent.outputs.resends), (JobState::Minting, Some(1)));
    }

    #[tokio::test]
    async fn a_reorged_mint_still_pending_is_waited_for_and_one_minted_meanwhile_is_recorded() {
        let (h, job, confirming) = mined_job(3).await;
        lock(&h.chain.current_receipts).push_back(None);
        lock(&h.chain.known_transactions).insert(SENT);
        h.jobs.follow_confirmations(&confirming).await.unwrap();
        let pending = state_of(&h, &job).await;
        assert_eq!((pending.state, pending.outputs.confirmations), (JobState::Minting, None));

        let (h, job, confirming) = mined_job(3).await;
        lock(&h.chain.current_receipts).push_back(None);
        let chain = h.chain.mint_elsewhere(job.id.token_id(), ELSEWHERE);
        h.jobs.follow_confirmations(&confirming).await.unwrap();
        expect_chain_record(&state_of(&h, &job).await, &chain);
        assert!(lock(&h.chain.sent).is_empty(), "never sent again");
    }
}
