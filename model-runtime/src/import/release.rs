//! The diffusers configs of the Stable Diffusion 1.5, 2.1 and XL base releases
//! (`unet/config.json`, `vae/config.json`, `text_encoder/config.json`, SDXL's
//! `text_encoder_2/config.json`, `scheduler/scheduler_config.json`, `model_index.json`), with
//! every size read from the checkpoint's tensors so that a fine-tune, a merge or a shrunk test
//! checkpoint gets the configs of its own shapes.
//!
//! SD 2.x differs from SD 1.5 in: the OpenCLIP text encoder (exact GELU, 64-wide heads, one
//! layer fewer than the checkpoint's resblocks), UNet heads 64 wide at every level (SD 2.1's
//! `attention_head_dim` [5, 10, 20, 20] is a head count per level), linear projections (read
//! from the tensors), and the prediction type, which the tensors do not tell: the caller gives
//! it (2.1 768 predicts v, 2.1-base noise), and v-prediction models get SD 2.1's
//! `upcast_attention` and 768-px sample size.
//!
//! SDXL base differs from SD 2.1 in: two text encoders (CLIP ViT-L as in SD 1.5; OpenCLIP ViT-bigG
//! with every block and its projection, as `CLIPTextModelWithProjection`), transformer depth per
//! level, the added `text_time` conditioning (its input width read from `label_emb`, the size id
//! channels from that width less the pooled embedding's, over six ids), the VAE scaling factor
//! 0.13025, and the release's Euler scheduler config. SDXL always predicts the noise.
//!
//! Read from the tensors: channels per level, resnets per level, which levels attend, input,
//! output and latent channels, the cross-attention width, linear or convolutional projections,
//! transformer depth, and the text encoder's vocabulary, width, depth, MLP width and positions.
//! Not in the tensors, so taken from the release: the UNet's 8 attention heads, CLIP's 64-wide
//! heads, the activations, epsilons, the VAE scaling factor 0.18215 and the noise schedule.
//! Group norms use 32 groups as every release does, or the narrowest level's channels where that
//! is below 32 (only test-size checkpoints). A checkpoint that differs in what is not in the
//! tensors needs its configs given (`ImportOptions::configs`).

use serde_json::{Value, json};

use super::CheckpointFamily;
use super::ldm::{
    CLIP_PREFIX, OPEN_CLIP_PREFIX, RESBLOCKS, UNET_PREFIX, UnetLevels, VAE_PREFIX, XL_CLIP_PREFIX,
    XL_OPEN_CLIP_PREFIX, open_clip_blocks, vae_up_levels,
};
use super::safetensors_io::SourceTensors;

/// CLIP ViT-L/14's and OpenCLIP ViT-H/14's attention head width.
const CLIP_HEAD_WIDTH: usize = 64;
/// SD 2.x's and SDXL's UNet attention head width.
const UNET_HEAD_WIDTH: usize = 64;
/// SDXL's size and crop conditioning: original size, crop top-left, target size.
const SDXL_TIME_IDS: usize = 6;
const RELEASE_GROUPS: usize = 32;

/// `axis` of the shape of `name`, or why not.
fn dim(tensors: &SourceTensors, name: &str, axis: usize) -> Result<usize, String> {
    let tensor = tensors.get(name).ok_or_else(|| format!("the checkpoint has no {name}"))?;
    tensor
        .shape
        .get(axis)
        .copied()
        .ok_or_else(|| format!("{name} has only {} dimensions", tensor.shape.len()))
}

/// How many `prefix{N}.…` indices there are (the largest N plus one), or `none` without any.
fn count_indices(tensors: &SourceTensors, prefix: &str, none: usize) -> usize {
    tensors
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(none, |last| last + 1)
}

fn groups(channels: &[usize]) -> usize {
    channels.iter().copied().min().unwrap_or(RELEASE_GROUPS).min(RELEASE_GROUPS)
}

/// What the denoiser predicts, as the scheduler config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// The noise (`epsilon`): SD 1.x, SD 2.x base (512 px).
    Epsilon,
    /// The velocity (`v_prediction`): SD 2.x 768 px.
    V,
}

