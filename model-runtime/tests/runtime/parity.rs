//! Parity with diffusers: the SD-shaped fixtures `tests/fixtures/sd15-tiny`,
//! `tests/fixtures/sd21-tiny` and `tests/fixtures/sdxl-tiny` (saved by diffusers and
//! transformers, random weights) loaded by genmint's own loader must give what diffusers'
//! `StableDiffusionPipeline` (`StableDiffusionXLPipeline` for SDXL) gave for the same requests
//! (`model-runtime/parity/sd15.py`, `sd21.py` and `sdxl.py` recorded it, starting from genmint's
//! initial noise). For SDXL the pooled text embedding is compared too, and the UNet gets
//! diffusers' pooled embedding and size ids. For the DDIM cases each stage is checked on diffusers' own inputs, so a
//! difference points at one stage:
//!
//! ```text
//! prompt ─► token ids (identical) ─► text embedding ─► UNet at the first timestep
//! genmint noise (bit-identical) ─► DDIM loop ─► final latents ─► VAE ─► raw [-1, 1] ─► RGB8
//! ```
//!
//! The scheduler cases run whole requests with every other scheduler (`euler`, `euler_a` fed
//! genmint's step noise on both sides, `dpmpp_2m`, `dpmpp_2m_karras`), SD 2.1's also with SD
//! Turbo's trailing-spacing scheduler config, and compare text embeddings, final latents and pixels.
//!
//! `cargo test -p genmint-model-runtime --test runtime parity -- --nocapture --test-threads=1`
//! prints the table of max and mean absolute differences per family, stage and case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use genmint_model_runtime::noise::standard_normal;
use genmint_model_runtime::{Control, GenerationParams, SchedulerKind, Stages, load_stages};
use serde_json::Value;

/// Final pixels may differ from diffusers' by at most this many levels of 255.
const MAX_PIXEL_DIFF: u8 = 2;

fn fixture(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{family}-tiny"))
}

struct Reference {
    json: Value,
    tensors: HashMap<String, Tensor>,
}

impl Reference {
    fn load(family: &'static str) -> Self {
        let dir = fixture(family);
        let json = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
        Self { json, tensors }
    }

    fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("reference.safetensors has no {name}"))
    }

    fn list(&self, key: &str) -> &[Value] {
        self.json[key].as_array().unwrap_or_else(|| panic!("reference.json has no {key}"))
    }

    fn cases(&self) -> &[Value] {
        self.list("cases")
    }

    fn texts(&self) -> &[Value] {
        self.list("texts")
    }

    fn scheduler_cases(&self) -> &[Value] {
        self.list("scheduler_cases")
    }
}

fn values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_dtype(candle_core::DType::F32).unwrap().to_vec1().unwrap()
}

/// Max and mean absolute difference.
fn diff(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), expected.len());
    let diffs = actual.iter().zip(expected).map(|(a, e)| (a - e).abs());
    // A NaN anywhere makes the max NaN (f32::max would skip it), so the bound check fails.
    let (max, sum) = diffs.fold((0f32, 0f64), |(max, sum), d| {
        (if d.is_nan() || d > max { d } else { max }, sum + f64::from(d))
    });
    (max, (sum / actual.len() as f64) as f32)
}

/// The request a recorded case stands for; `scheduler` is genmint's name for it (DDIM when the
/// case names none).
fn params(case: &Value) -> GenerationParams {
    GenerationParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        seed: case["seed"].as_u64().unwrap(),
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance: case["guidance"].as_f64().unwrap() as f32,
        scheduler: case["scheduler"].as_str().map_or(SchedulerKind::Ddim, |name| name.parse().unwrap()),
    }
}

/// One row of the printed table.
struct Row {
    family: &'static str,
    stage: &'static str,
    case: String,
    max: f32,
    mean: f32,
    /// The largest magnitude in diffusers' values, so a difference can be read relative to it.
    scale: f32,
    bound: f32,
}

/// The rows, each with the bound its max abs difference must meet.
struct Table {
    family: &'static str,
    rows: Vec<Row>,
}

impl Table {
    fn new(family: &'static str) -> Self {
        Self { family, rows: Vec::new() }
    }

