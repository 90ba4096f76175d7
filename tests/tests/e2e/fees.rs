//! Gas on a real anvil through a `genmint node`: a job waits while the chain's base fee
//! (`anvil_setNextBlockBaseFeePerGas`) is above the configured ceiling and mints once it is under;
//! with automine off, a mint stuck in the mempool is re-priced (same nonce, fees raised) and minted
//! once a block comes.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use genmint_node::config::Config;
use serde_json::{Value, json};

use crate::support::Stack;

const GWEI: u64 = 1_000_000_000;
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_job_waits_while_gas_is_over_the_ceiling_and_a_stuck_mint_is_re_priced() -> anyhow::Result<()> {
    let mut stack = Stack::start().await?;
    let mut config = Config::load(&stack.node_dir())?;
    config.chain.max_fee_per_gas_wei = Some(10 * GWEI);
    config.chain.receipt_timeout_secs = 2;
    config.save(&stack.node_dir())?;
    stack.start_node().await?;
    let rpc = ProviderBuilder::new().connect_http(stack.anvil.rpc_url().parse()?);
    let base_fee = |wei: u64| {
        let rpc = rpc.clone();
        async move {
            rpc.raw_request::<_, Value>(
                "anvil_setNextBlockBaseFeePerGas".into(),
                json!([format!("{wei:#x}")]),
            )
            .await?;
            rpc.raw_request::<_, Value>("evm_mine".into(), json!([])).await
        }
    };

    base_fee(50 * GWEI).await?;
    let (_, job) = stack.submit(&stack.signed_request("too dear to mint", 61, 8)).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, |s| s == "pinned", WAIT).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = stack.job(&id).await?;
    assert_eq!(waiting["state"], "pinned", "nothing sent above the ceiling: {waiting}");
    assert!(stack.node_log().contains("dearer than the node's ceiling"), "{}", stack.node_log());
    base_fee(GWEI).await?;
    let minted = stack.wait_for(&id, |s| s == "minted", WAIT).await?;
    let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
    assert_eq!(stack.minted_events(token_id).await?, 1);
    let sent = rpc.get_transaction_by_hash(minted["tx_hash"].as_str().unwrap().parse()?).await?.unwrap();
    assert!(alloy::consensus::Transaction::max_fee_per_gas(&sent) <= u128::from(10 * GWEI), "{sent:?}");

    rpc.raw_request::<_, Value>("evm_setAutomine".into(), json!([false])).await?;
    let (_, job) = stack.submit(&stack.signed_request("stuck in the mempool", 62, 8)).await?;
    let id = job["id"].as_str().unwrap().to_owned();
    let first = stack.wait_for(&id, |s| s == "minting", WAIT).await?;
    let fee = |job: &Value| {
        let rpc = rpc.clone();
        let hash: B256 = job["tx_hash"].as_str().unwrap().parse().unwrap();
        async move {
            let tx = rpc.get_transaction_by_hash(hash).await?.expect("the transaction is pending");
            anyhow::Ok(alloy::consensus::Transaction::max_fee_per_gas(&tx))
        }
    };
    // Read before the first receipt wait (2 s) ends and the mint is re-priced.
    let old_fee = fee(&first).await?;
    let repriced = stack
        .wait_for_job(&id, |job| job["state"] == "minting" && job["tx_hash"] != first["tx_hash"], WAIT)
        .await?;
    let new_fee = fee(&repriced).await?;
    assert!(new_fee * 100 >= old_fee * 110, "re-priced by 10 % at least: {old_fee} -> {new_fee}");
    eprintln!("stuck mint re-priced from {old_fee} to {new_fee} wei per gas");
    rpc.raw_request::<_, Value>("evm_mine".into(), json!([])).await?;
    let minted = stack.wait_for(&id, |s| s == "minted", WAIT).await?;
    let token_id = U256::from_be_bytes(id.parse::<B256>()?.0);
    assert_eq!(stack.minted_events(token_id).await?, 1, "minted once");
    assert!(minted["resends"].is_null(), "re-priced, never sent as a second mint: {minted}");
    assert_eq!(minted["tx_hash"], repriced["tx_hash"], "the re-priced transaction minted it");
    Ok(())
}
