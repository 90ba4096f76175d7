//! Replication over fake nodes: what a holder pins and refuses, and a minter's rounds until its
//! tokens have their copies.

use alloy::primitives::{B256, U256};
use genmint_p2p::pin::PinRequest;

use super::holder::hold;
use super::testing::{CHAIN_ID, CONTRACT, World};
use super::{PinAnswer, ReplicationParts, Replicator, holders_of, verify_receipt};
use crate::config::{RemotePinService, ReplicationConfig};
use crate::ipfs::{ContentStore, MemoryStore, RemotePins, SwarmPeers};
use crate::jobs::{JobOutputs, JobState};
use crate::provenance::ids::JobId;

fn config(copies: usize) -> ReplicationConfig {
    ReplicationConfig { copies, ..ReplicationConfig::default() }
}

/// A token minted by `minter`: its files in the minter's Kubo only, its CIDs on the chain.
async fn mint(world: &World, minter: &ReplicationParts<MemoryStore>, byte: u8) -> (U256, PinRequest) {
    let image = minter.content.add_and_pin(vec![byte; 3000]).await.unwrap();
    let metadata = minter.content.add_and_pin(format!("{{\"token\":{byte}}}").into_bytes()).await.unwrap();
    let token = U256::from_be_bytes([byte; 32]);
    world.chain.0.lock().unwrap().insert(token, (image.to_string(), metadata.to_string()));
    let request = PinRequest {
        token_id: JobId::of_token(token).to_string(),
        image_cid: image.to_string(),
        metadata_cid: metadata.to_string(),
        providers: minter.content.identity().await.unwrap().addresses,
        receipts: Vec::new(),
    };
    (token, request)
}

fn refusal(answer: &PinAnswer) -> &str {
    match answer {
        PinAnswer::Refused { code, .. } => code,
        PinAnswer::Pinned(_) => "pinned",
    }
}

