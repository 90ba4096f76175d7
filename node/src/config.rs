//! Node configuration: `genmint.toml` in the data dir; `Default` is the local development setup.
//!
//! Precedence: built-in defaults < the file < environment/CLI flags (applied by `cli`). Secrets are
//! never stored here: the operator key lives in its own file (`operator.key`, mode 0600) or in
//! `GENMINT_OPERATOR_KEY`, and is never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use genmint_model_runtime::ComputeDtype;
use serde::{Deserialize, Serialize};

/// The file name of the configuration inside the data dir.
pub const CONFIG_FILE: &str = "genmint.toml";
/// The file name of the operator's private key inside the data dir.
pub const OPERATOR_KEY_FILE: &str = "operator.key";
/// Environment variable that overrides the operator key file.
pub const OPERATOR_KEY_ENV: &str = "GENMINT_OPERATOR_KEY";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub chain: ChainConfig,
    pub ipfs: IpfsConfig,
    /// The models this node serves: one `[model]` table, or several `[[model]]` entries.
    pub model: Models,
    pub limits: LimitsConfig,
    pub p2p: P2pConfig,
    pub spot_checks: SpotChecksConfig,
    pub replication: ReplicationConfig,
}

/// The HTTP API and web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the API listens on. Keep it on loopback unless a reverse proxy fronts it.
    pub listen: SocketAddr,
    /// The URL creators and marketplaces reach this node's web page at (the reverse proxy's
    /// address, e.g. `https://mint.example.org`): token metadata's `external_url` and the token
    /// pages' shared links point there. Unset: `http://<listen>`, right for a node on this machine.
    pub public_url: Option<String>,
    /// The chain's JSON-RPC URL the web page offers a creator's wallet that does not know the chain
    /// yet (`wallet_addEthereumChain`). Unset: the page only asks the wallet to switch chains.
    /// Never put an RPC URL with an API key here: every visitor sees it.
    pub wallet_rpc_url: Option<String>,
    /// The in-page development wallet (a key made and kept by the browser). Only `genmint dev`
    /// turns it on; a configuration file cannot.
    #[serde(skip)]
    pub dev_wallet: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            wallet_rpc_url: None,
            dev_wallet: false,
        }
    }
}

impl HttpConfig {
    /// The base URL of this node's web page, without a trailing slash.
    pub fn public_base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

/// The EVM chain and the GenmintNFT contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (anvil locally).
    pub rpc_url: String,
    /// Further endpoints of the same chain, in order of preference: when the one in use cannot be
    /// reached (or answers 429 or 5xx) the node goes on with the next.
    pub fallback_rpc_urls: Vec<String>,
    /// Address of the deployed GenmintNFT contract (`genmint dev` fills it in).
    pub contract: Option<String>,
    /// Seconds to wait for a mint receipt; a mint still pending then is re-priced (the same
    /// transaction with fees 12.5 % higher), or replaced by a transfer if its request expired.
    pub receipt_timeout_secs: u64,
    /// Blocks a mint needs (its own included) before its job is `minted`. Unset: the chain's
    /// default ([`default_confirmations`]).
    pub confirmations: Option<u64>,
    /// How often a confirming mint looks at the chain again, in milliseconds.
    pub poll_interval_ms: u64,
    /// The most a transaction may pay per gas, base fee and tip (wei). While the chain's base fee
    /// plus the tip is above it, mints wait; unset: no ceiling.
    pub max_fee_per_gas_wei: Option<u64>,
    /// The tip per gas offered to the block producer (wei).
    pub priority_fee_per_gas_wei: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            fallback_rpc_urls: Vec::new(),
            contract: None,
            receipt_timeout_secs: 60,
            confirmations: None,
            poll_interval_ms: 1000,
            max_fee_per_gas_wei: None,
            priority_fee_per_gas_wei: 1_000_000_000,
        }
    }
}

impl ChainConfig {
    /// Every RPC endpoint, `rpc_url` first.
    pub fn rpc_urls(&self) -> Vec<String> {
        std::iter::once(&self.rpc_url).chain(&self.fallback_rpc_urls).cloned().collect()
    }

    /// The confirmations a mint needs on the chain with `chain_id`: the configured number, or the
    /// chain's default.
    pub fn confirmations_for(&self, chain_id: u64) -> u64 {
        self.confirmations.unwrap_or_else(|| default_confirmations(chain_id)).max(1)
    }
}

