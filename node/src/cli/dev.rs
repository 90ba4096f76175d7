//! `genmint dev`: one command for a whole local stack — anvil, Kubo, the GenmintNFT contract
//! (deployed and registries filled), and one or more nodes — then prints the URLs and the next
//! command, and serves the web page with its development wallet. Ctrl-C stops everything. State lives in `<data dir>/dev` and starts fresh each run,
//! because the chain does.
//!
//! With `--nodes N` the nodes share anvil and Kubo but each has its own data dir, HTTP and p2p
//! ports and operator key, and they serve different models (odd nodes the built-in
//! `genmint-emoji-32`; even nodes the test-size model and the emoji model beside it, two models on
//! one node), so a request sent to node 1 for the test-size model is visibly forwarded. Nodes 2..N bootstrap from node 1. Nodes spot-check each other every
//! [`DEV_SPOT_CHECK_INTERVAL_SECS`], so from three nodes on (two serving the same model) every token
//! soon shows a peer's check in `GET /v1/tokens/{id}/provenance`.

use std::net::SocketAddr;
use std::path::Path;

use alloy::primitives::{Address, keccak256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use clap::Args;
use genmint_model_runtime::{DEFAULT_MODEL_NAME, ModelHash, TEST_MODEL_NAME, model_hash, write_test_model};

use crate::chain::ChainClient;
use crate::config::{Config, ModelConfig, OPERATOR_KEY_FILE};
use crate::devnet::anvil::{Anvil, DevAccount};
use crate::devnet::kubo::KuboDaemon;
use crate::server::RunningNode;

/// The most nodes `genmint dev` starts.
const MAX_NODES: usize = 8;
/// How often dev nodes spot-check each other's tokens: often, so a dev network shows it.
const DEV_SPOT_CHECK_INTERVAL_SECS: u64 = 20;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the first node's HTTP API and web page (node i uses port + i - 1).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of anvil's JSON-RPC endpoint.
    #[arg(long, default_value_t = 8545)]
    pub anvil_port: u16,
    /// Port of Kubo's RPC API.
    #[arg(long, default_value_t = 5001)]
    pub ipfs_port: u16,
    /// How many nodes to start (1 to 8).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// The first node's libp2p port, TCP and QUIC (node i uses p2p-port + i - 1).
    #[arg(long, default_value_t = 4001)]
    pub p2p_port: u16,
    /// The smallest fee (wei) the nodes run a job for; above 0, creators deposit before they generate.
    #[arg(long, default_value = "0")]
    pub min_fee_wei: String,
}

/// The author the built-in models are registered under.
const DEFAULT_MODEL_AUTHOR: &str = "genmint";

/// The operator key of dev node `index` (1-based): anvil's operator account for the first node,
/// fixed derived keys (funded through anvil) for the others.
fn operator_key(index: usize) -> Result<PrivateKeySigner> {
    if index == 1 {
        return Ok(DevAccount::NodeOperator.key());
    }
    let seed = keccak256(format!("genmint dev operator {index}"));
    PrivateKeySigner::from_bytes(&seed).context("deriving a dev operator key")
}

/// A model a dev node serves.
struct DevModel {
    name: &'static str,
    hash: ModelHash,
    /// Relative to the node's data dir.
    dir: &'static str,
}

/// Installs the models dev node `index` serves (under `node_dir`), its primary first.
fn install_models(index: usize, node_dir: &Path) -> Result<Vec<DevModel>> {
    let emoji = |dir: &'static str| -> Result<DevModel> {
        Ok(DevModel {
            name: DEFAULT_MODEL_NAME,
            hash: super::models::install_default(&node_dir.join(dir))?,
            dir,
        })
    };
    if index % 2 == 1 {
        return Ok(vec![emoji("models/default")?]);
    }
    let tiny_dir = "models/default";
    write_test_model(&node_dir.join(tiny_dir))?;
    let tiny = DevModel { name: TEST_MODEL_NAME, hash: model_hash(&node_dir.join(tiny_dir))?, dir: tiny_dir };
    Ok(vec![tiny, emoji("models/emoji")?])
}

/// A dev node that is running, with the model it serves.
struct DevNode {
    node: RunningNode,
    models: Vec<DevModel>,
}

/// The shared parts every dev node uses.
struct Stack {
    anvil: Anvil,
    kubo: KuboDaemon,
    admin: ChainClient,
    contract: Address,
}

pub async fn run(data_dir: &Path, args: DevArgs) -> Result<()> {
    if !(1..=MAX_NODES).contains(&args.nodes) {
        bail!("--nodes {}: start between 1 and {MAX_NODES} nodes", args.nodes);
    }
    let root = data_dir.join("dev");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("node") {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("clearing the previous dev node {:?}", entry.path()))?;
        }
    }
    let stack = start_stack(&root, &args).await?;
    let mut nodes: Vec<DevNode> = Vec::new();
    let mut bootstrap: Vec<String> = Vec::new();
    let mut registered_models = Vec::new();
    for index in 1..=args.nodes {
        let node = start_node(&stack, &root, &args, index, &bootstrap, &mut registered_models).await?;
        if index == 1
            && let Some(network) = &node.node.network
        {
            bootstrap = network.bootstrap_addrs().await?.into_iter().take(1).collect();
        }
        nodes.push(node);
    }
    print_summary(&stack, &root, &nodes);
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping");
    for dev in nodes {
        dev.node.shutdown().await;
    }
    stack.kubo.stop().await?;
    stack.anvil.stop().await?;
    Ok(())
}

