//! The Kubo swarm as replication needs it: who this node's Kubo is (its peer id and the swarm
//! addresses other Kubos can dial) and connecting it to another Kubo, so that a `cat` of content
//! that Kubo holds is fetched from it over bitswap. Kubo's RPC is called directly
//! (`/api/v0/id`, `/api/v0/swarm/connect`): the RPC client cannot decode Kubo's current `id` reply.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use super::{IpfsError, KuboClient};

/// How long one swarm call may take.
const SWARM_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kubo daemon as peers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuboIdentity {
    pub peer_id: String,
    /// Swarm addresses, each ending in `/p2p/<peer id>`.
    pub addresses: Vec<String>,
}

/// The swarm side of a content store.
pub trait SwarmPeers {
    /// This Kubo's peer id and dialable swarm addresses (none when it listens nowhere).
    fn identity(&self) -> impl Future<Output = Result<KuboIdentity, IpfsError>> + Send;

    /// Connects to the Kubo at one of `addresses` (each ending in `/p2p/<peer id>`); returns how
    /// many answered.
    fn connect(&self, addresses: &[String]) -> impl Future<Output = Result<usize, IpfsError>> + Send;
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdReply {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    addresses: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorReply {
    message: String,
}

impl KuboClient {
    /// POSTs one RPC call with `args` and returns its JSON body.
    pub(super) async fn rpc_json<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        path: &str,
        args: &[(&str, &str)],
    ) -> Result<T, IpfsError> {
        let body = self.rpc_text(operation, path, args).await?;
        serde_json::from_str(&body).map_err(|e| IpfsError::Rejected {
            api_url: self.api_url().to_owned(),
            operation,
            message: format!("unreadable reply: {e}"),
        })
    }

    /// POSTs one RPC call with `args` and returns its body as text.
    pub(super) async fn rpc_text(
        &self,
        operation: &'static str,
        path: &str,
        args: &[(&str, &str)],
    ) -> Result<String, IpfsError> {
        let transport = |reason: String| IpfsError::Rejected {
            api_url: self.api_url().to_owned(),
            operation,
            message: reason,
        };
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v0/{path}", self.api_url()), args)
            .map_err(|e| transport(format!("bad RPC address: {e}")))?;
        let response = reqwest::Client::new().post(url).timeout(SWARM_TIMEOUT).send().await.map_err(|e| {
            if e.is_timeout() {
                IpfsError::Timeout { api_url: self.api_url().to_owned(), seconds: SWARM_TIMEOUT.as_secs() }
            } else {
                transport(format!("cannot reach Kubo: {e}"))
            }
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| transport(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorReply>(&body).map(|e| e.message).unwrap_or(body);
            return Err(transport(message));
        }
        Ok(body)
    }
}

/// Addresses another machine's Kubo could dial: with `/p2p/<id>`, no circuit relays.
fn dialable(peer_id: &str, addresses: Vec<String>) -> Vec<String> {
    let mut dialable: Vec<String> = addresses
        .into_iter()
        .filter(|a| !a.contains("/p2p-circuit"))
        .map(|a| if a.contains("/p2p/") { a } else { format!("{a}/p2p/{peer_id}") })
        .collect();
    dialable.sort();
    dialable.dedup();
    dialable.truncate(genmint_p2p::pin::MAX_KUBO_ADDRESSES);
    dialable
}

impl SwarmPeers for KuboClient {
    async fn identity(&self) -> Result<KuboIdentity, IpfsError> {
        let reply: IdReply = self.rpc_json("id", "id", &[]).await?;
        let addresses = dialable(&reply.id, reply.addresses.unwrap_or_default());
        Ok(KuboIdentity { peer_id: reply.id, addresses })
    }

    async fn connect(&self, addresses: &[String]) -> Result<usize, IpfsError> {
        // At once: an address that does not answer costs its time-out once, not once per address.
        let attempts = addresses.iter().map(|address| async move {
            let connected = self
                .rpc_json::<serde_json::Value>("swarm connect", "swarm/connect", &[("arg", address)])
                .await;
            if let Err(e) = &connected {
                tracing::debug!(%address, error = %e, "Kubo could not connect");
            }
            connected
        });
        let results = futures_util::future::join_all(attempts).await;
        let connected = results.iter().filter(|r| r.is_ok()).count();
        match results.into_iter().find_map(Result::err) {
            Some(e) if connected == 0 => Err(e),
            _ => Ok(connected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_direct_addresses_with_the_peer_id_are_offered() {
        let addresses = vec![
            "/ip4/127.0.0.1/tcp/4001".to_owned(),
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo".to_owned(),
            "/ip4/1.2.3.4/tcp/4001/p2p/12D3Relay/p2p-circuit".to_owned(),
        ];
        assert_eq!(dialable("12D3Koo", addresses), vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo".to_owned()]);
    }
}
