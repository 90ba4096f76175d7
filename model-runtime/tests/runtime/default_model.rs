//! The shipped default model, `genmint-emoji-32`: assembled from the repository's files and the
//! installed MiniLM, hashed stably, and generating 32×32 images with its default settings.

use std::time::{Instant, SystemTime};

use genmint_model_runtime::{
    Control, DEFAULT_MODEL_NAME, DeviceChoice, GenerationParams, ModelKind, SchedulerKind,
    install_default_model, load_model, model_hash, model_manifest,
};

use crate::minilm;

fn modified(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn default_model_installs_idempotently_with_a_stable_hash() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hash = install_default_model(a.path(), &minilm()).unwrap();
    assert_eq!(hash, model_hash(a.path()).unwrap());
    assert_eq!(install_default_model(b.path(), &minilm()).unwrap(), hash);

    // A second install over a complete directory rewrites nothing.
    let weights = a.path().join("text_encoder/model.safetensors");
    let before = modified(&weights);
    assert_eq!(install_default_model(a.path(), &minilm()).unwrap(), hash);
    assert_eq!(modified(&weights), before);

    // A damaged file is repaired.
    std::fs::write(a.path().join("tokenizer/tokenizer.json"), "{}").unwrap();
    assert_eq!(install_default_model(a.path(), &minilm()).unwrap(), hash);

    // The text encoder is part of the model (and so of its hash).
    let files: Vec<String> = model_manifest(a.path()).unwrap().files.into_iter().map(|f| f.path).collect();
    for file in ["text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json"] {
        assert!(files.contains(&file.to_string()), "{file} missing from {files:?}");
    }
}

#[test]
fn default_model_generates_32_pixel_images() {
    let dir = tempfile::tempdir().unwrap();
    install_default_model(dir.path(), &minilm()).unwrap();
    let mut generator = load_model(dir.path(), DeviceChoice::Cpu).unwrap();
    let descriptor = generator.descriptor().clone();
    assert_eq!((descriptor.name.as_str(), descriptor.kind), (DEFAULT_MODEL_NAME, ModelKind::PixelMiniLm));
    assert_eq!(descriptor.author.as_deref(), Some("genmint"));
    let limits = &descriptor.limits;
    let params = GenerationParams {
        prompt: "grinning face with smiling eyes".into(),
        negative_prompt: String::new(),
        seed: 7,
        width: limits.default_width,
        height: limits.default_height,
        steps: limits.default_steps,
        guidance: limits.default_guidance,
        scheduler: SchedulerKind::Ddim,
    };
    let started = Instant::now();
    let image = generator.generate(&params, &mut |_| Control::Continue).unwrap();
    eprintln!(
        "default model, {} steps with guidance {}: {:.2} s per 32x32 image",
        params.steps,
        params.guidance,
        started.elapsed().as_secs_f64()
    );
    assert_eq!((image.width, image.height, image.pixels.len()), (32, 32, 32 * 32 * 3));
    let again = generator.generate(&params, &mut |_| Control::Continue).unwrap();
    assert_eq!(again.pixel_digest(), image.pixel_digest());
}

#[test]
fn default_model_batches_give_each_request_its_own_pixels() {
    let dir = tempfile::tempdir().unwrap();
    install_default_model(dir.path(), &minilm()).unwrap();
    let mut generator = load_model(dir.path(), DeviceChoice::Cpu).unwrap();
    let request = |prompt: &str, seed, guidance, steps| GenerationParams {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        seed,
        width: 32,
        height: 32,
        steps,
        guidance,
        scheduler: SchedulerKind::Ddim,
    };
    let batch = [
        request("grinning face with smiling eyes", 7, 3.0, 4),
        request("red apple", 8, 5.0, 4),
        // Unguided: one UNet row instead of two.
        request("pile of poo", 9, 1.0, 4),
        // Other timesteps: its own group.
        request("red apple", 8, 5.0, 3),
        request("sun behind cloud", 10, 3.0, 4),
    ];
    crate::assert_batch_matches_alone(generator.as_mut(), &batch, 4);
}
