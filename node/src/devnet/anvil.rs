//! A local anvil chain as a child process: started on a free loopback port, ready once it answers
//! `eth_chainId`, killed when dropped. For `genmint dev` and tests against a real EVM.
//!
//! anvil mines a block per transaction (automine), so receipts are available as soon as a
//! transaction is accepted. Its output goes to `tracing` at debug level under the `anvil` target.

use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, b256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::{MissingTool, tool_path};

/// The chain id anvil runs with, and the one `genmint dev` expects.
pub const CHAIN_ID: u64 = 31337;

/// How long anvil may take to listen and answer; it usually needs ~100 ms.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One of anvil's well-known development accounts (mnemonic "test test ... junk"). Their keys
/// are public test keys printed by every anvil: never use them on a real network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevAccount {
    /// Account 0: deploys the contract and owns the registries.
    Owner,
    /// Account 1: the node operator that attests.
    NodeOperator,
    /// Account 2: the creator who signs requests.
    Creator,
}

impl DevAccount {
    /// The account's private key.
    pub fn key(self) -> PrivateKeySigner {
        const OWNER: B256 = b256!("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
        const NODE_OPERATOR: B256 =
            b256!("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
        const CREATOR: B256 = b256!("0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a");
        let key = match self {
            Self::Owner => OWNER,
            Self::NodeOperator => NODE_OPERATOR,
            Self::Creator => CREATOR,
        };
        PrivateKeySigner::from_bytes(&key)
            .unwrap_or_else(|_| unreachable!("anvil's published dev keys are valid secp256k1 keys"))
    }
}

/// Why anvil could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error("could not run anvil: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("anvil exited before it listened: {output}")]
    Exited { output: String },
    #[error("anvil did not answer eth_chainId on {rpc_url} within {timeout:?}: {detail}")]
    NotReady { rpc_url: String, timeout: Duration, detail: String },
    #[error("anvil at {rpc_url} reports chain id {actual}, expected {CHAIN_ID}")]
    WrongChain { rpc_url: String, actual: u64 },
    #[error("anvil at {rpc_url} refused {method}: {detail}")]
    Rpc { rpc_url: String, method: &'static str, detail: String },
    #[error("stopping anvil failed: {0}")]
    Stop(#[source] std::io::Error),
}

/// A running anvil; killed on drop, or stopped with [`Anvil::stop`].
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    rpc_url: String,
}

impl Anvil {
    /// Starts anvil on `127.0.0.1` with a free port and chain id [`CHAIN_ID`], and waits until it
    /// answers `eth_chainId`.
    pub async fn start() -> Result<Self, AnvilError> {
        Self::start_on(0).await
    }

    /// Like [`Anvil::start`], on a given port (0 picks a free one).
    pub async fn start_on(port: u16) -> Result<Self, AnvilError> {
        let program = tool_path("anvil")?;
        let mut child = Command::new(&program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id"])
            .arg(CHAIN_ID.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(AnvilError::Spawn)?;

        let stdout = child.stdout.take();
        let listening = tokio::time::timeout(START_TIMEOUT, listen_address(stdout)).await;
        let address = match listening {
            Ok(Some(address)) => address,
            Ok(None) => {
                let output = exit_output(&mut child).await;
                return Err(AnvilError::Exited { output });
            }
            Err(_) => {
                return Err(AnvilError::NotReady {
                    rpc_url: "(no port yet)".into(),
                    timeout: START_TIMEOUT,
                    detail: "anvil never printed its listening address".into(),
                });
            }
        };
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_output(stderr));
        }

        let anvil = Self { child, rpc_url: format!("http://{address}") };
        anvil.wait_ready().await?;
        tracing::info!(rpc_url = %anvil.rpc_url, chain_id = CHAIN_ID, "anvil is up");
        Ok(anvil)
    }

    /// The HTTP JSON-RPC endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// The chain id ([`CHAIN_ID`]).
    pub fn chain_id(&self) -> u64 {
        CHAIN_ID
    }

    /// The private key of one of the development accounts anvil funds.
    pub fn dev_key(&self, account: DevAccount) -> PrivateKeySigner {
        account.key()
    }

    /// Gives `address` 1000 ETH with anvil's `anvil_setBalance` (for development keys beyond
    /// anvil's own accounts).
    pub async fn fund(&self, address: Address) -> Result<(), AnvilError> {
        const METHOD: &str = "anvil_setBalance";
        let failed =
            |detail: String| AnvilError::Rpc { rpc_url: self.rpc_url.clone(), method: METHOD, detail };
        let url = self.rpc_url.parse().map_err(|e| failed(format!("bad URL: {e}")))?;
        let provider = ProviderBuilder::new().connect_http(url);
        let balance = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64));
        provider
            .raw_request::<_, ()>(METHOD.into(), (address, balance))
            .await
            .map_err(|e| failed(e.to_string()))
    }

    /// Kills anvil and waits for it to exit.
    pub async fn stop(mut self) -> Result<(), AnvilError> {
        self.child.kill().await.map_err(AnvilError::Stop)?;
        tracing::info!(rpc_url = %self.rpc_url, "anvil stopped");
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), AnvilError> {
        let not_ready = |detail: String| AnvilError::NotReady {
            rpc_url: self.rpc_url.clone(),
            timeout: START_TIMEOUT,
            detail,
        };
        let url = self.rpc_url.parse().map_err(|e| not_ready(format!("bad URL: {e}")))?;
        let provider = ProviderBuilder::new().connect_http(url);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match provider.get_chain_id().await {
                Ok(CHAIN_ID) => return Ok(()),
                Ok(actual) => {
                    return Err(AnvilError::WrongChain { rpc_url: self.rpc_url.clone(), actual });
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(not_ready(e.to_string()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Reads anvil's banner up to `Listening on HOST:PORT`, then keeps forwarding the rest to
/// `tracing` (an undrained pipe would eventually block anvil). `None` if anvil closed its output.
async fn listen_address(stdout: Option<ChildStdout>) -> Option<String> {
    let mut lines = BufReader::new(stdout?).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(address) = line.trim().strip_prefix("Listening on ") {
            let address = address.trim().to_owned();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "anvil", "{line}");
                }
            });
            return Some(address);
        }
    }
    None
}

async fn forward_output(output: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "anvil", "{line}");
    }
}

/// What an anvil that exited early said on stderr, with its exit status.
async fn exit_output(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        // Best effort: the text only decorates the error.
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = match child.wait().await {
        Ok(status) => status.to_string(),
        Err(e) => format!("status unknown ({e})"),
    };
    format!("{status}; stderr: {}", stderr.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_anvils_first_three() {
        let addresses: Vec<String> = [DevAccount::Owner, DevAccount::NodeOperator, DevAccount::Creator]
            .into_iter()
            .map(|account| account.key().address().to_string())
            .collect();
        assert_eq!(
            addresses,
            [
                "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            ]
        );
    }
}