    fn add(&mut self, stage: &'static str, case: &str, actual: &[f32], expected: &[f32], bound: f32) {
        let (max, mean) = diff(actual, expected);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let family = self.family;
        self.rows.push(Row { family, stage, case: case.to_string(), max, mean, scale, bound });
    }

    /// Prints the table, then fails naming every row over its bound (NaN included).
    fn check(&self) {
        eprintln!(
            "{:<6} {:<21} {:<44} {:>10} {:>10} {:>9} {:>8}",
            "family", "stage", "case", "max abs", "mean abs", "max |ref|", "bound"
        );
        for r in &self.rows {
            eprintln!(
                "{:<6} {:<21} {:<44} {:>10.2e} {:>10.2e} {:>9.3} {:>8.0e}",
                r.family, r.stage, r.case, r.max, r.mean, r.scale, r.bound
            );
        }
        let over: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.max.is_nan() || r.max > r.bound)
            .map(|r| format!("{} {} {}", r.family, r.stage, r.case))
            .collect();
        assert!(over.is_empty(), "over the bound: {over:?}");
    }

    /// The text embeddings genmint builds for `case` against diffusers' (and the pooled ones,
    /// where the model pools).
    fn context(&mut self, stages: &Stages, reference: &Reference, case: &Value, name: &str) {
        let context = stages.context(&params(case)).unwrap();
        let expected = reference_context(reference, case, "embedding");
        assert_eq!(context.dims(), expected.dims());
        self.add("text embeddings", name, &values(&context), &values(&expected), 1e-5);
        let pooled = stages.pooled(&params(case)).unwrap();
        assert_eq!(pooled.is_some(), reference.tensors.contains_key("text0.pooled"), "{name}");
        if let Some(pooled) = pooled {
            let expected = reference_context(reference, case, "pooled");
            assert_eq!(pooled.dims(), expected.dims());
            self.add("pooled text embeds", name, &values(&pooled), &values(&expected), 1e-5);
        }
    }

    /// genmint's whole generation for `case` against diffusers' uint8 image `expected`.
    fn pixels(&mut self, stages: &mut Stages, case: &Value, name: &str, expected: &Tensor) {
        let image = stages.generator().generate(&params(case), &mut |_| Control::Continue).unwrap();
        let expected = expected.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let pixels: Vec<f32> = image.pixels.iter().map(|&p| f32::from(p)).collect();
        let expected: Vec<f32> = expected.iter().map(|&p| f32::from(p)).collect();
        self.add("pixels (of 255)", name, &pixels, &expected, f32::from(MAX_PIXEL_DIFF));
    }
}

fn case_name(case: &Value) -> String {
    let scheduler = case["scheduler"].as_str().unwrap_or("ddim");
    let guided = case["guidance"].as_f64().unwrap() > 1.0;
    let empty = if guided && case["negative_prompt"] == "" { " empty negative" } else { "" };
    let spacing =
        case["scheduler_config"]["timestep_spacing"].as_str().map(|s| format!(" {s}")).unwrap_or_default();
    format!(
        "{scheduler}{spacing} seed {} g {} {} steps{empty}",
        case["seed"],
        case["guidance"].as_f64().unwrap(),
        case["steps"]
    )
}

/// The context (`what` = `embedding`) or pooled embedding (`pooled`) diffusers built for a case:
/// `[uncond, cond]` when guided, else `[cond]`; the unconditional half is zeros where the case
/// says `negative_zeros` (SDXL's empty negative prompt).
fn reference_context(reference: &Reference, case: &Value, what: &str) -> Tensor {
    let embedding = |index: &Value| reference.tensor(&format!("text{index}.{what}")).unsqueeze(0).unwrap();
    let cond = embedding(&case["prompt_text"]);
    if case["negative_zeros"].as_bool() == Some(true) {
        return Tensor::cat(&[&cond.zeros_like().unwrap(), &cond], 0).unwrap();
    }
    match &case["negative_text"] {
        Value::Null => cond,
        negative => Tensor::cat(&[&embedding(negative), &cond], 0).unwrap(),
    }
}

#[test]
fn initial_noise_is_genmints_bit_for_bit() {
    for family in ["sd15", "sd21", "sdxl"] {
        let reference = Reference::load(family);
        for (n, case) in reference.cases().iter().enumerate() {
            let latents = values(reference.tensor(&format!("case{n}.initial_latents")));
            let seed = case["seed"].as_u64().unwrap();
            assert_eq!(latents, standard_normal(seed, latents.len()), "{family} case {n}");
        }
    }
}

