//! A local Kubo (IPFS) daemon as a child process, for `genmint dev` and tests against real IPFS.
//!
//! [`KuboDaemon::start`] initializes the repo on first use (`ipfs init --profile
//! test,unixfs-v1-2025`), then on every start rewrites the settings that keep the daemon on
//! loopback (RPC API and gateway on `127.0.0.1` with ports the OS picks, no swarm addresses, no
//! bootstrap or peering, no mDNS, no autoconf, no routing) and the import settings genmint's CIDs
//! depend on, and runs `ipfs daemon --offline`. It is ready once `/api/v0/version` answers; the
//! addresses are read from the `api` and `gateway` files the daemon writes. An existing repo keeps
//! its blocks and pins across restarts. The daemon's output goes to `daemon.log` in the repo.
//!
//! [`KuboDaemon::start_networked`] runs the same daemon online with one swarm listener on
//! loopback, so several local Kubos (one per node) can be connected and fetch each other's blocks
//! over bitswap; still no bootstrap, peering, mDNS, routing, relays, NAT mapping or AutoTLS, so it
//! dials only the peers it is told to.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{MissingTool, tool_path};
use crate::ipfs::{CidVersion, ImportProfile};

/// How long the daemon may take to answer its API; it usually needs a second or two.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `ipfs init` may take (it generates a key and writes the repo).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the daemon is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Log lines quoted in an error when the daemon fails to start.
const LOG_TAIL_LINES: usize = 20;
/// The daemon's stdout and stderr, inside the repo.
const LOG_FILE: &str = "daemon.log";
/// Any port on loopback; the daemon reports the one it got in its `api`/`gateway` files.
const LOOPBACK_ANY_PORT: &str = "/ip4/127.0.0.1/tcp/0";

/// Why the Kubo daemon could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum KuboDaemonError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error("cannot prepare the IPFS repo at {path:?}: {source}")]
    Repo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the IPFS repo config at {path:?} is not what Kubo writes: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("`ipfs init` failed for {repo:?}: {output}")]
    Init { repo: PathBuf, output: String },
    #[error("could not run `{program:?}`: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Kubo daemon exited ({status}) before its API answered; the end of {log:?}:\n{tail}")]
    Exited { status: std::process::ExitStatus, log: PathBuf, tail: String },
    #[error(
        "the Kubo daemon's API did not answer within {timeout:?} ({detail}); the end of {log:?}:\n{tail}"
    )]
    NotReady { timeout: Duration, detail: String, log: PathBuf, tail: String },
    #[error("stopping the Kubo daemon failed: {0}")]
    Stop(#[source] std::io::Error),
}

/// A running Kubo daemon; killed on drop, or shut down cleanly with [`KuboDaemon::stop`].
#[derive(Debug)]
pub struct KuboDaemon {
    child: Child,
    repo_dir: PathBuf,
    api_url: String,
    gateway_url: String,
}

impl KuboDaemon {
    /// Starts `ipfs daemon --offline` on the repo at `repo_dir` (created and initialized if it
    /// holds no repo yet) and waits until its RPC API answers.
    pub async fn start(repo_dir: &Path) -> Result<KuboDaemon, KuboDaemonError> {
        Self::start_on(repo_dir, 0).await
    }

    /// Like [`KuboDaemon::start`], with the RPC API on a given loopback port (0 picks a free one).
    pub async fn start_on(repo_dir: &Path, api_port: u16) -> Result<KuboDaemon, KuboDaemonError> {
        Self::launch(repo_dir, api_port, false).await
    }

    /// Like [`KuboDaemon::start`], online, with a swarm listener on a loopback port, so other
    /// local Kubos can connect to it (`swarm connect`) and fetch what it holds.
    pub async fn start_networked(repo_dir: &Path) -> Result<KuboDaemon, KuboDaemonError> {
        Self::launch(repo_dir, 0, true).await
    }

    async fn launch(repo_dir: &Path, api_port: u16, swarm: bool) -> Result<KuboDaemon, KuboDaemonError> {
        let program = tool_path("ipfs")?;
        let repo_error = |source| KuboDaemonError::Repo { path: repo_dir.to_owned(), source };
        tokio::fs::create_dir_all(repo_dir).await.map_err(repo_error)?;
        let repo_dir = tokio::fs::canonicalize(repo_dir).await.map_err(repo_error)?;
        if !tokio::fs::try_exists(repo_dir.join("config")).await.map_err(repo_error)? {
            init_repo(&program, &repo_dir).await?;
        }
        configure_repo(&repo_dir, api_port, swarm).await?;
        // Address files left by a daemon that was killed would point at dead ports.
        for stale in ["api", "gateway"] {
            remove_if_present(&repo_dir.join(stale)).await.map_err(repo_error)?;
        }

        let log_path = repo_dir.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| KuboDaemonError::Repo { path: log_path.clone(), source })?;
        let log_err =
            log.try_clone().map_err(|source| KuboDaemonError::Repo { path: log_path.clone(), source })?;
        let args: &[&str] = if swarm { &["daemon"] } else { &["daemon", "--offline"] };
        let child = ipfs_command(&program, &repo_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| KuboDaemonError::Spawn { program: program.clone(), source })?;

