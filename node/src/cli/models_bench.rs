//! `genmint models bench` and `genmint models random`: how fast a model generates on a device in
//! a dtype (the GPU benchmark, `scripts/gpu-bench.sh`, runs them on the `cuda` build), and models
//! of SD 1.5 or SDXL shapes with random weights to measure it on where no weights are at hand.
//!
//! The bench prints one JSON object per line on stdout: the load (`load_s`, with the model's
//! envelope), then per run the whole generation (`image_s`) and the denoising loop's speed
//! (`it_s`: UNet passes per second between the first and last step, so text encoding and
//! decoding are not counted); the first run warms the device up and is reported as `warmup`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use genmint_model_runtime::{
    ComputeDtype, Control, GenerationParams, RandomShape, SchedulerKind, load_model_with, write_random_model,
};

use crate::server::parse_device;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model directory.
    pub dir: PathBuf,
    /// cpu or cuda:N (a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The UNet's arithmetic: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: ComputeDtype,
    /// Image side in pixels [default: the model's default size].
    #[arg(long)]
    pub size: Option<u32>,
    /// Denoising steps (DDIM).
    #[arg(long, default_value_t = 20)]
    pub steps: u32,
    /// Classifier-free guidance (above 1 runs the unconditional pass too, batch 2).
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f32,
    /// Timed runs after the warm-up run.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Only load the model and print the load line (checks that it loads).
    #[arg(long)]
    pub load_only: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let device = parse_device(&args.device).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut generator = load_model_with(&args.dir, device, args.dtype)
        .with_context(|| format!("loading {} on {}", args.dir.display(), args.device))?;
    let descriptor = generator.descriptor().clone();
    println!(
        "{}",
        serde_json::json!({
            "load_s": round(started.elapsed().as_secs_f64()),
            "model": descriptor.name,
            "device": args.device,
            "dtype": descriptor.envelope.dtype,
            "engine": descriptor.envelope.engine,
        })
    );
    if args.load_only {
        return Ok(());
    }
    let size = args.size.unwrap_or(descriptor.limits.default_width);
    for run in 0..=args.runs {
        let params = GenerationParams {
            prompt: "a red fox in a snow forest, watercolor".into(),
            negative_prompt: "blurry, lowres".into(),
            seed: u64::from(run) + 1,
            width: size,
            height: size,
            steps: args.steps,
            guidance: args.guidance,
            scheduler: SchedulerKind::Ddim,
        };
        let mut steps: Vec<Instant> = Vec::with_capacity(args.steps as usize);
        let timed = Instant::now();
        let image = generator.generate(&params, &mut |_| {
            steps.push(Instant::now());
            Control::Continue
        })?;
        let image_s = timed.elapsed().as_secs_f64();
        let it_s = match (steps.first(), steps.last()) {
            (Some(first), Some(last)) if steps.len() > 1 => {
                (steps.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
            }
            _ => f64::NAN,
        };
        println!(
            "{}",
            serde_json::json!({
                "run": run,
                "warmup": run == 0,
                "size": size,
                "steps": args.steps,
                "image_s": round(image_s),
                "it_s": round(it_s),
                "pixel_digest": hex::encode(image.pixel_digest()),
            })
        );
    }
    Ok(())
}

fn round(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}

/// `models random`: writes the model and prints its directory.
pub fn random(shape: RandomShape, dir: PathBuf) -> Result<()> {
    let started = Instant::now();
    write_random_model(&dir, shape).with_context(|| format!("writing {}", dir.display()))?;
    eprintln!("wrote {} in {:.1} s", dir.display(), started.elapsed().as_secs_f64());
    println!("{}", dir.display());
    Ok(())
}
