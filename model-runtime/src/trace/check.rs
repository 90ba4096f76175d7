//! The step check: instead of re-generating a token, re-run `K` of its `N` denoising steps from
//! the node's committed trace, and check both ends of the trace.
//!
//! ```text
//! checker picks steps i₁…i_K at random ─► needs entries 0, N, and i, i+1 for each i (entries_needed)
//! each entry's record must hash to its leaf, the leaves to the root the metadata records
//! entry 0      ⇔ the seed's noise × init_noise_sigma                    (bit for bit, any envelope)
//! step i from entry i (text recomputed, same guidance, same scheduler) ⇔ entry i + 1
//!                                       (bit for bit in the node's envelope, else relative RMS)
//! decode(entry N) ⇔ the attested pixel digest                           (bit for bit in the envelope)
//! ```
//!
//! What it proves: a trace passes every check only when each of its transitions is the model's
//! own step, so a node that skipped or faked `b` of the `N` steps is caught with probability
//! `1 − C(N−b, K) / C(N, K)` (at least `1 − (1 − b/N)^K`); `K = N` is as strong as re-generating.
//! It costs `K` UNet passes, the text encoder and one decode instead of `N` passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::TraceEntry;
use crate::{GenerationParams, Generator, Rgb8Image, RuntimeError};

/// The relative RMS a replayed step may differ from the committed entry by when the checker runs
/// in another envelope: twice the largest distance (2.7e-3) an honest node with its UNet in f16
/// showed against an f32 checker on the default model over 100 seeds, rounded up
/// (`scripts/bench-latent-check.sh`).
pub const CROSS_ENVELOPE_TOLERANCE: f64 = 6e-3;

/// How a replayed step is compared with the trace's next entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    /// Bit for bit: the checker runs in the node's reproducibility envelope.
    Exact,
    /// Relative RMS at most this (sample and state together): another engine, dtype or device.
    RelativeRms(f64),
}

impl Comparison {
    fn accepts(self, replayed: &TraceEntry, committed: &TraceEntry) -> bool {
        match self {
            Comparison::Exact => replayed.bit_identical(committed),
            Comparison::RelativeRms(bound) => replayed.relative_rms(committed) <= bound,
        }
    }
}

/// `count` distinct steps of `0..steps`, drawn from `rng`, in increasing order (all of them when
/// `count >= steps`).
pub fn sample_steps(rng: &mut dyn RngCore, steps: u32, count: u32) -> Vec<u32> {
    let mut pool: Vec<u32> = (0..steps).collect();
    let take = count.min(steps) as usize;
    // A partial Fisher-Yates shuffle; the modulo bias over u64 is far below anything that matters.
    for i in 0..take {
        let j = i + (rng.next_u64() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    let mut chosen = pool[..take].to_vec();
    chosen.sort_unstable();
    chosen
}

/// The entries a check of `checked` steps reads: 0, `steps`, and `i`, `i + 1` for each one.
pub fn entries_needed(steps: u32, checked: &[u32]) -> BTreeSet<u32> {
    let mut needed: BTreeSet<u32> = [0, steps].into();
    for &i in checked {
        needed.extend([i, i + 1]);
    }
    needed
}

/// The first thing that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub enum StepFailure {
    /// Entry 0 is not the seed's noise.
    InitialSample,
    /// Step `step` from entry `step` does not give entry `step + 1`; `distance` is the
    /// replay's relative RMS from it.
    Step { step: u32, distance: f64 },
    /// The final entry does not decode to the attested pixels.
    Decode,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFailure::InitialSample => f.write_str("trace entry 0 is not the seed's noise"),
            StepFailure::Step { step, distance } => {
                write!(
                    f,
                    "step {step} replayed does not give entry {} (relative RMS {distance:.3e})",
                    step + 1
                )
            }
            StepFailure::Decode => f.write_str("the final entry does not decode to the attested pixels"),
        }
    }
}

