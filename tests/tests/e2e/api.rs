//! The HTTP API refuses bad requests with the documented status and code, and nothing is stored
//! for them; the EIP-712 description is what a wallet needs to sign.

use alloy::primitives::{B256, Bytes};
use genmint_node::config::Config;
use genmint_node::provenance::eip712::{SignedCancel, domain, request_digest, sign_digest, sign_request};
use serde_json::json;

use crate::support::{Stack, now_unix};

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_store_nothing() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let domain = domain(stack.anvil.chain_id(), stack.contract);
    let resign = |signed: &mut genmint_node::provenance::eip712::SignedRequest| {
        signed.signature = sign_request(&stack.creator, &signed.request, &domain).unwrap();
    };

    let mut cases = Vec::new();
    let mut wrong_key = stack.signed_request("wrong key", 1, 8);
    wrong_key.signature = sign_digest(&stack.operator, request_digest(&wrong_key.request, &domain))?;
    cases.push(("signed by another key", wrong_key, 401, "bad_signature"));
    let mut changed = stack.signed_request("changed after signing", 2, 8);
    changed.request.seed += 1;
    cases.push(("changed after signing", changed, 401, "bad_signature"));
    let mut short = stack.signed_request("short signature", 3, 8);
    short.signature = Bytes::from(vec![1u8; 64]);
    cases.push(("short signature", short, 401, "bad_signature"));
    let mut expired = stack.signed_request("expired", 4, 8);
    expired.request.deadline = now_unix() - 10;
    resign(&mut expired);
    cases.push(("expired", expired, 422, "expired"));
    let mut unknown = stack.signed_request("unknown model", 5, 8);
    unknown.request.modelHash = B256::repeat_byte(7);
    resign(&mut unknown);
    cases.push(("unknown model", unknown, 422, "unknown_model"));
    for (what, width, steps, guidance) in [
        ("odd width", 33, 8, 750),
        ("zero steps", 32, 0, 750),
        ("many steps", 32, 51, 750),
        ("guidance", 32, 8, 5000),
    ] {
        let mut signed = stack.signed_request(what, 6, steps);
        signed.request.width = width;
        signed.request.guidance = guidance;
        resign(&mut signed);
        cases.push((what, signed, 422, "out_of_range"));
    }
    let mut long = stack.signed_request(&"x".repeat(1001), 7, 8);
    resign(&mut long);
    cases.push(("long prompt", long, 422, "prompt_too_long"));
    let mut empty = stack.signed_request("  ", 8, 8);
    resign(&mut empty);
    cases.push(("empty prompt", empty, 422, "invalid_prompt"));

    for (what, signed, status, code) in cases {
        let (got, body) = stack.submit(&signed).await?;
        assert_eq!((got.as_u16(), body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty(), "{what}: {body}");
        let id = request_digest(&signed.request, &domain);
        let stored = reqwest::get(format!("{}/v1/jobs/{id}", stack.node_url)).await?;
        assert_eq!(stored.status(), 404, "{what}: a refused request must not be stored");
    }

    let client = reqwest::Client::new();
    let url = format!("{}/v1/jobs", stack.node_url);
    let garbage =
        client.post(&url).header("content-type", "application/json").body("{not json").send().await?;
    assert_eq!(garbage.status(), 400);
    let missing =
        client.post(&url).json(&json!({"request": {"prompt": "x"}, "signature": "0x"})).send().await?;
    assert_eq!(missing.status(), 400);
    let huge =
        client.post(&url).header("content-type", "application/json").body(vec![b' '; 70_000]).send().await?;
    assert_eq!(huge.status(), 413, "bodies over the limit are refused");
    let body: serde_json::Value = huge.json().await?;
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let text = client.post(&url).header("content-type", "text/plain").body("{}").send().await?;
    assert_eq!(text.status(), 415);
    let body: serde_json::Value = text.json().await?;
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");

    // The prompt limit the node advertises is the one it enforces.
    let models: serde_json::Value =
        reqwest::get(format!("{}/v1/models", stack.node_url)).await?.json().await?;
    assert_eq!(models["models"][0]["limits"]["max_prompt_bytes"], 1000, "{models}");

    // The 64-byte ERC-2098 form of the creator's signature is accepted, as the contract accepts it.
    let mut compact = stack.signed_request("a compact signature", 9, 8);
    let full = alloy::primitives::Signature::from_raw(&compact.signature)?;
    compact.signature = Bytes::from(full.as_erc2098().to_vec());
    let (status, job) = stack.submit(&compact).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "minted", std::time::Duration::from_secs(60)).await?;
    // The event stream of a minted job sends its state and ends.
    let events = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reqwest::get(format!("{}/v1/jobs/{id}/events", stack.node_url)).await?.text(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the event stream of a minted job did not end"))??;
    assert!(events.starts_with("event: minted"), "{events}");
    let bad_id = reqwest::get(format!("{}/v1/jobs/0x12", stack.node_url)).await?;
    assert_eq!(bad_id.status(), 400);

    let eip712: serde_json::Value =
        reqwest::get(format!("{}/v1/eip712", stack.node_url)).await?.json().await?;
    assert_eq!(eip712["domain"]["name"], "genmint");
    assert_eq!(
        eip712["domain"]["verifyingContract"].as_str().map(str::to_lowercase),
        Some(stack.contract.to_string().to_lowercase())
    );
    let fields: Vec<&str> = eip712["types"]["GenerationRequest"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields.len(), 13, "{eip712}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_creator_cancels_a_generating_job_and_a_minted_one_cannot_be() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let client = reqwest::Client::new();
    let domain = domain(stack.anvil.chain_id(), stack.contract);

    let mut slow = stack.signed_request("cancel me", 11, 50);
    (slow.request.width, slow.request.height) = (128, 128);
    slow.signature = sign_request(&stack.creator, &slow.request, &domain)?;
    let (_, job) = stack.submit(&slow).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let job_id: B256 = id.parse()?;
    stack.wait_for(&id, |s| s == "generating", std::time::Duration::from_secs(30)).await?;
    let url = format!("{}/v1/jobs/{id}", stack.node_url);
    let later = now_unix() + 300;

    let anonymous = client.delete(&url).send().await?;
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await?;
    assert_eq!(body["error"]["code"], "signature_required", "{body}");

    let stranger = alloy::signers::local::PrivateKeySigner::random();
    let forged = SignedCancel::sign(&stranger, job_id, later, &domain)?;
    let refused = client.delete(&url).json(&forged).send().await?;
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "not_creator", "{body}");
    assert_eq!(stack.job(&id).await?["state"], "generating", "a refused cancel changes nothing");

    // The CLI signs with the creator's key.
    let key_file = stack.dir.path().join("creator.key");
    std::fs::write(&key_file, format!("0x{}", hex::encode(stack.creator.to_bytes())))?;
    let (ok, output) = stack.genmint(&["cancel", &id, "--key-file", key_file.to_str().unwrap()]).await?;
    assert!(ok, "{output}");
    assert!(output.contains("cancelled"), "{output}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(stack.job(&id).await?["state"], "cancelled", "the pipeline does not resurrect it");
    let token = alloy::primitives::U256::from_be_bytes(job_id.0);
    assert_eq!(stack.minted_events(token).await?, 0);

    let quick = stack.signed_request("keep me", 12, 8);
    let (_, job) = stack.submit(&quick).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "minted", std::time::Duration::from_secs(60)).await?;
    let cancel = SignedCancel::sign(&stack.creator, id.parse()?, later, &domain)?;
    let refused = client.delete(format!("{}/v1/jobs/{id}", stack.node_url)).json(&cancel).send().await?;
    assert_eq!(refused.status(), 409);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creator_or_an_address_past_its_allowance_gets_429_and_event_streams_are_bounded()
-> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let mut config = Config::load(&stack.node_dir())?;
    config.limits.creator_requests_per_minute = 2;
    config.limits.address_requests_per_minute = 4;
    config.limits.max_streams_per_job = 1;
    config.save(&stack.node_dir())?;
    stack.start_node().await?;
    let domain = domain(stack.anvil.chain_id(), stack.contract);

    let mut slow = stack.signed_request("a slow one", 31, 50);
    (slow.request.width, slow.request.height) = (128, 128);
    slow.signature = sign_request(&stack.creator, &slow.request, &domain)?;
    let (status, slow_job) = stack.submit(&slow).await?;
    assert_eq!(status, 202, "{slow_job}");
    let (status, _) = stack.submit(&stack.signed_request("second", 32, 8)).await?;
    assert_eq!(status, 202);

    let third = stack.signed_request("third", 33, 8);
    let response =
        reqwest::Client::new().post(format!("{}/v1/jobs", stack.node_url)).json(&third).send().await?;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str()?.parse()?;
    assert!(retry_after > 0);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("creator"), "{body}");
    let digest = request_digest(&third.request, &domain);
    let absent = reqwest::get(format!("{}/v1/jobs/{digest}", stack.node_url)).await?;
    assert_eq!(absent.status(), 404, "a refused request is not stored");

    // Another creator still has an allowance, until this address has spent its own.
    let other = alloy::signers::local::PrivateKeySigner::random();
    let mut theirs = stack.signed_request("someone else's", 34, 8);
    theirs.request.creator = other.address();
    theirs.signature = sign_request(&other, &theirs.request, &domain)?;
    let (status, body) = stack.submit(&theirs).await?;
    assert_eq!(status, 202, "{body}");
    theirs.request.nonce = alloy::primitives::U256::from(35);
    theirs.signature = sign_request(&other, &theirs.request, &domain)?;
    let (status, body) = stack.submit(&theirs).await?;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("address"), "{body}");

    // One event stream per job here: a second subscriber is refused while the first is open.
    let id = slow_job["id"].as_str().unwrap_or_default();
    let events = format!("{}/v1/jobs/{id}/events", stack.node_url);
    let first = reqwest::get(&events).await?;
    assert_eq!(first.status(), 200);
    let second = reqwest::get(&events).await?;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let body: serde_json::Value = second.json().await?;
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(reqwest::get(&events).await?.status(), 200, "a closed stream frees its slot");
    Ok(())
}
