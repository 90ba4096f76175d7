//! [`KuboClient`]: the [`ContentStore`] backed by a Kubo daemon's RPC API (`/api/v0`).
//!
//! Every add passes the unixfs-v1-2025 parameters explicitly (CIDv1, raw leaves, 1 MiB chunks,
//! sha2-256); the one parameter the RPC cannot carry, the links per node, comes from the
//! daemon's `Import.UnixFSFileMaxLinks`, which `devnet::kubo` sets through the profile. Whatever
//! the daemon's settings, a CID that differs from the local computation is refused. Plain HTTP
//! only: Kubo's RPC belongs on loopback or a private network.

use std::future::Future;
use std::io::Cursor;
use std::time::Duration;

use futures_util::TryStreamExt;
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri, request};

use super::{Cid, CidVersion, ContentStore, ImportProfile, IpfsError};

/// The message Kubo answers `pin ls <cid>` with when the CID is not pinned.
const NOT_PINNED: &str = "is not pinned";

/// A Kubo daemon reached over its RPC API.
#[derive(Clone)]
pub struct KuboClient {
    client: IpfsClient,
    api_url: String,
    timeout: Duration,
}

impl KuboClient {
    /// How long one RPC call may take before it is abandoned, unless [`Self::with_timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// A client for the daemon whose API listens at `api_url`, e.g. `http://127.0.0.1:5001`.
    pub fn new(api_url: &str) -> Result<KuboClient, IpfsError> {
        let bad = |reason: String| IpfsError::BadApiUrl { api_url: api_url.to_owned(), reason };
        let Some(authority) = api_url.strip_prefix("http://") else {
            return Err(bad("it must start with `http://` (Kubo's RPC has no TLS)".to_owned()));
        };
        if authority.trim_end_matches('/').is_empty() {
            return Err(bad("it names no host".to_owned()));
        }
        let client = IpfsClient::from_str(api_url).map_err(|e| bad(e.to_string()))?;
        Ok(KuboClient {
            client,
            api_url: api_url.trim_end_matches('/').to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
        })
    }

    /// The same client with a different per-call time limit.
    pub fn with_timeout(self, timeout: Duration) -> KuboClient {
        KuboClient { timeout, ..self }
    }

    /// The API address this client talks to.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Runs one RPC call under the per-call time limit.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, IpfsError>>) -> Result<T, IpfsError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(IpfsError::Timeout { api_url: self.api_url.clone(), seconds }))
    }

    fn rpc_error(&self, operation: &'static str, error: ipfs_api_backend_hyper::Error) -> IpfsError {
        let api_url = self.api_url.clone();
        match error {
            ipfs_api_backend_hyper::Error::Api(api) => {
                IpfsError::Rejected { api_url, operation, message: api.message }
            }
            ipfs_api_backend_hyper::Error::Client(ref e) if e.is_connect() => {
                IpfsError::Unreachable { api_url, source: error }
            }
            source => IpfsError::Transport { api_url, operation, source },
        }
    }

    async fn read_capped(&self, path: &str, cid: &Cid, max_bytes: usize) -> Result<Vec<u8>, IpfsError> {
        self.read_stream(self.client.cat(path), cid, max_bytes).await
    }

    async fn read_stream<B: AsRef<[u8]>>(
        &self,
        mut stream: impl futures_util::Stream<Item = Result<B, ipfs_api_backend_hyper::Error>> + Unpin,
        cid: &Cid,
        max_bytes: usize,
    ) -> Result<Vec<u8>, IpfsError> {
        let mut content = Vec::new();
        while let Some(piece) = stream.try_next().await.map_err(|e| self.rpc_error("cat", e))? {
            let piece = piece.as_ref();
            if content.len() + piece.len() > max_bytes {
                return Err(IpfsError::TooLarge { cid: cid.clone(), max_bytes });
            }
            content.extend_from_slice(piece);
        }
        Ok(content)
    }
}

impl std::fmt::Debug for KuboClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KuboClient").field("api_url", &self.api_url).field("timeout", &self.timeout).finish()
    }
}

impl ContentStore for KuboClient {
    async fn add_and_pin(&self, bytes: Vec<u8>) -> Result<Cid, IpfsError> {
        let profile = ImportProfile::UNIXFS_V1_2025;
        // Hashing megabytes is CPU work: keep it off the async workers.
        let (bytes, local) = tokio::task::spawn_blocking(move || {
            let local = profile.cid_of(&bytes);
            (bytes, local)
        })
        .await?;
        let local = local?;
        let size = bytes.len();
        let chunker = format!("size-{}", profile.chunk_size);
        let options = request::Add {
            chunker: Some(&chunker),
            pin: Some(true),
            raw_leaves: Some(profile.raw_leaves),
            cid_version: Some(match profile.cid_version {
                CidVersion::V0 => 0,
                CidVersion::V1 => 1,
            }),
            hash: Some("sha2-256"),
            ..Default::default()
        };
        let add = self.client.add_with_options(Cursor::new(bytes), options);
        let reply = self.bounded(async { add.await.map_err(|e| self.rpc_error("add", e)) }).await?;
        let kubo: Cid = reply
            .hash
            .parse()
            .map_err(|source| IpfsError::BadKuboCid { reply: reply.hash.clone(), source })?;
        if kubo != local {
            tracing::warn!(%local, %kubo, size, "Kubo's CID differs from the locally computed one");
            return Err(IpfsError::CidMismatch { local, kubo });
        }
        tracing::debug!(cid = %kubo, size, "added and pinned");
        Ok(kubo)
    }

    async fn cat(&self, cid: &Cid, max_bytes: usize) -> Result<Vec<u8>, IpfsError> {
        let path = format!("/ipfs/{cid}");
        self.bounded(self.read_capped(&path, cid, max_bytes)).await
    }

    async fn cat_range(&self, cid: &Cid, offset: usize, length: usize) -> Result<Vec<u8>, IpfsError> {
        let path = format!("/ipfs/{cid}");
        self.bounded(self.read_stream(self.client.cat_range(&path, offset, length), cid, length)).await
    }

    async fn is_pinned(&self, cid: &Cid) -> Result<bool, IpfsError> {
        let key = cid.to_string();
        let pin_ls = self.client.pin_ls(Some(&key), Some("all"));
        match self.bounded(async { pin_ls.await.map_err(|e| self.rpc_error("pin ls", e)) }).await {
            Ok(reply) => Ok(!reply.keys.is_empty()),
            Err(IpfsError::Rejected { message, .. }) if message.contains(NOT_PINNED) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_must_be_plain_http_with_a_host() {
        assert_eq!(KuboClient::new("http://127.0.0.1:5001/").unwrap().api_url(), "http://127.0.0.1:5001");
        for bad in ["127.0.0.1:5001", "https://127.0.0.1:5001", "http://", "http://bad host"] {
            assert!(matches!(KuboClient::new(bad), Err(IpfsError::BadApiUrl { .. })), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_says_how_to_start_kubo() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = KuboClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let error = client.is_pinned(&Cid::raw_sha256(b"x")).await.unwrap_err();
        assert!(matches!(error, IpfsError::Unreachable { .. }), "{error:?}");
        assert!(error.to_string().contains("genmint dev"), "{error}");
    }
}