/// Confirmations when `[chain] confirmations` is unset: 1 on a local development chain (anvil,
/// hardhat and ganache's ids 31337 and 1337, which do not reorg by themselves), 12 elsewhere (about
/// two and a half minutes on Ethereum; set the key to your chain's own depth).
pub fn default_confirmations(chain_id: u64) -> u64 {
    match chain_id {
        31337 | 1337 => 1,
        _ => 12,
    }
}

/// The Kubo daemon the node pins to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfsConfig {
    /// Kubo RPC API (never expose it beyond loopback or a private network).
    pub api_url: String,
}

impl Default for IpfsConfig {
    fn default() -> Self {
        Self { api_url: "http://127.0.0.1:5001".into() }
    }
}

/// One model this node serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Model directory (diffusers layout plus `genmint-model.json`); relative paths are resolved
    /// against the data dir.
    pub dir: PathBuf,
    /// `cpu`, or `cuda:N` in a build with the `cuda` feature; a list (`["cuda:0", "cuda:1"]`)
    /// runs one inference worker per device, each job going to a free one.
    pub device: Devices,
    /// The UNet's arithmetic: `f32` (the default), `f16` or `bf16` (GPUs; the CPU runs f32 and
    /// f16). SDXL's original VAE decodes in f32 under f16, as diffusers does.
    pub dtype: ComputeDtype,
    /// Most waiting requests run together as one batched pass per denoising step (those of the
    /// same size, scheduler and step count); each keeps its own seed, progress and pixels. 1 (the
    /// default) runs them one at a time: on the CPU a batch measured no faster.
    pub max_batch: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models/default"),
            device: Devices::one("cpu"),
            dtype: ComputeDtype::F32,
            max_batch: 1,
        }
    }
}

/// The devices one model runs on, one inference worker each. In TOML a string (`"cuda:0"`) or a
/// non-empty list of them (`["cuda:0", "cuda:1"]`); one device is written back as a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Devices(Vec<String>);

impl Devices {
    pub fn one(name: &str) -> Self {
        Self(vec![name.to_string()])
    }

    /// Several devices; `None` for an empty list.
    pub fn of(names: Vec<String>) -> Option<Self> {
        (!names.is_empty()).then_some(Self(names))
    }

    /// The device names, in the order the file lists them.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Serialize for Devices {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        one_or_many(&self.0, serializer)
    }
}

/// One item as itself, several as a list: how the file spells `[model]` and `device`.
fn one_or_many<T: Serialize, S: serde::Serializer>(items: &[T], serializer: S) -> Result<S::Ok, S::Error> {
    match items {
        [one] => one.serialize(serializer),
        many => many.serialize(serializer),
    }
}

impl<'de> Deserialize<'de> for Devices {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Ok(Self(vec![one])),
            OneOrMany::Many(many) => Self::of(many).ok_or_else(|| {
                serde::de::Error::custom("model.device lists no device: name at least one, e.g. \"cpu\"")
            }),
        }
    }
}

/// The served models, at least one. In TOML a single `[model]` table (the common case, and every
/// file written before several models were possible) or an array of `[[model]]` tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Models(Vec<ModelConfig>);

impl Models {
    /// The models, in the order the file lists them.
    pub fn all(&self) -> &[ModelConfig] {
        &self.0
    }

    /// Several models; `None` for an empty list.
    pub fn of(models: Vec<ModelConfig>) -> Option<Self> {
        (!models.is_empty()).then_some(Self(models))
    }
}

impl Default for Models {
    fn default() -> Self {
        Self(vec![ModelConfig::default()])
    }
}

