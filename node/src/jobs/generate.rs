//! The local steps up to the chain: generate the image on the inference thread (`Queued` →
//! `Generating` → `Generated`, the PNG on disk), then mark it with the token's invisible
//! watermark, pin it with its content credentials and the token metadata and sign the attestation
//! (`Generated` → `Pinned`). The attestation's pixel digest is the raw output's; the metadata also
//! records the marked pixels' digest. PNG, watermark and C2PA work runs on blocking threads.
//!
//! When the model cut the prompt or the negative prompt to fit its text encoders, the job says so
//! just before `Generated`: a warning in the log and a `notice` event per text cut. Neither the
//! job record nor the token metadata changes: the request as signed is the provenance.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy::primitives::B256;
use genmint_model_runtime::trace::{LatentTrace, TRACE_FORMAT, TraceIndex};
use genmint_model_runtime::{ModelDescriptor, ModelHash, Progress, Rgb8Image, RuntimeError, TextFit};

use super::admission;
use super::error::{JobError, StepError};
use super::events::JobEvent;
use super::inference::{Generation, Inference, InferenceError};
use super::service::{Jobs, now_unix};
use super::state::JobState;
use super::store::{JobOutputs, JobRecord};
use crate::fs::FileError;
use crate::ipfs::Cid;
use crate::provenance::credentials::SoftBindings;
use crate::provenance::eip712::{Attestation, SignedRequest, sign_attestation};
use crate::provenance::fingerprint;
use crate::provenance::ids::{JobId, PixelDigest};
use crate::provenance::metadata::{
    Envelope, LatentTraceRecord, MetadataInput, PROVENANCE_VERSION, Provenance, TokenMetadata,
    WatermarkRecord,
};
use crate::provenance::png;
use crate::provenance::watermark::{self, WatermarkTag};

/// The image files a job leaves on disk: the model's raw output, kept for re-pinning.
pub(super) fn image_path(dir: &Path, id: JobId) -> PathBuf {
    dir.join(format!("{id}.png"))
}

/// The generation's latent trace beside its image, pinned with it (`genmint-latent-trace-v1`).
pub(super) fn trace_path(dir: &Path, id: JobId) -> PathBuf {
    dir.join(format!("{id}.trace"))
}

impl Jobs {
    pub(super) async fn generate(&self, job: &JobRecord) -> Result<(), StepError> {
        let signed = Self::signed(job)?;
        if signed.request.deadline <= now_unix() {
            return self.advance(job.id, JobState::Expired, JobOutputs::default()).await;
        }
        let params = admission::generation_params(&signed.request, self.model_of(&signed)?)
            .map_err(StepError::fatal)?;
        let inference = self.load_model(job.id, &signed).await?;
        self.advance(job.id, JobState::Generating, JobOutputs::default()).await?;
        let Generation { image, trace, text_fit } =
            match self.run_generation(&inference, job.id, params).await {
                Ok(generation) => generation,
                Err(InferenceError::Runtime(RuntimeError::Cancelled)) => return Err(StepError::Stopped),
                Err(e @ InferenceError::Busy(_)) => {
                    // Give the slot back to the queue and try again shortly.
                    self.advance(job.id, JobState::Queued, JobOutputs::default()).await?;
                    return Err(StepError::Retry(e.into()));
                }
                Err(e) => return Err(StepError::fatal(e)),
            };
        for message in cut_notices(&text_fit) {
            tracing::warn!(job = %job.id, "{message}");
            self.events.publish(JobEvent::Notice { id: job.id, message });
        }
        let digest = PixelDigest(image.pixel_digest().into());
        let path = image_path(&self.parts.images_dir, job.id);
        let trace_file = trace_path(&self.parts.images_dir, job.id);
        tokio::task::spawn_blocking(move || {
            write_trace(trace.as_ref(), &trace_file)?;
            write_png(&image, &path)
        })
        .await??;
        let outputs = JobOutputs { pixel_digest: Some(digest), ..JobOutputs::default() };
        self.advance(job.id, JobState::Generated, outputs).await
    }

