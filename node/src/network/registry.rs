//! Which operators the contract's node registry allows, asked of the chain and cached: adverts
//! from unregistered operators are ignored for routing (their mints would be refused anyway).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy::primitives::Address;

use crate::chain::ChainClient;

/// How long an answer from the chain is trusted before it is asked again.
pub const REGISTRY_TTL: Duration = Duration::from_secs(60);

/// A cached view of the node registry.
pub struct OperatorRegistry {
    chain: ChainClient,
    ttl: Duration,
    cache: Mutex<HashMap<Address, (bool, Instant)>>,
}

impl OperatorRegistry {
    pub fn new(chain: ChainClient, ttl: Duration) -> Self {
        Self { chain, ttl, cache: Mutex::default() }
    }

    fn cached(&self, operator: Address) -> Option<(bool, Instant)> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&operator).copied()
    }

    /// Whether `operator` is a registered, active node. When the chain cannot be asked, the last
    /// answer stands (and an operator never seen counts as unregistered).
    pub async fn is_registered(&self, operator: Address) -> bool {
        let cached = self.cached(operator);
        if let Some((registered, at)) = cached
            && at.elapsed() < self.ttl
        {
            return registered;
        }
        match self.chain.is_node(operator).await {
            Ok(registered) => {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.insert(operator, (registered, Instant::now()));
                registered
            }
            Err(e) => {
                tracing::warn!(%operator, error = %e, "cannot check the node registry; using the last answer");
                cached.is_some_and(|(registered, _)| registered)
            }
        }
    }
}
