//! `genmint dev`: one command for a whole local stack — anvil, Kubo, the GenmintNFT contract
//! (deployed and registries filled), and a node serving the built-in default model
//! (`genmint-emoji-32`, 32×32 emoji-style pictures) — then prints the URL and the next command. Ctrl-C stops everything. State lives in `<data dir>/dev` and starts fresh
//! each run, because the chain does.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use genmint_model_runtime::DEFAULT_MODEL_NAME;

use crate::chain::ChainClient;
use crate::config::{Config, OPERATOR_KEY_FILE};
use crate::devnet::anvil::{Anvil, DevAccount};
use crate::devnet::kubo::KuboDaemon;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the node's HTTP API and web page.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of anvil's JSON-RPC endpoint.
    #[arg(long, default_value_t = 8545)]
    pub anvil_port: u16,
    /// Port of Kubo's RPC API.
    #[arg(long, default_value_t = 5001)]
    pub ipfs_port: u16,
}

/// The author the default model is registered under.
const DEFAULT_MODEL_AUTHOR: &str = "genmint";

pub async fn run(data_dir: &Path, args: DevArgs) -> Result<()> {
    let root = data_dir.join("dev");
    let node_dir = root.join("node");
    if node_dir.exists() {
        std::fs::remove_dir_all(&node_dir)
            .with_context(|| format!("clearing the previous dev node {node_dir:?}"))?;
    }
    std::fs::create_dir_all(&node_dir).with_context(|| format!("creating {node_dir:?}"))?;

    eprintln!("starting anvil on 127.0.0.1:{}", args.anvil_port);
    let anvil = Anvil::start_on(args.anvil_port).await?;
    eprintln!("starting Kubo on 127.0.0.1:{}", args.ipfs_port);
    let kubo = KuboDaemon::start_on(&root.join("kubo"), args.ipfs_port).await?;

    let model_dir = node_dir.join("models/default");
    eprintln!("installing the default model {DEFAULT_MODEL_NAME} in {}", model_dir.display());
    let hash = super::models::install_default(&model_dir)?;

    let owner = DevAccount::Owner.key();
    let operator = DevAccount::NodeOperator.key();
    eprintln!("deploying GenmintNFT");
    let contract = ChainClient::deploy(anvil.rpc_url(), owner.clone()).await?;
    let admin = ChainClient::connect(anvil.rpc_url(), owner, contract).await?;
    admin.register_model(hash.0.into(), DEFAULT_MODEL_NAME, DEFAULT_MODEL_AUTHOR, "").await?;
    admin.register_node(operator.address()).await?;

    super::init::write_secret(
        &node_dir.join(OPERATOR_KEY_FILE),
        &format!("0x{}\n", hex::encode(operator.to_bytes())),
    )?;
    let mut config = Config::default();
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    config.chain.rpc_url = anvil.rpc_url().to_owned();
    config.chain.contract = Some(contract.to_checksum(None));
    config.ipfs.api_url = kubo.api_url().to_owned();
    config.save(&node_dir)?;
    let node = crate::server::start(&node_dir, &config).await?;

    println!();
    println!("genmint dev is up");
    println!("  node      {}", node.url());
    println!("  model     {DEFAULT_MODEL_NAME} {hash}");
    println!(
        "            (the built-in emoji model: 32x32 pictures from a short prompt, e.g. \"a red apple\")"
    );
    println!("  chain     {} (chain id {}), contract {contract}", anvil.rpc_url(), anvil.chain_id());
    println!("  ipfs      {}", kubo.api_url());
    println!("  data      {}", node_dir.display());
    println!();
    println!("next, in another terminal:");
    println!("  genmint generate \"grinning face with smiling eyes\" --wait");
    println!();
    println!("Ctrl-C stops the node, Kubo and anvil.");
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping");
    node.shutdown().await?;
    kubo.stop().await?;
    anvil.stop().await?;
    Ok(())
}
