//! Peers' spot checks, after the network checked their signature and publisher: the checker must
//! be a registered node and the chain must agree on the token (minted by the named node, with the
//! named pixel digest). Sound checks are kept and gossip forwards them; others are rejected.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use genmint_p2p::spot_check::{ReceivedSpotCheck, SpotCheck, Verdict};
use tokio::sync::mpsc;

use crate::jobs::pipeline::Pipeline;
use crate::network::Network;
use crate::verify::parse_token_id;

/// Received checks waiting for their verdict; past this the network's copy is left unjudged.
pub const RECEIVED_QUEUE: usize = 64;

/// Judges, keeps and logs peers' checks until the channel closes.
pub async fn receive(
    network: Arc<Network>,
    pipeline: Arc<Pipeline>,
    mut checks: mpsc::Receiver<Box<ReceivedSpotCheck>>,
) {
    while let Some(received) = checks.recv().await {
        let ReceivedSpotCheck { check, publisher, ticket } = *received;
        let verdict = match judge(&network, &pipeline, &check).await {
            Ok(()) => match pipeline.store().record_spot_check(&check) {
                Ok(_) => {
                    super::log(&check, "a peer");
                    Verdict::Accept
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a peer's spot check");
                    Verdict::Ignore
                }
            },
            Err((verdict, reason)) => {
                tracing::debug!(%publisher, token = %check.token_id, reason, ?verdict, "peer's spot check refused");
                verdict
            }
        };
        if network.handle().judge_spot_check(ticket, verdict).await.is_err() {
            return;
        }
    }
}

async fn judge(network: &Network, pipeline: &Pipeline, check: &SpotCheck) -> Result<(), (Verdict, String)> {
    let reject = |reason: String| (Verdict::Reject, reason);
    let not_now = |e: crate::chain::ChainError| (Verdict::Ignore, e.to_string());
    // The network checked the shape: these parse.
    let checker: Address = check.checker.parse().map_err(|e| reject(format!("checker: {e}")))?;
    let minted_by: Address = check.minted_by.parse().map_err(|e| reject(format!("minted_by: {e}")))?;
    let expected: B256 =
        check.expected_pixel_digest.parse().map_err(|e| reject(format!("expected_pixel_digest: {e}")))?;
    let token = parse_token_id(&check.token_id).map_err(reject)?;
    if !network.is_registered(checker).await {
        return Err(reject(format!("the checker {checker} is not a registered node")));
    }
    let chain = pipeline.chain();
    let record =
        chain.provenance(token).await.map_err(not_now)?.ok_or_else(|| reject("no such token".into()))?;
    if record.node != minted_by {
        return Err(reject(format!("the token was minted by {}, not {minted_by}", record.node)));
    }
    let event =
        chain.minted_event(token).await.map_err(not_now)?.ok_or_else(|| reject("no mint event".into()))?;
    if event.pixel_digest != expected {
        return Err(reject(format!("the mint attested pixels {}, not {expected}", event.pixel_digest)));
    }
    Ok(())
}
