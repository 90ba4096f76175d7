//! The Stable Diffusion pipeline: [`load_model`] reads a model directory once (every byte it
//! loads is also what it hashes), and the resulting [`Generator`] runs text encoding, the
//! guided denoising loop and VAE decoding for each request.
//!
//! The UNet and VAE are candle-transformers' `unet_2d` and `vae` networks; the text encoder is
//! [`crate::clip`]. SD 1.5, 2.1, XL, Turbo and the test model differ only in their config files
//! and in how text conditions the UNet (one encoder's last hidden state, or SDXL's two
//! penultimate states side by side).
//!
//! Known gap: SDXL's UNet also takes "added conditioning" (pooled text embedding and size/crop
//! ids, `addition_embed_type = "text_time"`), which candle 0.11's `UNet2DConditionModel` does not
//! implement. SDXL and Turbo therefore run without it (as candle's own SDXL example does): the
//! output is deterministic but not what diffusers would produce. Loading such a model logs a
//! warning.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKL;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clip::{ClipOutput, ClipTextModel};
use crate::configs::{self, UnetSpec, VaeSpec};
use crate::layout::{self, Layout, MODEL_CONFIG_FILE, ModelConfig};
use crate::manifest::{ManifestEntry, ModelManifest};
use crate::noise::{self, NOISE_ALGORITHM};
use crate::scheduler::{self, ScheduleConfig};
use crate::text::{PromptTokenizer, TextConditioner, TextEncoder};
use crate::{
    Control, GenerationParams, ModelDescriptor, Progress, ReproducibilityEnvelope, Rgb8Image, RuntimeError,
    SchedulerKind,
};

/// The candle release the runtime is built against (keep in step with the workspace manifest);
/// part of every envelope's `engine`.
pub const CANDLE_VERSION: &str = "0.11.1";

/// Where inference runs. Noise is always drawn on the CPU and then moved to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// The CUDA device with this ordinal; needs the crate's `cuda` feature.
    Cuda(usize),
}

/// A loaded model that turns requests into images.
pub trait Generator: Send {
    fn descriptor(&self) -> &ModelDescriptor;

    /// Generates one image. `progress` is called after every denoising step; answering
    /// [`Control::Cancel`] makes this return [`RuntimeError::Cancelled`] without further work.
    /// The same model, parameters and envelope always give the same pixels.
    fn generate(
        &mut self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Rgb8Image, RuntimeError>;
}

/// Loads the model in `dir` (layout in [`crate::layout`]) onto `device`.
pub fn load_model(dir: &Path, device: DeviceChoice) -> Result<Box<dyn Generator>, RuntimeError> {
    Ok(Box::new(StableDiffusion::load(dir, device)?))
}

fn candle_device(choice: DeviceChoice) -> Result<Device, RuntimeError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(ordinal) => Ok(Device::new_cuda(ordinal)?),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda(ordinal) => Err(RuntimeError::CudaUnavailable(ordinal)),
    }
}

fn invalid(path: &Path, reason: impl ToString) -> RuntimeError {
    RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Reads model files, recording each one's digest for the manifest as it goes.
struct ModelReader<'a> {
    dir: &'a Path,
    entries: Vec<ManifestEntry>,
}

impl ModelReader<'_> {
    fn bytes(&mut self, relative: &str) -> Result<(PathBuf, Vec<u8>), RuntimeError> {
        let path = layout::file_path(self.dir, relative);
        let bytes = layout::read(&path)?;
        self.entries
            .push(ManifestEntry { path: relative.to_string(), sha256: hex::encode(Sha256::digest(&bytes)) });
        Ok((path, bytes))
    }

    fn json(&mut self, relative: &str) -> Result<(PathBuf, Value), RuntimeError> {
        let (path, bytes) = self.bytes(relative)?;
        let value = serde_json::from_slice(&bytes).map_err(|e| invalid(&path, e))?;
        Ok((path, value))
    }

    fn weights(
        &mut self,
        relative: &str,
        device: &Device,
    ) -> Result<(PathBuf, VarBuilder<'static>), RuntimeError> {
        let (path, bytes) = self.bytes(relative)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| invalid(&path, format!("not a safetensors file: {e}")))?;
        Ok((path, VarBuilder::from_tensors(tensors, DType::F32, device)))
    }
}

