//! `genmint models`: list the models of a data dir, print a model directory's hash (what the
//! chain records and peers advertise), import a single-file `.safetensors` checkpoint as a model
//! directory (`models import`; the conversion is `genmint_model_runtime::import_checkpoint`'s),
//! evaluate a model on its held-out prompts (`models eval`; the metrics are
//! `genmint_model_runtime::eval`'s), and time it or write a random SD-shaped one to time
//! (`models bench`, `models random`: `models_bench`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Subcommand};
use genmint_model_runtime::eval::{self, HeldoutPrompt, RetrievalSet};
use genmint_model_runtime::{
    Control, DEFAULT_MODEL_NAME, DeviceChoice, GenerationParams, Generator, ImportOptions, ImportProgress,
    ImportStage, ModelHash, ModelKind, PredictionType, RandomShape, Rgb8Image, SchedulerKind,
    import_checkpoint, install_default_model, load_model, minilm_dir, model_manifest,
};

use crate::devnet::{tools_dir, tools_python_dir};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the model directories under <data dir>/models with their kind, name and hash.
    List,
    /// Print the model hash of a model directory.
    Hash {
        /// Model directory (diffusers layout plus genmint-model.json).
        dir: PathBuf,
    },
    /// Import a single-file checkpoint (.safetensors with the original SD names, as A1111,
    /// ComfyUI and Civitai use) as a model directory. .ckpt files are refused: they can run code.
    Import(ImportArgs),
    /// Evaluate a model on its held-out prompts: adherence, diversity, speed, determinism.
    Eval(EvalArgs),
    /// Time generations of a model on a device in a dtype: s/image and it/s, as JSON lines.
    Bench(super::models_bench::BenchArgs),
    /// Write a model of SD 1.5 or SDXL shapes with random weights (f16), to measure speed on.
    Random {
        /// sd15 or sdxl.
        #[arg(long)]
        shape: RandomShape,
        /// Output model directory.
        dir: PathBuf,
    },
    /// Print the pixel digest of one generation (used by `eval` to compare thread counts).
    #[command(hide = true)]
    Digest {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        sampling: Sampling,
    },
}

/// How a generation is sampled: the model's steps, guidance and scheduler unless given.
#[derive(Debug, Clone, Copy, Args)]
pub struct Sampling {
    /// Classifier-free guidance [default: the model's].
    #[arg(long)]
    pub guidance: Option<f32>,
    /// Denoising steps [default: the model's].
    #[arg(long)]
    pub steps: Option<u32>,
    /// Scheduler: ddim, euler, euler_a, dpmpp_2m, dpmpp_2m_karras or lcm [default: the model's].
    #[arg(long)]
    pub scheduler: Option<SchedulerKind>,
}

