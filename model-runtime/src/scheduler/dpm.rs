//! DPM-Solver++(2M) (diffusers' `DPMSolverMultistepScheduler` with `algorithm_type =
//! "dpmsolver++"`, `solver_order = 2`, `solver_type = "midpoint"`, `lower_order_final`,
//! `final_sigmas_type = "zero"`), optionally on Karras σ (`use_karras_sigmas`).
//!
//! - Timesteps for `n` steps, `linspace` when the config names no spacing: `linspace`
//!   `round(i·(T−1)/n)` for `i` from `n` down to 1; `leading` `i·(T div (n+1)) + steps_offset`
//!   for `i` from `n` down to 1; `trailing` `round(T − i·T/n) − 1`. σ is the training σ table
//!   ([`ScheduleConfig::torch_sigmas`]) at those timesteps.
//! - Karras: `σ_i = (σ_max^(1/7) + i/(n−1)·(σ_min^(1/7) − σ_max^(1/7)))⁷` (f64) between the
//!   table's ends, and each timestep is the table position of `ln σ_i` (linear between the two
//!   neighbouring `ln σ` of the f32 table), rounded half to even.
//! - A final σ of 0 is appended and all σ are rounded to f32. No input scaling, initial noise
//!   sigma 1.
//! - With `α = 1/√(σ²+1)`, `σ_t = σ·α`, `λ = ln α − ln σ_t`: each output becomes
//!   `x̂₀` (`(x − σ_t·ε)/α`, `α·x − σ_t·v`, or the output). With `h = λ_next − λ`, the first
//!   step and the last one (σ_next = 0) are first order,
//!   `x' = (σ_t,next/σ_t)·x − α_next·(e^(−h) − 1)·x̂₀`; the others add the midpoint correction
//!   `− ½·α_next·(e^(−h) − 1)·(x̂₀ − x̂₀_prev)/r` with `r = (λ − λ_prev)/h`.
//!
//! The scalars are f64 (`libm`'s `ln`, `exp`, `pow`, so they do not depend on the platform); the
//! tensors are f32.

use candle_core::Tensor;

use super::config::{interp, linspace};
use super::{LinearStep, Prediction, ScheduleConfig, Scheduler, StepNoise, TimestepSpacing};

/// DPM-Solver++(2M); see the module doc.
#[derive(Debug, Clone)]
pub(crate) struct DpmPp2m {
    prediction: Prediction,
    timesteps: Vec<f64>,
    /// One per timestep, then 0.
    sigmas: Vec<f32>,
    /// `x̂₀` of the previous step, for the second-order correction.
    previous: Option<Tensor>,
}

impl DpmPp2m {
    pub fn new(config: &ScheduleConfig, steps: u32, karras: bool) -> Self {
        let table = config.torch_sigmas();
        let (timesteps, mut sigmas) = if karras {
            karras_schedule(&table, steps)
        } else {
            let timesteps = spaced_timesteps(config, steps);
            let sigmas = timesteps.iter().map(|&t| interp(&table, t) as f32).collect();
            (timesteps, sigmas)
        };
        sigmas.push(0.0);
        Self { prediction: config.prediction, timesteps, sigmas, previous: None }
    }

    /// `(α, σ_t, λ)` for the σ at `index`.
    fn alpha_sigma_lambda(&self, index: usize) -> (f64, f64, f64) {
        let sigma = f64::from(self.sigmas[index]);
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        let sigma_t = sigma * alpha;
        (alpha, sigma_t, libm::log(alpha) - libm::log(sigma_t))
    }

    /// `x̂₀ = p·x + q·output` at step `index`.
    fn data_prediction(&self, index: usize) -> (f64, f64) {
        let (alpha, sigma_t, _) = self.alpha_sigma_lambda(index);
        match self.prediction {
            Prediction::Epsilon => (1.0 / alpha, -sigma_t / alpha),
            Prediction::Velocity => (alpha, -sigma_t),
            Prediction::Sample => (0.0, 1.0),
        }
    }
}

