//! Assembles a running node from its data dir: operator key, chain, Kubo, model, job store,
//! pipeline, peer-to-peer network and HTTP API, with graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use genmint_model_runtime::{DeviceChoice, load_model};
use tokio::sync::watch;
use tracing::info;

use crate::chain::ChainClient;
use crate::config::{Config, OPERATOR_KEY_ENV, OPERATOR_KEY_FILE};
use crate::ipfs::KuboClient;
use crate::jobs::JobStore;
use crate::jobs::inference::Inference;
use crate::jobs::pipeline::{Pipeline, PipelineParts};
use crate::network::Network;
use crate::provenance::credentials::Credentials;

/// How long open HTTP responses (event streams included) may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A node serving HTTP until [`RunningNode::shutdown`].
pub struct RunningNode {
    pub addr: SocketAddr,
    pub pipeline: Arc<Pipeline>,
    /// The node's membership of the peer-to-peer network (`p2p.enabled`).
    pub network: Option<Arc<Network>>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningNode {
    /// The base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for open responses to finish. Jobs in flight stay in the
    /// store and resume at the next start.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(network) = &self.network {
            network.shutdown().await;
        }
        let mut server = self.server;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(result) => result.context("HTTP server task")?.context("HTTP server"),
            Err(_) => {
                // Open event streams of unfinished jobs would hold the server forever.
                server.abort();
                Ok(())
            }
        }
    }
}

/// Reads the operator key from `GENMINT_OPERATOR_KEY` or `<data dir>/operator.key`.
pub fn operator_key(data_dir: &Path) -> Result<PrivateKeySigner> {
    let (text, source) = match std::env::var(OPERATOR_KEY_ENV) {
        Ok(key) => (key, OPERATOR_KEY_ENV.to_owned()),
        Err(_) => {
            let path = data_dir.join(OPERATOR_KEY_FILE);
            let key = std::fs::read_to_string(&path).with_context(|| {
                format!("no operator key: {path:?} is unreadable and {OPERATOR_KEY_ENV} is unset; run `genmint init`")
            })?;
            (key, path.display().to_string())
        }
    };
    text.trim()
        .parse()
        .with_context(|| format!("the operator key in {source} is not a 32-byte hex private key"))
}

fn device(name: &str) -> Result<DeviceChoice> {
    match name {
        "cpu" => Ok(DeviceChoice::Cpu),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => Ok(DeviceChoice::Cuda(index)),
            _ => bail!("model.device = {other:?}: use \"cpu\" or \"cuda:N\""),
        },
    }
}

/// Starts a node from its data dir and configuration.
pub async fn start(data_dir: &Path, config: &Config) -> Result<RunningNode> {
    let operator = operator_key(data_dir)?;
    let contract: Address = config
        .chain
        .contract
        .as_deref()
        .context("no contract configured: set chain.contract in genmint.toml, or run `genmint dev`")?
        .parse()
        .context("chain.contract is not an address")?;
    let chain = ChainClient::connect(&config.chain.rpc_url, operator.clone(), contract)
        .await?
        .with_receipt_timeout(Duration::from_secs(config.chain.receipt_timeout_secs));
    let chain_id = chain.chain_id();
    let min_fee = config.limits.min_fee_wei.parse().with_context(|| {
        format!("limits.min_fee_wei = {:?} is not a decimal wei amount", config.limits.min_fee_wei)
    })?;
    if !chain.is_node(operator.address()).await? {
        tracing::warn!(operator = %operator.address(), "this operator is not registered on the contract; mints will be refused");
    }
    let ipfs = KuboClient::new(&config.ipfs.api_url)?;

    let model_dir = config.model_dir(data_dir);
    let device = device(&config.model.device)?;
    info!(dir = %model_dir.display(), "loading model");
    let generator = tokio::task::spawn_blocking(move || load_model(&model_dir, device)).await??;
    let inference = Inference::spawn(generator, config.limits.max_queued_jobs.max(1))?;
    let model = inference.descriptor();
    info!(name = %model.name, hash = %model.hash, "serving model");

    let (credentials, created) = Credentials::load_or_create(data_dir, &operator)?;
    if created {
        info!(sha256 = %credentials.fingerprint(), "created the content-credentials signing certificate");
    }

    let images_dir: PathBuf = data_dir.join("images");
    std::fs::create_dir_all(&images_dir).with_context(|| format!("creating {images_dir:?}"))?;
    let store = Arc::new(JobStore::open(&data_dir.join("jobs.sqlite"))?);
    let pipeline = Pipeline::new(PipelineParts {
        store,
        inference,
        ipfs,
        chain: chain.clone(),
        operator: operator.clone(),
        chain_id,
        contract,
        images_dir,
        max_prompt_bytes: config.limits.max_prompt_bytes,
        max_queued_jobs: config.limits.max_queued_jobs,
        min_fee,
        credentials,
    });
    let network = if config.p2p.enabled {
        let (network, events) = Network::start(data_dir, &config.p2p, &operator, chain).await?;
        pipeline.attach_network(network.clone());
        network.serve(pipeline.clone(), events);
        info!(peer = %network.peer_id(), addrs = ?network.bootstrap_addrs().await?, "joined the network");
        Some(network)
    } else {
        None
    };
    let resumed = pipeline.resume_all()?;
    if resumed > 0 {
        info!(resumed, "resumed unfinished jobs");
    }

    let listener = tokio::net::TcpListener::bind(config.http.listen).await.with_context(|| {
        format!("cannot listen on {}: is another node running there?", config.http.listen)
    })?;
    let addr = listener.local_addr()?;
    let app = crate::api::router(pipeline.clone(), config.limits.max_body_bytes);
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    info!(%addr, chain_id, %contract, "node listening");
    Ok(RunningNode { addr, pipeline, network, stop, server })
}
