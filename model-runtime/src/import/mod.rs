//! Importing a single-file checkpoint: the `.safetensors` files A1111, ComfyUI and Civitai use,
//! with the original (LDM) tensor names, become a genmint model directory (diffusers layout plus
//! `genmint-model.json`, see [`crate::layout`]) that loads and hashes like any other.
//!
//! ```text
//! FILE.safetensors ── name check: .ckpt/.pt/.pth/.bin are pickles, which run code: refused
//!   ├─ header only ─► tensor names, shapes ─► family (SD 1.x / 2.x / XL, or refuse: ambiguous)
//!   │                                      ─► plan: every tensor renamed to diffusers' name (`ldm`)
//!   │                                      ─► configs: the release's, sizes from the tensors
//!   │                                         (`release`), or copied from a diffusers folder
//!   ├─ sha256 of all bytes ─► genmint-model.json "source": sha256 and Civitai's AutoV2
//!   └─ tensor bytes copied unchanged (SDXL's text projection transposed), in name order
//!                              ─► unet/, vae/, text_encoder/ (SDXL: text_encoder_2/) safetensors
//! tokenizer/ (SDXL: and tokenizer_2/) folder (a checkpoint has none) ─► copied byte for byte
//! all of it written into a staging folder, then renamed to the output directory
//! ```
//!
//! Nothing is converted numerically: dtypes stay as stored, a renamed tensor has the same bytes,
//! the VAE attention's 1×1 convolutions become linear weights by dropping two unit
//! dimensions, and SDXL's OpenCLIP projection is transposed (same values, other order). The
//! outputs are a function of the checkpoint's bytes and the options alone (sorted tensors,
//! canonical JSON), so one file gives one model hash on every machine.
//!
//! Supported: SD 1.x (SD 1.5 and its fine-tunes and merges), SD 2.x (2.0, 2.1, 2.1-base and
//! their fine-tunes) and SDXL base (1.0, its fine-tunes and merges, SDXL Turbo). SD 2.x's OpenCLIP
//! text encoder becomes transformers' `CLIPTextModel`: the fused q, k, v projections are split
//! into their three row slices (same bytes), and the last resblock is left out, as diffusers'
//! conversion does (SD 2.x conditions on the penultimate layer). Whether an SD 2.x model predicts
//! v (2.x 768) or the noise (2.x base) is not in its tensors, so an SD 2.x import needs the
//! prediction type or a configs folder. SDXL's second encoder becomes
//! `CLIPTextModelWithProjection` with every block, its projection matrix transposed (the one
//! tensor whose bytes are rearranged; the values are the same); SDXL needs both tokenizers. The
//! SDXL refiner (one OpenCLIP encoder, an aesthetic score) is refused.

mod ldm;
mod release;
mod safetensors_io;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::layout::{self, MODEL_CONFIG_FILE, MODEL_CONFIG_FORMAT, ModelConfig, ModelSource};
use crate::{ModelHash, ModelKind, RuntimeError, canonical_json};
pub use release::PredictionType;
use safetensors_io::{OutTensor, SourceTensors};

/// Which Stable Diffusion generation a checkpoint's tensors belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFamily {
    /// SD 1.x: CLIP ViT-L text encoder (`cond_stage_model.transformer.`), 768-wide context.
    Sd1,
    /// SD 2.x: OpenCLIP ViT-H text encoder (`cond_stage_model.model.`), 1024-wide context.
    Sd2,
    /// SDXL: two text encoders (`conditioner.embedders.0/1`), 2048-wide context.
    Sdxl,
}

