//! How long a job waits before it tries a step again: exponential backoff with full jitter, so
//! jobs held by the same outage (Kubo, the RPC endpoint, every peer busy) do not all come back at
//! the same instant. There is no attempt limit: a job waits until its request's deadline.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The first wait.
const FIRST: Duration = Duration::from_millis(500);
/// The longest wait: a job notices a recovered Kubo, chain or peer within this.
const LONGEST: Duration = Duration::from_secs(15);

/// The wait before try `attempt + 1` (`attempt` ≥ 1): a random time between half and all of
/// `FIRST · 2^(attempt−1)`, capped at `LONGEST`.
pub(super) fn delay(attempt: u32) -> Duration {
    let ceiling = FIRST.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(LONGEST);
    let half = ceiling / 2;
    half + half.mul_f64(unit_random())
}

/// A random number in [0, 1): the standard library's per-process random hasher keys are enough
/// for spreading retries; nothing here needs to be unpredictable.
fn unit_random() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_a_ceiling_and_are_spread() {
        for attempt in 1..40 {
            let ceiling = FIRST.saturating_mul(1 << (attempt - 1).min(16)).min(LONGEST);
            let wait = delay(attempt);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "attempt {attempt}: {wait:?}");
        }
        assert!(delay(30) >= LONGEST / 2);
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| delay(10)).collect();
        assert!(waits.len() > 1, "jittered");
    }
}
