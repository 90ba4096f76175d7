//! One signed request over HTTP to a minted token, checked from the outside; and a token whose
//! metadata points at a changed image, which `genmint verify` must reject.

use std::time::Duration;

use alloy::primitives::{B256, U256, keccak256};
use genmint_node::chain::{ChainClient, abi_encode_request};
use genmint_node::provenance::eip712::{Attestation, domain, sign_attestation};
use genmint_node::provenance::png;

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

    // A second token whose metadata points at a changed image: the node key attests it, so the
    // chain accepts it, but the image no longer matches the attested pixels.
    let forged = stack.signed_request("a lighthouse at dusk", 43, 8);
    let chain_id = stack.anvil.chain_id();
    let forged_digest =
        genmint_node::provenance::eip712::request_digest(&forged.request, &domain(chain_id, stack.contract));
    let mut changed = pixels.clone();
    changed.pixels[0] ^= 0xff;
    let changed_png = png::encode(&changed)?;
    let changed_cid = ipfs_add(&stack, &changed_png).await?;
    let mut forged_metadata = metadata.clone();
    forged_metadata["image"] = format!("ipfs://{changed_cid}").into();
    forged_metadata["aigc_data"] = format!("ipfs://{changed_cid}").into();
    forged_metadata["provenance"]["request"] = serde_json::to_value(&forged.request)?;
    forged_metadata["provenance"]["creatorSignature"] = forged.signature.to_string().into();
    forged_metadata["provenance"]["requestDigest"] = forged_digest.to_string().into();
    let forged_metadata_cid = ipfs_add(&stack, &serde_json::to_vec_pretty(&forged_metadata)?).await?;
    let attestation = Attestation {
        requestDigest: forged_digest,
        modelHash: stack.model_hash,
        pixelDigest: minted.pixel_digest,
        imageCid: changed_cid,
        metadataCid: forged_metadata_cid,
        node: stack.operator.address(),
    };
    let node_signature = sign_attestation(&stack.operator, &attestation, &domain(chain_id, stack.contract))?;
    let chain = ChainClient::connect(stack.anvil.rpc_url(), stack.operator.clone(), stack.contract).await?;
    chain.mint(&forged.request, &forged.signature, &attestation, &node_signature).await?;
    let (ok, output) = stack.genmint(&["verify", &forged_digest.to_string()]).await?;
    assert!(!ok, "verify accepted a token whose image was changed:\n{output}");
    assert!(output.contains("pixel"), "the failure names the pixel check:\n{output}");
    let report: serde_json::Value =
        reqwest::get(format!("{}/v1/tokens/{forged_digest}/provenance", stack.node_url))
            .await?
            .json()
            .await?;
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!((report["ok"].as_bool(), failed), (Some(false), vec!["pixel_digest"]), "{report}");
    let missing = reqwest::get(format!("{}/v1/tokens/0x1234/provenance", stack.node_url)).await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

/// Adds and pins bytes through Kubo's HTTP API with genmint's import settings.
async fn ipfs_add(stack: &Stack, bytes: &[u8]) -> anyhow::Result<String> {
    let url = format!(
        "{}/api/v0/add?cid-version=1&raw-leaves=true&chunker=size-1048576&pin=true",
        stack.kubo.api_url()
    );
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes.to_vec()));
    let reply: serde_json::Value =
        reqwest::Client::new().post(url).multipart(form).send().await?.json().await?;
    Ok(reply["Hash"].as_str().unwrap_or_default().to_owned())
}
