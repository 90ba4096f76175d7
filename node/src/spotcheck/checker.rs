//! This node's spot checks: every interval, when no job waits for the generator, it re-generates
//! one candidate token at the lowest priority (a creator's job arriving meanwhile cancels it at the
//! next step, and the token waits for a later round), compares the pixel digest with the attested
//! one (and, when they differ, the picture with the minted image by dHash), and keeps, publishes
//! and logs the signed outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use genmint_model_runtime::{GenerationParams, Rgb8Image, RuntimeError};
use genmint_p2p::NetworkError;
use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION, SpotCheck};

use super::candidates::{Candidate, Candidates, token_hex};
use super::signature;
use crate::jobs::inference::InferenceError;
use crate::jobs::pipeline::Pipeline;
use crate::network::Network;
use crate::provenance::png;
use crate::verify::{self, regenerate::dhash};

/// How often a running re-generation looks for creators' jobs to make way for.
const YIELD_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How one round ended.
enum Round {
    Checked,
    NothingToCheck,
    /// A creator's job came first; the token waits for a later round.
    MadeWay,
    NetworkClosed,
}

/// Samples and re-generates other nodes' tokens.
pub struct SpotChecker {
    network: Arc<Network>,
    pipeline: Arc<Pipeline>,
    operator: PrivateKeySigner,
    candidates: Candidates,
}

impl SpotChecker {
    pub fn new(network: Arc<Network>, pipeline: Arc<Pipeline>, operator: PrivateKeySigner) -> Self {
        Self { network, pipeline, operator, candidates: Candidates::default() }
    }

    /// Checks one token per `interval` (skipping rounds while jobs wait) until the network stops.
    pub async fn run(mut self, interval: Duration) {
        let mut rounds = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            if self.jobs_waiting() {
                tracing::debug!("jobs are waiting; no spot check this round");
                continue;
            }
            match self.round().await {
                Ok(Round::Checked | Round::MadeWay) => {}
                Ok(Round::NothingToCheck) => tracing::debug!("no recent token of this model to spot-check"),
                Ok(Round::NetworkClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "spot check failed; trying again next round")
                }
            }
        }
    }

    fn jobs_waiting(&self) -> bool {
        self.pipeline.load().map_or(true, |(queued, _)| queued > 0)
    }

    async fn round(&mut self) -> Result<Round> {
        let Some(candidate) = self.candidates.next(&self.pipeline).await? else {
            return Ok(Round::NothingToCheck);
        };
        let token = candidate.token_id;
        let image = match self.regenerate(candidate.params.clone()).await {
            Ok(Some(image)) => image,
            Ok(None) => {
                tracing::debug!(token = %token_hex(token), "made way for a creator's job");
                return Ok(Round::MadeWay);
            }
            Err(e) => {
                // Not again: a token this node cannot generate would fail every round.
                self.candidates.pass_over(token);
                return Err(e).with_context(|| format!("re-generating token {}", token_hex(token)));
            }
        };
        let check = self.signed_check(candidate, &image).await?;
        if let Err(e) = check.validate_shape() {
            // E.g. the minting node recorded an envelope peers would refuse: nothing to say about it.
            tracing::warn!(token = %check.token_id, error = %e, "spot check not kept");
            self.candidates.pass_over(token);
            return Ok(Round::Checked);
        }
        self.pipeline.store().record_spot_check(&check)?;
        super::log(&check, "this node");
        match self.network.handle().publish_spot_check(check).await {
            Ok(()) => Ok(Round::Checked),
            Err(NetworkError::Closed) => Ok(Round::NetworkClosed),
            Err(e) => {
                tracing::warn!(token = %token_hex(token), error = %e, "spot check kept here but not published");
                Ok(Round::Checked)
            }
        }
    }

    /// Runs the generation, cancelling it as soon as a job waits for the generator: `None` then.
    async fn regenerate(&self, params: GenerationParams) -> Result<Option<Rgb8Image>, InferenceError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let generation = self.pipeline.inference().generate(params, cancel.clone(), Box::new(|_| {}));
        tokio::pin!(generation);
        let mut watch = tokio::time::interval(YIELD_CHECK_INTERVAL);
        loop {
            tokio::select! {
                result = &mut generation => return match result {
                    Ok(image) => Ok(Some(image)),
                    Err(InferenceError::Runtime(RuntimeError::Cancelled) | InferenceError::Busy(_)) => Ok(None),
                    Err(e) => Err(e),
                },
                _ = watch.tick() => {
                    if self.jobs_waiting() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    async fn signed_check(&self, candidate: Candidate, image: &Rgb8Image) -> Result<SpotCheck> {
        let model = self.pipeline.inference().descriptor();
        let regenerated = B256::from(image.pixel_digest());
        let checker_envelope = CheckEnvelope {
            engine: model.envelope.engine.clone(),
            dtype: model.envelope.dtype.clone(),
            device_class: model.envelope.device_class.clone(),
        };
        let same_pixels = regenerated == candidate.expected_pixel_digest;
        let perceptual_distance =
            if same_pixels { None } else { Some(self.distance_to_minted(&candidate, image).await?) };
        let mut check = SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: token_hex(candidate.token_id),
            model_hash: model.hash.to_string(),
            minted_by: candidate.minted_by.to_string(),
            expected_pixel_digest: candidate.expected_pixel_digest.to_string(),
            regenerated_pixel_digest: regenerated.to_string(),
            perceptual_distance,
            outcome: Outcome::of(
                same_pixels,
                checker_envelope == candidate.minted_envelope,
                perceptual_distance,
            ),
            checker: self.operator.address().to_string(),
            checker_envelope,
            minted_envelope: candidate.minted_envelope,
            checked_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
            signature: String::new(),
        };
        signature::sign(&self.operator, &mut check, self.pipeline.chain_id(), self.pipeline.contract())
            .context("signing the spot check")?;
        Ok(check)
    }

    /// dHash bits in which `image` differs from the minted image (fetched, CID checked).
    async fn distance_to_minted(&self, candidate: &Candidate, image: &Rgb8Image) -> Result<u32> {
        let bytes =
            verify::fetch_checked(self.pipeline.ipfs(), &candidate.image_cid, verify::MAX_IMAGE_BYTES)
                .await
                .with_context(|| format!("fetching the minted image {}", candidate.image_cid))?;
        let minted = png::decode(&bytes)
            .with_context(|| format!("decoding the minted image {}", candidate.image_cid))?;
        Ok((dhash(&minted) ^ dhash(image)).count_ones())
    }
}
