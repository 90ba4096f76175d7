//! The node on the peer-to-peer network (`genmint-p2p` does the libp2p work):
//!
//! ```text
//! identity (peer.key) ─► spawn swarm ─► advertiser: our Advert (models, queue, price, operator
//!                                       binding) on every change and periodically
//! adverts from peers ─► binding checked (EIP-191) in the swarm ─► registry check (chain, cached)
//!                   ─► router: rank peers for a job (model, price, load, latency)
//! inbound job requests ─► inbound: submit/status/cancel here, updates for jobs we forwarded
//! our job events ─► notifier: Update messages to the origin of each job we run for a peer
//! spot checks ─► `crate::spotcheck`: ours published, peers' judged and kept
//! ```

pub mod binding;
pub mod identity;
mod inbound;
mod notifier;
pub mod registry;
pub mod router;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use genmint_p2p::advert::{Advert, AdvertisedModel, ModelDefaults, ReceivedAdvert};
use genmint_p2p::{Multiaddr, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, PeerInfo, Verifiers};
use serde::Serialize;
use tokio::sync::mpsc;

use self::binding::BindingVerifier;
use self::registry::{OperatorRegistry, REGISTRY_TTL};
use self::router::{Need, Offer};
use crate::chain::ChainClient;
use crate::config::P2pConfig;
use crate::jobs::pipeline::Pipeline;
use crate::spotcheck::{self, SpotChecker};

/// How often the advertiser looks for a change in queue depth or capacity.
const ADVERT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// This node's membership of the network.
pub struct Network {
    handle: NetworkHandle,
    registry: OperatorRegistry,
    binding_signature: String,
    /// The operator key: it signs this node's spot checks.
    operator: PrivateKeySigner,
    chain_id: u64,
    contract: Address,
    /// How often this node spot-checks peers' tokens (`None`: never).
    spot_check_interval: Option<Duration>,
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
}

