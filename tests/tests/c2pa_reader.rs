//! Content credentials read by an independent reader: the c2pa crate's own `Reader`, in its own
//! test binary, on the image file fetched back from Kubo over plain HTTP. Nothing here uses
//! genmint's credentials code; the assertion is read as plain JSON.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

use std::io::Cursor;

use c2pa::{Context, Reader, ValidationState};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn the_pinned_image_carries_valid_credentials_naming_its_token() -> anyhow::Result<()> {
    let mut stack = support::Stack::start().await?;
    stack.start_node().await?;
    let (id, token_id) = stack.mint_one("a red kite over hills", 7).await?;
    let minted = stack.minted_output(token_id).await?;
    let file = stack.ipfs_cat(&minted.image_cid).await?;
    assert_eq!(support::raw_cid(&file), minted.image_cid, "the credentials are part of the pinned bytes");

    let reader = Reader::from_context(Context::new()).with_stream("image/png", Cursor::new(&file))?;
    // Valid: hashes and signature check out. Not "trusted": a node's certificate is on no C2PA
    // trust list; genmint binds it to the operator instead.
    assert_eq!(reader.validation_state(), ValidationState::Valid, "{}", reader.json());
    let manifest = reader.active_manifest().expect("an active manifest");
    let actions: Value = manifest.find_assertion("c2pa.actions.v2")?;
    let created =
        actions["actions"].as_array().unwrap().iter().find(|a| a["action"] == "c2pa.created").unwrap();
    assert_eq!(
        created["digitalSourceType"],
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    );
    assert_eq!(created["softwareAgent"]["name"], "genmint");
    let token: Value = manifest.find_assertion("org.genmint.token")?;
    assert_eq!(token["chainId"], stack.anvil.chain_id());
    assert_eq!(token["contract"].as_str().unwrap().to_lowercase(), stack.contract.to_string().to_lowercase());
    assert_eq!(token["tokenId"], id);
    assert_eq!(token["modelHash"], stack.model_hash.to_string());
    assert_eq!(token["pixelDigest"], minted.pixel_digest.to_string());
    assert_eq!(
        token["operator"].as_str().unwrap().to_lowercase(),
        stack.operator.address().to_string().to_lowercase()
    );
    Ok(())
}
