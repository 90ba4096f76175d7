//! Sharded weights: `tests/fixtures/sd15-sharded` holds sd15-tiny's VAE and text encoder as
//! diffusers and transformers save them with a small `max_shard_size` (an index whose
//! `weight_map` names each tensor's shard, and the shards; `model-runtime/parity/sharded.py`).
//! Put in place of the single files, they are the same model: the same pictures, bit for bit,
//! with the index and shards hashed instead of the single files.

use std::path::{Path, PathBuf};

use genmint_model_runtime::{
    Control, DeviceChoice, GenerationParams, SchedulerKind, load_model, model_manifest,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A copy of sd15-tiny whose VAE and text encoder weights are the sharded fixture's.
fn sharded_model() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("sd15-tiny"), copy.path());
    for (folder, single) in
        [("vae", "diffusion_pytorch_model.fp16.safetensors"), ("text_encoder", "model.fp16.safetensors")]
    {
        std::fs::remove_file(copy.path().join(folder).join(single)).unwrap();
        for entry in std::fs::read_dir(fixtures().join("sd15-sharded").join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name != "config.json" {
                std::fs::copy(&path, copy.path().join(folder).join(name)).unwrap();
            }
        }
    }
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() { copy_dir(&path, &target) } else { std::fs::copy(&path, target).map(drop).unwrap() }
    }
}

#[test]
fn sharded_components_load_as_the_same_model() {
    let sharded = sharded_model();
    let request = GenerationParams {
        prompt: "a red fox in a snow forest, watercolor".into(),
        negative_prompt: "blurry, lowres".into(),
        seed: 42,
        width: 64,
        height: 64,
        steps: 4,
        guidance: 7.5,
        scheduler: SchedulerKind::Ddim,
    };
    let mut ours = load_model(sharded.path(), DeviceChoice::Cpu).unwrap();
    let mut single = load_model(&fixtures().join("sd15-tiny"), DeviceChoice::Cpu).unwrap();
    let (a, b) = (
        ours.generate(&request, &mut |_| Control::Continue).unwrap(),
        single.generate(&request, &mut |_| Control::Continue).unwrap(),
    );
    assert_eq!(a, b, "the sharded weights are not the single files' weights");

    let files: Vec<String> =
        model_manifest(sharded.path()).unwrap().files.into_iter().map(|f| f.path).collect();
    for expected in [
        "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model.fp16-00003-of-00003.safetensors",
        "vae/diffusion_pytorch_model.safetensors.index.fp16.json",
        "vae/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} not in the manifest: {files:?}");
    }
    assert!(!files.iter().any(|f| f == "vae/diffusion_pytorch_model.fp16.safetensors"));
    // The hash covers the loaded bytes, which the shards are.
    assert_eq!(ours.descriptor().hash, model_manifest(sharded.path()).unwrap().hash());
}

#[test]
fn an_index_that_disagrees_with_its_shards_is_refused() {
    let sharded = sharded_model();
    let index = sharded.path().join("vae/diffusion_pytorch_model.safetensors.index.fp16.json");
    let original = std::fs::read_to_string(&index).unwrap();
    let load_error = || match load_model(sharded.path(), DeviceChoice::Cpu) {
        Ok(_) => panic!("the model loaded"),
        Err(error) => error.to_string(),
    };
    let mut json: serde_json::Value = serde_json::from_str(&original).unwrap();
    json["weight_map"]["decoder.conv_in.bias"] =
        "diffusion_pytorch_model.fp16-00002-of-00002.safetensors".into();
    std::fs::write(&index, json.to_string()).unwrap();
    assert!(load_error().contains("decoder.conv_in.bias"));
    json["weight_map"]["decoder.conv_in.bias"] = "../unet/diffusion_pytorch_model.fp16.safetensors".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let error = load_error();
    assert!(error.contains("beside the index"), "{error}");
    json["weight_map"]["decoder.extra.weight"] =
        "diffusion_pytorch_model.fp16-00003-of-00003.safetensors".into();
    json["weight_map"]["decoder.conv_in.bias"] =
        "diffusion_pytorch_model.fp16-00001-of-00002.safetensors".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let error = load_error();
    assert!(error.contains("00003-of-00003"), "{error}");
}
