//! The one diffusion pipeline: [`load_model`] reads a model directory once (every byte it loads
//! is also what it hashes), and the resulting [`Generator`] runs text conditioning, the guided
//! denoising loop and decoding for each request.
//!
//! Two families share it and differ only at its two ends ([`Conditioning`] and [`Decoder`]):
//!
//! - Stable Diffusion (SD 1.5, 2.1, XL, Turbo, the test model): CLIP text encoders (one
//!   encoder's last hidden state, or SDXL's two penultimate states side by side), the negative
//!   prompt as the unconditional context, latents decoded by the VAE. SDXL's UNet also takes
//!   "added conditioning" ([`crate::unet`]): the second encoder's pooled, projected embedding
//!   and the size ids (H, W, 0, 0, H, W: original size, crop top-left, target size, as
//!   diffusers' defaults). An empty negative prompt under guidance is all zeros, context and
//!   pooled embedding alike, when `model_index.json`'s `force_zeros_for_empty_prompt` is true
//!   (SDXL base's default; diffusers' rule for `negative_prompt=None`).
//! - Pixel space (`pixel_minilm`, the default model): MiniLM's last hidden state over the prompt's
//!   tokens ([`crate::bert_text`]), all zeros of the same shape as the unconditional context,
//!   and the denoised sample is the picture itself.
//!
//! The seeded noise, the scheduler, the UNet ([`crate::unet`], on candle's blocks), classifier-free
//! guidance, progress and cancellation are the same code for both. [`Stages`] opens the same steps
//! one at a time (hidden from the docs) for the tests that compare each with diffusers.
//!
//! What an SDXL-family `model_index.json` asks for beyond that (the refiner's
//! `requires_aesthetics_score`) is refused by name, as is any UNet conditioning other than
//! `text_time` (`configs`).

mod denoise;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bert_text::BertTextEncoder;
use crate::clip::{ClipOutput, ClipTextConfig, ClipTextModel, ClipWeightNames};
use crate::configs::{self, TextTimeSpec, UnetSpec, VaeSpec};
use crate::layout::{
    self, ComponentFiles, Layout, MODEL_CONFIG_FILE, ModelConfig, TextFiles, TokenizerFiles, WeightFiles,
};
use crate::manifest::{ManifestEntry, ModelManifest};
use crate::noise::NOISE_ALGORITHM;
use crate::precision::{self, ComputeDtype};
use crate::scheduler::{self, ScheduleConfig};
use crate::text::{PromptTokenizer, TextConditioner, TextEncoder, TextFit, TokenizerSource};
use crate::trace::{LatentTrace, TraceEntry};
use crate::unet::{AddedConditioning, Unet};
use crate::vae::VaeDecoder;
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

