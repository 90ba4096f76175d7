//! Reads the diffusers/transformers `config.json` of each component into the configuration the
//! network code takes. The same parser serves SD 1.5, 2.1, XL, Turbo and the test model: a
//! model's architecture is whatever its config files say, and anything this runtime cannot run
//! faithfully is rejected with the field that asks for it. The scheduler's config is read
//! through the same typed [`Fields`], so its keys default and fail the same way.

use candle_transformers::models::stable_diffusion::{unet_2d, vae};
use serde_json::Value;

use crate::clip::{Activation, ClipTextConfig};

/// Typed access to one JSON config, with diffusers' defaults for absent or null keys.
pub(crate) struct Fields<'a>(pub &'a Value);

impl Fields<'_> {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => as_usize(key, v),
        }
    }

    /// A positive integer the config must state (diffusers has no default for it).
    fn required_usize(&self, key: &str) -> Result<usize, String> {
        match self.get(key) {
            None => Err(format!("{key} must be given")),
            Some(v) => as_usize(key, v),
        }
    }

    /// A count that may be zero and fits a `u32`.
    pub fn u32(&self, key: &str, default: u32) -> Result<u32, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| format!("{key} must be a non-negative integer, found {v}")),
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{key} must be a number, found {v}")),
        }
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| format!("{key} must be a boolean, found {v}")),
        }
    }

    pub fn str<'b>(&'b self, key: &str, default: &'b str) -> Result<&'b str, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| format!("{key} must be a string, found {v}")),
        }
    }

    /// A list of integers, or one integer repeated `len` times (diffusers accepts both).
    fn usizes(&self, key: &str, len: usize, default: usize) -> Result<Vec<usize>, String> {
        match self.get(key) {
            None => Ok(vec![default; len]),
            Some(Value::Array(items)) if items.len() == len => {
                items.iter().map(|v| as_usize(key, v)).collect()
            }
            Some(Value::Array(items)) => Err(format!("{key} has {} entries for {len} blocks", items.len())),
            Some(v) => Ok(vec![as_usize(key, v)?; len]),
        }
    }

    fn usize_list(&self, key: &str) -> Result<Vec<usize>, String> {
        match self.get(key) {
            Some(Value::Array(items)) if !items.is_empty() => {
                items.iter().map(|v| as_usize(key, v)).collect()
            }
            _ => Err(format!("{key} must be a non-empty list of integers")),
        }
    }

    fn str_list(&self, key: &str) -> Result<Vec<&str>, String> {
        match self.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| format!("{key} must be a list of strings")))
                .collect(),
            _ => Err(format!("{key} must be a list of strings")),
        }
    }

    /// Fails unless `key` is absent, null or equal to `expected`.
    fn require(&self, key: &str, expected: &Value) -> Result<(), String> {
        match self.get(key) {
            Some(v) if v != expected => Err(format!("{key} = {v} is not supported (only {expected})")),
            _ => Ok(()),
        }
    }
}

fn as_usize(key: &str, v: &Value) -> Result<usize, String> {
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .filter(|&x| x > 0)
        .ok_or_else(|| format!("{key} must be a positive integer, found {v}"))
}

/// The group count candle's `DownBlock2D`/`UpBlock2D` use whatever the config says.
const CANDLE_PLAIN_BLOCK_GROUPS: usize = 32;

/// The sizes of SDXL's added conditioning (`addition_embed_type = "text_time"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextTimeSpec {
    /// Channels of each size id's sinusoidal projection.
    pub addition_time_embed_dim: usize,
    /// `projection_class_embeddings_input_dim`: the pooled text embedding's width plus six ids'
    /// projections (`add_embedding.linear_1`'s input).
    pub input_dim: usize,
}

