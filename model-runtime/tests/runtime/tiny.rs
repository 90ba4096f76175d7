//! The built-in test model end to end: writing it, hashing it, loading it through the same
//! loader as Stable Diffusion, and generating deterministic images.

use std::path::Path;
use std::time::Instant;

use crate::digest;
use genmint_model_runtime::{
    Control, DeviceChoice, GenerationParams, Generator, ModelKind, Progress, RuntimeError, SchedulerKind,
    TEST_MODEL_NAME, load_model, model_hash, model_manifest, write_test_model,
};

/// The test model's hash: the same on every machine, because its weights come from our own RNG.
const TEST_MODEL_HASH: &str = "0x3eaefc47879297167e9b95ccad031b54a049308597732a1b555c66631d24a729";

fn test_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_test_model(dir.path()).unwrap();
    dir
}

fn load(dir: &Path) -> Box<dyn Generator> {
    load_model(dir, DeviceChoice::Cpu).unwrap()
}

fn params(seed: u64) -> GenerationParams {
    GenerationParams {
        prompt: "a red fox in a snow forest, watercolor".into(),
        negative_prompt: "blurry".into(),
        seed,
        width: 64,
        height: 64,
        steps: 8,
        guidance: 4.0,
        scheduler: SchedulerKind::Ddim,
    }
}

#[test]
fn test_model_hash_is_the_same_everywhere() {
    let (a, b) = (test_model(), test_model());
    let hash = model_hash(a.path()).unwrap();
    assert_eq!(hash, model_hash(b.path()).unwrap());
    assert_eq!(hash.to_string(), TEST_MODEL_HASH);
    let manifest = model_manifest(a.path()).unwrap();
    assert_eq!(manifest.hash(), hash);
    assert_eq!(manifest.format, "genmint-model-manifest-v1");
    assert_eq!(manifest.files.len(), 11);
    // Files outside the layout are not part of the model.
    std::fs::write(a.path().join("README.md"), "notes").unwrap();
    assert_eq!(model_hash(a.path()).unwrap(), hash);
}

#[test]
fn descriptor_describes_the_loaded_model() {
    let dir = test_model();
    let generator = load(dir.path());
    let descriptor = generator.descriptor();
    assert_eq!(descriptor.name, TEST_MODEL_NAME);
    assert_eq!(descriptor.kind, ModelKind::Tiny);
    assert_eq!(descriptor.hash, model_hash(dir.path()).unwrap());
    assert_eq!(descriptor.limits.size_multiple, 16);
    assert_eq!((descriptor.limits.default_width, descriptor.limits.default_steps), (64, 8));
    let envelope = &descriptor.envelope;
    assert_eq!(envelope.noise, "chacha20-normal-v1");
    assert_eq!(envelope.scheduler, SchedulerKind::Ddim);
    assert_eq!((envelope.dtype.as_str(), envelope.device_class.as_str()), ("f32", "cpu"));
    assert!(envelope.engine.starts_with("candle 0.11.1 / genmint-model-runtime "));
}

#[test]
fn same_request_gives_the_same_pixels() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let started = Instant::now();
    let first = digest(generator.as_mut(), &params(42));
    eprintln!("one 64x64, 8-step guided generation: {:?}", started.elapsed());
    assert_eq!(digest(generator.as_mut(), &params(42)), first);
    let mut fresh = load(dir.path());
    assert_eq!(digest(fresh.as_mut(), &params(42)), first);
    eprintln!("pixel digest for seed 42: {}", hex::encode(first));
}

#[test]
fn every_scheduler_is_deterministic_and_distinct() {
    let dir = test_model();
    let mut generator = load(dir.path());
    assert_eq!(generator.descriptor().limits.schedulers, SchedulerKind::ALL);
    let mut digests = Vec::new();
    for scheduler in SchedulerKind::ALL {
        let request = GenerationParams { scheduler, steps: 4, ..params(3) };
        let first = digest(generator.as_mut(), &request);
        assert_eq!(digest(generator.as_mut(), &request), first, "{scheduler} is not deterministic");
        assert!(!digests.contains(&first), "{scheduler} gave another scheduler's pixels");
        digests.push(first);
    }
    // With its seeded step noise, the ancestral scheduler still depends on the seed alone.
    let ancestral =
        |seed| GenerationParams { scheduler: SchedulerKind::EulerAncestral, steps: 4, ..params(seed) };
    assert_ne!(digest(generator.as_mut(), &ancestral(3)), digest(generator.as_mut(), &ancestral(4)));
}