    /// Runs the generation, stopping it at the next denoising step when the job is cancelled or
    /// the node shuts down.
    async fn run_generation(
        &self,
        inference: &Inference,
        id: JobId,
        params: genmint_model_runtime::GenerationParams,
    ) -> Result<Generation, InferenceError> {
        let cancel = self.cancel_flag(id, true).unwrap_or_default();
        let events = self.events.clone();
        let progress = Box::new(move |p: Progress| {
            // A preview that does not encode is left out: it is only a preview.
            let preview = p.preview.as_ref().and_then(|image| crate::provenance::png::encode(image).ok());
            events.publish(JobEvent::Progress {
                id,
                step: p.step,
                total: p.total,
                preview: preview.map(Arc::from),
            });
        });
        let generation = inference.generate(params, cancel.clone(), progress);
        tokio::pin!(generation);
        tokio::select! {
            result = &mut generation => result,
            () = self.tasks().stopping() => {
                cancel.store(true, Ordering::Relaxed);
                generation.await
            }
        }
    }

    pub(super) async fn pin(&self, job: &JobRecord) -> Result<(), StepError> {
        let signed = Self::signed(job)?;
        let path = image_path(&self.parts.images_dir, job.id);
        let expected = job.outputs.pixel_digest;
        let credentials = Arc::clone(&self.parts.credentials);
        let (chain_id, contract, token_id) = (self.parts.chain_id, self.parts.contract, job.id.0);
        let model_hash = signed.request.modelHash;
        // The file on disk stays the model's output; the pinned file is that output with the
        // invisible watermark, then its content credentials, the last change before pinning.
        let (pixels, watermark, image) = tokio::task::spawn_blocking(move || {
            let bytes =
                std::fs::read(&path).map_err(FileError::on("reading", &path)).map_err(StepError::fatal)?;
            let pixels = png::decode(&bytes).map_err(StepError::fatal)?;
            if Some(PixelDigest(pixels.pixel_digest().into())) != expected {
                return Err(StepError::invalid(format!("{path:?} no longer holds the generated image")));
            }
            let tag = WatermarkTag::for_token(chain_id, contract, token_id);
            let (marked, watermark) = mark(&pixels, tag);
            let pinned = match &marked {
                Some(marked) => png::encode(marked).map_err(StepError::fatal)?,
                None => bytes,
            };
            let marked_digest = marked.as_ref().map(|marked| B256::from(marked.pixel_digest()));
            let raw_digest = B256::from(pixels.pixel_digest());
            let token =
                credentials.assertion(chain_id, contract, token_id, model_hash, raw_digest, marked_digest);
            let soft = SoftBindings {
                watermark: marked.is_some().then_some(tag),
                fingerprint: Some(fingerprint::dhash(marked.as_ref().unwrap_or(&pixels))),
            };
            let image = credentials
                .embed(&pinned, &token, &soft)
                .map_err(|e| StepError::Fatal(JobError::Credentials(e)))?;
            Ok((pixels, watermark, image))
        })
        .await??;
        let image_cid = self.parts.content.add_and_pin(image).await?;
        let latent_trace = self.pin_trace(job.id).await?;
        let metadata = self.metadata(job, &signed, &pixels, watermark, latent_trace, &image_cid)?;
        let metadata_cid = self.parts.content.add_and_pin(metadata).await?;
        let attestation =
            self.attestation(job.id, &signed, job.outputs.pixel_digest, &image_cid, &metadata_cid)?;
        let signature = sign_attestation(&self.parts.operator, &attestation, &self.domain)
            .map_err(|e| StepError::Fatal(JobError::Signing(e)))?;
        let outputs = JobOutputs {
            image_cid: Some(image_cid),
            metadata_cid: Some(metadata_cid),
            node_signature: Some(signature),
            ..JobOutputs::default()
        };
        self.advance(job.id, JobState::Pinned, outputs).await
    }

