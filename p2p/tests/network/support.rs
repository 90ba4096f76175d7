//! Shared pieces: loopback nodes with short intervals, test verifiers, adverts and spot checks,
//! plain gossip peers, and waiting.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use genmint_p2p::advert::{Advert, AdvertVerifier, AdvertisedModel};
use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION, SpotCheck, SpotCheckVerifier};
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{
    InboundJob, Keypair, Multiaddr, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, Verifiers, spawn,
    spawn_with,
};
use libp2p::futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Swarm, SwarmBuilder, gossipsub, noise, tcp, yamux};
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

impl SpotCheckVerifier for TestVerifier {
    fn verify(&self, check: &SpotCheck) -> Result<(), String> {
        match check.signature == good_signature() {
            true => Ok(()),
            false => Err("signature is not by the checker".into()),
        }
    }
}

/// Accepts anything: a misconfigured (or malicious) node that publishes bad bindings and checks.
pub struct CarelessVerifier;

impl AdvertVerifier for CarelessVerifier {
    fn verify(&self, _: &Advert) -> Result<(), String> {
        Ok(())
    }
}

impl SpotCheckVerifier for CarelessVerifier {
    fn verify(&self, _: &SpotCheck) -> Result<(), String> {
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
        operator: operator(),
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
        refresh_secs: None,
        addresses: Vec::new(),
    }
}

/// The operator [`advert`] names.
pub fn operator() -> String {
    format!("0x{}", "12".repeat(20))
}

/// A check of token `n` by [`operator`], signed [`good_signature`], made now.
pub fn spot_check(n: u8) -> SpotCheck {
    let envelope = CheckEnvelope { engine: "test".into(), dtype: "f32".into(), device_class: "cpu".into() };
    SpotCheck {
        version: SPOT_CHECK_VERSION,
        token_id: format!("0x{}", hex_byte(n).repeat(32)),
        model_hash: model_hash(1),
        minted_by: format!("0x{}", "34".repeat(20)),
        expected_pixel_digest: format!("0x{}", "56".repeat(32)),
        regenerated_pixel_digest: format!("0x{}", "78".repeat(32)),
        perceptual_distance: None,
        outcome: Outcome::Mismatch,
        checker: operator(),
        checker_envelope: envelope.clone(),
        minted_envelope: envelope,
        checked_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
        signature: good_signature(),
        step_check: None,
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

    /// A node that takes part in spot checks, checking signatures with `verifier`, and joins
    /// through `bootstrap`.
    pub async fn checking<V>(bootstrap: &[&TestNode], verifier: Arc<V>) -> Self
    where
        V: AdvertVerifier + SpotCheckVerifier,
    {
        let mut config = config();
        for node in bootstrap {
            config.bootstrap.push(node.bootstrap_addr().await);
        }
        let verifiers = Verifiers { adverts: verifier.clone(), spot_checks: Some(verifier) };
        let (handle, events) = spawn_with(Keypair::generate_ed25519(), config, verifiers).await.unwrap();
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

/// A plain gossipsub peer on `topic` that dials `dial` alone and validates nothing: it reports the
/// publisher of every message it hears, and publishes (again and again) whatever bytes it is given.
/// It speaks no Kademlia, so nobody else finds it: whatever it hears, the dialled node forwarded.
pub fn gossip_peer(dial: Multiaddr, topic: &str) -> (mpsc::Receiver<PeerId>, mpsc::Sender<Vec<u8>>) {
    let mut swarm = bare_swarm(|key| {
        let config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(300))
            .heartbeat_initial_delay(Duration::from_millis(100))
            .build()
            .unwrap();
        gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            config,
        )
        .unwrap()
    });
    let topic = gossipsub::IdentTopic::new(topic);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    swarm.dial(dial).unwrap();
    let (sender, publishers) = mpsc::channel(1024);
    let (to_publish, mut publish) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        let mut payload: Option<Vec<u8>> = None;
        let mut again = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event
                        && let Some(source) = message.source
                        && sender.send(source).await.is_err()
                    {
                        return;
                    }
                }
                Some(bytes) = publish.recv() => payload = Some(bytes),
                _ = again.tick() => {
                    if let Some(bytes) = &payload {
                        // No subscribed peer yet is fine: the next tick tries again.
                        let _ = swarm.behaviour_mut().publish(topic.clone(), bytes.clone());
                    }
                }
            }
        }
    });
    (publishers, to_publish)
}
