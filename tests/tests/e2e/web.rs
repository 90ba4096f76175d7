//! The web page and the gallery on a real `genmint node`: the pages are served from the binary, a
//! production node never offers the development wallet, a minted token's metadata links its page,
//! and the gallery lists the token from the chain's mint events, also after the node was killed and
//! restarted (indexing resumes where it stopped, listing each token once).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::support::Stack;

async fn text(url: &str) -> Result<(u16, String)> {
    let response = reqwest::get(url).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// The creator's tokens once the gallery lists `count` of them.
async fn listed(stack: &Stack, count: usize) -> Result<Vec<Value>> {
    let url = format!("{}/v1/tokens?creator={}", stack.node_url, stack.creator.address());
    for _ in 0..60 {
        let page: Value = reqwest::get(&url).await?.json().await?;
        let tokens = page["tokens"].as_array().context("no tokens array")?.clone();
        if tokens.len() >= count {
            return Ok(tokens);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the gallery did not list {count} token(s) of the creator")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_the_pages_and_lists_its_tokens_from_the_chain_across_a_restart() -> Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let url = stack.node_url.clone();

    let (status, page) = text(&format!("{url}/")).await?;
    assert_eq!(status, 200);
    assert!(page.contains("\"devWallet\":false"), "a production node never offers the development wallet");
    let (status, script) = text(&format!("{url}/assets/app.js")).await?;
    assert!(status == 200 && script.contains("eth_signTypedData_v4"), "the bundled script is served");

    let (id, token) = stack.mint_one("a red apple", 1).await?;
    let metadata_cid = stack.job(&id).await?["metadata_cid"].as_str().context("no metadata CID")?.to_owned();
    let metadata: Value = serde_json::from_slice(&stack.ipfs_cat(&metadata_cid).await?)?;
    assert_eq!(metadata["external_url"], format!("{url}/tokens/{id}"), "marketplaces link the token page");

    let tokens = listed(&stack, 1).await?;
    assert_eq!(
        (tokens[0]["id"].as_str(), tokens[0]["token_id"].as_str()),
        (Some(id.as_str()), Some(token.to_string().as_str()))
    );
    assert_eq!(tokens[0]["prompt"], "a red apple");
    assert_eq!(tokens[0]["model_hash"], stack.model_hash.to_string());

    let (status, page) = text(&format!("{url}/tokens/{id}")).await?;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("<meta property=\"og:image\" content=\"{url}/v1/tokens/{id}/image\">")),
        "{page}"
    );
    assert!(
        page.contains("data-check=\"creator_signature\"") && page.contains("Every check passed."),
        "{page}"
    );
    let image = reqwest::get(format!("{url}/v1/tokens/{token}/image")).await?;
    assert_eq!(image.headers()["content-type"], "image/png");
    assert!(image.bytes().await?.starts_with(b"\x89PNG"));
    let (status, _) = text(&format!("{url}/tokens/12345")).await?;
    assert_eq!(status, 404, "a token that does not exist");

    stack.kill_node().await?;
    stack.start_node().await?;
    stack.mint_one("a green pear", 2).await?;
    let tokens = listed(&stack, 2).await?;
    assert_eq!(tokens.len(), 2, "each token once after the restart: {tokens:?}");
    assert_eq!(tokens[0]["prompt"], "a green pear", "newest first");
    let (_, gallery) = text(&format!("{url}/gallery?model={}", stack.model_hash)).await?;
    assert!(gallery.contains(&format!("href=\"/tokens/{id}\"")), "{gallery}");
    Ok(())
}