impl Sampling {
    /// The same settings as command-line arguments.
    fn to_args(self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(scheduler) = self.scheduler {
            args.extend(["--scheduler".to_string(), scheduler.to_string()]);
        }
        if let Some(guidance) = self.guidance {
            args.extend(["--guidance".to_string(), guidance.to_string()]);
        }
        if let Some(steps) = self.steps {
            args.extend(["--steps".to_string(), steps.to_string()]);
        }
        args
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The checkpoint, e.g. v1-5-pruned-emaonly.safetensors.
    pub file: PathBuf,
    /// Model kind: sd15 (SD 1.x and its fine-tunes), sd21 (SD 2.x), sdxl (SDXL base and its
    /// fine-tunes), sd_turbo (SDXL Turbo), or tiny / tiny_xl for test-size checkpoints
    /// [default: inferred from the tensors].
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<ModelKind>,
    /// Display name recorded in genmint-model.json [default: the file name without .safetensors].
    #[arg(long)]
    pub name: Option<String>,
    /// The tokenizer/ folder of the model's diffusers release (tokenizer_config.json with
    /// vocab.json and merges.txt, or tokenizer.json): a checkpoint carries no tokenizer.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// SDXL's second tokenizer: the tokenizer_2/ folder of the release (it pads with "!").
    #[arg(long)]
    pub tokenizer_2: Option<PathBuf>,
    /// A diffusers folder of the same architecture whose unet/, vae/, text_encoder/ (SDXL: also
    /// text_encoder_2/ and model_index.json) and scheduler/ configs are used instead of the
    /// release's (and whose tokenizer/ and tokenizer_2/ are used when not given).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What the UNet predicts: v (SD 2.x 768-px models such as stable-diffusion-2-1) or epsilon
    /// (SD 1.x, SD 2.x base models, SDXL). Required for SD 2.x without --config, whose tensors do
    /// not tell [default for SD 1.x and SDXL: epsilon].
    #[arg(long, value_parser = parse_prediction)]
    pub prediction: Option<PredictionType>,
    /// Output model directory [default: <data dir>/models/<name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_prediction(value: &str) -> Result<PredictionType, String> {
    match value {
        "v" | "v_prediction" => Ok(PredictionType::V),
        "epsilon" | "eps" => Ok(PredictionType::Epsilon),
        _ => Err(format!("{value:?} is not a prediction type (v or epsilon)")),
    }
}

fn parse_kind(value: &str) -> Result<ModelKind, String> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| format!("{value:?} is not a model kind (sd15, sd21, sdxl, sd_turbo, tiny, tiny_xl)"))
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory [default: <data dir>/models/default, with the default model installed
    /// there if it is empty].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Held-out prompts [default: heldout.json in the model directory].
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// Folder with the training run's retrieval.bin [default: the tools folder's
    /// train-runs/genmint-emoji-32].
    #[arg(long)]
    pub retrieval: Option<PathBuf>,
    /// Where to write the contact sheet (the first 64 held-out images, 8 per row, twice the size).
    #[arg(long, default_value = "contact-sheet.png")]
    pub out: PathBuf,
    /// Evaluate only the first N held-out prompts [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// How every generation is sampled.
    #[command(flatten)]
    pub sampling: Sampling,
    /// Seed of every held-out generation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompts for the diversity measure (the first ones of the held-out set).
    #[arg(long, default_value_t = 4)]
    pub diversity_prompts: usize,
    /// Seeds per diversity prompt.
    #[arg(long, default_value_t = 8)]
    pub diversity_seeds: u64,
}

pub fn run(data_dir: &Path, command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::List => list(data_dir),
        ModelsCommand::Hash { dir } => {
            println!("{}", genmint_model_runtime::model_hash(&dir)?);
            Ok(())
        }
        ModelsCommand::Import(args) => import(data_dir, args),
        ModelsCommand::Eval(args) => evaluate(data_dir, args),
        ModelsCommand::Bench(args) => super::models_bench::bench(args),
        ModelsCommand::Random { shape, dir } => super::models_bench::random(shape, dir),
        ModelsCommand::Digest { model, prompt, seed, sampling } => {
            let mut generator = load_model(&model, DeviceChoice::Cpu)?;
            let image = generate(generator.as_mut(), &prompt, seed, sampling)?;
            println!("{}", hex::encode(image.pixel_digest()));
            Ok(())
        }
    }
}

/// Assembles the default model in `dest` from the repository's files and the MiniLM text encoder
/// that `scripts/setup.sh` installs.
pub fn install_default(dest: &Path) -> Result<ModelHash> {
    let text_encoder = minilm_dir(&tools_python_dir());
    if !text_encoder.join("model.safetensors").is_file() {
        bail!(
            "the default model's text encoder (all-MiniLM-L6-v2) is not in {}: run scripts/setup.sh \
             (or set GENMINT_TOOLS to its tools folder)",
            text_encoder.display()
        );
    }
    install_default_model(dest, &text_encoder)
        .with_context(|| format!("installing the default model {DEFAULT_MODEL_NAME} into {}", dest.display()))
}

/// Whether `dir` is missing or has no entries.
pub fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()).unwrap_or(true)
}