#[tokio::test]
async fn a_holder_pins_a_minted_token_fetched_from_the_minters_kubo_and_signs_for_it() {
    let world = World::new();
    let (minter, holder) = (world.node("minter", config(2)), world.node("holder", config(2)));
    let (token, request) = mint(&world, &minter, 1).await;
    let image = request.image_cid.parse().unwrap();
    assert!(!holder.content.is_pinned(&image).await.unwrap());

    let PinAnswer::Pinned(receipt) = hold(&holder, request.clone()).await else { panic!("not pinned") };
    assert_eq!(verify_receipt(&receipt, CHAIN_ID, CONTRACT), Ok(holder.operator.address()));
    assert_eq!((receipt.holder_peer_id.as_str(), receipt.kubo_peer_id.as_str()), ("holder", "Kuboholder"));
    assert_eq!(receipt.bytes, 3000 + br#"{"token":1}"#.len() as u64);
    // The copy is the holder's own: it stays when the minter's Kubo is gone.
    minter.content.set_down(true);
    assert!(holder.content.is_pinned(&image).await.unwrap());
    assert_eq!(holder.content.cat(&image, 1 << 20).await.unwrap(), vec![1; 3000]);
    // Asked again, it answers from what it holds.
    assert_eq!(hold(&holder, request).await, PinAnswer::Pinned(receipt));
    let holders =
        holders_of(&holder.store, &holder.content, &[], (CHAIN_ID, CONTRACT), token, None).await.unwrap();
    assert_eq!(holders.copies, 1);
}

#[tokio::test]
async fn a_holder_pins_only_the_chains_cids_within_its_budget_and_says_why_not() {
    let world = World::new();
    let minter = world.node("minter", config(2));
    let holder = world.node("holder", config(2));
    let (_, request) = mint(&world, &minter, 2).await;

    let stranger = PinRequest { token_id: format!("0x{}", "77".repeat(32)), ..request.clone() };
    assert_eq!(refusal(&hold(&holder, stranger).await), "not_minted");
    let swapped = PinRequest { image_cid: request.metadata_cid.clone(), ..request.clone() };
    assert_eq!(refusal(&hold(&holder, swapped).await), "wrong_cids");
    let garbage = PinRequest { token_id: "0x12".into(), ..request.clone() };
    assert_eq!(refusal(&hold(&holder, garbage).await), "bad_request");

    let small = world.node("small", ReplicationConfig { max_pinned_bytes: 1000, ..config(2) });
    let answer = hold(&small, request.clone()).await;
    assert_eq!(refusal(&answer), "over_budget", "{answer:?}");
    let unwilling = world.node("unwilling", ReplicationConfig { hold_for_peers: false, ..config(2) });
    assert_eq!(refusal(&hold(&unwilling, request.clone()).await), "disabled");
    // A node sharing the minter's Kubo adds no copy.
    let own_kubo =
        PinRequest { providers: holder.content.identity().await.unwrap().addresses, ..request.clone() };
    assert_eq!(refusal(&hold(&holder, own_kubo).await), "same_kubo");
    // Content nobody serves any more cannot be fetched.
    minter.content.set_down(true);
    assert_eq!(refusal(&hold(&holder, request).await), "unavailable");
    assert!(holder.store.receipts(U256::from_be_bytes([2; 32])).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_minter_asks_peers_until_it_has_its_copies_and_the_holders_learn_of_each_other() {
    let world = World::new();
    let minter = world.node("minter", config(2));
    let unwilling = world.node("unwilling", ReplicationConfig { hold_for_peers: false, ..config(2) });
    world.node("b", config(2));
    let (token, _) = mint(&world, &minter, 3).await;
    let replicator = Replicator::new(minter.clone());
    let outputs = {
        let (image, metadata) = world.chain.0.lock().unwrap()[&token].clone();
        JobOutputs {
            image_cid: Some(image.parse().unwrap()),
            metadata_cid: Some(metadata.parse().unwrap()),
            ..JobOutputs::default()
        }
    };
    let job = crate::jobs::testing::record(JobId::of_token(token), JobState::Minted, outputs);
    replicator.note(&job).await;

    // One willing peer of the two asked: short, and told why; asked again later.
    replicator.round().await;
    let pending = minter.store.pending(token).await.unwrap().expect("still short of copies");
    assert_eq!(pending.attempts, 1);
    assert!(pending.last_error.as_deref().unwrap().contains("1 of 2 copies"), "{pending:?}");
    assert!(pending.last_error.as_deref().unwrap().contains("unwilling refused (disabled)"), "{pending:?}");
    assert_eq!(minter.metrics.pin_requests("asked", "pinned"), 1);
    assert_eq!(unwilling.metrics.pin_requests("asked", "disabled"), 0);
    assert_eq!(minter.metrics.pin_requests("asked", "disabled"), 1);

    // A new peer joins; the next round fills the gap without asking the holder again.
    let c = world.node("c", config(2));
    minter.store.retry_at(token, 0, "due".into()).await.unwrap();
    replicator.round().await;
    assert_eq!(minter.store.pending(token).await.unwrap(), None, "enough copies");
    let receipts = minter.store.receipts(token).await.unwrap();
    let mut holders: Vec<&str> = receipts.iter().map(|r| r.holder_peer_id.as_str()).collect();
    holders.sort();
    assert_eq!(holders, ["b", "c"]);
    // Every holder knows where else the content is kept, even the first one.
    let b = world.nodes.0.lock().unwrap()["b"].clone();
    assert_eq!(b.store.receipts(token).await.unwrap().len(), 2);
    assert_eq!(c.store.receipts(token).await.unwrap().len(), 2);

    // Forwarded jobs and unminted ones are not the minter's to replicate.
    let other = U256::from(99);
    let forwarded = crate::jobs::JobRecord {
        route: crate::jobs::JobRoute::Forwarded,
        ..crate::jobs::testing::record(JobId::of_token(other), JobState::Minted, job.outputs.clone())
    };
    replicator.note(&forwarded).await;
    replicator
        .note(&crate::jobs::testing::record(
            JobId(B256::repeat_byte(5)),
            JobState::Pinned,
            job.outputs.clone(),
        ))
        .await;
    assert_eq!(minter.store.pending_count().await.unwrap(), 0);
}

#[tokio::test]
async fn without_the_minters_kubo_peers_fetch_from_the_holders_that_have_it() {
    let world = World::new();
    let minter = world.node("minter", config(2));
    world.node("b", config(2));
    let (token, mut request) = mint(&world, &minter, 4).await;
    let first = world.nodes.0.lock().unwrap()["b"].clone();
    let PinAnswer::Pinned(receipt) = hold(&first, request.clone()).await else { panic!() };
    minter.content.set_down(true);
    let c = world.node("c", config(2));
    assert_eq!(refusal(&hold(&c, request.clone()).await), "unavailable", "no provider named");
    request.providers = receipt.kubo_addresses.clone();
    request.receipts = vec![receipt];
    assert!(matches!(hold(&c, request).await, PinAnswer::Pinned(_)));
    assert_eq!(c.store.receipts(token).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_minter_has_each_remote_pinning_service_pin_both_files_and_reports_their_status() {
    let world = World::new();
    let service = RemotePinService {
        name: "psa".into(),
        endpoint: "http://127.0.0.1:1".into(),
        key_file: "psa.key".into(),
    };
    let minter = world.node("minter", ReplicationConfig { copies: 0, remote: vec![service], ..config(0) });
    minter.content.add_service("psa", "http://127.0.0.1:1", "secret").await.unwrap();
    let (token, request) = mint(&world, &minter, 5).await;
    let outputs = JobOutputs {
        image_cid: Some(request.image_cid.parse().unwrap()),
        metadata_cid: Some(request.metadata_cid.parse().unwrap()),
        ..JobOutputs::default()
    };
    let replicator = Replicator::new(minter.clone());
    replicator.note(&crate::jobs::testing::record(JobId::of_token(token), JobState::Minted, outputs)).await;
    assert_eq!(minter.metrics.pin_requests("remote", "requested"), 2);
    assert_eq!(minter.store.pending_count().await.unwrap(), 0, "copies = 0 asks no peer");
    let cids = Some((request.image_cid.as_str(), request.metadata_cid.as_str()));
    let services = ["psa".to_owned(), "unregistered".to_owned()];
    let holders = holders_of(&minter.store, &minter.content, &services, (CHAIN_ID, CONTRACT), token, cids)
        .await
        .unwrap();
    let statuses: Vec<(&str, &str)> =
        holders.remote_pins.iter().map(|p| (p.service.as_str(), p.status.as_str())).collect();
    assert_eq!(
        statuses,
        [("psa", "queued"), ("psa", "queued"), ("unregistered", "unknown"), ("unregistered", "unknown")]
    );
    assert!(holders.summary.ends_with("0 of 4 remote pins pinned"), "{}", holders.summary);
}
