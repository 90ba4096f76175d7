//! Adverts: they reach every node, stay fresh while repeated, expire when not, and a bad binding
//! goes nowhere.

use std::sync::Arc;
use std::time::Instant;

use genmint_p2p::advert::Advert;
use genmint_p2p::{NetworkError, NetworkEvent, NetworkHandle, PeerId};

use crate::support::{
    ADVERT_INTERVAL, ADVERT_TTL, CarelessVerifier, TestNode, advert, bad_signature, config, eventually,
    gossip_peer, has_advert, model_hash,
};

async fn advert_of(handle: &NetworkHandle, peer: &PeerId) -> Option<Advert> {
    let adverts = handle.adverts().await.unwrap();
    adverts.into_iter().map(|r| r.advert).find(|a| a.peer_id == peer.to_string())
}

#[tokio::test]
async fn adverts_reach_every_node_stay_fresh_while_repeated_and_expire_when_not() {
    let mut a = TestNode::start(config()).await;
    let b = TestNode::joining(&[&a]).await;
    // c knows only b: a hears of c through b.
    let c = TestNode::joining(&[&b]).await;
    let (peers, handles) = ([a.peer, b.peer, c.peer], [a.handle.clone(), b.handle.clone(), c.handle.clone()]);
    for (peer, handle) in peers.iter().zip(&handles) {
        handle.set_advert(advert(peer, 1, &[model_hash(1)])).await.unwrap();
    }

    let deadline = Instant::now() + crate::support::PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline.into(), a.events.recv()).await.expect("no advert event");
        if let Some(NetworkEvent::Advert(received)) = event
            && received.advert.peer_id == c.peer.to_string()
        {
            assert_eq!(received.advert.sequence, 1);
            break;
        }
    }
    let _a = a.ignore_events();
    let (_b, _c) = (b.ignore_events(), c.ignore_events());

    for (me, handle) in peers.iter().zip(&handles) {
        for other in peers.iter().filter(|p| *p != me) {
            eventually("every node has every other node's advert", || has_advert(handle, other)).await;
        }
        assert!(!has_advert(handle, me).await, "a node never stores its own advert");
        assert_eq!(handle.adverts().await.unwrap().len(), 2);
    }

    // Repeats keep adverts alive well past the TTL.
    tokio::time::sleep(ADVERT_TTL * 2).await;
    for (me, handle) in peers.iter().zip(&handles) {
        for other in peers.iter().filter(|p| *p != me) {
            assert!(has_advert(handle, other).await, "an advert expired although it was repeated");
        }
    }

    // A change (higher sequence) replaces the held advert everywhere.
    let busier = Advert { queue_depth: 3, ..advert(&peers[2], 2, &[model_hash(1)]) };
    handles[2].set_advert(busier).await.unwrap();
    eventually("the changed advert reaches a", || async {
        advert_of(&handles[0], &peers[2]).await.is_some_and(|a| a.sequence == 2 && a.queue_depth == 3)
    })
    .await;

    // Once c stops, its advert expires everywhere, but not before it was due.
    let stopped = Instant::now();
    handles[2].shutdown().await.unwrap();
    for handle in &handles[..2] {
        eventually("c's advert expires", || async { !has_advert(handle, &peers[2]).await }).await;
    }
    assert!(stopped.elapsed() >= ADVERT_TTL - ADVERT_INTERVAL * 2, "expired early: {:?}", stopped.elapsed());
    let info = handles[0].peers().await.unwrap();
    assert!(info.iter().all(|p| p.peer_id != peers[2] || p.advert.is_none()));
}

#[tokio::test]
async fn a_bad_binding_is_neither_stored_nor_forwarded() {
    let a = TestNode::start(config()).await;
    let b = TestNode::joining(&[&a]).await;
    let c = TestNode::joining(&[&b]).await;
    // The observer is connected to a alone and speaks no Kademlia, so nobody else finds it:
    // whatever it hears, a forwarded.
    let (mut heard, _) = gossip_peer(a.bootstrap_addr().await, "genmint/adverts/1/test");
    let mut careless = config();
    careless.bootstrap.push(a.bootstrap_addr().await);
    let liar = TestNode::start_with(careless, Arc::new(CarelessVerifier)).await;

    let liar_advert = Advert { binding_signature: bad_signature(), ..advert(&liar.peer, 1, &[]) };
    liar.handle.set_advert(liar_advert).await.unwrap();
    let nodes = [(a.peer, a.ignore_events()), (b.peer, b.ignore_events()), (c.peer, c.ignore_events())];
    let liar_handle = liar.ignore_events();
    for (peer, handle) in &nodes {
        handle.set_advert(advert(peer, 1, &[])).await.unwrap();
    }

    // The liar is in the mesh: it hears everyone, and a forwards the good adverts of b and c.
    for (peer, _) in &nodes {
        eventually("the liar hears every good node", || has_advert(&liar_handle, peer)).await;
    }
    let mut forwarded = Vec::new();
    while !(forwarded.contains(&nodes[1].0) && forwarded.contains(&nodes[2].0)) {
        let publisher = tokio::time::timeout(crate::support::PATIENCE, heard.recv()).await.unwrap().unwrap();
        assert_ne!(publisher, liar_handle.local_peer_id(), "a forwarded an advert with a bad binding");
        forwarded.push(publisher);
    }

    // Several more rounds of publication: still nobody stores or forwards the liar's advert.
    tokio::time::sleep(ADVERT_INTERVAL * 4).await;
    for (_, handle) in &nodes {
        assert!(!has_advert(handle, &liar_handle.local_peer_id()).await, "a bad binding was stored");
    }
    while let Ok(publisher) = heard.try_recv() {
        assert_ne!(publisher, liar_handle.local_peer_id(), "a forwarded an advert with a bad binding");
    }
}

#[tokio::test]
async fn set_advert_refuses_what_peers_would_reject() {
    let node = TestNode::start(config()).await;
    let me = node.peer;
    let handle = node.ignore_events();
    let refused = |result: Result<(), NetworkError>, says: &str| match result {
        Err(NetworkError::InvalidAdvert(reason)) => assert!(reason.contains(says), "{reason}"),
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    };

    let stranger = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
    refused(handle.set_advert(advert(&stranger, 1, &[])).await, "names peer");
    let unbound = Advert { binding_signature: bad_signature(), ..advert(&me, 1, &[]) };
    refused(handle.set_advert(unbound).await, "binding");
    refused(handle.set_advert(Advert { price_wei: "lots".into(), ..advert(&me, 1, &[]) }).await, "price_wei");

    handle.set_advert(advert(&me, 5, &[])).await.unwrap();
    // The same advert issued later is no change; a change needs a higher sequence.
    handle
        .set_advert(Advert { issued_at: advert(&me, 5, &[]).issued_at + 7, ..advert(&me, 5, &[]) })
        .await
        .unwrap();
    refused(handle.set_advert(Advert { capacity: 0, ..advert(&me, 5, &[]) }).await, "sequence");
    handle.set_advert(Advert { capacity: 0, ..advert(&me, 6, &[]) }).await.unwrap();
}