/// An image and the latent trace that led to it (`None` where the generator records none).
#[derive(Debug, Clone)]
pub struct Traced {
    pub image: Rgb8Image,
    pub trace: Option<LatentTrace>,
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
        progress: &mut (dyn FnMut(Progress) -> Control + Send),
    ) -> Result<Rgb8Image, RuntimeError>;

    /// Generates a batch of requests, each image the same as [`Self::generate`] gives for it
    /// alone; `progress` is told which request (its index in `batch`) took a step, and answering
    /// [`Control::Cancel`] ends that request alone. Requests that batch with each other
    /// ([`GenerationParams::batches_with`]) may share the model's passes; this default runs them
    /// one after another.
    fn generate_batch(
        &mut self,
        batch: &[GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Rgb8Image, RuntimeError>> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for (index, params) in batch.iter().enumerate() {
            outcomes.push(self.generate(params, &mut |p| progress(index, p)));
        }
        outcomes
    }

    /// Generates a batch as [`Self::generate_batch`] does (the same pixels), each image with the
    /// latent trace its denoising loop went through ([`crate::trace`]) where the generator
    /// records one; this default records none.
    fn generate_batch_traced(
        &mut self,
        batch: &[GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Traced, RuntimeError>> {
        self.generate_batch(batch, progress)
            .into_iter()
            .map(|outcome| outcome.map(|image| Traced { image, trace: None }))
            .collect()
    }

    /// Trace entry 0 for the request: its seeded initial sample (and zero scheduler state).
    fn initial_entry(&mut self, params: &GenerationParams) -> Result<TraceEntry, RuntimeError> {
        let _ = params;
        Err(RuntimeError::TraceUnsupported)
    }

    /// Runs step `i` of the request again from trace entry `i`, for each `(i, entry)`, and
    /// returns what entry `i + 1` must be (see [`crate::trace::check`]).
    fn replay_steps(
        &mut self,
        params: &GenerationParams,
        from: &[(u32, &TraceEntry)],
    ) -> Result<Vec<TraceEntry>, RuntimeError> {
        let _ = (params, from);
        Err(RuntimeError::TraceUnsupported)
    }

    /// The image a trace's final entry decodes to.
    fn decode_entry(
        &mut self,
        params: &GenerationParams,
        entry: &TraceEntry,
    ) -> Result<Rgb8Image, RuntimeError> {
        let _ = (params, entry);
        Err(RuntimeError::TraceUnsupported)
    }

    /// How many tokens of the request's texts the model cuts off to fit its text encoders'
    /// fixed length (see [`TextFit`]): the end of a long prompt has no effect on the image, and
    /// a caller can say so. Generators that cut nothing keep this default.
    fn text_fit(&self, params: &GenerationParams) -> Result<TextFit, RuntimeError> {
        let _ = params;
        Ok(TextFit::default())
    }
}

/// Loads the model in `dir` (layout in [`crate::layout`]) onto `device`, in f32.
pub fn load_model(dir: &Path, device: DeviceChoice) -> Result<Box<dyn Generator>, RuntimeError> {
    load_model_with(dir, device, ComputeDtype::F32)
}

/// Loads the model in `dir` onto `device` with its UNet (and, where safe, its VAE) in `dtype`
/// (`precision`); the descriptor's envelope names the arithmetic.
pub fn load_model_with(
    dir: &Path,
    device: DeviceChoice,
    dtype: ComputeDtype,
) -> Result<Box<dyn Generator>, RuntimeError> {
    Ok(Box::new(DiffusionModel::load(dir, device, dtype)?))
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
pub(crate) struct ModelReader<'a> {
    pub dir: &'a Path,
    pub entries: Vec<ManifestEntry>,
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

    /// Every tensor of a safetensors file, by name.
    fn file_tensors(
        &mut self,
        relative: &str,
        device: &Device,
    ) -> Result<(PathBuf, HashMap<String, Tensor>), RuntimeError> {
        let (path, bytes) = self.bytes(relative)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| invalid(&path, format!("not a safetensors file: {e}")))?;
        Ok((path, tensors))
    }

    /// Every tensor of a component, by name: its one file, or every shard its index names
    /// (each tensor must be in the shard the index says, and nowhere else). The path is the
    /// file's or the index's, for errors.
    fn tensors(
        &mut self,
        files: &WeightFiles,
        device: &Device,
    ) -> Result<(PathBuf, HashMap<String, Tensor>), RuntimeError> {
        let (index, shards) = match files {
            WeightFiles::Single(file) => return self.file_tensors(file, device),
            WeightFiles::Sharded { index, shards } => (index, shards),
        };
        let (index_path, bytes) = self.bytes(index)?;
        let map = layout::weight_map(&index_path, &bytes)?;
        let mut tensors = HashMap::with_capacity(map.len());
        for shard in shards {
            let (path, part) = self.file_tensors(shard, device)?;
            let name = shard.rsplit('/').next().unwrap_or(shard);
            for (tensor, value) in part {
                if map.get(&tensor).map(String::as_str) != Some(name) {
                    return Err(invalid(
                        &path,
                        format!("holds {tensor}, which the index does not place in it"),
                    ));
                }
                tensors.insert(tensor, value);
            }
        }
        if let Some((tensor, shard)) = map.iter().find(|(tensor, _)| !tensors.contains_key(*tensor)) {
            return Err(invalid(&index_path, format!("places {tensor} in {shard}, which does not hold it")));
        }
        Ok((index_path, tensors))
    }

    /// A component's weights, each tensor converted to `dtype` as it is taken.
    fn weights(
        &mut self,
        files: &WeightFiles,
        device: &Device,
        dtype: DType,
    ) -> Result<(PathBuf, VarBuilder<'static>), RuntimeError> {
        let (path, tensors) = self.tensors(files, device)?;
        Ok((path, VarBuilder::from_tensors(tensors, dtype, device)))
    }
}

/// How the prompt becomes the UNet's `encoder_hidden_states`.
enum Conditioning {
    /// CLIP text encoder(s); the unconditional context is the negative prompt's embedding, or
    /// zeros for an empty one when `zero_empty_negative` (SDXL's `force_zeros_for_empty_prompt`).
    Clip { text: TextConditioner, zero_empty_negative: bool },
    /// BERT token embeddings; the unconditional context is all zeros (the model was trained with
    /// the condition dropped to zeros).
    Bert(Box<BertTextEncoder>),
}

impl Conditioning {
    fn context_dim(&self) -> usize {
        match self {
            Conditioning::Clip { text, .. } => text.context_dim(),
            Conditioning::Bert(encoder) => encoder.hidden_size(),
        }
    }

    /// `[2, tokens, dim]` with the unconditional context first when `guided`, else
    /// `[1, tokens, dim]`; with the pooled embeddings `[2 or 1, pooled_dim]` where a text
    /// encoder pools.
    fn context(&self, params: &GenerationParams, guided: bool) -> Result<TextContext, RuntimeError> {
        match self {
            Conditioning::Clip { text, zero_empty_negative }
                if guided && *zero_empty_negative && params.negative_prompt.is_empty() =>
            {
                let (hidden, pooled) = text.embed(&[("prompt", &params.prompt)])?;
                Ok(TextContext {
                    hidden: with_zeros_first(&hidden)?,
                    pooled: pooled.as_ref().map(with_zeros_first).transpose()?,
                })
            }
            Conditioning::Clip { text, .. } if guided => {
                let (hidden, pooled) =
                    text.embed(&[("negative_prompt", &params.negative_prompt), ("prompt", &params.prompt)])?;
                Ok(TextContext { hidden, pooled })
            }
            Conditioning::Clip { text, .. } => {
                let (hidden, pooled) = text.embed(&[("prompt", &params.prompt)])?;
                Ok(TextContext { hidden, pooled })
            }
            Conditioning::Bert(encoder) => {
                let conditional = encoder.embed("prompt", &params.prompt)?;
                let hidden = if guided { with_zeros_first(&conditional)? } else { conditional };
                Ok(TextContext { hidden, pooled: None })
            }
        }
    }
}

/// `[zeros, conditional]` along the batch: the unconditional half as zeros.
fn with_zeros_first(conditional: &Tensor) -> Result<Tensor, RuntimeError> {
    Ok(Tensor::cat(&[&conditional.zeros_like()?, conditional], 0)?)
}

/// The text conditioning of one request's batch.
#[derive(Clone)]
struct TextContext {
    /// The UNet's `encoder_hidden_states`.
    hidden: Tensor,
    /// SDXL's pooled text embedding (`text_embeds`), where an encoder pools.
    pooled: Option<Tensor>,
}

/// SDXL's added conditioning for a batch of latents `[batch, C, h, w]` of an image `factor`
/// times their size: the pooled embeddings and, per row, the size ids diffusers uses by
/// default: original size = target size = the image's (H, W), crop top-left (0, 0).
fn added_conditioning(
    pooled: &Tensor,
    sample: &Tensor,
    factor: u32,
) -> Result<AddedConditioning, RuntimeError> {
    let (batch, _, height, width) = sample.dims4()?;
    let (h, w) = ((height * factor as usize) as f32, (width * factor as usize) as f32);
    let ids: Vec<f32> = (0..batch).flat_map(|_| [h, w, 0.0, 0.0, h, w]).collect();
    let time_ids = Tensor::from_vec(ids, (batch, 6), sample.device())?;
    Ok(AddedConditioning { text_embeds: pooled.clone(), time_ids })
}

/// How the denoised sample becomes an image in `[-1, 1]`, `[1, 3, height, width]`.
enum Decoder {
    /// Latents divided by the scaling factor, then the VAE decoder, in its own element type.
    Vae { vae: Box<VaeDecoder>, scaling: f64, dtype: DType },
    /// The sample already is the RGB image.
    Pixels,
}

impl Decoder {
    fn decode(&self, sample: Tensor) -> Result<Tensor, RuntimeError> {
        match self {
            Decoder::Vae { vae, scaling, dtype } => {
                let latents = (sample / *scaling)?.to_dtype(*dtype)?;
                Ok(vae.decode(&latents)?.to_dtype(DType::F32)?)
            }
            Decoder::Pixels => Ok(sample),
        }
    }
}

/// A loaded diffusion model of either family, ready to generate.
struct DiffusionModel {
    descriptor: ModelDescriptor,
    device: Device,
    conditioning: Conditioning,
    unet: Unet,
    /// Channels of the denoised sample (4 latent channels, or 3 for RGB).
    sample_channels: usize,
    /// Image pixels per sample pixel along each side (the VAE factor, or 1).
    sample_factor: u32,
    decoder: Decoder,
    schedule: ScheduleConfig,
}

impl DiffusionModel {
    /// Reads and checks the components in turn (configs, scheduler, text, UNet, decoder); every
    /// byte read goes into the manifest, whose hash names the model.
    fn load(dir: &Path, choice: DeviceChoice, dtype: ComputeDtype) -> Result<Self, RuntimeError> {
        let device = candle_device(choice)?;
        dtype.check_device(&device)?;
        let mut reader = ModelReader { dir, entries: Vec::new() };
        let (path, bytes) = reader.bytes(MODEL_CONFIG_FILE)?;
        let config = ModelConfig::parse(&path, &bytes)?;
        let layout = Layout::in_dir(&config, dir)?;
        layout.check_present(dir)?;
        let zero_empty_negative = read_model_index(&mut reader, &layout)?.force_zeros_for_empty_prompt
            && config.kind.dual_text_encoders();
        let (path, json) = reader.json(&layout.scheduler)?;
        let schedule = ScheduleConfig::from_json(&json).map_err(|e| invalid(&path, e))?;
        let conditioning = if config.kind.pixel_space() {
            Conditioning::Bert(Box::new(load_bert_text_encoder(&mut reader, &layout, &device)?))
        } else {
            let text = load_clip(&mut reader, &layout, &config, &device)?;
            Conditioning::Clip { text, zero_empty_negative }
        };
        let (unet_config_path, unet_spec, unet) =
            load_unet(&mut reader, &layout.unet, &device, dtype.candle())?;
        check_unet_against_text(&unet_config_path, &unet_spec, &config, &conditioning)?;
        let (decoder, sample_channels, sample_factor) =
            load_decoder(&mut reader, &layout, &device, dtype, config.kind.dual_text_encoders())?;
        check_unet_channels(&unet_config_path, &unet_spec, sample_channels, layout.vae.is_some())?;

        let manifest = ModelManifest::new(config.clone(), reader.entries);
        debug_assert_eq!(manifest.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), layout.files());
        let size_multiple = sample_factor * unet_spec.downsampling();
        let vae_dtype = match &decoder {
            Decoder::Vae { dtype, .. } => Some(*dtype),
            Decoder::Pixels => None,
        };
        let precision = precision::envelope_dtype(dtype, vae_dtype);
        let flash = precision::uses_flash_attention(&device, dtype.candle());
        let descriptor = describe(&config, &manifest, size_multiple, &schedule, &device, precision, flash);
        tracing::info!(
            model = %descriptor.name,
            kind = %descriptor.kind,
            hash = %descriptor.hash,
            device = %descriptor.envelope.device_class,
            dtype = %descriptor.envelope.dtype,
            "model loaded"
        );
        Ok(Self {
            descriptor,
            device,
            conditioning,
            unet,
            sample_channels,
            sample_factor: sample_factor as u32,
            decoder,
            schedule,
        })
    }
}

