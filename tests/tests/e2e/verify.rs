//! `genmint verify` link by link: a token the node minted passes every check, by token id, by its
//! image or metadata CID, by the image file, and re-generated; then tokens with exactly one link
//! broken (image pixels, a metadata field, the creator signature, the C2PA manifest, the node's
//! registry status) fail exactly the matching check; and re-generation across reproducibility
//! envelopes is judged perceptually.
//!
//! The broken tokens are made here the way a dishonest (but registered) node could make them: the
//! test holds the node's operator key and signing certificate, pins its own files and mints them.

use std::time::Instant;

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use genmint_model_runtime::Rgb8Image;
use genmint_node::chain::ChainClient;
use genmint_node::devnet::anvil::DevAccount;
use genmint_node::provenance::credentials::{Credentials, TokenAssertion};
use genmint_node::provenance::eip712::{
    Attestation, GenerationRequest, SignedRequest, domain, request_digest, sign_attestation, sign_request,
};
use genmint_node::provenance::png;
use serde_json::Value;

use crate::support::{Stack, raw_cid};

/// The one thing a forged token gets wrong, or (`OtherDevice`) a token made "elsewhere".
#[derive(Debug, Clone, Copy)]
enum Break {
    /// The pinned image's pixels differ from the attested pixel digest.
    ImagePixels,
    /// The metadata's `prompt` is not the signed prompt.
    MetadataPrompt,
    /// The metadata carries a creator signature of a different request.
    CreatorSignature,
    /// The image's manifest is signed by a certificate the node never bound, borrowing its binding.
    ManifestCertificate,
    /// The image's manifest names another token.
    ManifestToken,
    /// Nothing broken: the good token's request (another nonce) claimed to be run on a CUDA device,
    /// with pixels close to the CPU's (`mirrored: false`) or a different picture (`true`).
    OtherDevice { mirrored: bool },
}