/// A Stable Diffusion family model, ready to generate.
struct StableDiffusion {
    descriptor: ModelDescriptor,
    device: Device,
    text: TextConditioner,
    unet: UNet2DConditionModel,
    latent_channels: usize,
    vae: AutoEncoderKL,
    vae_scaling: f64,
    vae_factor: u32,
    schedule: ScheduleConfig,
}

impl StableDiffusion {
    fn load(dir: &Path, choice: DeviceChoice) -> Result<Self, RuntimeError> {
        let device = candle_device(choice)?;
        let mut reader = ModelReader { dir, entries: Vec::new() };
        let (path, bytes) = reader.bytes(MODEL_CONFIG_FILE)?;
        let config = ModelConfig::parse(&path, &bytes)?;
        let layout = Layout::new(&config);
        layout.check_present(dir)?;

        let (path, index) = reader.json(&layout.model_index)?;
        if let Some(missing) = layout.components().into_iter().find(|c| index.get(c).is_none()) {
            return Err(invalid(&path, format!("lists no {missing}")));
        }
        let (path, json) = reader.json(&layout.scheduler)?;
        let schedule = ScheduleConfig::from_json(&json).map_err(|e| invalid(&path, e))?;

        let text = Self::load_text(&mut reader, &layout, &config, &device)?;

        let (unet_config_path, json) = reader.json(&layout.unet.config)?;
        let unet_spec = UnetSpec::from_json(&json).map_err(|e| invalid(&unet_config_path, e))?;
        if unet_spec.config.cross_attention_dim != text.context_dim() {
            return Err(invalid(
                &unet_config_path,
                format!(
                    "cross_attention_dim is {} but the text encoders produce {}",
                    unet_spec.config.cross_attention_dim,
                    text.context_dim()
                ),
            ));
        }
        if unet_spec.has_text_time_embedding {
            tracing::warn!(
                model = %config.name,
                "the UNet's text_time added conditioning is not implemented by candle and is skipped"
            );
        }
        let (path, vb) = reader.weights(&layout.unet.weights, &device)?;
        let unet = UNet2DConditionModel::new(
            vb,
            unet_spec.in_channels,
            unet_spec.out_channels,
            false,
            unet_spec.config.clone(),
        )
        .map_err(|e| invalid(&path, e))?;

        let (path, json) = reader.json(&layout.vae.config)?;
        let vae_spec = VaeSpec::from_json(&json).map_err(|e| invalid(&path, e))?;
        let latent_channels = vae_spec.config.latent_channels;
        if unet_spec.in_channels != latent_channels || unet_spec.out_channels != latent_channels {
            return Err(invalid(
                &unet_config_path,
                format!(
                    "UNet channels {} in / {} out do not match the VAE's {latent_channels} latent channels",
                    unet_spec.in_channels, unet_spec.out_channels
                ),
            ));
        }
        let (path, vb) = reader.weights(&layout.vae.weights, &device)?;
        let vae =
            AutoEncoderKL::new(vb, vae_spec.in_channels, vae_spec.out_channels, vae_spec.config.clone())
                .map_err(|e| invalid(&path, e))?;

        let manifest = ModelManifest::new(config.clone(), reader.entries);
        debug_assert_eq!(manifest.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), layout.files());
        let vae_factor = vae_spec.downsampling();
        let size_multiple = vae_factor * unet_spec.downsampling();
        let descriptor = ModelDescriptor {
            name: config.name.clone(),
            author: config.author.clone(),
            kind: config.kind,
            hash: manifest.hash(),
            limits: config.kind.limits(size_multiple as u32),
            envelope: ReproducibilityEnvelope {
                engine: format!(
                    "candle {CANDLE_VERSION} / genmint-model-runtime {}",
                    env!("CARGO_PKG_VERSION")
                ),
                noise: NOISE_ALGORITHM.to_string(),
                scheduler: SchedulerKind::Ddim,
                dtype: "f32".to_string(),
                device_class: if device.is_cuda() { "cuda" } else { "cpu" }.to_string(),
            },
        };
        tracing::info!(
            model = %descriptor.name,
            kind = %descriptor.kind,
            hash = %descriptor.hash,
            device = %descriptor.envelope.device_class,
            "model loaded"
        );
        Ok(Self {
            descriptor,
            device,
            text,
            unet,
            latent_channels,
            vae,
            vae_scaling: vae_spec.scaling_factor,
            vae_factor: vae_factor as u32,
            schedule,
        })
    }

    fn load_text(
        reader: &mut ModelReader<'_>,
        layout: &Layout,
        config: &ModelConfig,
        device: &Device,
    ) -> Result<TextConditioner, RuntimeError> {
        let output = if config.kind.dual_text_encoders() {
            ClipOutput::Penultimate
        } else {
            ClipOutput::LastHiddenState
        };
        let mut encoders = Vec::with_capacity(layout.text.len());
        let mut length = None;
        for files in &layout.text {
            let (path, json) = reader.json(&files.encoder.config)?;
            let clip = configs::clip_text_config(&json).map_err(|e| invalid(&path, e))?;
            if *length.get_or_insert(clip.max_position_embeddings) != clip.max_position_embeddings {
                return Err(invalid(&path, "text encoders disagree on the sequence length"));
            }
            let (tokenizer_path, tokenizer_json) = reader.bytes(&files.tokenizer)?;
            let (config_path, tokenizer_config) = reader.json(&files.tokenizer_config)?;
            let tokenizer = PromptTokenizer::new(
                &tokenizer_path,
                &tokenizer_json,
                &config_path,
                &tokenizer_config,
                clip.max_position_embeddings,
                clip.vocab_size,
            )?;
            let (path, vb) = reader.weights(&files.encoder.weights, device)?;
            let model = ClipTextModel::new(vb, &clip, output).map_err(|e| invalid(&path, e))?;
            encoders.push(TextEncoder { tokenizer, model });
        }
        Ok(TextConditioner::new(encoders, device.clone()))
    }
}

