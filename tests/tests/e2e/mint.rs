//! One signed request over HTTP to a minted token, checked from the outside (`verify.rs` breaks its
//! links one by one).

use std::time::Duration;

use alloy::primitives::{B256, U256, keccak256};
use genmint_node::chain::abi_encode_request;

use crate::support::{Stack, raw_cid};

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_request_becomes_a_verifiable_token() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let signed = stack.signed_request("a lighthouse at dusk", 42, 8);

    let (status, job) = stack.submit(&signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let (again, same) = stack.submit(&signed).await?;
    assert_eq!((again.as_u16(), &same["id"]), (200, &job["id"]), "resubmission is idempotent");

    let job = stack.wait_for(&id, |s| s == "minted", Duration::from_secs(120)).await?;
    let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
    assert_eq!(job["token_id"].as_str(), Some(token_id.to_string().as_str()));

    // The chain, read through our own minimal ABI.
    let contract = stack.contract_reader();
    assert_eq!(contract.ownerOf(token_id).call().await?, stack.creator.address());
    let record = contract.provenance(token_id).call().await?;
    assert_eq!(record.creator, signed.request.creator);
    assert_eq!(record.node, stack.operator.address());
    assert_eq!(contract.tokenURI(token_id).call().await?, format!("ipfs://{}", record.metadataCid));
    assert_eq!(stack.minted_events(token_id).await?, 1);
    let minted = stack.minted_output(token_id).await?;
    assert_eq!(minted.prompt_hash, keccak256(abi_encode_request(&signed.request)), "the minted request");

    // IPFS, read through Kubo's plain HTTP API; CIDs recomputed here.
    let metadata_bytes = stack.ipfs_cat(&record.metadataCid).await?;
    assert_eq!(raw_cid(&metadata_bytes), record.metadataCid);
    let metadata: serde_json::Value = serde_json::from_slice(&metadata_bytes)?;
    assert_eq!(metadata["image"], format!("ipfs://{}", minted.image_cid));
    assert_eq!(metadata["prompt"], "a lighthouse at dusk");
    assert_eq!(metadata["provenance"]["requestDigest"], id.as_str());
    let pixels = stack.checked_image(token_id).await?;
    assert_eq!((pixels.width, pixels.height), (32, 32));

    let (ok, output) = stack.genmint(&["verify", &id]).await?;
    assert!(ok, "verify refused a good token:\n{output}");
    let report: serde_json::Value =
        reqwest::get(format!("{}/v1/tokens/{id}/provenance", stack.node_url)).await?.json().await?;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{report}");

    let missing = reqwest::get(format!("{}/v1/tokens/0x1234/provenance", stack.node_url)).await?;
    assert_eq!(missing.status(), 404);

    // What the operator sees: the job went through every state once, and nothing waits.
    let metrics = reqwest::get(format!("{}/metrics", stack.node_url)).await?;
    assert!(metrics.headers()["content-type"].to_str()?.starts_with("application/openmetrics-text"));
    let metrics = metrics.text().await?;
    for line in [
        r#"genmint_jobs{state="minted"} 1"#,
        r#"genmint_jobs{state="queued"} 0"#,
        r#"genmint_job_transitions_total{state="minted"} 1"#,
        r#"genmint_job_transitions_total{state="pinned"} 1"#,
        r#"genmint_job_step_seconds_count{step="queued"} 1"#,
        "genmint_job_oldest_unfinished_seconds 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "GET /metrics lacks {line:?}:\n{metrics}");
    }
    Ok(())
}
