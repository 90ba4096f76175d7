//! The arithmetic a model runs in: [`ComputeDtype`] (f32, f16 or bf16) for the UNet, and the
//! VAE's own element type, which may be f32 where the compute type would overflow.
//!
//! ```text
//! noise, scheduler, guidance ── f32 always (the sample between steps)
//! text encoders ─────────────── f32 (once per request; their output is cast for the UNet)
//! UNet ──────────────────────── the compute dtype (inputs cast in, prediction cast back to f32)
//! VAE decoder ───────────────── the compute dtype, or f32 where diffusers upcasts it
//! ```
//!
//! SDXL's original VAE overflows in f16 (its activations pass 65,504) and decodes black or NaN
//! pictures. diffusers' SDXL pipelines decode in f32 when the VAE's `force_upcast` (default
//! true) says so; the community `sdxl-vae-fp16-fix` VAE sets it false and decodes in f16. genmint
//! follows the same rule, and only for the SDXL family (diffusers' SD 1.x/2.x pipeline never
//! upcasts). bf16 has f32's range and never needs it.
//!
//! With the `flash-attn` feature (CUDA only) the UNet's attention in f16 or bf16 runs
//! candle-flash-attn's fused kernel, and the envelope's engine says so.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// The element type of the UNet's weights and arithmetic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// 32-bit floats: every device; the default and the reference.
    #[default]
    F32,
    /// IEEE half precision: GPUs (tensor cores); the CPU runs it too, slower than f32.
    F16,
    /// bfloat16: f32's range with half its bytes; GPUs only.
    Bf16,
}

impl ComputeDtype {
    /// The name written in configs and in a token's reproducibility envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeDtype::F32 => "f32",
            ComputeDtype::F16 => "f16",
            ComputeDtype::Bf16 => "bf16",
        }
    }

    pub(crate) fn candle(self) -> DType {
        match self {
            ComputeDtype::F32 => DType::F32,
            ComputeDtype::F16 => DType::F16,
            ComputeDtype::Bf16 => DType::BF16,
        }
    }

    /// Refuses a compute type the device cannot run a UNet in. candle's CPU backend has no bf16
    /// matrix product; f16 runs there (slower than f32, so only for checking a GPU's pictures).
    pub(crate) fn check_device(self, device: &Device) -> Result<(), RuntimeError> {
        if self == ComputeDtype::Bf16 && device.is_cpu() {
            return Err(RuntimeError::UnsupportedDtype {
                dtype: self.as_str(),
                reason: "candle's CPU kernels have no bf16 matrix product: on the CPU set \
                         [model] dtype = \"f32\" (or \"f16\"), or run the model on a GPU \
                         (device = \"cuda:0\" in a build with --features cuda)",
            });
        }
        Ok(())
    }
}

impl fmt::Display for ComputeDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComputeDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(ComputeDtype::F32),
            "f16" => Ok(ComputeDtype::F16),
            "bf16" => Ok(ComputeDtype::Bf16),
            other => Err(format!("dtype {other:?}: use \"f32\", \"f16\" or \"bf16\"")),
        }
    }
}

/// The element type the VAE decodes in: diffusers' SDXL rule (module doc). `force_upcast` is
/// the VAE config's key where it has one.
pub(crate) fn vae_dtype(compute: ComputeDtype, sdxl_family: bool, force_upcast: Option<bool>) -> DType {
    let upcast = compute == ComputeDtype::F16 && sdxl_family && force_upcast.unwrap_or(true);
    if upcast { DType::F32 } else { compute.candle() }
}

/// Whether the UNet's attention runs candle-flash-attn's kernel: in a build with the
/// `flash-attn` feature, on a GPU, in f16 or bf16 (the kernel has no f32).
pub(crate) fn uses_flash_attention(device: &Device, dtype: DType) -> bool {
    cfg!(feature = "flash-attn") && device.is_cuda() && matches!(dtype, DType::F16 | DType::BF16)
}

/// The envelope's `dtype`: the compute type, and the VAE's where it differs (`f16+vae-f32`), so
/// the record says exactly which arithmetic made the pixels.
pub(crate) fn envelope_dtype(compute: ComputeDtype, vae: Option<DType>) -> String {
    match vae {
        Some(vae) if vae != compute.candle() => format!("{}+vae-{}", compute.as_str(), vae.as_str()),
        _ => compute.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_config_and_text() {
        for dtype in [ComputeDtype::F32, ComputeDtype::F16, ComputeDtype::Bf16] {
            assert_eq!(dtype.as_str().parse::<ComputeDtype>().unwrap(), dtype);
            let toml_like = serde_json::to_value(dtype).unwrap();
            assert_eq!(toml_like, dtype.as_str());
            assert_eq!(serde_json::from_value::<ComputeDtype>(toml_like).unwrap(), dtype);
        }
        assert_eq!(ComputeDtype::default(), ComputeDtype::F32);
        let err = "fp16".parse::<ComputeDtype>().unwrap_err();
        assert!(err.contains("\"f16\""), "{err}");
    }

    #[test]
    fn sdxl_vae_decodes_in_f32_under_f16_unless_it_says_it_is_safe() {
        // SDXL's original VAE (force_upcast true, or absent: diffusers' default) upcasts.
        assert_eq!(vae_dtype(ComputeDtype::F16, true, Some(true)), DType::F32);
        assert_eq!(vae_dtype(ComputeDtype::F16, true, None), DType::F32);
        // The fp16-fix VAE says force_upcast false and decodes in f16.
        assert_eq!(vae_dtype(ComputeDtype::F16, true, Some(false)), DType::F16);
        // SD 1.x/2.x: diffusers never upcasts; bf16 and f32 never need it.
        assert_eq!(vae_dtype(ComputeDtype::F16, false, Some(true)), DType::F16);
        assert_eq!(vae_dtype(ComputeDtype::Bf16, true, Some(true)), DType::BF16);
        assert_eq!(vae_dtype(ComputeDtype::F32, true, None), DType::F32);
    }

    #[test]
    fn flash_attention_only_on_a_gpu_in_half_precision() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            assert!(!uses_flash_attention(&Device::Cpu, dtype));
        }
    }

    #[test]
    fn envelope_names_an_upcast_vae() {
        assert_eq!(envelope_dtype(ComputeDtype::F16, Some(DType::F32)), "f16+vae-f32");
        assert_eq!(envelope_dtype(ComputeDtype::F16, Some(DType::F16)), "f16");
        assert_eq!(envelope_dtype(ComputeDtype::Bf16, None), "bf16");
        assert_eq!(envelope_dtype(ComputeDtype::F32, Some(DType::F32)), "f32");
    }

    #[test]
    fn cpu_refuses_bf16_with_what_to_do() {
        assert!(ComputeDtype::F32.check_device(&Device::Cpu).is_ok());
        assert!(ComputeDtype::F16.check_device(&Device::Cpu).is_ok());
        let message = ComputeDtype::Bf16.check_device(&Device::Cpu).unwrap_err().to_string();
        assert!(message.contains("bf16") && message.contains("dtype = \"f32\""), "{message}");
    }
}