impl Serialize for Models {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        one_or_many(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Models {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Told apart by shape first, so that a wrong key inside a table reports itself rather
        // than "matched no variant".
        let value = toml::Value::deserialize(deserializer)?;
        if value.is_array() {
            let many: Vec<ModelConfig> = value.try_into().map_err(serde::de::Error::custom)?;
            Self::of(many)
                .ok_or_else(|| serde::de::Error::custom("[[model]] lists no model: serve at least one"))
        } else {
            Ok(Self(vec![value.try_into().map_err(serde::de::Error::custom)?]))
        }
    }
}

/// Bounds on what one request may ask for and how much work the node accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest prompt (and negative prompt) in UTF-8 bytes.
    pub max_prompt_bytes: usize,
    /// Jobs waiting for the generator before new ones get 503.
    pub max_queued_jobs: usize,
    /// Largest request body the API reads.
    pub max_body_bytes: usize,
    /// The smallest signed `fee` (decimal wei) this node runs a job for; also its advertised price.
    pub min_fee_wei: String,
    /// Megabytes of model weights kept loaded at once; past it the least recently used model is
    /// unloaded before another loads. 0: no bound.
    pub model_memory_mb: u64,
    /// Job submissions one creator may make a minute (all at once, or spread); beyond it 429. 0: no limit.
    pub creator_requests_per_minute: u32,
    /// Job submissions and cancels one client address may make a minute; beyond it 429. 0: no limit.
    pub address_requests_per_minute: u32,
    /// Event streams (`GET /v1/jobs/{id}/events`) open at once, in all.
    pub max_streams: usize,
    /// Event streams open at once for one job.
    pub max_streams_per_job: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_prompt_bytes: 1000,
            max_queued_jobs: 64,
            max_body_bytes: 64 * 1024,
            min_fee_wei: "0".into(),
            model_memory_mb: 0,
            creator_requests_per_minute: 60,
            address_requests_per_minute: 120,
            max_streams: 512,
            max_streams_per_job: 8,
        }
    }
}

/// The peer-to-peer network. Nodes that use the same chain and contract form one network: they
/// find each other through `bootstrap` peers (or mDNS on a LAN), gossip signed adverts of what they
/// serve, forward jobs for models they lack to a peer that has them, and spot-check each other's
/// tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Join the network at all. Without it the node only runs jobs for the model it serves.
    pub enabled: bool,
    /// libp2p listen addresses (TCP and QUIC). Port 0 picks a free port.
    pub listen: Vec<String>,
    /// Peers to dial at start, as multiaddrs ending in `/p2p/<peer id>` (`genmint peers` prints
    /// this node's own).
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// How often the node re-announces its advert in a small network; past about 100 nodes the
    /// network stretches it so that all nodes together publish about 10 adverts a second.
    pub advert_interval_secs: u64,
    /// Seconds a peer's job-protocol answer may take before the next peer is tried.
    pub request_timeout_secs: u64,
    /// How often, when idle, the node re-generates a token another node recently minted with its
    /// model and publishes whether the pixels matched (0 = never; peers' checks are still received).
    pub spot_check_interval_secs: u64,
    /// Relay for nodes behind NAT (circuit relay v2): for a node with a public address.
    pub relay_service: bool,
    /// Relays to hold a reservation on, as multiaddrs ending in `/p2p/<relay's peer id>`: a node
    /// behind NAT is reached through them. Without any, a node AutoNAT finds private reserves on
    /// up to two connected peers that offer `relay_service`.
    pub relays: Vec<String>,
    /// Addresses peers can dial this node at, announced as they are (its public address or a port
    /// forward); a relay without them announces the addresses it listens on.
    pub external_addresses: Vec<String>,
    /// Let AutoNAT ask and answer peers at private IP addresses: only for a network that is
    /// private as a whole (a lab, the NAT test's namespaces).
    pub autonat_private_addresses: bool,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into(), "/ip4/0.0.0.0/udp/4001/quic-v1".into()],
            bootstrap: Vec::new(),
            mdns: false,
            advert_interval_secs: 10,
            request_timeout_secs: 10,
            spot_check_interval_secs: 300,
            relay_service: false,
            relays: Vec::new(),
            external_addresses: Vec::new(),
            autonat_private_addresses: false,
        }
    }
}

/// How this node spot-checks other nodes' tokens (how often: `[p2p] spot_check_interval_secs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotChecksConfig {
    /// `full` re-generates the token; `steps` replays `steps` denoising steps, drawn at random,
    /// of the latent trace the token's metadata commits to (a token without one is re-generated).
    pub method: SpotCheckMethod,
    /// Steps a `steps` check replays.
    pub steps: u32,
}

impl Default for SpotChecksConfig {
    fn default() -> Self {
        Self { method: SpotCheckMethod::Full, steps: 2 }
    }
}