#[tokio::test(flavor = "multi_thread")]
async fn every_link_of_a_token_is_checked() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let (id, token_id) = stack.mint_one("a lighthouse at dusk", 42).await?;

    // The good token, every way it can be named.
    let started = Instant::now();
    let (ok, output) = stack.genmint(&["verify", &id]).await?;
    println!("genmint verify {id} ({:.2} s wall, whole process):\n{output}", started.elapsed().as_secs_f64());
    assert!(ok, "verify refused a good token:\n{output}");
    assert!(output.contains("ok   content_credentials"), "{output}");
    let minted = stack.minted_output(token_id).await?;
    let record = stack.contract_reader().provenance(token_id).call().await?;
    let image_file = stack.dir.path().join("downloaded.png");
    std::fs::write(&image_file, stack.ipfs_cat(&minted.image_cid).await?)?;
    for subject in [minted.image_cid.as_str(), record.metadataCid.as_str(), image_file.to_str().unwrap()] {
        let (ok, output) = stack.genmint(&["verify", subject]).await?;
        assert!(ok && output.contains("ok   subject"), "verify {subject}:\n{output}");
        assert!(output.contains(&id), "verify {subject} found another token:\n{output}");
    }
    let models = stack.node_dir().join("models");
    let (ok, output) =
        stack.genmint(&["verify", &id, "--regenerate", "--models-dir", models.to_str().unwrap()]).await?;
    assert!(ok && output.contains("re-generated bit-exact"), "{output}");

    // The node's raw output (no credentials) is not the pinned file, and no mint names it.
    let raw = stack.node_dir().join("images").join(format!("{id}.png"));
    let (ok, output) = stack.genmint(&["verify", raw.to_str().unwrap()]).await?;
    assert!(!ok && output.contains("no mint event"), "{output}");

    // One broken link at a time.
    let node_credentials = Credentials::load_or_create(&stack.node_dir(), &stack.operator)?.0;
    let good_metadata: Value = serde_json::from_slice(&stack.ipfs_cat(&record.metadataCid).await?)?;
    let pixels = stack.checked_image(token_id).await?;
    let cases = [
        (Break::ImagePixels, "pixel_digest"),
        (Break::MetadataPrompt, "metadata"),
        (Break::CreatorSignature, "creator_signature"),
        (Break::ManifestCertificate, "content_credentials"),
        (Break::ManifestToken, "content_credentials"),
    ];
    for (seed, (kind, check)) in (100u64..).zip(cases) {
        let forged = forge(&stack, &node_credentials, &good_metadata, &pixels, seed, kind).await?;
        let (failed, report) = failed_checks(&stack, &forged).await?;
        assert_eq!(failed, vec![check], "{kind:?}: {report}");
        let (ok, output) = stack.genmint(&["verify", &forged]).await?;
        assert!(!ok && output.contains(&format!("FAIL {check}")), "{kind:?}:\n{output}");
        if matches!(kind, Break::ManifestCertificate) {
            println!("genmint verify of a token whose manifest certificate is not the node's:\n{output}");
        }
    }

    // Re-generation across reproducibility envelopes: not bit-exact, so compared perceptually.
    for mirrored in [false, true] {
        let kind = Break::OtherDevice { mirrored };
        let forged =
            forge(&stack, &node_credentials, &good_metadata, &pixels, 200 + u64::from(mirrored), kind)
                .await?;
        assert_eq!(failed_checks(&stack, &forged).await?.0, Vec::<String>::new(), "{kind:?}");
        let (ok, output) = stack
            .genmint(&["verify", &forged, "--regenerate", "--models-dir", models.to_str().unwrap()])
            .await?;
        println!("genmint verify --regenerate, {kind:?}:\n{output}");
        assert!(output.contains("device_class cuda (minted) vs cpu (here)"), "{output}");
        if mirrored {
            assert!(!ok && output.contains("FAIL regeneration") && output.contains("> 10"), "{output}");
        } else {
            assert!(ok && output.contains("perceptually the same"), "{output}");
        }
    }

    // The registry owner takes the node off: its tokens now fail the registry check, naming when.
    let admin = ChainClient::connect(stack.anvil.rpc_url(), DevAccount::Owner.key(), stack.contract).await?;
    admin.deactivate_node(stack.operator.address()).await?;
    let (failed, report) = failed_checks(&stack, &id).await?;
    assert_eq!(failed, vec!["node_registry"], "{report}");
    assert!(report.to_string().contains("deactivated since"), "{report}");
    Ok(())
}

/// The names of the checks the node's provenance API reports failed for `token`, and the report.
async fn failed_checks(stack: &Stack, token: &str) -> anyhow::Result<(Vec<String>, Value)> {
    let report: Value =
        reqwest::get(format!("{}/v1/tokens/{token}/provenance", stack.node_url)).await?.json().await?;
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    Ok((failed, report))
}

