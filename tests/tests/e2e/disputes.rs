//! A forged token disputed on chain, end to end on anvil and Kubo: node A, which joined by stake,
//! mints a token whose attested pixel digest it never derived (signed with its operator key straight
//! to the chain); node B's spot check finds the mismatch and `genmint dispute` opens a dispute with
//! it; node C re-checks the disputed token and votes its own digest automatically, and an operator
//! that joins by stake votes the digest B re-derived from the command line (standing in for its own
//! re-check); the chain's clock passes the window; `genmint dispute --resolve` slashes A, which is
//! no longer a node, and marks the token (ERC-7007 `Update`, ERC-4906 `MetadataUpdate`); A's
//! provenance report says fraud confirmed. Prints the gas of each step.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{B256, U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, ensure};
use genmint_node::chain::ChainClient;
use genmint_node::config::OPERATOR_KEY_FILE;
use genmint_node::devnet::anvil::DevAccount;
use serde_json::Value;

use crate::spot_checks::{mint_forged, peer_check, stack_with_node_a, start_checker};
use crate::support::Stack;

/// Sends 1 ETH from anvil's owner account to `to`.
async fn fund(stack: &Stack, to: alloy::primitives::Address) -> Result<()> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(DevAccount::Owner.key()))
        .connect_http(stack.anvil.rpc_url().parse()?);
    let tx = TransactionRequest::default().with_to(to).with_value(U256::from(10u128.pow(18)));
    provider.send_transaction(tx).await?.get_receipt().await?;
    Ok(())
}

/// A data dir holding a new, funded operator key.
async fn funded_operator(stack: &Stack, dir: &Path) -> Result<PrivateKeySigner> {
    std::fs::create_dir_all(dir)?;
    let operator = PrivateKeySigner::random();
    std::fs::write(dir.join(OPERATOR_KEY_FILE), format!("0x{}\n", hex::encode(operator.to_bytes())))?;
    fund(stack, operator.address()).await?;
    Ok(operator)
}

