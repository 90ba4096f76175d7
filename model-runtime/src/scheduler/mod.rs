//! The denoising schedule: which timesteps to visit, how the sample is scaled on the way into the
//! model, and how one model output moves the sample one step. A [`Scheduler`] is built per
//! generation from the model's training schedule (`scheduler/scheduler_config.json`, read by
//! [`ScheduleConfig`]) and the request's scheduler name and step count.
//!
//! Each scheduler follows one diffusers class with its defaults (no thresholding, no churn):
//!
//! | name | diffusers class | module |
//! |---|---|---|
//! | `ddim` | `DDIMScheduler`, eta 0 | [`ddim`] |
//! | `euler` | `EulerDiscreteScheduler` | [`euler`] |
//! | `euler_a` | `EulerAncestralDiscreteScheduler` | [`euler`] |
//! | `dpmpp_2m` | `DPMSolverMultistepScheduler`, `dpmsolver++`, order 2 | [`dpm`] |
//! | `dpmpp_2m_karras` | the same with `use_karras_sigmas` | [`dpm`] |
//! | `lcm` | `LCMScheduler` | [`lcm`] |
//!
//! One generation, whatever the scheduler:
//!
//! ```text
//! seed ─► initial noise (chacha20-normal-v1, stream 0) × init_noise_sigma ─► sample
//! for each step i:  scale_model_input(i, sample) ─► model ─► output
//!                   step(i, output, sample, step noise i) ─► sample
//! ```
//!
//! Only `euler_a` and `lcm` use step noise; it is drawn from the request seed by
//! [`crate::noise::step_normal`] (stream `i + 1`), so the output stays a pure function of the
//! request. Schedule arithmetic (σ, λ, coefficients) runs in f64 on the f32 σ table diffusers
//! builds ([`ScheduleConfig::torch_sigmas`]); the tensors themselves are f32.

mod config;
pub(crate) mod ddim;
pub(crate) mod dpm;
pub(crate) mod euler;
pub(crate) mod lcm;
#[cfg(test)]
mod parity;

use candle_core::Tensor;

use crate::{RuntimeError, SchedulerKind, noise};
#[cfg(test)]
pub(crate) use config::BetaSchedule;
pub(crate) use config::{Prediction, ScheduleConfig, TimestepSpacing};

/// Moves a sample along a fixed list of timesteps.
pub(crate) trait Scheduler {
    /// The timesteps to run the model at, in order (descending). Whole numbers except for Euler's
    /// `linspace` spacing, whose timesteps are fractional (as f32, as diffusers has them).
    fn timesteps(&self) -> &[f64];

    /// What the initial noise is multiplied by (diffusers' `init_noise_sigma`).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The model's input at step `index` (diffusers' `scale_model_input`).
    fn scale_model_input(&self, _index: usize, sample: &Tensor) -> candle_core::Result<Tensor> {
        Ok(sample.clone())
    }

    /// The σ per timestep and the final one, for the schedulers that have them.
    #[cfg(test)]
    fn sigmas(&self) -> Option<&[f32]> {
        None
    }

    /// Whether a step depends on more than the sample (multistep solvers remember an earlier
    /// output): a latent trace then records [`Self::state`] beside each sample.
    fn carries_state(&self) -> bool {
        false
    }

    /// What the next step needs beyond the sample; `None` before the first step, and always for
    /// schedulers that carry nothing.
    fn state(&self) -> Option<&Tensor> {
        None
    }

    /// Starts from a recorded [`Self::state`], to replay one step on its own.
    fn restore_state(&mut self, _state: Tensor) {}

    /// The sample after step `index`, given the model output at `timesteps()[index]`. Steps run
    /// in order, once each: multistep solvers remember earlier outputs (a replay restores them
    /// first with [`Self::restore_state`]).
    fn step(
        &mut self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
        noise: &mut dyn StepNoise,
    ) -> candle_core::Result<Tensor>;
}

/// Where a stochastic scheduler's per-step noise comes from. The product draws it from the
/// request seed ([`SeededStepNoise`]); the parity tests feed diffusers' tensors instead.
pub(crate) trait StepNoise {
    /// Standard-normal noise shaped like `like`, for step `index`.
    fn draw(&mut self, index: usize, like: &Tensor) -> candle_core::Result<Tensor>;
}

