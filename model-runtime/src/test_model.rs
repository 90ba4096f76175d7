//! The built-in test-size model, `genmint-test-tiny`: a complete diffusers-layout directory with a
//! small CLIP text encoder, UNet and VAE whose weights come from our own seeded RNG, so every
//! machine writes byte-identical files and the same model hash. It is product code: `genmint dev`
//! runs it through exactly the loader and pipeline that run Stable Diffusion. Its pictures are
//! colourful noise (the weights are untrained), but they are deterministic and depend on the
//! prompt, the seed and every setting, which is what the rest of the system needs to exercise.
//!
//! Sizes: 64×64 images by default (32 to 512, multiples of 16); 8×8 latents; the UNet has two
//! levels (32 and 64 channels), the VAE four (16–32 channels), the text encoder two layers of
//! width 32 over a word-level vocabulary of lowercase English words (anything else is `<|unk|>`).
//!
//! Weights (rule `genmint-test-weights-v1`): for the tensor `name` of component `c` (`unet`,
//! `vae`, `text_encoder`), a SplitMix64 generator starts from the first 8 bytes (big-endian) of
//! `sha256("genmint-test-weights-v1/" + c + "/" + name)` and draws one u64 per element, in
//! row-major order. An element of a tensor of rank ≥ 2 is `(2u − 1) · sqrt(3 / fan_in)`, with
//! `u` the draw's top 53 bits as a fraction in [0, 1) and `fan_in` the product of all dimensions
//! but the first (unit variance per input), computed in f64 and rounded to f32. Rank-1
//! `*.weight` tensors (norm scales) are 1 and `*.bias` tensors 0. Which tensors exist and their
//! shapes are whatever the networks request when built from the configs. (SplitMix64 rather than
//! ChaCha20 only for speed: these are millions of draws, and quality does not matter here.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKL;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clip::{ClipOutput, ClipTextModel};
use crate::configs::{self, UnetSpec, VaeSpec};
use crate::layout::{self, MODEL_CONFIG_FILE, MODEL_CONFIG_FORMAT};
use crate::noise::unit_interval;
use crate::{RuntimeError, canonical_json};

/// Display name of the test model.
pub const TEST_MODEL_NAME: &str = "genmint-test-tiny";

const WEIGHTS_RULE: &str = "genmint-test-weights-v1";
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
const UNK: &str = "<|unk|>";

/// Words of the test tokenizer, in id order after the three special tokens (ids 3 and up).
const WORDS: &str = "\
    a an the of in on at with and or by under over near red orange yellow green blue purple pink \
    black white gray gold silver dark bright small big tiny huge old new happy sad cat dog fox \
    bird fish horse dragon robot person child tree flower forest mountain river sea ocean sky \
    cloud sun moon star city house castle street car ship boat train road bridge garden field \
    desert snow rain storm fire water stone glass light shadow night day morning evening sunset \
    winter summer spring autumn portrait landscape painting photo drawing sketch watercolor oil \
    pixel art style detailed abstract realistic cartoon minimal neon vintage futuristic magic \
    space planet galaxy cosmic blurry lowres ugly bad good beautiful cute scary calm wild";

fn words() -> impl Iterator<Item = &'static str> {
    WORDS.split_whitespace()
}

/// Writes the test model into `dir` (created if needed; existing files of the layout are
/// replaced). The result loads with [`crate::load_model`] and always hashes the same.
pub fn write_test_model(dir: &Path) -> Result<(), RuntimeError> {
    write_files(dir, test_model_files()?)
}

/// Writes each (relative path, contents) into `dir`, creating folders as needed.
pub(crate) fn write_files(dir: &Path, files: Vec<(String, Vec<u8>)>) -> Result<(), RuntimeError> {
    for (relative, bytes) in files {
        let path = layout::file_path(dir, &relative);
        let write_error = |source| RuntimeError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        std::fs::write(&path, bytes).map_err(write_error)?;
    }
    Ok(())
}

