//! The pixel-space family (`pixel_minilm`) through the shared pipeline, on a model directory made
//! of the PyTorch fixture UNet (`tests/fixtures/pixel-unet`, random weights) and the installed
//! MiniLM: limits, determinism (across runs, loads and thread counts), and that every input
//! reaches the pixels.

use std::path::{Path, PathBuf};
use std::process::Command;

use genmint_model_runtime::{
    Control, DeviceChoice, GenerationParams, Generator, ModelKind, Progress, RuntimeError, SchedulerKind,
    load_model, model_hash, model_manifest,
};

use crate::{digest, minilm};

/// A complete pixel-space model directory around the fixture UNet.
fn pixel_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixel-unet");
    let minilm = minilm();
    let copies: [(&str, PathBuf); 5] = [
        ("unet/config.json", fixture.join("config.json")),
        ("unet/diffusion_pytorch_model.safetensors", fixture.join("diffusion_pytorch_model.safetensors")),
        ("text_encoder/config.json", minilm.join("config.json")),
        ("text_encoder/model.safetensors", minilm.join("model.safetensors")),
        ("tokenizer/tokenizer.json", minilm.join("tokenizer.json")),
    ];
    for (to, from) in copies {
        std::fs::create_dir_all(root.join(to).parent().unwrap()).unwrap();
        std::fs::copy(from, root.join(to)).unwrap();
    }
    std::fs::create_dir_all(root.join("scheduler")).unwrap();
    std::fs::write(
        root.join("scheduler/scheduler_config.json"),
        r#"{"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": false,
            "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": false,
            "steps_offset": 0, "timestep_spacing": "trailing"}"#,
    )
    .unwrap();
    std::fs::write(
        root.join("genmint-model.json"),
        r#"{"format": "genmint-model-v1", "kind": "pixel_minilm", "name": "pixel fixture"}"#,
    )
    .unwrap();
    dir
}

fn params(seed: u64) -> GenerationParams {
    GenerationParams {
        prompt: "a smiling cat face".into(),
        negative_prompt: String::new(),
        seed,
        width: 32,
        height: 32,
        steps: 6,
        guidance: 3.0,
        scheduler: SchedulerKind::Ddim,
    }
}

fn load(dir: &Path) -> Box<dyn Generator> {
    load_model(dir, DeviceChoice::Cpu).unwrap()
}

#[test]
fn pixel_model_describes_itself() {
    let dir = pixel_model();
    let generator = load(dir.path());
    let descriptor = generator.descriptor();
    assert_eq!(descriptor.kind, ModelKind::PixelMiniLm);
    assert_eq!(descriptor.hash, model_hash(dir.path()).unwrap());
    let limits = &descriptor.limits;
    assert_eq!((limits.min_width, limits.max_width, limits.default_width), (32, 32, 32));
    assert_eq!((limits.max_steps, limits.default_steps), (50, 10));
    assert_eq!(limits.default_scheduler, SchedulerKind::DpmPp2m);
    assert_eq!((limits.default_guidance, limits.max_guidance), (3.0, 15.0));
    assert!(!limits.negative_prompt);
    let files: Vec<String> = model_manifest(dir.path()).unwrap().files.into_iter().map(|f| f.path).collect();
    assert_eq!(files.len(), 7, "{files:?}");
    assert!(files.contains(&"text_encoder/model.safetensors".to_string()));
}

#[test]
fn pixel_generation_is_deterministic_and_follows_every_input() {
    let dir = pixel_model();
    let mut generator = load(dir.path());
    let base = digest(generator.as_mut(), &params(1));
    assert_eq!(digest(generator.as_mut(), &params(1)), base);
    assert_eq!(digest(load(dir.path()).as_mut(), &params(1)), base);
    let variants: Vec<(&str, GenerationParams)> = vec![
        ("seed", GenerationParams { seed: 2, ..params(1) }),
        ("prompt", GenerationParams { prompt: "a red apple".into(), ..params(1) }),
        ("guidance", GenerationParams { guidance: 7.0, ..params(1) }),
        ("steps", GenerationParams { steps: 5, ..params(1) }),
        ("no guidance", GenerationParams { guidance: 1.0, ..params(1) }),
    ];
    for (what, variant) in variants {
        assert_ne!(digest(generator.as_mut(), &variant), base, "{what} made no difference");
    }
}

#[test]
fn pixel_requests_outside_the_limits_are_refused() {
    let dir = pixel_model();
    let mut generator = load(dir.path());
    let cases = [
        (GenerationParams { width: 64, ..params(5) }, "width 64"),
        (GenerationParams { steps: 51, ..params(5) }, "steps 51"),
        (GenerationParams { guidance: 16.0, ..params(5) }, "guidance 16"),
        (GenerationParams { negative_prompt: "blurry".into(), ..params(5) }, "negative_prompt of 6 bytes"),
    ];
    for (request, field_value) in cases {
        let err = generator.generate(&request, &mut |_| Control::Continue).unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidParameter { .. }));
        assert!(err.to_string().starts_with(field_value), "{err}");
    }
}

#[test]
fn pixel_progress_and_cancel_go_through_the_shared_loop() {
    let dir = pixel_model();
    let mut generator = load(dir.path());
    let mut seen = Vec::new();
    let result = generator.generate(&params(3), &mut |p| {
        let stop = p.step == 2;
        seen.push(p);
        if stop { Control::Cancel } else { Control::Continue }
    });
    assert!(matches!(result, Err(RuntimeError::Cancelled)), "{result:?}");
    let steps: Vec<(u32, u32)> = seen.iter().map(|p: &Progress| (p.step, p.total)).collect();
    assert_eq!(steps, [(1, 6), (2, 6)]);

    // A pixel-space model previews its sample at every step; the last preview is the picture.
    let mut previews = Vec::new();
    let image = generator.generate(&params(3), &mut |p| {
        previews.push(p.preview.expect("a pixel-space model previews every step"));
        Control::Continue
    });
    let image = image.unwrap();
    assert_eq!(previews.len(), 6);
    assert!(previews.iter().all(|p| (p.width, p.height) == (image.width, image.height)));
    assert_eq!(previews.last(), Some(&image));
}

/// Run by [`pixel_pixels_do_not_depend_on_the_thread_count`] in child processes; on its own it
/// checks that a fixed request gives the same pixels twice.
#[test]
fn pixel_digest_of_a_fixed_request() {
    let dir = pixel_model();
    let mut generator = load(dir.path());
    let first = digest(generator.as_mut(), &params(11));
    assert_eq!(digest(generator.as_mut(), &params(11)), first);
    println!("pixel digest: {}", hex::encode(first));
}

#[test]
fn pixel_pixels_do_not_depend_on_the_thread_count() {
    let digest_with = |threads: &str| {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pixel::pixel_digest_of_a_fixed_request", "--nocapture", "--test-threads", "1"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
        stdout
            .lines()
            .find_map(|line| line.split("pixel digest: ").nth(1))
            .unwrap_or_else(|| panic!("no digest in {stdout}"))
            .trim()
            .to_owned()
    };
    let one = digest_with("1");
    assert_eq!(one.len(), 64);
    assert_eq!(digest_with("2"), one);
    assert_eq!(digest_with("3"), one);
}