/// Every DDIM case of a fixture, stage by stage.
fn stage_by_stage(family: &'static str) {
    let reference = Reference::load(family);
    let mut stages: Stages = load_stages(&fixture(family)).unwrap();
    let mut table = Table::new(family);

    for text in reference.texts() {
        let ids = |list: &Value| -> Vec<u32> {
            list.as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect()
        };
        // One list of ids, or (SDXL) one per tokenizer.
        let expected: Vec<Vec<u32>> = match &text["ids"][0] {
            Value::Array(_) => text["ids"].as_array().unwrap().iter().map(ids).collect(),
            _ => vec![ids(&text["ids"])],
        };
        let actual = stages.token_ids(text["text"].as_str().unwrap()).unwrap();
        assert_eq!(actual, expected, "token ids of {}", text["text"]);
    }

    for (n, case) in reference.cases().iter().enumerate() {
        let name = case_name(case);
        let params = params(case);
        let guided = params.guidance > 1.0;
        let tensor = |what: &str| reference.tensor(&format!("case{n}.{what}"));

        table.context(&stages, &reference, case, &name);

        // The UNet on diffusers' own inputs: the batch it built at the first timestep.
        let latents = tensor("initial_latents");
        let batch = if guided { Tensor::cat(&[latents, latents], 0).unwrap() } else { latents.clone() };
        let timestep = case["timesteps"][0].as_f64().unwrap();
        let expected_context = reference_context(&reference, case, "embedding");
        let expected_pooled = reference
            .tensors
            .contains_key("text0.pooled")
            .then(|| reference_context(&reference, case, "pooled"));
        let output = stages.unet(&batch, timestep, &expected_context, expected_pooled.as_ref()).unwrap();
        table.add("UNet, first step", &name, &values(&output), &values(tensor("unet_first_step")), 2e-4);

        // Guidance multiplies the UNet's differences by up to 2g - 1 at every step.
        let denoised = stages.denoised(&params).unwrap();
        table.add("final latents", &name, &values(&denoised), &values(tensor("final_latents")), 5e-3);

        let decoded = stages.decode(tensor("final_latents")).unwrap();
        table.add("VAE of their latents", &name, &values(&decoded), &values(tensor("decoded")), 1e-4);
        let ours = stages.decode(&denoised).unwrap();
        table.add("raw image [-1, 1]", &name, &values(&ours), &values(tensor("decoded")), 1e-3);

        table.pixels(&mut stages, case, &name, tensor("image_uint8"));
    }
    table.check();
}

/// Every scheduler case of a fixture: text embeddings, final latents and pixels. A case with its
/// own `scheduler_config` runs on a copy of the fixture with that config in place of the saved
/// one (genmint reads the schedule from the model directory, as diffusers' users load it).
fn every_scheduler(family: &'static str) {
    let reference = Reference::load(family);
    let mut table = Table::new(family);
    let mut saved = load_stages(&fixture(family)).unwrap();
    let mut copies: Vec<(Value, tempfile::TempDir, Stages)> = Vec::new();
    for (n, case) in reference.scheduler_cases().iter().enumerate() {
        let stages = match &case["scheduler_config"] {
            Value::Null => &mut saved,
            config => {
                let at = match copies.iter().position(|(c, _, _)| c == config) {
                    Some(at) => at,
                    None => {
                        let dir = copy_with(&fixture(family), "scheduler/scheduler_config.json", config);
                        let stages = load_stages(dir.path()).unwrap();
                        copies.push((config.clone(), dir, stages));
                        copies.len() - 1
                    }
                };
                &mut copies[at].2
            }
        };
        let name = case_name(case);
        let tensor = |what: &str| reference.tensor(&format!("sched{n}.{what}"));
        table.context(stages, &reference, case, &name);
        let denoised = stages.denoised(&params(case)).unwrap();
        table.add("final latents", &name, &values(&denoised), &values(tensor("final_latents")), 5e-3);
        table.pixels(stages, case, &name, tensor("image_uint8"));
    }
    table.check();
}

