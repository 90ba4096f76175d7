//! The latent consistency model sampler (diffusers' `LCMScheduler`, no thresholding, no clipping):
//! each step jumps straight to a denoised sample and, except on the last step, noises it again to
//! the next timestep.
//!
//! - Timesteps come from the distillation schedule, not from `timestep_spacing` (diffusers'
//!   `LCMScheduler` keeps that key but never reads it, nor `steps_offset`): with
//!   `N = original_inference_steps` and the skip `k = T div N`, the schedule is
//!   `k·j − 1` for `j` from `N` down to 1; step `i` of `n` takes entry
//!   `floor(i · (N/n))` of it (numpy's `linspace(0, N, n, endpoint=False)`, f64, floored). So
//!   `n` must be at most `N`: 4 steps of SD's 1000 with `N` 50 visit 999, 759, 499, 259.
//! - The noise schedule is `ᾱ_t` as torch has it in f32
//!   ([`ScheduleConfig::torch_alphas_cumprod`]); initial noise sigma 1, no input scaling.
//! - Step `i` at timestep `t`: `x̂₀` from the output (`(x − √(1−ᾱ_t)·ε)/√ᾱ_t`,
//!   `√ᾱ_t·x − √(1−ᾱ_t)·v`, or the output itself), then the consistency boundary condition with
//!   `s = t · timestep_scaling` and `σ_data = 0.5`: `c_skip = σ_data²/(s² + σ_data²)`,
//!   `c_out = s/√(s² + σ_data²)` (f32, as torch computes them from the integer timestep), and
//!   `denoised = c_out·x̂₀ + c_skip·x`. On the last step that is the result; before it,
//!   `x' = √ᾱ_next·denoised + √(1−ᾱ_next)·z`, with `ᾱ_next` at the next timestep and `z` the
//!   step's noise.
//! - The noise `z` of step `i` is genmint's seeded per-step stream, exactly as for `euler_a`
//!   ([`crate::noise::step_normal`], stream `i + 1` of the request seed), where diffusers draws
//!   `randn_tensor` from the pipeline's generator. The last step draws none, so an `n`-step
//!   generation uses streams 1 to `n − 1`.
//!
//! `x'` is linear in `x`, the output and `z`, so each step is three f64 coefficients computed
//! from the f32 scalars diffusers uses ([`LinearStep`]).
//!
//! LCM is meant for LCM-distilled weights (an LCM-LoRA merged into an SD checkpoint, say): any
//! model may be asked for it, as diffusers' Stable Diffusion pipelines take any scheduler, but
//! only a distilled model gives a good picture in 2 to 8 steps. Fully distilled LCM UNets that
//! take the guidance scale as an embedding (`time_cond_proj_dim`) do not load here.

use super::{LinearSchedule, LinearStep, Prediction, ScheduleConfig};
use crate::RuntimeError;

/// `σ_data` of the consistency boundary condition (diffusers' fixed 0.5).
const SIGMA_DATA: f32 = 0.5;

/// The LCM sampler (see the module doc); fails when `steps` is more than the distillation schedule
/// has.
pub(crate) fn schedule(config: &ScheduleConfig, steps: u32) -> Result<LinearSchedule, RuntimeError> {
    let timesteps = timesteps(config, steps)?;
    let alphas_cumprod = config.torch_alphas_cumprod();
    let last = alphas_cumprod.len() - 1;
    let alpha_at = |t: u32| alphas_cumprod[(t as usize).min(last)];
    let steps = timesteps
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let next = timesteps.get(i + 1).map(|&next| alpha_at(next));
            step_coefficients(config, t, alpha_at(t), next)
        })
        .collect();
    let timesteps = timesteps.into_iter().map(f64::from).collect();
    Ok(LinearSchedule { timesteps, steps, sigmas: None, init_noise_sigma: 1.0 })
}

/// The `steps` timesteps LCM visits, descending; see the module doc.
fn timesteps(config: &ScheduleConfig, steps: u32) -> Result<Vec<u32>, RuntimeError> {
    let origin = config.original_inference_steps;
    if !(1..=origin).contains(&steps) {
        return Err(RuntimeError::InvalidParameter {
            field: "steps",
            value: steps.to_string(),
            allowed: format!("1..={origin} for lcm (the model's original_inference_steps)"),
        });
    }
    let skip = config.train_timesteps / origin;
    let stride = f64::from(origin) / f64::from(steps);
    Ok((0..steps)
        .map(|i| {
            // Entry `index` of the descending schedule `k·N − 1, …, k − 1`.
            let index = (f64::from(i) * stride).floor() as u32;
            (origin - index) * skip - 1
        })
        .collect())
}

