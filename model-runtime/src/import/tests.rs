//! Unit tests of the import: refusals by name and by tensors, family inference. The conversion
//! itself is tested end to end against diffusers in `tests/runtime/single_file.rs`.

use super::safetensors_io::SourceTensor;
use super::*;
use serde_json::json;

fn tensors(names: &[(&str, &[usize])]) -> SourceTensors {
    names
        .iter()
        .map(|(name, shape)| {
            let tensor = SourceTensor { dtype: "F16".into(), shape: shape.to_vec(), start: 0, len: 0 };
            (name.to_string(), tensor)
        })
        .collect()
}

fn checkpoint(text: &str, width: usize) -> SourceTensors {
    tensors(&[
        (text, &[10, width]),
        ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", &[320, width]),
        ("first_stage_model.encoder.conv_in.weight", &[128, 3, 3, 3]),
    ])
}

const SD1_TEXT: &str = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
const SD2_TEXT: &str = "cond_stage_model.model.token_embedding.weight";

#[test]
fn pickles_and_other_files_are_refused_by_name() {
    for name in ["model.ckpt", "v1-5.PT", "x.pth", "pytorch_model.bin"] {
        let error = check_file_name(Path::new(name)).unwrap_err().to_string();
        assert!(error.contains("pickle") && error.contains(".safetensors"), "{error}");
    }
    let error = check_file_name(Path::new("model.gguf")).unwrap_err().to_string();
    assert!(error.contains("not a .safetensors file"), "{error}");
    check_file_name(Path::new("dir.v2/Model.SafeTensors")).unwrap();
}

#[test]
fn the_family_comes_from_names_and_width() {
    assert_eq!(detect(&checkpoint(SD1_TEXT, 768), None).unwrap(), (CheckpointFamily::Sd1, ModelKind::Sd15));
    // A test-size checkpoint: no release width, the names decide.
    assert_eq!(detect(&checkpoint(SD1_TEXT, 32), None).unwrap(), (CheckpointFamily::Sd1, ModelKind::Sd15));
    assert_eq!(detect(&checkpoint(SD2_TEXT, 1024), None).unwrap(), (CheckpointFamily::Sd2, ModelKind::Sd21));
    // Names and width disagree: refused unless the kind is given.
    let error = detect(&checkpoint(SD1_TEXT, 1024), None).unwrap_err();
    assert!(error.contains("SD 1.x") && error.contains("1024") && error.contains("sd15"), "{error}");
    assert_eq!(
        detect(&checkpoint(SD1_TEXT, 1024), Some(ModelKind::Sd15)).unwrap(),
        (CheckpointFamily::Sd1, ModelKind::Sd15)
    );
    assert_eq!(
        detect(&checkpoint(SD1_TEXT, 32), Some(ModelKind::Tiny)).unwrap(),
        (CheckpointFamily::Sd1, ModelKind::Tiny)
    );
    let error = detect(&checkpoint(SD1_TEXT, 768), Some(ModelKind::Sd21)).unwrap_err();
    assert!(error.contains("no SD 2.x text encoder"), "{error}");
    assert_eq!(
        detect(&checkpoint(SD2_TEXT, 32), Some(ModelKind::Tiny)).unwrap(),
        (CheckpointFamily::Sd2, ModelKind::Tiny)
    );
    let error = detect(&checkpoint(SD2_TEXT, 1024), Some(ModelKind::Sd15)).unwrap_err();
    assert!(error.contains("no SD 1.x text encoder"), "{error}");
    let error = detect(&checkpoint(SD1_TEXT, 768), Some(ModelKind::PixelMiniLm)).unwrap_err();
    assert!(error.contains("not a Stable Diffusion kind"), "{error}");
}

#[test]
fn partial_files_are_not_models() {
    let lora = tensors(&[("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", &[4, 320])]);
    let error = detect(&lora, None).unwrap_err();
    assert!(error.contains("not a full Stable Diffusion checkpoint"), "{error}");
}

#[test]
fn the_default_name_is_the_file_stem_within_100_bytes() {
    assert_eq!(default_name(Path::new("/m/v1-5-pruned-emaonly.safetensors")), "v1-5-pruned-emaonly");
    let long = format!("{}.safetensors", "é".repeat(60));
    let name = default_name(Path::new(&long));
    assert!(name.len() <= 100 && name.chars().all(|c| c == 'é'), "{name}");
}

