//! `genmint verify <token id | IPFS CID | image file>`: every check of [`crate::verify`], printed by
//! name, or as JSON with `--json`; `--regenerate` re-runs the request on a local copy of the model,
//! `--steps K` replays K random steps of the token's committed latent trace instead.
//! A file that is a copy (re-encoded, resized, stripped) is traced by its invisible watermark, or,
//! without one, by its fingerprint in the fingerprint index of the node at `--node`.
//! Exits non-zero if any check fails.
//!
//! Where the content is held comes from `--node` (`GET /v1/tokens/{id}/holders`): each holder's
//! signed pin receipt is checked here, the Kubo given by `--ipfs-api` is connected to the holders'
//! Kubos before anything is fetched (so the token verifies when the minting node and its Kubo are
//! gone), and the report lists them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use alloy::primitives::Address;
use anyhow::{Context, Result};
use clap::Args;
use genmint_model_runtime::DeviceChoice;

use crate::chain::ChainClient;
use crate::ipfs::{KuboClient, SwarmPeers};
use crate::replication::{ContentHolders, holder_views, pinned_here};
use crate::verify::copy::{FingerprintIndex, FingerprintMatch};
use crate::verify::subject::{Subject, resolve};
use crate::verify::{CheckName, inspect, regenerate, steps};

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
    /// Instead of (or beside) --regenerate, a cheaper check: replay this many denoising steps,
    /// drawn at random, of the latent trace the token's metadata commits to (with the model found
    /// as for --regenerate).
    #[arg(long, value_name = "K")]
    pub steps: Option<u32>,
    /// Where --regenerate and --steps look for the model (default: the data dir's `models`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Kubo's RPC API, for fetching the metadata and image.
    #[arg(long, env = "GENMINT_IPFS_API", default_value = "http://127.0.0.1:5001")]
    pub ipfs_api: String,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// `--steps K`: reads what K random steps of the token's committed trace need, then replays them.
async fn step_check(
    ipfs: &KuboClient,
    evidence: Arc<crate::verify::Evidence>,
    models_dir: PathBuf,
    count: u32,
) -> anyhow::Result<Result<String, String>> {
    let record = evidence.metadata.as_ref().and_then(|m| m.provenance.latent_trace.clone());
    let (Some(record), Some(request)) = (record, evidence.request.as_ref()) else {
        return Ok(Err("the metadata commits to no latent trace (minted before traces, or by a generator \
                       that records none): use --regenerate"
            .to_owned()));
    };
    let chosen = steps::draw_steps(request.steps, count.max(1));
    let fetched = match steps::fetch_for_check(ipfs, &record, request.steps, &chosen).await {
        Ok(fetched) => fetched,
        Err(e) => return Ok(Err(e.to_string())),
    };
    tokio::task::spawn_blocking(move || {
        regenerate::check_trace(&evidence, &fetched, &models_dir, DeviceChoice::Cpu)
    })
    .await
    .context("the step check task stopped")
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
    let receipts = node_receipts(&args.chain.node, token_id).await;
    let addresses: Vec<String> = holder_views(receipts.clone(), chain.chain_id(), contract, token_id, None)
        .into_iter()
        .filter(|h| h.receipt_ok)
        .flat_map(|h| h.kubo_addresses)
        .collect();
    if !addresses.is_empty()
        && let Err(e) = ipfs.connect(&addresses).await
    {
        eprintln!("note: Kubo at {} could not connect to the holders' Kubos: {e}", args.ipfs_api);
    }
    let (mut report, evidence) = inspect(&chain, &ipfs, token_id).await;
    let cids = evidence.image_cid.as_deref().zip(evidence.metadata_cid.as_deref());
    let held_here = match cids {
        Some((image, metadata)) => pinned_here(&ipfs, image, metadata).await,
        None => None,
    };
    let holders =
        ContentHolders::new(holder_views(receipts, chain.chain_id(), contract, token_id, cids), held_here);
    if let Some(result) = claim.check(&evidence) {
        report.push(CheckName::Subject, result);
    }
    let models_dir = args.models_dir.unwrap_or_else(|| data_dir.join("models"));
    let evidence = Arc::new(evidence);
    if let Some(count) = args.steps {
        let result = step_check(&ipfs, Arc::clone(&evidence), models_dir.clone(), count).await?;
        report.push(CheckName::StepCheck, result);
    }
    if args.regenerate {
        let evidence = Arc::clone(&evidence);
        let result =
            tokio::task::spawn_blocking(move || regenerate::check(&evidence, &models_dir, DeviceChoice::Cpu))
                .await
                .context("the re-generation task stopped")?;
        report.push(CheckName::Regeneration, result);
    }
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["contentHolders"] = serde_json::to_value(&holders)?;
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("token {} on chain {} contract {}", report.token_id, report.chain_id, report.contract);
        for check in &report.checks {
            println!("  {} {:<19} {}", if check.ok { "ok  " } else { "FAIL" }, check.name, check.detail);
        }
        println!("content: {}", holders.summary.replace("this node's Kubo", "the Kubo at --ipfs-api"));
        for holder in &holders.held_by {
            println!(
                "  {} held by {} (peer {}, Kubo {}, {} bytes, pinned at {}){}",
                if holder.receipt_ok { "ok  " } else { "FAIL" },
                holder.holder,
                holder.holder_peer_id,
                holder.kubo_peer_id,
                holder.bytes,
                holder.pinned_at,
                holder.receipt_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
            );
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

/// The pin receipts `node` holds for the token; none when it cannot be asked (the report says
/// so: no holders listed).
async fn node_receipts(node: &str, token_id: alloy::primitives::U256) -> Vec<genmint_p2p::pin::PinReceipt> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Holders {
        held_by: Vec<Held>,
    }
    #[derive(serde::Deserialize)]
    struct Held {
        receipt: genmint_p2p::pin::PinReceipt,
    }
    let id = crate::provenance::ids::JobId::of_token(token_id);
    let url = format!("{}/v1/tokens/{id}/holders", node.trim_end_matches('/'));
    let asked = async {
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await?
            .error_for_status()?;
        response.json::<Holders>().await
    };
    match asked.await {
        Ok(holders) => holders.held_by.into_iter().map(|h| h.receipt).collect(),
        Err(e) => {
            eprintln!("note: {url} did not answer ({e}); where the content is held is not shown");
            Vec::new()
        }
    }
}