impl PredictionType {
    fn config_name(self) -> &'static str {
        match self {
            PredictionType::Epsilon => "epsilon",
            PredictionType::V => "v_prediction",
        }
    }
}

/// The five SD 1.5 configs, by path in the model directory; the scheduler states the
/// prediction type only when one is given (SD 1.5's release config leaves it at the default,
/// epsilon).
pub(crate) fn sd15_configs(
    tensors: &SourceTensors,
    prediction: Option<PredictionType>,
) -> Result<Vec<(&'static str, Value)>, String> {
    let mut scheduler = scheduler();
    if let Some(prediction) = prediction {
        scheduler["prediction_type"] = prediction.config_name().into();
    }
    Ok(vec![
        ("model_index.json", model_index()),
        ("scheduler/scheduler_config.json", scheduler),
        ("text_encoder/config.json", clip_text_encoder(tensors, CLIP_PREFIX)?),
        ("unet/config.json", unet(tensors)?),
        ("vae/config.json", vae(tensors)?),
    ])
}

/// The five SD 2.1 configs, by path in the model directory.
pub(crate) fn sd21_configs(
    tensors: &SourceTensors,
    prediction: PredictionType,
) -> Result<Vec<(&'static str, Value)>, String> {
    let mut scheduler = scheduler();
    scheduler["prediction_type"] = prediction.config_name().into();
    Ok(vec![
        ("model_index.json", model_index()),
        ("scheduler/scheduler_config.json", scheduler),
        ("text_encoder/config.json", open_clip_text_encoder(tensors, CheckpointFamily::Sd2)?),
        ("unet/config.json", sd21_unet(tensors, prediction)?),
        ("vae/config.json", vae(tensors)?),
    ])
}

/// Which SDXL release's scheduler config an import gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdxlRelease {
    /// stable-diffusion-xl-base-1.0: Euler, leading spacing.
    Base,
    /// sdxl-turbo (the same network, distilled for 1 to 4 steps): Euler ancestral, trailing
    /// spacing, 512-px samples.
    Turbo,
}

/// The six SDXL configs, by path in the model directory; the releases predict the noise, a
/// v-prediction fine-tune says so with `prediction`.
pub(crate) fn sdxl_configs(
    tensors: &SourceTensors,
    release: SdxlRelease,
    prediction: Option<PredictionType>,
) -> Result<Vec<(&'static str, Value)>, String> {
    let mut scheduler = scheduler();
    let prediction = prediction.unwrap_or(PredictionType::Epsilon).config_name();
    let (class, spacing) = match release {
        SdxlRelease::Base => ("EulerDiscreteScheduler", "leading"),
        SdxlRelease::Turbo => ("EulerAncestralDiscreteScheduler", "trailing"),
    };
    for (key, value) in [
        ("_class_name", json!(class)),
        ("interpolation_type", json!("linear")),
        ("prediction_type", json!(prediction)),
        ("sample_max_value", json!(1.0)),
        ("timestep_spacing", json!(spacing)),
        ("use_karras_sigmas", json!(false)),
    ] {
        scheduler[key] = value;
    }
    let mut unet = sdxl_unet(tensors)?;
    if release == SdxlRelease::Turbo {
        unet["sample_size"] = json!(64);
    }
    let mut vae = vae(tensors)?;
    vae["scaling_factor"] = json!(0.13025);
    vae["force_upcast"] = json!(true);
    vae["sample_size"] = json!(1024);
    let mut index = sdxl_model_index();
    index["scheduler"] = json!(["diffusers", class]);
    Ok(vec![
        ("model_index.json", index),
        ("scheduler/scheduler_config.json", scheduler),
        ("text_encoder/config.json", clip_text_encoder(tensors, XL_CLIP_PREFIX)?),
        ("text_encoder_2/config.json", open_clip_text_encoder(tensors, CheckpointFamily::Sdxl)?),
        ("unet/config.json", unet),
        ("vae/config.json", vae),
    ])
}