        let mut daemon = KuboDaemon { child, repo_dir, api_url: String::new(), gateway_url: String::new() };
        daemon.wait_ready().await?;
        tracing::info!(api_url = %daemon.api_url, gateway_url = %daemon.gateway_url, repo = ?daemon.repo_dir, "Kubo is up");
        Ok(daemon)
    }

    /// The RPC API address, e.g. `http://127.0.0.1:41234`, for [`crate::ipfs::KuboClient::new`].
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The read-only HTTP gateway, e.g. `http://127.0.0.1:41235` (content at `/ipfs/<cid>`).
    pub fn gateway_url(&self) -> &str {
        &self.gateway_url
    }

    /// The IPFS repo the daemon runs on.
    pub fn repo_dir(&self) -> &Path {
        &self.repo_dir
    }

    /// Asks the daemon to shut down (it closes its datastore cleanly) and waits for it to exit;
    /// kills it if it has not exited in time.
    pub async fn stop(mut self) -> Result<(), KuboDaemonError> {
        if let Ok(client) = IpfsClient::from_str(&self.api_url) {
            // Kubo answers shutdown with an empty body, which the client reports as a decoding
            // error: the exit of the process is the real answer.
            if let Err(error) = client.shutdown().await {
                tracing::debug!(%error, "Kubo shutdown reply");
            }
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.map_err(KuboDaemonError::Stop)?;
                tracing::info!(%status, repo = ?self.repo_dir, "Kubo stopped");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(repo = ?self.repo_dir, "Kubo did not shut down in time; killing it");
                self.child.kill().await.map_err(KuboDaemonError::Stop)
            }
        }
    }

    /// Polls until the daemon has written its address files and its API answers, or fails
    /// with what its log says.
    async fn wait_ready(&mut self) -> Result<(), KuboDaemonError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut detail = "no `api` file written yet".to_owned();
        loop {
            if let Some(status) = self.child.try_wait().map_err(KuboDaemonError::Stop)? {
                let log = self.repo_dir.join(LOG_FILE);
                let tail = log_tail(&log).await;
                return Err(KuboDaemonError::Exited { status, log, tail });
            }
            if let Some(api_url) = self.read_api_url().await {
                match self.probe(&api_url).await {
                    Ok(version) => match self.read_gateway_url().await {
                        Some(gateway_url) => {
                            tracing::debug!(%version, "Kubo answers");
                            self.api_url = api_url;
                            self.gateway_url = gateway_url;
                            return Ok(());
                        }
                        None => detail = "no `gateway` file written yet".to_owned(),
                    },
                    Err(why) => detail = format!("{api_url}/api/v0/version: {why}"),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let log = self.repo_dir.join(LOG_FILE);
                let tail = log_tail(&log).await;
                return Err(KuboDaemonError::NotReady { timeout: START_TIMEOUT, detail, log, tail });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Asks the API for the daemon's version. (`/api/v0/id` would do as well, but the client
    /// cannot decode Kubo's current reply to it.)
    async fn probe(&self, api_url: &str) -> Result<String, String> {
        let client = IpfsClient::from_str(api_url).map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), client.version()).await {
            Ok(Ok(reply)) => Ok(reply.version),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 2 s".to_owned()),
        }
    }

    /// The `api` file holds a multiaddr such as `/ip4/127.0.0.1/tcp/41234`.
    async fn read_api_url(&self) -> Option<String> {
        let text = tokio::fs::read_to_string(self.repo_dir.join("api")).await.ok()?;
        let port = text.trim().strip_prefix("/ip4/127.0.0.1/tcp/")?.parse::<u16>().ok()?;
        Some(format!("http://127.0.0.1:{port}"))
    }

    /// The `gateway` file holds a URL such as `http://127.0.0.1:41235`.
    async fn read_gateway_url(&self) -> Option<String> {
        let text = tokio::fs::read_to_string(self.repo_dir.join("gateway")).await.ok()?;
        let url = text.trim();
        url.starts_with("http://127.0.0.1:").then(|| url.to_owned())
    }
}

/// `ipfs` with the repo selected and telemetry off.
fn ipfs_command(program: &Path, repo_dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.env("IPFS_PATH", repo_dir).env("IPFS_TELEMETRY", "off");
    command
}