/// The timesteps of the configured (or the `linspace` default) spacing.
fn spaced_timesteps(config: &ScheduleConfig, steps: u32) -> Vec<f64> {
    let train = config.train_timesteps;
    match config.spacing.unwrap_or(TimestepSpacing::Linspace) {
        TimestepSpacing::Linspace => linspace(f64::from(train - 1), steps + 1)
            .rev()
            .take(steps as usize)
            .map(f64::round_ties_even)
            .collect(),
        TimestepSpacing::Leading => {
            config.leading(steps + 1, train / (steps + 1)).take(steps as usize).collect()
        }
        TimestepSpacing::Trailing => config.trailing(steps).collect(),
    }
}

/// Karras σ between the table's ends and the timesteps they fall on; see the module doc.
fn karras_schedule(table: &[f32], steps: u32) -> (Vec<f64>, Vec<f32>) {
    const RHO: f64 = 7.0;
    let (Some(&min), Some(&max)) = (table.first(), table.last()) else {
        return (Vec::new(), Vec::new());
    };
    let min_inv = libm::pow(f64::from(min), 1.0 / RHO);
    let max_inv = libm::pow(f64::from(max), 1.0 / RHO);
    let log_table: Vec<f32> = table.iter().map(|&s| libm::logf(s)).collect();
    let sigmas: Vec<f64> =
        linspace(1.0, steps).map(|ramp| libm::pow(max_inv + ramp * (min_inv - max_inv), RHO)).collect();
    let timesteps = sigmas.iter().map(|&s| sigma_to_t(&log_table, s).round_ties_even()).collect();
    (timesteps, sigmas.into_iter().map(|s| s as f32).collect())
}

/// diffusers' `_sigma_to_t`: where `ln σ` falls in the (increasing) `ln σ` table, as a fractional
/// training timestep.
fn sigma_to_t(log_table: &[f32], sigma: f64) -> f64 {
    let log_sigma = libm::log(sigma.max(1e-10));
    // The last entry at or below ln σ, kept one short of the end so it has an upper neighbour.
    let low = log_table.iter().rposition(|&l| log_sigma - f64::from(l) >= 0.0).unwrap_or(0);
    let low = low.min(log_table.len() - 2);
    let (low_log, high_log) = (log_table[low], log_table[low + 1]);
    // numpy subtracts the two f32 table entries in f32.
    let w = ((f64::from(low_log) - log_sigma) / f64::from(low_log - high_log)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

impl Scheduler for DpmPp2m {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    #[cfg(test)]
    fn sigmas(&self) -> Option<&[f32]> {
        Some(&self.sigmas)
    }

    fn carries_state(&self) -> bool {
        true
    }

    fn state(&self) -> Option<&Tensor> {
        self.previous.as_ref()
    }

    fn restore_state(&mut self, state: Tensor) {
        self.previous = Some(state);
    }

    fn step(
        &mut self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
        noise: &mut dyn StepNoise,
    ) -> candle_core::Result<Tensor> {
        let (p, q) = self.data_prediction(index);
        let x0 = (sample.affine(p, 0.0)? + model_output.affine(q, 0.0)?)?;
        let (_, sigma_s, lambda_s) = self.alpha_sigma_lambda(index);
        let last = self.sigmas[index + 1] == 0.0;
        let next = if last {
            // σ_next = 0: α = 1, λ = ∞, so the first-order step lands on x̂₀ itself.
            x0.clone()
        } else {
            let (alpha_t, sigma_t, lambda_t) = self.alpha_sigma_lambda(index + 1);
            let h = lambda_t - lambda_s;
            let d0 = -alpha_t * (libm::exp(-h) - 1.0);
            let first = LinearStep { sample: sigma_t / sigma_s, output: d0, noise: 0.0 };
            let mut next = first.apply(index, &x0, sample, noise)?;
            if let (Some(previous), Some(index_prev)) = (&self.previous, index.checked_sub(1)) {
                let (_, _, lambda_prev) = self.alpha_sigma_lambda(index_prev);
                let r = (lambda_s - lambda_prev) / h;
                next = (next + (&x0 - previous)?.affine(0.5 * d0 / r, 0.0)?)?;
            }
            next
        };
        self.previous = Some(x0);
        Ok(next)
    }
}
