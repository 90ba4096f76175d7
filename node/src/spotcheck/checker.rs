//! This node's spot checks: every interval, when no job waits for the generator, it re-generates
//! one candidate token at the lowest priority (a creator's job arriving meanwhile cancels it at the
//! next step, and the token waits for a later round), compares the pixel digest with the attested
//! one (and, when they differ, the picture with the minted image by dHash), and keeps, publishes
//! and logs the signed outcome. With `[spot_checks] method = "steps"` a token whose metadata
//! commits to a latent trace is checked by replaying a few random steps of it instead
//! ([`crate::verify::steps`]); the check then names the steps and what failed.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{B256, U256};
use genmint_model_runtime::trace::check::{CROSS_ENVELOPE_TOLERANCE, Comparison, StepFailure};
use genmint_model_runtime::{Rgb8Image, RuntimeError};
use genmint_p2p::NetworkError;
use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION, SpotCheck, StepCheck};

use super::candidates::{Candidate, Candidates, CandidatesError, RECENT_BLOCKS, token_hex};
use super::signature::{self, SignError};
use super::{SpotCheckParts, SpotCheckStoreError};
use crate::config::SpotCheckMethod;
use crate::ipfs::ContentStore;
use crate::jobs::inference::InferenceError;
use crate::provenance::metadata::LatentTraceRecord;
use crate::provenance::png::{self, PngError};
use crate::verify::steps::{self, TraceProblem};
use crate::verify::{self, FetchError, regenerate::dhash};

/// How often a running re-generation looks for creators' jobs to make way for.
const YIELD_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How one round ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Round {
    Checked,
    NothingToCheck,
    /// A creator's job came first; the token waits for a later round.
    MadeWay,
    NetworkClosed,
}