/// A copy of the model directory `dir` whose JSON file `relative` is `config`.
pub fn copy_with(dir: &Path, relative: &str, config: &Value) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in walk(dir) {
        let target = copy.path().join(entry.strip_prefix(dir).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
    let bytes = serde_json::to_vec_pretty(config).unwrap();
    std::fs::write(copy.path().join(relative), bytes).unwrap();
    copy
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn genmint_matches_diffusers_stage_by_stage() {
    stage_by_stage("sd15");
}

#[test]
fn sd21_matches_diffusers_stage_by_stage() {
    stage_by_stage("sd21");
}

#[test]
fn sd15_every_scheduler_matches_diffusers() {
    every_scheduler("sd15");
}

#[test]
fn sd21_and_turbo_schedulers_match_diffusers() {
    every_scheduler("sd21");
}

/// What an SDXL model asks for that genmint does not run is refused naming it, never skipped:
/// another added conditioning, the refiner's aesthetic score, sizes that do not add up, and a
/// `text_time` UNet without a pooling text encoder (the single-encoder `tiny` kind).
#[test]
fn sdxl_asks_not_run_are_refused_by_name() {
    let dir = fixture("sdxl");
    let read = |relative: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(relative)).unwrap()).unwrap()
    };
    let cases: [(&str, &str, Value, &str); 6] = [
        ("model_index.json", "requires_aesthetics_score", Value::Bool(true), "requires_aesthetics_score"),
        ("unet/config.json", "addition_embed_type", "text".into(), "addition_embed_type = \"text\""),
        // Six ids of 4 channels and the 48-wide pooled embedding are not add_embedding's 96 inputs.
        (
            "unet/config.json",
            "addition_time_embed_dim",
            4.into(),
            "projection_class_embeddings_input_dim is 96",
        ),
        // A config that disagrees with the weights is refused when they load.
        ("unet/config.json", "projection_class_embeddings_input_dim", 97.into(), "add_embedding.linear_1"),
        ("unet/config.json", "addition_time_embed_dim", Value::Null, "addition_time_embed_dim must be given"),
        ("genmint-model.json", "kind", "tiny".into(), "needs a text encoder with text_projection"),
    ];
    for (relative, key, value, needle) in cases {
        let mut config = read(relative);
        config[key] = value;
        let copy = copy_with(&dir, relative, &config);
        let error = match load_stages(copy.path()) {
            Ok(_) => panic!("{relative} {key} = {} was accepted", config[key]),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(needle), "{relative} {key}: {error}");
    }
}

/// `force_zeros_for_empty_prompt: false` makes an empty negative prompt an embedded empty text
/// again (the fixture's true gives zeros, checked against diffusers above).
#[test]
fn sdxl_empty_negative_is_embedded_without_force_zeros() {
    let dir = fixture("sdxl");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model_index.json")).unwrap()).unwrap();
    index["force_zeros_for_empty_prompt"] = Value::Bool(false);
    let copy = copy_with(&dir, "model_index.json", &index);
    let (zeroing, embedding) = (load_stages(&dir).unwrap(), load_stages(copy.path()).unwrap());
    let request = GenerationParams {
        prompt: "a red kite".into(),
        negative_prompt: String::new(),
        seed: 1,
        width: 64,
        height: 64,
        steps: 4,
        guidance: 5.0,
        scheduler: SchedulerKind::Ddim,
    };
    let empty = GenerationParams { prompt: String::new(), guidance: 1.0, ..request.clone() };
    let negative = |stages: &Stages| {
        let context = values(&stages.context(&request).unwrap().get(0).unwrap());
        let pooled = values(&stages.pooled(&request).unwrap().unwrap().get(0).unwrap());
        (context, pooled)
    };
    let (context, pooled) = negative(&zeroing);
    assert!(context.iter().chain(&pooled).all(|&v| v == 0.0));
    let (context, pooled) = negative(&embedding);
    // The same text alone or as one row of a batch: equal up to the kernels' summation order.
    assert!(diff(&context, &values(&embedding.context(&empty).unwrap())).0 < 1e-6);
    assert!(diff(&pooled, &values(&embedding.pooled(&empty).unwrap().unwrap())).0 < 1e-6);
    assert!(pooled.iter().any(|&v| v != 0.0));
}

#[test]
fn sdxl_matches_diffusers_stage_by_stage() {
    stage_by_stage("sdxl");
}

#[test]
fn sdxl_euler_matches_diffusers() {
    every_scheduler("sdxl");
}