/// An OpenCLIP text encoder's config with the checkpoint's sizes: SD 2.x's (ViT-H as
/// transformers' `CLIPTextModel`, one layer fewer than its resblocks) or SDXL's second (ViT-bigG
/// as `CLIPTextModelWithProjection`, every block, the projection's width).
pub(super) fn open_clip_text_encoder(
    tensors: &SourceTensors,
    family: CheckpointFamily,
) -> Result<Value, String> {
    let sdxl = family == CheckpointFamily::Sdxl;
    let prefix = if sdxl { XL_OPEN_CLIP_PREFIX } else { OPEN_CLIP_PREFIX };
    let token_embedding = format!("{prefix}token_embedding.weight");
    let hidden = dim(tensors, &token_embedding, 1)?;
    if !hidden.is_multiple_of(CLIP_HEAD_WIDTH) {
        return Err(format!(
            "the text encoder is {hidden} wide, not a multiple of OpenCLIP's {CLIP_HEAD_WIDTH}-wide heads, \
             so its head count is unknown: give the configs of a diffusers folder of the same model"
        ));
    }
    let blocks = open_clip_blocks(tensors, prefix);
    if blocks < 2 {
        return Err(format!("the text encoder has {blocks} resblocks: SD 2.x's has 24, SDXL's 32"));
    }
    let projection = format!("{prefix}text_projection");
    let projection_dim = match (sdxl, tensors.contains_key(&projection)) {
        (true, false) => return Err(format!("the checkpoint has no {projection}: SDXL pools through it")),
        (_, true) => dim(tensors, &projection, 1)?,
        (false, false) => hidden,
    };
    Ok(clip_text_config(TextSizes {
        architecture: if sdxl { "CLIPTextModelWithProjection" } else { "CLIPTextModel" },
        act: "gelu",
        hidden,
        intermediate: dim(tensors, &format!("{prefix}{RESBLOCKS}0.mlp.c_fc.weight"), 0)?,
        positions: dim(tensors, &format!("{prefix}positional_embedding"), 0)?,
        layers: if sdxl { blocks } else { blocks - 1 },
        projection: projection_dim,
        vocab: dim(tensors, &token_embedding, 0)?,
    }))
}

/// SD 2.1's UNet config: SD 1.5's with 64-wide heads at every level, and for v-prediction
/// (the 768-px model) upcast attention and a 96-latent sample size.
pub(super) fn sd21_unet(tensors: &SourceTensors, prediction: PredictionType) -> Result<Value, String> {
    let mut config = unet(tensors)?;
    config["attention_head_dim"] = json!(head_counts(&config)?);
    config["upcast_attention"] = json!(prediction == PredictionType::V);
    config["sample_size"] = json!(if prediction == PredictionType::V { 96 } else { 64 });
    Ok(config)
}

/// The head count per level of a UNet with 64-wide heads (SD 2.x, SDXL).
fn head_counts(config: &Value) -> Result<Vec<usize>, String> {
    let channels: Vec<usize> = config["block_out_channels"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64()).map(|c| c as usize).collect())
        .unwrap_or_default();
    if let Some(bad) = channels.iter().find(|c| !c.is_multiple_of(UNET_HEAD_WIDTH)) {
        return Err(format!(
            "a UNet level is {bad} wide, not a multiple of the {UNET_HEAD_WIDTH}-wide heads of SD 2.x and \
             SDXL, so its head count is unknown: give the configs of a diffusers folder of the same model"
        ));
    }
    Ok(channels.iter().map(|c| c / UNET_HEAD_WIDTH).collect())
}

