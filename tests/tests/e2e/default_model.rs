//! The shipped default model in a real node: `genmint-emoji-32` assembled from the repository and
//! the installed MiniLM, served by `genmint node`, minting one 32×32 token whose pinned PNG holds
//! exactly the attested pixels.

use std::time::Duration;

use alloy::primitives::{B256, U256, keccak256};
use genmint_node::chain::abi_encode_request;

use crate::support::{Stack, StackModel};

#[tokio::test(flavor = "multi_thread")]
async fn the_default_model_mints_a_32_pixel_token() -> anyhow::Result<()> {
    let mut stack = Stack::start_with(StackModel::Default).await?;
    stack.start_node().await?;
    let signed = stack.signed_request("grinning face with smiling eyes", 7, 20);
    let (status, job) = stack.submit(&signed).await?;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "minted", Duration::from_secs(300)).await?;

    let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
    let minted = stack.minted_output(token_id).await?;
    assert_eq!(minted.prompt_hash, keccak256(abi_encode_request(&signed.request)), "the minted request");
    assert_eq!(signed.request.modelHash, stack.model_hash);
    let pixels = stack.checked_image(token_id).await?;
    assert_eq!((pixels.width, pixels.height), (32, 32));
    assert!(stack.node_log().contains("genmint-emoji-32"), "the node does not say which model it serves");
    Ok(())
}
