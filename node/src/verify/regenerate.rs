//! The optional `regeneration` check (`genmint verify --regenerate`): re-runs the minted request on
//! a local copy of its model, found by model hash, and compares the output with the token's image.
//!
//! Same reproducibility envelope (engine, noise, dtype, device class; the request fixes the
//! scheduler, steps and guidance): the pixel digest must match bit for bit. A different envelope
//! (say a CUDA node's token re-run on a CPU) is not expected to be bit-exact; then the images are
//! compared with a 64-bit difference hash (dHash: luma, box-averaged to 9x8, one bit per
//! horizontal neighbour pair) and pass when at most [`DHASH_THRESHOLD`] bits differ. The check names
//! the envelope fields that differ either way.

use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use genmint_model_runtime::trace::check::{CROSS_ENVELOPE_TOLERANCE, Comparison, StepFailure, check_steps};
use genmint_model_runtime::{
    Control, DeviceChoice, GenerationParams, Generator, Rgb8Image, load_model, model_manifest,
};

use super::Evidence;
use super::steps::FetchedTrace;
use crate::jobs::admission::generation_params;
pub use crate::provenance::fingerprint::dhash;

/// The most dHash bits two renderings of one request may differ in across envelopes (the same
/// threshold peer spot checks use).
pub const DHASH_THRESHOLD: u32 = genmint_p2p::spot_check::SIMILAR_MAX_DISTANCE;

/// The model directory under `models_dir` whose content hash is `hash`.
pub fn find_model(models_dir: &Path, hash: B256) -> Option<PathBuf> {
    let entries = std::fs::read_dir(models_dir).ok()?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .find(|dir| model_manifest(dir).is_ok_and(|manifest| manifest.hash().0 == hash.0))
}

/// The verified request loaded to run again: the local model, the request's parameters, what
/// the mint attested, and the envelope fields in which this machine differs from the minting node.
struct Rerun<'a> {
    generator: Box<dyn Generator>,
    params: GenerationParams,
    attested: B256,
    minted: &'a Rgb8Image,
    differing: Vec<String>,
}

fn rerun<'a>(evidence: &'a Evidence, models_dir: &Path, device: DeviceChoice) -> Result<Rerun<'a>, String> {
    let request = evidence.request.as_ref().ok_or("no verified request to re-run")?;
    let attested = evidence.pixel_digest.ok_or("no attested pixel digest to compare with")?;
    let minted = evidence.image.as_ref().ok_or("no minted image to compare with")?;
    let envelope =
        &evidence.metadata.as_ref().ok_or("no metadata with a reproducibility envelope")?.provenance.envelope;
    let dir = find_model(models_dir, request.modelHash).ok_or_else(|| {
        format!(
            "model {} is not installed under {} (`genmint models list` shows what is); copy it there to re-generate",
            request.modelHash,
            models_dir.display()
        )
    })?;
    let generator = load_model(&dir, device).map_err(|e| format!("loading {}: {e}", dir.display()))?;
    let params = generation_params(request, generator.descriptor()).map_err(|e| e.to_string())?;
    let local = &generator.descriptor().envelope;
    let differing: Vec<String> = [
        ("engine", &envelope.engine, &local.engine),
        ("noise", &envelope.noise, &local.noise),
        ("dtype", &envelope.dtype, &local.dtype),
        ("device_class", &envelope.device_class, &local.device_class),
    ]
    .into_iter()
    .filter(|(_, minted, here)| minted != here)
    .map(|(field, minted, here)| format!("{field} {minted} (minted) vs {here} (here)"))
    .collect();
    Ok(Rerun { generator, params, attested, minted, differing })
}

/// Re-generates the verified request with the model in `models_dir` and compares.
pub fn check(evidence: &Evidence, models_dir: &Path, device: DeviceChoice) -> Result<String, String> {
    let Rerun { mut generator, params, attested, minted, differing } = rerun(evidence, models_dir, device)?;
    let image = generator.generate(&params, &mut |_| Control::Continue).map_err(|e| e.to_string())?;
    let digest = B256::from(image.pixel_digest());
    let local = &generator.descriptor().envelope;
    let distance = dhash(minted) ^ dhash(&image);
    let distance = distance.count_ones();
    match (digest == attested, differing.is_empty()) {
        (true, _) => Ok(format!("re-generated bit-exact on {}: pixel digest {digest}", local.device_class)),
        (false, true) => Err(format!(
            "same reproducibility envelope, but the re-generated pixels hash to {digest}, not the attested {attested} \
             (dHash distance {distance}/64)"
        )),
        (false, false) if distance <= DHASH_THRESHOLD => Ok(format!(
            "not bit-exact, as expected across envelopes ({}); perceptually the same: dHash distance {distance}/64 ≤ {DHASH_THRESHOLD}",
            differing.join(", ")
        )),
        (false, false) => Err(format!(
            "the re-generated image differs: dHash distance {distance}/64 > {DHASH_THRESHOLD} (envelopes differ: {})",
            differing.join(", ")
        )),
    }
}

/// Replays the steps of `fetched` (entries of the token's committed trace, already checked
/// against its root) with the model in `models_dir`: bit for bit in the minting node's envelope,
/// within [`CROSS_ENVELOPE_TOLERANCE`] relative RMS and [`DHASH_THRESHOLD`] dHash bits otherwise.
pub fn check_trace(
    evidence: &Evidence,
    fetched: &FetchedTrace,
    models_dir: &Path,
    device: DeviceChoice,
) -> Result<String, String> {
    let Rerun { mut generator, params, attested, minted, differing } = rerun(evidence, models_dir, device)?;
    let comparison = if differing.is_empty() {
        Comparison::Exact
    } else {
        Comparison::RelativeRms(CROSS_ENVELOPE_TOLERANCE)
    };
    let started = std::time::Instant::now();
    let report =
        check_steps(generator.as_mut(), &params, &fetched.entries, &fetched.steps, &attested.0, comparison)
            .map_err(|e| e.to_string())?;
    let steps: Vec<String> = fetched.steps.iter().map(u32::to_string).collect();
    let cost = format!(
        "{} of {} steps replayed ({}) in {} ms, decode {} ms, {} trace bytes read",
        steps.len(),
        params.steps,
        steps.join(", "),
        started.elapsed().as_millis(),
        report.decode_time.as_millis(),
        fetched.bytes_read
    );
    let decoded_near = report.decoded.as_ref().map(|image| (dhash(minted) ^ dhash(image)).count_ones());
    match (&report.failure, differing.is_empty(), decoded_near) {
        (None, _, _) => Ok(format!("the committed trace holds: {cost}")),
        (Some(StepFailure::Decode), false, Some(distance)) if distance <= DHASH_THRESHOLD => Ok(format!(
            "the committed trace holds within tolerance across envelopes ({}); its final entry decodes \
             {distance}/64 dHash bits from the minted image: {cost}",
            differing.join(", ")
        )),
        (Some(failure), _, _) => Err(format!("{failure}: {cost}")),
    }
}