/// SDXL base's UNet config: 64-wide heads, transformer depth per level (the middle block's must
/// be the last level's, as diffusers builds it), the `text_time` added conditioning sized from
/// `label_emb` and the pooled embedding, 128-latent samples.
pub(super) fn sdxl_unet(tensors: &SourceTensors) -> Result<Value, String> {
    let mut config = unet(tensors)?;
    config["attention_head_dim"] = json!(head_counts(&config)?);
    let levels = UnetLevels::read(tensors)?;
    let depths: Vec<usize> = (0..levels.levels)
        .map(|level| {
            let first = 1 + level * (levels.layers_per_block + 1);
            count_indices(tensors, &format!("{UNET_PREFIX}input_blocks.{first}.1.transformer_blocks."), 1)
        })
        .collect();
    let middle = count_indices(tensors, &format!("{UNET_PREFIX}middle_block.1.transformer_blocks."), 1);
    if depths.last() != Some(&middle) {
        return Err(format!(
            "the middle block is {middle} transformer blocks deep and the last level {}: diffusers' UNet \
             cannot hold that; give the configs of a diffusers folder of the same model",
            depths.last().unwrap_or(&0)
        ));
    }
    let added = dim(tensors, &format!("{UNET_PREFIX}label_emb.0.0.weight"), 1)?;
    let pooled = dim(tensors, &format!("{XL_OPEN_CLIP_PREFIX}text_projection"), 1)?;
    let ids = added.checked_sub(pooled).filter(|w| *w > 0 && w.is_multiple_of(SDXL_TIME_IDS)).ok_or_else(|| {
        format!(
            "the added conditioning takes {added} inputs, which is not the {pooled}-wide pooled embedding and \
             {SDXL_TIME_IDS} size ids: not an SDXL base UNet (the refiner adds an aesthetic score)"
        )
    })?;
    config["transformer_layers_per_block"] = json!(depths);
    config["addition_embed_type"] = json!("text_time");
    config["addition_time_embed_dim"] = json!(ids / SDXL_TIME_IDS);
    config["projection_class_embeddings_input_dim"] = json!(added);
    config["sample_size"] = json!(128);
    Ok(config)
}

