//! Stable Diffusion 1.5- and SDXL-shaped models with seeded random weights, for measuring speed
//! where no real weights are at hand (the GPU benchmark, `scripts/gpu-bench.sh`): every tensor
//! has the real model's shape, made by the test model's weights rule (`test_model`) and stored
//! as f16, as SD ships. The text encoders keep the test model's small word-level vocabulary
//! (their embedding tables are small; every other tensor is full size). Random weights say
//! nothing about pictures, everything about speed.
//!
//! The networks are built over a backend that makes each tensor they request, so the files hold
//! exactly what loading asks for (the VAE's decoder half; the UNet, with SDXL's added
//! conditioning; the CLIP encoders up to the layers they use).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use serde_json::{Value, json};

use crate::RuntimeError;
use crate::clip::{ClipOutput, ClipTextModel};
use crate::configs::{self, UnetSpec, VaeSpec};
use crate::layout::{MODEL_CONFIG_FILE, MODEL_CONFIG_FORMAT};
use crate::test_model::{
    KeepMade, SeededWeights, config_file, scheduler_config, text_encoder_config, tokenizer_config,
    tokenizer_json, vae_config, write_files,
};
use crate::unet::Unet;
use crate::vae::VaeDecoder;

/// Which real model's shapes to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomShape {
    /// SD 1.5: the 860M-parameter UNet, CLIP ViT-L/14's text encoder, SD's VAE.
    Sd15,
    /// SDXL base 1.0: the 2.6B-parameter UNet, both text encoders (CLIP ViT-L and OpenCLIP
    /// ViT-bigG), SDXL's original VAE (`force_upcast`).
    Sdxl,
}

impl FromStr for RandomShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sd15" => Ok(RandomShape::Sd15),
            "sdxl" => Ok(RandomShape::Sdxl),
            other => Err(format!("shape {other:?}: use \"sd15\" or \"sdxl\"")),
        }
    }
}

/// Writes a model of `shape` with random weights into `dir` (created if needed).
pub fn write_random_model(dir: &Path, shape: RandomShape) -> Result<(), RuntimeError> {
    let internal = |reason: String| RuntimeError::Inference(candle_core::Error::Msg(reason));
    let (kind, name, unet_config, vae_config) = match shape {
        RandomShape::Sd15 => {
            ("sd15", "SD 1.5 shapes, random weights (benchmark)", sd15_unet(), vae(0.18215, None))
        }
        RandomShape::Sdxl => {
            ("sdxl", "SDXL shapes, random weights (benchmark)", sdxl_unet(), vae(0.13025, Some(true)))
        }
    };
    let mut text_configs = vec![clip_l()];
    if shape == RandomShape::Sdxl {
        text_configs.push(clip_bigg());
    }
    let unet = UnetSpec::from_json(&unet_config).map_err(internal)?;
    let vae_spec = VaeSpec::from_json(&vae_config).map_err(internal)?;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            MODEL_CONFIG_FILE.into(),
            config_file(
                &json!({"format": MODEL_CONFIG_FORMAT, "kind": kind, "name": name, "author": "genmint"}),
            ),
        ),
        ("model_index.json".into(), config_file(&model_index(shape))),
        ("scheduler/scheduler_config.json".into(), config_file(&scheduler_config())),
        ("unet/config.json".into(), config_file(&unet_config)),
        ("vae/config.json".into(), config_file(&vae_config)),
    ];
    files.push((
        "unet/diffusion_pytorch_model.safetensors".into(),
        random_weights("unet", |vb| Unet::new(vb, &unet).map(drop))?,
    ));
    files.push((
        "vae/diffusion_pytorch_model.safetensors".into(),
        random_weights("vae", |vb| VaeDecoder::load(vb, &vae_spec.config, vae_spec.out_channels).map(drop))?,
    ));
    for (index, text_config) in text_configs.iter().enumerate() {
        let suffix = if index == 0 { String::new() } else { format!("_{}", index + 1) };
        let clip = configs::clip_text_config(text_config).map_err(internal)?;
        let output = match (shape, index) {
            (RandomShape::Sd15, _) => ClipOutput::LastHiddenState,
            (RandomShape::Sdxl, 0) => ClipOutput::Penultimate,
            (RandomShape::Sdxl, _) => ClipOutput::PenultimateAndPooled,
        };
        let component = if index == 0 { "text_encoder" } else { "text_encoder_2" };
        let weights = random_weights(component, |vb| {
            ClipTextModel::new(vb.pp("text_model"), vb.clone(), &clip, output).map(drop)
        })?;
        files.push((format!("text_encoder{suffix}/config.json"), config_file(text_config)));
        files.push((format!("text_encoder{suffix}/model.safetensors"), weights));
        files.push((format!("tokenizer{suffix}/tokenizer.json"), config_file(&tokenizer_json())));
        files.push((format!("tokenizer{suffix}/tokenizer_config.json"), config_file(&tokenizer_config())));
    }
    write_files(dir, files)
}

