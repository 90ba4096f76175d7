//! Several RPC endpoints: the node mints through the first, through the next while a proxy in
//! front of the first is cut, and back through the first when the second is cut in turn; no job
//! fails or waits for the cut endpoint.

use std::time::{Duration, Instant};

use genmint_node::config::Config;

use crate::support::{CuttableProxy, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn a_node_mints_through_the_next_rpc_endpoint_while_one_is_cut() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let first = CuttableProxy::start(stack.anvil.rpc_url()).await?;
    let second = CuttableProxy::start(stack.anvil.rpc_url()).await?;
    let mut config = Config::load(&stack.node_dir())?;
    config.chain.rpc_url = first.url.clone();
    config.chain.fallback_rpc_urls = vec![second.url.clone()];
    config.save(&stack.node_dir())?;
    stack.start_node().await?;

    let (_, token) = stack.mint_one("through the first endpoint", 41).await?;
    assert_eq!(stack.minted_events(token).await?, 1);
    assert!(!stack.node_log().contains("RPC failover"), "the first endpoint served it");

    first.set_open(false);
    let started = Instant::now();
    let (_, token) = stack.mint_one("through the second endpoint", 42).await?;
    let took = started.elapsed();
    assert_eq!(stack.minted_events(token).await?, 1);
    assert!(stack.node_log().contains("RPC failover: now using this endpoint"), "{}", stack.node_log());
    assert!(took < Duration::from_secs(30), "no wait for the cut endpoint: {took:?}");
    eprintln!("minted through the fallback endpoint in {took:?}");

    second.set_open(false);
    first.set_open(true);
    let (_, token) = stack.mint_one("back through the first endpoint", 43).await?;
    assert_eq!(stack.minted_events(token).await?, 1);
    Ok(())
}