/// How a spot check checks a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpotCheckMethod {
    /// Re-generate the whole token and compare the pixels.
    Full,
    /// Replay a few steps of the node's latent trace.
    Steps,
}

/// Copies of each token's content on other nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// How many other nodes each token this node mints should be pinned by (0 = ask none). The
    /// node keeps asking, with backoff, until that many signed receipts are in.
    pub copies: usize,
    /// Pin other nodes' tokens when they ask (only tokens the chain records, with the chain's
    /// CIDs).
    pub hold_for_peers: bool,
    /// The most bytes of other nodes' tokens this node pins; a request beyond it is refused
    /// (`over_budget`).
    pub max_pinned_bytes: u64,
    /// The longest wait between two rounds of asking for a token still short of copies.
    pub max_retry_secs: u64,
    /// Remote pinning services (IPFS Pinning Service API) this node's Kubo also pins each token
    /// it mints on: `[[replication.remote]]` entries.
    pub remote: Vec<RemotePinService>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            copies: 2,
            hold_for_peers: true,
            max_pinned_bytes: 1 << 30,
            max_retry_secs: 300,
            remote: Vec::new(),
        }
    }
}

/// One remote pinning service, registered with the node's Kubo under `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePinService {
    pub name: String,
    /// The service's API endpoint, e.g. `https://api.pinning.example/psa`.
    pub endpoint: String,
    /// The file holding the service's access token (relative paths: the data dir); never logged.
    pub key_file: PathBuf,
}

/// Configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path:?}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path:?}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration in {path:?}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads `genmint.toml` from the data dir; a missing file means the defaults.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ConfigError::Invalid { path: path.clone(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Writes the configuration to `genmint.toml` in the data dir.
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(self)
            .map_err(|e| ConfigError::Invalid { path: path.clone(), message: e.to_string() })?;
        std::fs::write(&path, text).map_err(|source| ConfigError::Write { path, source })
    }

    /// A model directory, resolved against the data dir.
    pub fn model_dir(data_dir: &Path, model: &ModelConfig) -> PathBuf {
        data_dir.join(&model.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_default_and_saved_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        let mut config = Config::default();
        config.chain.contract = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
        config.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), config);
    }

    #[test]
    fn one_model_table_or_several_model_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[model]\ndir = \"models/a\"\n").unwrap();
        let one = Config::load(dir.path()).unwrap();
        assert_eq!(one.model.all().len(), 1);
        assert_eq!(
            (one.model.all()[0].dir.to_str(), one.model.all()[0].device.names()),
            (Some("models/a"), &["cpu".to_string()][..])
        );
        let text = "[[model]]\ndir = \"models/a\"\n\n[[model]]\ndir = \"models/b\"\ndevice = \"cuda:0\"\n";
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let two = Config::load(dir.path()).unwrap();
        assert_eq!(
            two.model.all().iter().map(|m| m.device.names()[0].as_str()).collect::<Vec<_>>(),
            ["cpu", "cuda:0"]
        );
        two.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), two, "several models round-trip");
        one.save(dir.path()).unwrap();
        let saved = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(saved.contains("[model]"), "one model is written as a table:\n{saved}");
    }

    #[test]
    fn a_model_runs_on_one_device_or_a_list_in_a_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[model]\ndir = \"models/a\"\ndevice = [\"cuda:0\", \"cuda:1\"]\ndtype = \"f16\"\n";
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let config = Config::load(dir.path()).unwrap();
        let model = &config.model.all()[0];
        assert_eq!(model.device.names(), ["cuda:0", "cuda:1"]);
        assert_eq!(model.dtype, ComputeDtype::F16);
        config.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), config, "a device list round-trips");
        assert_eq!(Config::default().model.all()[0].dtype, ComputeDtype::F32);

        for (text, expected) in
            [("device = []", "lists no device"), ("dtype = \"fp16\"", "fp16"), ("device = 3", "device")]
        {
            std::fs::write(dir.path().join(CONFIG_FILE), format!("[model]\n{text}\n")).unwrap();
            let err = Config::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[chain]\nrpc = \"x\"\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("genmint.toml") && err.contains("rpc"), "{err}");
        // The development wallet is `genmint dev`'s alone: no file turns it on.
        std::fs::write(dir.path().join(CONFIG_FILE), "[http]\ndev_wallet = true\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("dev_wallet"), "{err}");
    }
}