#[test]
fn every_input_changes_the_pixels() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let base = digest(generator.as_mut(), &params(1));
    let variants: Vec<(&str, GenerationParams)> = vec![
        ("seed", GenerationParams { seed: 2, ..params(1) }),
        ("prompt", GenerationParams { prompt: "a blue robot in space".into(), ..params(1) }),
        ("negative prompt", GenerationParams { negative_prompt: "ugly".into(), ..params(1) }),
        ("guidance", GenerationParams { guidance: 7.5, ..params(1) }),
        ("steps", GenerationParams { steps: 6, ..params(1) }),
    ];
    for (what, variant) in variants {
        assert_ne!(digest(generator.as_mut(), &variant), base, "{what} made no difference");
    }
    // Non-square sizes work; without guidance the negative prompt is not used.
    let unguided = GenerationParams { guidance: 1.0, width: 32, height: 96, ..params(1) };
    let plain = digest(generator.as_mut(), &unguided);
    let other_negative = GenerationParams { negative_prompt: "anything".into(), ..unguided };
    assert_eq!(digest(generator.as_mut(), &other_negative), plain);
}

#[test]
fn progress_is_reported_after_every_step() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let mut seen = Vec::new();
    generator
        .generate(&GenerationParams { steps: 5, ..params(3) }, &mut |p| {
            seen.push(p);
            Control::Continue
        })
        .unwrap();
    // A latent model's sample needs the VAE to be seen: no preview.
    let expected: Vec<Progress> = (1..=5).map(|step| Progress { step, total: 5, preview: None }).collect();
    assert_eq!(seen, expected);
}

#[test]
fn cancel_stops_the_generation() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let mut calls = 0;
    let result = generator.generate(&params(4), &mut |p| {
        calls += 1;
        if p.step == 2 { Control::Cancel } else { Control::Continue }
    });
    assert!(matches!(result, Err(RuntimeError::Cancelled)), "{result:?}");
    assert_eq!(calls, 2);
    // The generator is still usable afterwards.
    digest(generator.as_mut(), &params(4));
}

#[test]
fn requests_outside_the_limits_are_refused_before_any_work() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let cases = [
        (GenerationParams { width: 72, ..params(5) }, "width 72", "a multiple of 16 in 32..=512"),
        (GenerationParams { height: 528, ..params(5) }, "height 528", "32..=512"),
        (GenerationParams { steps: 0, ..params(5) }, "steps 0", "1..=50"),
        (GenerationParams { steps: 51, ..params(5) }, "steps 51", "1..=50"),
        (GenerationParams { guidance: 31.0, ..params(5) }, "guidance 31", "0..=30"),
    ];
    for (request, field_value, allowed) in cases {
        let mut called = false;
        let err = generator
            .generate(&request, &mut |_| {
                called = true;
                Control::Continue
            })
            .unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidParameter { .. }));
        let message = err.to_string();
        assert!(message.starts_with(field_value) && message.contains(allowed), "{message}");
        assert!(!called);
    }
}

#[test]
fn changing_any_file_changes_the_hash() {
    let dir = test_model();
    let original = model_hash(dir.path()).unwrap();
    for entry in model_manifest(dir.path()).unwrap().files {
        let path = dir.path().join(&entry.path);
        let bytes = std::fs::read(&path).unwrap();
        let changed = if entry.path == "genmint-model.json" {
            // This one is parsed before hashing, so change it validly.
            String::from_utf8(bytes.clone()).unwrap().replace(TEST_MODEL_NAME, "renamed").into_bytes()
        } else {
            // Flip one bit in the middle: the hash covers every byte.
            let mut changed = bytes.clone();
            let middle = changed.len() / 2;
            changed[middle] ^= 1;
            changed
        };
        assert_ne!(changed, bytes);
        std::fs::write(&path, &changed).unwrap();
        assert_ne!(model_hash(dir.path()).unwrap(), original, "{} not covered", entry.path);
        std::fs::write(&path, &bytes).unwrap();
    }
    assert_eq!(model_hash(dir.path()).unwrap(), original);
}