    /// Pins the job's latent trace, when its generation left one, and says where it is and what
    /// root it commits to. The file is read back and checked (its leaves give its root) first.
    async fn pin_trace(&self, id: JobId) -> Result<Option<LatentTraceRecord>, StepError> {
        let path = trace_path(&self.parts.images_dir, id);
        let read = tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(bytes) => {
                let index =
                    TraceIndex::parse(&bytes).map_err(|e| StepError::invalid(format!("{path:?}: {e}")))?;
                Ok(Some((bytes, index)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StepError::fatal(FileError::on("reading", &path)(e))),
        });
        let Some((bytes, index)) = read.await?? else { return Ok(None) };
        let size = bytes.len() as u64;
        let cid = self.parts.content.add_and_pin(bytes).await?;
        Ok(Some(LatentTraceRecord {
            format: TRACE_FORMAT.to_string(),
            cid: cid.to_string(),
            merkle_root: index.root,
            steps: index.steps,
            bytes: size,
        }))
    }

    /// The token metadata JSON for a generated image pinned as `image_cid`.
    fn metadata(
        &self,
        job: &JobRecord,
        signed: &SignedRequest,
        pixels: &Rgb8Image,
        watermark: WatermarkRecord,
        latent_trace: Option<LatentTraceRecord>,
        image_cid: &Cid,
    ) -> Result<Vec<u8>, StepError> {
        let descriptor = self.model_of(signed)?;
        let request = &signed.request;
        let provenance = Provenance {
            version: PROVENANCE_VERSION,
            chain_id: self.parts.chain_id,
            contract: self.parts.contract.to_checksum(None),
            request: serde_json::to_value(request).map_err(|e| StepError::invalid(e.to_string()))?,
            creator_signature: signed.signature.to_string(),
            request_digest: job.id.to_string(),
            model_hash: descriptor.hash.to_string(),
            model_name: descriptor.name.clone(),
            pixel_digest: PixelDigest(pixels.pixel_digest().into()).to_string(),
            image_cid: image_cid.to_string(),
            width: pixels.width,
            height: pixels.height,
            node: self.operator().to_checksum(None),
            envelope: Envelope {
                engine: descriptor.envelope.engine.clone(),
                noise: descriptor.envelope.noise.clone(),
                scheduler: request.scheduler.clone(),
                steps: request.steps,
                guidance: request.guidance as f32 / 100.0,
                dtype: descriptor.envelope.dtype.clone(),
                device_class: descriptor.envelope.device_class.clone(),
            },
            watermark: Some(watermark),
            latent_trace,
        };
        let external_url = Some(format!("{}/tokens/{}", self.parts.public_url, job.id));
        let metadata = TokenMetadata::new(MetadataInput {
            prompt: &request.prompt,
            seed: request.seed,
            external_url,
            provenance,
        });
        metadata.to_bytes().map_err(|e| StepError::invalid(e.to_string()))
    }

    /// The worker of the model a request names. The job was admitted for it, so a model missing
    /// now was taken out of the configuration since.
    fn model_of(&self, signed: &SignedRequest) -> Result<&ModelDescriptor, StepError> {
        self.parts.models.get(&signed.request.modelHash.0).ok_or_else(|| {
            StepError::invalid(format!(
                "this node no longer serves model {} (it serves {})",
                signed.request.modelHash,
                self.parts.models.describe()
            ))
        })
    }

    /// The request's model's worker, loading the model first (the job's events say so) if needed.
    async fn load_model(&self, id: JobId, signed: &SignedRequest) -> Result<Inference, StepError> {
        let hash = signed.request.modelHash.0;
        if !self.parts.models.is_loaded(&hash).await {
            self.events.publish(JobEvent::Loading { id, model: ModelHash(hash) });
        }
        self.parts.models.worker(&hash).await.map_err(|e| StepError::invalid(e.to_string()))
    }

