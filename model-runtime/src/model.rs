//! What a loaded model tells the node about itself: its kind, its hash, the request bounds it
//! accepts ([`Limits`]) and the conditions under which its output reproduces
//! ([`ReproducibilityEnvelope`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{GenerationParams, RuntimeError, SchedulerKind};

/// The model families the runtime knows how to condition and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Stable Diffusion 1.x (CLIP ViT-L text encoder, 512 px).
    Sd15,
    /// Stable Diffusion 2.x (OpenCLIP ViT-H text encoder, 768 px, v-prediction).
    Sd21,
    /// Stable Diffusion XL base (two text encoders, 1024 px).
    Sdxl,
    /// SDXL Turbo (the XL architecture distilled for 1–4 steps without guidance, 512 px).
    SdTurbo,
    /// The built-in test-size model from [`crate::write_test_model`].
    Tiny,
    /// A test-size SDXL-shaped model (two text encoders, the UNet's added conditioning), 32 to
    /// 256 px: the SDXL parity fixture.
    TinyXl,
    /// A pixel-space UNet (32×32 RGB, no VAE) conditioned on all-MiniLM-L6-v2's token
    /// embeddings: the default model `genmint-emoji-32` (see [`crate::install_default_model`]).
    #[serde(rename = "pixel_minilm")]
    PixelMiniLm,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Sd15 => "sd15",
            ModelKind::Sd21 => "sd21",
            ModelKind::Sdxl => "sdxl",
            ModelKind::SdTurbo => "sd_turbo",
            ModelKind::Tiny => "tiny",
            ModelKind::TinyXl => "tiny_xl",
            ModelKind::PixelMiniLm => "pixel_minilm",
        }
    }

    /// Whether the kind conditions on two text encoders (SDXL style).
    pub(crate) fn dual_text_encoders(self) -> bool {
        matches!(self, ModelKind::Sdxl | ModelKind::SdTurbo | ModelKind::TinyXl)
    }

    /// Whether the kind denoises RGB pixels directly (no VAE) and conditions on BERT token
    /// embeddings whose unconditional counterpart is all zeros.
    pub(crate) fn pixel_space(self) -> bool {
        matches!(self, ModelKind::PixelMiniLm)
    }

    /// The request bounds for this kind; `size_multiple` comes from the model's own configs
    /// (VAE factor times the UNet's total downsampling).
    pub(crate) fn limits(self, size_multiple: u32) -> Limits {
        let (min_side, max_side, default_side) = match self {
            ModelKind::Sd15 => (256, 1024, 512),
            ModelKind::Sd21 => (256, 1024, 768),
            ModelKind::Sdxl => (512, 2048, 1024),
            ModelKind::SdTurbo => (256, 1024, 512),
            ModelKind::Tiny | ModelKind::TinyXl => (32, 512, 64),
            // Trained at 32×32 only; other sizes would run but produce nothing it learned.
            ModelKind::PixelMiniLm => (32, 32, 32),
        };
        let (max_steps, default_steps, default_guidance, max_guidance) = match self {
            ModelKind::Sd15 | ModelKind::Sd21 => (150, 30, 7.5, 30.0),
            ModelKind::Sdxl => (150, 30, 5.0, 30.0),
            ModelKind::SdTurbo => (10, 1, 0.0, 30.0),
            ModelKind::Tiny | ModelKind::TinyXl => (50, 8, 4.0, 30.0),
            // 10 DPM-Solver++ 2M steps: the held-out evaluation's adherence and pictures of 20
            // DDIM steps (see the model card) in half the time.
            ModelKind::PixelMiniLm => (50, 10, 3.0, 15.0),
        };
        let default_scheduler = match self {
            ModelKind::PixelMiniLm => SchedulerKind::DpmPp2m,
            _ => SchedulerKind::Ddim,
        };
        Limits {
            min_width: min_side,
            max_width: max_side,
            min_height: min_side,
            max_height: max_side,
            default_width: default_side,
            default_height: default_side,
            size_multiple,
            max_steps,
            default_steps,
            default_scheduler,
            default_guidance,
            max_guidance,
            max_prompt_bytes: 4096,
            negative_prompt: !self.pixel_space(),
            schedulers: SchedulerKind::ALL.to_vec(),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// sha256 of a model's canonical manifest (see [`crate::manifest`]): the model's identity on
/// chain and on the network. Written as `0x` and 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelHash(pub [u8; 32]);

crate::hex_digest::hex_digest!(ModelHash, "model hash");

/// The bounds a request must satisfy for a model. Widths and heights are inclusive ranges of
/// multiples of `size_multiple`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub min_width: u32,
    pub max_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub size_multiple: u32,
    pub default_width: u32,
    pub default_height: u32,
    pub max_steps: u32,
    pub default_steps: u32,
    /// The scheduler a request without a preference should use.
    #[serde(default = "ddim")]
    pub default_scheduler: SchedulerKind,
    pub default_guidance: f32,
    pub max_guidance: f32,
    /// Bound on each of the prompt and the negative prompt, in UTF-8 bytes.
    pub max_prompt_bytes: usize,
    /// Whether the model uses a negative prompt. When it does not (its unconditional context is
    /// fixed), a non-empty negative prompt is refused rather than silently ignored.
    pub negative_prompt: bool,
    /// The schedulers this model runs, by name (`"ddim"`, `"euler"`, …); a request for another
    /// is refused.
    pub schedulers: Vec<SchedulerKind>,
}

fn ddim() -> SchedulerKind {
    SchedulerKind::Ddim
}

impl Limits {
    /// Checks every field of `params`; the error names the first field out of bounds, its value
    /// and what is allowed.
    pub fn validate(&self, params: &GenerationParams) -> Result<(), RuntimeError> {
        let side = |field: &'static str, value: u32, min: u32, max: u32| {
            if (min..=max).contains(&value) && value.is_multiple_of(self.size_multiple) {
                Ok(())
            } else {
                Err(RuntimeError::InvalidParameter {
                    field,
                    value: value.to_string(),
                    allowed: format!("a multiple of {} in {min}..={max}", self.size_multiple),
                })
            }
        };
        if !self.schedulers.contains(&params.scheduler) {
            return Err(RuntimeError::InvalidParameter {
                field: "scheduler",
                value: format!("{:?}", params.scheduler.as_str()),
                allowed: format!("one of {}", SchedulerKind::quoted(&self.schedulers)),
            });
        }
        side("width", params.width, self.min_width, self.max_width)?;
        side("height", params.height, self.min_height, self.max_height)?;
        if !(1..=self.max_steps).contains(&params.steps) {
            return Err(RuntimeError::InvalidParameter {
                field: "steps",
                value: params.steps.to_string(),
                allowed: format!("1..={}", self.max_steps),
            });
        }
        if !(params.guidance.is_finite() && (0.0..=self.max_guidance).contains(&params.guidance)) {
            return Err(RuntimeError::InvalidParameter {
                field: "guidance",
                value: params.guidance.to_string(),
                allowed: format!("0..={}", self.max_guidance),
            });
        }
        if !self.negative_prompt && !params.negative_prompt.is_empty() {
            return Err(RuntimeError::InvalidParameter {
                field: "negative_prompt",
                value: format!("of {} bytes", params.negative_prompt.len()),
                allowed: "empty: this model has no negative prompt".to_string(),
            });
        }
        for (field, text) in [("prompt", &params.prompt), ("negative_prompt", &params.negative_prompt)] {
            if text.len() > self.max_prompt_bytes {
                return Err(RuntimeError::InvalidParameter {
                    field,
                    value: format!("of {} bytes", text.len()),
                    allowed: format!("at most {} bytes", self.max_prompt_bytes),
                });
            }
        }
        Ok(())
    }
}

