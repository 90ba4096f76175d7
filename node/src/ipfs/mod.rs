//! IPFS: local CID computation and the content store the node pins images and metadata to.
//!
//! Bytes go to [`ContentStore::add_and_pin`]; the store adds them under
//! [`ImportProfile::UNIXFS_V1_2025`], and the CID it reports is accepted only if it equals the
//! CID [`cid`] computes here from the same bytes. [`KuboClient`] is the store the product runs: a
//! Kubo daemon reached over its RPC API on loopback; unit tests use an in-memory store.
//! [`SwarmPeers`] connects the node's Kubo to the Kubos of peers, so content one holds can be
//! fetched by another (replication); [`RemotePins`] has Kubo pin content on a remote pinning
//! service (the IPFS Pinning Service API, which Kubo speaks).

mod cid;
mod kubo;
#[cfg(test)]
mod memory;
mod remote;
mod swarm;

use std::future::Future;

pub use cid::{Cid, CidError, CidParseError, CidVersion, ImportProfile};
pub use kubo::KuboClient;
#[cfg(test)]
pub use memory::MemoryStore;
pub use remote::{RemotePin, RemotePins};
pub use swarm::{KuboIdentity, SwarmPeers};

/// Where content is added, pinned and read back by CID.
pub trait ContentStore {
    /// Adds `bytes` as one file under [`ImportProfile::UNIXFS_V1_2025`], pins it, and returns its
    /// CID after checking that the store's CID equals the locally computed one.
    fn add_and_pin(&self, bytes: Vec<u8>) -> impl Future<Output = Result<Cid, IpfsError>> + Send;

    /// The file behind `cid`, refused once it grows past `max_bytes`.
    fn cat(&self, cid: &Cid, max_bytes: usize) -> impl Future<Output = Result<Vec<u8>, IpfsError>> + Send;

    /// `length` bytes of the file behind `cid` from `offset` on (fewer at its end). The bytes
    /// are not checked against the CID (only a whole file can be): callers check them otherwise
    /// (a latent trace's records against its Merkle leaves).
    fn cat_range(
        &self,
        cid: &Cid,
        offset: usize,
        length: usize,
    ) -> impl Future<Output = Result<Vec<u8>, IpfsError>> + Send;

    /// Whether `cid` is pinned (directly, recursively, or as part of a pinned DAG).
    fn is_pinned(&self, cid: &Cid) -> impl Future<Output = Result<bool, IpfsError>> + Send;
}

/// Why a content store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    #[error("`{api_url}` is not a usable Kubo API address: {reason}")]
    BadApiUrl { api_url: String, reason: String },
    #[error("cannot reach Kubo at {api_url}: is the daemon running? `genmint dev` starts one ({source})")]
    Unreachable {
        api_url: String,
        #[source]
        source: ipfs_api_backend_hyper::Error,
    },
    #[error("Kubo at {api_url} did not answer within {seconds} s; check that it is not overloaded")]
    Timeout { api_url: String, seconds: u64 },
    #[error("Kubo at {api_url} refused `{operation}`: {message}")]
    Rejected { api_url: String, operation: &'static str, message: String },
    #[error("Kubo at {api_url} failed during `{operation}`: {source}")]
    Transport {
        api_url: String,
        operation: &'static str,
        #[source]
        source: ipfs_api_backend_hyper::Error,
    },
    #[error("Kubo reported the CID `{reply}`, which genmint cannot use: {source}")]
    BadKuboCid {
        reply: String,
        #[source]
        source: CidParseError,
    },
    #[error(
        "Kubo stored the content as {kubo} but genmint computed {local}: set Kubo's import \
         settings to the unixfs-v1-2025 profile (`ipfs config profile apply unixfs-v1-2025`)"
    )]
    CidMismatch { local: Cid, kubo: Cid },
    #[error("{cid} is larger than the {max_bytes} bytes allowed here")]
    TooLarge { cid: Cid, max_bytes: usize },
    #[error(transparent)]
    Cid(#[from] CidError),
    #[error("computing the CID locally failed: {0}")]
    LocalCid(#[from] tokio::task::JoinError),
}
