//! The initial latent noise, drawn by our own seeded RNG on the CPU: algorithm
//! `chacha20-normal-v1`. This is a recorded format: a token's envelope names it, and anyone must be
//! able to re-draw the same numbers from the seed. Never change it; add a `-v2` instead.
//!
//! # `chacha20-normal-v1`
//!
//! 1. `rng = ChaCha20Rng::seed_from_u64(seed)` (rand_chacha 0.9 / rand_core 0.9: the u64 is
//!    expanded to the 32-byte key by rand_core's PCG32 `seed_from_u64`; stream 0, position 0).
//! 2. Values are made in pairs. For each pair draw `a = rng.next_u64()`, then `b = rng.next_u64()`:
//!    - `u1 = ((a >> 11) + 1) · 2⁻⁵³`, in (0, 1] (53-bit mantissa, never 0, so `ln` is finite),
//!    - `u2 = (b >> 11) · 2⁻⁵³`, in [0, 1),
//!    - `r = sqrt(-2 · ln(u1))`, `θ = 2π · u2` (`2π` as the f64 constant `TAU`),
//!    - `z0 = r · cos(θ)`, `z1 = r · sin(θ)`, all in f64, then each rounded to the nearest f32.
//!
//!    `ln`, `cos` and `sin` are the `libm` crate's (pure-Rust ports of musl's routines), not the
//!    platform's math library, so the bits do not depend on the operating system.
//! 3. The sequence is `z0, z1` of pair 0, then of pair 1, …; a request for an odd count drops the
//!    last `z1`. The values fill the latent tensor `[1, channels, height / f, width / f]` in
//!    row-major order (channel, then row, then column).
//!
//! # Per-step noise (stochastic schedulers)
//!
//! A scheduler that adds noise between steps (`euler_a`, `lcm`) draws it from the same seed on its
//! own ChaCha20 stream, so the initial noise and every step's noise are independent and each can
//! be re-drawn on its own: for step `i` (0-based, in the order the steps run),
//!
//! 1. `rng = ChaCha20Rng::seed_from_u64(seed)`, then `rng.set_stream(i + 1)` (rand_chacha's
//!    64-bit stream number, the ChaCha nonce; position 0 of that stream),
//! 2. values exactly as in step 2 and 3 above, as many as the sample has, filling it in the same
//!    row-major order.
//!
//! A step that adds no noise draws none (`lcm`'s last step; `euler_a`'s last step has `σ_up` 0),
//! so its stream goes unused; the other steps' streams do not shift. Stream 0 stays the initial
//! noise, unchanged. The rule is part of `chacha20-normal-v1`: no
//! output drawn before it existed used any stream but 0 (DDIM draws no step noise).
//!
//! The first values for seed 0 are pinned by unit tests.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// The name recorded in the reproducibility envelope.
pub const NOISE_ALGORITHM: &str = "chacha20-normal-v1";

/// `count` standard-normal samples for `seed`, by `chacha20-normal-v1`.
pub fn standard_normal(seed: u64, count: usize) -> Vec<f32> {
    normals(ChaCha20Rng::seed_from_u64(seed), count)
}

/// `count` standard-normal samples for step `step` of a stochastic scheduler: stream `step + 1`
/// of `seed` (see the module doc).
pub fn step_normal(seed: u64, step: u64, count: usize) -> Vec<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(step.saturating_add(1));
    normals(rng, count)
}

/// Box-Muller pairs from `rng`, as f32, truncated to `count`.
fn normals(mut rng: ChaCha20Rng, count: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        let (z0, z1) = box_muller(rng.next_u64(), rng.next_u64());
        values.push(z0 as f32);
        values.push(z1 as f32);
    }
    values.truncate(count);
    values
}

/// 2⁻⁵³: turns a 53-bit integer into a fraction with every bit kept.
const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;

/// A uniform in [0, 1) from the top 53 bits of `bits`.
pub(crate) fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 * TWO_POW_MINUS_53
}

fn box_muller(a: u64, b: u64) -> (f64, f64) {
    let u1 = ((a >> 11) + 1) as f64 * TWO_POW_MINUS_53;
    let u2 = unit_interval(b);
    let radius = (-2.0 * libm::log(u1)).sqrt();
    let angle = std::f64::consts::TAU * u2;
    (radius * libm::cos(angle), radius * libm::sin(angle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_zero_is_pinned() {
        // The format itself: these numbers must never change. They were also reproduced by an
        // independent from-scratch ChaCha20 + Box-Muller implementation (Python, platform libm).
        assert_eq!(
            standard_normal(0, 6),
            [2.7082598, -0.30730516, 0.21486562, 0.5036754, 0.03870939, 0.46641916]
        );
    }

    #[test]
    fn step_noise_is_pinned_and_apart_from_the_initial_noise() {
        let first = step_normal(0, 0, 4);
        assert_eq!(first, step_normal(0, 0, 4));
        assert_ne!(first[..], standard_normal(0, 4)[..]);
        assert_ne!(first, step_normal(0, 1, 4));
        assert_ne!(first, step_normal(1, 0, 4));
        assert_eq!(step_normal(0, 0, 3), first[..3]);
        assert_eq!(first, PINNED_STEP_0);
    }

    /// Step 0 of seed 0 (stream 1): the format, never to change.
    const PINNED_STEP_0: [f32; 4] = [0.41595897, 1.5866061, 1.4352363, 1.2507769];

    #[test]
    fn shorter_draws_are_prefixes_of_longer_ones() {
        let long = standard_normal(7, 101);
        assert_eq!(long.len(), 101);
        assert_eq!(standard_normal(7, 50), long[..50]);
        assert_eq!(standard_normal(7, 51), long[..51]);
        assert!(standard_normal(7, 0).is_empty());
    }

    #[test]
    fn seeds_give_different_streams() {
        assert_ne!(standard_normal(1, 8), standard_normal(2, 8));
    }

    #[test]
    fn samples_look_standard_normal() {
        let values = standard_normal(42, 200_000);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!(values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn unit_interval_covers_zero_to_just_below_one() {
        assert_eq!(unit_interval(0), 0.0);
        assert_eq!(unit_interval(u64::MAX), 1.0 - TWO_POW_MINUS_53);
    }
}
