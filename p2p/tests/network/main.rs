//! The network between real swarms on loopback sockets (and in memory): adverts, spot checks, jobs, discovery,
//! lifecycle.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adverts;
mod discovery;
mod jobs;
mod lifecycle;
mod relay;
mod simulated;
mod spot_checks;
mod support;
