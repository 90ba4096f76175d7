//! A model's training noise schedule (`scheduler/scheduler_config.json`) and the tables every
//! scheduler derives from it: `ᾱ_t` in f64 (DDIM), the σ table as diffusers' torch code computes
//! it in f32 (the σ-based schedulers), and the three timestep spacings.

use serde_json::Value;

use crate::configs::Fields;

/// How betas grow over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BetaSchedule {
    Linear,
    ScaledLinear,
    SquaredCosCapV2,
}

/// What the denoising model predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Prediction {
    Epsilon,
    /// v-prediction (`v = √ᾱ·ε − √(1−ᾱ)·x₀`).
    Velocity,
    Sample,
}

/// Where the inference timesteps sit among the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimestepSpacing {
    Leading,
    Trailing,
    Linspace,
}

/// The training noise schedule of a model, from diffusers' `scheduler_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleConfig {
    pub train_timesteps: u32,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub prediction: Prediction,
    /// `None` when the file does not say: each diffusers class then uses its own default
    /// (`leading` for DDIM, `linspace` for Euler and DPM-Solver), and so does each scheduler here.
    pub spacing: Option<TimestepSpacing>,
    pub steps_offset: u32,
    pub set_alpha_to_one: bool,
    /// LCM only: the length of the distillation schedule its timesteps are picked from
    /// (`original_inference_steps`, diffusers' default 50).
    pub original_inference_steps: u32,
    /// LCM only: what timesteps are multiplied by in the consistency boundary condition
    /// (`timestep_scaling`, diffusers' default 10).
    pub timestep_scaling: f64,
}

impl ScheduleConfig {
    /// Reads a diffusers scheduler config. Missing keys take diffusers' defaults; the scheduler
    /// class named in the file does not matter (SD ships PNDM or Euler configs, and diffusers
    /// builds any scheduler from them the same way). Keys that only select a variant of one class
    /// (`use_karras_sigmas`, `interpolation_type`, …) are not read: the request's scheduler name
    /// fixes the variant. Returns a reason when the file asks for something not done here.
    pub fn from_json(json: &Value) -> Result<Self, String> {
        let f = Fields(json);
        for (key, default) in
            [("clip_sample", true), ("thresholding", false), ("rescale_betas_zero_snr", false)]
        {
            if f.bool(key, default)? {
                return Err(format!("{key} = true is not supported (DDIM here runs without it)"));
            }
        }
        if f.get("trained_betas").is_some() {
            return Err("trained_betas is not supported".to_string());
        }
        let spacing = match f.get("timestep_spacing") {
            None => None,
            Some(_) => Some(named(&f, "timestep_spacing", "leading", &SPACINGS)?),
        };
        let config = Self {
            beta_schedule: named(&f, "beta_schedule", "linear", &BETA_SCHEDULES)?,
            prediction: named(&f, "prediction_type", "epsilon", &PREDICTIONS)?,
            spacing,
            train_timesteps: f.u32("num_train_timesteps", 1000)?,
            beta_start: f.f64("beta_start", 0.0001)?,
            beta_end: f.f64("beta_end", 0.02)?,
            steps_offset: f.u32("steps_offset", 0)?,
            set_alpha_to_one: f.bool("set_alpha_to_one", true)?,
            original_inference_steps: f.u32("original_inference_steps", 50)?,
            timestep_scaling: f.f64("timestep_scaling", 10.0)?,
        };
        if config.train_timesteps < 2 {
            return Err("num_train_timesteps must be at least 2".to_string());
        }
        if !(0.0 < config.beta_start && config.beta_start <= config.beta_end && config.beta_end < 1.0) {
            return Err(format!(
                "betas must satisfy 0 < beta_start <= beta_end < 1, found {} and {}",
                config.beta_start, config.beta_end
            ));
        }
        if !(1..=config.train_timesteps).contains(&config.original_inference_steps) {
            return Err(format!(
                "original_inference_steps must be in 1..={}, found {}",
                config.train_timesteps, config.original_inference_steps
            ));
        }
        if !config.timestep_scaling.is_finite() {
            return Err(format!("timestep_scaling must be finite, found {}", config.timestep_scaling));
        }
        Ok(config)
    }

