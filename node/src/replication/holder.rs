//! The holder's side: a peer asks this node to pin a token's content. Only a token the chain
//! records, with the chain's CIDs exactly, within this node's budget, fetched through its own Kubo
//! from the Kubos the request names (every byte hashed to its CID here before it is pinned); the
//! answer is a signed receipt or a refusal with a reason.

use alloy::primitives::U256;
use futures_util::StreamExt;
use genmint_p2p::pin::{PIN_RECEIPT_VERSION, PinReceipt, PinRequest};
use genmint_p2p::wire::JobResponse;
use genmint_p2p::{PeerId, Responder};
use tokio::sync::mpsc;

use super::receipt::{covers, sign, verify};
use super::{PinAnswer, ReplicationParts, now};
use crate::ipfs::{ContentStore, IpfsError, SwarmPeers};
use crate::verify::{FetchError, MAX_IMAGE_BYTES, MAX_METADATA_BYTES, fetch_checked};

/// Pin requests a node works on at once; more wait in the network's queue.
const CONCURRENT_PINS: usize = 4;

/// A peer's pin request, waiting for this node's answer.
#[derive(Debug)]
pub struct InboundPin {
    pub peer: PeerId,
    pub request: PinRequest,
    pub responder: Responder,
}

fn refuse(code: &str, message: impl Into<String>) -> PinAnswer {
    PinAnswer::Refused { code: code.to_owned(), message: message.into() }
}

/// Answers peers' pin requests, a few at a time, until the network stops.
pub async fn serve_holder<S>(
    parts: std::sync::Arc<ReplicationParts<S>>,
    mut inbox: mpsc::Receiver<InboundPin>,
) where
    S: ContentStore + SwarmPeers + Send + Sync + 'static,
{
    futures_util::stream::poll_fn(|cx| inbox.poll_recv(cx))
        .for_each_concurrent(CONCURRENT_PINS, |InboundPin { peer, request, responder }| {
            let parts = parts.clone();
            async move {
                let token_id = request.token_id.clone();
                let answer = hold(&parts, request).await;
                let outcome = match &answer {
                    PinAnswer::Pinned(_) => "pinned",
                    PinAnswer::Refused { code, .. } => code.as_str(),
                };
                parts.metrics.pin_request("held", outcome);
                tracing::info!(%peer, token = %token_id, outcome, "pin request from a peer");
                responder.respond(match answer {
                    PinAnswer::Pinned(receipt) => JobResponse::Pinned(receipt),
                    PinAnswer::Refused { code, message } => {
                        JobResponse::Rejected { job_id: token_id, code, message }
                    }
                });
            }
        })
        .await;
}

/// One pin request's answer.
pub async fn hold<S: ContentStore + SwarmPeers + Sync>(
    parts: &ReplicationParts<S>,
    request: PinRequest,
) -> PinAnswer {
    if !parts.config.hold_for_peers {
        return refuse(
            "disabled",
            "this node does not pin other nodes' tokens ([replication] hold_for_peers)",
        );
    }
    if let Err(e) = request.validate_shape() {
        return refuse("bad_request", e);
    }
    let token = match crate::verify::parse_token_id(&request.token_id) {
        Ok(token) => token,
        Err(e) => return refuse("bad_request", e),
    };
    match parts.chain.token_cids(token).await {
        Ok(Some((image, metadata))) if image == request.image_cid && metadata == request.metadata_cid => {}
        Ok(Some((image, metadata))) => {
            return refuse(
                "wrong_cids",
                format!(
                    "the chain records image {image} and metadata {metadata} for this token, not the CIDs asked"
                ),
            );
        }
        Ok(None) => {
            return refuse("not_minted", format!("token {} is not on the contract (yet)", request.token_id));
        }
        Err(e) => return refuse("unavailable", format!("the chain cannot be read here now: {e}")),
    }
    keep_shared_receipts(parts, token, &request).await;
    if let Some(receipt) = held_already(parts, token, &request).await {
        return PinAnswer::Pinned(receipt);
    }
    match tokio::time::timeout(parts.hold_timeout, pin(parts, token, &request)).await {
        Ok(answer) => answer,
        Err(_) => refuse(
            "unavailable",
            format!(
                "the content was not fetched within {:?}; ask again (the fetch goes on from where it got)",
                parts.hold_timeout
            ),
        ),
    }
}

