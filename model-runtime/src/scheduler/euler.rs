//! Euler (diffusers' `EulerDiscreteScheduler`) and ancestral Euler
//! (`EulerAncestralDiscreteScheduler`): first-order steps of the probability-flow ODE in σ, where
//! the sample is `x = x₀ + σ·ε`.
//!
//! - Timesteps for `n` steps over `T` training steps, `linspace` when the config names no
//!   spacing: `leading` `(n−1−i)·(T div n) + steps_offset`; `trailing` `round(T − i·T/n) − 1`;
//!   `linspace` `i·(T−1)/(n−1)` reversed, *not rounded*, as f32.
//! - σ at each timestep is the training σ table ([`ScheduleConfig::torch_sigmas`]) linearly
//!   interpolated (numpy's `interp`, f64), then rounded to f32; a final σ of 0 is appended.
//! - The initial noise is multiplied by `max σ` for `linspace` and `trailing`, by `√(max σ² + 1)`
//!   for `leading` (f32). The model sees `sample / √(σ² + 1)`.
//! - Each step predicts `x̂₀` (`x − σ·ε`; for v: `−σ/√(σ²+1)·v + x/(σ²+1)`; or the output itself)
//!   and moves along `d = (x − x̂₀)/σ`. Euler: `x' = x + d·(σ_next − σ)`. Ancestral:
//!   `σ_up = √(σ_next²·(σ² − σ_next²)/σ²)`, `σ_down = √(σ_next² − σ_up²)`,
//!   `x' = x + d·(σ_down − σ) + σ_up·z` with `z` the step's noise. No churn (`s_churn` 0), no
//!   Karras σ.
//!
//! `x'` is linear in `x`, the output and `z`, so each step is three f64 coefficients computed
//! from the f32 σ table ([`LinearStep`]).

use super::config::{interp, linspace};
use super::{LinearSchedule, LinearStep, Prediction, ScheduleConfig, TimestepSpacing};

/// Euler, plain or ancestral; see the module doc.
pub(crate) fn schedule(config: &ScheduleConfig, steps: u32, ancestral: bool) -> LinearSchedule {
    let spacing = config.spacing.unwrap_or(TimestepSpacing::Linspace);
    let timesteps: Vec<f64> = match spacing {
        TimestepSpacing::Leading => config.leading(steps, config.train_timesteps / steps).collect(),
        TimestepSpacing::Trailing => config.trailing(steps).collect(),
        TimestepSpacing::Linspace => linspace(f64::from(config.train_timesteps - 1), steps)
            .rev()
            .map(|t| f64::from(t as f32))
            .collect(),
    };
    let table = config.torch_sigmas();
    let mut sigmas: Vec<f32> = timesteps.iter().map(|&t| interp(&table, t) as f32).collect();
    sigmas.push(0.0);
    let max = sigmas.iter().copied().fold(0.0f32, f32::max);
    let init_noise_sigma = match spacing {
        TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
        TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
    };
    let steps = sigmas
        .windows(2)
        .map(|pair| step_coefficients(config.prediction, pair[0].into(), pair[1].into(), ancestral))
        .collect();
    LinearSchedule { timesteps, steps, sigmas: Some(sigmas), init_noise_sigma: init_noise_sigma.into() }
}

/// The step from `sigma` to `next`; see the module doc.
fn step_coefficients(prediction: Prediction, sigma: f64, next: f64, ancestral: bool) -> LinearStep {
    // x̂₀ = p·x + q·output
    let (p, q) = match prediction {
        Prediction::Epsilon => (1.0, -sigma),
        Prediction::Velocity => {
            let variance = sigma * sigma + 1.0;
            (1.0 / variance, -sigma / variance.sqrt())
        }
        Prediction::Sample => (0.0, 1.0),
    };
    let (target, up) = if ancestral {
        let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
        ((next * next - up * up).max(0.0).sqrt(), up)
    } else {
        (next, 0.0)
    };
    // x' = x + (target − σ)/σ · (x − x̂₀)
    let ratio = (target - sigma) / sigma;
    LinearStep { sample: 1.0 + ratio * (1.0 - p), output: -ratio * q, noise: up }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_step_is_an_euler_step_along_the_output() {
        let step = step_coefficients(Prediction::Epsilon, 2.0, 0.5, false);
        assert_eq!((step.sample, step.output, step.noise), (1.0, -1.5, 0.0));
    }

    #[test]
    fn ancestral_noise_and_drift_keep_the_target_variance() {
        // σ_down² + σ_up² = σ_next²: the noise added brings the sample back to σ_next.
        let step = step_coefficients(Prediction::Epsilon, 3.0, 1.0, true);
        let down = 3.0 + step.output;
        assert!((down * down + step.noise * step.noise - 1.0).abs() < 1e-12);
        let last = step_coefficients(Prediction::Velocity, 0.03, 0.0, true);
        assert_eq!(last.noise, 0.0);
    }
}