/// The test model's text encoder config at another width, depth and head count.
fn clip(hidden: usize, layers: usize, heads: usize) -> Value {
    let mut config = text_encoder_config();
    config["hidden_size"] = hidden.into();
    config["intermediate_size"] = (4 * hidden).into();
    config["num_hidden_layers"] = layers.into();
    config["num_attention_heads"] = heads.into();
    config
}

/// CLIP ViT-L/14's text encoder (SD 1.5's, SDXL's first).
fn clip_l() -> Value {
    clip(768, 12, 12)
}

/// OpenCLIP ViT-bigG/14's text encoder with its projection (SDXL's second).
fn clip_bigg() -> Value {
    let mut config = clip(1280, 32, 20);
    config["architectures"] = json!(["CLIPTextModelWithProjection"]);
    config["hidden_act"] = "gelu".into();
    config["projection_dim"] = 1280.into();
    config
}

/// runwayml/stable-diffusion-v1-5's `unet/config.json` (the keys genmint reads).
fn sd15_unet() -> Value {
    json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": false,
        "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-5,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    })
}

/// stabilityai/stable-diffusion-xl-base-1.0's `unet/config.json`: SD 1.5's with the keys it changes.
fn sdxl_unet() -> Value {
    let mut config = sd15_unet();
    for (key, value) in [
        ("addition_embed_type", json!("text_time")),
        ("addition_time_embed_dim", json!(256)),
        ("attention_head_dim", json!([5, 10, 20])),
        ("block_out_channels", json!([320, 640, 1280])),
        ("cross_attention_dim", json!(2048)),
        ("down_block_types", json!(["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"])),
        ("projection_class_embeddings_input_dim", json!(2816)),
        ("sample_size", json!(128)),
        ("transformer_layers_per_block", json!([1, 2, 10])),
        ("up_block_types", json!(["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])),
        ("use_linear_projection", json!(true)),
    ] {
        config[key] = value;
    }
    config
}

/// SD's `AutoencoderKL` (both releases share its shapes): the test model's at full size.
fn vae(scaling_factor: f64, force_upcast: Option<bool>) -> Value {
    let mut config = vae_config();
    config["block_out_channels"] = json!([128, 256, 512, 512]);
    config["layers_per_block"] = 2.into();
    config["norm_num_groups"] = 32.into();
    config["sample_size"] = 512.into();
    config["scaling_factor"] = scaling_factor.into();
    if let Some(upcast) = force_upcast {
        config["force_upcast"] = upcast.into();
    }
    config
}

fn model_index(shape: RandomShape) -> Value {
    let mut index = json!({
        "_class_name": "StableDiffusionPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["tokenizers", "Tokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    });
    if shape == RandomShape::Sdxl {
        index["_class_name"] = "StableDiffusionXLPipeline".into();
        index["text_encoder_2"] = json!(["transformers", "CLIPTextModelWithProjection"]);
        index["tokenizer_2"] = json!(["tokenizers", "Tokenizer"]);
        index["force_zeros_for_empty_prompt"] = true.into();
    }
    index
}

/// Builds a network in f16 over a backend that makes every requested tensor by the test
/// weights rule, and returns those tensors as a safetensors file.
fn random_weights(
    component: &'static str,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<()>,
) -> Result<Vec<u8>, RuntimeError> {
    let made = Arc::new(Mutex::new(HashMap::new()));
    let backend = SeededWeights { component, made: Arc::clone(&made) };
    build(VarBuilder::from_backend(Box::new(backend), DType::F16, Device::Cpu))?;
    let made = std::mem::take(
        &mut *made.lock().map_err(|_| candle_core::Error::Msg("weights lock poisoned".into()))?,
    );
    let file = tempfile_path(component);
    candle_core::safetensors::save(&made, &file)?;
    let bytes = std::fs::read(&file).map_err(|source| RuntimeError::Read { path: file.clone(), source });
    let _ = std::fs::remove_file(&file);
    bytes
}

/// A scratch file for one component's safetensors bytes (candle writes them only to a file).
fn tempfile_path(component: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("genmint-random-{}-{component}.safetensors", std::process::id()))
}

impl KeepMade for HashMap<String, Tensor> {
    fn keep(
        &mut self,
        name: &str,
        shape: Shape,
        values: Vec<f32>,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        self.insert(name.to_string(), tensor.clone());
        Ok(tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_named() {
        assert_eq!("sdxl".parse::<RandomShape>().unwrap(), RandomShape::Sdxl);
        assert!("sd21".parse::<RandomShape>().unwrap_err().contains("sd15"));
    }
}