/// What `model_index.json` says about the pipeline beyond its components.
struct PipelineOptions {
    /// SDXL: an empty negative prompt is all zeros (diffusers' default: true).
    force_zeros_for_empty_prompt: bool,
}

/// Reads `model_index.json` where the layout has one, checks that it lists every component, and
/// refuses the pipeline options this runtime does not run (the refiner's aesthetic score).
fn read_model_index(reader: &mut ModelReader<'_>, layout: &Layout) -> Result<PipelineOptions, RuntimeError> {
    let mut options = PipelineOptions { force_zeros_for_empty_prompt: true };
    if let Some(model_index) = &layout.model_index {
        let (path, index) = reader.json(model_index)?;
        if let Some(missing) = layout.components().into_iter().find(|c| index.get(c).is_none()) {
            return Err(invalid(&path, format!("lists no {missing}")));
        }
        let fields = configs::Fields(&index);
        if fields.bool("requires_aesthetics_score", false).map_err(|e| invalid(&path, e))? {
            return Err(invalid(
                &path,
                "requires_aesthetics_score = true (the SDXL refiner's) is not supported",
            ));
        }
        options.force_zeros_for_empty_prompt =
            fields.bool("force_zeros_for_empty_prompt", true).map_err(|e| invalid(&path, e))?;
    }
    Ok(options)
}

