//! Finding peers: Kademlia provider records for models, dialling over QUIC alone, peer info.

use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{Multiaddr, NetworkError};
use libp2p::multiaddr::Protocol;

use crate::support::{REQUEST_TIMEOUT, TestNode, advert, config, eventually, loopback, model_hash};

#[tokio::test]
async fn find_providers_finds_the_node_advertising_a_model() {
    let provider = TestNode::start(config()).await;
    let middle = TestNode::joining(&[&provider]).await;
    let seeker = TestNode::joining(&[&middle]).await;
    let (provider_peer, provider) = (provider.peer, provider.ignore_events());
    let (_middle, seeker) = (middle.ignore_events(), seeker.ignore_events());
    // Hashes are compared without regard to case: advertised in capitals, sought in small letters.
    let shouted = model_hash(0xab).to_uppercase().replacen("0X", "0x", 1);
    provider.set_advert(advert(&provider_peer, 1, &[shouted, model_hash(8)])).await.unwrap();
    eventually("the seeker finds the provider", || async {
        seeker.find_providers(&model_hash(0xab)).await.unwrap().contains(&provider_peer)
    })
    .await;
    assert!(seeker.find_providers(&model_hash(9)).await.unwrap().is_empty());
    // A node does not find itself.
    assert!(!provider.find_providers(&model_hash(0xab)).await.unwrap().contains(&provider_peer));

    // Every model of the advert is announced.
    assert!(seeker.find_providers(&model_hash(8)).await.unwrap().contains(&provider_peer));
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

#[tokio::test]
async fn a_node_listening_on_quic_alone_is_reached_over_quic() {
    let quic_only = TestNode::start(genmint_p2p::NetworkConfig {
        listen: loopback(&["/ip4/127.0.0.1/udp/0/quic-v1"]),
        ..config()
    })
    .await;
    let tcp_only = TestNode::start(genmint_p2p::NetworkConfig {
        listen: loopback(&["/ip4/127.0.0.1/tcp/0"]),
        ..config()
    })
    .await;
    let quic_peer = quic_only.peer;
    let addrs = quic_only.handle.listen_addrs().await.unwrap();
    assert!(addrs.len() == 1 && is_quic(&addrs[0]), "{addrs:?}");
    assert!(addrs.iter().all(|a| a.iter().all(|p| !matches!(p, Protocol::P2p(_)))), "{addrs:?}");
    let _quic_only = quic_only.serve(|_, _| JobResponse::Ack);
    let tcp_only = tcp_only.ignore_events();

    tcp_only.dial(addrs[0].clone().with_p2p(quic_peer).unwrap()).await.unwrap();
    let peers = tcp_only.peers().await.unwrap();
    let info = peers.iter().find(|p| p.peer_id == quic_peer).expect("connected");
    assert!(info.addresses.iter().any(is_quic), "{:?}", info.addresses);
    let answer = tcp_only.request(quic_peer, JobRequest::Status { job_id: "q".into() }).await.unwrap();
    assert_eq!(answer, JobResponse::Ack);

    // Identify and ping fill in the rest of what the node shows about a peer.
    eventually("identify and ping report", || async {
        let peers = tcp_only.peers().await.unwrap();
        peers.iter().any(|p| {
            p.peer_id == quic_peer
                && p.rtt.is_some()
                && p.agent_version.as_deref() == Some(concat!("genmint/", env!("CARGO_PKG_VERSION")))
        })
    })
    .await;
}

#[tokio::test]
async fn dialling_nothing_fails_with_the_address() {
    let node = TestNode::start(config()).await.ignore_events();
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let result = tokio::time::timeout(REQUEST_TIMEOUT * 10, node.dial(addr.clone())).await.unwrap();
    assert!(matches!(&result, Err(NetworkError::Dial { addr: failed, .. }) if *failed == addr), "{result:?}");
}