/// The conditions under which a model's output is reproducible: the same envelope (plus the
/// request's steps and guidance, which the node records) gives the same pixel digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReproducibilityEnvelope {
    /// Inference engine and version, e.g. `candle 0.11.1 / genmint-model-runtime 0.1.0 / kernels 4`.
    pub engine: String,
    /// The initial-noise algorithm, e.g. `chacha20-normal-v1`.
    pub noise: String,
    /// In a model's descriptor, the scheduler a request gets by default; a token's envelope
    /// records the request's own.
    pub scheduler: SchedulerKind,
    /// Tensor element type used for inference: `f32`.
    pub dtype: String,
    /// `cpu` or `cuda`.
    pub device_class: String,
}

/// Everything the node needs to know about a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    pub name: String,
    /// The author named in `genmint-model.json`, if any (the contract's model registry records it).
    pub author: Option<String>,
    pub kind: ModelKind,
    pub hash: ModelHash,
    pub limits: Limits,
    pub envelope: ReproducibilityEnvelope,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GenerationParams {
        GenerationParams {
            prompt: "a cat".into(),
            negative_prompt: String::new(),
            seed: 1,
            width: 512,
            height: 512,
            steps: 30,
            guidance: 7.5,
            scheduler: SchedulerKind::Ddim,
        }
    }

    fn rejects(limits: &Limits, change: impl FnOnce(&mut GenerationParams), field: &str, value: &str) {
        let mut p = params();
        change(&mut p);
        let message = limits.validate(&p).unwrap_err().to_string();
        assert!(message.starts_with(&format!("{field} {value}")), "{message}");
    }

    #[test]
    fn limits_name_field_value_and_range() {
        let limits = ModelKind::Sd15.limits(64);
        limits.validate(&params()).unwrap();
        rejects(&limits, |p| p.width = 520, "width", "520");
        rejects(&limits, |p| p.height = 2048, "height", "2048");
        rejects(&limits, |p| p.steps = 0, "steps", "0");
        rejects(&limits, |p| p.steps = 151, "steps", "151");
        rejects(&limits, |p| p.guidance = -1.0, "guidance", "-1");
        rejects(&limits, |p| p.guidance = f32::NAN, "guidance", "NaN");
        rejects(&limits, |p| p.prompt = "x".repeat(5000), "prompt", "of 5000 bytes");
        let only_ddim = Limits { schedulers: vec![SchedulerKind::Ddim], ..limits.clone() };
        rejects(&only_ddim, |p| p.scheduler = SchedulerKind::Euler, "scheduler", "\"euler\"");
        let mut euler = params();
        euler.scheduler = SchedulerKind::EulerAncestral;
        limits.validate(&euler).unwrap();
        let message = {
            let mut p = params();
            p.width = 100;
            limits.validate(&p).unwrap_err().to_string()
        };
        assert_eq!(message, "width 100 is not allowed: expected a multiple of 64 in 256..=1024");
    }

    #[test]
    fn pixel_limits_are_32_pixels_and_no_negative_prompt() {
        let limits = ModelKind::PixelMiniLm.limits(4);
        let pixel = |p: &mut GenerationParams| {
            (p.width, p.height, p.steps, p.guidance) = (32, 32, 20, 3.0);
        };
        let mut ok = params();
        pixel(&mut ok);
        limits.validate(&ok).unwrap();
        assert_eq!((limits.default_width, limits.default_steps, limits.default_guidance), (32, 10, 3.0));
        assert_eq!(limits.default_scheduler, SchedulerKind::DpmPp2m);
        assert_eq!(ModelKind::Sd15.limits(64).default_scheduler, SchedulerKind::Ddim);
        rejects(
            &limits,
            |p| {
                pixel(p);
                p.width = 64
            },
            "width",
            "64",
        );
        rejects(
            &limits,
            |p| {
                pixel(p);
                p.steps = 51
            },
            "steps",
            "51",
        );
        rejects(
            &limits,
            |p| {
                pixel(p);
                p.guidance = 15.5
            },
            "guidance",
            "15.5",
        );
        rejects(
            &limits,
            |p| {
                pixel(p);
                p.negative_prompt = "ugly".into()
            },
            "negative_prompt",
            "of 4 bytes",
        );
    }

    #[test]
    fn model_hash_text_forms() {
        let hash = ModelHash([0xab; 32]);
        let text = hash.to_string();
        assert_eq!(text, format!("0x{}", "ab".repeat(32)));
        assert_eq!(text.parse::<ModelHash>().unwrap(), hash);
        assert_eq!("AB".repeat(32).parse::<ModelHash>().unwrap(), hash);
        assert_eq!(serde_json::to_string(&hash).unwrap(), format!("\"{text}\""));
        let back: ModelHash = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, hash);
        assert!("0x1234".parse::<ModelHash>().is_err());
        assert!(serde_json::from_str::<ModelHash>("\"0xzz\"").is_err());
    }

    #[test]
    fn model_kind_serde_names() {
        for kind in [
            ModelKind::Sd15,
            ModelKind::Sd21,
            ModelKind::Sdxl,
            ModelKind::SdTurbo,
            ModelKind::Tiny,
            ModelKind::TinyXl,
            ModelKind::PixelMiniLm,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), kind);
        }
    }
}