/// anvil, Kubo and a freshly deployed contract.
async fn start_stack(root: &Path, args: &DevArgs) -> Result<Stack> {
    eprintln!("starting anvil on 127.0.0.1:{}", args.anvil_port);
    let anvil = Anvil::start_on(args.anvil_port).await?;
    eprintln!("starting Kubo on 127.0.0.1:{}", args.ipfs_port);
    let kubo = KuboDaemon::start_on(&root.join("kubo"), args.ipfs_port).await?;
    let owner = DevAccount::Owner.key();
    eprintln!("deploying GenmintNFT");
    let contract = ChainClient::deploy(anvil.rpc_url(), owner.clone()).await?;
    let admin = ChainClient::connect(anvil.rpc_url(), owner, contract).await?;
    Ok(Stack { anvil, kubo, admin, contract })
}

/// Installs, registers, configures and starts dev node `index`.
async fn start_node(
    stack: &Stack,
    root: &Path,
    args: &DevArgs,
    index: usize,
    bootstrap: &[String],
    registered_models: &mut Vec<ModelHash>,
) -> Result<DevNode> {
    let node_dir = root.join(format!("node-{index}"));
    std::fs::create_dir_all(&node_dir).with_context(|| format!("creating {node_dir:?}"))?;
    let models = install_models(index, &node_dir)?;
    for model in &models {
        if !registered_models.contains(&model.hash) {
            stack.admin.register_model(model.hash.0.into(), model.name, DEFAULT_MODEL_AUTHOR, "").await?;
            registered_models.push(model.hash);
        }
    }
    let operator = operator_key(index)?;
    if index > 1 {
        stack.anvil.fund(operator.address()).await?;
    }
    stack.admin.register_node(operator.address()).await?;
    super::init::write_secret(
        &node_dir.join(OPERATOR_KEY_FILE),
        &format!("0x{}\n", hex::encode(operator.to_bytes())),
    )?;
    let offset = u16::try_from(index - 1).unwrap_or_default();
    let p2p_port = args.p2p_port + offset;
    let mut config = Config::default();
    let served = models.iter().map(|m| ModelConfig { dir: m.dir.into(), ..ModelConfig::default() }).collect();
    config.model = crate::config::Models::of(served).context("a dev node serves at least one model")?;
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], args.port + offset));
    config.chain.rpc_url = stack.anvil.rpc_url().to_owned();
    config.chain.contract = Some(stack.contract.to_checksum(None));
    config.ipfs.api_url = stack.kubo.api_url().to_owned();
    config.p2p.listen =
        vec![format!("/ip4/127.0.0.1/tcp/{p2p_port}"), format!("/ip4/127.0.0.1/udp/{p2p_port}/quic-v1")];
    config.p2p.bootstrap = bootstrap.to_vec();
    config.p2p.spot_check_interval_secs = DEV_SPOT_CHECK_INTERVAL_SECS;
    config.limits.min_fee_wei = args.min_fee_wei.clone();
    // The page may offer wallets the local chain, and its own development wallet.
    config.http.wallet_rpc_url = Some(stack.anvil.rpc_url().to_owned());
    config.http.dev_wallet = true;
    config.save(&node_dir)?;
    let names: Vec<&str> = models.iter().map(|m| m.name).collect();
    eprintln!("starting node {index} ({}) in {}", names.join(", "), node_dir.display());
    let node = crate::server::start(&node_dir, &config).await?;
    Ok(DevNode { node, models })
}

fn print_summary(stack: &Stack, root: &Path, nodes: &[DevNode]) {
    println!();
    println!("genmint dev is up");
    for (index, DevNode { node, models }) in nodes.iter().enumerate() {
        let peer = node.network.as_ref().map(|n| n.peer_id().to_string()).unwrap_or_default();
        let served: Vec<String> = models.iter().map(|m| format!("{} {}", m.name, m.hash)).collect();
        println!("  node {}    {}  serves {}", index + 1, node.url(), served.join(", "));
        println!("            peer {peer}, operator {}", node.jobs.operator());
    }
    println!(
        "            (genmint-emoji-32 draws 32x32 emoji-style pictures from a short prompt, e.g. \"a red apple\")"
    );
    let (anvil, contract) = (&stack.anvil, stack.contract);
    println!("  chain     {} (chain id {}), contract {contract}", anvil.rpc_url(), anvil.chain_id());
    println!("  ipfs      {}", stack.kubo.api_url());
    println!("  data      {}", root.display());
    println!();
    println!(
        "open {}/ in a browser to generate and mint from the page (a development wallet is built in)",
        nodes[0].node.url()
    );
    println!();
    println!("or, in another terminal:");
    println!("  genmint generate \"grinning face with smiling eyes\" --wait");
    if nodes.len() > 1 {
        println!(
            "  genmint generate \"a red apple\" --model {TEST_MODEL_NAME} --wait   (node 1 forwards it to node 2)"
        );
        let second = nodes[1].node.url();
        println!("  genmint generate \"a red apple\" --node {second} --wait   (node 2 serves both models)");
        println!("  genmint peers");
    }
    println!();
    println!("Ctrl-C stops the nodes, Kubo and anvil.");
}
