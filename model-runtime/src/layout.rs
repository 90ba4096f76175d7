//! Which files make up a model directory, and the small `genmint-model.json` that names the
//! model. The loader and the hasher both take their file list from here, so the hash covers
//! exactly the bytes that are loaded.
//!
//! # Directory layout (diffusers)
//!
//! ```text
//! genmint-model.json                     what this model is (below)
//! model_index.json                       diffusers' pipeline index (must list every component)
//! scheduler/scheduler_config.json        training noise schedule and prediction type
//! text_encoder/config.json               CLIP text config (transformers' CLIPTextConfig)
//! text_encoder/model.safetensors
//! tokenizer/tokenizer.json               a `tokenizers` file (what CLIPTokenizerFast saves), or,
//! tokenizer/vocab.json, merges.txt       when there is no tokenizer.json, CLIP's BPE vocabulary
//!                                        and merges as SD downloads ship them (special_tokens_map.json
//!                                        is not read: tokenizer_config.json names the same tokens)
//! tokenizer/tokenizer_config.json        `pad_token` (what prompts are padded with), `bos_token`,
//!                                        `eos_token`, `unk_token`, `model_max_length` (77)
//! text_encoder_2/…, tokenizer_2/…        the same files again, SDXL and SDXL Turbo only
//! unet/config.json, unet/diffusion_pytorch_model.safetensors
//! vae/config.json,  vae/diffusion_pytorch_model.safetensors
//! ```
//!
//! # Pixel-space layout (`pixel_minilm`)
//!
//! ```text
//! genmint-model.json
//! scheduler/scheduler_config.json        as above
//! text_encoder/config.json               BERT config (all-MiniLM-L6-v2's config.json)
//! text_encoder/model.safetensors         BERT weights (transformers' BertModel names)
//! tokenizer/tokenizer.json               the WordPiece `tokenizers` file of the same model
//! unet/config.json, unet/diffusion_pytorch_model.safetensors   in and out channels 3
//! ```
//!
//! No `model_index.json`, VAE or `tokenizer_config.json`: the UNet denoises RGB pixels directly,
//! and the padding token comes from the BERT config's `pad_token_id`.
//!
//! Which tokenizer files a folder uses is decided by what is there ([`Layout::in_dir`]):
//! `tokenizer.json` when present (so directories that have one hash exactly as before), else
//! `vocab.json` and `merges.txt`. The manifest lists the files actually loaded. The text
//! encoder's weights may be named as transformers 4 writes them (`text_model.embeddings…`) or as
//! transformers 5 writes `CLIPTextModel` (`embeddings…`); `CLIPTextModelWithProjection`'s
//! `text_projection.weight` is accepted (and not used). Any other tensor is refused by name.
//!
//! With `"variant": "fp16"` the weight files are the diffusers variants
//! `model.fp16.safetensors` and `diffusion_pytorch_model.fp16.safetensors` (loaded as f32).
//! Sharded weights, as diffusers and transformers save a large component, load where the single
//! file is absent: the index `diffusion_pytorch_model.safetensors.index[.fp16].json` (or
//! `model.safetensors.index[.fp16].json`) and every shard its `weight_map` names are the
//! component's files, hashed and loaded. Other files in the directory (READMEs, `.bin` weights,
//! safety checker) are not part of the model.
//!
//! # `genmint-model.json`
//!
//! ```json
//! {"format": "genmint-model-v1", "kind": "sd15", "name": "Stable Diffusion 1.5",
//!  "author": "Runway / CompVis", "variant": "fp16"}
//! ```
//!
//! `format` must be `genmint-model-v1`; `kind` is one of `sd15`, `sd21`, `sdxl`, `sd_turbo`,
//! `tiny`, `pixel_minilm`; `name` is the display name (1 to 100 bytes); `author` and `variant` are optional.
//! A model imported from a single-file checkpoint (`genmint models import`) also records the file
//! it came from, so a token's provenance links to the model's page on a marketplace:
//! `"source": {"sha256": "<64 lowercase hex>", "autov2": "<its first 10 digits, upper case>"}`
//! (Civitai's "AutoV2" hash). The file's name is not recorded: renaming it changes nothing.
//! Unknown fields are rejected, so nothing in the file is silently ignored. The kind is not
//! inferred from the configs: it decides how text is encoded and which request bounds apply, and
//! it is part of the model hash, so the operator states it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ModelKind, RuntimeError};

