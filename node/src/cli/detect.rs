//! `genmint detect IMAGE`: looks for genmint's invisible watermark in an image file (PNG, JPEG or
//! WebP, any size, metadata or not) and names the token its tag points to, from the contract's
//! mint events; without a watermark, the tokens that look like it in the fingerprint index of the
//! node at `--node`. Prints the result, or JSON with `--json` (the shape `POST /v1/detect` answers).
//! Exits 0 when a watermark is found, 1 when none is.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::verify::{ChainArgs, NodeFingerprints, node_contract};
use crate::chain::ChainClient;
use crate::verify::copy::{self, DetectReport, MAX_UPLOAD_BYTES};

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The image file to look into.
    pub image: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only read the watermark; do not ask the chain which token its tag points to.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
}

pub async fn run(args: DetectArgs) -> Result<ExitCode> {
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("cannot read {}", args.image.display()))?;
    anyhow::ensure!(
        bytes.len() <= MAX_UPLOAD_BYTES,
        "{} is {} bytes; genmint reads images of at most {MAX_UPLOAD_BYTES} bytes",
        args.image.display(),
        bytes.len()
    );
    let report = if args.offline {
        let detected =
            tokio::task::spawn_blocking(move || copy::decode(&bytes).map(|image| copy::detect(&image)))
                .await
                .context("the detector stopped")??;
        DetectReport {
            detected,
            token: None,
            lookup: "not looked up (--offline)".into(),
            fingerprint_matches: Vec::new(),
        }
    } else {
        let contract = match args.chain.contract {
            Some(contract) => contract,
            None => node_contract(&args.chain.node).await?,
        };
        let chain = ChainClient::connect_read_only(&args.chain.rpc_url, contract).await?;
        copy::detect_and_find(&chain, &NodeFingerprints(&args.chain.node), bytes, args.chain.from_block)
            .await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(if report.detected.present { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(report: &DetectReport) {
    let d = &report.detected;
    match &d.tag {
        Some(tag) => println!(
            "genmint watermark found: {} tag {tag}, confidence {:.2}, {}x{} at {:.2}x the original's size",
            d.algorithm, d.confidence, d.width, d.height, d.scale
        ),
        None => {
            println!("no genmint watermark found ({}x{}, confidence {:.2})", d.width, d.height, d.confidence)
        }
    }
    match &report.token {
        Some(token) => println!(
            "token {} on chain {} contract {} (`genmint verify` on the file checks it)",
            token.token_id, token.chain_id, token.contract
        ),
        None => println!("{}", report.lookup),
    }
    for near in &report.fingerprint_matches {
        println!("looks like token {} (dHash distance {}/64)", near.token_id, near.distance);
    }
}