async fn init_repo(program: &Path, repo_dir: &Path) -> Result<(), KuboDaemonError> {
    let init = ipfs_command(program, repo_dir)
        .args(["init", "--empty-repo", "--profile", "test,unixfs-v1-2025"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(INIT_TIMEOUT, init).await {
        Ok(output) => {
            output.map_err(|source| KuboDaemonError::Spawn { program: program.to_owned(), source })?
        }
        Err(_) => {
            let output = format!("no result within {INIT_TIMEOUT:?}");
            return Err(KuboDaemonError::Init { repo: repo_dir.to_owned(), output });
        }
    };
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(KuboDaemonError::Init { repo: repo_dir.to_owned(), output: text });
    }
    tracing::info!(repo = ?repo_dir, "initialized IPFS repo");
    Ok(())
}

/// Rewrites the settings that keep the daemon local and its CIDs genmint's, keeping the rest.
async fn configure_repo(repo_dir: &Path, api_port: u16, swarm: bool) -> Result<(), KuboDaemonError> {
    let path = repo_dir.join("config");
    let io_error = |source| KuboDaemonError::Repo { path: path.clone(), source };
    let bad = |reason: String| KuboDaemonError::BadConfig { path: path.clone(), reason };
    let text = tokio::fs::read_to_string(&path).await.map_err(io_error)?;
    let mut config: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut settings = local_settings(&ImportProfile::UNIXFS_V1_2025, api_port);
    if swarm {
        settings.extend(swarm_settings());
    }
    for (key, value) in settings {
        set_key(&mut config, key, value).map_err(|key| bad(format!("`{key}` is not an object")))?;
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| bad(e.to_string()))?;
    let staged = repo_dir.join("config.genmint-tmp");
    tokio::fs::write(&staged, text).await.map_err(io_error)?;
    tokio::fs::rename(&staged, &path).await.map_err(io_error)
}

/// The settings every start enforces, as (dotted key, value); the API listens on `api_port`
/// (0: any free port).
fn local_settings(profile: &ImportProfile, api_port: u16) -> Vec<(&'static str, Value)> {
    let cid_version = match profile.cid_version {
        CidVersion::V0 => 0,
        CidVersion::V1 => 1,
    };
    vec![
        ("Addresses.API", json!(format!("/ip4/127.0.0.1/tcp/{api_port}"))),
        ("Addresses.Gateway", json!(LOOPBACK_ANY_PORT)),
        ("Addresses.Swarm", json!([])),
        ("Addresses.Announce", json!([])),
        ("Addresses.AppendAnnounce", json!([])),
        ("Bootstrap", json!([])),
        ("Peering.Peers", json!([])),
        ("Discovery.MDNS.Enabled", json!(false)),
        ("AutoConf.Enabled", json!(false)),
        ("Routing.Type", json!("none")),
        ("Routing.DelegatedRouters", json!([])),
        ("Import.CidVersion", json!(cid_version)),
        ("Import.HashFunction", json!("sha2-256")),
        ("Import.UnixFSRawLeaves", json!(profile.raw_leaves)),
        ("Import.UnixFSChunker", json!(format!("size-{}", profile.chunk_size))),
        ("Import.UnixFSDAGLayout", json!("balanced")),
        ("Import.UnixFSFileMaxLinks", json!(profile.max_links)),
    ]
}

/// What a networked daemon adds: one TCP listener on loopback, and nothing that reaches out by
/// itself.
fn swarm_settings() -> Vec<(&'static str, Value)> {
    vec![
        ("Addresses.Swarm", json!([LOOPBACK_ANY_PORT])),
        ("Swarm.RelayClient.Enabled", json!(false)),
        ("Swarm.RelayService.Enabled", json!(false)),
        ("Swarm.Transports.Network.Relay", json!(false)),
        ("Swarm.DisableNatPortMap", json!(true)),
        ("AutoNAT.ServiceMode", json!("disabled")),
        ("AutoTLS.Enabled", json!(false)),
    ]
}

/// Sets `dotted.key` in a JSON object tree, creating missing objects; on a non-object in the
/// way, returns that key.
fn set_key(config: &mut Value, dotted: &'static str, value: Value) -> Result<(), &'static str> {
    let mut node = config;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let object = node.as_object_mut().ok_or(dotted)?;
        if parts.peek().is_none() {
            object.insert(part.to_owned(), value);
            return Ok(());
        }
        node = object.entry(part).or_insert_with(|| json!({}));
    }
    Ok(())
}

async fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The last lines of the daemon's log, for error messages.
async fn log_tail(log: &Path) -> String {
    match tokio::fs::read_to_string(log).await {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipfs_repo_settings_are_written_into_nested_objects() {
        let mut config =
            json!({"Addresses": {"API": "/ip4/0.0.0.0/tcp/5001", "Swarm": ["/ip4/0.0.0.0/tcp/4001"]}});
        for (key, value) in local_settings(&ImportProfile::UNIXFS_V1_2025, 0) {
            set_key(&mut config, key, value).unwrap();
        }
        assert_eq!(config["Addresses"]["API"], LOOPBACK_ANY_PORT);
        assert_eq!(config["Addresses"]["Swarm"], json!([]));
        assert_eq!(config["Discovery"]["MDNS"]["Enabled"], false);
        assert_eq!(config["Import"]["UnixFSFileMaxLinks"], 1024);
        assert_eq!(config["Import"]["UnixFSChunker"], "size-1048576");
        let mut scalar = json!({"Discovery": 3});
        assert_eq!(
            set_key(&mut scalar, "Discovery.MDNS.Enabled", json!(false)),
            Err("Discovery.MDNS.Enabled")
        );
    }
}