#[test]
fn source_records_both_hash_forms() {
    let source = ModelSource::from_digest(&Sha256::digest(b"checkpoint").into());
    assert_eq!(source.sha256.len(), 64);
    assert_eq!(source.autov2, source.sha256[..10].to_ascii_uppercase());
}

/// The release configs read from the single-file fixture's tensors agree with the configs
/// diffusers saved for the same model on everything the tensors determine.
#[test]
fn release_configs_take_their_sizes_from_the_tensors() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let path = fixtures.join("single-file/sd15-tiny.safetensors");
    let tensors = safetensors_io::read_header(&path, &mut File::open(&path).unwrap()).unwrap();
    let saved = |file: &str| -> Value {
        serde_json::from_slice(&std::fs::read(fixtures.join("sd15-tiny").join(file)).unwrap()).unwrap()
    };
    let (unet, vae) = (release::unet(&tensors).unwrap(), release::vae(&tensors).unwrap());
    let (saved_unet, saved_vae) = (saved("unet/config.json"), saved("vae/config.json"));
    for key in [
        "block_out_channels",
        "cross_attention_dim",
        "down_block_types",
        "in_channels",
        "layers_per_block",
        "norm_num_groups",
        "out_channels",
        "transformer_layers_per_block",
        "up_block_types",
        "use_linear_projection",
        "attention_head_dim",
    ] {
        assert_eq!(unet[key], saved_unet[key], "unet {key}");
    }
    for key in [
        "block_out_channels",
        "in_channels",
        "latent_channels",
        "layers_per_block",
        "norm_num_groups",
        "out_channels",
    ] {
        assert_eq!(vae[key], saved_vae[key], "vae {key}");
    }
    crate::configs::UnetSpec::from_json(&unet).unwrap();
    crate::configs::VaeSpec::from_json(&vae).unwrap();
    crate::scheduler::ScheduleConfig::from_json(&release::scheduler()).unwrap();
}

/// SD 2.1's text encoder config: OpenCLIP ViT-H's sizes, gelu, one layer fewer than resblocks.
#[test]
fn sd21_text_encoder_config_leaves_out_the_last_block() {
    let mut names: Vec<(String, Vec<usize>)> = vec![
        ("cond_stage_model.model.token_embedding.weight".into(), vec![49408, 1024]),
        ("cond_stage_model.model.positional_embedding".into(), vec![77, 1024]),
        ("cond_stage_model.model.text_projection".into(), vec![1024, 1024]),
    ];
    for i in 0..24 {
        names.push((
            format!("cond_stage_model.model.transformer.resblocks.{i}.mlp.c_fc.weight"),
            vec![4096, 1024],
        ));
    }
    let borrowed: Vec<(&str, &[usize])> = names.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    let config = release::open_clip_text_encoder(&tensors(&borrowed)).unwrap();
    for (key, value) in [
        ("hidden_act", json!("gelu")),
        ("hidden_size", json!(1024)),
        ("intermediate_size", json!(4096)),
        ("num_attention_heads", json!(16)),
        ("num_hidden_layers", json!(23)),
        ("max_position_embeddings", json!(77)),
        ("vocab_size", json!(49408)),
    ] {
        assert_eq!(config[key], value, "{key}");
    }
}

/// The release UNet config read from the SD 2.x single-file fixture agrees with the saved
/// config on what the tensors determine, linear projections included.
#[test]
fn sd21_unet_sizes_come_from_the_tensors() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let path = fixtures.join("single-file/sd21-tiny.safetensors");
    let tensors = safetensors_io::read_header(&path, &mut File::open(&path).unwrap()).unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("sd21-tiny/unet/config.json")).unwrap()).unwrap();
    let unet = release::unet(&tensors).unwrap();
    for key in [
        "block_out_channels",
        "cross_attention_dim",
        "down_block_types",
        "up_block_types",
        "use_linear_projection",
    ] {
        assert_eq!(unet[key], saved[key], "unet {key}");
    }
    // 32-wide levels have no 64-wide head count.
    let error = release::sd21_unet(&tensors, PredictionType::V).unwrap_err();
    assert!(error.contains("64-wide heads"), "{error}");
    let config = release::open_clip_text_encoder(&tensors).unwrap_err();
    assert!(config.contains("64-wide heads"), "{config}");
}
