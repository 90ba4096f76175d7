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
    let config = release::open_clip_text_encoder(&tensors(&borrowed), CheckpointFamily::Sd2).unwrap();
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
    let config = release::open_clip_text_encoder(&tensors, CheckpointFamily::Sd2).unwrap_err();
    assert!(config.contains("64-wide heads"), "{config}");
}

/// The names and shapes of an SDXL base checkpoint (no bytes): what the release configs read.
fn sdxl_base_shapes() -> SourceTensors {
    let mut names: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| names.push((name, shape.to_vec()));
    let unet = "model.diffusion_model.";
    add(format!("{unet}input_blocks.0.0.weight"), &[320, 4, 3, 3]);
    add(format!("{unet}out.2.weight"), &[4, 320, 3, 3]);
    add(format!("{unet}label_emb.0.0.weight"), &[1280, 2816]);
    let (channels, depths) = ([320, 640, 1280], [0, 2, 10]);
    let attention = |add: &mut dyn FnMut(String, &[usize]), block: String, width: usize, depth: usize| {
        add(format!("{block}.proj_in.weight"), &[width, width]);
        for k in 0..depth {
            add(format!("{block}.transformer_blocks.{k}.attn2.to_k.weight"), &[width, 2048]);
        }
    };
    for level in 0..3 {
        for layer in 0..2 {
            let i = 1 + level * 3 + layer;
            add(
                format!("{unet}input_blocks.{i}.0.out_layers.3.weight"),
                &[channels[level], channels[level], 3, 3],
            );
            if depths[level] > 0 {
                attention(&mut add, format!("{unet}input_blocks.{i}.1"), channels[level], depths[level]);
            }
        }
        if level < 2 {
            add(format!("{unet}input_blocks.{}.0.op.weight", 3 + level * 3), &[channels[level]; 2]);
        }
        // Up levels run from the widest.
        for layer in 0..3 {
            let i = level * 3 + layer;
            let up = 2 - level;
            add(
                format!("{unet}output_blocks.{i}.0.out_layers.3.weight"),
                &[channels[up], channels[up], 3, 3],
            );
            if depths[up] > 0 {
                attention(&mut add, format!("{unet}output_blocks.{i}.1"), channels[up], depths[up]);
            }
        }
    }
    attention(&mut add, format!("{unet}middle_block.1"), 1280, 10);
    let vae = "first_stage_model.";
    for (i, width) in [128, 256, 512, 512].into_iter().enumerate() {
        add(format!("{vae}encoder.down.{i}.block.0.conv1.weight"), &[width, width, 3, 3]);
        add(format!("{vae}encoder.down.{i}.block.1.conv1.weight"), &[width, width, 3, 3]);
        add(format!("{vae}decoder.up.{i}.block.0.conv1.weight"), &[width, width, 3, 3]);
    }
    add(format!("{vae}encoder.conv_in.weight"), &[128, 3, 3, 3]);
    add(format!("{vae}post_quant_conv.weight"), &[4, 4, 1, 1]);
    add(format!("{vae}decoder.conv_out.weight"), &[3, 128, 3, 3]);
    let clip = "conditioner.embedders.0.transformer.text_model.";
    add(format!("{clip}embeddings.token_embedding.weight"), &[49408, 768]);
    add(format!("{clip}embeddings.position_embedding.weight"), &[77, 768]);
    for n in 0..12 {
        add(format!("{clip}encoder.layers.{n}.mlp.fc1.weight"), &[3072, 768]);
    }
    let open_clip = "conditioner.embedders.1.model.";
    add(format!("{open_clip}token_embedding.weight"), &[49408, 1280]);
    add(format!("{open_clip}positional_embedding"), &[77, 1280]);
    add(format!("{open_clip}text_projection"), &[1280, 1280]);
    for n in 0..32 {
        add(format!("{open_clip}transformer.resblocks.{n}.mlp.c_fc.weight"), &[5120, 1280]);
    }
    let borrowed: Vec<(&str, &[usize])> = names.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
    tensors(&borrowed)
}

