//! The model hash: sha256 over a canonical manifest of the model directory. This is a recorded
//! format (the chain stores the hash, peers advertise it): never change it; add a `-v2` instead.
//!
//! # `genmint-model-manifest-v1`
//!
//! The manifest is this JSON object, written as canonical JSON (see below):
//!
//! ```json
//! {"files":[{"path":"genmint-model.json","sha256":"<64 lowercase hex>"}, …],
//!  "format":"genmint-model-manifest-v1",
//!  "kind":"sd15",
//!  "model":{"format":"genmint-model-v1","kind":"sd15","name":"…"}}
//! ```
//!
//! - `files`: every file of the model layout (see [`crate::layout`]: `genmint-model.json`,
//!   `model_index.json` for Stable Diffusion kinds, the scheduler config, and each component's
//!   config, weights and tokenizer files, the text encoder included), one entry per file with its path relative to the model directory
//!   (`/`-separated) and the sha256 of its bytes, sorted by path bytes. Other files in the
//!   directory are not part of the model and do not change the hash.
//! - `kind`: the model kind from `genmint-model.json`.
//! - `model`: the parsed `genmint-model.json` (`format`, `kind`, `name`, and `author`/`variant`
//!   when present).
//!
//! Canonical JSON (module `canonical_json`): UTF-8, no whitespace, object keys sorted by their
//! UTF-8 bytes, array order kept; strings escape only `"` and `\` (as `\"` and `\\`) and control
//! characters (`\b \f \n \r \t`, any other below U+0020 as `\u00xx` in lowercase hex), every
//! other character is written as itself. The model hash is `sha256(canonical manifest bytes)`,
//! shown as `0x` and 64 lowercase hex digits.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical_json;
use crate::layout::{self, Layout, ModelConfig};
use crate::{ModelHash, ModelKind, RuntimeError};

/// The manifest format this runtime writes and hashes.
pub const MANIFEST_FORMAT: &str = "genmint-model-manifest-v1";

/// One file of a model and the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the model directory, `/`-separated.
    pub path: String,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

/// What the model hash is computed over; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub format: String,
    pub kind: ModelKind,
    pub model: ModelConfig,
    pub files: Vec<ManifestEntry>,
}

impl ModelManifest {
    /// Builds the manifest from the model description and every file's digest.
    pub(crate) fn new(model: ModelConfig, mut files: Vec<ManifestEntry>) -> Self {
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Self { format: MANIFEST_FORMAT.to_string(), kind: model.kind, model, files }
    }

    /// The exact bytes the model hash is taken over.
    pub fn canonical_json(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|entry| {
                let mut map = serde_json::Map::new();
                map.insert("path".into(), Value::String(entry.path.clone()));
                map.insert("sha256".into(), Value::String(entry.sha256.clone()));
                Value::Object(map)
            })
            .collect();
        let mut map = serde_json::Map::new();
        map.insert("files".into(), Value::Array(files));
        map.insert("format".into(), Value::String(self.format.clone()));
        map.insert("kind".into(), Value::String(self.kind.as_str().into()));
        map.insert("model".into(), self.model.to_json());
        canonical_json::to_vec(&Value::Object(map))
    }

    /// `sha256(canonical_json())`.
    pub fn hash(&self) -> ModelHash {
        ModelHash(Sha256::digest(self.canonical_json()).into())
    }
}

/// The manifest of the model in `dir`, reading and hashing every file of its layout.
pub fn model_manifest(dir: &Path) -> Result<ModelManifest, RuntimeError> {
    let (config, _) = layout::read_model_config(dir)?;
    let layout = Layout::in_dir(&config, dir)?;
    layout.check_present(dir)?;
    let files = layout
        .files()
        .into_iter()
        .map(|file| {
            let sha256 = hex::encode(file_sha256(&layout::file_path(dir, &file))?);
            Ok(ManifestEntry { path: file, sha256 })
        })
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    Ok(ModelManifest::new(config, files))
}

/// The hash of the model in `dir`: `sha256` of its canonical manifest.
pub fn model_hash(dir: &Path) -> Result<ModelHash, RuntimeError> {
    Ok(model_manifest(dir)?.hash())
}

/// sha256 of a file, read in 1 MiB pieces (weights can be many GiB).
fn file_sha256(path: &Path) -> Result<[u8; 32], RuntimeError> {
    let read_error = |source| RuntimeError::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_manifest_bytes_are_pinned() {
        let model = ModelConfig {
            format: "genmint-model-v1".into(),
            kind: ModelKind::Sd15,
            name: "SD \"1.5\"".into(),
            author: None,
            variant: Some("fp16".into()),
            source: None,
        };
        let entry = |path: &str, byte: &str| ManifestEntry { path: path.into(), sha256: byte.repeat(32) };
        let manifest = ModelManifest::new(
            model,
            vec![entry("vae/config.json", "bb"), entry("genmint-model.json", "aa")],
        );
        let text = String::from_utf8(manifest.canonical_json()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"files":[{{"path":"genmint-model.json","sha256":"{}"}},{{"path":"vae/config.json","sha256":"{}"}}],"format":"genmint-model-manifest-v1","kind":"sd15","model":{{"format":"genmint-model-v1","kind":"sd15","name":"SD \"1.5\"","variant":"fp16"}}}}"#,
                "aa".repeat(32),
                "bb".repeat(32)
            )
        );
        assert_eq!(manifest.hash(), ModelHash(Sha256::digest(text.as_bytes()).into()));
    }
}
