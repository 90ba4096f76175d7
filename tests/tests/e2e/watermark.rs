//! The invisible watermark end to end: a token minted at 512×512 by the Stable Diffusion-shaped
//! test model has a marked pinned image whose metadata records both
//! pixel digests; a copy of it re-encoded as JPEG at quality 70, resized to half and stripped of
//! all metadata is traced back to its token by `genmint verify`, `genmint detect` and
//! `POST /v1/detect`; a copy cut at every edge, which loses the watermark, is still matched by its
//! fingerprint in the node's index; the detector refuses what is not an image, or too large.

use std::io::Cursor;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use anyhow::Context;
use genmint_node::provenance::watermark::WatermarkTag;
use serde_json::Value;

use crate::support::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn a_stripped_resized_jpeg_copy_names_its_token() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let mut signed = stack.signed_request("a harbour at noon", 16, 2);
    (signed.request.width, signed.request.height) = (512, 512);
    signed.signature = genmint_node::provenance::eip712::sign_request(
        &stack.creator,
        &signed.request,
        &genmint_node::provenance::eip712::domain(stack.anvil.chain_id(), stack.contract),
    )?;
    let (status, job) = stack.submit(&signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().context("no job id")?.to_owned();
    stack.wait_for(&id, |s| s == "minted", Duration::from_secs(600)).await?;
    let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);

    // The metadata names the mark and both digests; the pinned pixels are the marked ones.
    let record = stack.contract_reader().provenance(token_id).call().await?;
    let metadata: Value = serde_json::from_slice(&stack.ipfs_cat(&record.metadataCid).await?)?;
    let watermark = &metadata["provenance"]["watermark"];
    let tag = WatermarkTag::for_token(stack.anvil.chain_id(), stack.contract, id.parse()?);
    assert_eq!(watermark["embedded"], true, "{metadata}");
    assert_eq!(watermark["algorithm"], "genmint-qim-dct-v1");
    assert_eq!(watermark["tag"], tag.to_string());
    assert_ne!(watermark["markedPixelDigest"], metadata["provenance"]["pixelDigest"]);
    let minted = stack.minted_output(token_id).await?;
    assert_eq!(metadata["provenance"]["pixelDigest"], minted.pixel_digest.to_string(), "the raw output's");
    let (ok, output) = stack.genmint(&["verify", &id]).await?;
    assert!(ok && output.contains("ok   watermark"), "{output}");
    assert!(output.contains("the marked pixels' digest the metadata records"), "{output}");

    // A copy: JPEG 70 at half the size, no metadata at all.
    let pinned = image::load_from_memory(&stack.ipfs_cat(&minted.image_cid).await?)?.to_rgb8();
    let half = image::imageops::resize(&pinned, 256, 256, image::imageops::FilterType::Lanczos3);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut Cursor::new(&mut jpeg), 70)
        .encode_image(&half)?;
    let copy = stack.dir.path().join("copy.jpg");
    std::fs::write(&copy, &jpeg)?;

    let (ok, output) = stack.genmint(&["verify", copy.to_str().unwrap()]).await?;
    println!("genmint verify of a stripped, resized JPEG copy:\n{output}");
    assert!(ok, "{output}");
    assert!(output.contains(&id) && output.contains("a copy, not the minted file"), "{output}");

    let (found, output) = stack.genmint(&["detect", copy.to_str().unwrap(), "--json"]).await?;
    assert!(found, "{output}");
    let detected: Value = serde_json::from_str(&output)?;
    assert_eq!(detected["present"], true);
    assert_eq!(detected["tag"], tag.to_string());
    assert_eq!(detected["scale"], 0.5);
    assert_eq!(detected["token"]["tokenId"], id);

    let client = reqwest::Client::new();
    let url = format!("{}/v1/detect", stack.node_url);
    let answer = client.post(&url).body(jpeg).send().await?;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await?;
    assert_eq!(answer["token"]["tokenId"], id, "{answer}");
    assert_eq!(answer["token"]["contract"], stack.contract.to_checksum(None));

    // Cut by 6 pixels at every edge, the copy loses its watermark; the node's fingerprint index
    // (the gallery's, once it indexed the token) still finds the token, and says how near it is.
    let cut = image::imageops::crop_imm(&pinned, 6, 6, 500, 500).to_image();
    let mut cut_jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut Cursor::new(&mut cut_jpeg), 85)
        .encode_image(&cut)?;
    let cut_copy = stack.dir.path().join("cut.jpg");
    std::fs::write(&cut_copy, &cut_jpeg)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let answer: Value = loop {
        let answer: Value = client.post(&url).body(cut_jpeg.clone()).send().await?.json().await?;
        if answer["fingerprintMatches"].is_array() || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(answer["present"], false, "the cut loses the mark: {answer}");
    assert_eq!(answer["fingerprintMatches"][0]["tokenId"], id, "{answer}");
    let distance = answer["fingerprintMatches"][0]["distance"].as_u64().context("distance")?;
    let fingerprint = answer["fingerprint"].as_str().context("fingerprint")?;
    let looked_up: Value =
        reqwest::get(format!("{}/v1/fingerprints/{fingerprint}", stack.node_url)).await?.json().await?;
    assert_eq!(looked_up["matches"][0]["tokenId"], id, "{looked_up}");
    let (ok, output) = stack.genmint(&["verify", cut_copy.to_str().unwrap()]).await?;
    println!("genmint verify of a copy cut at every edge (dHash distance {distance}):\n{output}");
    assert!(ok && output.contains(&id) && output.contains("no watermark"), "{output}");

    // An unmarked picture, something that is not an image, and a body over the bound.
    let unmarked = stack.node_dir().join("images").join(format!("{id}.png"));
    let (found, output) = stack.genmint(&["detect", unmarked.to_str().unwrap()]).await?;
    assert!(!found && output.contains("no genmint watermark found"), "the raw output is unmarked: {output}");
    for (body, status, code) in [
        (b"plain text, not a picture".to_vec(), 415, "not_an_image"),
        (vec![0u8; (32 << 20) + 1], 413, "too_large"),
    ] {
        let answer = client.post(&url).body(body).send().await?;
        assert_eq!(answer.status(), status);
        let answer: Value = answer.json().await?;
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    Ok(())
}
