//! Importing a single-file checkpoint: `tests/fixtures/single-file/sd15-tiny.safetensors` (the
//! sd15-tiny fixture saved with the original LDM names by `model-runtime/parity/single_file.py`)
//! imported by genmint's converter must generate what diffusers' `from_single_file` generated
//! from it, within 2/255, and, since the import copies the weights unchanged, exactly what
//! genmint generates from the diffusers-layout fixture it came from.
//!
//! The same for SD 2.x: `single-file/sd21-tiny.safetensors` is the sd21-tiny fixture with
//! OpenCLIP text encoder names (fused q, k, v, and one resblock more than the fixture's encoder,
//! which the import must leave out).
//!
//! And for SDXL: `single-file/sdxl-tiny.safetensors` is the sdxl-tiny fixture with SDXL's names
//! (`label_emb`, CLIP under `conditioner.embedders.0.transformer.`, OpenCLIP with its projection
//! stored transposed under `conditioner.embedders.1.model.`).
//!
//! `cargo test -p genmint-model-runtime --test runtime single_file -- --nocapture` prints the
//! pixel differences per case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use genmint_model_runtime::{
    CheckpointFamily, Control, DeviceChoice, GenerationParams, ImportOptions, ImportReport, ModelKind,
    PredictionType, import_checkpoint, load_model, model_hash,
};
use serde_json::Value;

/// The imported model's hash: the same file gives the same model on every machine.
const IMPORTED_HASH: &str = "0x0bae69548ad1c1dc8f90acca24099131f1c25116a3068b7cd802b56c6d6ff4d7";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn checkpoint() -> PathBuf {
    fixtures().join("single-file/sd15-tiny.safetensors")
}

fn checkpoint21() -> PathBuf {
    fixtures().join("single-file/sd21-tiny.safetensors")
}

fn checkpoint_xl() -> PathBuf {
    fixtures().join("single-file/sdxl-tiny.safetensors")
}

/// Imports the fixture checkpoint as diffusers' `from_single_file(config=sd15-tiny)` reads it.
fn import(out: &Path) -> ImportReport {
    import_as(&checkpoint(), "sd15-tiny", out)
}

/// Imports `file` as diffusers' `from_single_file(config=<fixture>)` reads it (kind `tiny`, or
/// `tiny_xl` for the SDXL fixture).
fn import_as(file: &Path, fixture: &str, out: &Path) -> ImportReport {
    let options = ImportOptions {
        kind: Some(if fixture == "sdxl-tiny" { ModelKind::TinyXl } else { ModelKind::Tiny }),
        name: Some(format!("{fixture} single file")),
        tokenizer: None,
        tokenizer_2: None,
        configs: Some(fixtures().join(fixture)),
        prediction: None,
    };
    let mut last = None;
    let report = import_checkpoint(file, out, &options, &mut |p| last = Some(p)).unwrap();
    let last = last.unwrap();
    assert_eq!(last.done, last.total);
    report
}

/// A recorded case as a request: its fields are the request's, and diffusers ran DDIM.
fn params(case: &Value) -> GenerationParams {
    let mut case = case.clone();
    case["scheduler"] = Value::String("ddim".into());
    serde_json::from_value(case).unwrap()
}

/// The recorded references `single-file/<stem>.json` and `.safetensors`.
fn references(stem: &str) -> (Value, HashMap<String, Tensor>) {
    let dir = fixtures().join("single-file");
    let reference =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap()).unwrap();
    let images =
        candle_core::safetensors::load(dir.join(format!("{stem}.safetensors")), &Device::Cpu).unwrap();
    (reference, images)
}

/// Generates every recorded case with the imported `model`: within 2/255 of diffusers'
/// `from_single_file`, and bit-identical to the diffusers-layout `fixture` it came from.
fn compare_cases(model: &Path, fixture: &str, (reference, images): &(Value, HashMap<String, Tensor>)) {
    let mut imported = load_model(model, DeviceChoice::Cpu).unwrap();
    let mut layout = load_model(&fixtures().join(fixture), DeviceChoice::Cpu).unwrap();
    for (n, case) in reference["cases"].as_array().unwrap().iter().enumerate() {
        let params = params(case);
        let ours = imported.generate(&params, &mut |_| Control::Continue).unwrap();
        let theirs = images[&format!("case{n}.image_uint8")].flatten_all().unwrap().to_vec1::<u8>().unwrap();
        assert_eq!(ours.pixels.len(), theirs.len());
        let max = ours.pixels.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        let differing = ours.pixels.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        eprintln!(
            "{fixture} case {n}: max |genmint - diffusers from_single_file| = {max}/255, {differing} of {} \
             values differ",
            theirs.len()
        );
        assert!(max <= 2, "{fixture} case {n}: {max}/255 from diffusers");
        let from_layout = layout.generate(&params, &mut |_| Control::Continue).unwrap();
        assert_eq!(
            ours, from_layout,
            "{fixture} case {n}: the import is not bit-identical to the diffusers layout"
        );
    }
}

