//! The peer-to-peer network end to end: three `genmint node` processes on one anvil and one Kubo.
//! Node A serves model X; B and C serve model Y. A job for Y submitted to A is generated and minted
//! by B or C (the chain names that node); when the executor dies mid-job the job moves to the other
//! one and still ends with exactly one token; a rogue peer's forged advert and junk requests change
//! nothing for A.

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
use genmint_p2p::advert::{Advert, AdvertVerifier, AdvertisedModel};
use genmint_p2p::wire::{JobRequest, JobResponse, JobStatus};
use genmint_p2p::{Keypair, NetworkConfig};
use serde_json::Value;
use tokio::process::Child;

use crate::support::{IGenmint, free_port, now_unix, spawn_node};

/// One node process of the cluster.
struct Node {
    dir: PathBuf,
    url: String,
    operator: PrivateKeySigner,
    peer_id: String,
    p2p_port: u16,
    child: Option<Child>,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    fn bootstrap_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id)
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }
}

/// How one node is set up.
#[derive(Clone, Copy)]
struct NodeSpec<'a> {
    model: &'a str,
    min_fee_wei: &'a str,
    /// Kubo API the node uses (a dead address makes it stop before pinning).
    ipfs_api: Option<&'a str>,
    /// `[limits] max_queued_jobs`; the default when `None`.
    max_queued_jobs: Option<usize>,
}

impl Default for NodeSpec<'_> {
    fn default() -> Self {
        Self { model: "model-x", min_fee_wei: "0", ipfs_api: None, max_queued_jobs: None }
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    anvil: Anvil,
    kubo: KuboDaemon,
    contract: Address,
    models: Vec<(String, B256)>,
    creator: PrivateKeySigner,
    nodes: Vec<Node>,
}