/// `models import`: converts the checkpoint, reporting progress on stderr, and prints the model
/// directory and its hash.
fn import(data_dir: &Path, args: ImportArgs) -> Result<()> {
    let out = match &args.out {
        Some(out) => out.clone(),
        None => {
            let stem = args.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            data_dir.join("models").join(dir_name(args.name.as_deref().unwrap_or(&stem)))
        }
    };
    let options = ImportOptions {
        kind: args.kind,
        name: args.name,
        tokenizer: args.tokenizer,
        tokenizer_2: args.tokenizer_2,
        configs: args.config,
        prediction: args.prediction,
    };
    let mut shown = None;
    let report = import_checkpoint(&args.file, &out, &options, &mut |p| report_progress(p, &mut shown))?;
    let ignored: Vec<String> = report.ignored.iter().map(|(group, n)| format!("{group} ({n})")).collect();
    eprintln!(
        "imported {} as {} ({} tensors{})",
        report.name,
        report.kind,
        report.tensors,
        if ignored.is_empty() { String::new() } else { format!("; left out: {}", ignored.join(", ")) }
    );
    eprintln!("source sha256 {} (AutoV2 {})", report.source.sha256, report.source.autov2);
    println!("{} {}", out.display(), report.hash);
    Ok(())
}

/// Prints a progress line on stderr at every 10% of each stage.
fn report_progress(progress: ImportProgress, shown: &mut Option<(ImportStage, u64)>) {
    let tenth = (progress.done * 10).checked_div(progress.total).unwrap_or(10);
    if *shown == Some((progress.stage, tenth)) {
        return;
    }
    *shown = Some((progress.stage, tenth));
    let verb = match progress.stage {
        ImportStage::Hashing => "hashing",
        ImportStage::Writing => "writing",
    };
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    eprintln!("{verb} {:>6.0} / {:.0} MiB", mib(progress.done), mib(progress.total));
}

/// The default model directory name: the model's name, with anything but letters, digits, `.`,
/// `-` and `_` replaced by `-`.
fn dir_name(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' })
        .collect();
    if name.is_empty() || name.starts_with('.') { format!("model{name}") } else { name }
}

fn list(data_dir: &Path) -> Result<()> {
    let models = data_dir.join("models");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&models) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", models.display())),
    };
    dirs.sort();
    if dirs.is_empty() {
        println!("no models in {} (`genmint init` installs the default model)", models.display());
        return Ok(());
    }
    for dir in dirs {
        let label = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match model_manifest(&dir) {
            Ok(manifest) => {
                println!(
                    "{label:<12} {:<14} {:<24} {}",
                    manifest.kind.as_str(),
                    manifest.model.name,
                    manifest.hash()
                )
            }
            Err(e) => println!("{label:<12} (not a usable model: {e})"),
        }
    }
    Ok(())
}

/// One generation at the model's default size.
fn generate(generator: &mut dyn Generator, prompt: &str, seed: u64, sampling: Sampling) -> Result<Rgb8Image> {
    let limits = generator.descriptor().limits.clone();
    let params = GenerationParams {
        prompt: prompt.to_owned(),
        negative_prompt: String::new(),
        seed,
        width: limits.default_width,
        height: limits.default_height,
        steps: sampling.steps.unwrap_or(limits.default_steps),
        guidance: sampling.guidance.unwrap_or(limits.default_guidance),
        scheduler: sampling.scheduler.unwrap_or(limits.default_scheduler),
    };
    Ok(generator.generate(&params, &mut |_| Control::Continue)?)
}

fn evaluate(data_dir: &Path, args: EvalArgs) -> Result<()> {
    let model_dir = match &args.model {
        Some(dir) => dir.clone(),
        None => {
            let dir = data_dir.join("models/default");
            if is_empty_dir(&dir) {
                install_default(&dir)?;
            }
            dir
        }
    };
    let heldout_path = args.heldout.clone().unwrap_or_else(|| model_dir.join("heldout.json"));
    let retrieval_path = args
        .retrieval
        .clone()
        .unwrap_or_else(|| tools_dir().join("train-runs").join(DEFAULT_MODEL_NAME))
        .join("retrieval.bin");
    let mut prompts = eval::read_heldout(&heldout_path)?;
    if let Some(limit) = args.limit {
        prompts.truncate(limit.max(2));
    }
    let retrieval = RetrievalSet::read(&retrieval_path)
        .with_context(|| "retrieval.bin is written by the training run (model-runtime/training)")?;
    let mut generator = load_model(&model_dir, DeviceChoice::Cpu)?;
    print_settings(generator.descriptor(), &args, &retrieval);
    let started = Instant::now();
    let images = generate_all(generator.as_mut(), &prompts, &args)?;
    let seconds_per_image = started.elapsed().as_secs_f64() / images.len() as f64;
    print_adherence(&prompts, &images, &retrieval, &args)?;
    print_diversity(generator.as_mut(), &prompts, &args)?;
    println!("(c) speed: {seconds_per_image:.2} s per image (wall clock, mean over {} images)", images.len());
    check_determinism(generator.as_mut(), &model_dir, &prompts, &images, &args)
}