/// Checks that the UNet attends to the text encoders' output (and, for SDXL's added
/// conditioning, takes their pooled embedding), and refuses or warns about what candle runs
/// differently from diffusers.
fn check_unet_against_text(
    unet_config_path: &Path,
    unet_spec: &UnetSpec,
    config: &ModelConfig,
    conditioning: &Conditioning,
) -> Result<(), RuntimeError> {
    let context_dim = conditioning.context_dim();
    if let Some(text_time) = &unet_spec.text_time {
        check_text_time(unet_config_path, text_time, conditioning)?;
    }
    if unet_spec.config.cross_attention_dim != context_dim {
        return Err(invalid(
            unet_config_path,
            format!(
                "cross_attention_dim is {} but the text encoders produce {context_dim}",
                unet_spec.config.cross_attention_dim,
            ),
        ));
    }
    if unet_spec.plain_blocks_ignore_groups {
        // Only the pixel-space family promises diffusers' exact output (its weights are
        // trained by genmint in PyTorch); the SD test model is defined by this runtime.
        if config.kind.pixel_space() {
            return Err(invalid(
                unet_config_path,
                "norm_num_groups must be 32: candle's blocks without attention always use 32 groups",
            ));
        }
        tracing::warn!(
            model = %config.name,
            "candle normalizes the UNet's blocks without attention in 32 groups, not norm_num_groups"
        );
    }
    Ok(())
}

/// `text_time` needs a text encoder that pools (a `CLIPTextModelWithProjection`), and
/// `add_embedding`'s input is its width plus six size ids' projections (diffusers checks the same).
fn check_text_time(
    unet_config_path: &Path,
    text_time: &TextTimeSpec,
    conditioning: &Conditioning,
) -> Result<(), RuntimeError> {
    let pooled_dim = match conditioning {
        Conditioning::Clip { text, .. } => text.pooled_dim(),
        Conditioning::Bert(_) => None,
    };
    let Some(pooled_dim) = pooled_dim else {
        return Err(invalid(
            unet_config_path,
            "addition_embed_type = \"text_time\" needs a text encoder with text_projection \
             (CLIPTextModelWithProjection, SDXL's text_encoder_2)",
        ));
    };
    let expected = 6 * text_time.addition_time_embed_dim + pooled_dim;
    if text_time.input_dim != expected {
        return Err(invalid(
            unet_config_path,
            format!(
                "projection_class_embeddings_input_dim is {} but 6 size ids of {} channels and the \
                 {pooled_dim}-wide pooled text embedding make {expected}",
                text_time.input_dim, text_time.addition_time_embed_dim
            ),
        ));
    }
    Ok(())
}