/// What a step check found, and what it cost.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The steps replayed, in order, each with the replay's relative RMS from the committed entry.
    pub distances: Vec<(u32, f64)>,
    /// `None` when everything held.
    pub failure: Option<StepFailure>,
    /// The final entry's picture (to compare by fingerprint where the envelopes differ).
    pub decoded: Option<Rgb8Image>,
    /// Text conditioning and the replayed steps.
    pub replay_time: Duration,
    /// The final entry's decode (the VAE, for latent models).
    pub decode_time: Duration,
}

/// Checks the trace `entries` (which must hold [`entries_needed`] for `checked`, each already
/// checked against its leaf) of a request that attested `pixel_digest`: entry 0, every `checked`
/// step under `comparison`, then the final decode. Stops at the first failure. An error means
/// the check could not run (the generator failed), not that the trace is wrong.
pub fn check_steps(
    generator: &mut dyn Generator,
    params: &GenerationParams,
    entries: &BTreeMap<u32, TraceEntry>,
    checked: &[u32],
    pixel_digest: &[u8; 32],
    comparison: Comparison,
) -> Result<StepReport, RuntimeError> {
    let missing = |index: u32| RuntimeError::MalformedTrace(format!("the check needs entry {index}"));
    let entry = |index: u32| entries.get(&index).ok_or_else(|| missing(index));
    let mut report = StepReport {
        distances: Vec::new(),
        failure: None,
        decoded: None,
        replay_time: Duration::ZERO,
        decode_time: Duration::ZERO,
    };
    let started = Instant::now();
    if !generator.initial_entry(params)?.bit_identical(entry(0)?) {
        report.failure = Some(StepFailure::InitialSample);
        return Ok(report);
    }
    let from = checked.iter().map(|&i| Ok((i, entry(i)?))).collect::<Result<Vec<_>, RuntimeError>>()?;
    let replayed = generator.replay_steps(params, &from)?;
    report.replay_time = started.elapsed();
    for (&step, next) in checked.iter().zip(&replayed) {
        let committed = entry(step + 1)?;
        let distance = next.relative_rms(committed);
        report.distances.push((step, distance));
        if report.failure.is_none() && !comparison.accepts(next, committed) {
            report.failure = Some(StepFailure::Step { step, distance });
        }
    }
    if report.failure.is_some() {
        return Ok(report);
    }
    let started = Instant::now();
    let image = generator.decode_entry(params, entry(params.steps)?)?;
    report.decode_time = started.elapsed();
    if image.pixel_digest() != *pixel_digest {
        report.failure = Some(StepFailure::Decode);
    }
    report.decoded = Some(image);
    Ok(report)
}

/// The chance that `checked` random steps of `steps` miss all of `forged` forged ones:
/// `C(steps − forged, checked) / C(steps, checked)`.
pub fn miss_probability(steps: u32, forged: u32, checked: u32) -> f64 {
    let checked = checked.min(steps);
    (0..checked).map(|i| f64::from(steps.saturating_sub(forged + i)) / f64::from(steps - i)).product()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn sampled_steps_are_distinct_in_range_and_cover_every_step() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let steps = sample_steps(&mut rng, 10, 2);
            assert_eq!(steps.len(), 2);
            assert!(steps[0] < steps[1] && steps[1] < 10);
            seen.extend(steps);
        }
        assert_eq!(seen.len(), 10);
        assert_eq!(sample_steps(&mut rng, 3, 5), vec![0, 1, 2]);
        assert_eq!(entries_needed(10, &[3, 4]), [0, 3, 4, 5, 10].into());
    }

    #[test]
    fn miss_probabilities() {
        assert_eq!(miss_probability(10, 0, 2), 1.0);
        assert!((miss_probability(10, 1, 2) - 0.8).abs() < 1e-12);
        assert!((miss_probability(10, 5, 2) - 20.0 / 90.0).abs() < 1e-12);
        assert_eq!(miss_probability(10, 1, 10), 0.0);
    }
}
