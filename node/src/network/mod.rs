//! The node on the peer-to-peer network (`genmint-p2p` does the libp2p work). It implements the
//! traits the layers below own — [`jobs::Forwarder`](crate::jobs::Forwarder) for placing jobs on
//! peers and [`spotcheck::SpotCheckNetwork`](crate::spotcheck::SpotCheckNetwork) for gossiping
//! spot checks — and hands peers' job requests to [`PeerJobs`].
//!
//! ```text
//! identity (peer.key) ─► spawn swarm ─► advertiser: our Advert (models, queue, price, operator
//!                                       binding) at start and on every job event that moves the load
//! adverts from peers ─► binding checked (EIP-191) in the swarm ─► registry check (chain, cached)
//!                   ─► router: rank peers for a job (model, price, load, latency) ─► forwarder
//! inbound job requests ─► inbound ─► PeerJobs: submit/status/cancel here, updates of forwarded jobs
//! our job events ─► notifier: Update messages to the origin of each job we run for a peer
//! peers' spot checks ─► a channel the server hands to `spotcheck`
//! peers' pin requests ─► a channel the server hands to `replication` (its holder); pin requests
//!   of our own go out through `ReplicationNetwork`
//! ```

mod advertiser;
pub mod binding;
mod forwarder;
pub mod identity;
mod inbound;
mod notifier;
pub mod registry;
mod replication;
pub mod router;
mod spot_checks;
mod status;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use genmint_p2p::advert::{Advert, ReceivedAdvert};
use genmint_p2p::spot_check::ReceivedSpotCheck;
use genmint_p2p::{
    Multiaddr, NatConfig, NatStatus, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, PeerInfo,
    Reachability, Verifiers,
};
use serde::Serialize;
use tokio::sync::mpsc;

pub use self::advertiser::NodeOffer;
use self::binding::BindingVerifier;
use self::registry::{OperatorRegistry, REGISTRY_TTL};
use self::router::Offer;
use crate::chain::ChainClient;
use crate::config::P2pConfig;
use crate::jobs::events::Events;
use crate::jobs::{Need, PeerJobs};
use crate::lifecycle::Tasks;
use crate::replication::InboundPin;

/// Peers' spot checks waiting for their verdict; past this the network's copy is left unjudged.
pub const RECEIVED_SPOT_CHECKS: usize = 64;
/// Peers' pin requests waiting for the holder; past this they are answered `busy`.
pub const RECEIVED_PIN_REQUESTS: usize = 32;

/// Why the node could not join the network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkStartError {
    #[error("p2p.{setting}: {text:?} is not a multiaddr")]
    BadAddress { setting: &'static str, text: String },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The network's own error says what to change (a port in use, a relay address, ...); it is
    /// not also a source, so a report of the whole chain names it once.
    #[error("starting the peer-to-peer network: {0}")]
    Swarm(genmint_p2p::NetworkError),
    #[error("signing the operator binding: {0}")]
    Binding(#[source] alloy::signers::Error),
}

/// This node's membership of the network.
pub struct Network {
    handle: NetworkHandle,
    registry: OperatorRegistry,
    binding_signature: String,
    operator: Address,
    chain_id: u64,
    contract: Address,
}

/// One peer as `GET /v1/peers` and `genmint peers` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub rtt_ms: Option<f64>,
    pub agent: Option<String>,
    /// Whether its operator is registered on the contract (only registered peers get jobs).
    pub registered: Option<bool>,
    pub advert: Option<Advert>,
    /// Seconds since its advert arrived.
    pub advert_age_secs: Option<u64>,
    /// How this node is connected to it.
    pub connection: ConnectionKind,
}

/// How a peer is connected: directly (hole punched included) or only through a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    Direct,
    Relayed,
}

/// The name metrics and the CLI use for a reachability.
pub fn reachability_name(reachability: Reachability) -> &'static str {
    match reachability {
        Reachability::Unknown => "unknown",
        Reachability::Public => "public",
        Reachability::Private => "private",
    }
}

fn multiaddrs(list: &[String], setting: &'static str) -> Result<Vec<Multiaddr>, NetworkStartError> {
    list.iter()
        .map(|a| a.parse().map_err(|_| NetworkStartError::BadAddress { setting, text: a.clone() }))
        .collect()
}

impl Network {
    /// Joins the network: loads the peer key, starts the swarm, and signs the operator binding.
    pub async fn start(
        data_dir: &Path,
        config: &P2pConfig,
        operator: &PrivateKeySigner,
        chain: ChainClient,
    ) -> Result<(Arc<Self>, mpsc::Receiver<NetworkEvent>), NetworkStartError> {
        let keypair = identity::load_or_create(data_dir)?;
        let peer_id = keypair.public().to_peer_id();
        let (chain_id, contract) = (chain.chain_id(), chain.address());
        let interval = Duration::from_secs(config.advert_interval_secs.max(1));
        let network_config = NetworkConfig {
            listen: multiaddrs(&config.listen, "listen")?,
            bootstrap: multiaddrs(&config.bootstrap, "bootstrap")?,
            mdns: config.mdns,
            network_id: format!("{chain_id}-{contract:#x}"),
            advert_interval: interval,
            advert_ttl: interval * 3,
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
            nat: NatConfig {
                relay_service: config.relay_service,
                relays: multiaddrs(&config.relays, "relays")?,
                external_addresses: multiaddrs(&config.external_addresses, "external_addresses")?,
                private_addresses: config.autonat_private_addresses,
            },
            ..NetworkConfig::default()
        };
        let verifiers = Verifiers {
            adverts: Arc::new(BindingVerifier { chain_id, contract }),
            spot_checks: Some(Arc::new(crate::spotcheck::signature::SignatureVerifier {
                chain_id,
                contract,
            })),
        };
        let (handle, events) = genmint_p2p::spawn_with(keypair, network_config, verifiers)
            .await
            .map_err(NetworkStartError::Swarm)?;
        let binding_signature = binding::sign_binding(operator, &peer_id.to_string(), chain_id, contract)
            .map_err(NetworkStartError::Binding)?;
        let network = Arc::new(Self {
            handle,
            registry: OperatorRegistry::new(chain, REGISTRY_TTL),
            binding_signature,
            operator: operator.address(),
            chain_id,
            contract,
        });
        Ok((network, events))
    }