impl CheckpointFamily {
    fn label(self) -> &'static str {
        match self {
            CheckpointFamily::Sd1 => "SD 1.x",
            CheckpointFamily::Sd2 => "SD 2.x",
            CheckpointFamily::Sdxl => "SDXL",
        }
    }

    /// The families a model kind can be imported from (`tiny` runs either single-encoder
    /// family at test size), and the kind a family imports as by default.
    fn of_kind(kind: ModelKind) -> &'static [Self] {
        match kind {
            ModelKind::Sd15 => &[CheckpointFamily::Sd1],
            ModelKind::Tiny => &[CheckpointFamily::Sd1, CheckpointFamily::Sd2],
            ModelKind::Sd21 => &[CheckpointFamily::Sd2],
            ModelKind::Sdxl | ModelKind::SdTurbo | ModelKind::TinyXl => &[CheckpointFamily::Sdxl],
            ModelKind::PixelMiniLm => &[],
        }
    }

    fn default_kind(self) -> ModelKind {
        match self {
            CheckpointFamily::Sd1 => ModelKind::Sd15,
            CheckpointFamily::Sd2 => ModelKind::Sd21,
            CheckpointFamily::Sdxl => ModelKind::Sdxl,
        }
    }

    /// The hub repository of the family's reference release, whose folders an import can use.
    fn release_repository(self) -> &'static str {
        match self {
            CheckpointFamily::Sd1 => "stable-diffusion-v1-5",
            CheckpointFamily::Sd2 => "stable-diffusion-2-1",
            CheckpointFamily::Sdxl => "stable-diffusion-xl-base-1.0",
        }
    }

    /// The UNet context width of the family's releases.
    fn release_context_width(self) -> usize {
        match self {
            CheckpointFamily::Sd1 => 768,
            CheckpointFamily::Sd2 => 1024,
            CheckpointFamily::Sdxl => 2048,
        }
    }
}

/// What to import a checkpoint as.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The model kind; inferred from the tensors when `None` (and refused when they are
    /// ambiguous). `tiny` imports an SD 1.x checkpoint under the test-size request bounds.
    pub kind: Option<ModelKind>,
    /// Display name [default: the file name without `.safetensors`].
    pub name: Option<String>,
    /// A CLIP tokenizer folder: `tokenizer_config.json` and `tokenizer.json`, or `vocab.json`
    /// and `merges.txt` (the `tokenizer/` folder of the model's diffusers release). Required
    /// unless `configs` has a `tokenizer/` folder: checkpoints carry no tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// SDXL's second tokenizer (the release's `tokenizer_2/` folder, which pads with `!`):
    /// required for SDXL unless `configs` has a `tokenizer_2/` folder, refused otherwise.
    pub tokenizer_2: Option<PathBuf>,
    /// A diffusers folder of the same architecture whose `unet/`, `vae/`, `text_encoder/` (and
    /// SDXL's `text_encoder_2/`) configs and scheduler config are copied instead of the release
    /// configs (as diffusers' `from_single_file(config=…)` does), and for SDXL its
    /// `model_index.json`, whose flags (`force_zeros_for_empty_prompt`) change the picture.
    pub configs: Option<PathBuf>,
    /// What the denoiser predicts, for the release scheduler config: required for SD 2.x
    /// without `configs` (the tensors do not tell v-prediction 768-px models from epsilon base
    /// models); SD 1.x and SDXL default to epsilon. Refused together with `configs`, whose
    /// scheduler config says it.
    pub prediction: Option<PredictionType>,
}

/// What an import is doing, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStage {
    /// Hashing the checkpoint's bytes.
    Hashing,
    /// Copying the tensors into the model directory.
    Writing,
}

/// Progress of an import: bytes done out of the stage's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub stage: ImportStage,
    pub done: u64,
    pub total: u64,
}

/// The outcome of an import.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub family: CheckpointFamily,
    pub kind: ModelKind,
    pub name: String,
    pub source: ModelSource,
    /// Tensors written (all components).
    pub tensors: usize,
    /// Checkpoint tensors not part of the model (EMA copies, schedule buffers), by first name
    /// segment.
    pub ignored: BTreeMap<String, usize>,
    /// The model hash of the written directory.
    pub hash: ModelHash,
}

fn refuse(path: &Path, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Import { path: path.to_path_buf(), reason: reason.into() }
}

