//! Shared pieces: loopback nodes with short intervals, a test verifier, adverts, and waiting.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use genmint_p2p::advert::{Advert, AdvertVerifier, AdvertisedModel};
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{
    InboundJob, Keypair, Multiaddr, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, spawn,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::mpsc;

pub const ADVERT_INTERVAL: Duration = Duration::from_millis(400);
pub const ADVERT_TTL: Duration = Duration::from_millis(2000);
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Generous: the test machine may be busy.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Accepts exactly the binding signature [`good_signature`], as the real verifier accepts only a
/// signature by the advertised operator.
pub struct TestVerifier;

impl AdvertVerifier for TestVerifier {
    fn verify(&self, advert: &Advert) -> Result<(), String> {
        match advert.binding_signature == good_signature() {
            true => Ok(()),
            false => Err("signature is not by the operator".into()),
        }
    }
}

/// Accepts anything: a misconfigured (or malicious) node that publishes bad bindings.
pub struct CarelessVerifier;

impl AdvertVerifier for CarelessVerifier {
    fn verify(&self, _: &Advert) -> Result<(), String> {
        Ok(())
    }
}

pub fn good_signature() -> String {
    format!("0x{}", "ab".repeat(65))
}

pub fn bad_signature() -> String {
    format!("0x{}", "cd".repeat(65))
}

pub fn model_hash(n: u8) -> String {
    format!("0x{}", hex_byte(n).repeat(32))
}

fn hex_byte(n: u8) -> String {
    format!("{n:02x}")
}

pub fn advert(peer: &PeerId, sequence: u64, models: &[String]) -> Advert {
    Advert {
        peer_id: peer.to_string(),
        operator: format!("0x{}", "12".repeat(20)),
        chain_id: 31337,
        contract: format!("0x{}", "34".repeat(20)),
        binding_signature: good_signature(),
        models: models
            .iter()
            .map(|hash| AdvertisedModel {
                hash: hash.clone(),
                name: "test-model".into(),
                kind: "pixel-unet".into(),
                max_width: 256,
                max_height: 256,
                max_steps: 30,
                defaults: None,
            })
            .collect(),
        devices: vec!["cpu".into()],
        queue_depth: 0,
        capacity: 4,
        price_wei: "1000".into(),
        sequence,
        issued_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
    }
}

pub fn loopback(addrs: &[&str]) -> Vec<Multiaddr> {
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

pub fn config() -> NetworkConfig {
    NetworkConfig {
        listen: loopback(&["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]),
        network_id: "test".into(),
        advert_interval: ADVERT_INTERVAL,
        advert_ttl: ADVERT_TTL,
        request_timeout: REQUEST_TIMEOUT,
        ..NetworkConfig::default()
    }
}

pub struct TestNode {
    pub handle: NetworkHandle,
    pub peer: PeerId,
    pub events: mpsc::Receiver<NetworkEvent>,
}

impl TestNode {
    pub async fn start(config: NetworkConfig) -> Self {
        Self::start_with(config, Arc::new(TestVerifier)).await
    }

    pub async fn start_with(config: NetworkConfig, verifier: Arc<dyn AdvertVerifier>) -> Self {
        let (handle, events) = spawn(Keypair::generate_ed25519(), config, verifier).await.unwrap();
        Self { peer: handle.local_peer_id(), handle, events }
    }

    /// A node that joins through `bootstrap`.
    pub async fn joining(bootstrap: &[&TestNode]) -> Self {
        let mut config = config();
        for node in bootstrap {
            config.bootstrap.push(node.bootstrap_addr().await);
        }
        Self::start(config).await
    }

    /// This node's first listen address (TCP in [`config`]) with its peer id: what others
    /// bootstrap from.
    pub async fn bootstrap_addr(&self) -> Multiaddr {
        let addr = self.handle.listen_addrs().await.unwrap().remove(0);
        addr.with_p2p(self.peer).unwrap()
    }

    /// Answers every inbound job with `answer` from a task of its own (the node's event loop).
    pub fn serve(self, answer: fn(PeerId, JobRequest) -> JobResponse) -> NetworkHandle {
        let Self { handle, mut events, .. } = self;
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetworkEvent::InboundJob(InboundJob { peer, request, responder }) = event {
                    responder.respond(answer(peer, request));
                }
            }
        });
        handle
    }

    /// Reads and discards events, so that none pile up.
    pub fn ignore_events(self) -> NetworkHandle {
        self.serve(|_, _| JobResponse::Ack)
    }
}

pub async fn has_advert(handle: &NetworkHandle, peer: &PeerId) -> bool {
    handle.adverts().await.unwrap().iter().any(|r| r.advert.peer_id == peer.to_string())
}

/// Polls `check` until it holds, failing the test with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A libp2p swarm with only `behaviour`: a peer that speaks just what a test needs.
pub fn bare_swarm<B: NetworkBehaviour>(behaviour: impl FnOnce(&Keypair) -> B) -> Swarm<B> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|key| behaviour(key))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}