    /// `β_t` for every training timestep, in f64.
    fn betas(&self) -> impl Iterator<Item = f64> + '_ {
        let steps = self.train_timesteps as usize;
        let last = (steps - 1) as f64;
        (0..steps).map(move |i| match self.beta_schedule {
            BetaSchedule::Linear => self.beta_start + (self.beta_end - self.beta_start) * (i as f64 / last),
            BetaSchedule::ScaledLinear => {
                let (start, end) = (self.beta_start.sqrt(), self.beta_end.sqrt());
                let root = start + (end - start) * (i as f64 / last);
                root * root
            }
            BetaSchedule::SquaredCosCapV2 => squared_cos_beta(i, steps),
        })
    }

    /// `ᾱ_t` for every training timestep, all in f64 (what DDIM here has always used).
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let mut product = 1.0;
        self.betas()
            .map(|beta| {
                product *= 1.0 - beta;
                product
            })
            .collect()
    }

    /// `σ_t = √((1 − ᾱ_t)/ᾱ_t)` for every training timestep, as diffusers' σ-based schedulers
    /// compute it in torch f32: betas from `torch.linspace(…, dtype=float32)` (whose CPU kernel
    /// computes `start + step·i` below the halfway index and `end − step·(n−1−i)` above it, each
    /// as one fused multiply-add), squared in f32 for `scaled_linear`; `α = 1 − β` in f32; `ᾱ` a
    /// running product accumulated in f64 and rounded to f32 at every step (torch's CPU
    /// `cumprod`); then `σ` with f32 subtraction, division and square root. Near `t = 0`,
    /// `1 − ᾱ` is about 1e-3, so the f32 rounding of `ᾱ` moves `σ` by some 1e-5 relative: the
    /// schedule has to be computed this way to agree with diffusers.
    pub fn torch_sigmas(&self) -> Vec<f32> {
        self.torch_alphas_cumprod()
            .into_iter()
            .map(|alpha_bar| ((1.0f32 - alpha_bar) / alpha_bar).sqrt())
            .collect()
    }

    /// `ᾱ_t` for every training timestep as diffusers' torch code has it in f32 (LCM reads it
    /// directly); see [`Self::torch_sigmas`].
    pub fn torch_alphas_cumprod(&self) -> Vec<f32> {
        let n = self.train_timesteps as usize;
        let betas: Vec<f32> = match self.beta_schedule {
            BetaSchedule::Linear => torch_linspace(self.beta_start as f32, self.beta_end as f32, n),
            BetaSchedule::ScaledLinear => {
                let roots = torch_linspace(self.beta_start.sqrt() as f32, self.beta_end.sqrt() as f32, n);
                roots.into_iter().map(|r| r * r).collect()
            }
            // diffusers computes these in f64 and then makes an f32 tensor of them.
            BetaSchedule::SquaredCosCapV2 => (0..n).map(|i| squared_cos_beta(i, n) as f32).collect(),
        };
        let mut product = 1.0f64;
        betas
            .into_iter()
            .map(|beta| {
                product *= f64::from(1.0f32 - beta);
                product as f32
            })
            .collect()
    }

    /// The `steps` timesteps diffusers' DDIM visits, descending.
    pub fn timesteps(&self, steps: u32) -> Vec<u32> {
        let (train, n) = (self.train_timesteps, steps);
        match self.spacing.unwrap_or(TimestepSpacing::Leading) {
            TimestepSpacing::Leading => self.leading(n, train / n).map(|t| t as u32).collect(),
            TimestepSpacing::Trailing => self.trailing(n).map(|t| t as u32).collect(),
            TimestepSpacing::Linspace => {
                linspace(f64::from(train - 1), n).rev().map(|t| t.round_ties_even() as u32).collect()
            }
        }
    }

    /// `(i · ratio + steps_offset)` for `i` from `count − 1` down to 0: numpy's
    /// `arange(count) * ratio` reversed, plus the offset.
    pub fn leading(&self, count: u32, ratio: u32) -> impl Iterator<Item = f64> + '_ {
        (0..count).rev().map(move |i| f64::from(i * ratio + self.steps_offset))
    }

    /// `round(T − i · T/n) − 1` for `i` in `0..n`, rounding half to even as numpy does.
    pub fn trailing(&self, n: u32) -> impl Iterator<Item = f64> {
        let train = f64::from(self.train_timesteps);
        let ratio = train / f64::from(n);
        (0..n).map(move |i| (train - f64::from(i) * ratio).round_ties_even() - 1.0)
    }
}

/// numpy's `linspace(0, last, count)`: `i · (last / (count − 1))` in f64, the last point exactly
/// `last`; a single point is 0.
pub(crate) fn linspace(last: f64, count: u32) -> impl DoubleEndedIterator<Item = f64> {
    let step = if count > 1 { last / f64::from(count - 1) } else { 0.0 };
    (0..count).map(move |i| if i + 1 == count && count > 1 { last } else { f64::from(i) * step })
}

/// torch's CPU `linspace(start, end, n, dtype=float32)`; see [`ScheduleConfig::torch_sigmas`].
fn torch_linspace(start: f32, end: f32, n: usize) -> Vec<f32> {
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((n - 1 - i) as f32, end) }
        })
        .collect()
}

/// The `squaredcos_cap_v2` beta at training step `i` of `steps` (diffusers' `betas_for_alpha_bar`).
fn squared_cos_beta(i: usize, steps: usize) -> f64 {
    let alpha_bar = |t: f64| {
        let c = libm::cos((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2);
        c * c
    };
    let (t1, t2) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
}

/// diffusers' names for the choices of `beta_schedule`, `prediction_type` and `timestep_spacing`.
const BETA_SCHEDULES: [(&str, BetaSchedule); 3] = [
    ("linear", BetaSchedule::Linear),
    ("scaled_linear", BetaSchedule::ScaledLinear),
    ("squaredcos_cap_v2", BetaSchedule::SquaredCosCapV2),
];
const PREDICTIONS: [(&str, Prediction); 3] = [
    ("epsilon", Prediction::Epsilon),
    ("v_prediction", Prediction::Velocity),
    ("sample", Prediction::Sample),
];
const SPACINGS: [(&str, TimestepSpacing); 3] = [
    ("leading", TimestepSpacing::Leading),
    ("trailing", TimestepSpacing::Trailing),
    ("linspace", TimestepSpacing::Linspace),
];

/// The choice that the name at `key` (or `default`) stands for among `choices`.
fn named<T: Copy>(f: &Fields<'_>, key: &str, default: &str, choices: &[(&str, T)]) -> Result<T, String> {
    let name = f.str(key, default)?;
    choices
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, choice)| choice)
        .ok_or_else(|| format!("unsupported {key} {name:?}"))
}

/// numpy's `interp(x, arange(len(table)), table)`: the table's value at a whole `x`, else the
/// straight line between its two neighbours, in f64; clamped to the ends.
pub(crate) fn interp(table: &[f32], x: f64) -> f64 {
    let last = table.len() - 1;
    if x <= 0.0 {
        return f64::from(table[0]);
    }
    let j = x.floor() as usize;
    if j >= last {
        return f64::from(table[last]);
    }
    let (low, high) = (f64::from(table[j]), f64::from(table[j + 1]));
    if x == j as f64 { low } else { (high - low) * (x - j as f64) + low }
}
