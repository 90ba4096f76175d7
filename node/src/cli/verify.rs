//! `genmint verify <token id | IPFS CID | image file>`: every check of [`crate::verify`], printed by
//! name, or as JSON with `--json`; `--regenerate` re-runs the request on a local copy of the model.
//! A file that is a copy (re-encoded, resized, stripped) is traced by its invisible watermark, or,
//! without one, by its fingerprint in the fingerprint index of the node at `--node`.
//! Exits non-zero if any check fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alloy::primitives::Address;
use anyhow::{Context, Result};
use clap::Args;
use genmint_model_runtime::DeviceChoice;

use crate::chain::ChainClient;
use crate::ipfs::KuboClient;
use crate::verify::copy::{FingerprintIndex, FingerprintMatch};
use crate::verify::subject::{Subject, resolve};
use crate::verify::{CheckName, inspect, regenerate};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to verify: a token id (decimal, or 0x-hex: the request digest), the IPFS CID of a
    /// token's image or metadata, or an image file.
    pub subject: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also re-run the request with the model (found by hash under --models-dir) and compare images.
    #[arg(long)]
    pub regenerate: bool,
    /// Where --regenerate looks for the model (default: the data dir's `models`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Kubo's RPC API, for fetching the metadata and image.
    #[arg(long, env = "GENMINT_IPFS_API", default_value = "http://127.0.0.1:5001")]
    pub ipfs_api: String,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Where the token's chain is, for `verify` and `detect`.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// The first block to search for mint events when an image without credentials (or a copy)
    /// is given.
    #[arg(long, default_value_t = 0)]
    pub from_block: u64,
    /// The chain's JSON-RPC endpoint.
    #[arg(long, env = "GENMINT_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// The GenmintNFT contract (default: the one the node at --node uses).
    #[arg(long, env = "GENMINT_CONTRACT")]
    pub contract: Option<Address>,
    /// A genmint node, asked for the contract address when --contract is not given, and for the
    /// tokens that look like a copy without a watermark (its fingerprint index).
    #[arg(long, env = "GENMINT_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
}

/// The fingerprint index of the node at a URL (`GET /v1/fingerprints/{dhash}`).
pub(super) struct NodeFingerprints<'a>(pub &'a str);

impl FingerprintIndex for NodeFingerprints<'_> {
    async fn nearest(&self, fingerprint: u64) -> Result<Vec<FingerprintMatch>, String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            matches: Vec<Match>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Match {
            token_id: String,
            distance: u32,
        }
        let url = format!("{}/v1/fingerprints/{fingerprint:#018x}", self.0.trim_end_matches('/'));
        let answer: Answer = reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(answer
            .matches
            .into_iter()
            .map(|m| FingerprintMatch { token_id: m.token_id, distance: m.distance })
            .collect())
    }
}

pub(super) async fn node_contract(node: &str) -> Result<Address> {
    let url = format!("{}/healthz", node.trim_end_matches('/'));
    let health: serde_json::Value = reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("no --contract given and {url} did not answer"))?
        .json()
        .await?;
    health["contract"]
        .as_str()
        .context("the node's /healthz names no contract")?
        .parse()
        .context("contract address")
}

pub async fn run(data_dir: &Path, args: VerifyArgs) -> Result<ExitCode> {
    let subject = Subject::parse(&args.subject).map_err(anyhow::Error::msg)?;
    let contract = match args.chain.contract {
        Some(contract) => contract,
        None => node_contract(&args.chain.node).await?,
    };
    let chain = ChainClient::connect_read_only(&args.chain.rpc_url, contract).await?;
    let ipfs = KuboClient::new(&args.ipfs_api)?;
    let started = std::time::Instant::now();
    let (token_id, claim) =
        resolve(&chain, &ipfs, &NodeFingerprints(&args.chain.node), &subject, args.chain.from_block)
            .await
            .map_err(anyhow::Error::msg)?;
    let (mut report, evidence) = inspect(&chain, &ipfs, token_id).await;
    if let Some(result) = claim.check(&evidence) {
        report.push(CheckName::Subject, result);
    }
    if args.regenerate {
        let models_dir = args.models_dir.unwrap_or_else(|| data_dir.join("models"));
        let result =
            tokio::task::spawn_blocking(move || regenerate::check(&evidence, &models_dir, DeviceChoice::Cpu))
                .await
                .context("the re-generation task stopped")?;
        report.push(CheckName::Regeneration, result);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("token {} on chain {} contract {}", report.token_id, report.chain_id, report.contract);
        for check in &report.checks {
            println!("  {} {:<19} {}", if check.ok { "ok  " } else { "FAIL" }, check.name, check.detail);
        }
        let failed = report.checks.iter().filter(|c| !c.ok).count();
        println!(
            "{} ({} checks, {failed} failed, {:.2} s)",
            if report.ok { "verified" } else { "NOT verified" },
            report.checks.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
