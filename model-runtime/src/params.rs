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

/// The sampling algorithm. Its string form is what requests and envelopes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// DDIM with eta 0: no noise is added after the initial latents, so the result is a pure
    /// function of the seed, the prompts and the settings.
    Ddim,
}

impl SchedulerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
        }
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
        match s {
            "ddim" => Ok(SchedulerKind::Ddim),
            other => Err(RuntimeError::InvalidParameter {
                field: "scheduler",
                value: format!("{other:?}"),
                allowed: "\"ddim\"".to_string(),
            }),
        }
    }
}

/// Reported after every denoising step: `step` runs from 1 to `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub step: u32,
    pub total: u32,
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
        let err = "euler".parse::<SchedulerKind>().unwrap_err().to_string();
        assert!(err.contains("scheduler") && err.contains("euler"), "{err}");
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
