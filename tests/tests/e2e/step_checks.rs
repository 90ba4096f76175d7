//! Step checks end to end: node A mints a token and pins its latent trace beside the image, the
//! metadata naming the trace's CID and Merkle root; node B, spot-checking with `method = "steps"`
//! (every one of the 8 steps here, so the outcome does not depend on the draw), replays the trace
//! and A's provenance report shows B's signed `match` with the steps. Then a token minted straight
//! to the chain for another seed whose metadata reuses the first token's image and trace with
//! entry 0 swapped for the new seed's noise, so both ends of the trace check out: replaying step 0
//! shows it, a `mismatch` naming `step 0`. `genmint verify --steps K` agrees on both.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use anyhow::{Context, Result};
use genmint_model_runtime::noise;
use genmint_model_runtime::trace::LatentTrace;
use genmint_node::config::SpotCheckMethod;
use genmint_node::ipfs::{ContentStore, KuboClient};
use serde_json::Value;

use crate::spot_checks::{mint_forged_with, peer_check, stack_with_node_a, start_checker_with};

#[tokio::test(flavor = "multi_thread")]
async fn a_steps_checker_passes_an_honest_trace_and_catches_a_tampered_one() -> Result<()> {
    let (stack, bootstrap) = stack_with_node_a().await?;
    let checker_dir = stack.dir.path().join("checker");
    let (_url, checker, _node) = start_checker_with(&stack, &checker_dir, &bootstrap, |config| {
        config.spot_checks.method = SpotCheckMethod::Steps;
        config.spot_checks.steps = 8;
    })
    .await?;
    let checker_log = checker_dir.join("node.log");

    let (_, job) = stack.submit(&stack.signed_request("a lighthouse at dusk", 42, 8)).await?;
    let id = job["id"].as_str().context("no job id")?.to_owned();
    stack.wait_for(&id, |state| state == "minted", Duration::from_secs(60)).await?;
    let token = U256::from_be_bytes(id.parse::<B256>()?.0);
    let attested = stack.minted_output(token).await?.pixel_digest;
    // The metadata names the pinned trace, whose file gives the root it records.
    let record = stack.contract_reader().provenance(token).call().await?;
    let metadata: Value = serde_json::from_slice(&stack.ipfs_cat(&record.metadataCid).await?)?;
    let latent = &metadata["provenance"]["latentTrace"];
    assert_eq!(
        (latent["format"].as_str(), latent["steps"].as_u64()),
        (Some("genmint-latent-trace-v1"), Some(8))
    );
    let trace_bytes = stack.ipfs_cat(latent["cid"].as_str().context("no trace CID")?).await?;
    assert_eq!(latent["bytes"].as_u64(), Some(trace_bytes.len() as u64));
    let (index, trace) = LatentTrace::from_bytes(&trace_bytes)?;
    assert_eq!(latent["merkleRoot"].as_str(), Some(index.root.to_string().as_str()));

    let report = peer_check(&stack, &id, &checker, &checker_log).await?;
    let check = &report["peerChecks"][0];
    assert_eq!(check["outcome"], "match", "{report}");
    assert_eq!(check["regeneratedPixelDigest"], attested.to_string());
    assert_eq!(check["stepCheck"]["steps"], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]), "{check}");
    assert!(check["stepCheck"]["failed"].is_null(), "{check}");
    crate::spot_checks::assert_signed_by(&stack, check, &id, &checker)?;
    // `genmint verify --steps` runs the same check.
    let models = stack.node_dir().join("models");
    let models = models.to_str().context("a models path")?;
    let (ok, output) = stack.genmint(&["verify", &id, "--steps", "3", "--models-dir", models]).await?;
    assert!(ok && output.contains("step_check") && output.contains("the committed trace holds"), "{output}");

    // Seed 43's request with seed 42's picture and trace, entry 0 made seed 43's noise (DDIM
    // carries no state, and starts from the noise as drawn).
    let mut forged = trace.clone();
    forged.entries[0].sample = noise::standard_normal(43, forged.entries[0].sample.len());
    let forged_bytes = forged.to_bytes()?;
    let size = forged_bytes.len();
    let forged_cid = KuboClient::new(stack.kubo.api_url())?.add_and_pin(forged_bytes).await?;
    let root = forged.root().context("no root")?;
    let forged_id = mint_forged_with(&stack, &id, 43, attested, |metadata| {
        metadata["provenance"]["latentTrace"]["cid"] = forged_cid.to_string().into();
        metadata["provenance"]["latentTrace"]["merkleRoot"] = root.to_string().into();
        metadata["provenance"]["latentTrace"]["bytes"] = size.into();
        Ok(())
    })
    .await?
    .to_string();
    let report = peer_check(&stack, &forged_id, &checker, &checker_log).await?;
    let check = &report["peerChecks"][0];
    assert_eq!(check["outcome"], "mismatch", "{report}");
    assert_eq!(check["stepCheck"]["failed"], "step 0", "{check}");
    assert_eq!(report["peerChecksOk"], false, "{report}");
    crate::spot_checks::assert_signed_by(&stack, check, &forged_id, &checker)?;
    let (ok, output) = stack.genmint(&["verify", &forged_id, "--steps", "8", "--models-dir", models]).await?;
    assert!(!ok && output.contains("step 0 replayed does not give entry 1"), "{output}");
    Ok(())
}