fn print_settings(
    descriptor: &genmint_model_runtime::ModelDescriptor,
    args: &EvalArgs,
    retrieval: &RetrievalSet,
) {
    let limits = &descriptor.limits;
    println!("model       {} ({}) {}", descriptor.name, descriptor.kind, descriptor.hash);
    println!(
        "settings    {}x{}, {} {} steps, guidance {}, seed {}, {} CPU threads",
        limits.default_width,
        limits.default_height,
        args.sampling.steps.unwrap_or(limits.default_steps),
        args.sampling.scheduler.unwrap_or(limits.default_scheduler),
        args.sampling.guidance.unwrap_or(limits.default_guidance),
        args.seed,
        cpu_threads()
    );
    println!(
        "retrieval   {} reference images of {} concepts; features: 16x16 box-downsampled RGB in [0,1], L2",
        retrieval.len(),
        retrieval.concept_count()
    );
}

/// One image per held-out prompt, with progress every ten.
fn generate_all(
    generator: &mut dyn Generator,
    prompts: &[HeldoutPrompt],
    args: &EvalArgs,
) -> Result<Vec<Rgb8Image>> {
    let mut images = Vec::with_capacity(prompts.len());
    for (index, prompt) in prompts.iter().enumerate() {
        images.push(generate(generator, &prompt.prompt, args.seed, args.sampling)?);
        if (index + 1) % 10 == 0 {
            eprintln!("generated {}/{}", index + 1, prompts.len());
        }
    }
    Ok(images)
}

/// (a) prompt adherence, and the contact sheet of the first 64 images.
fn print_adherence(
    prompts: &[HeldoutPrompt],
    images: &[Rgb8Image],
    retrieval: &RetrievalSet,
    args: &EvalArgs,
) -> Result<()> {
    println!();
    println!("(a) prompt adherence by nearest-neighbour retrieval (model vs random-prompt baseline)");
    for (kind, score) in eval::adherence(prompts, images, retrieval)? {
        let (m1, m5) = score.model.rates();
        let (b1, b5) = score.baseline.rates();
        println!(
            "    {kind:<9} {:>4} prompts   top-1 {:>5.1}% vs {:>5.1}%   top-5 {:>5.1}% vs {:>5.1}%",
            score.model.prompts,
            100.0 * m1,
            100.0 * b1,
            100.0 * m5,
            100.0 * b5
        );
    }
    let shown: Vec<Rgb8Image> = images.iter().take(64).cloned().collect();
    if let Some(sheet) = eval::contact_sheet(&shown, 8, 2) {
        std::fs::write(&args.out, crate::provenance::png::encode(&sheet)?)
            .with_context(|| format!("writing {}", args.out.display()))?;
        println!(
            "contact sheet ({} held-out prompts, seed {}): {}",
            shown.len(),
            args.seed,
            args.out.display()
        );
    }
    Ok(())
}

/// (b) diversity over seeds.
fn print_diversity(generator: &mut dyn Generator, prompts: &[HeldoutPrompt], args: &EvalArgs) -> Result<()> {
    println!(
        "(b) diversity over {} seeds (mean pairwise RMS pixel distance, distinct images)",
        args.diversity_seeds
    );
    for prompt in distinct_concepts(prompts, args.diversity_prompts) {
        let seeds = (0..args.diversity_seeds.max(2))
            .map(|seed| generate(generator, &prompt.prompt, seed, args.sampling))
            .collect::<Result<Vec<_>>>()?;
        let spread = eval::diversity(&seeds);
        println!(
            "    {:<44} {:.3}   {:>3.0}%",
            format!("{:?}", prompt.prompt),
            spread.mean_distance,
            100.0 * spread.distinct_fraction
        );
    }
    Ok(())
}

