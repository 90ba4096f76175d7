//! A whole local stack for one test: anvil, Kubo, the deployed contract with a registered node and
//! model, and a `genmint node` child process; plus independent readers of chain and IPFS that do
//! not go through the node's own code.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use genmint_model_runtime::Rgb8Image;
use genmint_node::chain::ChainClient;
use genmint_node::config::{Config, OPERATOR_KEY_FILE};
use genmint_node::devnet::anvil::{Anvil, DevAccount};
use genmint_node::devnet::kubo::KuboDaemon;
use genmint_node::provenance::eip712::{GenerationRequest, SignedRequest, domain, sign_request};
use genmint_node::provenance::png;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

alloy::sol! {
    /// The slice of GenmintNFT the tests read on their own, without the node's chain client.
    #[sol(rpc)]
    interface IGenmint {
        struct Record {
            address creator;
            address node;
            uint64 mintBlock;
            string metadataCid;
        }
        function ownerOf(uint256 tokenId) external view returns (address);
        function tokenURI(uint256 tokenId) external view returns (string memory);
        function provenance(uint256 tokenId) external view returns (Record memory);
        /// ERC-7007; genmint's aigcData is the pixel digest (32 bytes) then the image CID.
        event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes aigcData, bytes proof);
    }
}

pub const MODEL_NAME: &str = "genmint-test-tiny";

/// A token's mint event, as this test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedOutput {
    /// keccak256 of the ABI-encoded request (the ERC-7007 prompt).
    pub prompt_hash: B256,
    pub pixel_digest: B256,
    pub image_cid: String,
}

/// The model a stack's node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackModel {
    /// The test-size model (fast, noise-like pictures).
    Test,
    /// The shipped default model, `genmint-emoji-32`.
    Default,
}

/// The `genmint` binary next to this test binary (`cargo build` puts it there).
/// The genmint binary the tests run: `GENMINT_BIN` when set (the reliability suite runs the release
/// build), else the debug build beside the test binary.
pub fn genmint_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GENMINT_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("genmint");
    assert!(
        bin.is_file(),
        "{bin:?} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)"
    );
    bin
}

/// A loopback port free for TCP and UDP (a node listens on both, QUIC on UDP).
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive loopback ports free for TCP and UDP, below the kernel's
/// ephemeral range (32768 and up), so that no outgoing connection of a test running beside this
/// one takes one between this check and the bind of whatever it is for. Calls in one process
/// walk the range from a per-process start, so they never hand out the same port twice.
pub fn free_ports(count: u16) -> u16 {
    const RANGE: std::ops::Range<u16> = 20_000..32_000;
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU16> = std::sync::OnceLock::new();
    let span = RANGE.end - RANGE.start;
    let next = NEXT.get_or_init(|| {
        let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761) ^ now_unix();
        std::sync::atomic::AtomicU16::new((seed % u64::from(span)) as u16)
    });
    let free = |port: u16| {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    };
    loop {
        let offset = next.fetch_add(count, Ordering::Relaxed) % (span - count);
        let base = RANGE.start + offset;
        if (base..base + count).all(free) {
            return base;
        }
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// anvil + Kubo + contract + registered node and model, and a data dir for a node process.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub anvil: Anvil,
    pub kubo: KuboDaemon,
    pub contract: Address,
    pub model_hash: B256,
    pub operator: PrivateKeySigner,
    pub creator: PrivateKeySigner,
    pub node_url: String,
    pub node: Option<Child>,
}

impl Stack {
    pub async fn start() -> Result<Self> {
        Self::start_with(StackModel::Test).await
    }

    pub async fn start_with(model: StackModel) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let anvil = Anvil::start().await?;
        let kubo = KuboDaemon::start(&dir.path().join("kubo")).await?;
        let node_dir = dir.path().join("node");
        let model_dir = node_dir.join("models/default");
        let model_name = match model {
            StackModel::Test => {
                genmint_model_runtime::write_test_model(&model_dir)?;
                MODEL_NAME
            }
            StackModel::Default => {
                let minilm = genmint_model_runtime::minilm_dir(&genmint_node::devnet::tools_python_dir());
                genmint_model_runtime::install_default_model(&model_dir, &minilm)
                    .context("installing the default model (scripts/setup.sh installs its text encoder)")?;
                genmint_model_runtime::DEFAULT_MODEL_NAME
            }
        };
        let model_hash = B256::from(genmint_model_runtime::model_hash(&model_dir)?.0);

