//! Where a token's content is held, as the provenance endpoint, `GET /v1/tokens/{id}/holders` and
//! `genmint verify` show it: each holder's receipt with its signature checked here, and whether
//! the asking node's own Kubo holds the content pinned right now.

use alloy::primitives::{Address, U256};
use genmint_p2p::pin::PinReceipt;
use serde::Serialize;

use super::receipt::{covers, verify};
use super::store::ReplicationStore;
use crate::ipfs::{ContentStore, RemotePins};
use crate::provenance::ids::JobId;

/// One holder of the token's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderView {
    /// The holder's operator address.
    pub holder: String,
    pub holder_peer_id: String,
    pub kubo_peer_id: String,
    pub kubo_addresses: Vec<String>,
    pub bytes: u64,
    pub pinned_at: u64,
    /// Whether the receipt is signed by the holder it names, for this deployment and the token's
    /// CIDs as the chain records them.
    pub receipt_ok: bool,
    /// Why it is not, when it is not.
    pub receipt_error: Option<String>,
    /// The signed receipt as the holder sent it.
    pub receipt: PinReceipt,
}

/// Where a token's content is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentHolders {
    pub held_by: Vec<HolderView>,
    /// Holders whose receipt checks out.
    pub copies: usize,
    /// Whether this node's Kubo has the image and metadata pinned now (`None`: it did not answer).
    pub held_here: Option<bool>,
    /// What each remote pinning service this node uses says of the two files, asked now.
    pub remote_pins: Vec<RemotePinView>,
    pub summary: String,
}

/// One file on one remote pinning service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemotePinView {
    pub service: String,
    pub cid: String,
    /// `queued`, `pinning`, `pinned`, `failed`, `unknown` (the service knows no such pin) or
    /// `unreadable` (it could not be asked).
    pub status: String,
}

/// Checks each receipt against the deployment and the token's CIDs.
pub fn views(
    receipts: Vec<PinReceipt>,
    chain_id: u64,
    contract: Address,
    token: U256,
    cids: Option<(&str, &str)>,
) -> Vec<HolderView> {
    let token_id = JobId::of_token(token).to_string();
    receipts
        .into_iter()
        .map(|receipt| {
            let checked = verify(&receipt, chain_id, contract).and_then(|_| match cids {
                Some((image, metadata)) if !covers(&receipt, &token_id, image, metadata) => {
                    Err("the receipt names other CIDs than the chain records".to_owned())
                }
                _ => Ok(()),
            });
            HolderView {
                holder: receipt.holder.clone(),
                holder_peer_id: receipt.holder_peer_id.clone(),
                kubo_peer_id: receipt.kubo_peer_id.clone(),
                kubo_addresses: receipt.kubo_addresses.clone(),
                bytes: receipt.bytes,
                pinned_at: receipt.pinned_at,
                receipt_ok: checked.is_ok(),
                receipt_error: checked.err(),
                receipt,
            }
        })
        .collect()
}

impl ContentHolders {
    pub fn new(held_by: Vec<HolderView>, held_here: Option<bool>) -> Self {
        let copies = held_by.iter().filter(|h| h.receipt_ok).count();
        let nodes = |n: usize| if n == 1 { "1 node".to_owned() } else { format!("{n} nodes") };
        let mut summary = match copies {
            0 => "no other node has a signed receipt for this token's content".to_owned(),
            n => format!("pinned by {} with signed receipts", nodes(n)),
        };
        let bad = held_by.len() - copies;
        if bad > 0 {
            summary.push_str(&format!("; {} with a receipt that does not check out", nodes(bad)));
        }
        match held_here {
            Some(true) => summary.push_str("; this node's Kubo holds it pinned"),
            Some(false) => summary.push_str("; this node's Kubo does not hold it pinned"),
            None => summary.push_str("; this node's Kubo did not answer"),
        }
        Self { held_by, copies, held_here, remote_pins: Vec::new(), summary }
    }
}

/// The holders this node knows of for `token`, whether its Kubo holds the content, and what the
/// remote pinning `services` say of it.
pub async fn holders_of(
    store: &ReplicationStore,
    content: &(impl ContentStore + RemotePins),
    services: &[String],
    (chain_id, contract): (u64, Address),
    token: U256,
    cids: Option<(&str, &str)>,
) -> Result<ContentHolders, super::ReplicationStoreError> {
    let receipts = store.receipts(token).await?;
    let held_here = match cids {
        Some((image, metadata)) => pinned_here(content, image, metadata).await,
        None => None,
    };
    let mut holders = ContentHolders::new(views(receipts, chain_id, contract, token, cids), held_here);
    if let Some((image, metadata)) = cids {
        for service in services {
            for cid in [image, metadata] {
                let status = match cid.parse() {
                    Ok(parsed) => match content.remote_status(service, &parsed).await {
                        Ok(pins) => pins.into_iter().next().map_or("unknown".to_owned(), |p| p.status),
                        Err(_) => "unreadable".to_owned(),
                    },
                    Err(_) => "unreadable".to_owned(),
                };
                holders.remote_pins.push(RemotePinView {
                    service: service.clone(),
                    cid: cid.to_owned(),
                    status,
                });
            }
        }
    }
    if !holders.remote_pins.is_empty() {
        let pinned = holders.remote_pins.iter().filter(|p| p.status == "pinned").count();
        holders.summary.push_str(&format!("; {pinned} of {} remote pins pinned", holders.remote_pins.len()));
    }
    Ok(holders)
}

/// Whether `content` has both files pinned (`None`: it did not answer).
pub async fn pinned_here(content: &impl ContentStore, image: &str, metadata: &str) -> Option<bool> {
    for cid in [image, metadata] {
        let Ok(cid) = cid.parse() else { return Some(false) };
        if !content.is_pinned(&cid).await.ok()? {
            return Some(false);
        }
    }
    Some(true)
}
