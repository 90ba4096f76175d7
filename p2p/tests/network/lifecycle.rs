//! Starting and stopping: listen errors, settings checks, shutdown.

use std::time::Duration;

use genmint_p2p::{Multiaddr, NetworkConfig, NetworkError, NetworkEvent};

use crate::support::{PATIENCE, TestNode, TestVerifier, config, loopback};

async fn start(config: NetworkConfig) -> Result<(), NetworkError> {
    let keypair = genmint_p2p::Keypair::generate_ed25519();
    genmint_p2p::spawn(keypair, config, std::sync::Arc::new(TestVerifier)).await.map(|_| ())
}

#[tokio::test]
async fn a_port_in_use_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{}", taken.local_addr().unwrap().port()).parse().unwrap();
    let result = start(NetworkConfig { listen: vec![addr.clone()], ..config() }).await;
    assert!(
        matches!(&result, Err(NetworkError::Listen { addr: failed, .. }) if *failed == addr),
        "{result:?}"
    );
}

#[tokio::test]
async fn listen_addresses_are_bound_and_listed_in_the_configured_order() {
    let listen = loopback(&["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"]);
    let node = TestNode::start(NetworkConfig { listen, ..config() }).await;
    let addrs: Vec<String> =
        node.handle.listen_addrs().await.unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].starts_with("/ip4/127.0.0.1/udp/") && addrs[0].ends_with("/quic-v1"), "{addrs:?}");
    assert!(addrs[1].starts_with("/ip4/127.0.0.1/tcp/"), "{addrs:?}");
    assert!(
        addrs.iter().all(|a| !a.contains("/0/") && !a.ends_with("/0") && !a.contains("/p2p/")),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn unusable_settings_are_refused_before_anything_starts() {
    let no_peer_id = loopback(&["/ip4/127.0.0.1/tcp/4001"]);
    let result = start(NetworkConfig { bootstrap: no_peer_id, ..config() }).await;
    assert!(matches!(&result, Err(NetworkError::Config(reason)) if reason.contains("/p2p/")), "{result:?}");
    let result = start(NetworkConfig { advert_ttl: Duration::from_millis(100), ..config() }).await;
    assert!(
        matches!(&result, Err(NetworkError::Config(reason)) if reason.contains("advert_ttl")),
        "{result:?}"
    );
    let result = start(NetworkConfig { request_timeout: Duration::ZERO, ..config() }).await;
    assert!(matches!(result, Err(NetworkError::Config(_))), "{result:?}");
}

#[tokio::test]
async fn shutdown_ends_the_task_and_peers_see_the_node_leave() {
    let mut staying = TestNode::start(config()).await;
    let leaving = TestNode::joining(&[&staying]).await;
    let leaving_peer = leaving.peer;
    let mut leaving_events = leaving.events;
    let leaving = leaving.handle;
    loop {
        let event = tokio::time::timeout(PATIENCE, staying.events.recv()).await.unwrap().unwrap();
        if matches!(event, NetworkEvent::PeerConnected(peer) if peer == leaving_peer) {
            break;
        }
    }

    leaving.shutdown().await.unwrap();
    // The task is gone: its event stream ends and every handle call says so.
    let drained =
        tokio::time::timeout(PATIENCE, async { while leaving_events.recv().await.is_some() {} }).await;
    assert!(drained.is_ok(), "the event stream did not end");
    assert!(matches!(leaving.peers().await, Err(NetworkError::Closed)));
    assert!(matches!(leaving.shutdown().await, Err(NetworkError::Closed)));

    // The connection was closed, not left to time out.
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(NetworkEvent::PeerDisconnected(peer)) = staying.events.recv().await
                && peer == leaving_peer
            {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the staying node did not see the other leave");
    assert!(staying.handle.peers().await.unwrap().iter().all(|p| p.peer_id != leaving_peer));
}

#[tokio::test]
async fn nodes_on_one_lan_find_each_other_by_mdns() {
    let lan = || NetworkConfig { mdns: true, listen: loopback(&["/ip4/0.0.0.0/tcp/0"]), ..config() };
    let first = TestNode::start(lan()).await;
    let second = TestNode::start(lan()).await;
    let (first_peer, second) = (first.peer, second.handle);
    let _first = first.handle;
    crate::support::eventually("mDNS connects the two nodes", || async {
        second.peers().await.unwrap().iter().any(|p| p.peer_id == first_peer)
    })
    .await;
}