/// (d) determinism: again in this process, and in child processes with 1 and 2 threads.
fn check_determinism(
    generator: &mut dyn Generator,
    model_dir: &Path,
    prompts: &[HeldoutPrompt],
    images: &[Rgb8Image],
    args: &EvalArgs,
) -> Result<()> {
    let expected = hex::encode(images[0].pixel_digest());
    let rerun = prompts
        .iter()
        .zip(images)
        .take(4)
        .map(|(prompt, image)| Ok(generate(generator, &prompt.prompt, args.seed, args.sampling)? == *image))
        .collect::<Result<Vec<bool>>>()?;
    ensure!(rerun.iter().all(|&same| same), "a rerun in the same process gave different pixels");
    println!("(d) determinism: {} reruns identical; digest {expected}", rerun.len());
    for threads in ["1", "2"] {
        let digest = child_digest(model_dir, &prompts[0], args.seed, args.sampling, threads)?;
        ensure!(digest == expected, "with {threads} thread(s) the digest is {digest}, not {expected}");
        println!("    RAYON_NUM_THREADS={threads} in a child process: identical");
    }
    Ok(())
}

/// Up to `count` prompts with pairwise different concepts, in file order.
fn distinct_concepts(prompts: &[HeldoutPrompt], count: usize) -> Vec<&HeldoutPrompt> {
    let mut chosen: Vec<&HeldoutPrompt> = Vec::new();
    for prompt in prompts {
        if chosen.len() < count && chosen.iter().all(|c| c.concept != prompt.concept) {
            chosen.push(prompt);
        }
    }
    chosen
}

fn cpu_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
    })
}

/// The pixel digest of one generation in a fresh `genmint` process limited to `threads`.
fn child_digest(
    model: &Path,
    prompt: &HeldoutPrompt,
    seed: u64,
    sampling: Sampling,
    threads: &str,
) -> Result<String> {
    let exe = std::env::current_exe().context("locating the genmint binary")?;
    let mut command = Command::new(exe);
    command
        .args(["models", "digest", "--prompt", &prompt.prompt, "--seed", &seed.to_string(), "--model"])
        .arg(model)
        .args(sampling.to_args());
    let output =
        command.env("RAYON_NUM_THREADS", threads).output().context("running genmint models digest")?;
    ensure!(
        output.status.success(),
        "genmint models digest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_defaults_name_the_directory_after_the_file() {
        assert_eq!(dir_name("v1-5-pruned-emaonly"), "v1-5-pruned-emaonly");
        assert_eq!(dir_name("My Model (v2)"), "My-Model--v2-");
        assert_eq!(dir_name("../x"), "model..-x");
        assert_eq!(parse_kind("sd15").unwrap(), ModelKind::Sd15);
        assert!(parse_kind("sd3").unwrap_err().contains("sd15"));
        assert_eq!(parse_prediction("v").unwrap(), PredictionType::V);
        assert_eq!(parse_prediction("epsilon").unwrap(), PredictionType::Epsilon);
        assert!(parse_prediction("sample").unwrap_err().contains("v or epsilon"));
    }

    /// A pickle is refused as one, whatever else is missing: the first thing the operator must
    /// change is the file.
    #[test]
    fn a_pickle_is_refused_before_asking_for_a_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v1-5-pruned-emaonly.ckpt");
        std::fs::write(&file, b"PK").unwrap();
        let args = ImportArgs {
            file,
            kind: None,
            name: None,
            tokenizer: None,
            tokenizer_2: None,
            config: None,
            prediction: None,
            out: None,
        };
        let error = import(dir.path(), args).unwrap_err().to_string();
        assert!(error.contains("pickle") && !error.contains("tokenizer"), "{error}");
    }
}