/// Imports the checkpoint `file` into the model directory `out` (which must not exist or be
/// empty); `progress` is called as bytes are hashed and copied.
pub fn import_checkpoint(
    file: &Path,
    out: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport, RuntimeError> {
    check_file_name(file)?;
    check_out_dir(file, out)?;
    let mut source = File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RuntimeError::MissingFile { path: file.to_path_buf() },
        _ => RuntimeError::Read { path: file.to_path_buf(), source: e },
    })?;
    let tensors = safetensors_io::read_header(file, &mut source)?;
    let (family, kind) = detect(&tensors, options.kind).map_err(|reason| refuse(file, reason))?;
    check_prediction(family, options).map_err(|reason| refuse(file, reason))?;
    let plan = ldm::plan(&tensors, family).map_err(|reason| refuse(file, reason))?;
    let mut files = tokenizer_files(file, family, options)?;
    files.extend(config_files(file, family, &tensors, options)?);
    let digest = file_sha256(file, &mut source, progress)?;
    let source_record = ModelSource::from_digest(&digest);
    let name = options.name.clone().unwrap_or_else(|| default_name(file));
    let config = ModelConfig {
        format: MODEL_CONFIG_FORMAT.to_string(),
        kind,
        name: name.clone(),
        author: None,
        variant: None,
        source: Some(source_record.clone()),
    };
    let model_json = json_file(&config.to_json());
    ModelConfig::parse(&out.join(MODEL_CONFIG_FILE), &model_json)?;
    files.push((MODEL_CONFIG_FILE.to_string(), model_json));
    let mut weights = vec![
        ("text_encoder/model.safetensors", &plan.text_encoder),
        ("unet/diffusion_pytorch_model.safetensors", &plan.unet),
        ("vae/diffusion_pytorch_model.safetensors", &plan.vae),
    ];
    if family == CheckpointFamily::Sdxl {
        weights.insert(1, ("text_encoder_2/model.safetensors", &plan.text_encoder_2));
    }
    let staging = staging_dir(out);
    write_model(&staging, &files, (file, &mut source), &weights, progress)?;
    finish(&staging, out)?;
    let tensors = weights.iter().map(|(_, w)| w.len()).sum();
    let hash = crate::model_hash(out)?;
    tracing::info!(file = %file.display(), out = %out.display(), %hash, kind = %kind, "checkpoint imported");
    Ok(ImportReport { family, kind, name, source: source_record, tensors, ignored: plan.ignored, hash })
}

/// The prediction type is given exactly where it is needed: for SD 2.x without configs, never
/// together with configs.
fn check_prediction(family: CheckpointFamily, options: &ImportOptions) -> Result<(), String> {
    match (&options.configs, options.prediction) {
        (Some(_), Some(_)) => Err("give either the prediction type or a configs folder, not both: the \
             folder's scheduler config states the prediction type"
            .into()),
        (None, None) if family == CheckpointFamily::Sd2 => Err("an SD 2.x checkpoint does not say what its \
             UNet predicts, and a wrong guess gives noise: give the prediction type, v for SD 2.x 768-px \
             models (stable-diffusion-2-1, 2.0 768-v and their fine-tunes) or epsilon for base models \
             (stable-diffusion-2-1-base, 2-base), or a diffusers folder of the model for its configs"
            .into()),
        _ => Ok(()),
    }
}

/// Refuses pickle checkpoints by name (loading one runs code) and anything not `.safetensors`.
fn check_file_name(file: &Path) -> Result<(), RuntimeError> {
    let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "safetensors" => Ok(()),
        "ckpt" | "pt" | "pth" | "bin" | "pkl" | "pickle" => Err(refuse(
            file,
            "this is a pickle checkpoint, and loading a pickle can run any code it contains; genmint \
             reads only .safetensors: download the .safetensors version of the model (most model pages \
             offer one)",
        )),
        _ => Err(refuse(file, "not a .safetensors file (single-file checkpoints end in .safetensors)")),
    }
}

fn check_out_dir(file: &Path, out: &Path) -> Result<(), RuntimeError> {
    let non_empty = std::fs::read_dir(out).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if non_empty || out.is_file() {
        return Err(refuse(
            file,
            format!(
                "the output {} already exists: choose another output directory or remove it",
                out.display()
            ),
        ));
    }
    Ok(())
}

/// The file name without its extension, cut to the 100 bytes a name may have.
fn default_name(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut end = stem.len().min(100);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    stem[..end].to_string()
}

/// Canonical JSON and a newline: the same bytes on every machine.
fn json_file(value: &Value) -> Vec<u8> {
    let mut bytes = canonical_json::to_vec(value);
    bytes.push(b'\n');
    bytes
}

