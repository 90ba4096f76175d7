//! A linear layer as `torch.nn.Linear` (`weight` `[out, in]`, optional `bias` `[out]`): candle's
//! matrix product, then the bias added in place ([`super::add`]) rather than by candle's
//! broadcasting addition, which hands large outputs to its second, spinning thread pool.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::add;

#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }
}

/// Reads `weight` `[out, in]` and `bias` `[out]` under `vb`.
pub(crate) fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    Ok(Linear::new(vb.get((out_dim, in_dim), "weight")?, Some(vb.get(out_dim, "bias")?)))
}

/// Reads `weight` `[out, in]` under `vb`.
pub(crate) fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    Ok(Linear::new(vb.get((out_dim, in_dim), "weight")?, None))
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let weight = match xs.dims() {
            [batch, _, _] => self.weight.broadcast_left(*batch)?.t()?,
            _ => self.weight.t()?,
        };
        let out = xs.matmul(&weight)?;
        match &self.bias {
            Some(bias) => add(out, bias),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{max_diff, sample};
    use super::*;

    #[test]
    fn linear_matches_candles() {
        let (weight, bias) = (sample(&[6, 4], 1), sample(&[6], 2));
        let ours = Linear::new(weight.clone(), Some(bias.clone()));
        let theirs = candle_nn::Linear::new(weight, Some(bias));
        for xs in [sample(&[3, 4], 3), sample(&[2, 5, 4], 4)] {
            assert_eq!(max_diff(&ours.forward(&xs).unwrap(), &theirs.forward(&xs).unwrap()), 0.0);
        }
    }
}