impl Network {
    /// Joins the network: loads the peer key, starts the swarm, and signs the operator binding.
    pub async fn start(
        data_dir: &Path,
        config: &P2pConfig,
        operator: &PrivateKeySigner,
        chain: ChainClient,
    ) -> Result<(Arc<Self>, mpsc::Receiver<NetworkEvent>)> {
        let keypair = identity::load_or_create(data_dir)?;
        let peer_id = keypair.public().to_peer_id();
        let (chain_id, contract) = (chain.chain_id(), chain.address());
        let parse = |list: &[String], what: &str| -> Result<Vec<Multiaddr>> {
            list.iter()
                .map(|a| a.parse().with_context(|| format!("p2p.{what}: {a:?} is not a multiaddr")))
                .collect()
        };
        let network_config = NetworkConfig {
            listen: parse(&config.listen, "listen")?,
            bootstrap: parse(&config.bootstrap, "bootstrap")?,
            mdns: config.mdns,
            network_id: format!("{chain_id}-{contract:#x}"),
            advert_interval: Duration::from_secs(config.advert_interval_secs.max(1)),
            advert_ttl: Duration::from_secs(config.advert_interval_secs.max(1) * 3),
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
            ..NetworkConfig::default()
        };
        let verifiers = Verifiers {
            adverts: Arc::new(BindingVerifier { chain_id, contract }),
            spot_checks: Some(Arc::new(spotcheck::signature::SignatureVerifier { chain_id, contract })),
        };
        let (handle, events) = genmint_p2p::spawn_with(keypair, network_config, verifiers).await.context(
            "starting the peer-to-peer network (is another node using the same p2p.listen ports?)",
        )?;
        let binding_signature = binding::sign_binding(operator, &peer_id.to_string(), chain_id, contract)?;
        let network = Arc::new(Self {
            handle,
            registry: OperatorRegistry::new(chain, REGISTRY_TTL),
            binding_signature,
            operator: operator.clone(),
            chain_id,
            contract,
            spot_check_interval: (config.spot_check_interval_secs > 0)
                .then(|| Duration::from_secs(config.spot_check_interval_secs)),
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
    pub async fn bootstrap_addrs(&self) -> Result<Vec<String>> {
        let peer = self.peer_id();
        Ok(self.handle.listen_addrs().await?.into_iter().map(|a| format!("{a}/p2p/{peer}")).collect())
    }

    /// Runs the node's side of the network until the swarm stops: answers peers' job requests,
    /// keeps the advert current, tells origins how their jobs go, and spot-checks and hears
    /// spot checks.
    pub fn serve(self: &Arc<Self>, pipeline: Arc<Pipeline>, events: mpsc::Receiver<NetworkEvent>) {
        let (spot_checks, received_spot_checks) = mpsc::channel(spotcheck::RECEIVED_QUEUE);
        tokio::spawn(inbound::serve(pipeline.clone(), events, spot_checks));
        tokio::spawn(spotcheck::receive(self.clone(), pipeline.clone(), received_spot_checks));
        if let Some(interval) = self.spot_check_interval {
            let checker = SpotChecker::new(self.clone(), pipeline.clone(), self.operator.clone());
            tokio::spawn(checker.run(interval));
        }
        tokio::spawn(self.clone().advertise(pipeline.clone()));
        tokio::spawn(notifier::run(self.clone(), pipeline));
    }

    fn advert(&self, pipeline: &Pipeline, sequence: u64) -> Result<Advert> {
        let model = pipeline.inference().descriptor();
        let (queued, free) = pipeline.load()?;
        Ok(Advert {
            peer_id: self.peer_id().to_string(),
            operator: self.operator.address().to_string(),
            chain_id: self.chain_id,
            contract: self.contract.to_string(),
            binding_signature: self.binding_signature.clone(),
            models: vec![AdvertisedModel {
                hash: model.hash.to_string(),
                name: model.name.clone(),
                kind: model.kind.as_str().to_owned(),
                max_width: model.limits.max_width,
                max_height: model.limits.max_height,
                max_steps: model.limits.max_steps,
                defaults: Some(ModelDefaults {
                    width: model.limits.default_width,
                    height: model.limits.default_height,
                    steps: model.limits.default_steps,
                    guidance_x100: (model.limits.default_guidance * 100.0).round() as u32,
                }),
            }],
            devices: vec![model.envelope.device_class.clone()],
            queue_depth: u32::try_from(queued).unwrap_or(u32::MAX),
            capacity: u32::try_from(free).unwrap_or(u32::MAX),
            price_wei: pipeline.min_fee().to_string(),
            sequence,
            issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
        })
    }

    /// Publishes the advert at start and whenever the queue changes (the swarm repeats it).
    async fn advertise(self: Arc<Self>, pipeline: Arc<Pipeline>) {
        let mut last: Option<(u32, u32)> = None;
        // Sequences start at the clock so a restarted node's adverts supersede its old ones.
        let mut sequence =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
        loop {
            match self.advert(&pipeline, sequence) {
                Ok(advert) if last != Some((advert.queue_depth, advert.capacity)) => {
                    last = Some((advert.queue_depth, advert.capacity));
                    sequence += 1;
                    if let Err(e) = self.handle.set_advert(advert).await {
                        tracing::debug!(error = %e, "advertiser stops: the network is down");
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot build the advert"),
            }
            tokio::time::sleep(ADVERT_CHECK_INTERVAL).await;
        }
    }

    /// Peers whose verified adverts can take `need`, best first, leaving out `exclude` and peers
    /// whose operator is not registered on the contract.
    pub async fn candidates(&self, need: &Need, exclude: &[PeerId]) -> Vec<Offer> {
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
    pub async fn peers(&self) -> Result<Vec<PeerView>> {
        let peers = self.handle.peers().await?;
        let mut views = Vec::with_capacity(peers.len());
        for PeerInfo { peer_id, addresses, rtt, agent_version, advert } in peers {
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
            });
        }
        views.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        Ok(views)
    }

    /// Fresh, verified adverts of registered peers.
    pub async fn registered_adverts(&self) -> Result<Vec<Advert>> {
        let mut adverts = Vec::new();
        for received in self.handle.adverts().await? {
            if self.operator_registered(&received.advert).await {
                adverts.push(received.advert);
            }
        }
        Ok(adverts)
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::debug!(error = %e, "network already stopped");
        }
    }
}
