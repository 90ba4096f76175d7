//! Spot checks end to end: two `genmint node` processes serving the test model on one anvil and one
//! Kubo. Node A mints a token; node B re-generates it, and A's provenance endpoint shows B's signed
//! `match`. Then a token minted straight to the chain with A's operator key but a forged pixel
//! digest: B's check says `mismatch`, and A shows it.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, Signature, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use genmint_node::chain::ChainClient;
use genmint_node::config::{Config, OPERATOR_KEY_FILE};
use genmint_node::devnet::anvil::DevAccount;
use genmint_node::ipfs::{ContentStore, KuboClient};
use genmint_node::provenance::eip712::{Attestation, domain, request_digest, sign_attestation};
use genmint_p2p::spot_check::{CheckEnvelope, SpotCheck};
use serde_json::Value;
use tokio::process::Child;

use crate::support::{Stack, free_port, spawn_node};

/// Node B, the checker: the stack's model, its own registered operator, A as its bootstrap peer.
pub(crate) async fn start_checker(
    stack: &Stack,
    dir: &Path,
    bootstrap: &str,
) -> Result<(String, PrivateKeySigner, Child)> {
    start_checker_with(stack, dir, bootstrap, |_| {}).await
}

/// [`start_checker`], its config changed by `configure` first.
pub(crate) async fn start_checker_with(
    stack: &Stack,
    dir: &Path,
    bootstrap: &str,
    configure: impl FnOnce(&mut Config),
) -> Result<(String, PrivateKeySigner, Child)> {
    genmint_model_runtime::write_test_model(&dir.join("models/default"))?;
    let operator = PrivateKeySigner::random();
    let admin = ChainClient::connect(stack.anvil.rpc_url(), DevAccount::Owner.key(), stack.contract).await?;
    admin.register_node(operator.address()).await?;
    std::fs::write(dir.join(OPERATOR_KEY_FILE), format!("0x{}\n", hex::encode(operator.to_bytes())))?;
    let port = free_port();
    let mut config = Config::load(&stack.node_dir())?;
    config.http.listen = ([127, 0, 0, 1], port).into();
    config.p2p.bootstrap = vec![bootstrap.to_owned()];
    config.p2p.spot_check_interval_secs = 1;
    configure(&mut config);
    config.save(dir)?;
    let url = format!("http://127.0.0.1:{port}");
    let child = spawn_node(dir, &url, &dir.join("node.log")).await?;
    Ok((url, operator, child))
}