/// Infers the family from the text encoder's names and the UNet's context width, or takes the
/// kind given; refuses when the tensors disagree or fit no family.
fn detect(tensors: &SourceTensors, kind: Option<ModelKind>) -> Result<(CheckpointFamily, ModelKind), String> {
    let has = |prefix: &str| tensors.keys().any(|k| k.starts_with(prefix));
    let mut named = Vec::new();
    if has(ldm::CLIP_PREFIX) {
        named.push(CheckpointFamily::Sd1);
    }
    if has("cond_stage_model.model.") {
        named.push(CheckpointFamily::Sd2);
    }
    if has(ldm::REFINER_PREFIX) {
        return Err("this is an SDXL refiner checkpoint (one OpenCLIP text encoder, conditioned on an \
             aesthetic score), which genmint does not run: import an SDXL base model, or SDXL Turbo"
            .into());
    }
    if has("conditioner.embedders.") {
        named.push(CheckpointFamily::Sdxl);
    }
    if !has(ldm::UNET_PREFIX) || !has(ldm::VAE_PREFIX) {
        return Err(format!(
            "no UNet ({}…) and VAE ({}…) tensors: not a full Stable Diffusion checkpoint (a LoRA, VAE or \
             embedding file is not a model)",
            ldm::UNET_PREFIX,
            ldm::VAE_PREFIX
        ));
    }
    let width = tensors
        .iter()
        .find(|(k, _)| k.starts_with(ldm::UNET_PREFIX) && k.ends_with(".attn2.to_k.weight"))
        .and_then(|(_, t)| t.shape.get(1).copied());
    if let Some(kind) = kind {
        let families = CheckpointFamily::of_kind(kind);
        if families.is_empty() {
            return Err(format!("kind {kind} is not a Stable Diffusion kind"));
        }
        return match families.iter().find(|f| named.contains(f)) {
            Some(family) => Ok((*family, kind)),
            None => Err(format!(
                "the kind is {kind}, but the checkpoint has no {} text encoder",
                families.iter().map(|f| f.label()).collect::<Vec<_>>().join(" or ")
            )),
        };
    }
    let release = [CheckpointFamily::Sd1, CheckpointFamily::Sd2, CheckpointFamily::Sdxl]
        .into_iter()
        .find(|f| Some(f.release_context_width()) == width);
    match named.as_slice() {
        [family] if release.is_none_or(|r| r == *family) => Ok((*family, family.default_kind())),
        _ => Err(format!(
            "cannot tell the family: text encoder names say {}, the UNet's context is {} wide; give the \
             kind (sd15, sd21 or sdxl)",
            if named.is_empty() {
                "none".to_string()
            } else {
                named.iter().map(|f| f.label()).collect::<Vec<_>>().join(" and ")
            },
            width.map_or("not".to_string(), |w| w.to_string()),
        )),
    }
}

/// The configs (paths and bytes): the release's with the checkpoint's sizes, or those of the
/// diffusers folder in `options.configs`.
fn config_files(
    file: &Path,
    family: CheckpointFamily,
    tensors: &SourceTensors,
    options: &ImportOptions,
) -> Result<Vec<(String, Vec<u8>)>, RuntimeError> {
    let Some(dir) = &options.configs else {
        let configs = match family {
            CheckpointFamily::Sd1 => release::sd15_configs(tensors, options.prediction),
            CheckpointFamily::Sd2 => {
                release::sd21_configs(tensors, options.prediction.unwrap_or(PredictionType::Epsilon))
            }
            CheckpointFamily::Sdxl => {
                let turbo = options.kind == Some(ModelKind::SdTurbo);
                let release = if turbo { release::SdxlRelease::Turbo } else { release::SdxlRelease::Base };
                release::sdxl_configs(tensors, release, options.prediction)
            }
        }
        .map_err(|reason| refuse(file, reason))?;
        return Ok(configs.into_iter().map(|(path, value)| (path.to_string(), json_file(&value))).collect());
    };
    let mut copied = vec![
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "unet/config.json",
        "vae/config.json",
    ];
    let mut files = Vec::new();
    if family == CheckpointFamily::Sdxl {
        copied.extend(["model_index.json", "text_encoder_2/config.json"]);
    } else {
        files.push(("model_index.json".to_string(), json_file(&release::model_index())));
    }
    for path in copied {
        files.push((path.to_string(), layout::read(&layout::file_path(dir, path))?));
    }
    Ok(files)
}

