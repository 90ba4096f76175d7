//! Spot checks over gossip: a good one reaches the other node, waits for its verdict, and travels on
//! only once accepted; a bad signature, a check published by a node bound to another operator, and
//! an oversized message are neither delivered nor forwarded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use genmint_p2p::spot_check::{ReceivedSpotCheck, SpotCheck, Verdict};
use genmint_p2p::{NetworkError, NetworkEvent, NetworkHandle, PeerId};
use tokio::sync::mpsc;

use crate::support::{
    ADVERT_INTERVAL, CarelessVerifier, PATIENCE, TestNode, TestVerifier, advert, bad_signature, eventually,
    gossip_peer, has_advert, spot_check,
};

const TOPIC: &str = "genmint/spot-checks/1/test";

/// Hands every spot check `node` receives to the test, and reads its other events away.
fn spot_checks_of(node: TestNode) -> (NetworkHandle, mpsc::Receiver<Box<ReceivedSpotCheck>>) {
    let TestNode { handle, mut events, .. } = node;
    let (sender, received) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::SpotCheck(check) = event
                && sender.send(check).await.is_err()
            {
                return;
            }
        }
    });
    (handle, received)
}

/// Publishes `check` from `handle` as soon as some peer listens.
async fn publish(handle: &NetworkHandle, check: &SpotCheck) {
    let start = Instant::now();
    loop {
        match handle.publish_spot_check(check.clone()).await {
            Ok(()) => return,
            Err(NetworkError::SpotCheck(reason)) if reason.contains("no peer") => {}
            Err(e) => panic!("publishing failed: {e}"),
        }
        assert!(start.elapsed() < PATIENCE, "nobody listened for spot checks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn advertise(node: &TestNode) {
    node.handle.set_advert(advert(&node.peer, 1, &[])).await.unwrap();
}

#[tokio::test]
async fn a_check_reaches_the_other_node_and_travels_on_only_once_accepted() {
    let a = TestNode::checking(&[], Arc::new(TestVerifier)).await;
    let b = TestNode::checking(&[&a], Arc::new(TestVerifier)).await;
    advertise(&a).await;
    advertise(&b).await;
    let (mut heard, _) = gossip_peer(a.bootstrap_addr().await, TOPIC);
    let b_peer = b.peer;
    let b = b.ignore_events();
    let (a, mut received) = spot_checks_of(a);
    eventually("a holds b's advert", || has_advert(&a, &b_peer)).await;

    publish(&b, &spot_check(1)).await;
    let first = tokio::time::timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
    assert_eq!((first.check, first.publisher), (spot_check(1), b_peer));
    // Until a accepts it, a forwards nothing.
    tokio::time::sleep(ADVERT_INTERVAL * 3).await;
    assert!(heard.try_recv().is_err(), "a forwarded a check it had not judged yet");
    a.judge_spot_check(first.ticket, Verdict::Accept).await.unwrap();
    let forwarded = tokio::time::timeout(PATIENCE, heard.recv()).await.unwrap().unwrap();
    assert_eq!(forwarded, b_peer);

    // A rejected check goes no further either.
    let second = spot_check(2);
    publish(&b, &second).await;
    let rejected = tokio::time::timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
    assert_eq!(rejected.check, second);
    a.judge_spot_check(rejected.ticket, Verdict::Reject).await.unwrap();
    tokio::time::sleep(ADVERT_INTERVAL * 3).await;
    assert!(heard.try_recv().is_err(), "a forwarded a check it rejected");
}

#[tokio::test]
async fn bad_signatures_unbound_publishers_and_oversized_checks_are_neither_delivered_nor_forwarded() {
    let a = TestNode::checking(&[], Arc::new(TestVerifier)).await;
    let honest = TestNode::checking(&[&a], Arc::new(TestVerifier)).await;
    // A node that signs nothing properly but publishes anyway; its advert binds it to operator().
    let liar = TestNode::checking(&[&a], Arc::new(CarelessVerifier)).await;
    for node in [&a, &honest, &liar] {
        advertise(node).await;
    }
    let (mut heard, _) = gossip_peer(a.bootstrap_addr().await, TOPIC);
    let (_, junk) = gossip_peer(a.bootstrap_addr().await, TOPIC);
    junk.send(vec![b'{'; 5000]).await.unwrap();
    let (honest_peer, liar_peer) = (honest.peer, liar.peer);
    let (honest, liar) = (honest.ignore_events(), liar.ignore_events());
    let (a, mut received) = spot_checks_of(a);
    for peer in [honest_peer, liar_peer] {
        eventually("a holds every advert", || has_advert(&a, &peer)).await;
    }

    publish(&liar, &SpotCheck { signature: bad_signature(), ..spot_check(1) }).await;
    // Signed well, but by another operator than the one the liar's node is bound to.
    publish(&liar, &SpotCheck { checker: format!("0x{}", "99".repeat(20)), ..spot_check(2) }).await;
    // The honest node's check shows what a forwarded check looks like to the observer.
    publish(&honest, &spot_check(3)).await;
    let delivered = tokio::time::timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
    assert_eq!((delivered.check, delivered.publisher), (spot_check(3), honest_peer));
    a.judge_spot_check(delivered.ticket, Verdict::Accept).await.unwrap();
    let mut forwarded: Vec<PeerId> = Vec::new();
    while !forwarded.contains(&honest_peer) {
        forwarded.push(tokio::time::timeout(PATIENCE, heard.recv()).await.unwrap().unwrap());
    }

    // Several more heartbeats (the junk peer keeps publishing): still nothing else gets through.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(publisher) = heard.try_recv() {
        forwarded.push(publisher);
    }
    assert_eq!(forwarded, vec![honest_peer], "a forwarded a refused check");
    assert!(received.try_recv().is_err(), "a refused check reached the node");
}