/// The step at timestep `t` with `ᾱ_t = alpha`, to the next timestep's `ᾱ` (none on the last
/// step). Scalars are rounded to f32 where diffusers has them as f32 tensors.
fn step_coefficients(config: &ScheduleConfig, t: u32, alpha: f32, next: Option<f32>) -> LinearStep {
    let (alpha_root, beta_root) = (alpha.sqrt(), (1.0f32 - alpha).sqrt());
    // x̂₀ = p·x + q·output
    let (p, q) = match config.prediction {
        Prediction::Epsilon => (1.0 / f64::from(alpha_root), -f64::from(beta_root) / f64::from(alpha_root)),
        Prediction::Velocity => (f64::from(alpha_root), -f64::from(beta_root)),
        Prediction::Sample => (0.0, 1.0),
    };
    let (c_skip, c_out) = boundary_condition(t, config.timestep_scaling);
    // denoised = c_out·x̂₀ + c_skip·x
    let denoised = LinearStep { sample: c_out * p + c_skip, output: c_out * q, noise: 0.0 };
    match next {
        None => denoised,
        Some(next) => {
            let (scale, noise) = (f64::from(next.sqrt()), f64::from((1.0f32 - next).sqrt()));
            LinearStep { sample: scale * denoised.sample, output: scale * denoised.output, noise }
        }
    }
}

/// `(c_skip, c_out)` at timestep `t`, computed in f32 as diffusers does.
fn boundary_condition(t: u32, timestep_scaling: f64) -> (f64, f64) {
    let scaled = t as f32 * timestep_scaling as f32;
    let denominator = scaled * scaled + SIGMA_DATA * SIGMA_DATA;
    let c_skip = SIGMA_DATA * SIGMA_DATA / denominator;
    let c_out = scaled / denominator.sqrt();
    (c_skip.into(), c_out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lcm_config(extra: serde_json::Value) -> ScheduleConfig {
        let mut config = json!({
            "_class_name": "LCMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
            "set_alpha_to_one": true, "steps_offset": 1, "timestep_spacing": "leading"
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        ScheduleConfig::from_json(&config).unwrap()
    }

    #[test]
    fn timesteps_skip_along_the_distillation_schedule() {
        let config = lcm_config(json!({}));
        assert_eq!(timesteps(&config, 1).unwrap(), [999]);
        assert_eq!(timesteps(&config, 2).unwrap(), [999, 499]);
        assert_eq!(timesteps(&config, 4).unwrap(), [999, 759, 499, 259]);
        assert_eq!(timesteps(&config, 8).unwrap(), [999, 879, 759, 639, 499, 379, 259, 139]);
        let all = timesteps(&config, 50).unwrap();
        assert_eq!((all[0], all[1], all[49]), (999, 979, 19));
        let custom = lcm_config(json!({"original_inference_steps": 25}));
        assert_eq!(timesteps(&custom, 3).unwrap(), [999, 679, 359]);
    }

    #[test]
    fn more_steps_than_the_distillation_schedule_are_refused() {
        let err = schedule(&lcm_config(json!({})), 51).unwrap_err().to_string();
        assert!(err.contains("steps") && err.contains("51") && err.contains("1..=50"), "{err}");
        let err = ScheduleConfig::from_json(&json!({"clip_sample": false, "original_inference_steps": 0}))
            .unwrap_err();
        assert_eq!(err, "original_inference_steps must be in 1..=1000, found 0");
    }

    #[test]
    fn boundary_condition_is_nearly_the_identity_on_the_prediction() {
        let (c_skip, c_out) = boundary_condition(999, 10.0);
        assert!(c_skip < 1e-8 && (c_out - 1.0).abs() < 1e-7, "{c_skip} {c_out}");
        // At t = 0 the consistency function is the identity on the sample.
        assert_eq!(boundary_condition(0, 10.0), (1.0, 0.0));
    }

    #[test]
    fn the_last_step_adds_no_noise_and_the_others_renoise_to_the_next_level() {
        let config = lcm_config(json!({}));
        let lcm = schedule(&config, 4).unwrap();
        assert_eq!(lcm.steps[3].noise, 0.0);
        let alphas = config.torch_alphas_cumprod();
        let next = alphas[759];
        assert_eq!(lcm.steps[0].noise, f64::from((1.0f32 - next).sqrt()));
        // An epsilon model that predicts the true noise lands on √ᾱ_next·x₀ before the noise.
        let (x0, eps) = (0.3f64, -1.2f64);
        let alpha = f64::from(alphas[999]);
        let x = alpha.sqrt() * x0 + (1.0 - alpha).sqrt() * eps;
        let step = lcm.steps[0];
        let landed = step.sample * x + step.output * eps;
        assert!((landed - f64::from(next).sqrt() * x0).abs() < 1e-5, "{landed}");
    }
}