/// Why a round failed (it is tried again next round).
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Candidates(#[from] CandidatesError),
    #[error("re-generating token {token}: {source}")]
    Regenerate {
        token: String,
        #[source]
        source: InferenceError,
    },
    #[error("fetching the minted image {cid}: {source}")]
    Fetch {
        cid: String,
        #[source]
        source: FetchError,
    },
    #[error("decoding the minted image {cid}: {source}")]
    Decode {
        cid: String,
        #[source]
        source: PngError,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Store(#[from] SpotCheckStoreError),
    #[error("comparing the pictures did not finish: {0}")]
    Interrupted(String),
}

/// What a round found before it is signed.
enum Checked {
    /// The token re-generated.
    Regenerated(Rgb8Image),
    /// Steps of its latent trace replayed: what failed, if anything, and the final entry decoded.
    Steps { steps: Vec<u32>, failed: Option<String>, decoded: Option<Rgb8Image> },
}

/// The part of a loaded model's envelope spot checks compare.
fn worker_envelope(model: &genmint_model_runtime::ModelDescriptor) -> CheckEnvelope {
    CheckEnvelope {
        engine: model.envelope.engine.clone(),
        dtype: model.envelope.dtype.clone(),
        device_class: model.envelope.device_class.clone(),
    }
}

/// A generation's cancel flag that is raised when the generation's future is dropped, so the
/// inference thread does not go on with a check nobody waits for.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Samples and re-generates other nodes' tokens.
pub struct SpotChecker<S> {
    parts: Arc<SpotCheckParts<S>>,
    candidates: Candidates,
    /// Disputed tokens this node has voted on, or found it had a check to vote with.
    disputes_seen: HashSet<U256>,
}

impl<S: ContentStore + Send + Sync + 'static> SpotChecker<S> {
    pub fn new(parts: Arc<SpotCheckParts<S>>) -> Self {
        Self { parts, candidates: Candidates::default(), disputes_seen: HashSet::new() }
    }

    /// Checks one token per `interval` (skipping rounds while jobs wait) until the network stops.
    pub async fn run(mut self, interval: Duration) {
        let mut rounds = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            if self.jobs_waiting().await {
                tracing::debug!("jobs are waiting; no spot check this round");
                continue;
            }
            match self.round().await {
                Ok(Round::Checked | Round::MadeWay) => {}
                Ok(Round::NothingToCheck) => tracing::debug!("no recent token of this model to spot-check"),
                Ok(Round::NetworkClosed) => return,
                Err(e) => tracing::warn!(error = %e, "spot check failed; trying again next round"),
            }
        }
    }

    async fn jobs_waiting(&self) -> bool {
        self.parts.jobs.queued().await.map_or(true, |queued| queued > 0)
    }

    pub(super) async fn round(&mut self) -> Result<Round, RoundError> {
        self.take_part_in_disputes().await?;
        let Some(candidate) = self.candidates.next(&self.parts).await? else {
            return Ok(Round::NothingToCheck);
        };
        let token = candidate.token_id;
        let traced = candidate
            .latent_trace
            .clone()
            .filter(|_| self.parts.spot_checks.method == SpotCheckMethod::Steps);
        let outcome = match &traced {
            Some(record) => self.step_check(&candidate, record).await,
            None => self.regenerate(&candidate).await.map(|image| image.map(Checked::Regenerated)),
        };
        let checked = match outcome {
            Ok(Some(checked)) => checked,
            Ok(None) => {
                tracing::debug!(token = %token_hex(token), "made way for a creator's job (or its model is not loaded)");
                return Ok(Round::MadeWay);
            }
            Err(source) => {
                // Not again: a token this node cannot generate would fail every round.
                self.candidates.pass_over(token);
                return Err(RoundError::Regenerate { token: token_hex(token), source });
            }
        };
        let check = self.signed_check(candidate, checked).await?;
        if let Err(e) = check.validate_shape() {
            // E.g. the minting node recorded an envelope peers would refuse: nothing to say about it.
            tracing::warn!(token = %check.token_id, error = %e, "spot check not kept");
            self.candidates.pass_over(token);
            return Ok(Round::Checked);
        }
        self.parts.checks.record(check.clone()).await?;
        super::log(&check, "this node");
        self.vote_if_disputed(token, &check).await;
        match self.parts.network.publish(check).await {
            Ok(()) => Ok(Round::Checked),
            Err(NetworkError::Closed) => Ok(Round::NetworkClosed),
            Err(e) => {
                tracing::warn!(token = %token_hex(token), error = %e, "spot check kept here but not published");
                Ok(Round::Checked)
            }
        }
    }

    /// For each recently opened dispute: vote with this node's own check of the token if it has one,
    /// else re-check the token first this round (the re-check then votes).
    async fn take_part_in_disputes(&mut self) -> Result<(), RoundError> {
        let disputed = match self.parts.chain.recently_disputed(RECENT_BLOCKS).await {
            Ok(disputed) => disputed,
            Err(e) => {
                tracing::warn!(error = %e, "could not list open disputes");
                return Ok(());
            }
        };
        let checker = self.parts.operator.address().to_string();
        for token in disputed {
            if self.disputes_seen.contains(&token) {
                continue;
            }
            let checks = self.parts.checks.of_token(token).await?;
            match checks.iter().find(|c| c.checker == checker) {
                Some(own) => {
                    self.disputes_seen.insert(token);
                    self.vote_if_disputed(token, own).await;
                }
                None => self.candidates.prefer(token),
            }
        }
        Ok(())
    }

    /// A re-check in the minting node's envelope compares bit-exact pixels, so it is a vote on the
    /// token's dispute if one is open (another envelope's digest would count for neither side).
    async fn vote_if_disputed(&self, token: U256, check: &SpotCheck) {
        // Only a re-generation re-derives the digest a vote names.
        if check.checker_envelope != check.minted_envelope || !check.regenerated() {
            return;
        }
        let Ok(digest) = check.regenerated_pixel_digest.parse::<B256>() else { return };
        match self.parts.chain.vote_if_disputed(token, digest).await {
            Ok(true) => tracing::info!(token = %check.token_id, %digest, "voted on the token's dispute"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(token = %check.token_id, error = %e, "could not vote on the token's dispute")
            }
        }
    }

    /// Runs the generation, cancelling it as soon as a job waits for the generator or this round is
    /// dropped at shutdown; `None` then, and when the model is not loaded now.
    async fn regenerate(&self, candidate: &Candidate) -> Result<Option<Rgb8Image>, InferenceError> {
        // A spot check never loads a model (it would unload a creator's): the model must be loaded.
        let Some(worker) = self.parts.models.loaded(&candidate.model.0).await else { return Ok(None) };
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let generation = worker.generate(candidate.params.clone(), cancel.0.clone(), Box::new(|_| {}));
        tokio::pin!(generation);
        let mut watch = tokio::time::interval(YIELD_CHECK_INTERVAL);
        loop {
            tokio::select! {
                result = &mut generation => return match result {
                    Ok(generation) => Ok(Some(generation.image)),
                    Err(InferenceError::Runtime(RuntimeError::Cancelled) | InferenceError::Busy(_)) => Ok(None),
                    Err(e) => Err(e),
                },
                _ = watch.tick() => {
                    if self.jobs_waiting().await {
                        cancel.0.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Replays the configured number of random steps of the token's latent trace on the model's
    /// worker (at the lowest priority: after any waiting generation); `None` when the model is not
    /// loaded or the worker is busy. A trace that is not the committed one is a failed check.
    async fn step_check(
        &self,
        candidate: &Candidate,
        record: &LatentTraceRecord,
    ) -> Result<Option<Checked>, InferenceError> {
        let Some(worker) = self.parts.models.loaded(&candidate.model.0).await else { return Ok(None) };
        let total = candidate.params.steps;
        let chosen = steps::draw_steps(total, self.parts.spot_checks.steps.max(1));
        let fetched = match steps::fetch_for_check(&self.parts.content, record, total, &chosen).await {
            Ok(fetched) => fetched,
            Err(TraceProblem::Forged(reason)) => {
                tracing::warn!(token = %token_hex(candidate.token_id), %reason, "the latent trace is not the committed one");
                return Ok(Some(Checked::Steps {
                    steps: chosen,
                    failed: Some("trace".into()),
                    decoded: None,
                }));
            }
            Err(TraceProblem::Fetch(e)) => {
                // Kubo did not deliver: says nothing about the node; a later round tries again.
                tracing::info!(token = %token_hex(candidate.token_id), error = %e, "cannot read the latent trace now");
                return Ok(None);
            }
        };
        let same_envelope = worker_envelope(worker.descriptor()) == candidate.minted_envelope;
        let comparison =
            if same_envelope { Comparison::Exact } else { Comparison::RelativeRms(CROSS_ENVELOPE_TOLERANCE) };
        let digest = candidate.expected_pixel_digest.0;
        let report = match worker
            .check_steps(candidate.params.clone(), fetched.entries, fetched.steps.clone(), digest, comparison)
            .await
        {
            Ok(report) => report,
            Err(InferenceError::Busy(_)) => return Ok(None),
            // Entries of the wrong size for this request are the node's doing, not this one's.
            Err(InferenceError::Runtime(RuntimeError::MalformedTrace(reason))) => {
                tracing::warn!(token = %token_hex(candidate.token_id), %reason, "the latent trace does not fit the request");
                return Ok(Some(Checked::Steps {
                    steps: chosen,
                    failed: Some("trace".into()),
                    decoded: None,
                }));
            }
            Err(e) => return Err(e),
        };
        let failed = report.failure.as_ref().and_then(|failure| match failure {
            StepFailure::InitialSample => Some("initial".to_string()),
            StepFailure::Step { step, .. } => Some(format!("step {step}")),
            // Across envelopes the decode is compared by picture instead (`signed_check`).
            StepFailure::Decode if !same_envelope => None,
            StepFailure::Decode => Some("decode".to_string()),
        });
        tracing::debug!(token = %token_hex(candidate.token_id), steps = ?fetched.steps, bytes = fetched.bytes_read, ?failed, "step check");
        Ok(Some(Checked::Steps { steps: fetched.steps, failed, decoded: report.decoded }))
    }

    async fn signed_check(&self, candidate: Candidate, checked: Checked) -> Result<SpotCheck, RoundError> {
        let Some(model) = self.parts.models.get(&candidate.model.0) else {
            return Err(RoundError::Regenerate {
                token: token_hex(candidate.token_id),
                source: InferenceError::Stopped,
            });
        };
        let checker_envelope = worker_envelope(model);
        let (image, step_check) = match checked {
            Checked::Regenerated(image) => (Some(image), None),
            Checked::Steps { steps, failed, decoded } => (decoded, Some(StepCheck { steps, failed })),
        };
        // A step check that failed before the decode names the attested digest: the trace is what failed.
        let regenerated =
            image.as_ref().map_or(candidate.expected_pixel_digest, |i| B256::from(i.pixel_digest()));
        let same_pixels = regenerated == candidate.expected_pixel_digest;
        let perceptual_distance = match &image {
            Some(image) if !same_pixels => Some(self.distance_to_minted(&candidate, image).await?),
            _ => None,
        };
        let outcome = match step_check.as_ref().and_then(|step| step.failed.as_ref()) {
            Some(_) => Outcome::Mismatch,
            None => {
                Outcome::of(same_pixels, checker_envelope == candidate.minted_envelope, perceptual_distance)
            }
        };
        let mut check = SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: token_hex(candidate.token_id),
            model_hash: model.hash.to_string(),
            minted_by: candidate.minted_by.to_string(),
            expected_pixel_digest: candidate.expected_pixel_digest.to_string(),
            regenerated_pixel_digest: regenerated.to_string(),
            perceptual_distance,
            outcome,
            checker: self.parts.operator.address().to_string(),
            checker_envelope,
            minted_envelope: candidate.minted_envelope,
            checked_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
            signature: String::new(),
            step_check,
        };
        signature::sign(&self.parts.operator, &mut check, self.parts.chain_id, self.parts.contract)?;
        Ok(check)
    }

    /// dHash bits in which `image` differs from the minted image (fetched, CID checked).
    async fn distance_to_minted(&self, candidate: &Candidate, image: &Rgb8Image) -> Result<u32, RoundError> {
        let cid = &candidate.image_cid;
        let bytes = verify::fetch_checked(&self.parts.content, cid, verify::MAX_IMAGE_BYTES)
            .await
            .map_err(|source| RoundError::Fetch { cid: cid.clone(), source })?;
        // Decoding and hashing pictures is blocking work.
        let image = image.clone();
        let distance = tokio::task::spawn_blocking(move || {
            png::decode(&bytes).map(|minted| (dhash(&minted) ^ dhash(&image)).count_ones())
        });
        match distance.await {
            Ok(distance) => distance.map_err(|source| RoundError::Decode { cid: cid.clone(), source }),
            Err(e) => Err(RoundError::Interrupted(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};
    use genmint_p2p::spot_check::Outcome;

    use super::*;
    use crate::config::SpotChecksConfig;
    use crate::jobs::testing::fake_trace;
    use crate::jobs::testing::lock;
    use crate::spotcheck::testing::{Bench, our_model, painted};

    #[tokio::test]
    async fn a_faithful_token_is_checked_as_a_match_kept_signed_and_published() {
        let bench = Bench::new();
        let other = Address::repeat_byte(0x0e);
        let token = bench.mint(other, 7, our_model(), &painted(7)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        let published = lock(&bench.network.published).clone();
        assert_eq!(published.len(), 1);
        let check = &published[0];
        assert_eq!((check.outcome, check.token_id.clone()), (Outcome::Match, token_hex(token)));
        assert_eq!(check.checker.parse::<Address>().unwrap(), bench.parts.operator.address());
        let text = check.signed_text(31337, &bench.parts.contract.to_string());
        let signer = check
            .signature
            .parse::<alloy::primitives::Signature>()
            .unwrap()
            .recover_address_from_msg(text)
            .unwrap();
        assert_eq!(signer, bench.parts.operator.address());
        assert_eq!(bench.parts.checks.of_token(token).await.unwrap(), published);
        // Checked once: the next round finds nothing left.
        assert_eq!(checker.round().await.unwrap(), Round::NothingToCheck);
    }

    fn steps_checker(steps: u32) -> Bench {
        Bench::checking(SpotChecksConfig { method: SpotCheckMethod::Steps, steps })
    }

    /// The 8×8, two-step request [`Bench::mint`] makes for `seed`, as the generator sees it.
    fn params(seed: u64) -> genmint_model_runtime::GenerationParams {
        let request = crate::jobs::testing::request(Address::ZERO, our_model(), seed);
        crate::jobs::admission::generation_params(&request, &crate::jobs::testing::descriptor()).unwrap()
    }

    #[tokio::test]
    async fn a_step_check_of_an_honest_trace_matches_and_names_its_steps() {
        let bench = steps_checker(2);
        let trace = fake_trace(&params(7));
        let token =
            bench.mint_traced(Address::repeat_byte(0x0e), 7, our_model(), &painted(7), Some(&trace)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        let check = lock(&bench.network.published)[0].clone();
        assert_eq!((check.outcome, check.token_id.clone()), (Outcome::Match, token_hex(token)));
        let step = check.step_check.clone().expect("a step check");
        assert_eq!((step.steps, step.failed), (vec![0, 1], None), "both of the two steps");
        assert_eq!(check.regenerated_pixel_digest, check.expected_pixel_digest);
        assert_eq!(check.validate_shape(), Ok(()));
    }

    #[tokio::test]
    async fn a_forged_trace_is_a_mismatch_naming_what_failed_and_votes_nothing() {
        let bench = steps_checker(2);
        // A step that is not the model's, and another seed's trace.
        let mut wrong_step = fake_trace(&params(3));
        wrong_step.entries[1].sample[5] += 1.0;
        let disputed = bench
            .mint_traced(Address::repeat_byte(0x0e), 3, our_model(), &painted(3), Some(&wrong_step))
            .await;
        lock(&bench.chain.disputed).push(disputed);
        let other_seed = fake_trace(&params(5));
        bench.mint_traced(Address::repeat_byte(0x0e), 4, our_model(), &painted(4), Some(&other_seed)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        let mut failures = Vec::new();
        for _ in 0..2 {
            assert_eq!(checker.round().await.unwrap(), Round::Checked);
        }
        for check in lock(&bench.network.published).iter() {
            assert_eq!(check.outcome, Outcome::Mismatch, "{check:?}");
            assert_eq!(check.validate_shape(), Ok(()));
            failures.push(check.step_check.clone().unwrap().failed.unwrap());
        }
        // Both fail at their first step: entry 1 is not what step 0 gives (the fake's entry 0 is
        // the same for every seed).
        assert_eq!(failures, ["step 0", "step 0"]);
        assert!(lock(&bench.chain.votes).is_empty(), "a step check re-derives no digest to vote");
    }

    #[tokio::test]
    async fn a_token_without_a_trace_is_re_generated_by_a_steps_checker() {
        let bench = steps_checker(2);
        bench.mint(Address::repeat_byte(0x0e), 7, our_model(), &painted(7)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        let check = lock(&bench.network.published)[0].clone();
        assert_eq!((check.outcome, check.step_check), (Outcome::Match, None));
    }

    #[tokio::test]
    async fn a_forged_token_is_a_mismatch_with_its_distance() {
        let bench = Bench::new();
        let mut forged = painted(3);
        forged.pixels[0] = 255;
        forged.pixels[100] = 0;
        bench.mint(Address::repeat_byte(0x0e), 200, our_model(), &forged).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        let check = lock(&bench.network.published)[0].clone();
        assert_eq!(check.outcome, Outcome::Mismatch);
        assert!(check.perceptual_distance.is_some(), "the pictures were compared");
    }

    #[tokio::test]
    async fn a_re_check_of_a_disputed_token_votes_its_digest_and_an_undisputed_one_does_not() {
        let bench = Bench::new();
        let mut forged = painted(3);
        forged.pixels[0] = 255;
        let disputed = bench.mint(Address::repeat_byte(0x0e), 200, our_model(), &forged).await;
        lock(&bench.chain.disputed).push(disputed);
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        let check = lock(&bench.network.published)[0].clone();
        let votes = lock(&bench.chain.votes).clone();
        assert_eq!(votes, vec![(disputed, check.regenerated_pixel_digest.parse::<B256>().unwrap())]);
        bench.mint(Address::repeat_byte(0x0e), 201, our_model(), &painted(4)).await;
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        assert_eq!(lock(&bench.chain.votes).len(), 1, "no dispute, no vote");
    }

    #[tokio::test]
    async fn a_dispute_over_a_token_checked_before_is_voted_with_that_check() {
        let bench = Bench::new();
        let token = bench.mint(Address::repeat_byte(0x0e), 5, our_model(), &painted(5)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
        assert!(lock(&bench.chain.votes).is_empty());
        lock(&bench.chain.disputed).push(token);
        assert_eq!(checker.round().await.unwrap(), Round::NothingToCheck, "no re-generation");
        let check = lock(&bench.network.published)[0].clone();
        let digest = check.regenerated_pixel_digest.parse::<B256>().unwrap();
        assert_eq!(lock(&bench.chain.votes).clone(), vec![(token, digest)]);
        assert_eq!(checker.round().await.unwrap(), Round::NothingToCheck);
        assert_eq!(lock(&bench.chain.votes).len(), 1, "one vote per dispute");
    }

    #[tokio::test]
    async fn tokens_of_this_node_or_another_model_are_not_candidates() {
        let bench = Bench::new();
        bench.mint(bench.parts.operator.address(), 1, our_model(), &painted(1)).await;
        bench.mint(Address::repeat_byte(0x0e), 2, B256::repeat_byte(0x99), &painted(2)).await;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert_eq!(checker.round().await.unwrap(), Round::NothingToCheck);
        assert!(lock(&bench.network.published).is_empty());
    }

    #[tokio::test]
    async fn a_chain_that_does_not_answer_fails_the_round_for_a_later_try() {
        let bench = Bench::new();
        bench.mint(Address::repeat_byte(0x0e), 1, our_model(), &painted(1)).await;
        *lock(&bench.chain.down) = true;
        let mut checker = SpotChecker::new(bench.parts.clone());
        assert!(matches!(checker.round().await, Err(RoundError::Candidates(_))));
        *lock(&bench.chain.down) = false;
        assert_eq!(checker.round().await.unwrap(), Round::Checked);
    }
}