    /// The attestation this node signs for a job's outputs.
    pub(super) fn attestation(
        &self,
        id: JobId,
        signed: &SignedRequest,
        pixel_digest: Option<PixelDigest>,
        image_cid: &Cid,
        metadata_cid: &Cid,
    ) -> Result<Attestation, StepError> {
        let pixel_digest = pixel_digest.ok_or_else(|| StepError::invalid("the job has no pixel digest"))?;
        Ok(Attestation {
            requestDigest: id.0,
            modelHash: signed.request.modelHash,
            pixelDigest: pixel_digest.0,
            imageCid: image_cid.to_string(),
            metadataCid: metadata_cid.to_string(),
            node: self.operator(),
        })
    }
}

/// What the creator is told of the texts the model cut to fit its text encoders: one sentence
/// per text cut, none when everything fits.
fn cut_notices(fit: &TextFit) -> Vec<String> {
    let limit = match fit.token_length {
        0 => "the model's token limit".to_string(),
        length => format!("the model's {length} tokens"),
    };
    [("prompt", fit.prompt_tokens_dropped), ("negative prompt", fit.negative_prompt_tokens_dropped)]
        .into_iter()
        .filter(|&(_, dropped)| dropped > 0)
        .map(|(text, dropped)| {
            let unused = if dropped == 1 { "token is".to_string() } else { format!("{dropped} tokens are") };
            format!("the {text} was cut to fit {limit}: the last {unused} not used")
        })
        .collect()
}

/// The raw output with the token's watermark, and what the metadata records of it; no marked image
/// (and the reason in the record) when the image is too small to carry one.
fn mark(raw: &Rgb8Image, tag: WatermarkTag) -> (Option<Rgb8Image>, WatermarkRecord) {
    let raw_digest = PixelDigest(raw.pixel_digest().into()).to_string();
    match watermark::embed(raw, tag) {
        Ok(marked) => {
            let record = WatermarkRecord {
                algorithm: watermark::ALGORITHM.into(),
                embedded: true,
                tag: Some(tag.to_string()),
                marked_pixel_digest: PixelDigest(marked.pixel_digest().into()).to_string(),
                reason: None,
            };
            (Some(marked), record)
        }
        Err(e) => {
            tracing::info!(size = %format!("{}x{}", raw.width, raw.height), "no watermark: {e}");
            let record = WatermarkRecord {
                algorithm: watermark::ALGORITHM.into(),
                embedded: false,
                tag: None,
                marked_pixel_digest: raw_digest,
                reason: Some(e.to_string()),
            };
            (None, record)
        }
    }
}

/// Writes the PNG next to its final name and renames it, so a crash never leaves half a file.
/// Writes the trace file (through a partial file, as the image), or removes one an earlier run
/// of the job left when this generation recorded none.
fn write_trace(trace: Option<&LatentTrace>, path: &Path) -> Result<(), StepError> {
    let Some(trace) = trace else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StepError::Retry(FileError::on("removing", path)(e).into()))
            }
            _ => Ok(()),
        };
    };
    let bytes = trace.to_bytes().map_err(|e| StepError::invalid(e.to_string()))?;
    let partial = path.with_extension("trace.partial");
    std::fs::write(&partial, &bytes)
        .map_err(|e| StepError::Retry(FileError::on("writing", &partial)(e).into()))?;
    std::fs::rename(&partial, path).map_err(|e| StepError::Retry(FileError::on("writing", path)(e).into()))
}