/// The configs read from SDXL base's tensor shapes are the release's: heads, depth per level,
/// the added conditioning's widths, both text encoders, the VAE's scaling; SDXL Turbo's get its
/// scheduler.
#[test]
fn sdxl_release_configs_come_from_the_tensor_shapes() {
    let shapes = sdxl_base_shapes();
    assert_eq!(detect(&shapes, None).unwrap(), (CheckpointFamily::Sdxl, ModelKind::Sdxl));
    let configs: BTreeMap<&str, Value> =
        release::sdxl_configs(&shapes, release::SdxlRelease::Base, None).unwrap().into_iter().collect();
    let unet = &configs["unet/config.json"];
    for (key, value) in [
        ("attention_head_dim", json!([5, 10, 20])),
        ("transformer_layers_per_block", json!([1, 2, 10])),
        ("block_out_channels", json!([320, 640, 1280])),
        ("down_block_types", json!(["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"])),
        ("up_block_types", json!(["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])),
        ("cross_attention_dim", json!(2048)),
        ("addition_embed_type", json!("text_time")),
        ("addition_time_embed_dim", json!(256)),
        ("projection_class_embeddings_input_dim", json!(2816)),
        ("use_linear_projection", json!(true)),
        ("sample_size", json!(128)),
    ] {
        assert_eq!(unet[key], value, "unet {key}");
    }
    let second = &configs["text_encoder_2/config.json"];
    for (key, value) in [
        ("architectures", json!(["CLIPTextModelWithProjection"])),
        ("hidden_act", json!("gelu")),
        ("hidden_size", json!(1280)),
        ("num_attention_heads", json!(20)),
        ("num_hidden_layers", json!(32)),
        ("projection_dim", json!(1280)),
    ] {
        assert_eq!(second[key], value, "text_encoder_2 {key}");
    }
    let first = &configs["text_encoder/config.json"];
    assert_eq!((&first["num_hidden_layers"], &first["hidden_act"]), (&json!(12), &json!("quick_gelu")));
    assert_eq!(configs["vae/config.json"]["scaling_factor"], json!(0.13025));
    assert_eq!(configs["model_index.json"]["force_zeros_for_empty_prompt"], json!(true));
    let scheduler = &configs["scheduler/scheduler_config.json"];
    assert_eq!(
        (&scheduler["_class_name"], &scheduler["timestep_spacing"]),
        (&json!("EulerDiscreteScheduler"), &json!("leading"))
    );
    crate::configs::UnetSpec::from_json(unet).unwrap();
    crate::configs::VaeSpec::from_json(&configs["vae/config.json"]).unwrap();
    crate::scheduler::ScheduleConfig::from_json(scheduler).unwrap();

    let turbo: BTreeMap<&str, Value> =
        release::sdxl_configs(&shapes, release::SdxlRelease::Turbo, None).unwrap().into_iter().collect();
    let scheduler = &turbo["scheduler/scheduler_config.json"];
    assert_eq!(scheduler["_class_name"], json!("EulerAncestralDiscreteScheduler"));
    assert_eq!(scheduler["timestep_spacing"], json!("trailing"));
    assert_eq!(turbo["unet/config.json"]["sample_size"], json!(64));
    crate::scheduler::ScheduleConfig::from_json(scheduler).unwrap();
}

#[test]
fn sdxl_refiners_and_odd_added_conditioning_are_refused() {
    let refiner = checkpoint("conditioner.embedders.0.model.token_embedding.weight", 1280);
    let error = detect(&refiner, None).unwrap_err();
    assert!(error.contains("refiner"), "{error}");
    let mut shapes = sdxl_base_shapes();
    shapes.get_mut("model.diffusion_model.label_emb.0.0.weight").unwrap().shape = vec![1280, 2817];
    let error = release::sdxl_unet(&shapes).unwrap_err();
    assert!(error.contains("2817") && error.contains("size ids"), "{error}");
}
