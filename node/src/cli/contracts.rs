//! `genmint contracts deploy`: deploys `GenmintNFT` from the committed artifact with the operator
//! key and records the deployment in `<out>/<chain id>.json` (address, block, transaction, owner,
//! royalty rate, ABI hash, compiler, timestamp), the file clients and operators read the address
//! from. `contracts/script/Deploy.s.sol` does the same deployment with forge.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, keccak256};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::chain::{ARTIFACT_JSON, ChainClient, DEFAULT_ROYALTY_BPS, Deployment};

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Deploy GenmintNFT with the operator key and write <out>/<chain id>.json.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(long, env = "GENMINT_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// The contract owner, who curates the registries [default: the deploying key's address].
    #[arg(long)]
    pub owner: Option<Address>,
    /// The creator royalty rate in basis points (at most 1000, 10%).
    #[arg(long, default_value_t = DEFAULT_ROYALTY_BPS)]
    pub royalty_bps: u16,
    /// Folder of the deployment records.
    #[arg(long, default_value = "contracts/deployments")]
    pub out: PathBuf,
    /// Replace an existing record for this chain.
    #[arg(long)]
    pub force: bool,
}

/// What `<out>/<chain id>.json` holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub chain_id: u64,
    pub address: Address,
    pub block_number: u64,
    pub transaction_hash: String,
    /// The deployment block's timestamp, unix seconds.
    pub timestamp: u64,
    pub owner: Address,
    pub deployer: Address,
    pub royalty_bps: u16,
    /// keccak256 of the artifact's ABI as compact JSON with sorted keys: equal hashes, equal ABIs.
    pub abi_hash: String,
    pub compiler: serde_json::Value,
}

pub async fn run(data_dir: &Path, command: ContractsCommand) -> Result<()> {
    match command {
        ContractsCommand::Deploy(args) => deploy(data_dir, args).await,
    }
}

async fn deploy(data_dir: &Path, args: DeployArgs) -> Result<()> {
    if args.royalty_bps > 1000 {
        bail!("--royalty-bps is at most 1000 (10%), got {}", args.royalty_bps);
    }
    let signer = crate::server::operator_key(data_dir)?;
    let deployer = signer.address();
    let owner = args.owner.unwrap_or(deployer);
    eprintln!("deploying GenmintNFT to {} from {deployer} (owner {owner})", args.rpc_url);
    let deployment = ChainClient::deploy_with(&args.rpc_url, signer, owner, args.royalty_bps).await?;
    let chain_id = ChainClient::connect_read_only(&args.rpc_url, deployment.address).await?.chain_id();
    let record = record(chain_id, deployer, &deployment)?;
    let path = write_record(&args.out, &record, args.force)?;
    println!("GenmintNFT {} on chain {chain_id} (block {})", deployment.address, deployment.block_number);
    println!("recorded in {}", path.display());
    println!("next: register nodes and models as the owner, and set chain.contract in genmint.toml");
    Ok(())
}

/// The record of `deployment`, with the committed artifact's ABI hash and compiler.
pub fn record(chain_id: u64, deployer: Address, deployment: &Deployment) -> Result<DeploymentRecord> {
    let artifact: serde_json::Value =
        serde_json::from_str(ARTIFACT_JSON).context("the committed contract artifact is not JSON")?;
    let abi = serde_json::to_vec(&artifact["abi"])?;
    Ok(DeploymentRecord {
        chain_id,
        address: deployment.address,
        block_number: deployment.block_number,
        transaction_hash: deployment.tx_hash.to_string(),
        timestamp: deployment.timestamp,
        owner: deployment.owner,
        deployer,
        royalty_bps: deployment.royalty_bps,
        abi_hash: keccak256(abi).to_string(),
        compiler: artifact["compiler"].clone(),
    })
}

/// Writes `<out>/<chain id>.json`; refuses to replace a record unless `force`.
pub fn write_record(out: &Path, record: &DeploymentRecord, force: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{}.json", record.chain_id));
    if path.exists() && !force {
        bail!(
            "{} already records a deployment on chain {}: pass --force to replace it",
            path.display(),
            record.chain_id
        );
    }
    let text = serde_json::to_string_pretty(record)? + "\n";
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