fn write_png(image: &Rgb8Image, path: &Path) -> Result<(), StepError> {
    let bytes = png::encode(image).map_err(StepError::fatal)?;
    let partial = path.with_extension("png.partial");
    std::fs::write(&partial, &bytes)
        .map_err(|e| StepError::Retry(FileError::on("writing", &partial)(e).into()))?;
    std::fs::rename(&partial, path).map_err(|e| StepError::Retry(FileError::on("writing", path)(e).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::testing::{FAKE_TOKEN_LENGTH, Harness, MODEL, Setup};

    #[test]
    fn cut_notices_say_which_text_lost_how_many_tokens() {
        let fit = |prompt, negative, token_length| TextFit {
            prompt_tokens_dropped: prompt,
            negative_prompt_tokens_dropped: negative,
            token_length,
        };
        assert!(cut_notices(&fit(0, 0, 77)).is_empty());
        assert_eq!(
            cut_notices(&fit(12, 0, 77)),
            ["the prompt was cut to fit the model's 77 tokens: the last 12 tokens are not used"]
        );
        assert_eq!(
            cut_notices(&fit(2, 1, 0)),
            [
                "the prompt was cut to fit the model's token limit: the last 2 tokens are not used",
                "the negative prompt was cut to fit the model's token limit: the last token is not used",
            ]
        );
    }

    #[tokio::test]
    async fn a_cut_prompt_is_told_in_the_job_events_before_it_is_generated() {
        let h = Harness::new(Setup::default());
        let mut events = h.jobs.events().subscribe();
        let mut request = h.request(MODEL, 21);
        // The fake takes 6 words: 18 lose 12, 7 lose 1.
        request.prompt =
            "a small red fox asleep under an old oak tree at dawn in soft golden light and mist".into();
        request.negativePrompt = "blurry dark grainy low contrast washed out".into();
        let (cut, _) = h.jobs.submit(&h.sign(request)).await.unwrap();
        let (fits, _) = h.jobs.submit(&h.sign(h.request(MODEL, 22))).await.unwrap();
        let minted = h.wait_for(cut.id, JobState::Minted).await;
        h.wait_for(fits.id, JobState::Minted).await;

        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            match event {
                JobEvent::Notice { id, message } => seen.push((id, message)),
                JobEvent::State(job) if job.id == cut.id && job.state == JobState::Generated => {
                    seen.push((job.id, "generated".into()))
                }
                _ => {}
            }
        }
        let tokens = FAKE_TOKEN_LENGTH;
        assert_eq!(
            seen,
            [
                (
                    cut.id,
                    format!(
                        "the prompt was cut to fit the model's {tokens} tokens: the last 12 tokens are not used"
                    )
                ),
                (
                    cut.id,
                    format!(
                        "the negative prompt was cut to fit the model's {tokens} tokens: the last token is not used"
                    )
                ),
                (cut.id, "generated".into()),
            ],
            "one notice per text cut, before the image is generated, and none for a prompt that fits"
        );
        // The job's record and its token's metadata say nothing new.
        assert_eq!(minted.outputs.error, None);
        let metadata = h.content.get(minted.outputs.metadata_cid.as_ref().unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&metadata).contains("not used"));
    }

    #[tokio::test]
    async fn a_recorded_trace_is_pinned_and_named_by_the_metadata() {
        let h = Harness::new(Setup { traces: true, ..Setup::default() });
        let (job, _) = h.jobs.submit(&h.sign(h.request(MODEL, 31))).await.unwrap();
        let minted = h.wait_for(job.id, JobState::Minted).await;
        let metadata = h.content.get(minted.outputs.metadata_cid.as_ref().unwrap()).unwrap();
        let metadata: TokenMetadata = serde_json::from_slice(&metadata).unwrap();
        let record = metadata.provenance.latent_trace.expect("the metadata names the trace");
        let bytes = h.content.get(&record.cid.parse().unwrap()).expect("the trace is pinned");
        let (index, trace) = LatentTrace::from_bytes(&bytes).unwrap();
        assert_eq!((record.format.as_str(), record.steps), (TRACE_FORMAT, trace.steps()));
        assert_eq!((record.merkle_root, record.bytes), (index.root, bytes.len() as u64));
        // Without a trace, the metadata names none (older tokens read the same).
        let plain = Harness::new(Setup::default());
        let (job, _) = plain.jobs.submit(&plain.sign(plain.request(MODEL, 32))).await.unwrap();
        let minted = plain.wait_for(job.id, JobState::Minted).await;
        let metadata = plain.content.get(minted.outputs.metadata_cid.as_ref().unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&metadata).contains("latentTrace"));
    }
}