/// The decoder of the denoised sample, with the sample's channels and its factor (image pixels
/// per sample pixel along each side): the VAE's latents where the layout has a VAE, else RGB.
/// The VAE runs in `dtype` unless diffusers' rule upcasts it (`sdxl_family`, `precision`).
fn load_decoder(
    reader: &mut ModelReader<'_>,
    layout: &Layout,
    device: &Device,
    dtype: ComputeDtype,
    sdxl_family: bool,
) -> Result<(Decoder, usize, usize), RuntimeError> {
    let Some(files) = &layout.vae else {
        return Ok((Decoder::Pixels, 3, 1));
    };
    let (path, json) = reader.json(&files.config)?;
    let vae_spec = VaeSpec::from_json(&json).map_err(|e| invalid(&path, e))?;
    let vae_dtype = precision::vae_dtype(dtype, sdxl_family, vae_spec.force_upcast);
    if vae_dtype != dtype.candle() {
        tracing::info!(vae = %path.display(), "the VAE decodes in f32: its force_upcast says f16 overflows");
    }
    let (path, vb) = reader.weights(&files.weights, device, vae_dtype)?;
    let vae = VaeDecoder::load(vb, &vae_spec.config, vae_spec.out_channels).map_err(|e| invalid(&path, e))?;
    let decoder = Decoder::Vae { vae: Box::new(vae), scaling: vae_spec.scaling_factor, dtype: vae_dtype };
    Ok((decoder, vae_spec.config.latent_channels, vae_spec.downsampling()))
}

/// Checks that the UNet takes and gives as many channels as the sample has.
fn check_unet_channels(
    unet_config_path: &Path,
    unet_spec: &UnetSpec,
    sample_channels: usize,
    has_vae: bool,
) -> Result<(), RuntimeError> {
    if unet_spec.in_channels != sample_channels || unet_spec.out_channels != sample_channels {
        return Err(invalid(
            unet_config_path,
            format!(
                "UNet channels {} in / {} out do not match the {sample_channels} channels of the {}",
                unet_spec.in_channels,
                unet_spec.out_channels,
                if has_vae { "VAE's latents" } else { "RGB image" }
            ),
        ));
    }
    Ok(())
}

/// What a loaded model says about itself: its manifest's hash, the request limits its sizes allow
/// (image sides in multiples of `size_multiple`) and its noise schedule allows (schedulers), and
/// the envelope it generates under.
fn describe(
    config: &ModelConfig,
    manifest: &ModelManifest,
    size_multiple: usize,
    schedule: &ScheduleConfig,
    device: &Device,
    dtype: String,
    flash_attention: bool,
) -> ModelDescriptor {
    let mut limits = config.kind.limits(size_multiple as u32);
    limits.schedulers.retain(|&kind| scheduler::supports(kind, schedule));
    ModelDescriptor {
        name: config.name.clone(),
        author: config.author.clone(),
        kind: config.kind,
        hash: manifest.hash(),
        limits,
        envelope: ReproducibilityEnvelope {
            engine: format!(
                "candle {CANDLE_VERSION} / genmint-model-runtime {} / kernels {}{}",
                env!("CARGO_PKG_VERSION"),
                crate::kernels::KERNELS_VERSION,
                if flash_attention { " / flash-attn" } else { "" }
            ),
            noise: NOISE_ALGORITHM.to_string(),
            scheduler: SchedulerKind::Ddim,
            dtype,
            device_class: if device.is_cuda() { "cuda" } else { "cpu" }.to_string(),
        },
    }
}

/// Reads a UNet's diffusers config and weights, the weights as `dtype`.
pub(crate) fn load_unet(
    reader: &mut ModelReader<'_>,
    files: &ComponentFiles,
    device: &Device,
    dtype: DType,
) -> Result<(PathBuf, UnetSpec, Unet), RuntimeError> {
    let (config_path, json) = reader.json(&files.config)?;
    let spec = UnetSpec::from_json(&json).map_err(|e| invalid(&config_path, e))?;
    let (path, vb) = reader.weights(&files.weights, device, dtype)?;
    let unet = Unet::new(vb, &spec).map_err(|e| invalid(&path, e))?;
    Ok((config_path, spec, unet))
}