/// The tokenizer files to copy, for each tokenizer the family has: `tokenizer_config.json` and
/// `tokenizer.json` when there is one (as the loader prefers), else `vocab.json` and
/// `merges.txt`.
fn tokenizer_files(
    file: &Path,
    family: CheckpointFamily,
    options: &ImportOptions,
) -> Result<Vec<(String, Vec<u8>)>, RuntimeError> {
    let sdxl = family == CheckpointFamily::Sdxl;
    if options.tokenizer_2.is_some() && !sdxl {
        return Err(refuse(
            file,
            format!("a second tokenizer is for SDXL; this is an {} checkpoint", family.label()),
        ));
    }
    let mut tokenizers = vec![("tokenizer", &options.tokenizer)];
    if sdxl {
        tokenizers.push(("tokenizer_2", &options.tokenizer_2));
    }
    let mut files = Vec::new();
    for (folder, given) in tokenizers {
        let dir = match (given, &options.configs) {
            (Some(dir), _) => dir.clone(),
            (None, Some(configs)) if configs.join(folder).is_dir() => configs.join(folder),
            _ => {
                let release = family.release_repository();
                return Err(refuse(
                    file,
                    format!(
                        "a checkpoint holds no tokenizer: give the {folder}/ folder of the model's diffusers \
                         release (tokenizer_config.json, vocab.json and merges.txt; for this family those of \
                         the {release} repository)"
                    ),
                ));
            }
        };
        let names: &[&str] = if dir.join("tokenizer.json").is_file() {
            &["tokenizer.json", "tokenizer_config.json"]
        } else {
            &["merges.txt", "tokenizer_config.json", "vocab.json"]
        };
        for name in names {
            files.push((format!("{folder}/{name}"), layout::read(&dir.join(name))?));
        }
    }
    Ok(files)
}

/// sha256 of the whole checkpoint, read in 4 MiB pieces.
fn file_sha256(
    path: &Path,
    file: &mut File,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<[u8; 32], RuntimeError> {
    use std::io::{Seek, SeekFrom};
    let read_error = |source| RuntimeError::Read { path: path.to_path_buf(), source };
    let total = file.metadata().map_err(read_error)?.len();
    file.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 4 << 20];
    let mut done = 0;
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
        done += n as u64;
        progress(ImportProgress { stage: ImportStage::Hashing, done, total });
    }
}

/// Where the model is written before it is renamed to `out`: a hidden sibling.
fn staging_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    out.with_file_name(format!(".{name}.importing"))
}

/// Writes the small files and the three weight files into `dir`, replacing a stale one.
fn write_model(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    (source_path, source): (&Path, &mut File),
    weights: &[(&str, &BTreeMap<String, OutTensor>)],
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<(), RuntimeError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Write { path, source }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(write_error(dir))?;
    }
    let paths = files.iter().map(|(p, _)| p.as_str()).chain(weights.iter().map(|(p, _)| *p));
    for relative in paths {
        if let Some(parent) = layout::file_path(dir, relative).parent() {
            std::fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
    }
    for (relative, bytes) in files {
        let path = layout::file_path(dir, relative);
        std::fs::write(&path, bytes).map_err(write_error(&path))?;
    }
    let total = weights.iter().flat_map(|(_, w)| w.values()).map(|t| t.len).sum();
    let mut done = 0;
    for (relative, tensors) in weights {
        let mut copied = |n| {
            done += n;
            progress(ImportProgress { stage: ImportStage::Writing, done, total });
        };
        safetensors_io::write(&layout::file_path(dir, relative), source, source_path, tensors, &mut copied)?;
    }
    Ok(())
}

/// Moves the finished staging folder to `out` (an empty `out` is replaced).
fn finish(staging: &Path, out: &Path) -> Result<(), RuntimeError> {
    let write_error = |source| RuntimeError::Write { path: out.to_path_buf(), source };
    if out.is_dir() {
        std::fs::remove_dir(out).map_err(write_error)?;
    }
    std::fs::rename(staging, out).map_err(write_error)
}

#[cfg(test)]
mod tests;
