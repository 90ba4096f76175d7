//! What a caller asks for ([`GenerationParams`]) and how a running generation reports back
//! ([`Progress`], [`Control`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// One text-to-image request, exactly as signed by the creator (guidance as a float here; the
/// chain carries it as an integer times 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub prompt: String,
    pub negative_prompt: String,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    /// Classifier-free guidance scale; at or below 1 the unconditional pass is skipped.
    pub guidance: f32,
    pub scheduler: SchedulerKind,
}

impl GenerationParams {
    /// Whether the two requests can share UNet passes in one batch: the same sample size and the
    /// same timesteps (scheduler and step count). Prompts, seeds and guidance may differ.
    pub fn batches_with(&self, other: &GenerationParams) -> bool {
        (self.width, self.height, self.steps, self.scheduler)
            == (other.width, other.height, other.steps, other.scheduler)
    }
}

/// The sampling algorithm, each one diffusers' scheduler class of the same math. Its string
/// form is what requests, envelopes and model descriptors carry. Every one is a pure function of
/// the seed, the prompts and the settings: the ancestral one and LCM draw their step noise from
/// the seed (see [`crate::noise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// `ddim`: DDIM with eta 0 (`DDIMScheduler`).
    Ddim,
    /// `euler`: `EulerDiscreteScheduler`.
    Euler,
    /// `euler_a`: `EulerAncestralDiscreteScheduler`, step noise from the seed.
    EulerAncestral,
    /// `dpmpp_2m`: `DPMSolverMultistepScheduler`, DPM-Solver++ of order 2.
    DpmPp2m,
    /// `dpmpp_2m_karras`: the same on Karras sigmas.
    DpmPp2mKarras,
    /// `lcm`: `LCMScheduler`, the latent consistency sampler, step noise from the seed. Any
    /// model may be asked for it, but only LCM-distilled weights give good pictures in few steps.
    Lcm,
}

impl SchedulerKind {
    /// Every scheduler, in the order names are listed to users.
    pub const ALL: [SchedulerKind; 6] = [
        SchedulerKind::Ddim,
        SchedulerKind::Euler,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPp2m,
        SchedulerKind::DpmPp2mKarras,
        SchedulerKind::Lcm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::DpmPp2m => "dpmpp_2m",
            SchedulerKind::DpmPp2mKarras => "dpmpp_2m_karras",
            SchedulerKind::Lcm => "lcm",
        }
    }

    /// `kinds` as quoted names for a message: `"ddim", "euler"`.
    pub fn quoted(kinds: &[SchedulerKind]) -> String {
        kinds.iter().map(|k| format!("{:?}", k.as_str())).collect::<Vec<_>>().join(", ")
    }
}

impl Serialize for SchedulerKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SchedulerKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerKind {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| {
            RuntimeError::InvalidParameter {
                field: "scheduler",
                value: format!("{s:?}"),
                allowed: format!("one of {}", SchedulerKind::quoted(&SchedulerKind::ALL)),
            }
        })
    }
}

/// Reported after every denoising step: `step` runs from 1 to `total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub step: u32,
    pub total: u32,
    /// The picture as it forms, where that costs nothing: a pixel-space model's current sample
    /// (clamped to RGB8). `None` for latent models, whose sample needs the VAE to be seen.
    pub preview: Option<crate::Rgb8Image>,
}

/// The progress callback's answer: go on, or stop and return [`RuntimeError::Cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Cancel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_kind_string_forms_agree() {
        assert_eq!(SchedulerKind::Ddim.as_str(), "ddim");
        assert_eq!("ddim".parse::<SchedulerKind>().unwrap(), SchedulerKind::Ddim);
        assert_eq!(serde_json::to_string(&SchedulerKind::Ddim).unwrap(), "\"ddim\"");
        for kind in SchedulerKind::ALL {
            assert_eq!(kind.as_str().parse::<SchedulerKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<SchedulerKind>(&json).unwrap(), kind);
        }
        let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"]);
        let err = "plms".parse::<SchedulerKind>().unwrap_err().to_string();
        assert!(err.contains("scheduler") && err.contains("plms") && err.contains("\"lcm\""), "{err}");
        assert!(serde_json::from_str::<SchedulerKind>("\"plms\"").is_err());
    }

    #[test]
    fn params_round_trip_through_json() {
        let params = GenerationParams {
            prompt: "a red fox".into(),
            negative_prompt: String::new(),
            seed: u64::MAX,
            width: 512,
            height: 768,
            steps: 30,
            guidance: 7.5,
            scheduler: SchedulerKind::Ddim,
        };
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json["scheduler"], "ddim");
        assert_eq!(json["negative_prompt"], "");
        let back: GenerationParams = serde_json::from_value(json).unwrap();
        assert_eq!(back, params);
    }
}
