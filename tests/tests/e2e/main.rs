//! End-to-end tests: real anvil, real Kubo, the real contract, and real `genmint` node processes.
//! One test binary; each test brings up its own stack on free loopback ports.

// Test code: a failed unwrap is a failed test. The sol! interface mirrors the contract's event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

mod api;
mod cluster;
mod contracts_deploy;
mod default_model;
mod dev;
mod disputes;
mod failover;
mod fees;
mod mint;
mod network;
mod pinning_service;
mod reliability;
mod reorg;
mod replication;
mod restart;
mod spot_checks;
mod step_checks;
mod support;
mod verify;
mod watermark;
mod web;
