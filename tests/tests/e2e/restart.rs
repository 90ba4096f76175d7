//! Restart safety: a node SIGKILLed mid-job finishes that job after a restart with exactly one token.
//! Killed while generating; killed after pinning while the chain is unreachable; killed while its
//! mint transaction waits unmined.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use futures_util::StreamExt;

use crate::support::{CuttableProxy, Stack};

fn token_id(id: &str) -> U256 {
    U256::from_be_bytes(id.parse::<B256>().unwrap().0)
}

async fn restart_and_expect_one_token(stack: &mut Stack, id: &str) -> anyhow::Result<()> {
    stack.start_node().await?;
    stack.wait_for(id, |s| s == "minted", Duration::from_secs(120)).await?;
    let token = token_id(id);
    assert_eq!(stack.contract_reader().ownerOf(token).call().await?, stack.creator.address());
    assert_eq!(stack.minted_events(token).await?, 1, "exactly one mint");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_generating() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    // The most steps the test model allows, so generation lasts long enough to be interrupted.
    let signed = stack.signed_request("a slow painting", 7, 50);
    let (_, job) = stack.submit(&signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();

    let events = reqwest::get(format!("{}/v1/jobs/{id}/events", stack.node_url)).await?;
    let mut stream = events.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: progress") {
        let chunk = stream.next().await.expect("event stream ended before any progress")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    stack.kill_node().await?;
    let state = stack_state_on_disk(&stack, &id).await?;
    assert_eq!(state, "generating", "killed mid-generation");
    restart_and_expect_one_token(&mut stack, &id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_pinning_while_the_chain_is_unreachable() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let proxy = CuttableProxy::start(stack.anvil.rpc_url()).await?;
    let mut config = genmint_node::config::Config::load(&stack.node_dir())?;
    config.chain.rpc_url = proxy.url.clone();
    config.save(&stack.node_dir())?;
    stack.start_node().await?;

    proxy.set_open(false);
    let signed = stack.signed_request("an unreachable chain", 8, 8);
    let (_, job) = stack.submit(&signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "pinned", Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.kill_node().await?;
    assert_eq!(stack_state_on_disk(&stack, &id).await?, "pinned");
    assert_eq!(stack.minted_events(token_id(&id)).await?, 0, "nothing reached the chain");

    proxy.set_open(true);
    restart_and_expect_one_token(&mut stack, &id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_the_mint_transaction_is_pending() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    stack.start_node().await?;
    let rpc = ProviderBuilder::new().connect_http(stack.anvil.rpc_url().parse()?);
    rpc.raw_request::<_, ()>("evm_setAutomine".into(), (false,)).await?;

    let signed = stack.signed_request("a pending transaction", 9, 8);
    let (_, job) = stack.submit(&signed).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "minting", Duration::from_secs(60)).await?;
    stack.kill_node().await?;
    assert_eq!(stack_state_on_disk(&stack, &id).await?, "minting");

    rpc.raw_request::<_, ()>("evm_setAutomine".into(), (true,)).await?;
    rpc.raw_request::<_, String>("evm_mine".into(), ()).await?;
    restart_and_expect_one_token(&mut stack, &id).await
}

/// The job's state as the node last wrote it to its SQLite store.
async fn stack_state_on_disk(stack: &Stack, id: &str) -> anyhow::Result<String> {
    let store = genmint_node::jobs::JobStore::open(&stack.node_dir().join("jobs.sqlite"))?;
    Ok(store.get(id.parse()?).await?.expect("job stored").state.to_string())
}
