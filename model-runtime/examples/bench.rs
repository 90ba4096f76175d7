//! genmint's side of the inference benchmark (`scripts/bench-inference.sh`): loads a model
//! directory on the CPU and times whole generations (and the text encoder alone), several runs, one JSON object per line on stdout, so the script can set them
//! beside diffusers' figures for the same weights, noise and settings.
//!
//! `cargo run --release -p genmint-model-runtime --example bench -- DIR [--runs N] [--steps N]
//! [--guidance G] [--size PX] [--prompt TEXT] [--negative TEXT] [--seed S] [--pixels-out FILE]`. Threads:
//! `RAYON_NUM_THREADS` (candle's pool). With `--pixels-out`, run r's RGB8 pixels are written to
//! `FILE.r.rgb` for comparison with diffusers'. With `--batch B`, each run is B requests (seeds in
//! turn) generated as one batch, and `image_s` is the run's time divided by B. With one request a
//! run, `step_s` is the median time between consecutive denoising steps (a warm UNet pass, the
//! scheduler and guidance) and `decode_s` the time from the last step to the image (the decoder).

use std::path::PathBuf;
use std::time::Instant;

use genmint_model_runtime::{Control, GenerationParams, SchedulerKind, load_stages};

struct Args {
    dir: PathBuf,
    runs: usize,
    params: GenerationParams,
    pixels_out: Option<PathBuf>,
    batch: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next().ok_or("usage: bench DIR [--runs N] [--steps N] [--guidance G] [--size PX]")?,
    );
    let mut params = GenerationParams {
        prompt: "grinning face with smiling eyes".into(),
        negative_prompt: String::new(),
        seed: 1,
        width: 32,
        height: 32,
        steps: 20,
        guidance: 3.0,
        scheduler: SchedulerKind::Ddim,
    };
    let mut runs = 5;
    let mut pixels_out = None;
    let mut batch = 1;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<f64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--runs" => runs = number()? as usize,
            "--steps" => params.steps = number()? as u32,
            "--guidance" => params.guidance = number()? as f32,
            "--size" => (params.width, params.height) = (number()? as u32, number()? as u32),
            "--prompt" => params.prompt = value,
            "--negative" => params.negative_prompt = value,
            "--seed" => params.seed = number()? as u64,
            "--pixels-out" => pixels_out = Some(PathBuf::from(value)),
            "--batch" => batch = (number()? as usize).max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args { dir, runs, params, pixels_out, batch })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let started = Instant::now();
    let mut stages = load_stages(&args.dir)?;
    println!(r#"{{"load_s":{:.4}}}"#, started.elapsed().as_secs_f64());
    for run in 0..args.runs {
        let first_seed = args.params.seed + (run * args.batch) as u64;
        let batch: Vec<GenerationParams> = (0..args.batch as u64)
            .map(|i| GenerationParams { seed: first_seed + i, ..args.params.clone() })
            .collect();
        let timed = Instant::now();
        stages.context(&batch[0])?;
        let text = timed.elapsed().as_secs_f64();
        let (timed, cpu) = (Instant::now(), cpu_seconds());
        let mut stepped = Vec::with_capacity(args.params.steps as usize);
        let images = if args.batch == 1 {
            let image = stages.generator().generate(&batch[0], &mut |_| {
                stepped.push(Instant::now());
                Control::Continue
            })?;
            vec![image]
        } else {
            stages
                .generator()
                .generate_batch(&batch, &mut |_, _| Control::Continue)
                .into_iter()
                .collect::<Result<_, _>>()?
        };
        let total = timed.elapsed().as_secs_f64() / args.batch as f64;
        let stages_s = stage_times(&stepped);
        let cpu = cpu_seconds().zip(cpu).map_or(String::new(), |(end, start)| {
            format!(r#","cpu_s":{:.3}"#, (end - start) / args.batch as f64)
        });
        if let Some(out) = &args.pixels_out {
            std::fs::write(out.with_extension(format!("{run}.rgb")), &images[0].pixels)?;
        }
        let digests: Vec<String> =
            images.iter().map(|image| format!("{:?}", hex::encode(image.pixel_digest()))).collect();
        println!(
            r#"{{"run":{run},"batch":{},"text_s":{text:.4},"image_s":{total:.4}{cpu}{stages_s},"pixel_digests":[{}]}}"#,
            args.batch,
            digests.join(",")
        );
    }
    Ok(())
}

/// `,"step_s":…,"decode_s":…` from the instants the steps ended (nothing with fewer than two).
fn stage_times(stepped: &[Instant]) -> String {
    let (Some(last), true) = (stepped.last(), stepped.len() >= 2) else { return String::new() };
    let mut steps: Vec<f64> = stepped.windows(2).map(|pair| (pair[1] - pair[0]).as_secs_f64()).collect();
    steps.sort_by(f64::total_cmp);
    let middle = steps.len() / 2;
    let median = if steps.len() % 2 == 1 { steps[middle] } else { (steps[middle - 1] + steps[middle]) / 2.0 };
    format!(r#","step_s":{median:.4},"decode_s":{:.4}"#, last.elapsed().as_secs_f64())
}

/// CPU time of this process so far (user and system, all threads), where the system says it
/// (Linux): on a busy machine it varies less than the wall clock.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<f64>().ok()? + fields.next()?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
