//! `exp` and `erf` for f32 in plain arithmetic (no library calls, no branches), so loops over
//! slices compile to SIMD code, and every machine computes the same bits: no fused multiply-add,
//! the same operations in the same order.

use std::f32::consts::{FRAC_1_SQRT_2, LOG2_E};

/// ln 2 as a sum whose first part has few mantissa bits, so `n · LN_2_HIGH` is exact.
const LN_2_HIGH: f32 = 0.693_145_75;
const LN_2_LOW: f32 = 1.428_606_8e-6;

/// Adding and subtracting 1.5 · 2²³ rounds an f32 below 2²² to the nearest integer.
const ROUNDER: f32 = 12_582_912.0;

/// `e^x` to within 2 ulp for x in [−87, 88]; inputs outside are clamped into it (what the
/// kernels feed it is at most 0, or goes into `1 / (1 + e^x)`).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // x = n · ln 2 + r with |r| ≤ ln 2 / 2; ln 2 split in two for an exact n · ln 2. The rounded
    // sum's low mantissa bits hold n itself.
    let rounded = x * LOG2_E + ROUNDER;
    let n = rounded - ROUNDER;
    let r = (x - n * LN_2_HIGH) - n * LN_2_LOW;
    // e^r by its Taylor polynomial to degree 7 (error below 2e-9 on the interval).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n from the exponent bits (n is an integer in [−126, 127]).
    let n = rounded.to_bits().wrapping_sub(ROUNDER.to_bits());
    p * f32::from_bits(n.wrapping_add(127) << 23)
}

/// `erf(x)` to within 5e-7 (Abramowitz and Stegun 7.1.26, 1.5e-7, plus f32 rounding).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// The exact GELU, `x · Φ(x)`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// SiLU, `x · σ(x)`.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// Independent accumulators in the reductions below: enough to fill a SIMD register and hide
/// the adder's latency. The lanes are combined in a fixed order, so the result depends on the
/// data only.
pub(crate) const LANES: usize = 8;

/// The largest of `values` (−∞ for none; NaN is passed over).
#[inline(always)]
pub(crate) fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(lane, &v)| *lane = if v > *lane { v } else { *lane });
    }
    lanes.iter().copied().fold(rest, f32::max)
}

/// The mean of `values` and the mean squared deviation from it, summed in f64 over
/// [`LANES`] accumulators (two passes, as the population variance is best computed).
pub(crate) fn mean_and_variance(values: &[f32]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let sum_f64 = |term: &dyn Fn(f32) -> f64| {
        let mut lanes = [0f64; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder().iter().map(|&v| term(v)).sum::<f64>();
        for chunk in chunks {
            lanes.iter_mut().zip(chunk).for_each(|(lane, &v)| *lane += term(v));
        }
        lanes.iter().sum::<f64>() + rest
    };
    let mean = sum_f64(&|v| v as f64) / n;
    (mean, sum_f64(&|v| (v as f64 - mean).powi(2)) / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_library() {
        let mut worst = 0;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 0.000_37;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2, "{worst} ulp");
        assert!((LN_2_HIGH as f64 + LN_2_LOW as f64 - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-200.0), exp(-87.0));
        assert_eq!(exp(f32::INFINITY), exp(88.0));
    }

    #[test]
    fn reductions_over_lanes() {
        let values: Vec<f32> = (0..1003).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25).collect();
        let exact: f64 = values.iter().map(|&v| v as f64).sum();
        assert_eq!(max(&values), 12.5);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[-3.0, f32::NAN, -1.0]), -1.0);
        let (mean, var) = mean_and_variance(&values);
        let exact_var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 1003.0;
        assert!((mean - exact / 1003.0).abs() < 1e-12 && (var - exact_var).abs() < 1e-9);
    }

    #[test]
    fn erf_and_gelu_are_close_to_the_library() {
        for i in -6_000..6_000 {
            let x = i as f32 * 1e-3;
            assert!((erf(x) - libm::erff(x)).abs() < 5e-7, "erf({x}): {}", erf(x) - libm::erff(x));
            let exact = 0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2));
            assert!((gelu(x) - exact).abs() < 1e-6, "gelu({x})");
            assert!((silu(x) - x / (1.0 + (-x).exp())).abs() < 1e-6, "silu({x})");
        }
    }
}