impl Generator for StableDiffusion {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn generate(
        &mut self,
        params: &GenerationParams,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Rgb8Image, RuntimeError> {
        self.descriptor.limits.validate(params)?;
        let _span = tracing::debug_span!(
            "generate",
            model = %self.descriptor.name,
            seed = params.seed,
            steps = params.steps
        )
        .entered();

        // diffusers' rule: guidance above 1 runs the unconditional (negative prompt) pass too.
        let guided = params.guidance > 1.0;
        let context = if guided {
            self.text.embed(&[("negative_prompt", &params.negative_prompt), ("prompt", &params.prompt)])?
        } else {
            self.text.embed(&[("prompt", &params.prompt)])?
        };

        let latent_height = (params.height / self.vae_factor) as usize;
        let latent_width = (params.width / self.vae_factor) as usize;
        let shape = (1, self.latent_channels, latent_height, latent_width);
        let noise = noise::standard_normal(params.seed, shape.1 * shape.2 * shape.3);
        // DDIM's initial noise sigma is 1: the noise is the first latent as drawn.
        let mut latents = Tensor::from_vec(noise, shape, &self.device)?;

        let scheduler = scheduler::build(params.scheduler, &self.schedule, params.steps);
        for (index, &timestep) in scheduler.timesteps().iter().enumerate() {
            let input = if guided { Tensor::cat(&[&latents, &latents], 0)? } else { latents.clone() };
            let output = self.unet.forward(&input, f64::from(timestep), &context)?;
            let output = if guided {
                let unconditional = output.narrow(0, 0, 1)?;
                let conditional = output.narrow(0, 1, 1)?;
                (&unconditional + ((&conditional - &unconditional)? * f64::from(params.guidance))?)?
            } else {
                output
            };
            latents = scheduler.step(index, &output, &latents)?;
            let step = Progress { step: index as u32 + 1, total: params.steps };
            tracing::trace!(step = step.step, total = step.total, timestep, "denoising step");
            if progress(step) == Control::Cancel {
                tracing::debug!(step = step.step, "generation cancelled");
                return Err(RuntimeError::Cancelled);
            }
        }

        let decoded = self.vae.decode(&(latents / self.vae_scaling)?)?;
        let planes = decoded.squeeze(0)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
        Rgb8Image::from_planar(params.width, params.height, &planes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_names_the_candle_actually_built() {
        // The envelope must not claim an engine version other than the one compiled in.
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"candle-core\"\n")).unwrap();
        assert!(entry.contains(&format!("version = \"{CANDLE_VERSION}\"\n")), "Cargo.lock has {entry}");
    }
}