async fn cli(stack: &Stack, dir: &Path, args: &[&str]) -> Result<String> {
    let (ok, text) = stack.genmint_in(dir, args).await?;
    ensure!(ok, "genmint {args:?} failed:\n{text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_token_is_disputed_the_forger_slashed_and_the_token_marked() -> Result<()> {
    let (stack, bootstrap) = stack_with_node_a().await?;
    let a_dir = stack.node_dir();
    let staked = cli(&stack, &a_dir, &["stake"]).await?;
    ensure!(staked.contains("100000000000000000 wei staked"), "{staked}");
    let b_dir = stack.dir.path().join("checker");
    let (_b_url, checker, _b_node) = start_checker(&stack, &b_dir, &bootstrap).await?;
    fund(&stack, checker.address()).await?;

    let (honest, _) = stack.mint_one("a lighthouse at dusk", 42).await?;
    let forged = mint_forged(&stack, &honest, 43, B256::repeat_byte(0x5a)).await?.to_string();
    let report = peer_check(&stack, &forged, &checker, &b_dir.join("node.log")).await?;
    let check = report["peerChecks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["checker"] == checker.address().to_string()))
        .context("no check by B")?;
    ensure!(check["outcome"] == "mismatch", "{report}");
    let rechecked = check["regeneratedPixelDigest"].as_str().context("no digest")?.to_owned();

    // B disputes with its own signed spot check (read from A's provenance report).
    let opened = cli(&stack, &b_dir, &["dispute", &forged]).await?;
    ensure!(opened.contains("dispute open"), "{opened}");
    // Node C re-checks the disputed token first and votes its digest on its own.
    let c_dir = stack.dir.path().join("recheck");
    let (_c_url, c_operator, _c_node) = start_checker(&stack, &c_dir, &bootstrap).await?;
    fund(&stack, c_operator.address()).await?;
    let reader = ChainClient::connect_read_only(stack.anvil.rpc_url(), stack.contract).await?;
    let token_id = U256::from_be_bytes(forged.parse::<B256>()?.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.dispute_of(token_id).await?.confirmations < 1 {
        ensure!(
            Instant::now() < deadline,
            "node C did not vote:\n{}",
            std::fs::read_to_string(c_dir.join("node.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // An operator that joins by stake votes from the command line.
    let voter_dir = stack.dir.path().join("voter");
    funded_operator(&stack, &voter_dir).await?;
    cli(&stack, &voter_dir, &["stake"]).await?;
    let voted = cli(&stack, &voter_dir, &["dispute", &forged, "--vote", "--digest", &rechecked]).await?;
    ensure!(voted.contains("2 confirm a forgery"), "{voted}");
    let early = stack.genmint_in(&b_dir, &["dispute", &forged, "--resolve"]).await?;
    ensure!(!early.0 && early.1.contains("takes votes until"), "resolved inside the window: {}", early.1);

    let rpc = stack.anvil.rpc_url().parse()?;
    let provider = ProviderBuilder::new().connect_http(rpc);
    provider.raw_request::<_, Value>("evm_increaseTime".into(), (2 * 24 * 3600,)).await?;
    provider.raw_request::<_, Value>("evm_mine".into(), ()).await?;
    let resolved = cli(&stack, &b_dir, &["dispute", &forged, "--resolve"]).await?;
    ensure!(resolved.contains("dispute fraud_confirmed"), "{resolved}");

    let status = cli(&stack, &a_dir, &["stake", "--status"]).await?;
    ensure!(
        status.contains(": 0 wei staked") && status.contains("node: false") && status.contains("barred"),
        "{status}"
    );
    let report: Value =
        reqwest::get(format!("{}/v1/tokens/{forged}/provenance", stack.node_url)).await?.json().await?;
    let dispute = report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "dispute"))
        .context("no dispute check")?;
    ensure!(dispute["ok"] == false && report["ok"] == false, "{report}");
    ensure!(report["dispute"]["status"] == "fraud_confirmed", "{report}");
    let challenger =
        report["dispute"]["challenger"].as_str().unwrap_or_default().parse::<alloy::primitives::Address>();
    ensure!(
        report["dispute"]["confirmations"] == 2 && challenger.ok() == Some(checker.address()),
        "{report}"
    );
    ensure!(
        dispute["detail"].as_str().unwrap_or_default().starts_with("fraud confirmed on chain"),
        "{dispute}"
    );
    let (verified, text) = stack.genmint(&["verify", &forged]).await?;
    ensure!(!verified && text.contains("fraud confirmed on chain"), "{text}");

    // The token is marked, and every step's gas, from the receipts of the contract's events.
    let named = [
        ("Staked(address,uint256,uint256)", "stake (join as a node)"),
        ("DisputeOpened(uint256,address,address,bytes32,bytes32,bytes32,uint64)", "openDispute"),
        ("DisputeVoted(uint256,address,bytes32,uint8)", "vote"),
        ("DisputeResolved(uint256,uint8,uint16,uint16)", "resolveDispute (slash and mark)"),
    ];
    let logs = provider.get_logs(&Filter::new().address(stack.contract).from_block(0)).await?;
    for (signature, step) in named {
        let topic = keccak256(signature);
        for log in logs.iter().filter(|l| l.topics().first() == Some(&topic)) {
            let hash = log.transaction_hash.context("log without transaction")?;
            let receipt = provider.get_transaction_receipt(hash).await?.context("no receipt")?;
            println!("gas: {step}: {}", receipt.gas_used);
        }
    }
    let resolve_tx = logs
        .iter()
        .find(|l| l.topics().first() == Some(&keccak256(named[3].0)))
        .and_then(|l| l.transaction_hash)
        .context("no DisputeResolved")?;
    let token_topic = B256::from(U256::from_be_bytes(forged.parse::<B256>()?.0));
    let marks: Vec<_> = logs.iter().filter(|l| l.transaction_hash == Some(resolve_tx)).collect();
    let update = keccak256("Update(uint256,bytes,bytes)");
    ensure!(
        marks.iter().any(|l| l.topics().first() == Some(&update) && l.topics().get(1) == Some(&token_topic)),
        "no ERC-7007 Update for the token"
    );
    let metadata_update = keccak256("MetadataUpdate(uint256)");
    ensure!(
        marks.iter().any(|l| l.topics().first() == Some(&metadata_update)
            && l.data().data.as_ref() == token_topic.as_slice()),
        "no ERC-4906 MetadataUpdate for the token"
    );
    Ok(())
}
