//! A linear layer as `torch.nn.Linear` (`weight` `[out, in]`, optional `bias` `[out]`): candle's
//! matrix product, then the bias added in place ([`super::add`]) rather than by candle's
//! broadcasting addition, which hands large outputs to its second, spinning thread pool.
//!
//! Each output row depends on its own input row alone, bit for bit, however many rows come
//! with it, so a request's pixels do not depend on the batch it runs in: a `[batch, tokens, in]`
//! input is a product per batch row already, and the rows of a 2-D `[rows, in]` input (the
//! timestep and SDXL's added embeddings, one row per UNet row) go one at a time, since the matrix
//! product rounds a short, wide product differently as its row count changes.

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
        if let [rows, _] = *xs.dims()
            && rows > 1
        {
            let each = (0..rows)
                .map(|row| self.forward(&xs.narrow(0, row, 1)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Tensor::cat(&each, 0);
        }
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

    #[test]
    fn each_row_is_the_same_whatever_rows_come_with_it() {
        for (weight, input) in
            [([128, 32], vec![2, 32]), ([96, 128], vec![3, 128]), ([32, 32], vec![2, 64, 32])]
        {
            let layer = Linear::new(sample(&weight, 1), Some(sample(&[weight[0]], 2)));
            let xs = sample(&input, 3);
            let alone = layer.forward(&xs.narrow(0, 0, 1).unwrap()).unwrap();
            for copies in [1, 2, 5] {
                let rows = Tensor::cat(&vec![&xs; copies], 0).unwrap();
                let first = layer.forward(&rows).unwrap().narrow(0, 0, 1).unwrap();
                assert_eq!(max_diff(&first, &alone), 0.0, "{input:?} repeated {copies} times");
            }
        }
    }
}
