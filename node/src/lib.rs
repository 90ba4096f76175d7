//! The genmint node: everything that knows all the parts.
//!
//! Data flow for one request (see the README for the picture): `api` receives a signed
//! [`provenance::eip712`] request → `jobs` admits it, stores it durably and feeds the inference
//! worker (`genmint-model-runtime`) → the image and its metadata are pinned through `ipfs` (CIDs
//! recomputed locally) → the node attests and `chain` mints the token → anyone can check the result
//! with `verify`. A job for a model the node lacks goes to a peer through `network` (adverts,
//! routing, forwarded jobs over `genmint-p2p`), and `spotcheck` re-generates other nodes' tokens
//! and shows what peers found. `server` assembles a running node from `config`;
//! `cli` is the `genmint` command line; `devnet` starts local anvil and Kubo for `genmint dev` and tests.

pub mod api;
pub mod chain;
pub mod cli;
pub mod config;
pub mod devnet;
pub mod ipfs;
pub mod jobs;
pub mod network;
pub mod provenance;
pub mod server;
pub mod spotcheck;
pub mod verify;