/// A UNet as the pipeline needs it.
#[derive(Debug, Clone)]
pub(crate) struct UnetSpec {
    pub config: unet_2d::UNet2DConditionModelConfig,
    pub in_channels: usize,
    pub out_channels: usize,
    /// SDXL's added conditioning (`addition_embed_type = "text_time"`), when the config asks for it.
    pub text_time: Option<TextTimeSpec>,
    /// candle 0.11's `DownBlock2D` and `UpBlock2D` (the blocks without attention) ignore
    /// `norm_num_groups` and always normalize in 32 groups; true when that differs from the
    /// config, i.e. when candle's output cannot match diffusers'.
    pub plain_blocks_ignore_groups: bool,
}

impl UnetSpec {
    /// Total spatial downsampling of the UNet (latent sides must be multiples of it).
    pub fn downsampling(&self) -> usize {
        downsampling_of(self.config.blocks.len())
    }

    pub fn from_json(json: &Value) -> Result<Self, String> {
        let f = Fields(json);
        let blocks = UnetBlocks::read(&f)?;
        check_unet_features(&f)?;
        let text_time = match f.get("addition_embed_type") {
            None => None,
            Some(v) if v == "text_time" => Some(TextTimeSpec {
                addition_time_embed_dim: f.required_usize("addition_time_embed_dim")?,
                input_dim: f.required_usize("projection_class_embeddings_input_dim")?,
            }),
            Some(v) => {
                return Err(format!("addition_embed_type = {v} is not supported (only \"text_time\")"));
            }
        };
        if f.get("cross_attention_dim").is_some_and(Value::is_array) {
            return Err("a per-block cross_attention_dim is not supported".to_string());
        }
        Ok(Self {
            config: unet_2d::UNet2DConditionModelConfig {
                center_input_sample: f.bool("center_input_sample", false)?,
                flip_sin_to_cos: f.bool("flip_sin_to_cos", true)?,
                freq_shift: f.f64("freq_shift", 0.0)?,
                blocks: blocks.blocks,
                layers_per_block: blocks.layers_per_block,
                downsample_padding: f.usize("downsample_padding", 1)?,
                mid_block_scale_factor: f.f64("mid_block_scale_factor", 1.0)?,
                norm_num_groups: blocks.norm_num_groups,
                norm_eps: f.f64("norm_eps", 1e-5)?,
                cross_attention_dim: f.usize("cross_attention_dim", 1280)?,
                sliced_attention_size: None,
                use_linear_projection: f.bool("use_linear_projection", false)?,
            },
            in_channels: f.usize("in_channels", 4)?,
            out_channels: f.usize("out_channels", 4)?,
            text_time,
            plain_blocks_ignore_groups: blocks.plain_blocks_ignore_groups,
        })
    }
}

/// The spatial downsampling of a network with `levels` resolution levels: every level but the
/// last halves the sides.
fn downsampling_of(levels: usize) -> usize {
    1 << (levels - 1)
}

/// The UNet's levels, read from the per-block keys of its config.
struct UnetBlocks {
    blocks: Vec<unet_2d::BlockConfig>,
    layers_per_block: usize,
    norm_num_groups: usize,
    /// See [`UnetSpec::plain_blocks_ignore_groups`].
    plain_blocks_ignore_groups: bool,
}

