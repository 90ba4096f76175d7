//! Slow motion for simulated networks: a node whose every timer runs `k` times slower than real
//! time, so that a simulation with more nodes than its cores keep up with in real time still
//! shows the timings real nodes would see (its measured times divided by `k`).

use std::time::Duration;

use super::{NetworkConfig, NetworkError};

/// The most a simulated network may be slowed down.
const MAX_DILATION: u32 = 100;

/// How many times slower than real time a node runs: 1 for every node on a real network; more
/// only over simulated links ([`crate::memory_link::MemoryLink::time_dilation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dilation(u32);

impl Dilation {
    /// Real time.
    pub const NONE: Self = Self(1);

    pub fn new(factor: u32) -> Result<Self, NetworkError> {
        match (1..=MAX_DILATION).contains(&factor) {
            true => Ok(Self(factor)),
            false => Err(NetworkError::Config(format!(
                "time_dilation {factor} must be 1 (real time) to {MAX_DILATION}"
            ))),
        }
    }

    /// `duration` of simulated time, in real time.
    pub fn stretch(self, duration: Duration) -> Duration {
        duration * self.0
    }

    /// `duration` of real time, in simulated time.
    pub fn shrink(self, duration: Duration) -> Duration {
        duration / self.0
    }

    /// The configuration with its intervals and timeouts stretched and its advert rate slowed.
    pub fn config(self, config: NetworkConfig) -> NetworkConfig {
        NetworkConfig {
            advert_interval: self.stretch(config.advert_interval),
            advert_ttl: self.stretch(config.advert_ttl),
            network_advert_rate: config.network_advert_rate / f64::from(self.0),
            request_timeout: self.stretch(config.request_timeout),
            ..config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_stretches_every_configured_duration_and_slows_the_rate() {
        let dilation = Dilation::new(10).unwrap();
        let config = dilation.config(NetworkConfig::default());
        assert_eq!(config.advert_interval, Duration::from_secs(100));
        assert_eq!(config.advert_ttl, Duration::from_secs(300));
        assert_eq!(config.request_timeout, Duration::from_secs(100));
        assert_eq!(config.network_advert_rate, 1.0);
        assert_eq!(dilation.shrink(dilation.stretch(Duration::from_millis(300))), Duration::from_millis(300));
        assert_eq!(Dilation::NONE.config(NetworkConfig::default()).advert_interval, Duration::from_secs(10));
    }

    #[test]
    fn dilation_is_bounded() {
        assert!(Dilation::new(0).is_err());
        let error = Dilation::new(MAX_DILATION + 1).unwrap_err().to_string();
        assert!(error.contains("time_dilation"), "{error}");
    }
}