/// This node's receipt, when it holds the token's content pinned already.
async fn held_already<S: ContentStore + Sync>(
    parts: &ReplicationParts<S>,
    token: U256,
    request: &PinRequest,
) -> Option<PinReceipt> {
    let me = format!("{:#x}", parts.operator.address());
    let receipts = parts.store.receipts(token).await.ok()?;
    let ours = receipts.into_iter().find(|r| r.holder.eq_ignore_ascii_case(&me))?;
    for cid in [&request.image_cid, &request.metadata_cid] {
        let cid = cid.parse().ok()?;
        if !parts.content.is_pinned(&cid).await.ok()? {
            return None;
        }
    }
    Some(ours)
}

/// Fetches both files through this node's Kubo, pins them, and signs the receipt.
async fn pin<S: ContentStore + SwarmPeers + Sync>(
    parts: &ReplicationParts<S>,
    token: U256,
    request: &PinRequest,
) -> PinAnswer {
    let identity = match parts.content.identity().await {
        Ok(identity) => identity,
        Err(e) => return refuse("unavailable", format!("this node's Kubo does not answer: {e}")),
    };
    let own = format!("/p2p/{}", identity.peer_id);
    if request.providers.iter().any(|a| a.ends_with(&own)) {
        return refuse("same_kubo", "the asking node uses this node's Kubo: that is no second copy");
    }
    let me = parts.operator.address();
    let used = match parts.store.bytes_held_by(me).await {
        Ok(used) => used,
        Err(e) => return refuse("unavailable", e.to_string()),
    };
    let remaining = usize::try_from(parts.config.max_pinned_bytes.saturating_sub(used)).unwrap_or(usize::MAX);
    if remaining == 0 {
        return refuse(
            "over_budget",
            format!("this node already pins {used} bytes for others, its [replication] max_pinned_bytes"),
        );
    }
    if let Err(e) = parts.content.connect(&request.providers).await {
        tracing::debug!(error = %e, "none of the providers' Kubos answered; the content may still be found");
    }
    let over_budget = || {
        refuse(
            "over_budget",
            format!("the content does not fit the {remaining} bytes left of [replication] max_pinned_bytes"),
        )
    };
    let fetch = |cid: String, cap: usize, limit: usize| async move {
        fetch_checked(&parts.content, &cid, cap.min(limit)).await.map_err(|e| match e {
            FetchError::Ipfs(IpfsError::TooLarge { .. }) if cap < limit => None,
            other => Some(other.to_string()),
        })
    };
    let metadata = match fetch(request.metadata_cid.clone(), remaining, MAX_METADATA_BYTES).await {
        Ok(bytes) => bytes,
        Err(None) => return over_budget(),
        Err(Some(e)) => return refuse("unavailable", format!("the metadata could not be fetched: {e}")),
    };
    let image = match fetch(request.image_cid.clone(), remaining - metadata.len(), MAX_IMAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(None) => return over_budget(),
        Err(Some(e)) => return refuse("unavailable", format!("the image could not be fetched: {e}")),
    };
    let bytes = (metadata.len() + image.len()) as u64;
    for file in [metadata, image] {
        if let Err(e) = parts.content.add_and_pin(file).await {
            return refuse("unavailable", format!("this node's Kubo did not pin the content: {e}"));
        }
    }
    let mut receipt = PinReceipt {
        version: PIN_RECEIPT_VERSION,
        token_id: request.token_id.to_lowercase(),
        image_cid: request.image_cid.clone(),
        metadata_cid: request.metadata_cid.clone(),
        holder: String::new(),
        holder_peer_id: parts.network.local_peer_id(),
        kubo_peer_id: identity.peer_id,
        kubo_addresses: identity.addresses,
        bytes,
        pinned_at: now(),
        signature: String::new(),
    };
    if let Err(e) = sign(&parts.operator, &mut receipt, parts.chain_id, parts.contract) {
        return refuse("unavailable", format!("signing the receipt: {e}"));
    }
    if let Err(e) = parts.store.record(token, me, receipt.clone()).await {
        return refuse("unavailable", e.to_string());
    }
    if let Ok(held) = parts.store.bytes_held_by(me).await {
        parts.metrics.set_held_bytes(i64::try_from(held).unwrap_or(i64::MAX));
    }
    PinAnswer::Pinned(receipt)
}

/// Keeps the other holders' receipts the request carries: signed by a registered holder, for
/// this token's content.
async fn keep_shared_receipts<S>(parts: &ReplicationParts<S>, token: U256, request: &PinRequest) {
    for receipt in &request.receipts {
        let Ok(holder) = verify(receipt, parts.chain_id, parts.contract) else { continue };
        if holder == parts.operator.address()
            || !covers(receipt, &request.token_id, &request.image_cid, &request.metadata_cid)
            || !parts.network.is_registered(holder).await
        {
            continue;
        }
        if let Err(e) = parts.store.record(token, holder, receipt.clone()).await {
            tracing::debug!(error = %e, "a shared receipt was not kept");
        }
    }
}