impl UnetBlocks {
    fn read(f: &Fields<'_>) -> Result<Self, String> {
        let block_out_channels = f.usize_list("block_out_channels")?;
        let n = block_out_channels.len();
        let down = f.str_list("down_block_types")?;
        let up = f.str_list("up_block_types")?;
        if down.len() != n || up.len() != n {
            return Err(format!(
                "{n} block_out_channels but {} down and {} up block types",
                down.len(),
                up.len()
            ));
        }
        let layers_per_block = f.usize("layers_per_block", 2)?;
        // diffusers: the head count is `num_attention_heads`, or else (legacy naming) `attention_head_dim`.
        let heads = if f.get("num_attention_heads").is_some() {
            f.usizes("num_attention_heads", n, 8)?
        } else {
            f.usizes("attention_head_dim", n, 8)?
        };
        let transformer_layers = f.usizes("transformer_layers_per_block", n, 1)?;
        let norm_num_groups = f.usize("norm_num_groups", 32)?;
        let mut blocks = Vec::with_capacity(n);
        let mut plain_blocks_ignore_groups = false;
        for i in 0..n {
            let cross_attn = match (down[i], up[n - 1 - i]) {
                ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D") => true,
                ("DownBlock2D", "UpBlock2D") => false,
                (d, u) => {
                    return Err(format!(
                        "down block {i} {d:?} with up block {} {u:?} is not supported",
                        n - 1 - i
                    ));
                }
            };
            let channels = block_out_channels[i];
            plain_blocks_ignore_groups |=
                check_block_groups(i, channels, cross_attn, norm_num_groups, heads[i])?;
            blocks.push(unet_2d::BlockConfig {
                out_channels: channels,
                use_cross_attn: cross_attn.then_some(transformer_layers[i]),
                attention_head_dim: heads[i],
            });
        }
        Ok(Self { blocks, layers_per_block, norm_num_groups, plain_blocks_ignore_groups })
    }
}

/// Checks that block `i`'s channels split into its groups and heads; `Ok(true)` when candle will
/// normalize it in other groups than the config asks for (a block without attention).
fn check_block_groups(
    i: usize,
    channels: usize,
    cross_attn: bool,
    norm_num_groups: usize,
    heads: usize,
) -> Result<bool, String> {
    let mut ignores_groups = false;
    if !cross_attn && norm_num_groups != CANDLE_PLAIN_BLOCK_GROUPS {
        if !channels.is_multiple_of(CANDLE_PLAIN_BLOCK_GROUPS) {
            return Err(format!(
                "block {i}: candle normalizes blocks without attention in {CANDLE_PLAIN_BLOCK_GROUPS} groups, which {channels} channels do not split into"
            ));
        }
        ignores_groups = true;
    }
    if !channels.is_multiple_of(norm_num_groups) || !channels.is_multiple_of(heads) {
        return Err(format!(
            "block {i}: {channels} channels do not split into {norm_num_groups} groups and {heads} heads"
        ));
    }
    Ok(ignores_groups)
}

/// Refuses the UNet variants candle's `UNet2DConditionModel` does not build: another mid block,
/// activation, embedding or attention than SD's, and any of the extra conditioning inputs.
fn check_unet_features(f: &Fields<'_>) -> Result<(), String> {
    f.require("mid_block_type", &Value::from("UNetMidBlock2DCrossAttn"))?;
    f.require("act_fn", &Value::from("silu"))?;
    f.require("time_embedding_type", &Value::from("positional"))?;
    f.require("resnet_time_scale_shift", &Value::from("default"))?;
    f.require("only_cross_attention", &Value::from(false))?;
    f.require("dual_cross_attention", &Value::from(false))?;
    f.require("conv_in_kernel", &Value::from(3))?;
    f.require("conv_out_kernel", &Value::from(3))?;
    f.require("attention_type", &Value::from("default"))?;
    f.require("resnet_skip_time_act", &Value::from(false))?;
    f.require("class_embeddings_concat", &Value::from(false))?;
    f.require("mid_block_only_cross_attention", &Value::from(false))?;
    if f.f64("resnet_out_scale_factor", 1.0)? != 1.0 {
        return Err("resnet_out_scale_factor other than 1 is not supported".to_string());
    }
    for key in [
        "class_embed_type",
        "encoder_hid_dim",
        "encoder_hid_dim_type",
        "time_cond_proj_dim",
        "num_class_embeds",
        "time_embedding_act_fn",
        "time_embedding_dim",
        "timestep_post_act",
        "cross_attention_norm",
        "reverse_transformer_layers_per_block",
    ] {
        if let Some(v) = f.get(key) {
            return Err(format!("{key} = {v} is not supported"));
        }
    }
    Ok(())
}