/// Imports `file` as `fixture`, checks the report (family, the file's sha256, the tensors left
/// out by group) and compares the generated pictures with diffusers' (`stem`).
fn imports_like_diffusers(
    file: &Path,
    fixture: &str,
    stem: &str,
    family: CheckpointFamily,
    ignored: &[(&str, usize)],
) {
    let references = references(stem);
    let out = tempfile::tempdir().unwrap();
    let model = out.path().join("model");
    let report = import_as(file, fixture, &model);
    assert_eq!(report.family, family);
    assert_eq!(report.source.sha256, references.0["checkpoint_sha256"].as_str().unwrap());
    for (group, count) in ignored {
        assert_eq!(report.ignored.get(*group), Some(count), "{group}");
    }
    compare_cases(&model, fixture, &references);
}

#[test]
fn imported_checkpoint_generates_what_diffusers_from_single_file_does() {
    imports_like_diffusers(
        &checkpoint(),
        "sd15-tiny",
        "reference",
        CheckpointFamily::Sd1,
        &[("alphas_cumprod", 1)],
    );
}

#[test]
fn imported_sd21_checkpoint_generates_what_diffusers_from_single_file_does() {
    // The fixture's encoder has 3 layers; the checkpoint's 4th resblock (12 tensors) is left out.
    let ignored = [
        ("cond_stage_model.model.transformer.resblocks.3", 12),
        ("cond_stage_model.model.text_projection", 1),
        ("alphas_cumprod", 1),
    ];
    imports_like_diffusers(&checkpoint21(), "sd21-tiny", "sd21-reference", CheckpointFamily::Sd2, &ignored);
}

#[test]
fn imported_sdxl_checkpoint_generates_what_diffusers_from_single_file_does() {
    // "conditioner": the first encoder's position_ids buffer.
    let ignored =
        [("conditioner.embedders.1.model.logit_scale", 1), ("conditioner", 1), ("alphas_cumprod", 1)];
    imports_like_diffusers(&checkpoint_xl(), "sdxl-tiny", "sdxl-reference", CheckpointFamily::Sdxl, &ignored);
}