/// Every file of the test model: relative path and contents.
fn test_model_files() -> Result<Vec<(String, Vec<u8>)>, RuntimeError> {
    let (text_config, unet_config, vae_config) = (text_encoder_config(), unet_config(), vae_config());
    let weights = seeded_component_weights(&text_config, &unet_config, &vae_config)?;
    Ok(vec![
        (MODEL_CONFIG_FILE.into(), config_file(&model_config())),
        ("model_index.json".into(), config_file(&model_index())),
        ("scheduler/scheduler_config.json".into(), config_file(&scheduler_config())),
        ("text_encoder/config.json".into(), config_file(&text_config)),
        ("text_encoder/model.safetensors".into(), weights.text_encoder),
        ("tokenizer/tokenizer.json".into(), config_file(&tokenizer_json())),
        ("tokenizer/tokenizer_config.json".into(), config_file(&tokenizer_config())),
        ("unet/config.json".into(), config_file(&unet_config)),
        ("unet/diffusion_pytorch_model.safetensors".into(), weights.unet),
        ("vae/config.json".into(), config_file(&vae_config)),
        ("vae/diffusion_pytorch_model.safetensors".into(), weights.vae),
    ])
}

/// A config file's bytes: canonical JSON and a newline.
pub(crate) fn config_file(value: &Value) -> Vec<u8> {
    let mut bytes = canonical_json::to_vec(value);
    bytes.push(b'\n');
    bytes
}

/// The safetensors files of the three networks.
struct ComponentWeights {
    text_encoder: Vec<u8>,
    unet: Vec<u8>,
    vae: Vec<u8>,
}

/// Builds each network from its config over the seeded backend (the weights rule), through the
/// same config parsers the loader uses, so the tensors are exactly the ones loading will ask for.
fn seeded_component_weights(
    text_config: &Value,
    unet_config: &Value,
    vae_config: &Value,
) -> Result<ComponentWeights, RuntimeError> {
    let internal = |reason: String| RuntimeError::Inference(candle_core::Error::Msg(reason));
    let clip = configs::clip_text_config(text_config).map_err(internal)?;
    let unet = UnetSpec::from_json(unet_config).map_err(internal)?;
    let vae = VaeSpec::from_json(vae_config).map_err(internal)?;
    Ok(ComponentWeights {
        text_encoder: seeded_weights("text_encoder", |vb| {
            // Named as transformers 4 writes them, which the model's hash is pinned to.
            ClipTextModel::new(vb.pp("text_model"), vb.clone(), &clip, ClipOutput::LastHiddenState).map(drop)
        })?,
        unet: seeded_weights("unet", |vb| {
            UNet2DConditionModel::new(vb, unet.in_channels, unet.out_channels, false, unet.config.clone())
                .map(drop)
        })?,
        vae: seeded_weights("vae", |vb| {
            AutoEncoderKL::new(vb, vae.in_channels, vae.out_channels, vae.config.clone()).map(drop)
        })?,
    })
}

/// The CLIP text encoder: two layers of width 32 over the word-level vocabulary.
pub(crate) fn text_encoder_config() -> Value {
    json!({
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "vocab_size": 3 + words().count(),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    })
}

/// The UNet: two levels of 32 and 64 channels, attention only on the lower-resolution one.
fn unet_config() -> Value {
    json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": [2, 4],
        "block_out_channels": [32, 64],
        "center_input_sample": false,
        "cross_attention_dim": 32,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 1,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-5,
        "norm_num_groups": 8,
        "out_channels": 4,
        "sample_size": 8,
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "use_linear_projection": false,
    })
}

/// The VAE: four levels of 16 to 32 channels, 4 latent channels.
pub(crate) fn vae_config() -> Value {
    json!({
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [16, 32, 32, 32],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "out_channels": 3,
        "sample_size": 64,
        "scaling_factor": 0.18215,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    })
}

/// SD 1.5's training noise schedule (scaled linear betas), for DDIM.
pub(crate) fn scheduler_config() -> Value {
    json!({
        "_class_name": "DDIMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": false,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": false,
        "steps_offset": 1,
        "timestep_spacing": "leading",
    })
}