/// A VAE (`AutoencoderKL`) as the pipeline needs it.
#[derive(Debug, Clone)]
pub(crate) struct VaeSpec {
    pub config: vae::AutoEncoderKLConfig,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Latents are divided by this before decoding.
    pub scaling_factor: f64,
    /// diffusers' `force_upcast`: whether the VAE must decode in f32 under f16 (`precision`).
    pub force_upcast: Option<bool>,
}

impl VaeSpec {
    /// Image pixels per latent pixel along each side.
    pub fn downsampling(&self) -> usize {
        downsampling_of(self.config.block_out_channels.len())
    }

    pub fn from_json(json: &Value) -> Result<Self, String> {
        let f = Fields(json);
        let block_out_channels = f.usize_list("block_out_channels")?;
        let n = block_out_channels.len();
        for (key, expected) in
            [("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")]
        {
            let types = f.str_list(key)?;
            if types.len() != n || types.iter().any(|t| *t != expected) {
                return Err(format!("{key} must be {n} times {expected:?}"));
            }
        }
        f.require("act_fn", &Value::from("silu"))?;
        f.require("mid_block_add_attention", &Value::from(true))?;
        if let Some(v) = f.get("shift_factor") {
            return Err(format!("shift_factor = {v} is not supported"));
        }
        let norm_num_groups = f.usize("norm_num_groups", 32)?;
        if let Some(c) = block_out_channels.iter().find(|&&c| !c.is_multiple_of(norm_num_groups)) {
            return Err(format!("{c} channels do not split into {norm_num_groups} groups"));
        }
        let out_channels = f.usize("out_channels", 3)?;
        if out_channels != 3 {
            return Err(format!("out_channels = {out_channels}: the decoder must produce RGB"));
        }
        let scaling_factor = f.f64("scaling_factor", 0.18215)?;
        if scaling_factor <= 0.0 {
            return Err(format!("scaling_factor = {scaling_factor} must be positive"));
        }
        Ok(Self {
            config: vae::AutoEncoderKLConfig {
                block_out_channels,
                layers_per_block: f.usize("layers_per_block", 1)?,
                latent_channels: f.usize("latent_channels", 4)?,
                norm_num_groups,
                use_quant_conv: f.bool("use_quant_conv", true)?,
                use_post_quant_conv: f.bool("use_post_quant_conv", true)?,
            },
            in_channels: f.usize("in_channels", 3)?,
            out_channels,
            scaling_factor,
            force_upcast: match f.get("force_upcast") {
                None => None,
                Some(_) => Some(f.bool("force_upcast", true)?),
            },
        })
    }
}

