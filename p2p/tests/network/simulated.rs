//! A small simulated network: real nodes over in-memory links with latency and loss, joining
//! through two bootstrap nodes, each advert reaching every other node.

use std::sync::Arc;
use std::time::Duration;

use genmint_p2p::memory_link::MemoryLink;
use genmint_p2p::{Keypair, NetworkConfig, Verifiers, spawn_in_memory};

use crate::support::{TestVerifier, advert, config, eventually, has_advert, model_hash};

const NODES: usize = 20;
const BOOTSTRAP: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adverts_reach_every_node_of_a_simulated_network() {
    let mut nodes = Vec::new();
    let mut bootstrap = Vec::new();
    for index in 0..NODES {
        let config = NetworkConfig {
            listen: vec!["/memory/0".parse().unwrap()],
            bootstrap: bootstrap.clone(),
            ..config()
        };
        let link = MemoryLink { latency: Duration::from_millis(20), loss: 0.05, traffic: Arc::default() };
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

    for (receiver, _, _, _) in &nodes {
        for (_, publisher, _, _) in
            nodes.iter().filter(|(handle, ..)| handle.local_peer_id() != receiver.local_peer_id())
        {
            eventually("every advert reached every node", || has_advert(receiver, publisher)).await;
        }
    }
    for (_, peer, link, _) in &nodes {
        assert!(link.traffic.received() > 0 && link.traffic.sent() > 0, "no bytes counted for {peer}");
    }
}
