//! DDIM with eta 0 (diffusers' `DDIMScheduler`, `clip_sample` and thresholding off).
//!
//! The noise schedule is `ᾱ_t` in f64 ([`ScheduleConfig::alphas_cumprod`]); timesteps for `n`
//! steps over `T` training steps ([`ScheduleConfig::timesteps`], `leading` when the config names
//! no spacing):
//!
//! - `leading` (SD's default, with `steps_offset` 1): `(n−1−i) · (T div n) + steps_offset`,
//! - `trailing`: `round(T − i · T/n) − 1`,
//! - `linspace`: `round(i · (T−1)/(n−1))`, reversed,
//!
//! for `i` in `0..n`, rounding half to even as numpy does; always exactly `n` timesteps. Each step
//! goes from `t` to `t − T div n` (or to `ᾱ = 1` / `ᾱ_0` past zero, per `set_alpha_to_one`):
//! `x_prev = √ᾱ_prev · x̂₀ + √(1 − ᾱ_prev) · ε̂`, where the model output is `ε` (epsilon), `v`
//! (v-prediction) or `x₀` (sample). Eta is 0, so no noise is added: the step is a fixed linear
//! combination `a · sample + b · output` whose two coefficients are computed in f64 up front.
//! The initial noise sigma is 1 and the model input is not scaled.

use super::{LinearSchedule, LinearStep, Prediction, ScheduleConfig};

