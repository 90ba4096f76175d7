//! Group normalisation as diffusers' `nn.GroupNorm` (affine), optionally followed by SiLU in the
//! same pass, as every ResNet block and the UNet's output do. On the CPU in f32 each
//! (image, group) is one contiguous run of `channels / groups · h · w` values: its mean and
//! variance are summed in f64 (see [`super::math::mean_and_variance`]), then each value is normalised, scaled, shifted (and
//! passed through SiLU) once.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::{contiguous_f32, math, on_cpu_f32};

/// A group norm layer with its `weight` and `bias` `[channels]`.
#[derive(Debug, Clone)]
pub(crate) struct GroupNorm {
    plain: candle_nn::GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// Reads `weight` and `bias` under `vb`.
    pub fn load(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> candle_core::Result<Self> {
        let weight = vb.get(channels, "weight")?.contiguous()?;
        let bias = vb.get(channels, "bias")?.contiguous()?;
        let plain = candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
        Ok(Self { plain, weight, bias, groups, eps })
    }

    /// The normalised `xs` `[batch, channels, …]`.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.run(xs, false)
    }

    /// SiLU of the normalised `xs`.
    pub fn forward_silu(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.run(xs, true)
    }

    fn run(&self, xs: &Tensor, silu: bool) -> candle_core::Result<Tensor> {
        if on_cpu_f32(xs) && on_cpu_f32(&self.weight) {
            let op = GroupNormOp { groups: self.groups, eps: self.eps, silu };
            xs.contiguous()?.apply_op3_no_bwd(&self.weight, &self.bias, &op)
        } else {
            self.plain(xs, silu)
        }
    }

    /// candle's own ops, for other devices and element types (and the tests).
    fn plain(&self, xs: &Tensor, silu: bool) -> candle_core::Result<Tensor> {
        let normed = candle_core::Module::forward(&self.plain, xs)?;
        if silu { candle_nn::ops::silu(&normed) } else { Ok(normed) }
    }
}

struct GroupNormOp {
    groups: usize,
    eps: f64,
    silu: bool,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "genmint-group-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_l: &Layout,
        weight: &CpuStorage,
        weight_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = xs_l.dims();
        let (batch, channels) = match dims {
            [batch, channels, ..] => (*batch, *channels),
            _ => return Err(candle_core::Error::Msg(format!("group norm: input {dims:?} has no channels"))),
        };
        let xs = contiguous_f32("group norm", xs, xs_l)?;
        let weight = contiguous_f32("group norm", weight, weight_l)?;
        let bias = contiguous_f32("group norm", bias, bias_l)?;
        if !channels.is_multiple_of(self.groups) || weight.len() != channels || bias.len() != channels {
            return Err(candle_core::Error::Msg(format!(
                "group norm: {channels} channels, {} groups, {} weights, {} biases",
                self.groups,
                weight.len(),
                bias.len()
            )));
        }
        let per_group = channels / self.groups;
        let spatial = xs.len().checked_div(batch * channels).unwrap_or(0);
        let run = per_group * spatial;
        let mut out = vec![0f32; xs.len()];
        if run > 0 {
            out.par_chunks_exact_mut(run).zip(xs.par_chunks_exact(run)).enumerate().for_each(
                |(i, (dst, src))| {
                    let first_channel = i % self.groups * per_group;
                    let channels = first_channel..first_channel + per_group;
                    self.group(src, dst, spatial, &weight[channels.clone()], &bias[channels]);
                },
            );
        }
        Ok((CpuStorage::F32(out), xs_l.shape().clone()))
    }
}

impl GroupNormOp {
    /// One (image, group): `src` holds its channels one after another, `spatial` values each.
    fn group(&self, src: &[f32], dst: &mut [f32], spatial: usize, weight: &[f32], bias: &[f32]) {
        let (mean, var) = math::mean_and_variance(src);
        let rstd = 1.0 / (var + self.eps).sqrt();
        for ((dst, src), (&w, &b)) in
            dst.chunks_exact_mut(spatial).zip(src.chunks_exact(spatial)).zip(weight.iter().zip(bias))
        {
            let (mean, scale) = (mean as f32, (rstd * w as f64) as f32);
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = (s - mean) * scale + b;
            }
            if self.silu {
                dst.iter_mut().for_each(|d| *d = math::silu(*d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::super::test_support::{bits, max_diff, sample, with_threads};
    use super::*;

    fn norm(groups: usize, channels: usize) -> GroupNorm {
        let vb = VarBuilder::from_tensors(
            [("weight".to_string(), sample(&[channels], 1)), ("bias".to_string(), sample(&[channels], 2))]
                .into(),
            candle_core::DType::F32,
            &Device::Cpu,
        );
        GroupNorm::load(vb, groups, channels, 1e-5).unwrap()
    }

    #[test]
    fn group_norm_matches_candles_ops() {
        for (groups, shape) in
            [(32, vec![2, 64, 8, 8]), (4, vec![1, 8, 5, 3]), (32, vec![2, 32, 1, 1]), (2, vec![2, 4, 7])]
        {
            let layer = norm(groups, shape[1]);
            let xs = sample(&shape, 4).affine(3.0, 1.0).unwrap();
            for silu in [false, true] {
                let diff = max_diff(&layer.run(&xs, silu).unwrap(), &layer.plain(&xs, silu).unwrap());
                assert!(diff < 2e-5, "{groups} groups, {shape:?}, silu {silu}: {diff}");
            }
        }
    }

    #[test]
    fn group_norm_does_not_depend_on_the_thread_count() {
        let layer = norm(32, 64);
        let xs = sample(&[2, 64, 16, 16], 6);
        let one = with_threads(1, || bits(&layer.forward_silu(&xs).unwrap()));
        assert!(with_threads(3, || bits(&layer.forward_silu(&xs).unwrap())) == one);
    }
}