#[test]
fn a_missing_file_is_named() {
    let dir = test_model();
    for entry in model_manifest(dir.path()).unwrap().files {
        let path = dir.path().join(&entry.path);
        let aside = dir.path().join("aside");
        std::fs::rename(&path, &aside).unwrap();
        for err in
            [load_model(dir.path(), DeviceChoice::Cpu).err().unwrap(), model_hash(dir.path()).unwrap_err()]
        {
            assert!(matches!(err, RuntimeError::MissingFile { .. }), "{err}");
            let message = err.to_string();
            assert!(message.contains(&entry.path), "{message} does not name {}", entry.path);
        }
        std::fs::rename(&aside, &path).unwrap();
    }
    load(dir.path());
}

#[test]
fn a_broken_config_is_named() {
    let dir = test_model();
    let config = dir.path().join("unet/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"silu\"", "\"gelu\"")).unwrap();
    let message = load_model(dir.path(), DeviceChoice::Cpu).err().unwrap().to_string();
    assert!(message.contains("unet/config.json") && message.contains("act_fn"), "{message}");
    std::fs::write(&config, "{").unwrap();
    let message = load_model(dir.path(), DeviceChoice::Cpu).err().unwrap().to_string();
    assert!(message.contains("unet/config.json"), "{message}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_needs_the_feature() {
    let dir = test_model();
    let err = load_model(dir.path(), DeviceChoice::Cuda(0)).err().unwrap();
    assert!(matches!(err, RuntimeError::CudaUnavailable(0)));
    assert!(err.to_string().contains("`cuda` feature"));
}

/// The test model with its text encoder and tokenizer swapped for the fixtures of
/// `parity/text.py`: a transformers 5 `CLIPTextModel` (weights without `text_model.`) and a
/// tokenizer folder as SD downloads ship it (vocab.json and merges.txt, no tokenizer.json).
#[test]
fn sd_download_tokenizer_and_transformers_5_encoder_load() {
    let dir = test_model();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text");
    let copy = |from: &str, to: &str| std::fs::copy(fixtures.join(from), dir.path().join(to)).unwrap();
    copy("clip-text-bare/config.json", "text_encoder/config.json");
    copy("clip-text-bare/model.safetensors", "text_encoder/model.safetensors");
    std::fs::remove_file(dir.path().join("tokenizer/tokenizer.json")).unwrap();
    for file in ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        copy(&format!("tokenizer-sd15/{file}"), &format!("tokenizer/{file}"));
    }

    let manifest = model_manifest(dir.path()).unwrap();
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"tokenizer/vocab.json") && paths.contains(&"tokenizer/merges.txt"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.ends_with("tokenizer.json") || p.ends_with("special_tokens_map.json")));

    let mut generator = load(dir.path());
    assert_eq!(generator.descriptor().hash, manifest.hash());
    let short = GenerationParams { steps: 2, ..params(1) };
    let fit = generator.text_fit(&short).unwrap();
    assert!(!fit.truncated(), "{fit:?}");
    let long = GenerationParams { prompt: "a red fox jumping over a lazy dog, ".repeat(12), ..short.clone() };
    let fit = generator.text_fit(&long).unwrap();
    assert!(fit.truncated() && fit.prompt_tokens_dropped > 0 && fit.negative_prompt_tokens_dropped == 0);
    assert_eq!(fit.token_length, 77);
    assert_ne!(digest(generator.as_mut(), &short), digest(generator.as_mut(), &long));
}

#[test]
fn batches_give_each_request_its_own_pixels() {
    let dir = test_model();
    let mut generator = load(dir.path());
    let batch = [
        params(1),
        GenerationParams { prompt: "a blue robot in space".into(), guidance: 7.5, ..params(2) },
        GenerationParams { guidance: 1.0, ..params(3) },
        GenerationParams { scheduler: SchedulerKind::EulerAncestral, ..params(4) },
        GenerationParams { negative_prompt: String::new(), ..params(5) },
    ];
    crate::assert_batch_matches_alone(generator.as_mut(), &batch, 1);
}