/// DDIM with eta 0 (see the module doc): per step `x_prev = a · sample + b · model_output`, no noise.
pub(crate) fn schedule(config: &ScheduleConfig, steps: u32) -> LinearSchedule {
    let alphas_cumprod = config.alphas_cumprod();
    let final_alpha = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
    let stride = config.train_timesteps / steps;
    let last = alphas_cumprod.len() - 1;
    let timesteps = config.timesteps(steps);
    let steps = timesteps
        .iter()
        .map(|&t| {
            let alpha = alphas_cumprod[(t as usize).min(last)];
            let alpha_prev = match t.checked_sub(stride) {
                Some(prev) => alphas_cumprod[(prev as usize).min(last)],
                None => final_alpha,
            };
            let (s, b) = (alpha.sqrt(), (1.0 - alpha).sqrt());
            let (s_prev, b_prev) = (alpha_prev.sqrt(), (1.0 - alpha_prev).sqrt());
            let (sample, output) = match config.prediction {
                // x̂₀ = (x − b·ε)/s
                Prediction::Epsilon => (s_prev / s, b_prev - s_prev * b / s),
                // x̂₀ = s·x − b·v, ε̂ = s·v + b·x
                Prediction::Velocity => (s_prev * s + b_prev * b, b_prev * s - s_prev * b),
                // x̂₀ = out, ε̂ = (x − s·x̂₀)/b
                Prediction::Sample => (b_prev / b, s_prev - b_prev * s / b),
            };
            LinearStep { sample, output, noise: 0.0 }
        })
        .collect();
    LinearSchedule {
        timesteps: timesteps.into_iter().map(f64::from).collect(),
        steps,
        sigmas: None,
        init_noise_sigma: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BetaSchedule, NoNoise, Scheduler, TimestepSpacing};
    use super::*;
    use candle_core::Device;
    use candle_core::Tensor;
    use serde_json::json;

    fn sd15() -> ScheduleConfig {
        // runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
        ScheduleConfig::from_json(&json!({
            "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false,
            "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false
        }))
        .unwrap()
    }

    #[test]
    fn leading_spacing_matches_diffusers() {
        let config = sd15();
        assert_eq!(config.spacing, None);
        let timesteps = config.timesteps(50);
        assert_eq!(timesteps.len(), 50);
        assert_eq!(&timesteps[..3], &[981, 961, 941]);
        assert_eq!(timesteps[49], 1);
        assert_eq!(config.timesteps(1), vec![1]);
        assert_eq!(config.timesteps(3), vec![667, 334, 1]);
    }

    #[test]
    fn trailing_and_linspace_round_like_numpy() {
        let mut config = sd15();
        config.spacing = Some(TimestepSpacing::Trailing);
        assert_eq!(config.timesteps(1), vec![999]);
        assert_eq!(config.timesteps(3), vec![999, 666, 332]);
        assert_eq!(config.timesteps(4), vec![999, 749, 499, 249]);
        // 1000 − 62.5 = 937.5 rounds to even 938.
        assert_eq!(config.timesteps(16)[1], 937);
        config.spacing = Some(TimestepSpacing::Linspace);
        assert_eq!(config.timesteps(1), vec![0]);
        assert_eq!(config.timesteps(4), vec![999, 666, 333, 0]);
    }

    #[test]
    fn scaled_linear_alphas_match_sd() {
        let alphas = sd15().alphas_cumprod();
        assert_eq!(alphas.len(), 1000);
        assert!((alphas[0] - 0.99915).abs() < 1e-12);
        // diffusers (float32) gives 0.0046 at t=999 for SD's schedule.
        assert!((alphas[999] - 0.004_660_1).abs() < 1e-5, "{}", alphas[999]);
    }

    /// `x₀` noised with `ε` to the level `ᾱ`.
    fn noised(alpha: f64, x0: f64, eps: f64) -> f64 {
        alpha.sqrt() * x0 + (1.0 - alpha).sqrt() * eps
    }

    /// Runs step `index` on the one-element sample `x_t` with the model output `output`, and
    /// checks that it lands on `expected`.
    fn assert_step_lands_on(ddim: &mut LinearSchedule, index: usize, x_t: f64, output: f64, expected: f64) {
        let sample = Tensor::new(&[x_t as f32], &Device::Cpu).unwrap();
        let output = Tensor::new(&[output as f32], &Device::Cpu).unwrap();
        let next = ddim.step(index, &output, &sample, &mut NoNoise).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((f64::from(next) - expected).abs() < 1e-5, "{next} vs {expected}");
    }

    #[test]
    fn ddim_epsilon_step_recovers_the_clean_sample() {
        // If the model predicts the true noise, the step lands exactly on the DDIM target.
        let config = sd15();
        let mut ddim = schedule(&config, 10);
        let alphas = config.alphas_cumprod();
        let t = ddim.timesteps()[0] as usize;
        let prev = t - 100;
        let (x0, eps) = (0.3f64, -1.2f64);
        assert_step_lands_on(&mut ddim, 0, noised(alphas[t], x0, eps), eps, noised(alphas[prev], x0, eps));
    }

    #[test]
    fn ddim_v_prediction_step_recovers_the_clean_sample() {
        let mut config = sd15();
        config.prediction = Prediction::Velocity;
        let mut ddim = schedule(&config, 4);
        let alphas = config.alphas_cumprod();
        let t = ddim.timesteps()[1] as usize;
        let prev = t - 250;
        let (x0, eps) = (-0.7f64, 0.4f64);
        let (s, b) = (alphas[t].sqrt(), (1.0 - alphas[t]).sqrt());
        let v = s * eps - b * x0;
        assert_step_lands_on(&mut ddim, 1, noised(alphas[t], x0, eps), v, noised(alphas[prev], x0, eps));
    }

    #[test]
    fn last_step_uses_the_final_alpha() {
        let config = sd15();
        let ddim = schedule(&config, 10);
        let alphas = config.alphas_cumprod();
        let t = *ddim.timesteps().last().unwrap() as usize;
        let (a, b) = (ddim.steps[9].sample, ddim.steps[9].output);
        let (s, bt) = (alphas[t].sqrt(), (1.0 - alphas[t]).sqrt());
        let (sp, bp) = (alphas[0].sqrt(), (1.0 - alphas[0]).sqrt());
        assert!((a - sp / s).abs() < 1e-15 && (b - (bp - sp * bt / s)).abs() < 1e-15);
    }

    #[test]
    fn unsupported_settings_are_named() {
        let err = ScheduleConfig::from_json(&json!({"clip_sample": true})).unwrap_err();
        assert!(err.contains("clip_sample"), "{err}");
        // diffusers' DDIM default is clip_sample = true, so a config must turn it off.
        assert!(ScheduleConfig::from_json(&json!({})).is_err());
        let err =
            ScheduleConfig::from_json(&json!({"clip_sample": false, "prediction_type": "flow"})).unwrap_err();
        assert!(err.contains("flow"), "{err}");
        let err = ScheduleConfig::from_json(&json!({"clip_sample": false, "beta_start": "x"})).unwrap_err();
        assert!(err.contains("beta_start"), "{err}");
        // Wrong types name the key, what it must be and what was found.
        for (config, expected) in [
            (json!({"clip_sample": "no"}), r#"clip_sample must be a boolean, found "no""#),
            (
                json!({"clip_sample": false, "steps_offset": -1}),
                "steps_offset must be a non-negative integer, found -1",
            ),
            (
                json!({"clip_sample": false, "timestep_spacing": 3}),
                "timestep_spacing must be a string, found 3",
            ),
            (json!({"clip_sample": false, "beta_schedule": "cubic"}), r#"unsupported beta_schedule "cubic""#),
            (json!({"clip_sample": false, "trained_betas": [0.1]}), "trained_betas is not supported"),
        ] {
            assert_eq!(ScheduleConfig::from_json(&config).unwrap_err(), expected);
        }
        // Null is absent: the default holds.
        let nulls = json!({"clip_sample": false, "beta_schedule": null, "trained_betas": null});
        assert_eq!(ScheduleConfig::from_json(&nulls).unwrap().beta_schedule, BetaSchedule::Linear);
    }
}
