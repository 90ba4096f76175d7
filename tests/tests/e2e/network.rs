//! The peer-to-peer network end to end: three `genmint node` processes on one anvil and one Kubo.
//! Node A serves model X; B and C serve model Y. A job for Y submitted to A is generated and minted
//! by B or C (the chain names that node); when the executor dies mid-job the job moves to the other
//! one and still ends with exactly one token; a rogue peer's forged advert and junk requests change
//! nothing for A.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use genmint_node::chain::ChainClient;
use genmint_p2p::advert::{Advert, AdvertVerifier, AdvertisedModel};
use genmint_p2p::wire::{JobRequest, JobResponse, JobStatus};
use genmint_p2p::{Keypair, NetworkConfig};
use serde_json::Value;

use crate::cluster::{Cluster, NodeSpec};
use crate::support::{free_port, now_unix};

fn is_minted(job: &Value) -> bool {
    job["state"] == "minted"
}

/// How many files the cluster's Kubo holds pinned (recursively).
async fn pin_count(cluster: &Cluster) -> Result<usize> {
    let url = format!("{}/api/v0/pin/ls?type=recursive", cluster.kubo.api_url());
    let pins: Value = reqwest::Client::new().post(url).send().await?.error_for_status()?.json().await?;
    Ok(pins["Keys"].as_object().map_or(0, serde_json::Map::len))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_minted_by_one_node_and_posted_to_another_is_answered_from_the_chain() -> Result<()> {
    // Both nodes serve the model: B could run the request, and must not.
    let mut cluster = Cluster::new(&[NodeSpec::default(), NodeSpec::default()]).await?;
    cluster.start_all().await?;
    let signed = cluster.signed_request(cluster.model("model-x"), "a lighthouse, replayed", 21, 0);
    let (status, job) = cluster.submit(0, &signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().context("the job has an id")?.to_owned();
    let at_a = cluster.wait_for(0, &id, is_minted).await?;
    let a_operator = cluster.nodes[0].operator.address().to_string().to_lowercase();
    assert_eq!(at_a["minted_by"], a_operator.as_str(), "{at_a}");
    let pinned = pin_count(&cluster).await?;

    let (status, replay) = cluster.submit(1, &signed).await?;
    assert!(status.is_success(), "{status}: {replay}");
    let at_b = cluster.wait_for(1, &id, is_minted).await?;
    assert_eq!(at_b["route"], "local", "B serves the model itself");
    for field in ["token_id", "tx_hash", "image_cid", "metadata_cid", "pixel_digest", "node_signature"] {
        assert_eq!(at_b[field], at_a[field], "{field}: B answers with the chain's record, which is A's");
    }
    assert_eq!(at_b["minted_by"], a_operator.as_str(), "the chain names A");
    let image = cluster.nodes[1].dir.join("images").join(format!("{id}.png"));
    assert!(!image.exists(), "B generated nothing");
    assert_eq!(pin_count(&cluster).await?, pinned, "B pinned nothing");
    cluster.expect_token_by(&id, 0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_for_a_model_the_node_lacks_is_minted_by_a_node_that_has_it() -> Result<()> {
    let spec = |model| NodeSpec { model, ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec("model-x"), spec("model-y"), spec("model-y")]).await?;
    cluster.start_all().await?;
    let model_y = cluster.model("model-y");
    let listed = cluster.wait_for_providers(model_y, 2).await?;
    assert_eq!(listed["local"], false);

    let signed = cluster.signed_request(model_y, "a lighthouse at dusk", 11, 0);
    let (status, job) = cluster.submit(0, &signed).await?;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["route"], "forwarded");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = cluster.wait_for(0, &id, is_minted).await?;

    let executor = done["executor"].as_str().context("the forwarded job names its executor")?;
    let index = cluster.nodes.iter().position(|n| n.peer_id == executor).context("executor is B or C")?;
    assert!(index == 1 || index == 2, "executor {executor}");
    cluster.expect_token_by(&id, index).await?;
    // The origin shows what the executor produced.
    let at_executor = cluster.job(index, &id).await?;
    for field in ["token_id", "tx_hash", "image_cid", "metadata_cid", "pixel_digest"] {
        assert_eq!(done[field], at_executor[field], "{field}");
    }
    assert_eq!(at_executor["origin"].as_str(), Some(cluster.nodes[0].peer_id.as_str()));

    // A request for A's own model stays on A.
    let own = cluster.signed_request(cluster.model("model-x"), "a lighthouse at dawn", 12, 0);
    let (_, job) = cluster.submit(0, &own).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let done = cluster.wait_for(0, &id, is_minted).await?;
    assert_eq!(done["route"], "local");
    cluster.expect_token_by(&id, 0).await?;

    // A model nobody serves is refused with a clear error.
    let nobody = cluster.signed_request(B256::repeat_byte(9), "anything", 13, 0);
    let (status, body) = cluster.submit(0, &nobody).await?;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "unknown_model", "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_executor_dies_mid_job_another_node_mints_it_once() -> Result<()> {
    // B is the cheaper provider of model-y, so it is tried first; its Kubo address is dead, so it
    // generates but never pins. C asks for a fee of 1 wei, which the request allows.
    let dead_ipfs = format!("http://127.0.0.1:{}", free_port());
    let mut cluster = Cluster::new(&[
        NodeSpec::default(),
        NodeSpec { model: "model-y", ipfs_api: Some(&dead_ipfs), ..NodeSpec::default() },
        NodeSpec { model: "model-y", min_fee_wei: "1", ..NodeSpec::default() },
    ])
    .await?;
    cluster.start_all().await?;
    let model_y = cluster.model("model-y");
    cluster.wait_for_providers(model_y, 2).await?;

    let signed = cluster.signed_request(model_y, "a ship in a bottle", 21, 1);
    // The fee comes out of the creator's deposit: without one the request is refused up front.
    let (status, body) = cluster.submit(0, &signed).await?;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (402, Some("insufficient_funds")),
        "{body}"
    );
    let creator =
        ChainClient::connect(cluster.anvil.rpc_url(), cluster.creator.clone(), cluster.contract).await?;
    creator.deposit(U256::from(1)).await?;
    let (_, job) = cluster.submit(0, &signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let b = cluster.nodes[1].peer_id.clone();
    cluster.wait_for(0, &id, |job| job["executor"] == b.as_str() && job["state"] == "generated").await?;
    cluster.nodes[1].kill().await?;

    let done = cluster.wait_for(0, &id, is_minted).await?;
    assert_eq!(done["executor"].as_str(), Some(cluster.nodes[2].peer_id.as_str()), "failed over to C");
    cluster.expect_token_by(&id, 2).await
}

/// Accepts every advert: the rogue peer relays whatever it is given.
struct AcceptAll;

impl AdvertVerifier for AcceptAll {
    fn verify(&self, _: &Advert) -> std::result::Result<(), String> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_advert_and_junk_requests_from_a_peer_change_nothing() -> Result<()> {
    let mut cluster = Cluster::new(&[NodeSpec::default()]).await?;
    cluster.start_all().await?;
    let a: genmint_p2p::PeerId = cluster.nodes[0].peer_id.parse()?;

    // A rogue peer claims A's registered operator, with a binding signed by some other key.
    let keypair = Keypair::generate_ed25519();
    let rogue_id = keypair.public().to_peer_id();
    let config = NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootstrap: vec![cluster.nodes[0].bootstrap_addr().parse()?],
        network_id: format!("{}-{:#x}", cluster.anvil.chain_id(), cluster.contract),
        advert_interval: Duration::from_millis(500),
        ..NetworkConfig::default()
    };
    let (rogue, mut rogue_events) = genmint_p2p::spawn(keypair, config, Arc::new(AcceptAll)).await?;
    tokio::spawn(async move { while rogue_events.recv().await.is_some() {} });
    let advert = |operator: Address, binding_signature: String, sequence: u64| Advert {
        peer_id: rogue_id.to_string(),
        operator: operator.to_string(),
        chain_id: cluster.anvil.chain_id(),
        contract: cluster.contract.to_string(),
        binding_signature,
        models: vec![AdvertisedModel {
            hash: B256::repeat_byte(0x77).to_string(),
            name: "phantom".into(),
            kind: "tiny".into(),
            max_width: 64,
            max_height: 64,
            max_steps: 50,
            defaults: None,
        }],
        devices: vec!["cpu".into()],
        queue_depth: 0,
        capacity: 100,
        price_wei: "0".into(),
        sequence,
        issued_at: now_unix(),
        refresh_secs: None,
        addresses: Vec::new(),
    };
    let bind = |key: &PrivateKeySigner| {
        genmint_node::network::binding::sign_binding(
            key,
            &rogue_id.to_string(),
            cluster.anvil.chain_id(),
            cluster.contract,
        )
    };
    let rogue_advert = |peers: &Value| -> Option<Value> {
        let peer = peers["peers"].as_array()?.iter().find(|p| p["peer_id"] == rogue_id.to_string())?;
        Some(peer.clone())
    };
    let peers_of_a = || async {
        let peers: Value = reqwest::get(format!("{}/v1/peers", cluster.nodes[0].url)).await?.json().await?;
        anyhow::Ok(peers)
    };
    let phantom_listed = || async {
        let models: Value = reqwest::get(format!("{}/v1/models", cluster.nodes[0].url)).await?.json().await?;
        anyhow::Ok(models.to_string().contains("phantom"))
    };

    // 1. It claims A's registered operator, with a binding signed by some other key: rejected.
    let registered = cluster.nodes[0].operator.address();
    rogue.set_advert(advert(registered, bind(&PrivateKeySigner::random())?, 1)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rogue_advert(&peers_of_a().await?).is_none() {
        assert!(Instant::now() < deadline, "the rogue peer never connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = rogue_advert(&peers_of_a().await?).context("rogue peer gone")?;
    assert!(seen["advert"].is_null(), "a forged advert was accepted: {seen}");
    assert!(!phantom_listed().await?, "the phantom model is listed");

    // 2. An honest binding by an operator the contract does not know: the advert is kept (and
    // shown as unregistered) but never used for routing.
    let stranger = PrivateKeySigner::random();
    rogue.set_advert(advert(stranger.address(), bind(&stranger)?, 2)).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rogue_advert(&peers_of_a().await?).context("rogue peer gone")?;
        if !seen["advert"].is_null() {
            assert_eq!(seen["registered"], false, "{seen}");
            break;
        }
        assert!(Instant::now() < deadline, "a correctly bound advert never arrived: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!phantom_listed().await?, "an unregistered operator's model is listed");
    let phantom_request = cluster.signed_request(B256::repeat_byte(0x77), "phantom", 30, 0);
    let (status, body) = cluster.submit(0, &phantom_request).await?;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (422, Some("unknown_model")), "{body}");

    // Junk requests get refusals, not crashes.
    let junk = JobRequest::Submit { job_id: "0x00".into(), signed_request: "not json".into() };
    assert!(
        matches!(rogue.request(a, junk).await?, JobResponse::Rejected { code, .. } if code == "bad_request")
    );
    let stray = JobStatus {
        job_id: B256::repeat_byte(1).to_string(),
        state: "minted".into(),
        step: None,
        steps: None,
        token_id: Some("1".into()),
        tx_hash: None,
        error: None,
        pixel_digest: None,
        image_cid: None,
        metadata_cid: None,
        minted_by: None,
    };
    assert!(matches!(rogue.request(a, JobRequest::Update(stray)).await?, JobResponse::Error { .. }));
    let status = JobRequest::Status { job_id: B256::repeat_byte(2).to_string() };
    assert!(
        matches!(rogue.request(a, status).await?, JobResponse::Error { code, .. } if code == "not_found")
    );

    // A still works.
    let signed = cluster.signed_request(cluster.model("model-x"), "still standing", 31, 0);
    let (_, job) = cluster.submit(0, &signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    cluster.wait_for(0, &id, is_minted).await?;
    rogue.shutdown().await?;
    Ok(())
}
