//! The step check's benchmark (`scripts/bench-latent-check.sh`): what a check of `K` replayed
//! steps costs beside a full re-generation, and how often it accepts a cheating node's trace.
//!
//! `cargo run -p genmint-model-runtime --example latent-check -- MODEL [--trials N] [--steps N]
//! [--scheduler NAME] [--checks 1,2,4] [--timing-runs N]`, where `MODEL` is `default` (the shipped
//! `genmint-emoji-32`, assembled from `$GENMINT_TOOLS/python`'s MiniLM), `test` (the SD-shaped
//! test model, with a VAE) or a model directory. One JSON object per line on stdout, then a
//! Markdown table. The checker runs the model in f32 on the CPU and draws its steps at random.
//!
//! Cheaters, each committing a well-formed trace whose final entry decodes to the image it
//! attests (so only replayed steps can catch it):
//!
//! - `perturbed 1e-2`, `perturbed 1e-3`: ran another model (every UNet weight times
//!   `1 + ε·n`, `n` standard normal) and committed that model's honest trace;
//! - `half steps, interpolated`: ran `N/2` steps and filled the `N + 1` entries by linear
//!   interpolation between its own entries (sample and state);
//! - `half steps, own schedule`: ran `N/2` steps and committed that run's entries, the last one
//!   repeated up to entry `N`;
//! - `skipped last step`: the honest trace with entry `N` replaced by entry `N − 1` (one forged
//!   transition of `N`: the hardest case, caught with probability `K/N`).
//!
//! Two honest nodes calibrate: `honest` (same envelope: must always pass) and `honest f16`
//! (another envelope, the UNet in f16: fails bit-exact comparison by design, and sets the
//! relative-RMS tolerance reported beside it: twice the largest distance it showed). Under the
//! tolerance the final decode is not compared bit for bit (the node compares that picture with
//! the minted image by dHash, which is left out here); entry 0 always is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use genmint_model_runtime::trace::check::{check_steps, sample_steps};
use genmint_model_runtime::trace::{LatentTrace, TraceEntry};
use genmint_model_runtime::{
    ComputeDtype, Control, DeviceChoice, GenerationParams, Generator, Rgb8Image, SchedulerKind, Traced,
    install_default_model, load_model, load_model_with, minilm_dir, noise, write_test_model,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

type Error = Box<dyn std::error::Error>;

const PROMPTS: [&str; 8] = [
    "grinning face with smiling eyes",
    "red apple",
    "sun behind cloud",
    "pile of poo",
    "smiling face with heart-eyes",
    "dog face",
    "rocket",
    "green heart",
];

struct Args {
    model: String,
    trials: u64,
    steps: u32,
    scheduler: SchedulerKind,
    checks: Vec<u32>,
    timing_runs: usize,
}

fn parse() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: latent-check default|test|DIR [--trials N] [--steps N] …")?;
    let mut parsed = Args {
        model,
        trials: 200,
        steps: 10,
        scheduler: SchedulerKind::DpmPp2m,
        checks: vec![1, 2, 4],
        timing_runs: 5,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--trials" => parsed.trials = value.parse()?,
            "--steps" => parsed.steps = value.parse()?,
            "--scheduler" => parsed.scheduler = value.parse()?,
            "--checks" => parsed.checks = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--timing-runs" => parsed.timing_runs = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    parsed.checks.sort_unstable();
    Ok(parsed)
}

/// The model directory for `model`, written into `work` where it is built here.
fn model_dir(model: &str, work: &Path) -> Result<PathBuf, Error> {
    let dir = work.join("model");
    match model {
        "default" => {
            let tools = std::env::var_os("GENMINT_TOOLS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
            install_default_model(&dir, &minilm_dir(&tools.join("python")))?;
        }
        "test" => write_test_model(&dir)?,
        path => return Ok(PathBuf::from(path)),
    }
    Ok(dir)
}

/// A copy of the model in `from` whose UNet weights are each multiplied by `1 + eps·n`.
fn perturbed(from: &Path, to: &Path, eps: f64) -> Result<(), Error> {
    copy_dir(from, to)?;
    let unet = to.join("unet");
    for (file_index, file) in std::fs::read_dir(&unet)?.enumerate() {
        let path = file?.path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let mut changed = std::collections::HashMap::new();
        for (index, (name, tensor)) in tensors.into_iter().enumerate() {
            let dtype = tensor.dtype();
            let values = noise::standard_normal((file_index * 10_000 + index) as u64, tensor.elem_count());
            let n = Tensor::from_vec(values, tensor.shape(), &Device::Cpu)?;
            let scaled = (tensor.to_dtype(DType::F32)? * (n.affine(eps, 1.0))?)?.to_dtype(dtype)?;
            changed.insert(name, scaled);
        }
        candle_core::safetensors::save(&changed, &path)?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn traced(
    generator: &mut dyn Generator,
    params: &GenerationParams,
) -> Result<(Rgb8Image, LatentTrace), Error> {
    let mut outcomes =
        generator.generate_batch_traced(std::slice::from_ref(params), &mut |_, _| Control::Continue);
    let Traced { image, trace } = outcomes.pop().ok_or("no outcome")??;
    Ok((image, trace.ok_or("no trace recorded")?))
}

/// `a·(1 − w) + b·w`, value by value.
fn lerp(a: &[f32], b: &[f32], w: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x * (1.0 - w) + y * w).collect()
}

/// `short`'s entries stretched over `steps + 1` by linear interpolation.
fn interpolated(short: &LatentTrace, steps: u32) -> LatentTrace {
    let m = short.steps() as f32;
    let entries = (0..=steps)
        .map(|j| {
            let x = j as f32 * m / steps as f32;
            let low = (x.floor() as usize).min(short.steps() as usize);
            let high = (low + 1).min(short.steps() as usize);
            let w = x - low as f32;
            let (a, b) = (&short.entries[low], &short.entries[high]);
            TraceEntry { sample: lerp(&a.sample, &b.sample, w), state: lerp(&a.state, &b.state, w) }
        })
        .collect();
    LatentTrace { entries, ..short.clone() }
}

/// `short`'s entries, the last one repeated up to entry `steps`.
fn padded(short: &LatentTrace, steps: u32) -> LatentTrace {
    let mut entries = short.entries.clone();
    while entries.len() <= steps as usize {
        entries.push(short.entries[short.steps() as usize].clone());
    }
    LatentTrace { entries, ..short.clone() }
}

/// One trace's outcome against the checker: entry 0 and the final decode, and each of
/// `order`'s steps replayed (exact, and its relative RMS).
struct Trial {
    initial_ok: bool,
    /// The final entry decodes to the attested digest (bit for bit).
    decode_ok: bool,
    steps: Vec<(bool, f64)>,
}

fn trial(
    checker: &mut dyn Generator,
    params: &GenerationParams,
    trace: &LatentTrace,
    image: &Rgb8Image,
    order: &[u32],
) -> Result<Trial, Error> {
    let initial_ok = checker.initial_entry(params)?.bit_identical(&trace.entries[0]);
    let final_entry = &trace.entries[params.steps as usize];
    let decode_ok = checker.decode_entry(params, final_entry)?.pixel_digest() == image.pixel_digest();
    let from: Vec<(u32, &TraceEntry)> = order.iter().map(|&i| (i, &trace.entries[i as usize])).collect();
    let replayed = checker.replay_steps(params, &from)?;
    let steps = order
        .iter()
        .zip(&replayed)
        .map(|(&i, next)| {
            let committed = &trace.entries[i as usize + 1];
            (next.bit_identical(committed), next.relative_rms(committed))
        })
        .collect();
    Ok(Trial { initial_ok, decode_ok, steps })
}

impl Trial {
    /// Across envelopes (`tolerance`) the decode is not compared bit for bit: the node compares
    /// the picture by dHash instead, which this benchmark leaves out.
    fn detected(&self, k: usize, tolerance: Option<f64>) -> bool {
        !self.initial_ok
            || (tolerance.is_none() && !self.decode_ok)
            || self.steps[..k].iter().any(|&(exact, distance)| match tolerance {
                None => !exact,
                Some(bound) => distance > bound,
            })
    }
}

fn ms(seconds: f64) -> f64 {
    (seconds * 1e4).round() / 10.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Error> {
    let args = parse()?;
    let work = tempfile::tempdir()?;
    let dir = model_dir(&args.model, work.path())?;
    let mut checker = load_model(&dir, DeviceChoice::Cpu)?;
    let limits = checker.descriptor().limits.clone();
    let base = GenerationParams {
        prompt: String::new(),
        negative_prompt: String::new(),
        seed: 0,
        width: limits.default_width,
        height: limits.default_height,
        steps: args.steps,
        guidance: limits.default_guidance,
        scheduler: args.scheduler,
    };
    let request = |seed: u64, steps: u32| GenerationParams {
        prompt: PROMPTS[seed as usize % PROMPTS.len()].to_string(),
        seed,
        steps,
        ..base.clone()
    };

    // Cost: a full generation (plain and recording its trace), and a check of K steps.
    let (mut full, mut recording, mut decode, mut trace_bytes) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut check_costs: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for run in 0..args.timing_runs {
        let params = request(1000 + run as u64, args.steps);
        let timed = Instant::now();
        let plain = checker.generate(&params, &mut |_| Control::Continue)?;
        full.push(timed.elapsed().as_secs_f64());
        let timed = Instant::now();
        let (image, trace) = traced(checker.as_mut(), &params)?;
        recording.push(timed.elapsed().as_secs_f64());
        assert_eq!(plain, image, "recording changed the pixels");
        let bytes = trace.to_bytes()?;
        trace_bytes = bytes.len();
        let (_, trace) = LatentTrace::from_bytes(&bytes)?;
        let entries: BTreeMap<u32, TraceEntry> =
            trace.entries.into_iter().enumerate().map(|(i, e)| (i as u32, e)).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(run as u64);
        for &k in &args.checks {
            let chosen = sample_steps(&mut rng, args.steps, k);
            let timed = Instant::now();
            let report = check_steps(
                checker.as_mut(),
                &params,
                &entries,
                &chosen,
                &image.pixel_digest(),
                genmint_model_runtime::trace::check::Comparison::Exact,
            )?;
            check_costs.entry(k).or_default().push(timed.elapsed().as_secs_f64());
            decode.push(report.decode_time.as_secs_f64());
            assert!(report.failure.is_none(), "an honest trace failed: {:?}", report.failure);
        }
    }
    let full_ms = ms(median(full));
    println!(
        r#"{{"model":{:?},"steps":{},"scheduler":"{}","full_ms":{full_ms},"full_recording_ms":{},"decode_ms":{},"trace_bytes":{trace_bytes}}}"#,
        checker.descriptor().name,
        args.steps,
        args.scheduler,
        ms(median(recording)),
        ms(median(decode)),
    );
    let mut cost_rows = Vec::new();
    for (k, costs) in &check_costs {
        let check_ms = ms(median(costs.clone()));
        println!(r#"{{"check_steps":{k},"check_ms":{check_ms},"ratio":{:.3}}}"#, check_ms / full_ms);
        cost_rows.push((*k, check_ms));
    }

    // Cheaters.
    let mut perturbed_models = Vec::new();
    for eps in [1e-2, 1e-3] {
        let to = work.path().join(format!("perturbed-{eps}"));
        perturbed(&dir, &to, eps)?;
        perturbed_models.push((eps, load_model(&to, DeviceChoice::Cpu)?));
    }
    let mut half = load_model_with(&dir, DeviceChoice::Cpu, ComputeDtype::F16)?;
    let kmax = args.checks.iter().copied().max().unwrap_or(1).min(args.steps);
    let mut results: BTreeMap<&str, Vec<Trial>> = BTreeMap::new();
    let started = Instant::now();
    for seed in 0..args.trials {
        let params = request(seed, args.steps);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let mut order = sample_steps(&mut rng, args.steps, kmax);
        // A random order of a random subset: each prefix is a random subset of its size.
        let subset = order.clone();
        order = Vec::with_capacity(subset.len());
        let mut rest = subset;
        while !rest.is_empty() {
            let pick = sample_steps(&mut rng, rest.len() as u32, 1)[0] as usize;
            order.push(rest.remove(pick));
        }

        let mut cheats: Vec<(&str, Rgb8Image, LatentTrace)> = Vec::new();
        let (image, trace) = traced(checker.as_mut(), &params)?;
        let mut skipped = trace.clone();
        let last = skipped.entries.len() - 1;
        skipped.entries[last] = skipped.entries[last - 1].clone();
        let skipped_image = checker.decode_entry(&params, &skipped.entries[last])?;
        cheats.push(("honest", image, trace));
        cheats.push(("skipped last step", skipped_image, skipped));
        for (eps, model) in perturbed_models.iter_mut() {
            let (image, trace) = traced(model.as_mut(), &params)?;
            cheats.push((
                if *eps > 5e-3 { "perturbed weights 1e-2" } else { "perturbed weights 1e-3" },
                image,
                trace,
            ));
        }
        let short = request(seed, (args.steps / 2).max(1));
        let (short_image, short_trace) = traced(checker.as_mut(), &short)?;
        cheats.push((
            "half steps, interpolated",
            short_image.clone(),
            interpolated(&short_trace, args.steps),
        ));
        cheats.push(("half steps, own schedule", short_image, padded(&short_trace, args.steps)));
        let (image, trace) = traced(half.as_mut(), &params)?;
        cheats.push(("honest f16 (other envelope)", image, trace));
        for (name, image, trace) in cheats {
            let outcome = trial(checker.as_mut(), &params, &trace, &image, &order)?;
            results.entry(name).or_default().push(outcome);
        }
        if seed % 20 == 19 {
            eprintln!("{} trials in {:.0} s", seed + 1, started.elapsed().as_secs_f64());
        }
    }

    let largest =
        |name: &str| results[name].iter().flat_map(|t| t.steps.iter().map(|s| s.1)).fold(0.0f64, f64::max);
    let tolerance = 2.0 * largest("honest f16 (other envelope)");
    println!(r#"{{"tolerance_relative_rms":{tolerance:.3e}}}"#);
    let mut table = String::new();
    table.push_str(&format!(
        "| {} ({} {} steps, {} trials) | smallest step distance | {} |\n|---|---|{}\n",
        checker.descriptor().name,
        args.steps,
        args.scheduler,
        args.trials,
        args.checks.iter().map(|k| format!("K = {k}: exact / tol.")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(args.checks.len()),
    ));
    let order = [
        "honest",
        "honest f16 (other envelope)",
        "perturbed weights 1e-2",
        "perturbed weights 1e-3",
        "half steps, interpolated",
        "half steps, own schedule",
        "skipped last step",
    ];
    for name in order {
        let trials = &results[name];
        let rate = |k: u32, tol: Option<f64>| {
            let k = (k.min(args.steps)) as usize;
            100.0 * trials.iter().filter(|t| t.detected(k, tol)).count() as f64 / trials.len() as f64
        };
        // The smallest non-zero distance a replayed step showed: how far from the tolerance it is.
        let smallest = trials
            .iter()
            .flat_map(|t| t.steps.iter().filter(|s| !s.0).map(|s| s.1))
            .fold(f64::INFINITY, f64::min);
        let cells: Vec<String> = args
            .checks
            .iter()
            .map(|&k| format!("{:.1} % / {:.1} %", rate(k, None), rate(k, Some(tolerance))))
            .collect();
        for &k in &args.checks {
            println!(
                r#"{{"trace":{name:?},"k":{k},"detected_exact_pct":{:.1},"detected_tolerance_pct":{:.1}}}"#,
                rate(k, None),
                rate(k, Some(tolerance))
            );
        }
        let smallest = if smallest.is_finite() { format!("{smallest:.1e}") } else { "–".to_string() };
        table.push_str(&format!("| {name} | {smallest} | {} |\n", cells.join(" | ")));
    }
    println!("\n{table}");
    println!(
        "tolerance {tolerance:.2e} relative RMS; full re-generation {full_ms} ms; {}; trace {trace_bytes} bytes",
        cost_rows
            .iter()
            .map(|(k, check)| format!("K = {k}: {check} ms ({:.2}×)", check / full_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
