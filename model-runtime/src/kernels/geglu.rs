//! GEGLU, the gated activation of diffusers' transformer feed-forward: the projection's last
//! dimension splits into halves `(hidden, gate)` and the result is `hidden · gelu(gate)` with the
//! exact (erf) GELU, as `torch.nn.functional.gelu` computes it by default.

use candle_core::{CpuStorage, CustomOp1, D, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, math, on_cpu_f32};

/// `hidden · gelu(gate)` for `xs` `[…, 2 · inner]` → `[…, inner]`.
pub(crate) fn geglu(xs: &Tensor) -> candle_core::Result<Tensor> {
    if on_cpu_f32(xs) { xs.contiguous()?.apply_op1_no_bwd(&GegluOp) } else { plain(xs) }
}

/// candle's own ops, for other devices and element types (and the tests).
fn plain(xs: &Tensor) -> candle_core::Result<Tensor> {
    let halves = xs.chunk(2, D::Minus1)?;
    &halves[0] * halves[1].gelu_erf()?
}

struct GegluOp;

impl CustomOp1 for GegluOp {
    fn name(&self) -> &'static str {
        "genmint-geglu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let mut dims = layout.dims().to_vec();
        let width = dims.last().copied().unwrap_or(0);
        if width == 0 || !width.is_multiple_of(2) {
            return Err(candle_core::Error::Msg(format!(
                "geglu: the last dimension of {dims:?} must be even"
            )));
        }
        let xs = contiguous_f32("geglu", xs, layout)?;
        let inner = width / 2;
        let mut out = vec![0f32; xs.len() / 2];
        out.par_chunks_exact_mut(inner).zip(xs.par_chunks_exact(width)).for_each(|(dst, src)| {
            let (hidden, gate) = src.split_at(inner);
            for ((d, &h), &g) in dst.iter_mut().zip(hidden).zip(gate) {
                *d = h * math::gelu(g);
            }
        });
        if let Some(last) = dims.last_mut() {
            *last = inner;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{max_diff, sample};
    use super::*;

    #[test]
    fn geglu_matches_candles_ops() {
        let xs = (sample(&[2, 10, 48], 3) * 2.0).unwrap();
        let fast = geglu(&xs).unwrap();
        assert_eq!(fast.dims(), [2, 10, 24]);
        assert!(max_diff(&fast, &plain(&xs).unwrap()) < 1e-5);
        assert!(geglu(&sample(&[3, 5], 1)).is_err());
    }
}
