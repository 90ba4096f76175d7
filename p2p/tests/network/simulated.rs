//! Small simulated networks: real nodes over in-memory links with latency and loss, joining
//! through two bootstrap nodes, each advert reaching every other node, in real time and slowed
//! down.

use std::sync::Arc;
use std::time::Duration;

use genmint_p2p::memory_link::MemoryLink;
use genmint_p2p::{Keypair, NetworkConfig, NetworkEvent, NetworkHandle, PeerId, Verifiers, spawn_in_memory};
use tokio::sync::mpsc;

use crate::support::{TestVerifier, advert, config, eventually, has_advert, model_hash};

const NODES: usize = 20;
const BOOTSTRAP: usize = 2;

type SimulatedNode = (NetworkHandle, PeerId, MemoryLink, mpsc::Receiver<NetworkEvent>);

/// Starts `count` nodes over `link`s like it, joining through the first `BOOTSTRAP`, each
/// advertising one model.
async fn start_network(count: usize, link: MemoryLink) -> Vec<SimulatedNode> {
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for index in 0..count {
        let config = NetworkConfig {
            listen: vec!["/memory/0".parse().unwrap()],
            bootstrap: bootstrap.clone(),
            ..config()
        };
        let link = MemoryLink { traffic: Arc::default(), ..link.clone() };
        let verifiers = Verifiers { adverts: Arc::new(TestVerifier), spot_checks: None };
        let (handle, events) =
            spawn_in_memory(Keypair::generate_ed25519(), config, verifiers, link.clone()).await.unwrap();
        let peer = handle.local_peer_id();
        handle.set_advert(advert(&peer, 1, &[model_hash(1)])).await.unwrap();
        if index < BOOTSTRAP {
            let addr = handle.listen_addrs().await.unwrap().remove(0);
            assert!(addr.to_string().starts_with("/memory/"), "{addr} is not an in-memory address");
            bootstrap.push(addr.with_p2p(peer).unwrap());
        }
        nodes.push((handle, peer, link, events));
    }
    nodes
}

async fn every_advert_reaches_every_node(nodes: &[SimulatedNode]) {
    for (receiver, _, _, _) in nodes {
        for (_, publisher, _, _) in
            nodes.iter().filter(|(handle, ..)| handle.local_peer_id() != receiver.local_peer_id())
        {
            eventually("every advert reached every node", || has_advert(receiver, publisher)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adverts_reach_every_node_of_a_simulated_network() {
    let link = MemoryLink { latency: Duration::from_millis(20), loss: 0.05, ..MemoryLink::default() };
    let nodes = start_network(NODES, link).await;
    every_advert_reaches_every_node(&nodes).await;
    for (_, peer, link, _) in &nodes {
        assert!(link.traffic.received() > 0 && link.traffic.sent() > 0, "no bytes counted for {peer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_down_network_runs_on_simulated_time() {
    let link = MemoryLink { latency: Duration::from_millis(5), time_dilation: 4, ..MemoryLink::default() };
    let nodes = start_network(4, link).await;
    every_advert_reaches_every_node(&nodes).await;
    // Adverts repeat every 0.4 s of simulated time (1.6 s on the wall clock) and say so: the
    // refresh interval announced is in the network's seconds, rounded up to 1, not 2.
    for (receiver, ..) in &nodes {
        for received in receiver.adverts().await.unwrap() {
            assert_eq!(received.advert.refresh_secs, Some(1), "announced by {}", received.advert.peer_id);
        }
    }
}

#[tokio::test]
async fn a_network_slowed_down_to_a_standstill_is_refused() {
    let link = MemoryLink { time_dilation: 0, ..MemoryLink::default() };
    let config = NetworkConfig { listen: vec!["/memory/0".parse().unwrap()], ..config() };
    let verifiers = Verifiers { adverts: Arc::new(TestVerifier), spot_checks: None };
    let Err(error) = spawn_in_memory(Keypair::generate_ed25519(), config, verifiers, link).await else {
        panic!("a node with time_dilation 0 started");
    };
    assert!(error.to_string().contains("time_dilation 0 must be 1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bootstrap_peer_was_down_joins_once_it_is_up() {
    let verifiers = || Verifiers { adverts: Arc::new(TestVerifier), spot_checks: None };
    let (bootstrap_key, port) =
        (Keypair::generate_ed25519(), 40_000 + u64::from(std::process::id() % 20_000));
    let bootstrap_addr: genmint_p2p::Multiaddr = format!("/memory/{port}").parse().unwrap();
    let bootstrap_peer = bootstrap_key.public().to_peer_id();
    let joining_config = NetworkConfig {
        listen: vec!["/memory/0".parse().unwrap()],
        bootstrap: vec![bootstrap_addr.clone().with_p2p(bootstrap_peer).unwrap()],
        ..config()
    };
    let (joining, _joining_events) =
        spawn_in_memory(Keypair::generate_ed25519(), joining_config, verifiers(), MemoryLink::default())
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(joining.peers().await.unwrap().is_empty(), "joined a bootstrap peer that is not up");
    let bootstrap_config = NetworkConfig { listen: vec![bootstrap_addr], ..config() };
    let (bootstrap, _bootstrap_events) =
        spawn_in_memory(bootstrap_key, bootstrap_config, verifiers(), MemoryLink::default()).await.unwrap();
    eventually("the node joined its bootstrap peer", || async {
        bootstrap.peers().await.unwrap().iter().any(|p| p.peer_id == joining.local_peer_id())
    })
    .await;
}
