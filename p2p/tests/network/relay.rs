//! Behind NAT on loopback: a relay, a node reached only through a circuit on it, and a node that
//! sends that one a job through the relay.

use std::time::Instant;

use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{NatConfig, NetworkConfig, NetworkHandle, PeerId, Reachability};

use crate::support::{TestNode, advert, config, eventually, model_hash};

fn relay_config() -> NetworkConfig {
    NetworkConfig { nat: NatConfig { relay_service: true, ..NatConfig::default() }, ..config() }
}

/// Whether `handle` holds `peer`'s advert with a `/p2p-circuit` address in it.
async fn knows_relayed_address(handle: &NetworkHandle, peer: &PeerId) -> bool {
    handle.adverts().await.unwrap().iter().any(|received| {
        received.advert.peer_id == peer.to_string()
            && received.advert.addresses.iter().any(|a| a.contains("/p2p-circuit"))
    })
}

#[tokio::test]
async fn a_job_reaches_a_node_that_listens_only_through_a_relay() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let relay = TestNode::start(relay_config()).await;
    let relay_addr = relay.bootstrap_addr().await;
    let relay = relay.ignore_events();

    // Listens on nothing itself: the only way in is the circuit on the relay.
    let executing = TestNode::start(NetworkConfig {
        listen: Vec::new(),
        bootstrap: vec![relay_addr.clone()],
        nat: NatConfig { relays: vec![relay_addr.clone()], ..NatConfig::default() },
        ..config()
    })
    .await;
    let executing_peer = executing.peer;
    let executing = executing.serve(|_, request| match request {
        JobRequest::Submit { job_id, .. } => JobResponse::Accepted { job_id },
        _ => JobResponse::Ack,
    });
    eventually("the relay accepts the reservation", || async {
        !executing.nat_status().await.unwrap().relayed_addresses.is_empty()
    })
    .await;
    let relayed = executing.nat_status().await.unwrap().relayed_addresses;
    assert!(relayed[0].to_string().contains(&format!("/p2p/{}/p2p-circuit", relay.local_peer_id())));
    executing.set_advert(advert(&executing_peer, 1, &[model_hash(1)])).await.unwrap();

    // Listens on nothing either, so the executing node cannot dial it: it dials through the relay.
    let origin =
        TestNode::start(NetworkConfig { listen: Vec::new(), bootstrap: vec![relay_addr], ..config() })
            .await
            .ignore_events();
    eventually("the origin has the advert with its relayed address", || {
        knows_relayed_address(&origin, &executing_peer)
    })
    .await;

    let started = Instant::now();
    let submit = JobRequest::Submit { job_id: "0x01".into(), signed_request: "{}".into() };
    let answer = origin.request(executing_peer, submit).await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer, JobResponse::Accepted { job_id: "0x01".into() });
    let peers = origin.peers().await.unwrap();
    let executor = peers.iter().find(|p| p.peer_id == executing_peer).expect("connected to the executor");
    // Neither side listens on an address of its own, so no hole punch can succeed on loopback.
    assert!(executor.relayed, "the connection should run through the relay");
    eprintln!("job forwarded through the relay and answered in {took:?}");
}

#[tokio::test]
async fn a_node_autonat_finds_private_reserves_on_a_relay_by_itself() {
    let private =
        |c: NetworkConfig| NetworkConfig { nat: NatConfig { private_addresses: true, ..c.nat.clone() }, ..c };
    let relay = TestNode::start(private(relay_config())).await;
    let relay_addr = relay.bootstrap_addr().await;
    let relay = relay.ignore_events();

    let node = TestNode::start(private(NetworkConfig {
        listen: Vec::new(),
        bootstrap: vec![relay_addr],
        ..config()
    }))
    .await
    .ignore_events();
    eventually("AutoNAT says private and the node reserves on the relay", || async {
        let status = node.nat_status().await.unwrap();
        status.reachability == Reachability::Private && !status.relayed_addresses.is_empty()
    })
    .await;
    assert!(relay.nat_status().await.unwrap().relay_service);
}