/// The SDXL pipeline index: an empty negative prompt conditions on zeros, as the releases say.
fn sdxl_model_index() -> Value {
    json!({
        "_class_name": "StableDiffusionXLPipeline",
        "force_zeros_for_empty_prompt": true,
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
}

/// The pipeline index, as diffusers saves SD 1.5 (no safety checker).
pub(crate) fn model_index() -> Value {
    json!({
        "_class_name": "StableDiffusionPipeline",
        "feature_extractor": [null, null],
        "requires_safety_checker": false,
        "safety_checker": [null, null],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
}

/// SD 1.5's training noise schedule (the release's PNDM config; genmint builds any of its
/// schedulers from it, as diffusers does).
pub(super) fn scheduler() -> Value {
    json!({
        "_class_name": "PNDMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": false,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": false,
        "skip_prk_steps": true,
        "steps_offset": 1,
        "trained_betas": null,
    })
}

/// CLIP ViT-L/14's text config with the sizes of the checkpoint's encoder under `prefix`.
fn clip_text_encoder(tensors: &SourceTensors, prefix: &str) -> Result<Value, String> {
    let embedding = format!("{prefix}text_model.embeddings.token_embedding.weight");
    let legacy = format!("{prefix}embeddings.token_embedding.weight");
    let root = if tensors.contains_key(&embedding) { format!("{prefix}text_model.") } else { prefix.into() };
    let token_embedding = if tensors.contains_key(&embedding) { embedding } else { legacy };
    let hidden = dim(tensors, &token_embedding, 1)?;
    if !hidden.is_multiple_of(CLIP_HEAD_WIDTH) {
        return Err(format!(
            "the text encoder is {hidden} wide, not a multiple of CLIP's {CLIP_HEAD_WIDTH}-wide heads, so \
             its head count is unknown: give the configs of a diffusers folder of the same model"
        ));
    }
    let layer_prefix = format!("{root}encoder.layers.");
    let layers = count_indices(tensors, &layer_prefix, 0);
    Ok(clip_text_config(TextSizes {
        architecture: "CLIPTextModel",
        act: "quick_gelu",
        hidden,
        intermediate: dim(tensors, &format!("{root}encoder.layers.0.mlp.fc1.weight"), 0)?,
        positions: dim(tensors, &format!("{root}embeddings.position_embedding.weight"), 0)?,
        layers,
        projection: hidden,
        vocab: dim(tensors, &token_embedding, 0)?,
    }))
}

/// What a release's text encoder config takes from the checkpoint (and its class and activation).
struct TextSizes {
    architecture: &'static str,
    act: &'static str,
    hidden: usize,
    intermediate: usize,
    positions: usize,
    layers: usize,
    projection: usize,
    vocab: usize,
}

/// transformers' `CLIPTextConfig` as the SD 1.5, 2.1 and XL releases save it, with 64-wide heads.
fn clip_text_config(sizes: TextSizes) -> Value {
    json!({
        "architectures": [sizes.architecture],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": sizes.act,
        "hidden_size": sizes.hidden,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": sizes.intermediate,
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": sizes.positions,
        "model_type": "clip_text_model",
        "num_attention_heads": sizes.hidden / CLIP_HEAD_WIDTH,
        "num_hidden_layers": sizes.layers,
        "pad_token_id": 1,
        "projection_dim": sizes.projection,
        "vocab_size": sizes.vocab,
    })
}

/// Whether `prefix` (a UNet block) holds a spatial transformer.
fn attends(tensors: &SourceTensors, prefix: &str) -> bool {
    tensors.contains_key(&format!("{UNET_PREFIX}{prefix}.proj_in.weight"))
}

/// SD 1.5's UNet config with the checkpoint's levels and sizes.
pub(super) fn unet(tensors: &SourceTensors) -> Result<Value, String> {
    let levels = UnetLevels::read(tensors)?;
    let per_level = levels.layers_per_block + 1;
    let mut channels = Vec::new();
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for level in 0..levels.levels {
        let first = 1 + level * per_level;
        channels.push(dim(tensors, &format!("{UNET_PREFIX}input_blocks.{first}.0.out_layers.3.weight"), 0)?);
        let attention = attends(tensors, &format!("input_blocks.{first}.1"));
        down.push(if attention { "CrossAttnDownBlock2D" } else { "DownBlock2D" });
        let attention = attends(tensors, &format!("output_blocks.{}.1", level * per_level));
        up.push(if attention { "CrossAttnUpBlock2D" } else { "UpBlock2D" });
    }
    let proj_in = format!("{UNET_PREFIX}middle_block.1.proj_in.weight");
    let depth_prefix = format!("{UNET_PREFIX}middle_block.1.transformer_blocks.");
    let depth = count_indices(tensors, &depth_prefix, 1);
    let linear =
        tensors.get(&proj_in).ok_or_else(|| format!("the checkpoint has no {proj_in}"))?.shape.len() == 2;
    let cross = format!("{UNET_PREFIX}middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    Ok(json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": channels,
        "center_input_sample": false,
        "cross_attention_dim": dim(tensors, &cross, 1)?,
        "down_block_types": down,
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": dim(tensors, &format!("{UNET_PREFIX}input_blocks.0.0.weight"), 1)?,
        "layers_per_block": levels.layers_per_block,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-5,
        "norm_num_groups": groups(&channels),
        "out_channels": dim(tensors, &format!("{UNET_PREFIX}out.2.weight"), 0)?,
        "sample_size": 64,
        "transformer_layers_per_block": depth,
        "up_block_types": up,
        "use_linear_projection": linear,
    }))
}

/// SD 1.5's VAE config with the checkpoint's levels and sizes.
pub(super) fn vae(tensors: &SourceTensors) -> Result<Value, String> {
    let levels = vae_up_levels(tensors);
    let channels = (0..levels)
        .map(|i| dim(tensors, &format!("{VAE_PREFIX}encoder.down.{i}.block.0.conv1.weight"), 0))
        .collect::<Result<Vec<_>, _>>()?;
    let block_prefix = format!("{VAE_PREFIX}encoder.down.0.block.");
    let layers = count_indices(tensors, &block_prefix, 1);
    Ok(json!({
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": channels,
        "down_block_types": vec!["DownEncoderBlock2D"; levels],
        "in_channels": dim(tensors, &format!("{VAE_PREFIX}encoder.conv_in.weight"), 1)?,
        "latent_channels": dim(tensors, &format!("{VAE_PREFIX}post_quant_conv.weight"), 0)?,
        "layers_per_block": layers,
        "norm_num_groups": groups(&channels),
        "out_channels": dim(tensors, &format!("{VAE_PREFIX}decoder.conv_out.weight"), 0)?,
        "sample_size": 512,
        "scaling_factor": 0.18215,
        "up_block_types": vec!["UpDecoderBlock2D"; levels],
    }))
}
