//! Fakes for replication's unit tests: a network of in-memory nodes whose pin requests go straight
//! to each other's holder, and a chain that records tokens' CIDs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use futures_util::future::BoxFuture;
use genmint_p2p::pin::PinRequest;

use super::holder::hold;
use super::{Candidate, PinAnswer, ReplicationChain, ReplicationNetwork, ReplicationParts, ReplicationStore};
use crate::chain::ChainError;
use crate::config::ReplicationConfig;
use crate::db::Database;
use crate::ipfs::MemoryStore;
use crate::metrics::ReplicationMetrics;

pub const CHAIN_ID: u64 = 31337;
pub const CONTRACT: Address = Address::repeat_byte(0xcc);

/// Tokens and their (image, metadata) CIDs.
#[derive(Default)]
pub struct FakeChain(pub Mutex<HashMap<U256, (String, String)>>);

impl ReplicationChain for FakeChain {
    fn token_cids(&self, token: U256) -> BoxFuture<'_, Result<Option<(String, String)>, ChainError>> {
        let found = self.0.lock().unwrap().get(&token).cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// Every node of the fake network, by peer id.
#[derive(Default)]
pub struct Nodes(pub Mutex<HashMap<String, Arc<ReplicationParts<MemoryStore>>>>);

/// One node's view of the fake network.
pub struct FakeNetwork {
    pub peer_id: String,
    pub nodes: Arc<Nodes>,
    /// Peer ids whose requests fail as if the peer were gone.
    pub gone: Mutex<Vec<String>>,
}

impl ReplicationNetwork for FakeNetwork {
    fn local_peer_id(&self) -> String {
        self.peer_id.clone()
    }

    fn candidates(&self) -> BoxFuture<'_, Vec<Candidate>> {
        let nodes = self.nodes.0.lock().unwrap();
        let candidates = nodes
            .iter()
            .map(|(peer_id, parts)| Candidate {
                peer_id: peer_id.clone(),
                operator: parts.operator.address(),
            })
            .collect();
        Box::pin(async move { candidates })
    }

    fn ask_to_pin(&self, peer: &str, request: PinRequest) -> BoxFuture<'_, Result<PinAnswer, String>> {
        let parts = self.nodes.0.lock().unwrap().get(peer).cloned();
        let gone = self.gone.lock().unwrap().iter().any(|g| g == peer);
        Box::pin(async move {
            match parts {
                Some(parts) if !gone => Ok(hold(&parts, request).await),
                _ => Err("peer unreachable".to_owned()),
            }
        })
    }

    fn is_registered(&self, _: Address) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// A fake network of nodes on one chain.
pub struct World {
    pub chain: Arc<FakeChain>,
    pub nodes: Arc<Nodes>,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        Self { chain: Arc::default(), nodes: Arc::default(), dir: tempfile::tempdir().unwrap() }
    }

    /// A node named `peer_id` with its own Kubo (a memory store of the same name) and `config`;
    /// joined to the network unless `join` is false (a minter need not hold for itself).
    pub fn node(&self, peer_id: &str, config: ReplicationConfig) -> Arc<ReplicationParts<MemoryStore>> {
        let db = Database::open(&self.dir.path().join(format!("{peer_id}.sqlite"))).unwrap();
        let content = MemoryStore::named(&format!("Kubo{peer_id}"));
        let parts = Arc::new(ReplicationParts {
            network: Arc::new(FakeNetwork {
                peer_id: peer_id.to_owned(),
                nodes: self.nodes.clone(),
                gone: Mutex::default(),
            }),
            chain: self.chain.clone(),
            content,
            store: ReplicationStore::new(db).unwrap(),
            config,
            operator: PrivateKeySigner::random(),
            chain_id: CHAIN_ID,
            contract: CONTRACT,
            hold_timeout: Duration::from_secs(5),
            metrics: ReplicationMetrics::default(),
        });
        // Every Kubo can dial every other one, as on one network.
        for other in self.nodes.0.lock().unwrap().values() {
            other.content.can_reach(&parts.content);
            parts.content.can_reach(&other.content);
        }
        self.nodes.0.lock().unwrap().insert(peer_id.to_owned(), parts.clone());
        parts
    }
}