/// The CLIP text encoder(s) of a Stable Diffusion layout.
fn load_clip(
    reader: &mut ModelReader<'_>,
    layout: &Layout,
    config: &ModelConfig,
    device: &Device,
) -> Result<TextConditioner, RuntimeError> {
    let mut encoders = Vec::with_capacity(layout.text.len());
    let mut length = None;
    for files in &layout.text {
        let (path, json) = reader.json(&files.encoder.config)?;
        let clip = configs::clip_text_config(&json).map_err(|e| invalid(&path, e))?;
        if *length.get_or_insert(clip.max_position_embeddings) != clip.max_position_embeddings {
            return Err(invalid(&path, "text encoders disagree on the sequence length"));
        }
        let tokenizer = load_clip_tokenizer(reader, files, &clip)?;
        let (path, tensors) = reader.tensors(&files.encoder.weights, device)?;
        let names = ClipWeightNames::detect(tensors.keys().map(String::as_str), &clip)
            .map_err(|e| invalid(&path, e))?;
        // SDXL conditions on the penultimate states, and its UNet on the pooled projection;
        // SD 1.x and 2.x on the last state (a projection there is not used, as in diffusers).
        let output = match (config.kind.dual_text_encoders(), names.projection) {
            (true, true) => ClipOutput::PenultimateAndPooled,
            (true, false) => ClipOutput::Penultimate,
            (false, _) => ClipOutput::LastHiddenState,
        };
        let file = VarBuilder::from_tensors(tensors, DType::F32, device);
        let model = ClipTextModel::new(names.root(file.clone()), file, &clip, output)
            .map_err(|e| invalid(&path, e))?;
        encoders.push(TextEncoder { tokenizer, model });
    }
    Ok(TextConditioner::new(encoders, device.clone()))
}

/// A CLIP tokenizer from its `tokenizer.json`, or its `vocab.json` and `merges.txt`, with its
/// `tokenizer_config.json`.
fn load_clip_tokenizer(
    reader: &mut ModelReader<'_>,
    files: &TextFiles,
    clip: &ClipTextConfig,
) -> Result<PromptTokenizer, RuntimeError> {
    let config_file = files
        .tokenizer_config
        .as_deref()
        .ok_or_else(|| invalid(reader.dir, "a CLIP tokenizer needs its tokenizer_config.json"))?;
    let (length, vocab_size) = (clip.max_position_embeddings, clip.vocab_size);
    match &files.tokenizer {
        TokenizerFiles::Json(json) => {
            let (path, bytes) = reader.bytes(json)?;
            let (config_path, config) = reader.json(config_file)?;
            let source = TokenizerSource::Json { path: &path, bytes: &bytes };
            PromptTokenizer::new(source, &config_path, &config, length, vocab_size)
        }
        TokenizerFiles::VocabMerges { vocab, merges } => {
            let (vocab_path, vocab) = reader.bytes(vocab)?;
            let (merges_path, merges) = reader.bytes(merges)?;
            let (config_path, config) = reader.json(config_file)?;
            let source = TokenizerSource::VocabMerges {
                vocab_path: &vocab_path,
                vocab: &vocab,
                merges_path: &merges_path,
                merges: &merges,
            };
            PromptTokenizer::new(source, &config_path, &config, length, vocab_size)
        }
    }
}

/// The BERT text encoder of a pixel-space layout.
fn load_bert_text_encoder(
    reader: &mut ModelReader<'_>,
    layout: &Layout,
    device: &Device,
) -> Result<BertTextEncoder, RuntimeError> {
    let [files] = layout.text.as_slice() else {
        return Err(invalid(reader.dir, "a pixel-space model has exactly one text encoder"));
    };
    let (config_path, config) = reader.json(&files.encoder.config)?;
    let TokenizerFiles::Json(tokenizer) = &files.tokenizer else {
        return Err(invalid(reader.dir, "a pixel-space model's tokenizer is a tokenizer.json"));
    };
    let (tokenizer_path, tokenizer_json) = reader.bytes(tokenizer)?;
    let (weights_path, vb) = reader.weights(&files.encoder.weights, device, DType::F32)?;
    BertTextEncoder::new(&config_path, &config, &tokenizer_path, &tokenizer_json, &weights_path, vb)
}

impl Generator for DiffusionModel {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn text_fit(&self, params: &GenerationParams) -> Result<TextFit, RuntimeError> {
        match &self.conditioning {
            Conditioning::Clip { text, .. } => text.fit(params),
            // MiniLM's 128-token cut is not counted yet.
            Conditioning::Bert(_) => Ok(TextFit::default()),
        }
    }

    fn generate(
        &mut self,
        params: &GenerationParams,
        progress: &mut (dyn FnMut(Progress) -> Control + Send),
    ) -> Result<Rgb8Image, RuntimeError> {
        let mut outcomes = self.generate_batch(std::slice::from_ref(params), &mut |_, p| progress(p));
        outcomes.pop().unwrap_or_else(denoise::no_outcome)
    }

