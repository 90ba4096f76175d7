//! `genmint contracts deploy` against a real anvil: the contract it deploys works, and the record
//! it writes names it, its block and transaction, the owner, and the ABI and compiler it came from.

use alloy::primitives::{Address, B256, keccak256};
use genmint_node::chain::{ARTIFACT_JSON, ChainClient};
use genmint_node::devnet::anvil::{Anvil, DevAccount};
use serde_json::Value;
use tokio::process::Command;

use crate::support::genmint_bin;

async fn deploy(anvil: &Anvil, out: &std::path::Path, extra: &[&str]) -> anyhow::Result<(bool, String)> {
    let key = format!("0x{}", hex::encode(DevAccount::NodeOperator.key().to_bytes()));
    let output = Command::new(genmint_bin())
        .args(["contracts", "deploy", "--rpc-url", anvil.rpc_url(), "--out"])
        .arg(out)
        .args(extra)
        .env("GENMINT_OPERATOR_KEY", key)
        .output()
        .await?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_writes_a_record_of_a_working_contract() -> anyhow::Result<()> {
    let anvil = Anvil::start().await?;
    let dir = tempfile::tempdir()?;
    let owner = DevAccount::Owner.key().address();
    let (ok, output) =
        deploy(&anvil, dir.path(), &["--owner", &owner.to_string(), "--royalty-bps", "250"]).await?;
    assert!(ok, "deploy failed:\n{output}");

    let record: Value = serde_json::from_slice(&std::fs::read(dir.path().join("31337.json"))?)?;
    assert_eq!(record["chainId"], 31337);
    let address: Address = record["address"].as_str().unwrap().parse()?;
    assert_eq!(record["owner"].as_str().unwrap().parse::<Address>()?, owner);
    assert_eq!(
        record["deployer"].as_str().unwrap().parse::<Address>()?,
        DevAccount::NodeOperator.key().address()
    );
    assert_eq!(record["royaltyBps"], 250);
    assert!(record["blockNumber"].as_u64().unwrap() > 0);
    assert!(record["timestamp"].as_u64().unwrap() > 0);
    record["transactionHash"].as_str().unwrap().parse::<B256>()?;
    let artifact: Value = serde_json::from_str(ARTIFACT_JSON)?;
    assert_eq!(
        record["abiHash"].as_str().unwrap(),
        keccak256(serde_json::to_vec(&artifact["abi"])?).to_string()
    );
    assert!(record["compiler"]["version"].as_str().unwrap().starts_with("0.8.30"), "{record}");

    // The recorded contract is GenmintNFT, owned as asked: the owner can register a node.
    let admin = ChainClient::connect(anvil.rpc_url(), DevAccount::Owner.key(), address).await?;
    admin.register_node(DevAccount::NodeOperator.key().address()).await?;
    assert!(admin.is_node(DevAccount::NodeOperator.key().address()).await?);

    // A second deployment does not silently replace the record.
    let (ok, output) = deploy(&anvil, dir.path(), &[]).await?;
    assert!(!ok && output.contains("--force"), "{output}");
    let (ok, output) = deploy(&anvil, dir.path(), &["--force"]).await?;
    assert!(ok, "{output}");
    let replaced: Value = serde_json::from_slice(&std::fs::read(dir.path().join("31337.json"))?)?;
    assert_ne!(replaced["address"], record["address"]);
    anvil.stop().await?;
    Ok(())
}