/// Mints a token for a fresh request (seed or nonce `seed`) from the good token's files as `kind`
/// says; returns its id (0x-hex).
async fn forge(
    stack: &Stack,
    node: &Credentials,
    good_metadata: &Value,
    pixels: &Rgb8Image,
    seed: u64,
    kind: Break,
) -> anyhow::Result<String> {
    let eip712 = domain(stack.anvil.chain_id(), stack.contract);
    let mut image = pixels.clone();
    let (signed, pixel_digest) = match kind {
        Break::OtherDevice { mirrored } => {
            if mirrored {
                image = mirror(pixels);
            } else {
                image.pixels.iter_mut().step_by(5).for_each(|p| *p = p.saturating_add(2));
            }
            let mut request: GenerationRequest =
                serde_json::from_value(good_metadata["provenance"]["request"].clone())?;
            request.nonce = U256::from(seed);
            let signature = sign_request(&stack.creator, &request, &eip712)?;
            (SignedRequest { request, signature }, B256::from(image.pixel_digest()))
        }
        _ => {
            if let Break::ImagePixels = kind {
                image.pixels[0] ^= 0xff;
            }
            (stack.signed_request("a lighthouse at dusk", seed, 8), B256::from(pixels.pixel_digest()))
        }
    };
    let digest = request_digest(&signed.request, &eip712);
    let mut token: TokenAssertion =
        node.assertion(stack.anvil.chain_id(), stack.contract, digest, stack.model_hash, pixel_digest, None);
    let impostor;
    let signer = match kind {
        Break::ManifestCertificate => {
            // Carries the node's binding (as any copy of a genmint image does) but signs with its
            // own certificate.
            let dir = stack.dir.path().join(format!("impostor-{seed}"));
            std::fs::create_dir_all(&dir)?;
            impostor = Credentials::load_or_create(&dir, &PrivateKeySigner::random())?.0;
            &impostor
        }
        Break::ManifestToken => {
            token.token_id = B256::repeat_byte(0x77);
            node
        }
        _ => node,
    };
    let image_bytes = signer.embed(&png::encode(&image)?, &token, &Default::default())?;
    let image_cid = ipfs_add(stack, &image_bytes).await?;
    assert_eq!(image_cid, raw_cid(&image_bytes));

    let mut metadata = good_metadata.clone();
    let creator_signature = match kind {
        Break::CreatorSignature => stack.signed_request("another prompt", seed, 8).signature,
        _ => signed.signature.clone(),
    };
    metadata["image"] = format!("ipfs://{image_cid}").into();
    metadata["aigc_data"] = format!("ipfs://{image_cid}").into();
    if let Break::MetadataPrompt = kind {
        metadata["prompt"] = "a lighthouse at noon".into();
    }
    let provenance = &mut metadata["provenance"];
    provenance["request"] = serde_json::to_value(&signed.request)?;
    provenance["creatorSignature"] = creator_signature.to_string().into();
    provenance["requestDigest"] = digest.to_string().into();
    provenance["imageCid"] = image_cid.clone().into();
    provenance["pixelDigest"] = pixel_digest.to_string().into();
    if let Break::OtherDevice { .. } = kind {
        provenance["envelope"]["deviceClass"] = "cuda".into();
    }
    let metadata_cid = ipfs_add(stack, &serde_json::to_vec_pretty(&metadata)?).await?;

    let attestation = Attestation {
        requestDigest: digest,
        modelHash: stack.model_hash,
        pixelDigest: pixel_digest,
        imageCid: image_cid,
        metadataCid: metadata_cid,
        node: stack.operator.address(),
    };
    let node_signature = sign_attestation(&stack.operator, &attestation, &eip712)?;
    let chain = ChainClient::connect(stack.anvil.rpc_url(), stack.operator.clone(), stack.contract).await?;
    let SignedRequest { request, signature } = signed;
    chain.mint(&request, &signature, &attestation, &node_signature).await?;
    Ok(digest.to_string())
}

/// The image flipped left to right.
fn mirror(image: &Rgb8Image) -> Rgb8Image {
    let row = image.width as usize * 3;
    let pixels = image
        .pixels
        .chunks(row)
        .flat_map(|line| line.chunks(3).rev().flatten().copied().collect::<Vec<u8>>())
        .collect();
    Rgb8Image { pixels, ..image.clone() }
}

/// Adds and pins bytes through Kubo's HTTP API with genmint's import settings.
async fn ipfs_add(stack: &Stack, bytes: &[u8]) -> anyhow::Result<String> {
    let url = format!(
        "{}/api/v0/add?cid-version=1&raw-leaves=true&chunker=size-1048576&pin=true",
        stack.kubo.api_url()
    );
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes.to_vec()));
    let reply: Value = reqwest::Client::new().post(url).multipart(form).send().await?.json().await?;
    Ok(reply["Hash"].as_str().unwrap_or_default().to_owned())
}
