//! Content outlives its node: three nodes, each with its own Kubo on a loopback swarm, on one
//! anvil. A token minted by one is pinned by the two others (signed receipts); then the minting
//! node, its Kubo and its whole data dir are destroyed, and the token still verifies end to end,
//! through a fresh Kubo that fetches from the holders, and through a holder's provenance API.
//! The same through a remote pinning service that Kubo reaches over the Pinning Service API.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use genmint_node::config::{Config, RemotePinService};
use genmint_node::devnet::kubo::KuboDaemon;
use serde_json::Value;
use tokio::process::Command;

use crate::cluster::{Cluster, NodeSpec};
use crate::pinning_service::PinningService;
use crate::support::genmint_bin;

/// Polls the node's holders of `id` until `copies` receipts check out.
async fn wait_for_copies(cluster: &Cluster, node: usize, id: &str, copies: u64) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let url = format!("{}/v1/tokens/{id}/holders", cluster.nodes[node].url);
        let holders: Value = reqwest::get(&url).await?.json().await?;
        if holders["copies"].as_u64() >= Some(copies) {
            return Ok(holders);
        }
        if Instant::now() > deadline {
            bail!("node {node} has {holders} for {id}, not {copies} copies\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_token_verifies_from_the_other_nodes_after_its_minter_and_its_kubo_are_destroyed() -> Result<()> {
    let spec = NodeSpec { own_kubo: true, ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec, spec, spec]).await?;
    cluster.start_all().await?;
    let model = cluster.model("model-x");
    cluster.wait_for_providers(model, 2).await?;

    let signed = cluster.signed_request(model, "a lighthouse kept by others", 11, 0);
    let (status, job) = cluster.submit(0, &signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let minted_at = Instant::now();
    let job = cluster.wait_for(0, &id, |j| j["state"] == "minted").await?;
    let minter = cluster
        .nodes
        .iter()
        .position(|n| {
            job["minted_by"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&n.operator.address().to_string()))
        })
        .expect("a cluster node minted it");
    cluster.expect_token_by(&id, minter).await?;

    let holders = wait_for_copies(&cluster, minter, &id, 2).await?;
    println!(
        "2 signed pin receipts {:.2} s after minted: {}",
        minted_at.elapsed().as_secs_f64(),
        holders["summary"]
    );
    let others: Vec<usize> = (0..3).filter(|&i| i != minter).collect();
    let mut held_by: Vec<String> = holders["heldBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["holderPeerId"].as_str().unwrap().to_owned())
        .collect();
    held_by.sort();
    let mut expected: Vec<String> = others.iter().map(|&i| cluster.nodes[i].peer_id.clone()).collect();
    expected.sort();
    assert_eq!(held_by, expected, "the two other nodes hold it");
    for &holder in &others {
        // Every holder knows both receipts, and holds the content in its own Kubo.
        let seen = wait_for_copies(&cluster, holder, &id, 2).await?;
        assert_eq!(seen["heldHere"], true, "{seen}");
    }

    // Destroy the minter: the process, its Kubo, and every file it had.
    let gone = &mut cluster.nodes[minter];
    gone.kill().await?;
    let kubo = gone.kubo.take().unwrap();
    let dead_api = kubo.api_url().to_owned();
    kubo.stop().await?;
    std::fs::remove_dir_all(&gone.dir)?;
    assert!(reqwest::get(format!("{dead_api}/api/v0/version")).await.is_err(), "the minter's Kubo is gone");

    // A verifier with an empty Kubo of its own, asking a holder where the content is.
    let verifier_kubo = KuboDaemon::start_networked(&cluster.dir.path().join("verifier-kubo")).await?;
    let holder = &cluster.nodes[others[0]];
    let started = Instant::now();
    let output = Command::new(genmint_bin())
        .args(["verify", &id])
        .env("GENMINT_RPC_URL", cluster.anvil.rpc_url())
        .env("GENMINT_IPFS_API", verifier_kubo.api_url())
        .env("GENMINT_CONTRACT", cluster.contract.to_string())
        .env("GENMINT_NODE", &holder.url)
        .env("GENMINT_DATA_DIR", cluster.dir.path().join("cli"))
        .output()
        .await?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("genmint verify after the minter is gone ({:.2} s):\n{text}", started.elapsed().as_secs_f64());
    assert!(output.status.success(), "verify failed without the minter:\n{text}\n{}", cluster.logs());
    assert!(text.contains("pinned by 2 nodes with signed receipts"), "{text}");
    for &other in &others {
        let operator = format!("{:#x}", cluster.nodes[other].operator.address());
        assert!(text.contains(&format!("ok   held by {operator}")), "{operator} not listed:\n{text}");
    }

    // The holder's provenance API says the same.
    let provenance: Value =
        reqwest::get(format!("{}/v1/tokens/{id}/provenance", holder.url)).await?.json().await?;
    assert_eq!(provenance["ok"], true, "{provenance}");
    assert_eq!(provenance["contentHolders"]["copies"], 2, "{provenance}");
    assert_eq!(provenance["contentHolders"]["heldHere"], true, "{provenance}");
    verifier_kubo.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_remote_pinning_service_keeps_the_token_through_kubos_pinning_service_api() -> Result<()> {
    let spec = NodeSpec { own_kubo: true, ..NodeSpec::default() };
    let mut cluster = Cluster::new(&[spec]).await?;
    let service = PinningService::start(&cluster.dir.path().join("psa-kubo"), "psa-secret").await?;
    let dir = cluster.nodes[0].dir.clone();
    std::fs::write(dir.join("psa.key"), "psa-secret\n")?;
    let mut config = Config::load(&dir)?;
    config.replication.copies = 0;
    config.replication.remote = vec![RemotePinService {
        name: "test-psa".into(),
        endpoint: service.endpoint.clone(),
        key_file: "psa.key".into(),
    }];
    config.save(&dir)?;
    cluster.start_all().await?;

    let model = cluster.model("model-x");
    let (status, job) = cluster.submit(0, &cluster.signed_request(model, "kept by a service", 12, 0)).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let job = cluster.wait_for(0, &id, |j| j["state"] == "minted").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let holders = loop {
        let url = format!("{}/v1/tokens/{id}/holders", cluster.nodes[0].url);
        let holders: Value = reqwest::get(&url).await?.json().await?;
        let pins = holders["remotePins"].as_array().cloned().unwrap_or_default();
        if pins.len() == 2 && pins.iter().all(|p| p["status"] == "pinned") {
            break holders;
        }
        if Instant::now() > deadline {
            bail!("the service never pinned both files: {holders}\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("remote pins: {}", holders["summary"]);
    for cid in [&job["image_cid"], &job["metadata_cid"]] {
        let cid = cid.as_str().unwrap();
        let url = format!("{}/api/v0/pin/ls?arg={cid}", service.kubo.api_url());
        let pinned: Value = reqwest::Client::new().post(url).send().await?.json().await?;
        assert!(pinned["Keys"].get(cid).is_some(), "the service's Kubo does not pin {cid}: {pinned}");
    }

    // Without the node and its Kubo, a reader connected to the service's delegate still verifies.
    let gone = &mut cluster.nodes[0];
    gone.kill().await?;
    gone.kubo.take().unwrap().stop().await?;
    std::fs::remove_dir_all(&gone.dir)?;
    let reader = KuboDaemon::start_networked(&cluster.dir.path().join("reader-kubo")).await?;
    let service_id: Value = reqwest::Client::new()
        .post(format!("{}/api/v0/id", service.kubo.api_url()))
        .send()
        .await?
        .json()
        .await?;
    let peer = service_id["ID"].as_str().unwrap();
    for address in service_id["Addresses"].as_array().unwrap() {
        let address = format!("{}/p2p/{peer}", address.as_str().unwrap());
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v0/swarm/connect", reader.api_url()),
            &[("arg", &address)],
        )?;
        reqwest::Client::new().post(url).send().await?;
    }
    let output = Command::new(genmint_bin())
        .args(["verify", &id])
        .env("GENMINT_RPC_URL", cluster.anvil.rpc_url())
        .env("GENMINT_IPFS_API", reader.api_url())
        .env("GENMINT_CONTRACT", cluster.contract.to_string())
        .env("GENMINT_NODE", "http://127.0.0.1:1")
        .env("GENMINT_DATA_DIR", cluster.dir.path().join("cli"))
        .output()
        .await?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "verify failed from the service's copy:\n{text}");
    reader.stop().await?;
    Ok(())
}