/// The diffusers pipeline index naming every component.
fn model_index() -> Value {
    json!({
        "_class_name": "StableDiffusionPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["tokenizers", "Tokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
}

/// `genmint-model.json`: what the model is and who made it.
fn model_config() -> Value {
    json!({
        "format": MODEL_CONFIG_FORMAT,
        "kind": "tiny",
        "name": TEST_MODEL_NAME,
        "author": "genmint",
    })
}

/// The CLIP tokenizer settings: special tokens and sequence length.
pub(crate) fn tokenizer_config() -> Value {
    json!({
        "bos_token": BOS,
        "eos_token": EOS,
        "model_max_length": 77,
        "pad_token": EOS,
        "unk_token": UNK,
    })
}

/// A `tokenizers` file: NFC + lowercase, split on whitespace and punctuation, word-level
/// vocabulary with `<|unk|>` for anything unknown, wrapped in start and end tokens.
pub(crate) fn tokenizer_json() -> Value {
    let special = [BOS, EOS, UNK];
    let mut vocab = serde_json::Map::new();
    for (id, token) in special.into_iter().chain(words()).enumerate() {
        vocab.insert(token.to_string(), json!(id));
    }
    let added_tokens: Vec<Value> = special
        .iter()
        .enumerate()
        .map(|(id, token)| {
            json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let special_token =
        |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special_token(BOS, 0), sequence("A", 0), special_token(EOS, 0)],
            "pair": [special_token(BOS, 0), sequence("A", 0), special_token(EOS, 0),
                     sequence("B", 1), special_token(EOS, 1)],
            "special_tokens": {
                BOS: {"id": BOS, "ids": [0], "tokens": [BOS]},
                EOS: {"id": EOS, "ids": [1], "tokens": [EOS]},
            },
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    })
}

/// Builds a network over a backend that makes every requested tensor by the weights rule, and
/// returns those tensors as a safetensors file.
fn seeded_weights(
    component: &'static str,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<()>,
) -> Result<Vec<u8>, RuntimeError> {
    let made = Arc::new(Mutex::new(BTreeMap::new()));
    let backend = SeededWeights { component, made: Arc::clone(&made) };
    build(VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu))?;
    let made = made
        .lock()
        .map_err(|_| RuntimeError::Inference(candle_core::Error::Msg("weights lock poisoned".into())))?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = made
        .iter()
        .map(|(name, (shape, values))| {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RuntimeError::Inference(candle_core::Error::Msg(e.to_string())))?;
    safetensors::tensor::serialize(views, None)
        .map_err(|e| RuntimeError::Inference(candle_core::Error::Msg(e.to_string())))
}

/// The tensors made so far, by name: shape and values.
type MadeTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// What a [`SeededWeights`] backend keeps of each tensor it makes.
pub(crate) trait KeepMade: Send + Sync {
    /// Makes the tensor `name` of `shape` from `values` as `dtype`, keeping what the caller needs.
    fn keep(
        &mut self,
        name: &str,
        shape: Shape,
        values: Vec<f32>,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor>;
}

impl KeepMade for MadeTensors {
    fn keep(
        &mut self,
        name: &str,
        shape: Shape,
        values: Vec<f32>,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = Tensor::from_vec(values.clone(), shape.clone(), device)?.to_dtype(dtype)?;
        self.insert(name.to_string(), (shape.dims().to_vec(), values));
        Ok(tensor)
    }
}

/// A backend that makes every requested tensor by the weights rule, for `component`.
pub(crate) struct SeededWeights<K> {
    pub component: &'static str,
    pub made: Arc<Mutex<K>>,
}

impl<K: KeepMade + 'static> SimpleBackend for SeededWeights<K> {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let values = seeded_values(self.component, name, shape.dims())?;
        self.made
            .lock()
            .map_err(|_| candle_core::Error::Msg("weights lock poisoned".into()))?
            .keep(name, shape, values, dtype, device)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        // Only tensors requested with a shape can be made.
        Err(candle_core::Error::CannotFindTensor { path: name.to_string() })
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// The values of one tensor by rule `genmint-test-weights-v1` (module doc).
pub(crate) fn seeded_values(component: &str, name: &str, dims: &[usize]) -> candle_core::Result<Vec<f32>> {
    let count: usize = dims.iter().product();
    match dims {
        [_] if name.ends_with(".weight") || name == "weight" => Ok(vec![1.0; count]),
        [_] if name.ends_with(".bias") || name == "bias" => Ok(vec![0.0; count]),
        [_, rest @ ..] if !rest.is_empty() => {
            let fan_in: usize = rest.iter().product();
            let bound = (3.0 / fan_in as f64).sqrt();
            let digest = Sha256::digest(format!("{WEIGHTS_RULE}/{component}/{name}").as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            let mut rng = SplitMix64(u64::from_be_bytes(first));
            Ok((0..count).map(|_| ((2.0 * unit_interval(rng.next()) - 1.0) * bound) as f32).collect())
        }
        _ => Err(candle_core::Error::Msg(format!(
            "no test weight rule for {component}/{name} of shape {dims:?}"
        ))),
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): `state += 0x9e3779b97f4a7c15`, then two
/// xor-shift-multiply rounds of the state.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{PromptTokenizer, TokenizerSource};

    #[test]
    fn splitmix64_matches_the_reference() {
        // First outputs for seed 1234567 from the reference C implementation (Vigna).
        let mut rng = SplitMix64(1_234_567);
        let outputs: Vec<u64> = (0..3).map(|_| rng.next()).collect();
        assert_eq!(
            outputs,
            vec![6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423]
        );
    }

    #[test]
    fn files_are_identical_on_every_write() {
        let first = test_model_files().unwrap();
        let second = test_model_files().unwrap();
        assert_eq!(first, second);
        let paths: Vec<&str> = first.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
    }

    #[test]
    fn weights_follow_the_rule() {
        assert_eq!(seeded_values("unet", "conv_in.bias", &[4]).unwrap(), vec![0.0; 4]);
        assert_eq!(seeded_values("unet", "norm.weight", &[2]).unwrap(), vec![1.0; 2]);
        let w = seeded_values("unet", "conv_in.weight", &[32, 4, 3, 3]).unwrap();
        let bound = (3.0f64 / 36.0).sqrt() as f32;
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert_ne!(w, seeded_values("vae", "conv_in.weight", &[32, 4, 3, 3]).unwrap());
        assert!(seeded_values("unet", "scale", &[]).is_err());
    }

    #[test]
    fn tokenizer_accepts_any_prompt() {
        let bytes = canonical_json::to_vec(&tokenizer_json());
        let tokenizer = PromptTokenizer::new(
            TokenizerSource::Json { path: Path::new("tokenizer.json"), bytes: &bytes },
            Path::new("tokenizer_config.json"),
            &json!({"pad_token": EOS}),
            77,
            3 + words().count(),
        )
        .unwrap();
        let ids = tokenizer.ids("A RED fox, über 東京 🦊!", "prompt").unwrap().ids;
        assert_eq!(ids.len(), 77);
        let red = 3 + words().position(|w| w == "red").unwrap() as u32;
        let fox = 3 + words().position(|w| w == "fox").unwrap() as u32;
        assert_eq!(&ids[..4], &[0, 3, red, fox]);
        assert!(ids[4..8].iter().all(|&id| id == 2), "{:?}", &ids[..12]);
        assert!(ids[8..].iter().all(|&id| id == 1));
        let empty = tokenizer.ids("", "prompt").unwrap();
        assert_eq!((&empty.ids[..2], empty.dropped), (&[0, 1][..], 0));
        let long = tokenizer.ids(&"cat ".repeat(500), "prompt").unwrap();
        assert_eq!((long.ids.len(), long.ids[0], long.ids[76], long.dropped), (77, 0, 1, 425));
    }
}
