//! Remote pinning services through Kubo: Kubo speaks the IPFS Pinning Service API itself
//! (`ipfs pin remote`), so genmint only registers a service with its Kubo
//! (`/api/v0/pin/remote/service/add`) and asks Kubo to have a CID pinned there
//! (`/api/v0/pin/remote/add --background`); Kubo then sends the request, its own addresses as
//! origins, and connects to the delegates the service names so they can fetch the blocks.
//! `/api/v0/pin/remote/ls` reads back what the service says of a CID.

use std::future::Future;

use serde::Deserialize;

use super::{Cid, IpfsError, KuboClient};

/// A remote pin as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePin {
    pub cid: String,
    pub name: String,
    /// `queued`, `pinning`, `pinned` or `failed`, as the Pinning Service API says.
    pub status: String,
}

/// Remote pinning, through the content store's daemon.
pub trait RemotePins {
    /// Registers `name` (endpoint and access token) with the daemon, unless it already knows it.
    fn add_service(
        &self,
        name: &str,
        endpoint: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), IpfsError>> + Send;

    /// Asks the service `service` to pin `cid` under `name`; returns once the service took the
    /// request (it fetches in the background).
    fn pin_remote(
        &self,
        service: &str,
        cid: &Cid,
        name: &str,
    ) -> impl Future<Output = Result<RemotePin, IpfsError>> + Send;

    /// What the service says of `cid`, in any state.
    fn remote_status(
        &self,
        service: &str,
        cid: &Cid,
    ) -> impl Future<Output = Result<Vec<RemotePin>, IpfsError>> + Send;
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Services {
    #[serde(default)]
    remote_services: Option<Vec<Service>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Service {
    service: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PinReply {
    cid: String,
    #[serde(default)]
    name: String,
    status: String,
}

impl From<PinReply> for RemotePin {
    fn from(reply: PinReply) -> Self {
        Self { cid: reply.cid, name: reply.name, status: reply.status }
    }
}

impl RemotePins for KuboClient {
    async fn add_service(&self, name: &str, endpoint: &str, key: &str) -> Result<(), IpfsError> {
        let known: Services = self.rpc_json("pin remote service ls", "pin/remote/service/ls", &[]).await?;
        if known.remote_services.unwrap_or_default().iter().any(|s| s.service == name) {
            return Ok(());
        }
        // The key travels as an RPC argument to the daemon on loopback; it is never logged.
        self.rpc_text(
            "pin remote service add",
            "pin/remote/service/add",
            &[("arg", name), ("arg", endpoint), ("arg", key)],
        )
        .await
        .map(|_| ())
    }

    async fn pin_remote(&self, service: &str, cid: &Cid, name: &str) -> Result<RemotePin, IpfsError> {
        let path = format!("/ipfs/{cid}");
        let args = [("arg", path.as_str()), ("service", service), ("name", name), ("background", "true")];
        let reply: PinReply = self.rpc_json("pin remote add", "pin/remote/add", &args).await?;
        Ok(reply.into())
    }

    async fn remote_status(&self, service: &str, cid: &Cid) -> Result<Vec<RemotePin>, IpfsError> {
        let cid = cid.to_string();
        // An array option: one `status` argument per value.
        let statuses = ["queued", "pinning", "pinned", "failed"].map(|status| ("status", status));
        let mut args = vec![("service", service), ("cid", cid.as_str())];
        args.extend(statuses);
        let text = self.rpc_text("pin remote ls", "pin/remote/ls", &args).await?;
        // One JSON object per line.
        Ok(text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| serde_json::from_str::<PinReply>(line).ok())
            .map(RemotePin::from)
            .collect())
    }
}