    pub fn handle(&self) -> &NetworkHandle {
        &self.handle
    }

    pub fn peer_id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    /// The addresses other nodes can bootstrap from: listen addresses with `/p2p/<peer id>`.
    pub async fn bootstrap_addrs(&self) -> Result<Vec<String>, genmint_p2p::NetworkError> {
        let peer = self.peer_id();
        Ok(self.handle.listen_addrs().await?.into_iter().map(|a| format!("{a}/p2p/{peer}")).collect())
    }

    /// Starts the node's side of the network on `tasks`: answers peers' job requests, keeps the
    /// advert current and tells origins how their jobs go. Returns the peers' spot checks, for
    /// whoever judges them, and their pin requests, for the holder.
    pub fn serve(
        self: &Arc<Self>,
        jobs: Arc<dyn PeerJobs>,
        job_events: Events,
        offer: NodeOffer,
        events: mpsc::Receiver<NetworkEvent>,
        tasks: &Tasks,
    ) -> (mpsc::Receiver<Box<ReceivedSpotCheck>>, mpsc::Receiver<InboundPin>) {
        let (spot_checks, received) = mpsc::channel(RECEIVED_SPOT_CHECKS);
        let (pins, pin_requests) = mpsc::channel(RECEIVED_PIN_REQUESTS);
        let inbound_jobs = jobs.clone();
        tasks.spawn_until_stopped(async move {
            inbound::serve(inbound_jobs.as_ref(), events, inbound::Channels { spot_checks, pins }).await
        });
        let (network, advert_jobs, advert_events) = (self.clone(), jobs.clone(), job_events.clone());
        tasks.spawn_until_stopped(async move {
            advertiser::run(&network, &offer, advert_jobs.as_ref(), &advert_events).await
        });
        let handle = self.handle.clone();
        tasks.spawn_until_stopped(async move { notifier::run(handle, jobs.as_ref(), &job_events).await });
        (received, pin_requests)
    }

    /// Peers whose verified adverts can take `need`, best first, leaving out `exclude` and peers
    /// whose operator is not registered on the contract.
    pub async fn offers(&self, need: &Need, exclude: &[PeerId]) -> Vec<Offer> {
        let (adverts, peers) = match (self.handle.adverts().await, self.handle.peers().await) {
            (Ok(adverts), Ok(peers)) => (adverts, peers),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "the network is not answering");
                return Vec::new();
            }
        };
        let mut offers = Vec::new();
        for ReceivedAdvert { advert, .. } in adverts {
            let Ok(peer) = advert.peer_id.parse::<PeerId>() else { continue };
            if exclude.contains(&peer) || !self.operator_registered(&advert).await {
                continue;
            }
            let rtt = peers.iter().find(|p| p.peer_id == peer).and_then(|p| p.rtt);
            offers.push(Offer { peer, advert, rtt });
        }
        router::rank(offers, need)
    }

    async fn operator_registered(&self, advert: &Advert) -> bool {
        match advert.operator.parse::<Address>() {
            Ok(operator) => self.is_registered(operator).await,
            Err(_) => false,
        }
    }

    /// Whether `operator` is a registered node on the contract (cached for a while).
    pub async fn is_registered(&self, operator: Address) -> bool {
        self.registry.is_registered(operator).await
    }

    /// Connected peers with their adverts, for `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerView>, genmint_p2p::NetworkError> {
        let peers = self.handle.peers().await?;
        let mut views = Vec::with_capacity(peers.len());
        for PeerInfo { peer_id, addresses, rtt, agent_version, advert, relayed } in peers {
            let registered = match &advert {
                Some(received) => Some(self.operator_registered(&received.advert).await),
                None => None,
            };
            views.push(PeerView {
                peer_id: peer_id.to_string(),
                addresses: addresses.iter().map(ToString::to_string).collect(),
                rtt_ms: rtt.map(|d| d.as_secs_f64() * 1000.0),
                agent: agent_version,
                registered,
                advert_age_secs: advert
                    .as_ref()
                    .and_then(|a| a.received_at.elapsed().ok())
                    .map(|d| d.as_secs()),
                advert: advert.map(|a| a.advert),
                connection: if relayed { ConnectionKind::Relayed } else { ConnectionKind::Direct },
            });
        }
        views.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        Ok(views)
    }

    /// Whether peers reach this node directly, and through which relays.
    pub async fn nat_status(&self) -> Result<NatStatus, genmint_p2p::NetworkError> {
        self.handle.nat_status().await
    }

    /// Fresh, verified adverts of registered peers.
    pub async fn registered_adverts(&self) -> Result<Vec<Advert>, genmint_p2p::NetworkError> {
        let mut adverts = Vec::new();
        for received in self.handle.adverts().await? {
            if self.operator_registered(&received.advert).await {
                adverts.push(received.advert);
            }
        }
        Ok(adverts)
    }

    /// Stops the swarm.
    pub async fn shutdown(&self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::debug!(error = %e, "network already stopped");
        }
    }
}
