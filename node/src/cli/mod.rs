//! The `genmint` command line: one file per subcommand.
//!
//! `init` prepares a data dir, `node` runs a node from it, `dev` brings up a whole local stack,
//! `generate` signs and submits a request, `verify` checks a token end to end, `detect` reads the
//! invisible watermark of an image and names its token, `models`
//! lists, hashes and evaluates models, `peers` shows the node's place in the network, `contracts
//! deploy` deploys the contract and records it, `stake`/`unstake` manage membership by stake and
//! `dispute` takes a forged token to the chain.

mod cancel;
mod contracts;
mod detect;
mod dev;
mod generate;
mod init;
mod models;
mod models_bench;
mod peers;
mod stake;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "genmint",
    version,
    about = "Verifiable AI-generated art: generate, pin to IPFS, mint on an EVM chain."
)]
pub struct Cli {
    /// The node's data dir (config, keys, job store, images).
    #[arg(long, global = true, env = "GENMINT_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text for people, or as one JSON object per line for log collectors.
    #[arg(long, global = true, env = "GENMINT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data dir: default genmint.toml and a new operator key.
    Init(init::InitArgs),
    /// Run a node from the data dir until Ctrl-C.
    Node,
    /// Start a local stack: anvil, Kubo, the contract, and a node serving the default model.
    Dev(dev::DevArgs),
    /// Sign a generation request with the creator key and submit it to a node.
    Generate(generate::GenerateArgs),
    /// Cancel one of the creator's jobs: sign its cancel with the creator key and send it.
    Cancel(cancel::CancelArgs),
    /// Check a token end to end: chain record, metadata, image bytes, signatures, registries.
    Verify(verify::VerifyArgs),
    /// Look for genmint's invisible watermark in an image and name the token it points to.
    Detect(detect::DetectArgs),
    /// List, hash and evaluate models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Show the node's peer id, bootstrap addresses and connected peers.
    Peers(peers::PeersArgs),
    /// Deploy the GenmintNFT contract.
    #[command(subcommand)]
    Contracts(contracts::ContractsCommand),
    /// Join as a node by staking (the contract's NODE_STAKE), or add to the stake; --status prints it.
    Stake(stake::StakeArgs),
    /// Ask the stake back (it unlocks after the contract's delay), or --withdraw what has unlocked.
    Unstake(stake::UnstakeArgs),
    /// Dispute a forged token on chain with this operator's mismatch spot check; --vote, --resolve.
    Dispute(stake::DisputeArgs),
}

impl Cli {
    /// The default log filter for the chosen verbosity.
    pub fn log_filter(&self) -> &'static str {
        match self.verbose {
            0 => "info,hyper=warn,alloy=warn,c2pa=warn",
            1 => "debug,hyper=info,c2pa=info",
            _ => "trace",
        }
    }
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".genmint")
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(&cli.data_dir, args).map(|()| ExitCode::SUCCESS),
        Command::Node => run_node(&cli.data_dir).await.map(|()| ExitCode::SUCCESS),
        Command::Dev(args) => dev::run(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
        Command::Generate(args) => generate::run(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
        Command::Cancel(args) => cancel::run(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(&cli.data_dir, args).await,
        Command::Detect(args) => detect::run(args).await,
        Command::Models(command) => models::run(&cli.data_dir, command).map(|()| ExitCode::SUCCESS),
        Command::Peers(args) => peers::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Contracts(command) => {
            contracts::run(&cli.data_dir, command).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Stake(args) => stake::stake(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
        Command::Unstake(args) => stake::unstake(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
        Command::Dispute(args) => stake::dispute(&cli.data_dir, args).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn run_node(data_dir: &std::path::Path) -> Result<()> {
    let config = crate::config::Config::load(data_dir)?;
    let node = crate::server::start(data_dir, &config).await?;
    eprintln!("genmint node listening on {} (Ctrl-C to stop)", node.url());
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping; unfinished jobs resume at the next start");
    node.shutdown().await;
    Ok(())
}