/// A test-size model under its own name (so its hash differs from the other test models').
fn write_named_test_model(dir: &Path, name: &str) -> Result<B256> {
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
    async fn new(specs: &[NodeSpec<'_>]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let anvil = Anvil::start().await?;
        let kubo = KuboDaemon::start(&dir.path().join("kubo")).await?;
        let owner = DevAccount::Owner.key();
        let contract = ChainClient::deploy(anvil.rpc_url(), owner.clone()).await?;
        let admin = ChainClient::connect(anvil.rpc_url(), owner, contract).await?;
        let mut cluster = Self {
            dir,
            anvil,
            kubo,
            contract,
            models: Vec::new(),
            creator: DevAccount::Creator.key(),
            nodes: Vec::new(),
        };
        for (index, spec) in specs.iter().enumerate() {
            let node_dir = cluster.dir.path().join(format!("node-{index}"));
            let hash = write_named_test_model(&node_dir.join("models/default"), spec.model)?;
            if !cluster.models.iter().any(|(_, h)| *h == hash) {
                admin.register_model(hash, spec.model, "genmint tests", "").await?;
                cluster.models.push((spec.model.to_owned(), hash));
            }
            let operator =
                if index == 0 { DevAccount::NodeOperator.key() } else { PrivateKeySigner::random() };
            cluster.anvil.fund(operator.address()).await?;
            admin.register_node(operator.address()).await?;
            std::fs::write(
                node_dir.join(OPERATOR_KEY_FILE),
                format!("0x{}\n", hex::encode(operator.to_bytes())),
            )?;
            let peer_id = genmint_node::network::identity::load_or_create(&node_dir)?.public().to_peer_id();

            let (http_port, p2p_port) = (free_port(), free_port());
            let mut config = Config::default();
            config.http.listen = ([127, 0, 0, 1], http_port).into();
            config.chain.rpc_url = cluster.anvil.rpc_url().to_owned();
            config.chain.contract = Some(contract.to_string());
            config.ipfs.api_url = spec.ipfs_api.unwrap_or(cluster.kubo.api_url()).to_owned();
            config.limits.min_fee_wei = spec.min_fee_wei.into();
            // One creator sends every request here, bursts included: what is tested is placement.
            config.limits.creator_requests_per_minute = 0;
            config.limits.address_requests_per_minute = 0;
            if let Some(queue) = spec.max_queued_jobs {
                config.limits.max_queued_jobs = queue;
            }
            config.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{p2p_port}")];
            config.p2p.bootstrap = cluster.nodes.first().map(Node::bootstrap_addr).into_iter().collect();
            config.p2p.advert_interval_secs = 2;
            config.p2p.request_timeout_secs = 3;
            config.save(&node_dir)?;
            cluster.nodes.push(Node {
                dir: node_dir,
                url: format!("http://127.0.0.1:{http_port}"),
                operator,
                peer_id: peer_id.to_string(),
                p2p_port,
                child: None,
            });
        }
        Ok(cluster)
    }

    fn model(&self, name: &str) -> B256 {
        self.models.iter().find(|(n, _)| n == name).map(|(_, h)| *h).expect("model registered")
    }

    async fn start_all(&mut self) -> Result<()> {
        for index in 0..self.nodes.len() {
            self.start(index).await?;
        }
        Ok(())
    }

    async fn start(&mut self, index: usize) -> Result<()> {
        let node = &mut self.nodes[index];
        node.child = Some(spawn_node(&node.dir, &node.url, &node.dir.join("node.log")).await?);
        Ok(())
    }

    fn logs(&self) -> String {
        self.nodes.iter().enumerate().map(|(i, n)| format!("--- node {i} ---\n{}", n.log())).collect()
    }

    /// Waits until node 0 lists `model` with `providers` registered providers.
    async fn wait_for_providers(&self, model: B256, providers: usize) -> Result<Value> {
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

    fn signed_request(&self, model: B256, prompt: &str, seed: u64, fee: u64) -> SignedRequest {
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

    async fn submit(&self, node: usize, signed: &SignedRequest) -> Result<(reqwest::StatusCode, Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/jobs", self.nodes[node].url))
            .json(signed)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    async fn job(&self, node: usize, id: &str) -> Result<Value> {
        Ok(reqwest::get(format!("{}/v1/jobs/{id}", self.nodes[node].url)).await?.json().await?)
    }

    /// Polls node `node`'s view of the job until `done` holds.
    async fn wait_for(&self, node: usize, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
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

    async fn chain(&self) -> Result<ChainClient> {
        Ok(ChainClient::connect_read_only(self.anvil.rpc_url(), self.contract).await?)
    }

    /// Checks the token of job `id`: owned by the creator, minted once, attested by `node`'s operator.
    async fn expect_token_by(&self, id: &str, node: usize) -> Result<()> {
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

fn is_minted(job: &Value) -> bool {
    job["state"] == "minted"
}

/// How many files the cluster's Kubo holds pinned (recursively).
async fn pin_count(cluster: &Cluster) -> Result<usize> {
    let url = format!("{}/api/v0/pin/ls?type=recursive", cluster.kubo.api_url());
    let pins: Value = reqwest::Client::new().post(url).send().await?.error_for_status()?.json().await?;
    Ok(pins["Keys"].as_object().map_or(0, serde_json::Map::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_minted_by_one_node_and_posted_to_another_is_answered_from_the_chain() -> Result<()> {
    // Both nodes serve the model: B could run the request, and must not.
    let mut cluster = Cluster::new(&[NodeSpec::default(), NodeSpec::default()]).await?;
    cluster.start_all().await?;
    let signed = cluster.signed_request(cluster.model("model-x"), "a lighthouse, replayed", 21, 0);
    let (status, job) = cluster.submit(0, &signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().context("the job has an id")?.to_owned();
    let at_a = cluster.wait_for(0, &id, is_minted).await?;
    let a_operator = cluster.nodes[0].operator.address().to_string().to_lowercase();
    assert_eq!(at_a["minted_by"], a_operator.as_str(), "{at_a}");
    let pinned = pin_count(&cluster).await?;

    let (status, replay) = cluster.submit(1, &signed).await?;
    assert!(status.is_success(), "{status}: {replay}");
    let at_b = cluster.wait_for(1, &id, is_minted).await?;
    assert_eq!(at_b["route"], "local", "B serves the model itself");
    for field in ["token_id", "tx_hash", "image_cid", "metadata_cid", "pixel_digest", "node_signature"] {
        assert_eq!(at_b[field], at_a[field], "{field}: B answers with the chain's record, which is A's");
    }
    assert_eq!(at_b["minted_by"], a_operator.as_str(), "the chain names A");
    let image = cluster.nodes[1].dir.join("images").join(format!("{id}.png"));
    assert!(!image.exists(), "B generated nothing");
    assert_eq!(pin_count(&cluster).await?, pinned, "B pinned nothing");
    cluster.expect_token_by(&id, 0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_for_a_model_the_node_lacks_is_minted_by_a_node_that_has_it() -> Result<()> {
    let spec = |model| NodeSpec { model, ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec("model-x"), spec("model-y"), spec("model-y")]).await?;
    cluster.start_all().await?;
    let model_y = cluster.model("model-y");
    let listed = cluster.wait_for_providers(model_y, 2).await?;
    assert_eq!(listed["local"], false);

    let signed = cluster.signed_request(model_y, "a lighthouse at dusk", 11, 0);
    let (status, job) = cluster.submit(0, &signed).await?;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["route"], "forwarded");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = cluster.wait_for(0, &id, is_minted).await?;

    let executor = done["executor"].as_str().context("the forwarded job names its executor")?;
    let index = cluster.nodes.iter().position(|n| n.peer_id == executor).context("executor is B or C")?;
    assert!(index == 1 || index == 2, "executor {executor}");
    cluster.expect_token_by(&id, index).await?;
    // The origin shows what the executor produced.
    let at_executor = cluster.job(index, &id).await?;
    for field in ["token_id", "tx_hash", "image_cid", "metadata_cid", "pixel_digest"] {
        assert_eq!(done[field], at_executor[field], "{field}");
    }
    assert_eq!(at_executor["origin"].as_str(), Some(cluster.nodes[0].peer_id.as_str()));

    // A request for A's own model stays on A.
    let own = cluster.signed_request(cluster.model("model-x"), "a lighthouse at dawn", 12, 0);
    let (_, job) = cluster.submit(0, &own).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let done = cluster.wait_for(0, &id, is_minted).await?;
    assert_eq!(done["route"], "local");
    cluster.expect_token_by(&id, 0).await?;

    // A model nobody serves is refused with a clear error.
    let nobody = cluster.signed_request(B256::repeat_byte(9), "anything", 13, 0);
    let (status, body) = cluster.submit(0, &nobody).await?;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "unknown_model", "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_executor_dies_mid_job_another_node_mints_it_once() -> Result<()> {
    // B is the cheaper provider of model-y, so it is tried first; its Kubo address is dead, so it
    // generates but never pins. C asks for a fee of 1 wei, which the request allows.
    let dead_ipfs = format!("http://127.0.0.1:{}", free_port());
    let mut cluster = Cluster::new(&[
        NodeSpec::default(),
        NodeSpec { model: "model-y", ipfs_api: Some(&dead_ipfs), ..NodeSpec::default() },
        NodeSpec { model: "model-y", min_fee_wei: "1", ..NodeSpec::default() },
    ])
    .await?;
    cluster.start_all().await?;
    let model_y = cluster.model("model-y");
    cluster.wait_for_providers(model_y, 2).await?;

    let signed = cluster.signed_request(model_y, "a ship in a bottle", 21, 1);
    // The fee comes out of the creator's deposit: without one the request is refused up front.
    let (status, body) = cluster.submit(0, &signed).await?;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (402, Some("insufficient_funds")),
        "{body}"
    );
    let creator =
        ChainClient::connect(cluster.anvil.rpc_url(), cluster.creator.clone(), cluster.contract).await?;
    creator.deposit(U256::from(1)).await?;
    let (_, job) = cluster.submit(0, &signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let b = cluster.nodes[1].peer_id.clone();
    cluster.wait_for(0, &id, |job| job["executor"] == b.as_str() && job["state"] == "generated").await?;
    cluster.nodes[1].kill().await?;

    let done = cluster.wait_for(0, &id, is_minted).await?;
    assert_eq!(done["executor"].as_str(), Some(cluster.nodes[2].peer_id.as_str()), "failed over to C");
    cluster.expect_token_by(&id, 2).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_at_one_node_is_minted_or_refused_with_retry_after_and_nothing_accepted_is_lost() -> Result<()>
{
    // Three nodes serve one model, each with room for 8 jobs; 120 requests arrive at node 0 at once.
    const BURST: u64 = 120;
    let spec = NodeSpec { max_queued_jobs: Some(8), ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec, spec, spec]).await?;
    cluster.start_all().await?;
    let model = cluster.model("model-x");
    cluster.wait_for_providers(model, 2).await?;

    let client = reqwest::Client::new();
    let url = format!("{}/v1/jobs", cluster.nodes[0].url);
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..BURST).map(|seed| {
        let signed = cluster.signed_request(model, "a burst of light", 1000 + seed, 0);
        let request = client.post(&url).json(&signed).send();
        async move {
            let response = request.await?;
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status().as_u16();
            anyhow::Ok((status, retry_after, response.json::<Value>().await?))
        }
    }))
    .await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for answer in answers {
        match answer? {
            (200 | 202, _, job) => accepted.push(job["id"].as_str().context("job id")?.to_owned()),
            (503, Some(_), body) if body["error"]["code"] == "busy" => refused += 1,
            (status, retry_after, body) => bail!("unexpected answer {status} ({retry_after:?}): {body}"),
        }
    }

    // Every accepted job ends, and ends minted.
    let mut open = accepted.clone();
    let mut lost = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !open.is_empty() && Instant::now() < deadline {
        let mut still_open = Vec::new();
        for id in open {
            let job = cluster.job(0, &id).await?;
            match job["state"].as_str().unwrap_or_default() {
                "minted" => {}
                "failed" | "cancelled" | "expired" => lost.push(job),
                _ => still_open.push(id),
            }
        }
        open = still_open;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let minted = accepted.len() - open.len() - lost.len();
    eprintln!(
        "burst of {BURST} at one node of three: accepted {}, refused 503 {refused}, minted {minted}, \
         lost {}, still open {} after {:.0?}",
        accepted.len(),
        lost.len(),
        open.len(),
        started.elapsed()
    );
    assert!(lost.is_empty(), "accepted jobs that did not mint: {lost:#?}");
    assert!(open.is_empty(), "accepted jobs still open after 5 minutes: {open:?}\n{}", cluster.logs());
    assert!(accepted.len() > 8, "more than node 0's own queue was accepted: {}", accepted.len());

    // Exactly one mint per accepted job, and no other mint.
    let provider = ProviderBuilder::new().connect_http(cluster.anvil.rpc_url().parse()?);
    let logs = IGenmint::new(cluster.contract, provider).AigcData_filter().from_block(0).query().await?;
    let mut tokens: Vec<U256> = logs.iter().map(|(event, _)| event.tokenId).collect();
    tokens.sort();
    let mut expected: Vec<U256> =
        accepted.iter().map(|id| Ok(U256::from_be_bytes(id.parse::<B256>()?.0))).collect::<Result<_>>()?;
    expected.sort();
    assert_eq!(tokens, expected, "one token per accepted job");
    Ok(())
}

/// Accepts every advert: the rogue peer relays whatever it is given.
struct AcceptAll;

impl AdvertVerifier for AcceptAll {
    fn verify(&self, _: &Advert) -> std::result::Result<(), String> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_advert_and_junk_requests_from_a_peer_change_nothing() -> Result<()> {
    let mut cluster = Cluster::new(&[NodeSpec::default()]).await?;
    cluster.start_all().await?;
    let a: genmint_p2p::PeerId = cluster.nodes[0].peer_id.parse()?;

    // A rogue peer claims A's registered operator, with a binding signed by some other key.
    let keypair = Keypair::generate_ed25519();
    let rogue_id = keypair.public().to_peer_id();
    let config = NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootstrap: vec![cluster.nodes[0].bootstrap_addr().parse()?],
        network_id: format!("{}-{:#x}", cluster.anvil.chain_id(), cluster.contract),
        advert_interval: Duration::from_millis(500),
        ..NetworkConfig::default()
    };
    let (rogue, mut rogue_events) = genmint_p2p::spawn(keypair, config, Arc::new(AcceptAll)).await?;
    tokio::spawn(async move { while rogue_events.recv().await.is_some() {} });
    let advert = |operator: Address, binding_signature: String, sequence: u64| Advert {
        peer_id: rogue_id.to_string(),
        operator: operator.to_string(),
        chain_id: cluster.anvil.chain_id(),
        contract: cluster.contract.to_string(),
        binding_signature,
        models: vec![AdvertisedModel {
            hash: B256::repeat_byte(0x77).to_string(),
            name: "phantom".into(),
            kind: "tiny".into(),
            max_width: 64,
            max_height: 64,
            max_steps: 50,
            defaults: None,
        }],
        devices: vec!["cpu".into()],
        queue_depth: 0,
        capacity: 100,
        price_wei: "0".into(),
        sequence,
        issued_at: now_unix(),
    };
    let bind = |key: &PrivateKeySigner| {
        genmint_node::network::binding::sign_binding(
            key,
            &rogue_id.to_string(),
            cluster.anvil.chain_id(),
            cluster.contract,
        )
    };
    let rogue_advert = |peers: &Value| -> Option<Value> {
        let peer = peers["peers"].as_array()?.iter().find(|p| p["peer_id"] == rogue_id.to_string())?;
        Some(peer.clone())
    };
    let peers_of_a = || async {
        let peers: Value = reqwest::get(format!("{}/v1/peers", cluster.nodes[0].url)).await?.json().await?;
        anyhow::Ok(peers)
    };
    let phantom_listed = || async {
        let models: Value = reqwest::get(format!("{}/v1/models", cluster.nodes[0].url)).await?.json().await?;
        anyhow::Ok(models.to_string().contains("phantom"))
    };

    // 1. It claims A's registered operator, with a binding signed by some other key: rejected.
    let registered = cluster.nodes[0].operator.address();
    rogue.set_advert(advert(registered, bind(&PrivateKeySigner::random())?, 1)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rogue_advert(&peers_of_a().await?).is_none() {
        assert!(Instant::now() < deadline, "the rogue peer never connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = rogue_advert(&peers_of_a().await?).context("rogue peer gone")?;
    assert!(seen["advert"].is_null(), "a forged advert was accepted: {seen}");
    assert!(!phantom_listed().await?, "the phantom model is listed");

    // 2. An honest binding by an operator the contract does not know: the advert is kept (and
    // shown as unregistered) but never used for routing.
    let stranger = PrivateKeySigner::random();
    rogue.set_advert(advert(stranger.address(), bind(&stranger)?, 2)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rogue_advert(&peers_of_a().await?).context("rogue peer gone")?;
        if !seen["advert"].is_null() {
            assert_eq!(seen["registered"], false, "{seen}");
            break;
        }
        assert!(Instant::now() < deadline, "a correctly bound advert never arrived: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!phantom_listed().await?, "an unregistered operator's model is listed");
    let phantom_request = cluster.signed_request(B256::repeat_byte(0x77), "phantom", 30, 0);
    let (status, body) = cluster.submit(0, &phantom_request).await?;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (422, Some("unknown_model")), "{body}");

    // Junk requests get refusals, not crashes.
    let junk = JobRequest::Submit { job_id: "0x00".into(), signed_request: "not json".into() };
    assert!(
        matches!(rogue.request(a, junk).await?, JobResponse::Rejected { code, .. } if code == "bad_request")
    );
    let stray = JobStatus {
        job_id: B256::repeat_byte(1).to_string(),
        state: "minted".into(),
        step: None,
        steps: None,
        token_id: Some("1".into()),
        tx_hash: None,
        error: None,
        pixel_digest: None,
        image_cid: None,
        metadata_cid: None,
        minted_by: None,
    };
    assert!(matches!(rogue.request(a, JobRequest::Update(stray)).await?, JobResponse::Error { .. }));
    let status = JobRequest::Status { job_id: B256::repeat_byte(2).to_string() };
    assert!(
        matches!(rogue.request(a, status).await?, JobResponse::Error { code, .. } if code == "not_found")
    );

    // A still works.
    let signed = cluster.signed_request(cluster.model("model-x"), "still standing", 31, 0);
    let (_, job) = cluster.submit(0, &signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    cluster.wait_for(0, &id, is_minted).await?;
    rogue.shutdown().await?;
    Ok(())
}