/// Reads transformers' `CLIPTextConfig` (defaults as in transformers).
pub(crate) fn clip_text_config(json: &Value) -> Result<ClipTextConfig, String> {
    let f = Fields(json);
    let activation = match f.str("hidden_act", "quick_gelu")? {
        "quick_gelu" => Activation::QuickGelu,
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        other => return Err(format!("hidden_act {other:?} is not supported")),
    };
    let config = ClipTextConfig {
        vocab_size: f.usize("vocab_size", 49408)?,
        hidden_size: f.usize("hidden_size", 512)?,
        intermediate_size: f.usize("intermediate_size", 2048)?,
        num_hidden_layers: f.usize("num_hidden_layers", 12)?,
        num_attention_heads: f.usize("num_attention_heads", 8)?,
        max_position_embeddings: f.usize("max_position_embeddings", 77)?,
        activation,
        layer_norm_eps: f.f64("layer_norm_eps", 1e-5)?,
        eos_token_id: f.u32("eos_token_id", 49407)?,
        projection_dim: f.usize("projection_dim", 512)?,
    };
    if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(format!(
            "hidden_size {} does not split into {} heads",
            config.hidden_size, config.num_attention_heads
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (abridged to the keys read).
    fn sdxl_unet() -> Value {
        json!({
            "_class_name": "UNet2DConditionModel", "act_fn": "silu",
            "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
            "block_out_channels": [320, 640, 1280], "center_input_sample": false,
            "class_embed_type": null, "conv_in_kernel": 3, "conv_out_kernel": 3,
            "cross_attention_dim": 2048, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0,
            "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
            "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
            "num_attention_heads": null, "only_cross_attention": false, "out_channels": 4,
            "projection_class_embeddings_input_dim": 2816, "resnet_time_scale_shift": "default",
            "sample_size": 128, "time_embedding_type": "positional", "transformer_layers_per_block": [1, 2, 10],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "upcast_attention": null, "use_linear_projection": true
        })
    }

    #[test]
    fn sdxl_unet_config_maps_to_candle_blocks() {
        let spec = UnetSpec::from_json(&sdxl_unet()).unwrap();
        let blocks: Vec<_> = spec
            .config
            .blocks
            .iter()
            .map(|b| (b.out_channels, b.use_cross_attn, b.attention_head_dim))
            .collect();
        assert_eq!(blocks, vec![(320, None, 5), (640, Some(2), 10), (1280, Some(10), 20)]);
        assert_eq!(spec.config.cross_attention_dim, 2048);
        assert!(spec.config.use_linear_projection);
        assert_eq!(spec.text_time, Some(TextTimeSpec { addition_time_embed_dim: 256, input_dim: 2816 }));
        assert_eq!(spec.downsampling(), 4);
    }

    #[test]
    fn sd15_unet_config_maps_to_candle_blocks() {
        // runwayml/stable-diffusion-v1-5 unet/config.json (keys read).
        let spec = UnetSpec::from_json(&json!({
            "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
            "center_input_sample": false, "cross_attention_dim": 768,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
            "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
            "out_channels": 4, "sample_size": 64,
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        }))
        .unwrap();
        assert_eq!(spec.config.blocks.len(), 4);
        assert_eq!(spec.config.blocks[3].use_cross_attn, None);
        assert_eq!(spec.config.blocks[0].use_cross_attn, Some(1));
        assert_eq!(spec.config.blocks[0].attention_head_dim, 8);
        assert!(!spec.config.use_linear_projection && spec.text_time.is_none());
        assert_eq!(spec.downsampling(), 8);
    }

    #[test]
    fn unsupported_unet_settings_are_named() {
        let mut config = sdxl_unet();
        config["class_embed_type"] = json!("timestep");
        assert!(UnetSpec::from_json(&config).unwrap_err().contains("class_embed_type"));
        let mut config = sdxl_unet();
        config["up_block_types"] = json!(["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"]);
        assert!(UnetSpec::from_json(&config).unwrap_err().contains("down block 1"));
        let mut config = sdxl_unet();
        config["attention_head_dim"] = json!([5, 10]);
        assert!(UnetSpec::from_json(&config).unwrap_err().contains("attention_head_dim"));
    }

    #[test]
    fn sd_vae_config_is_read() {
        let spec = VaeSpec::from_json(&json!({
            "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
            "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
            "out_channels": 3, "sample_size": 1024, "scaling_factor": 0.13025,
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
        }))
        .unwrap();
        assert_eq!(spec.downsampling(), 8);
        assert_eq!(spec.scaling_factor, 0.13025);
        assert_eq!(spec.config.layers_per_block, 2);
    }

    #[test]
    fn clip_config_reads_activation() {
        // stabilityai/stable-diffusion-2-1 text_encoder/config.json (keys read).
        let config = clip_text_config(&json!({
            "hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096,
            "max_position_embeddings": 77, "num_attention_heads": 16, "num_hidden_layers": 23,
            "vocab_size": 49408, "layer_norm_eps": 1e-05
        }))
        .unwrap();
        assert_eq!(config.activation, Activation::Gelu);
        assert_eq!(config.num_hidden_layers, 23);
        let err = clip_text_config(&json!({"hidden_act": "relu"})).unwrap_err();
        assert!(err.contains("relu"));
    }
}