/// Polls A's provenance report of `token` until it holds a check by `checker`.
pub(crate) async fn peer_check(
    stack: &Stack,
    token: &str,
    checker: &PrivateKeySigner,
    checker_log: &Path,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{}/v1/tokens/{token}/provenance", stack.node_url);
        let report: Value = reqwest::get(url).await?.json().await?;
        let checks = report["peerChecks"].as_array().context("no peerChecks in the report")?;
        if checks.iter().any(|c| c["checker"].as_str() == Some(checker.address().to_string().as_str())) {
            return Ok(report);
        }
        if Instant::now() > deadline {
            bail!(
                "no check of {token} by {} reached A: {report}\n--- A ---\n{}\n--- B ---\n{}",
                checker.address(),
                stack.node_log(),
                std::fs::read_to_string(checker_log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The check as the API shows it recovers, over its signed text for this deployment, to `checker`.
pub(crate) fn assert_signed_by(
    stack: &Stack,
    check: &Value,
    token: &str,
    checker: &PrivateKeySigner,
) -> Result<()> {
    let text = |field: &str| check[field].as_str().map(str::to_owned).context(format!("no {field}"));
    let signed = SpotCheck {
        version: check["version"].as_u64().context("no version")? as u32,
        token_id: token.to_owned(),
        model_hash: text("modelHash")?,
        minted_by: text("mintedBy")?,
        expected_pixel_digest: text("expectedPixelDigest")?,
        regenerated_pixel_digest: text("regeneratedPixelDigest")?,
        perceptual_distance: check["perceptualDistance"].as_u64().map(|d| d as u32),
        outcome: serde_json::from_value(check["outcome"].clone())?,
        checker: text("checker")?,
        checker_envelope: CheckEnvelope {
            engine: text("engine")?,
            dtype: text("dtype")?,
            device_class: text("deviceClass")?,
        },
        minted_envelope: CheckEnvelope {
            engine: text("mintedEngine")?,
            dtype: text("mintedDtype")?,
            device_class: text("mintedDeviceClass")?,
        },
        checked_at: check["checkedAt"].as_u64().context("no checkedAt")?,
        signature: text("signature")?,
        step_check: serde_json::from_value(check["stepCheck"].clone())?,
    };
    let message = signed.signed_text(stack.anvil.chain_id(), &stack.contract.to_string());
    let signature: Signature = signed.signature.parse()?;
    assert_eq!(signature.recover_address_from_msg(message.as_bytes())?, checker.address(), "{check}");
    Ok(())
}

/// The stack with node A running (quick adverts, no spot checks of its own) and its bootstrap
/// address.
pub(crate) async fn stack_with_node_a() -> Result<(Stack, String)> {
    let mut stack = Stack::start().await?;
    let mut config = Config::load(&stack.node_dir())?;
    config.p2p.advert_interval_secs = 2;
    config.p2p.spot_check_interval_secs = 0;
    config.save(&stack.node_dir())?;
    stack.start_node().await?;
    let peers: Value = reqwest::get(format!("{}/v1/peers", stack.node_url)).await?.json().await?;
    let bootstrap = peers["addresses"][0].as_str().context("A has no bootstrap address")?.to_owned();
    Ok((stack, bootstrap))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_re_generates_minted_tokens_and_a_forged_pixel_digest_shows_as_a_mismatch() -> Result<()> {
    let (stack, bootstrap) = stack_with_node_a().await?;
    let checker_dir = stack.dir.path().join("checker");
    let (_checker_url, checker, _checker_node) = start_checker(&stack, &checker_dir, &bootstrap).await?;
    let checker_log = checker_dir.join("node.log");

    // A mints a token; B re-generates it and gets the same pixels.
    let (_, job) = stack.submit(&stack.signed_request("a lighthouse at dusk", 42, 8)).await?;
    let id = job["id"].as_str().context("no job id")?.to_owned();
    stack.wait_for(&id, |state| state == "minted", Duration::from_secs(60)).await?;
    let attested = stack.minted_output(U256::from_be_bytes(id.parse::<B256>()?.0)).await?.pixel_digest;
    let report = peer_check(&stack, &id, &checker, &checker_log).await?;
    let check = &report["peerChecks"][0];
    assert_eq!(check["outcome"], "match", "{report}");
    assert_eq!(check["expectedPixelDigest"], attested.to_string());
    assert_eq!(check["regeneratedPixelDigest"], attested.to_string());
    assert_eq!((check["deviceClass"].as_str(), check["sameEnvelope"].as_bool()), (Some("cpu"), Some(true)));
    assert!(check["perceptualDistance"].is_null(), "bit-exact: nothing to measure: {check}");
    assert_eq!(
        (report["ok"].as_bool(), report["peerChecksOk"].as_bool()),
        (Some(true), Some(true)),
        "{report}"
    );
    assert_signed_by(&stack, check, &id, &checker)?;

    // A token minted with A's registered operator key whose attested pixel digest is forged: the
    // chain takes it, and B's re-generation shows it.
    let forged_pixels = B256::repeat_byte(0x5a);
    let forged_id = mint_forged(&stack, &id, 43, forged_pixels).await?.to_string();
    let report = peer_check(&stack, &forged_id, &checker, &checker_log).await?;
    let check = &report["peerChecks"][0];
    assert_eq!(check["outcome"], "mismatch", "{report}");
    assert_eq!(check["expectedPixelDigest"], forged_pixels.to_string());
    assert_ne!(check["regeneratedPixelDigest"], forged_pixels.to_string());
    assert!(
        check["perceptualDistance"].as_u64().is_some_and(|d| d <= 64),
        "measured against the minted image: {check}"
    );
    assert_eq!(report["peerChecksOk"], false, "{report}");
    let summary = report["peerChecksSummary"].as_str().unwrap_or_default();
    assert!(summary.contains("1 of 1 checks re-generated different pixels"), "{summary}");
    assert_signed_by(&stack, check, &forged_id, &checker)?;
    // The first token's report is unchanged by it.
    let first: Value =
        reqwest::get(format!("{}/v1/tokens/{id}/provenance", stack.node_url)).await?.json().await?;
    assert_eq!(first["peerChecksOk"], true, "{first}");
    Ok(())
}

/// Mints, with A's operator key straight to the chain, a token for a new request (`seed`) whose
/// attested pixel digest is `forged_pixels`; its metadata is `honest`'s with the request and digest
/// swapped, pinned to the stack's Kubo. Returns the token id (the request digest).
pub(crate) async fn mint_forged(stack: &Stack, honest: &str, seed: u64, forged_pixels: B256) -> Result<B256> {
    mint_forged_with(stack, honest, seed, forged_pixels, |_| Ok(())).await
}

/// [`mint_forged`], the metadata changed further by `edit` before it is pinned.
pub(crate) async fn mint_forged_with(
    stack: &Stack,
    honest: &str,
    seed: u64,
    forged_pixels: B256,
    edit: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<B256> {
    let chain_domain = domain(stack.anvil.chain_id(), stack.contract);
    let forged = stack.signed_request("a lighthouse at dusk", seed, 8);
    let forged_id = request_digest(&forged.request, &chain_domain);
    let record =
        stack.contract_reader().provenance(U256::from_be_bytes(honest.parse::<B256>()?.0)).call().await?;
    let mut metadata: Value = serde_json::from_slice(&stack.ipfs_cat(&record.metadataCid).await?)?;
    metadata["provenance"]["request"] = serde_json::to_value(&forged.request)?;
    metadata["provenance"]["creatorSignature"] = forged.signature.to_string().into();
    metadata["provenance"]["requestDigest"] = forged_id.to_string().into();
    metadata["provenance"]["pixelDigest"] = forged_pixels.to_string().into();
    edit(&mut metadata)?;
    let kubo = KuboClient::new(stack.kubo.api_url())?;
    let metadata_cid = kubo.add_and_pin(serde_json::to_vec_pretty(&metadata)?).await?;
    let attestation = Attestation {
        requestDigest: forged_id,
        modelHash: stack.model_hash,
        pixelDigest: forged_pixels,
        imageCid: metadata["provenance"]["imageCid"].as_str().context("no image CID")?.to_owned(),
        metadataCid: metadata_cid.to_string(),
        node: stack.operator.address(),
    };
    let node_signature = sign_attestation(&stack.operator, &attestation, &chain_domain)?;
    let chain = ChainClient::connect(stack.anvil.rpc_url(), stack.operator.clone(), stack.contract).await?;
    chain.mint(&forged.request, &forged.signature, &attestation, &node_signature).await?;
    Ok(forged_id)
}
