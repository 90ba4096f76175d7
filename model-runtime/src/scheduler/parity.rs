//! Parity with diffusers: every scheduler, run over the synthetic model of
//! `model-runtime/parity/schedulers.py` from the same latents (and, for `euler_a` and `lcm`, fed
//! the same step noise), must visit diffusers' timesteps, use its σ and land on its final sample.

use candle_core::{Device, Tensor};
use serde_json::Value;

use super::{ScheduleConfig, StepNoise, build};
use crate::SchedulerKind;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schedulers/parity.json");

/// The step noise diffusers was fed, step by step.
struct FixtureNoise(Vec<Vec<f32>>);

impl StepNoise for FixtureNoise {
    fn draw(&mut self, index: usize, like: &Tensor) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.0[index].clone(), like.shape(), like.device())
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// One fixture case through genmint's scheduler: the worst difference of any step's sample, and
/// of the final one.
fn run_case(fixture: &Value, case: &Value) -> (Option<f32>, f32) {
    let name = case["scheduler"].as_str().unwrap();
    let kind: SchedulerKind = name.parse().unwrap();
    let config = ScheduleConfig::from_json(&fixture["configs"][case["config"].as_str().unwrap()]).unwrap();
    let steps = case["steps"].as_u64().unwrap() as u32;
    let mut scheduler = build(kind, &config, steps).unwrap();
    let label = format!("{name} {} {steps}", case["config"]);

    // diffusers' timesteps are f32 (Euler) or integers; serde_json may misread the last bit of an
    // f64, never of an f32.
    let expected_timesteps: Vec<f32> = floats(&case["timesteps"]);
    let timesteps: Vec<f32> = scheduler.timesteps().iter().map(|&t| t as f32).collect();
    assert_eq!(timesteps, expected_timesteps, "{label}: timesteps");
    if let Some(expected) = case["sigmas"].as_array() {
        let sigmas = scheduler.sigmas().unwrap();
        assert_eq!(sigmas.len(), expected.len(), "{label}: sigmas");
        for (ours, theirs) in sigmas.iter().zip(expected) {
            let theirs = theirs.as_f64().unwrap();
            let relative = (f64::from(*ours) - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE);
            assert!(*ours == 0.0 && theirs == 0.0 || relative <= 1e-6, "{label}: σ {ours} vs {theirs}");
        }
    }
    let init = case["init_noise_sigma"].as_f64().unwrap();
    assert!((scheduler.init_noise_sigma() - init).abs() <= 1e-6 * init, "{label}: init noise sigma");

    let shape: Vec<usize> =
        fixture["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let latents = Tensor::from_vec(floats(&fixture["latents"]), shape, &Device::Cpu).unwrap();
    let mut sample = latents.affine(scheduler.init_noise_sigma(), 0.0).unwrap();
    let noise = case["noise"].as_array().map(|steps| steps.iter().map(floats).collect()).unwrap_or_default();
    let mut noise = FixtureNoise(noise);
    let mut worst_step = None::<f32>;
    for (index, &t) in scheduler.timesteps().to_vec().iter().enumerate() {
        let scaled = scheduler.scale_model_input(index, &sample).unwrap();
        let shift = 0.01f32 * (t as f32 / 1000.0);
        let output = (scaled.affine(0.8, 0.0).unwrap()
            + scaled.tanh().unwrap().affine(0.2, f64::from(shift)))
        .unwrap();
        sample = scheduler.step(index, &output, &sample, &mut noise).unwrap();
        if let Some(expected) = case.get("samples") {
            let ours = sample.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let diff = max_abs_diff(&ours, &floats(&expected[index]));
            worst_step = Some(worst_step.map_or(diff, |worst| worst.max(diff)));
        }
    }
    let ours = sample.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (worst_step, max_abs_diff(&ours, &floats(&case["final"])))
}

#[test]
fn schedulers_match_diffusers() {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let mut table =
        String::from("scheduler        config          steps  max|Δ| any step  max|Δ| final  max|final|\n");
    let mut failures = Vec::new();
    let cases = fixture["cases"].as_array().unwrap();
    for kind in SchedulerKind::ALL {
        assert!(cases.iter().any(|case| case["scheduler"] == kind.as_str()), "no fixture case for {kind}");
    }
    for case in cases {
        let (step, last) = run_case(&fixture, case);
        let size = floats(&case["final"]).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let row = format!(
            "{:<16} {:<15} {:>5}  {:>15}  {:>12.2e}  {:>10.2}\n",
            case["scheduler"].as_str().unwrap(),
            case["config"].as_str().unwrap(),
            case["steps"],
            step.map_or("-".to_string(), |s| format!("{s:.2e}")),
            last,
            size
        );
        if last > 1e-5 {
            failures.push(row.clone());
        }
        table.push_str(&row);
    }
    println!("{table}");
    assert!(failures.is_empty(), "final samples differ by more than 1e-5:\n{}", failures.concat());
}