        let owner = DevAccount::Owner.key();
        let operator = DevAccount::NodeOperator.key();
        let contract = ChainClient::deploy(anvil.rpc_url(), owner.clone()).await?;
        let admin = ChainClient::connect(anvil.rpc_url(), owner, contract).await?;
        admin.register_model(model_hash, model_name, "genmint", "").await?;
        admin.register_node(operator.address()).await?;

        std::fs::write(
            node_dir.join(OPERATOR_KEY_FILE),
            format!("0x{}\n", hex::encode(operator.to_bytes())),
        )?;
        let port = free_port();
        let mut config = Config::default();
        config.http.listen = ([127, 0, 0, 1], port).into();
        config.chain.rpc_url = anvil.rpc_url().to_owned();
        config.chain.contract = Some(contract.to_string());
        config.ipfs.api_url = kubo.api_url().to_owned();
        config.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.save(&node_dir)?;
        Ok(Self {
            dir,
            anvil,
            kubo,
            contract,
            model_hash,
            operator,
            creator: DevAccount::Creator.key(),
            node_url: format!("http://127.0.0.1:{port}"),
            node: None,
        })
    }

    pub fn node_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// Starts `genmint node` on the stack's data dir and waits for `/healthz`.
    pub async fn start_node(&mut self) -> Result<()> {
        let log = self.dir.path().join("node.log");
        self.node = Some(spawn_node(&self.node_dir(), &self.node_url, &log).await?);
        Ok(())
    }

    /// SIGKILLs the node process: no shutdown code runs.
    pub async fn kill_node(&mut self) -> Result<()> {
        if let Some(mut child) = self.node.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// A request for the test model signed by the stack's creator.
    pub fn signed_request(&self, prompt: &str, seed: u64, steps: u32) -> SignedRequest {
        let request = GenerationRequest {
            creator: self.creator.address(),
            modelHash: self.model_hash,
            prompt: prompt.into(),
            negativePrompt: String::new(),
            seed,
            width: 32,
            height: 32,
            steps,
            guidance: 750,
            scheduler: "ddim".into(),
            fee: U256::ZERO,
            nonce: U256::from(seed),
            deadline: now_unix() + 3600,
        };
        let signature =
            sign_request(&self.creator, &request, &domain(self.anvil.chain_id(), self.contract)).unwrap();
        SignedRequest { request, signature }
    }

    pub async fn submit(&self, signed: &SignedRequest) -> Result<(reqwest::StatusCode, Value)> {
        let response =
            reqwest::Client::new().post(format!("{}/v1/jobs", self.node_url)).json(signed).send().await?;
        Ok((response.status(), response.json().await?))
    }

    /// Submits a request for `prompt` and `seed` (8 steps) and waits until it is minted; returns the
    /// job id (0x-hex request digest) and the token id.
    pub async fn mint_one(&self, prompt: &str, seed: u64) -> Result<(String, U256)> {
        let (status, job) = self.submit(&self.signed_request(prompt, seed, 8)).await?;
        if status != 202 {
            bail!("submitting {prompt:?} got {status}: {job}");
        }
        let id = job["id"].as_str().context("the job has no id")?.to_owned();
        self.wait_for(&id, |s| s == "minted", Duration::from_secs(120)).await?;
        let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
        Ok((id, token_id))
    }

    pub async fn job(&self, id: &str) -> Result<Value> {
        Ok(reqwest::get(format!("{}/v1/jobs/{id}", self.node_url)).await?.json().await?)
    }

    /// Polls the job until `done(state)` holds, failing on a terminal state it did not ask for.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&str) -> bool, timeout: Duration) -> Result<Value> {
        self.wait_for_job(id, |job| done(job["state"].as_str().unwrap_or_default()), timeout).await
    }

    /// Polls the job until `done(job)` holds, failing on a terminal state it did not ask for.
    pub async fn wait_for_job(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await?;
            if done(&job) {
                return Ok(job);
            }
            let state = job["state"].as_str().unwrap_or_default().to_owned();
            if matches!(state.as_str(), "minted" | "failed" | "cancelled" | "expired") {
                bail!("job {id} ended {state}: {job}\n{}", self.node_log());
            }
            if Instant::now() > deadline {
                bail!("job {id} still {state} after {timeout:?}: {job}\n{}", self.node_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn contract_reader(&self) -> IGenmint::IGenmintInstance<impl alloy::providers::Provider + Clone> {
        let provider = ProviderBuilder::new().connect_http(self.anvil.rpc_url().parse().unwrap());
        IGenmint::new(self.contract, provider)
    }

    /// How many mint events (`AigcData`) the contract emitted for `token_id`.
    pub async fn minted_events(&self, token_id: U256) -> Result<usize> {
        let logs = self.contract_reader().AigcData_filter().topic1(token_id).from_block(0).query().await?;
        Ok(logs.len())
    }

    /// What the token's mint event attested: its prompt topic, pixel digest and image CID.
    pub async fn minted_output(&self, token_id: U256) -> Result<MintedOutput> {
        let logs = self.contract_reader().AigcData_filter().topic1(token_id).from_block(0).query().await?;
        let (event, _) = logs.into_iter().next().context("no AigcData event for the token")?;
        let data = &event.aigcData;
        if data.len() < 32 {
            bail!("aigcData is {} bytes: too short", data.len());
        }
        Ok(MintedOutput {
            prompt_hash: event.prompt,
            pixel_digest: B256::from_slice(&data[..32]),
            image_cid: String::from_utf8(data[32..].to_vec())?,
        })
    }

    /// A file from Kubo through its plain HTTP RPC (`/api/v0/cat`), not the node's IPFS client.
    pub async fn ipfs_cat(&self, cid: &str) -> Result<Vec<u8>> {
        let url = format!("{}/api/v0/cat?arg={cid}", self.kubo.api_url());
        let response = reqwest::Client::new().post(url).send().await?;
        if !response.status().is_success() {
            bail!("cat {cid}: {}", response.status());
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// The token's image from Kubo, checked here: its bytes hash to the attested image CID and its
    /// pixels to the attested pixel digest.
    pub async fn checked_image(&self, token_id: U256) -> Result<Rgb8Image> {
        let minted = self.minted_output(token_id).await?;
        let image = self.ipfs_cat(&minted.image_cid).await?;
        assert_eq!(raw_cid(&image), minted.image_cid);
        let pixels = png::decode(&image)?;
        let mut hasher = Sha256::new();
        hasher.update(pixels.width.to_be_bytes());
        hasher.update(pixels.height.to_be_bytes());
        hasher.update(&pixels.pixels);
        assert_eq!(B256::from_slice(&hasher.finalize()), minted.pixel_digest);
        Ok(pixels)
    }

    /// Runs a `genmint` CLI command against this stack; returns (exit success, stdout + stderr).
    pub async fn genmint(&self, args: &[&str]) -> Result<(bool, String)> {
        self.genmint_in(&self.dir.path().join("cli"), args).await
    }

    /// Runs a `genmint` CLI command with `data_dir` (its operator key) against this stack.
    pub async fn genmint_in(&self, data_dir: &Path, args: &[&str]) -> Result<(bool, String)> {
        let output = Command::new(genmint_bin())
            .args(args)
            .env("GENMINT_RPC_URL", self.anvil.rpc_url())
            .env("GENMINT_IPFS_API", self.kubo.api_url())
            .env("GENMINT_CONTRACT", self.contract.to_string())
            .env("GENMINT_NODE", &self.node_url)
            .env("GENMINT_DATA_DIR", data_dir)
            .output()
            .await?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success(), text))
    }
}

/// Starts `genmint node` on `data_dir` (output appended to `log`) and waits until `url` answers
/// `/healthz`; fails with the log if the process exits first or takes over 60 s.
pub async fn spawn_node(data_dir: &Path, url: &str, log: &Path) -> Result<Child> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = Command::new(genmint_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("node")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .context("spawning genmint node")?;
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await
            && r.status().is_success()
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            bail!("genmint node in {data_dir:?} exited with {status}:\n{}", read_log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("genmint node in {data_dir:?} did not answer /healthz within 60 s:\n{}", read_log())
}

/// CIDv1 of a single-block file under raw leaves: `b` + base32(0x01 0x55 0x12 0x20 ‖ sha256(bytes)),
/// computed here independently of the node's CID code.
pub fn raw_cid(bytes: &[u8]) -> String {
    let mut raw = vec![0x01, 0x55, 0x12, 0x20];
    raw.extend_from_slice(&Sha256::digest(bytes));
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::from("b");
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in raw {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[test]
fn raw_cid_matches_the_reference_vector() {
    assert_eq!(raw_cid(b"hello provenance"), "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a");
}

/// A TCP proxy to a loopback service (the chain's RPC, Kubo's API) that a test can cut, existing
/// connections included, and open again.
pub struct CuttableProxy {
    pub url: String,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl CuttableProxy {
    pub async fn start(upstream_url: &str) -> anyhow::Result<Self> {
        let upstream = upstream_url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let open = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let gate = open.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                // Only cuts after this connection opened concern it.
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Ok(Self { url, open, cut })
    }

    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if !open {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}
