//! Parity with diffusers: the SD 1.5-shaped fixture `tests/fixtures/sd15-tiny` (saved by diffusers
//! and transformers, random weights) loaded by genmint's own loader must give what diffusers'
//! `StableDiffusionPipeline` gave for the same requests (`model-runtime/parity/sd15.py` recorded
//! it, starting from genmint's initial noise). Each stage is checked on diffusers' own inputs, so
//! a difference points at one stage:
//!
//! ```text
//! prompt ─► token ids (identical) ─► text embedding ─► UNet at the first timestep
//! genmint noise (bit-identical) ─► DDIM loop ─► final latents ─► VAE ─► raw [-1, 1] ─► RGB8
//! ```
//!
//! `cargo test -p genmint-model-runtime --test runtime parity -- --nocapture` prints the table of
//! max and mean absolute differences per stage and case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use genmint_model_runtime::noise::standard_normal;
use genmint_model_runtime::{Control, GenerationParams, SchedulerKind, Stages, load_stages};
use serde_json::Value;

/// Final pixels may differ from diffusers' by at most this many levels of 255.
const MAX_PIXEL_DIFF: u8 = 2;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd15-tiny")
}

struct Reference {
    json: Value,
    tensors: HashMap<String, Tensor>,
}

impl Reference {
    fn load() -> Self {
        let dir = fixture();
        let json = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
        Self { json, tensors }
    }

    fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("reference.safetensors has no {name}"))
    }

    fn cases(&self) -> &[Value] {
        self.json["cases"].as_array().unwrap()
    }

    fn texts(&self) -> &[Value] {
        self.json["texts"].as_array().unwrap()
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

fn params(case: &Value) -> GenerationParams {
    GenerationParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        seed: case["seed"].as_u64().unwrap(),
        width: case["width"].as_u64().unwrap() as u32,
        height: case["height"].as_u64().unwrap() as u32,
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance: case["guidance"].as_f64().unwrap() as f32,
        scheduler: SchedulerKind::Ddim,
    }
}

/// One row of the printed table.
struct Row {
    stage: &'static str,
    case: String,
    max: f32,
    mean: f32,
    /// The largest magnitude in diffusers' values, so a difference can be read relative to it.
    scale: f32,
    bound: f32,
}

/// The rows, each with the bound its max abs difference must meet.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, stage: &'static str, case: &str, actual: &[f32], expected: &[f32], bound: f32) {
        let (max, mean) = diff(actual, expected);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        self.rows.push(Row { stage, case: case.to_string(), max, mean, scale, bound });
    }

    /// Prints the table, then fails naming every row over its bound (NaN included).
    fn check(&self) {
        eprintln!(
            "{:<21} {:<28} {:>10} {:>10} {:>9} {:>8}",
            "stage", "case", "max abs", "mean abs", "max |ref|", "bound"
        );
        for r in &self.rows {
            eprintln!(
                "{:<21} {:<28} {:>10.2e} {:>10.2e} {:>9.3} {:>8.0e}",
                r.stage, r.case, r.max, r.mean, r.scale, r.bound
            );
        }
        let over: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.max.is_nan() || r.max > r.bound)
            .map(|r| format!("{} {}", r.stage, r.case))
            .collect();
        assert!(over.is_empty(), "over the bound: {over:?}");
    }
}

fn case_name(case: &Value) -> String {
    format!("seed {} g {} {} steps", case["seed"], case["guidance"].as_f64().unwrap(), case["steps"])
}

/// The context diffusers built for a case: `[uncond, cond]` when guided, else `[cond]`.
fn reference_context(reference: &Reference, case: &Value) -> Tensor {
    let embedding = |index: &Value| reference.tensor(&format!("text{index}.embedding")).unsqueeze(0).unwrap();
    let cond = embedding(&case["prompt_text"]);
    match &case["negative_text"] {
        Value::Null => cond,
        negative => Tensor::cat(&[&embedding(negative), &cond], 0).unwrap(),
    }
}

#[test]
fn initial_noise_is_genmints_bit_for_bit() {
    let reference = Reference::load();
    for (n, case) in reference.cases().iter().enumerate() {
        let latents = values(reference.tensor(&format!("case{n}.initial_latents")));
        assert_eq!(latents, standard_normal(case["seed"].as_u64().unwrap(), latents.len()), "case {n}");
    }
}

#[test]
fn genmint_matches_diffusers_stage_by_stage() {
    let reference = Reference::load();
    let mut stages: Stages = load_stages(&fixture()).unwrap();
    let mut table = Table::default();

    for text in reference.texts() {
        let expected: Vec<u32> =
            text["ids"].as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect();
        let actual = stages.token_ids(text["text"].as_str().unwrap()).unwrap();
        assert_eq!(actual, [expected], "token ids of {}", text["text"]);
    }

    for (n, case) in reference.cases().iter().enumerate() {
        let name = case_name(case);
        let params = params(case);
        let guided = params.guidance > 1.0;
        let tensor = |what: &str| reference.tensor(&format!("case{n}.{what}"));

        let context = stages.context(&params).unwrap();
        let expected_context = reference_context(&reference, case);
        assert_eq!(context.dims(), expected_context.dims());
        table.add("text embeddings", &name, &values(&context), &values(&expected_context), 1e-5);

        // The UNet on diffusers' own inputs: the batch it built at the first timestep.
        let latents = tensor("initial_latents");
        let batch = if guided { Tensor::cat(&[latents, latents], 0).unwrap() } else { latents.clone() };
        let timestep = case["timesteps"][0].as_f64().unwrap();
        let output = stages.unet(&batch, timestep, &expected_context).unwrap();
        table.add("UNet, first step", &name, &values(&output), &values(tensor("unet_first_step")), 2e-4);

        // Guidance multiplies the UNet's differences by up to 2g - 1 at every step.
        let denoised = stages.denoised(&params).unwrap();
        table.add("final latents", &name, &values(&denoised), &values(tensor("final_latents")), 5e-3);

        let decoded = stages.decode(tensor("final_latents")).unwrap();
        table.add("VAE of their latents", &name, &values(&decoded), &values(tensor("decoded")), 1e-4);
        let ours = stages.decode(&denoised).unwrap();
        table.add("raw image [-1, 1]", &name, &values(&ours), &values(tensor("decoded")), 1e-3);

        let image = stages.generator().generate(&params, &mut |_| Control::Continue).unwrap();
        let expected = tensor("image_uint8").flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let pixels: Vec<f32> = image.pixels.iter().map(|&p| f32::from(p)).collect();
        let expected: Vec<f32> = expected.iter().map(|&p| f32::from(p)).collect();
        table.add("pixels (of 255)", &name, &pixels, &expected, f32::from(MAX_PIXEL_DIFF));
    }
    table.check();
}
