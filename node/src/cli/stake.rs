//! `genmint stake`, `genmint unstake` and `genmint dispute`: a node's membership by stake and its
//! disputes of forged tokens, sent with the operator key. `dispute <token>` opens a dispute with the
//! pixel digest of this operator's own signed `mismatch` spot check of the token (as its node's
//! provenance report lists it), or `--digest`; `--vote` and `--resolve` take part in an open one.

use std::path::Path;

use alloy::primitives::{B256, U256};
use anyhow::{Context, Result, bail};
use clap::Args;

use super::verify::{ChainArgs, node_contract};
use crate::chain::{ChainClient, DisputeState, StakeInfo};
use crate::ipfs::KuboClient;
use crate::verify::{inspect, parse_token_id};

#[derive(Debug, Args)]
pub struct StakeArgs {
    /// Wei to add to the stake [default: the contract's NODE_STAKE less what is staked already].
    #[arg(long)]
    pub wei: Option<u128>,
    /// Only print the stake.
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
}

#[derive(Debug, Args)]
pub struct UnstakeArgs {
    /// Wei to ask back [default: all of the stake].
    #[arg(long)]
    pub wei: Option<u128>,
    /// Withdraw what was asked back and has unlocked, instead of asking.
    #[arg(long)]
    pub withdraw: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
}

#[derive(Debug, Args)]
pub struct DisputeArgs {
    /// The disputed token (decimal, or 0x-hex: the request digest).
    pub token: String,
    /// The pixel digest this operator re-derived [default: its signed mismatch spot check].
    #[arg(long)]
    pub digest: Option<B256>,
    /// Vote on the token's open dispute with --digest (or the spot check's digest).
    #[arg(long, conflicts_with = "resolve")]
    pub vote: bool,
    /// Resolve the token's dispute after its window.
    #[arg(long)]
    pub resolve: bool,
    /// Kubo's RPC API, for reading the token's request from its metadata.
    #[arg(long, env = "GENMINT_IPFS_API", default_value = "http://127.0.0.1:5001")]
    pub ipfs_api: String,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// The contract at `args`, with the operator key as sender.
async fn operator_client(data_dir: &Path, args: &ChainArgs) -> Result<ChainClient> {
    let contract = match args.contract {
        Some(contract) => contract,
        None => node_contract(&args.node).await?,
    };
    let signer = crate::server::operator_key(data_dir)?;
    Ok(ChainClient::connect(&args.rpc_url, signer, contract).await?)
}

fn print_stake(operator: alloy::primitives::Address, stake: &StakeInfo, is_node: bool) {
    println!(
        "{operator}: {} wei staked, {} wei asked back (unlocks at {}), {} open dispute(s) against it; node: {is_node}{}",
        stake.staked,
        stake.unstaking,
        stake.unlock_at,
        stake.open_disputes,
        if stake.barred { " (barred: slashed or taken down by the owner)" } else { "" }
    );
}

pub async fn stake(data_dir: &Path, args: StakeArgs) -> Result<()> {
    let chain = operator_client(data_dir, &args.chain).await?;
    let operator = chain.sender().context("the client has no sender")?;
    let before = chain.stake_of(operator).await?;
    if !args.status {
        let (node_stake, _) = chain.stake_terms().await?;
        let amount = match args.wei {
            Some(wei) => U256::from(wei),
            None => node_stake.saturating_sub(before.staked),
        };
        if amount.is_zero() {
            bail!("{operator} already stakes {} wei, the node stake: pass --wei to add more", before.staked);
        }
        chain.stake(amount).await?;
    }
    print_stake(operator, &chain.stake_of(operator).await?, chain.is_node(operator).await?);
    Ok(())
}

pub async fn unstake(data_dir: &Path, args: UnstakeArgs) -> Result<()> {
    let chain = operator_client(data_dir, &args.chain).await?;
    let operator = chain.sender().context("the client has no sender")?;
    if args.withdraw {
        chain.withdraw_stake().await?;
    } else {
        let staked = chain.stake_of(operator).await?.staked;
        let amount = args.wei.map_or(staked, U256::from);
        if amount.is_zero() {
            bail!("{operator} has nothing staked to ask back");
        }
        chain.request_unstake(amount).await?;
    }
    print_stake(operator, &chain.stake_of(operator).await?, chain.is_node(operator).await?);
    Ok(())
}

pub async fn dispute(data_dir: &Path, args: DisputeArgs) -> Result<()> {
    let token_id = parse_token_id(&args.token).map_err(anyhow::Error::msg)?;
    let chain = operator_client(data_dir, &args.chain).await?;
    let operator = chain.sender().context("the client has no sender")?;
    let state = if args.resolve {
        let evidence = chain.dispute_evidence(token_id).await?.context("the token was never disputed")?;
        chain.resolve_dispute(token_id, evidence).await?
    } else {
        let digest = match args.digest {
            Some(digest) => digest,
            None => own_mismatch(&args.chain.node, &args.token, operator).await?,
        };
        if args.vote {
            let evidence = chain.dispute_evidence(token_id).await?.context("the token was never disputed")?;
            chain.vote_on_dispute(token_id, evidence, digest).await?;
        } else {
            let ipfs = KuboClient::new(&args.ipfs_api)?;
            let (report, evidence) = inspect(&chain, &ipfs, token_id).await;
            let request = evidence.request.with_context(|| {
                format!("the token's metadata does not give the request it was minted from: {report:?}")
            })?;
            let minted = chain.minted_event(token_id).await?.context("the token is not minted")?;
            chain.open_dispute(&request, &minted, digest).await?;
        }
        chain.dispute_of(token_id).await?
    };
    print_dispute(&args.token, &state);
    Ok(())
}

fn print_dispute(token: &str, d: &DisputeState) {
    println!(
        "token {token}: dispute {} by {}, votes until {}: {} confirm a forgery, {} reject it",
        d.status.as_str(),
        d.challenger,
        d.deadline,
        d.confirmations,
        d.rejections
    );
}

/// The re-derived digest of `operator`'s signed mismatch spot check of `token`, from the node's
/// provenance report. A step check's mismatch re-derives no digest, so it does not count.
async fn own_mismatch(node: &str, token: &str, operator: alloy::primitives::Address) -> Result<B256> {
    let url = format!("{}/v1/tokens/{token}/provenance", node.trim_end_matches('/'));
    let report: serde_json::Value = reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("{url} did not answer: is the node running? Or pass --digest"))?
        .json()
        .await?;
    let checks = report["peerChecks"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mine = |c: &&serde_json::Value| {
        c["outcome"] == "mismatch" && c["checker"].as_str().and_then(|a| a.parse().ok()) == Some(operator)
    };
    let own = checks.iter().filter(mine).find(|c| c["stepCheck"].is_null());
    let Some(check) = own else {
        if checks.iter().any(|c| mine(&c)) {
            bail!(
                "{operator}'s mismatch of token {token} is a step check, which re-derives no digest: \
                 re-generate it (`genmint verify {token} --regenerate`) and pass --digest"
            );
        }
        bail!(
            "{operator} has no mismatch spot check of token {token} at {url}: wait for one, or pass --digest"
        );
    };
    check["regeneratedPixelDigest"]
        .as_str()
        .context("the spot check has no regeneratedPixelDigest")?
        .parse()
        .context("the spot check's regeneratedPixelDigest")
}