/// Step noise by `chacha20-normal-v1`'s per-step streams (see [`crate::noise`]).
pub(crate) struct SeededStepNoise {
    pub seed: u64,
}

impl StepNoise for SeededStepNoise {
    fn draw(&mut self, index: usize, like: &Tensor) -> candle_core::Result<Tensor> {
        let values = noise::step_normal(self.seed, index as u64, like.elem_count());
        Tensor::from_vec(values, like.shape(), like.device())
    }
}

/// Whether `kind` can run on a model with this schedule. diffusers' ancestral Euler does not
/// implement sample prediction, so neither does ours.
pub(crate) fn supports(kind: SchedulerKind, config: &ScheduleConfig) -> bool {
    !(kind == SchedulerKind::EulerAncestral && config.prediction == Prediction::Sample)
}

/// Builds the scheduler `kind` for `steps` steps. `steps` must be in `1..=train_timesteps`, and
/// for `lcm` at most the config's `original_inference_steps` (refused otherwise).
pub(crate) fn build(
    kind: SchedulerKind,
    config: &ScheduleConfig,
    steps: u32,
) -> Result<Box<dyn Scheduler>, RuntimeError> {
    if !supports(kind, config) {
        return Err(RuntimeError::InvalidParameter {
            field: "scheduler",
            value: format!("{:?}", kind.as_str()),
            allowed: "a scheduler other than euler_a: this model predicts the clean sample".to_string(),
        });
    }
    Ok(match kind {
        SchedulerKind::Ddim => Box::new(ddim::schedule(config, steps)),
        SchedulerKind::Euler => Box::new(euler::schedule(config, steps, false)),
        SchedulerKind::EulerAncestral => Box::new(euler::schedule(config, steps, true)),
        SchedulerKind::DpmPp2m => Box::new(dpm::DpmPp2m::new(config, steps, false)),
        SchedulerKind::DpmPp2mKarras => Box::new(dpm::DpmPp2m::new(config, steps, true)),
        SchedulerKind::Lcm => Box::new(lcm::schedule(config, steps)?),
    })
}

/// A schedule whose every step is a fixed linear combination computed up front (DDIM, Euler plain
/// and ancestral, LCM): each scheduler's module builds its timesteps, step coefficients and, for
/// the σ-space ones, the σ that scale the model's input.
#[derive(Debug, Clone)]
pub(crate) struct LinearSchedule {
    pub timesteps: Vec<f64>,
    pub steps: Vec<LinearStep>,
    /// One σ per timestep, then 0 (Euler): the model sees `sample / √(σ² + 1)`.
    pub sigmas: Option<Vec<f32>>,
    pub init_noise_sigma: f64,
}

impl Scheduler for LinearSchedule {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, index: usize, sample: &Tensor) -> candle_core::Result<Tensor> {
        match &self.sigmas {
            Some(sigmas) => {
                let sigma = sigmas[index];
                sample.affine(1.0 / f64::from((sigma * sigma + 1.0).sqrt()), 0.0)
            }
            None => Ok(sample.clone()),
        }
    }

    #[cfg(test)]
    fn sigmas(&self) -> Option<&[f32]> {
        self.sigmas.as_deref()
    }

    fn step(
        &mut self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
        noise: &mut dyn StepNoise,
    ) -> candle_core::Result<Tensor> {
        self.steps[index].apply(index, model_output, sample, noise)
    }
}

/// The sample-space linear step `sample · sample_coef + output · output_coef`, plus
/// `noise_coef` times fresh step noise when that is not zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LinearStep {
    pub sample: f64,
    pub output: f64,
    pub noise: f64,
}

impl LinearStep {
    fn apply(
        self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
        noise: &mut dyn StepNoise,
    ) -> candle_core::Result<Tensor> {
        let next = (sample.affine(self.sample, 0.0)? + model_output.affine(self.output, 0.0)?)?;
        if self.noise == 0.0 {
            return Ok(next);
        }
        next + noise.draw(index, sample)?.affine(self.noise, 0.0)?
    }
}

/// Step noise for schedulers that draw none (and tests of them).
#[cfg(test)]
pub(crate) struct NoNoise;

#[cfg(test)]
impl StepNoise for NoNoise {
    fn draw(&mut self, index: usize, _like: &Tensor) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!("step {index} asked for noise")))
    }
}
