//! A cluster of `genmint node` processes on one anvil and one Kubo (or a Kubo of their own, on a
//! loopback swarm), each configured by a [`NodeSpec`], for the tests that need several nodes
//! (`network`, `reliability`, `replication`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use genmint_node::chain::ChainClient;
use genmint_node::config::{Config, OPERATOR_KEY_FILE};
use genmint_node::devnet::anvil::{Anvil, DevAccount};
use genmint_node::devnet::kubo::KuboDaemon;
use genmint_node::provenance::eip712::{GenerationRequest, SignedRequest, domain, sign_request};
use serde_json::Value;
use tokio::process::Child;

use crate::support::{IGenmint, free_port, now_unix, spawn_node};

/// One node process of the cluster.
pub(crate) struct Node {
    pub dir: PathBuf,
    pub url: String,
    pub operator: PrivateKeySigner,
    pub peer_id: String,
    pub p2p_port: u16,
    pub child: Option<Child>,
    /// The node's own Kubo, when its spec asked for one.
    pub kubo: Option<KuboDaemon>,
}

impl Node {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    pub fn bootstrap_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id)
    }

    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }
}

/// How one node is set up.
#[derive(Clone, Copy)]
pub(crate) struct NodeSpec<'a> {
    pub model: &'a str,
    pub min_fee_wei: &'a str,
    /// Kubo API the node uses (a dead address makes it stop before pinning).
    pub ipfs_api: Option<&'a str>,
    /// Chain RPC the node uses (anvil's when `None`).
    pub rpc_url: Option<&'a str>,
    /// `[limits] max_queued_jobs`; the default when `None`.
    pub max_queued_jobs: Option<usize>,
    /// Its own Kubo daemon, online on a loopback swarm (else the cluster's shared one).
    pub own_kubo: bool,
}

impl Default for NodeSpec<'_> {
    fn default() -> Self {
        Self {
            model: "model-x",
            min_fee_wei: "0",
            ipfs_api: None,
            rpc_url: None,
            max_queued_jobs: None,
            own_kubo: false,
        }
    }
}

pub(crate) struct Cluster {
    pub dir: tempfile::TempDir,
    pub anvil: Anvil,
    pub kubo: KuboDaemon,
    pub contract: Address,
    pub models: Vec<(String, B256)>,
    pub creator: PrivateKeySigner,
    pub nodes: Vec<Node>,
}

