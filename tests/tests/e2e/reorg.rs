//! Confirmations and reorgs on a real anvil: a job stays `confirming` until its mint is deep
//! enough, and a reorg that drops the mint (`anvil_reorg`, `anvil_rollback`) sends it again, once.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use genmint_node::config::Config;
use serde_json::Value;

use crate::support::Stack;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_mint_waits_for_its_confirmations_and_a_reorg_that_drops_it_sends_it_again_once()
-> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let mut config = Config::load(&stack.node_dir())?;
    config.chain.confirmations = Some(3);
    config.chain.poll_interval_ms = 100;
    config.save(&stack.node_dir())?;
    stack.start_node().await?;
    let rpc = ProviderBuilder::new().connect_http(stack.anvil.rpc_url().parse()?);

    // `anvil_reorg` replaces the mint's block (the head) with an empty one; `anvil_rollback` takes it
    // away and leaves the chain one block shorter.
    for (seed, loss) in [(31u64, "anvil_reorg"), (32, "anvil_rollback")] {
        let signed = stack.signed_request("a lighthouse the chain forgot", seed, 8);
        let (status, job) = stack.submit(&signed).await?;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        let first = stack.wait_for(&id, |s| s == "confirming", WAIT).await?;
        assert_eq!(
            (&first["confirmations"], &first["confirmations_needed"]),
            (&1.into(), &3.into()),
            "{first}"
        );
        assert_eq!(first["mint_block"], rpc.get_block_number().await?, "the mint is the head block");
        assert_eq!(first["resends"], Value::Null);

        let params = if loss == "anvil_reorg" { serde_json::json!([1, []]) } else { serde_json::json!([1]) };
        let lost = std::time::Instant::now();
        rpc.raw_request::<_, Value>(loss.into(), params).await?;
        let resent =
            stack.wait_for_job(&id, |job| job["resends"] == 1 && job["state"] == "confirming", WAIT).await?;
        // Sent again with the same nonce, calldata and fees, it may well have the same hash; it is
        // in a new block.
        assert_ne!(resent["mint_block_hash"], first["mint_block_hash"], "mined again");
        assert_eq!(resent["confirmations"], 1, "{resent}");
        eprintln!("{loss}: the mint was sent again and mined within {:?}", lost.elapsed());

        rpc.raw_request::<_, Value>("anvil_mine".into(), (1u64,)).await?;
        let second = stack.wait_for_job(&id, |job| job["confirmations"] == 2, WAIT).await?;
        assert_eq!(second["state"], "confirming");
        rpc.raw_request::<_, Value>("anvil_mine".into(), (1u64,)).await?;
        let minted = stack.wait_for(&id, |s| s == "minted", WAIT).await?;
        assert_eq!((&minted["confirmations"], &minted["resends"]), (&3.into(), &1.into()), "{minted}");

        let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
        assert_eq!(stack.contract_reader().ownerOf(token_id).call().await?, stack.creator.address());
        assert_eq!(stack.minted_events(token_id).await?, 1, "minted exactly once");
        assert_eq!(minted["tx_hash"], resent["tx_hash"]);
    }
    Ok(())
}