#[test]
fn sdxl_imports_need_both_tokenizers() {
    let out = tempfile::tempdir().unwrap();
    let refuse = |options: &ImportOptions| {
        import_checkpoint(&checkpoint_xl(), &out.path().join("m"), options, &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let options =
        ImportOptions { tokenizer: Some(fixtures().join("sdxl-tiny/tokenizer")), ..Default::default() };
    let error = refuse(&options);
    assert!(
        error.contains("tokenizer_2/ folder") && error.contains("stable-diffusion-xl-base-1.0"),
        "{error}"
    );
    // With both, the release configs are tried: this test-size UNet's 32-wide levels have no
    // 64-wide head count.
    let options = ImportOptions { tokenizer_2: Some(fixtures().join("sdxl-tiny/tokenizer_2")), ..options };
    let error = refuse(&options);
    assert!(error.contains("64-wide heads") && error.contains("configs"), "{error}");
    // A second tokenizer is SDXL's only.
    let options = ImportOptions {
        tokenizer: Some(fixtures().join("sd15-tiny/tokenizer")),
        tokenizer_2: Some(fixtures().join("sdxl-tiny/tokenizer_2")),
        ..Default::default()
    };
    let error = import_checkpoint(&checkpoint(), &out.path().join("m"), &options, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("for SDXL"), "{error}");
    assert!(!out.path().join("m").exists());
}

#[test]
fn sd21_imports_need_the_prediction_type() {
    let out = tempfile::tempdir().unwrap();
    let refuse = |options: &ImportOptions| {
        import_checkpoint(&checkpoint21(), &out.path().join("m"), options, &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let tokenizer = Some(fixtures().join("sd21-tiny/tokenizer"));
    let options = ImportOptions { tokenizer: tokenizer.clone(), ..Default::default() };
    let error = refuse(&options);
    assert!(error.contains("SD 2.x") && error.contains("v for") && error.contains("epsilon"), "{error}");
    let options = ImportOptions {
        configs: Some(fixtures().join("sd21-tiny")),
        prediction: Some(PredictionType::V),
        ..Default::default()
    };
    assert!(refuse(&options).contains("not both"));
    // With the prediction type, the release configs are tried: this test-size encoder's
    // 32-wide layers have no OpenCLIP head count.
    let options =
        ImportOptions { tokenizer, prediction: Some(PredictionType::Epsilon), ..Default::default() };
    let error = refuse(&options);
    assert!(error.contains("64-wide heads") && error.contains("configs"), "{error}");
    assert!(!out.path().join("m").exists());
}

/// Every tensor of `file`, with the `text_model.` level dropped (transformers 4 and 5 differ).
fn tensors(file: &Path) -> HashMap<String, Tensor> {
    let loaded = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    loaded
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("text_model.").map(str::to_string).unwrap_or(k), v))
        .collect()
}

#[test]
fn imported_weights_are_the_diffusers_weights_renamed() {
    let out = tempfile::tempdir().unwrap();
    import(out.path());
    same_weights(out.path(), &fixtures().join("sd15-tiny"));
}

#[test]
fn imported_sd21_weights_are_the_diffusers_weights_renamed_and_split() {
    let out = tempfile::tempdir().unwrap();
    import_as(&checkpoint21(), "sd21-tiny", out.path());
    same_weights(out.path(), &fixtures().join("sd21-tiny"));
}

#[test]
fn imported_sdxl_weights_are_the_diffusers_weights_renamed_split_and_transposed() {
    let out = tempfile::tempdir().unwrap();
    import_as(&checkpoint_xl(), "sdxl-tiny", out.path());
    same_weights(out.path(), &fixtures().join("sdxl-tiny"));
}

/// The imported model's weights are the fixture's: same names, shapes, dtypes and values (for
/// SDXL, of both text encoders).
fn same_weights(out: &Path, fixture: &Path) {
    let mut components = vec![
        ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors"),
        ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"),
        ("text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors"),
    ];
    if fixture.join("text_encoder_2").is_dir() {
        components.push(("text_encoder_2/model.safetensors", "text_encoder_2/model.fp16.safetensors"));
    }
    for (ours, theirs) in components {
        let (ours, theirs) = (tensors(&out.join(ours)), tensors(&fixture.join(theirs)));
        let mut names: Vec<&String> = ours.keys().collect();
        names.sort();
        let mut expected: Vec<&String> = theirs.keys().collect();
        expected.sort();
        assert_eq!(names, expected);
        for name in names {
            let (a, b) = (&ours[name], &theirs[name]);
            assert_eq!((a.dims(), a.dtype()), (b.dims(), b.dtype()), "{name}");
            let same = a.eq(b).unwrap().flatten_all().unwrap().min(0).unwrap().to_scalar::<u8>().unwrap();
            assert_eq!(same, 1, "{name} differs");
        }
    }
}

#[test]
fn the_same_file_gives_the_same_model_hash() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (import(&first.path().join("a")), import(&second.path().join("b")));
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hash, model_hash(&first.path().join("a")).unwrap());
    assert_eq!(a.hash.to_string(), IMPORTED_HASH);
    let config = std::fs::read_to_string(first.path().join("a/genmint-model.json")).unwrap();
    assert_eq!(
        config,
        format!(
            "{{\"format\":\"genmint-model-v1\",\"kind\":\"tiny\",\"name\":\"sd15-tiny single file\",\
             \"source\":{{\"autov2\":\"{}\",\"sha256\":\"{}\"}}}}\n",
            a.source.autov2, a.source.sha256
        )
    );
}

#[test]
fn imports_are_refused_with_what_to_do() {
    let out = tempfile::tempdir().unwrap();
    let refuse = |file: &Path, out: &Path, options: &ImportOptions| {
        import_checkpoint(file, out, options, &mut |_| {}).unwrap_err().to_string()
    };
    let ckpt = out.path().join("v1-5-pruned-emaonly.ckpt");
    std::fs::write(&ckpt, b"PK").unwrap();
    assert!(refuse(&ckpt, &out.path().join("m"), &ImportOptions::default()).contains("pickle"));
    // No tokenizer: a checkpoint has none.
    let error = refuse(&checkpoint(), &out.path().join("m"), &ImportOptions::default());
    assert!(error.contains("tokenizer/ folder"), "{error}");
    // The release configs need CLIP's 64-wide heads, which this test-size encoder does not have.
    let options =
        ImportOptions { tokenizer: Some(fixtures().join("sd15-tiny/tokenizer")), ..Default::default() };
    let error = refuse(&checkpoint(), &out.path().join("m"), &options);
    assert!(error.contains("64-wide heads") && error.contains("configs"), "{error}");
    // An output directory with files in it is left alone.
    let error = refuse(&checkpoint(), &fixtures().join("sd15-tiny"), &options);
    assert!(error.contains("already exists"), "{error}");
    assert!(!out.path().join("m").exists());
}
