//! Residual and per-channel additions into a freshly computed activation, in place: no new
//! buffer, and the work split among the rayon pool's threads (candle's own element-wise ops hand
//! large tensors to a second pool of spinning threads, which competes with this one).

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, on_cpu_f32};

/// Elements per parallel task of a same-shape addition.
const CHUNK: usize = 16 * 1024;

/// `target + addend`, written into `target`'s buffer where it can be: `addend` has `target`'s
/// shape, or is `[batch, channels]` and added to every pixel of `target` `[batch, channels, …]`,
/// or is a bias `[features]` added to every row of `target` `[…, features]`.
/// `target` must not be shared (a result just computed, not a weight or a view).
pub(crate) fn add(target: Tensor, addend: &Tensor) -> candle_core::Result<Tensor> {
    if !(on_cpu_f32(&target) && on_cpu_f32(addend) && target.is_contiguous()) {
        return plain(&target, addend);
    }
    let addend = addend.contiguous()?;
    target.inplace_op2(&addend, &AddOp)?;
    Ok(target)
}

/// candle's own broadcasting addition, for other devices and element types (and the tests).
fn plain(target: &Tensor, addend: &Tensor) -> candle_core::Result<Tensor> {
    if addend.rank() == 1 {
        target.broadcast_add(addend)
    } else if addend.rank() == 2 && target.rank() > 2 {
        let mut shape = addend.dims().to_vec();
        shape.resize(target.rank(), 1);
        target.broadcast_add(&addend.reshape(shape)?)
    } else {
        target + addend
    }
}

struct AddOp;

impl InplaceOp2 for AddOp {
    fn name(&self) -> &'static str {
        "genmint-add"
    }

    fn cpu_fwd(
        &self,
        target: &mut CpuStorage,
        target_l: &Layout,
        addend: &CpuStorage,
        addend_l: &Layout,
    ) -> candle_core::Result<()> {
        let addend = contiguous_f32("add", addend, addend_l)?;
        let (start, end) = target_l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("add: the target must be contiguous".to_string()))?;
        let CpuStorage::F32(target) = target else {
            return Err(candle_core::Error::Msg("add: the target must be f32".to_string()));
        };
        let target = &mut target[start..end];
        let dims = target_l.dims();
        if addend_l.dims() == dims {
            target.par_chunks_mut(CHUNK).zip(addend.par_chunks(CHUNK)).for_each(|(t, a)| {
                t.iter_mut().zip(a).for_each(|(t, a)| *t += a);
            });
        } else if addend_l.dims().len() == 1 && dims.last() == addend_l.dims().first() {
            target
                .par_chunks_mut(addend.len().max(1))
                .for_each(|row| row.iter_mut().zip(addend).for_each(|(t, a)| *t += a));
        } else if addend_l.dims().len() == 2 && dims.len() > 2 && addend_l.dims() == &dims[..2] {
            let plane = dims[2..].iter().product::<usize>().max(1);
            target
                .par_chunks_mut(plane)
                .zip(addend.par_iter())
                .for_each(|(t, &a)| t.iter_mut().for_each(|t| *t += a));
        } else {
            return Err(candle_core::Error::Msg(format!(
                "add: cannot add {:?} to {dims:?}",
                addend_l.dims()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{max_diff, sample};
    use super::*;

    #[test]
    fn add_matches_candles_addition_in_place() {
        let target = sample(&[2, 3, 5, 7], 1);
        for addend in [sample(&[2, 3, 5, 7], 2), sample(&[2, 3], 3), sample(&[7], 5)] {
            let expected = plain(&target, &addend).unwrap();
            let fresh = target.copy().unwrap();
            let sum = add(fresh, &addend).unwrap();
            assert_eq!(max_diff(&sum, &expected), 0.0);
        }
        assert!(add(target.copy().unwrap(), &sample(&[3, 2], 4)).is_err());
    }
}