/// A test-size model under its own name (so its hash differs from the other test models').
pub(crate) fn write_named_test_model(dir: &Path, name: &str) -> Result<B256> {
    genmint_model_runtime::write_test_model(dir)?;
    let config_path = dir.join("genmint-model.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["name"] = Value::String(name.into());
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    Ok(B256::from(genmint_model_runtime::model_hash(dir)?.0))
}

impl Cluster {
    /// anvil, Kubo, the contract with models "model-x" and "model-y" registered, and one node per
    /// spec (the first is the bootstrap peer of the others). Nodes are configured, not started.
    pub async fn new(specs: &[NodeSpec<'_>]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let anvil = Anvil::start().await?;
        let kubo = KuboDaemon::start(&dir.path().join("kubo")).await?;
        let owner = DevAccount::Owner.key();
        let contract = ChainClient::deploy(anvil.rpc_url(), owner.clone()).await?;
        let mut cluster = Self {
            dir,
            anvil,
            kubo,
            contract,
            models: Vec::new(),
            creator: DevAccount::Creator.key(),
            nodes: Vec::new(),
        };
        for spec in specs {
            cluster.add_node(*spec).await?;
        }
        Ok(cluster)
    }

    /// Configures one more node (not started): its model registered if new, its operator
    /// funded and registered, bootstrapping from the first node.
    pub async fn add_node(&mut self, spec: NodeSpec<'_>) -> Result<()> {
        let admin =
            ChainClient::connect(self.anvil.rpc_url(), DevAccount::Owner.key(), self.contract).await?;
        let index = self.nodes.len();
        let node_dir = self.dir.path().join(format!("node-{index}"));
        let hash = write_named_test_model(&node_dir.join("models/default"), spec.model)?;
        if !self.models.iter().any(|(_, h)| *h == hash) {
            admin.register_model(hash, spec.model, "genmint tests", "").await?;
            self.models.push((spec.model.to_owned(), hash));
        }
        let operator = if index == 0 { DevAccount::NodeOperator.key() } else { PrivateKeySigner::random() };
        self.anvil.fund(operator.address()).await?;
        admin.register_node(operator.address()).await?;
        std::fs::write(
            node_dir.join(OPERATOR_KEY_FILE),
            format!("0x{}\n", hex::encode(operator.to_bytes())),
        )?;
        let peer_id = genmint_node::network::identity::load_or_create(&node_dir)?.public().to_peer_id();

        let kubo = if spec.own_kubo {
            Some(KuboDaemon::start_networked(&node_dir.join("kubo")).await?)
        } else {
            None
        };
        let (http_port, p2p_port) = (free_port(), free_port());
        let mut config = Config::default();
        config.http.listen = ([127, 0, 0, 1], http_port).into();
        config.chain.rpc_url = spec.rpc_url.unwrap_or(self.anvil.rpc_url()).to_owned();
        config.chain.contract = Some(self.contract.to_string());
        let kubo_api = kubo.as_ref().map_or(self.kubo.api_url(), KuboDaemon::api_url);
        config.ipfs.api_url = spec.ipfs_api.unwrap_or(kubo_api).to_owned();
        config.limits.min_fee_wei = spec.min_fee_wei.into();
        // One creator sends every request here, bursts included: what is tested is placement.
        config.limits.creator_requests_per_minute = 0;
        config.limits.address_requests_per_minute = 0;
        if let Some(queue) = spec.max_queued_jobs {
            config.limits.max_queued_jobs = queue;
        }
        config.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{p2p_port}")];
        config.p2p.bootstrap = self.nodes.first().map(Node::bootstrap_addr).into_iter().collect();
        config.p2p.advert_interval_secs = 2;
        config.p2p.request_timeout_secs = 3;
        config.save(&node_dir)?;
        self.nodes.push(Node {
            dir: node_dir,
            url: format!("http://127.0.0.1:{http_port}"),
            operator,
            peer_id: peer_id.to_string(),
            p2p_port,
            child: None,
            kubo,
        });
        Ok(())
    }

    pub fn model(&self, name: &str) -> B256 {
        self.models.iter().find(|(n, _)| n == name).map(|(_, h)| *h).expect("model registered")
    }

    pub async fn start_all(&mut self) -> Result<()> {
        for index in 0..self.nodes.len() {
            self.start(index).await?;
        }
        Ok(())
    }

    pub async fn start(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        node.child = Some(spawn_node(&node.dir, &node.url, &node.dir.join("node.log")).await?);
        Ok(())
    }

    pub fn logs(&self) -> String {
        self.nodes.iter().enumerate().map(|(i, n)| format!("--- node {i} ---\n{}", n.log())).collect()
    }

    /// Waits until node 0 lists `model` with `providers` registered providers.
    pub async fn wait_for_providers(&self, model: B256, providers: usize) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let models: Value =
                reqwest::get(format!("{}/v1/models", self.nodes[0].url)).await?.json().await?;
            let entry = models["models"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["hash"].as_str().is_some_and(|h| h.eq_ignore_ascii_case(&model.to_string())));
            if let Some(entry) = entry
                && entry["providers"].as_array().is_some_and(|p| p.len() >= providers)
            {
                return Ok(entry.clone());
            }
            if Instant::now() > deadline {
                bail!("node 0 never saw {providers} providers of {model}: {models}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn signed_request(&self, model: B256, prompt: &str, seed: u64, fee: u64) -> SignedRequest {
        let request = GenerationRequest {
            creator: self.creator.address(),
            modelHash: model,
            prompt: prompt.into(),
            negativePrompt: String::new(),
            seed,
            width: 32,
            height: 32,
            steps: 4,
            guidance: 400,
            scheduler: "ddim".into(),
            fee: U256::from(fee),
            nonce: U256::from(seed),
            deadline: now_unix() + 3600,
        };
        let signature =
            sign_request(&self.creator, &request, &domain(self.anvil.chain_id(), self.contract)).unwrap();
        SignedRequest { request, signature }
    }

    pub async fn submit(&self, node: usize, signed: &SignedRequest) -> Result<(reqwest::StatusCode, Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/jobs", self.nodes[node].url))
            .json(signed)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    pub async fn job(&self, node: usize, id: &str) -> Result<Value> {
        Ok(reqwest::get(format!("{}/v1/jobs/{id}", self.nodes[node].url)).await?.json().await?)
    }

    /// Polls node `node`'s view of the job until `done` holds.
    pub async fn wait_for(&self, node: usize, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.job(node, id).await?;
            if done(&job) {
                return Ok(job);
            }
            let state = job["state"].as_str().unwrap_or_default();
            if matches!(state, "failed" | "cancelled" | "expired") {
                bail!("job {id} ended {state}: {job}\n{}", self.logs());
            }
            if Instant::now() > deadline {
                bail!("job {id} at node {node} is still {job}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn chain(&self) -> Result<ChainClient> {
        Ok(ChainClient::connect_read_only(self.anvil.rpc_url(), self.contract).await?)
    }

    /// Checks the token of job `id`: owned by the creator, minted once, attested by `node`'s operator.
    pub async fn expect_token_by(&self, id: &str, node: usize) -> Result<()> {
        let token = U256::from_be_bytes(id.parse::<B256>()?.0);
        let chain = self.chain().await?;
        assert_eq!(chain.owner_of(token).await?, Some(self.creator.address()));
        let record = chain.provenance(token).await?.context("no provenance record")?;
        assert_eq!(record.node, self.nodes[node].operator.address(), "the chain names the generating node");
        let provider = ProviderBuilder::new().connect_http(self.anvil.rpc_url().parse()?);
        let logs = IGenmint::new(self.contract, provider)
            .AigcData_filter()
            .topic1(token)
            .from_block(0)
            .query()
            .await?;
        assert_eq!(logs.len(), 1, "exactly one mint");
        Ok(())
    }
}