/// File name of the model description in a model directory.
pub const MODEL_CONFIG_FILE: &str = "genmint-model.json";
/// The only accepted `format` of [`MODEL_CONFIG_FILE`].
pub const MODEL_CONFIG_FORMAT: &str = "genmint-model-v1";

/// The contents of `genmint-model.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub format: String,
    pub kind: ModelKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The single-file checkpoint the model was imported from ([`crate::import_checkpoint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
}

/// The checkpoint file a model was imported from, by digest: marketplaces find the model's page
/// by either form (Civitai's search takes both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// sha256 of the file's bytes, 64 lowercase hex digits (what `sha256sum` prints).
    pub sha256: String,
    /// Civitai's "AutoV2" hash: the first 10 hex digits of `sha256`, upper case as Civitai shows it.
    pub autov2: String,
}

impl ModelSource {
    /// Both forms of a file's sha256.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        let sha256 = hex::encode(digest);
        let autov2 = sha256[..10].to_ascii_uppercase();
        Self { sha256, autov2 }
    }

    fn check(&self) -> Result<(), String> {
        let hex = self.sha256.len() == 64
            && self.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(format!("source sha256 {:?} must be 64 lowercase hex digits", self.sha256));
        }
        if self.autov2 != self.sha256[..10].to_ascii_uppercase() {
            return Err(format!(
                "source autov2 {:?} must be the first 10 digits of sha256, upper case",
                self.autov2
            ));
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("autov2".into(), Value::String(self.autov2.clone()));
        map.insert("sha256".into(), Value::String(self.sha256.clone()));
        Value::Object(map)
    }
}

impl ModelConfig {
    /// Parses and checks `genmint-model.json`; `path` is only used in errors.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason };
        let config: Self = serde_json::from_slice(bytes).map_err(|e| {
            invalid(format!(
                "{e} (expected e.g. {{\"format\": \"{MODEL_CONFIG_FORMAT}\", \"kind\": \"sd15\", \"name\": \"Stable Diffusion 1.5\"}})"
            ))
        })?;
        if config.format != MODEL_CONFIG_FORMAT {
            return Err(invalid(format!("format {:?} is not {MODEL_CONFIG_FORMAT:?}", config.format)));
        }
        if config.name.is_empty() || config.name.len() > 100 {
            return Err(invalid("name must be 1 to 100 bytes".to_string()));
        }
        if let Some(variant) = &config.variant {
            let valid = !variant.is_empty()
                && variant.len() <= 32
                && variant.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(invalid(format!("variant {variant:?} must be 1 to 32 of [a-z0-9_]")));
            }
        }
        if let Some(source) = &config.source {
            source.check().map_err(invalid)?;
        }
        Ok(config)
    }

    /// The JSON object recorded in the manifest (absent optional fields are left out).
    pub(crate) fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("format".into(), Value::String(self.format.clone()));
        map.insert("kind".into(), Value::String(self.kind.as_str().into()));
        map.insert("name".into(), Value::String(self.name.clone()));
        if let Some(author) = &self.author {
            map.insert("author".into(), Value::String(author.clone()));
        }
        if let Some(variant) = &self.variant {
            map.insert("variant".into(), Value::String(variant.clone()));
        }
        if let Some(source) = &self.source {
            map.insert("source".into(), source.to_json());
        }
        Value::Object(map)
    }
}

/// diffusers' weights file name (`…{variant}.safetensors`, or its `.safetensors.index…json`).
const DIFFUSERS_WEIGHTS: &str = "diffusion_pytorch_model";
/// transformers' weights file name.
const TRANSFORMERS_WEIGHTS: &str = "model";

/// A config file and its weights, relative to the model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ComponentFiles {
    pub config: String,
    pub weights: WeightFiles,
}

/// Where a component's tensors are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WeightFiles {
    /// One safetensors file.
    Single(String),
    /// A safetensors index (`…safetensors.index[.variant].json`, whose `weight_map` names each
    /// tensor's file) and the shards it names, sorted, in the index's folder.
    Sharded { index: String, shards: Vec<String> },
}

impl WeightFiles {
    pub fn paths(&self) -> Vec<String> {
        match self {
            WeightFiles::Single(file) => vec![file.clone()],
            WeightFiles::Sharded { index, shards } => {
                [index.clone()].into_iter().chain(shards.clone()).collect()
            }
        }
    }

    /// The weights of a component whose single file would be `single`: that file when present,
    /// else the index beside it (`stem.safetensors.index{suffix}.json`) with its shards when
    /// present, else `single` (reported missing).
    fn in_dir(dir: &Path, single: String, stem: &str, suffix: &str) -> Result<Self, RuntimeError> {
        let folder = single.rsplit_once('/').map_or("", |(folder, _)| folder);
        let index = format!("{folder}/{stem}.safetensors.index{suffix}.json");
        let index_path = file_path(dir, &index);
        if file_path(dir, &single).is_file() || !index_path.is_file() {
            return Ok(WeightFiles::Single(single));
        }
        let map = weight_map(&index_path, &read(&index_path)?)?;
        let mut shards: Vec<String> = map.values().map(|name| format!("{folder}/{name}")).collect();
        shards.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        shards.dedup();
        Ok(WeightFiles::Sharded { index, shards })
    }
}

/// The `weight_map` of a safetensors index (tensor name → shard file name), checked: every
/// shard is a `.safetensors` file in the index's own folder.
pub(crate) fn weight_map(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidModelFile { path: path.to_path_buf(), reason };
    let json: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let Some(Value::Object(entries)) = json.get("weight_map") else {
        return Err(invalid("a safetensors index needs a weight_map object".into()));
    };
    let mut map = BTreeMap::new();
    for (tensor, file) in entries {
        let file =
            file.as_str().ok_or_else(|| invalid(format!("weight_map[{tensor:?}] is not a file name")))?;
        let plain = !file.contains(['/', '\\']) && !file.starts_with('.') && file.ends_with(".safetensors");
        if !plain {
            return Err(invalid(format!(
                "weight_map[{tensor:?}] = {file:?}: a shard must be a .safetensors file beside the index"
            )));
        }
        map.insert(tensor.clone(), file.to_string());
    }
    if map.is_empty() {
        return Err(invalid("the weight_map is empty".into()));
    }
    Ok(map)
}

/// The files a tokenizer is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenizerFiles {
    /// A `tokenizers` file (`tokenizer.json`).
    Json(String),
    /// CLIP's BPE vocabulary (`vocab.json`) and merges (`merges.txt`).
    VocabMerges { vocab: String, merges: String },
}

impl TokenizerFiles {
    fn paths(&self) -> Vec<String> {
        match self {
            TokenizerFiles::Json(json) => vec![json.clone()],
            TokenizerFiles::VocabMerges { vocab, merges } => vec![vocab.clone(), merges.clone()],
        }
    }
}

/// A text encoder with its tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextFiles {
    pub encoder: ComponentFiles,
    pub tokenizer: TokenizerFiles,
    /// CLIP tokenizers only (it names the padding token).
    pub tokenizer_config: Option<String>,
}

/// Every file of a model of some kind, by role. Paths use `/` on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Latent-space (Stable Diffusion style) models only.
    pub model_index: Option<String>,
    pub scheduler: String,
    pub text: Vec<TextFiles>,
    pub unet: ComponentFiles,
    /// Latent-space models only: pixel-space models have no decoder.
    pub vae: Option<ComponentFiles>,
}

impl Layout {
    pub fn new(config: &ModelConfig) -> Self {
        let suffix = config.variant.as_ref().map(|v| format!(".{v}")).unwrap_or_default();
        let diffusers = |dir: &str| ComponentFiles {
            config: format!("{dir}/config.json"),
            weights: WeightFiles::Single(format!("{dir}/{DIFFUSERS_WEIGHTS}{suffix}.safetensors")),
        };
        let pixel_space = config.kind.pixel_space();
        let text = |number: &str| TextFiles {
            encoder: ComponentFiles {
                config: format!("text_encoder{number}/config.json"),
                weights: WeightFiles::Single(format!(
                    "text_encoder{number}/{TRANSFORMERS_WEIGHTS}{suffix}.safetensors"
                )),
            },
            tokenizer: TokenizerFiles::Json(format!("tokenizer{number}/tokenizer.json")),
            tokenizer_config: (!pixel_space).then(|| format!("tokenizer{number}/tokenizer_config.json")),
        };
        let text = if config.kind.dual_text_encoders() { vec![text(""), text("_2")] } else { vec![text("")] };
        Self {
            model_index: (!pixel_space).then(|| "model_index.json".to_string()),
            scheduler: "scheduler/scheduler_config.json".to_string(),
            text,
            unet: diffusers("unet"),
            vae: (!pixel_space).then(|| diffusers("vae")),
        }
    }

    /// The layout of the model in `dir`: as [`Layout::new`], except that a component whose
    /// single weights file is absent but whose safetensors index is there is read from the index
    /// and its shards, and a CLIP tokenizer folder without `tokenizer.json` but with `vocab.json`
    /// is read from `vocab.json` and `merges.txt`. Fails on an index that is not one.
    pub fn in_dir(config: &ModelConfig, dir: &Path) -> Result<Self, RuntimeError> {
        let mut layout = Self::new(config);
        let suffix = config.variant.as_ref().map(|v| format!(".{v}")).unwrap_or_default();
        let mut components: Vec<(&mut ComponentFiles, &str)> = vec![(&mut layout.unet, DIFFUSERS_WEIGHTS)];
        components.extend(layout.vae.as_mut().map(|vae| (vae, DIFFUSERS_WEIGHTS)));
        components.extend(layout.text.iter_mut().map(|text| (&mut text.encoder, TRANSFORMERS_WEIGHTS)));
        for (files, stem) in components {
            if let WeightFiles::Single(single) = &files.weights {
                files.weights = WeightFiles::in_dir(dir, single.clone(), stem, &suffix)?;
            }
        }
        if config.kind.pixel_space() {
            return Ok(layout);
        }
        for text in &mut layout.text {
            let TokenizerFiles::Json(json) = &text.tokenizer else { continue };
            let folder = json.rsplit_once('/').map_or("", |(folder, _)| folder);
            let vocab = format!("{folder}/vocab.json");
            if !file_path(dir, json).is_file() && file_path(dir, &vocab).is_file() {
                text.tokenizer =
                    TokenizerFiles::VocabMerges { vocab, merges: format!("{folder}/merges.txt") };
            }
        }
        Ok(layout)
    }

    /// The pipeline components `model_index.json` must list (when the layout has one).
    pub fn components(&self) -> Vec<&str> {
        let mut names = vec!["scheduler", "unet", "vae", "text_encoder", "tokenizer"];
        if self.text.len() == 2 {
            names.extend(["text_encoder_2", "tokenizer_2"]);
        }
        names
    }

    /// Every file of the model, `genmint-model.json` included, sorted by path bytes.
    pub fn files(&self) -> Vec<String> {
        let mut files = vec![MODEL_CONFIG_FILE.to_string(), self.scheduler.clone(), self.unet.config.clone()];
        files.extend(self.unet.weights.paths());
        files.extend(self.model_index.clone());
        if let Some(vae) = &self.vae {
            files.push(vae.config.clone());
            files.extend(vae.weights.paths());
        }
        for text in &self.text {
            files.push(text.encoder.config.clone());
            files.extend(text.encoder.weights.paths());
            files.extend(text.tokenizer.paths());
            files.extend(text.tokenizer_config.clone());
        }
        files.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        files
    }

    /// Fails with [`RuntimeError::MissingFile`] naming the first absent file.
    pub fn check_present(&self, dir: &Path) -> Result<(), RuntimeError> {
        for file in self.files() {
            let path = file_path(dir, &file);
            if !path.is_file() {
                return Err(RuntimeError::MissingFile { path });
            }
        }
        Ok(())
    }
}

/// `relative` (with `/` separators) under `dir`.
pub(crate) fn file_path(dir: &Path, relative: &str) -> PathBuf {
    relative.split('/').fold(dir.to_path_buf(), |path, part| path.join(part))
}

/// Reads a whole file, mapping absence to [`RuntimeError::MissingFile`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => RuntimeError::MissingFile { path: path.to_path_buf() },
        _ => RuntimeError::Read { path: path.to_path_buf(), source },
    })
}

/// Reads and checks `genmint-model.json` in `dir`.
pub(crate) fn read_model_config(dir: &Path) -> Result<(ModelConfig, Vec<u8>), RuntimeError> {
    let path = dir.join(MODEL_CONFIG_FILE);
    let bytes = read(&path)?;
    Ok((ModelConfig::parse(&path, &bytes)?, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<ModelConfig, RuntimeError> {
        ModelConfig::parse(Path::new("m/genmint-model.json"), json.as_bytes())
    }

    #[test]
    fn model_config_is_strict() {
        let ok =
            config(r#"{"format":"genmint-model-v1","kind":"sdxl","name":"XL","variant":"fp16"}"#).unwrap();
        assert_eq!(ok.kind, ModelKind::Sdxl);
        for (bad, needle) in [
            (r#"{"format":"genmint-model-v2","kind":"sd15","name":"x"}"#, "format"),
            (r#"{"format":"genmint-model-v1","kind":"sd3","name":"x"}"#, "sd3"),
            (r#"{"format":"genmint-model-v1","kind":"sd15","name":""}"#, "name"),
            (r#"{"format":"genmint-model-v1","kind":"sd15","name":"x","steps":3}"#, "steps"),
            (r#"{"format":"genmint-model-v1","kind":"sd15","name":"x","variant":"../x"}"#, "variant"),
            (
                r#"{"format":"genmint-model-v1","kind":"sd15","name":"x","source":{"sha256":"ab","autov2":"AB"}}"#,
                "sha256",
            ),
        ] {
            let message = config(bad).unwrap_err().to_string();
            assert!(message.contains("genmint-model.json") && message.contains(needle), "{message}");
        }
    }

    #[test]
    fn an_imported_model_records_its_source_file() {
        let source = ModelSource::from_digest(&[0xab; 32]);
        assert_eq!(source.autov2, "ABABABABAB");
        let json = format!(
            r#"{{"format":"genmint-model-v1","kind":"sd15","name":"x","source":{{"sha256":"{}","autov2":"ABABABABAB"}}}}"#,
            source.sha256
        );
        let parsed = config(&json).unwrap();
        assert_eq!(parsed.source.as_ref(), Some(&source));
        assert_eq!(parsed.to_json()["source"]["autov2"], "ABABABABAB");
        let wrong = json.replace("ABABABABAB", "abababab00");
        assert!(config(&wrong).unwrap_err().to_string().contains("autov2"));
    }

    #[test]
    fn layout_lists_every_file_sorted() {
        let xl =
            config(r#"{"format":"genmint-model-v1","kind":"sdxl","name":"XL","variant":"fp16"}"#).unwrap();
        let files = Layout::new(&xl).files();
        assert_eq!(files.len(), 15);
        assert_eq!(files[0], "genmint-model.json");
        assert!(files.contains(&"text_encoder_2/model.fp16.safetensors".to_string()));
        assert!(files.contains(&"unet/diffusion_pytorch_model.fp16.safetensors".to_string()));
        assert!(files.windows(2).all(|w| w[0] < w[1]));

        let sd = config(r#"{"format":"genmint-model-v1","kind":"sd15","name":"SD"}"#).unwrap();
        let layout = Layout::new(&sd);
        assert_eq!(layout.files().len(), 11);
        assert_eq!(
            layout.unet.weights,
            WeightFiles::Single("unet/diffusion_pytorch_model.safetensors".into())
        );
        assert_eq!(layout.components().len(), 5);

        let pixel = config(r#"{"format":"genmint-model-v1","kind":"pixel_minilm","name":"P"}"#).unwrap();
        assert_eq!(
            Layout::new(&pixel).files(),
            [
                "genmint-model.json",
                "scheduler/scheduler_config.json",
                "text_encoder/config.json",
                "text_encoder/model.safetensors",
                "tokenizer/tokenizer.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors",
            ]
        );
    }

    #[test]
    fn a_tokenizer_folder_without_tokenizer_json_uses_vocab_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let sd = config(r#"{"format":"genmint-model-v1","kind":"sd15","name":"SD"}"#).unwrap();
        assert_eq!(Layout::in_dir(&sd, dir.path()).unwrap(), Layout::new(&sd));
        std::fs::create_dir(dir.path().join("tokenizer")).unwrap();
        std::fs::write(dir.path().join("tokenizer/vocab.json"), "{}").unwrap();
        let files = Layout::in_dir(&sd, dir.path()).unwrap().files();
        assert!(files.contains(&"tokenizer/vocab.json".to_string()));
        assert!(files.contains(&"tokenizer/merges.txt".to_string()));
        assert!(!files.contains(&"tokenizer/tokenizer.json".to_string()));
        assert!(files.windows(2).all(|w| w[0] < w[1]));
        // tokenizer.json wins when both are there, so such directories hash as before.
        std::fs::write(dir.path().join("tokenizer/tokenizer.json"), "{}").unwrap();
        assert_eq!(Layout::in_dir(&sd, dir.path()).unwrap(), Layout::new(&sd));
    }
}