    fn generate_batch(
        &mut self,
        batch: &[GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Rgb8Image, RuntimeError>> {
        self.run_batch(batch, false, progress).into_iter().map(|outcome| outcome.map(|t| t.image)).collect()
    }

    fn generate_batch_traced(
        &mut self,
        batch: &[GenerationParams],
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Traced, RuntimeError>> {
        self.run_batch(batch, true, progress)
    }

    fn initial_entry(&mut self, params: &GenerationParams) -> Result<TraceEntry, RuntimeError> {
        self.descriptor.limits.validate(params)?;
        let sample = self.initial_sample(params)?.flatten_all()?.to_vec1::<f32>()?;
        let carries = scheduler::build(params.scheduler, &self.schedule, params.steps)?.carries_state();
        let state = if carries { vec![0.0; sample.len()] } else { Vec::new() };
        Ok(TraceEntry { sample, state })
    }

    fn replay_steps(
        &mut self,
        params: &GenerationParams,
        from: &[(u32, &TraceEntry)],
    ) -> Result<Vec<TraceEntry>, RuntimeError> {
        rayon::scope(|_| self.replay(params, from))
    }

    fn decode_entry(
        &mut self,
        params: &GenerationParams,
        entry: &TraceEntry,
    ) -> Result<Rgb8Image, RuntimeError> {
        let shape = self.sample_shape(params);
        if entry.sample.len() != shape.1 * shape.2 * shape.3 {
            return Err(RuntimeError::MalformedTrace(format!(
                "the final entry has {} values, the request's sample {}",
                entry.sample.len(),
                shape.1 * shape.2 * shape.3
            )));
        }
        let sample = Tensor::from_vec(entry.sample.clone(), shape, &self.device)?;
        rayon::scope(|_| rgb8(params, &self.decoder.decode(sample)?))
    }
}

impl DiffusionModel {
    /// [`Generator::generate_batch_traced`], with or without recording the traces.
    fn run_batch(
        &mut self,
        batch: &[GenerationParams],
        record: bool,
        progress: &mut (dyn FnMut(usize, Progress) -> Control + Send),
    ) -> Vec<Result<Traced, RuntimeError>> {
        // Run on a worker of candle's rayon pool: each op's parallel parts are then split among
        // the pool's threads from inside it, instead of being handed to the pool and waited for
        // from this thread, op after op, with the pool's idle workers spinning meanwhile. The
        // result does not depend on where it runs (the ops split work, never sums).
        rayon::scope(|_| {
            let mut outcomes: Vec<Option<Result<Traced, RuntimeError>>> =
                batch.iter().map(|_| None).collect();
            for group in sharing_timesteps(batch) {
                let requests: Vec<&GenerationParams> = group.iter().map(|&i| &batch[i]).collect();
                let samples = self.denoise(&requests, record, &mut |member, p| progress(group[member], p));
                for (&index, denoised) in group.iter().zip(samples) {
                    let traced = denoised.and_then(|d| {
                        let image = rgb8(&batch[index], &self.decoder.decode(d.sample)?)?;
                        Ok(Traced { image, trace: d.trace })
                    });
                    outcomes[index] = Some(traced);
                }
            }
            outcomes.into_iter().map(|outcome| outcome.unwrap_or_else(denoise::no_outcome)).collect()
        })
    }
}

/// The batch's requests grouped by [`GenerationParams::batches_with`], as indices in `batch`,
/// each group in batch order.
fn sharing_timesteps(batch: &[GenerationParams]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, params) in batch.iter().enumerate() {
        match groups.iter_mut().find(|group| batch[group[0]].batches_with(params)) {
            Some(group) => group.push(index),
            None => groups.push(vec![index]),
        }
    }
    groups
}

/// The `[1, 3, height, width]` image in `[-1, 1]` as RGB8.
fn rgb8(params: &GenerationParams, image: &Tensor) -> Result<Rgb8Image, RuntimeError> {
    let planes = image.squeeze(0)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
    Rgb8Image::from_planar(params.width, params.height, &planes)
}

impl DiffusionModel {
    /// One UNet evaluation; SDXL's added conditioning is built from the context's pooled
    /// embedding and the image size the sample stands for.
    fn unet_forward(
        &self,
        sample: &Tensor,
        timestep: f64,
        context: &TextContext,
    ) -> Result<Tensor, RuntimeError> {
        let added = match (&context.pooled, self.unet.takes_added_conditioning()) {
            (Some(pooled), true) => Some(added_conditioning(pooled, sample, self.sample_factor)?),
            _ => None,
        };
        Ok(self.unet.forward(sample, timestep, &context.hidden, added.as_ref())?)
    }
}

/// Stage-by-stage access to a loaded model, for the tests that compare each stage with diffusers
/// (`tests/runtime/parity.rs`). Not an API: the product runs models only as a [`Generator`], and
/// every method here is a piece of what [`Generator::generate`] runs, not a second copy of it.
#[doc(hidden)]
pub struct Stages(DiffusionModel);

/// Loads the model in `dir` on the CPU for [`Stages`].
#[doc(hidden)]
pub fn load_stages(dir: &Path) -> Result<Stages, RuntimeError> {
    Ok(Stages(DiffusionModel::load(dir, DeviceChoice::Cpu, ComputeDtype::F32)?))
}

#[doc(hidden)]
impl Stages {
    pub fn generator(&mut self) -> &mut dyn Generator {
        &mut self.0
    }

    /// Each text encoder's token ids for `text`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<Vec<u32>>, RuntimeError> {
        match &self.0.conditioning {
            Conditioning::Clip { text: conditioner, .. } => conditioner.token_ids(text),
            Conditioning::Bert(_) => Err(RuntimeError::Tokenize {
                field: "prompt",
                reason: "pixel-space models have no CLIP tokenizer".to_string(),
            }),
        }
    }

    /// The UNet's context for `params`: `[2, tokens, dim]` (negative prompt first) when guided.
    pub fn context(&self, params: &GenerationParams) -> Result<Tensor, RuntimeError> {
        Ok(self.0.conditioning.context(params, params.guidance > 1.0)?.hidden)
    }

    /// The pooled text embedding for `params` (SDXL), `[2 or 1, pooled_dim]` as [`Self::context`].
    pub fn pooled(&self, params: &GenerationParams) -> Result<Option<Tensor>, RuntimeError> {
        Ok(self.0.conditioning.context(params, params.guidance > 1.0)?.pooled)
    }

    /// One UNet evaluation; with `pooled`, SDXL's added conditioning for the sample's size.
    pub fn unet(
        &self,
        sample: &Tensor,
        timestep: f64,
        context: &Tensor,
        pooled: Option<&Tensor>,
    ) -> Result<Tensor, RuntimeError> {
        let context = TextContext { hidden: context.clone(), pooled: pooled.cloned() };
        self.0.unet_forward(sample, timestep, &context)
    }

    /// The sample just before decoding, for `params`.
    pub fn denoised(&self, params: &GenerationParams) -> Result<Tensor, RuntimeError> {
        let mut denoised = self.0.denoise(&[params], false, &mut |_, _| Control::Continue);
        denoised.pop().unwrap_or_else(denoise::no_outcome).map(|d| d.sample)
    }

    /// The decoder's output in `[-1, 1]`, `[1, 3, height, width]`.
    pub fn decode(&self, sample: &Tensor) -> Result<Tensor, RuntimeError> {
        self.0.decoder.decode(sample.clone())
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

    /// The timesteps diffusers visited for the parity fixtures (`tests/runtime/parity.rs`
    /// compares the latents they lead to) are the ones genmint visits: DDIM for the stage-by-stage
    /// cases, the named scheduler (on the saved schedule, or on the case's own) for the others.
    #[test]
    fn parity_fixture_timesteps_match_diffusers() {
        for family in ["sd15", "sd21", "sdxl"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{family}-tiny"));
            let read = |name: &str| -> Value {
                serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
            };
            let saved = read("scheduler/scheduler_config.json");
            let reference = read("reference.json");
            let cases = reference["cases"]
                .as_array()
                .unwrap()
                .iter()
                .chain(reference["scheduler_cases"].as_array().unwrap());
            let mut count = 0;
            for case in cases {
                let kind =
                    case["scheduler"].as_str().map_or(SchedulerKind::Ddim, |name| name.parse().unwrap());
                let config =
                    if case["scheduler_config"].is_null() { &saved } else { &case["scheduler_config"] };
                let schedule = ScheduleConfig::from_json(config).unwrap();
                let steps = case["steps"].as_u64().unwrap() as u32;
                let expected: Vec<f64> =
                    case["timesteps"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
                let built = scheduler::build(kind, &schedule, steps).unwrap();
                assert_eq!(built.timesteps(), expected, "{family} {kind:?} {steps} steps");
                count += 1;
            }
            assert!(count > 0, "{family} has no cases");
        }
    }

    /// The pixel-space UNet fixture (`training/make_fixtures.py`): diffusers' save_pretrained
    /// output, f16 weights, loaded by the same code as every model, gives PyTorch's output.
    #[test]
    fn pixel_unet_matches_pytorch() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixel-unet");
        let mut reader = ModelReader { dir: &dir, entries: Vec::new() };
        let files = ComponentFiles {
            config: "config.json".into(),
            weights: WeightFiles::Single("diffusion_pytorch_model.safetensors".into()),
        };
        let (_, spec, unet) = load_unet(&mut reader, &files, &Device::Cpu, DType::F32).unwrap();
        assert_eq!((spec.in_channels, spec.out_channels, spec.config.cross_attention_dim), (3, 3, 384));
        let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).unwrap();
        let timestep = io["timestep"].to_vec1::<f32>().unwrap()[0];
        let output = unet.forward(&io["sample"], f64::from(timestep), &io["context"], None).unwrap();
        let expected = io["output"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let actual = output.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(actual.len(), 3 * 32 * 32);
        let worst = actual.iter().zip(&expected).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "largest difference from PyTorch {worst}");
    }
}
