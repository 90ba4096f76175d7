//! Softmax over the last dimension, for attention weights: each row's maximum is subtracted,
//! the exponentials (see [`super::math`]) are summed and scaled to sum to 1.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, math, on_cpu_f32};

/// Softmax of `xs` over its last dimension.
pub(crate) fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    if on_cpu_f32(xs) {
        xs.contiguous()?.apply_op1_no_bwd(&SoftmaxOp)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "genmint-softmax"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = layout.dims().last().copied().unwrap_or(0);
        let xs = contiguous_f32("softmax", xs, layout)?;
        let mut out = vec![0f32; xs.len()];
        if width > 0 {
            out.par_chunks_exact_mut(width).zip(xs.par_chunks_exact(width)).for_each(|(dst, src)| {
                let max = math::max(src);
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = math::exp(s - max);
                }
                let scale = 1.0 / math::sum(dst);
                dst.iter_mut().for_each(|d| *d *= scale);
            });
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{max_diff, sample};
    use super::*;

    #[test]
    fn softmax_matches_candles() {
        let xs = (sample(&[2, 4, 33, 77], 2) * 4.0).unwrap();
        let fast = softmax_last_dim(&xs).unwrap();
        assert!(max_diff(&fast, &candle_nn::ops::softmax_last_dim(&xs).unwrap()) < 1e-6);
    }
}
