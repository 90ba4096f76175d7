//! The genmint node: everything that knows all the parts.
//!
//! Data flow for one request (see the README for the picture): `api` receives a signed
//! [`provenance::eip712`] request → `jobs` admits it, stores it durably and drives it: the image is
//! generated on the inference thread (`genmint-model-runtime`), pinned with its metadata through
//! `ipfs` (CIDs recomputed locally), attested, and minted through `chain` → anyone can check the
//! result with `verify`, and `gallery` lists every token of the contract from its mint events. A job for a model the node lacks goes to a peer through `network`, and
//! `spotcheck` re-generates other nodes' tokens and shows what peers found; `replication` has
//! other nodes pin each token's content, with signed receipts.
//!
//! Modules import downward only: `provenance`, `config`, `db` (SQLite), `fs` (file errors), `lifecycle` (owned tasks) and `metrics`
//! at the bottom; `ipfs` and `chain`; `jobs`, which reaches the chain, the content store and peers
//! through traits it owns; `verify` and `gallery`; `spotcheck` and `replication`; `network`, which implements those traits on
//! genmint-p2p; `api` (HTTP and the web page); `server`, which wires a running node; `cli` and `devnet` (local anvil and
//! Kubo) on top. `node/tests/integration/layers.rs` checks it.

pub mod api;
pub mod chain;
pub mod cli;
pub mod config;
pub mod db;
pub mod devnet;
pub mod fs;
pub mod gallery;
pub mod ipfs;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod network;
pub mod provenance;
pub mod replication;
pub mod server;
pub mod spotcheck;
pub mod verify;
