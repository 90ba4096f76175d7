//! The minting node's side: every token minted here is noted (durably) and offered to peers until
//! `[replication] copies` of them have signed receipts for it, round after round with a growing
//! wait between rounds, never holding up the job (it is `minted` before replication starts).
//! Peers are asked in rendezvous-hash order of (token, peer id), so every node would pick the same
//! ones for a token, and a peer that refuses is passed over for the next.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{U256, keccak256};
use genmint_p2p::pin::{MAX_KUBO_ADDRESSES, PinReceipt, PinRequest};
use tokio::sync::broadcast::error::RecvError;

use super::receipt::{covers, verify};
use super::{Candidate, Pending, PinAnswer, ReplicationParts, now};
use crate::ipfs::{Cid, ContentStore, RemotePins, SwarmPeers};
use crate::jobs::events::{Events, JobEvent};
use crate::jobs::{JobRecord, JobRoute, JobState};
use crate::provenance::ids::JobId;

/// How often tokens due for another round are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Tokens taken up in one round.
const ROUND: usize = 16;
/// The wait after the first round that fell short; it doubles each round, up to `max_retry_secs`.
const FIRST_RETRY_SECS: u64 = 2;

/// Asks peers to pin the tokens this node mints.
pub struct Replicator<S> {
    parts: Arc<ReplicationParts<S>>,
}

impl<S: ContentStore + SwarmPeers + RemotePins + Send + Sync + 'static> Replicator<S> {
    pub fn new(parts: Arc<ReplicationParts<S>>) -> Self {
        Self { parts }
    }

    /// Notes each token minted here and works through those short of copies, until the job
    /// events end.
    pub async fn run(self, events: Events) {
        let mut events = events.subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(JobEvent::State(job)) => self.note(&job).await,
                    Ok(_) => {}
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "replication fell behind the job events; a token minted meanwhile is not replicated");
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.round().await,
            }
        }
    }

    /// A job minted here: its token wants copies, and each remote pinning service is asked to pin
    /// its content.
    pub async fn note(&self, job: &JobRecord) {
        if job.state != JobState::Minted || job.route != JobRoute::Local {
            return;
        }
        let (Some(image), Some(metadata)) = (&job.outputs.image_cid, &job.outputs.metadata_cid) else {
            return;
        };
        self.pin_remotely(job.id, image, metadata).await;
        if self.parts.config.copies == 0 {
            return;
        }
        let noted = self
            .parts
            .store
            .want_copies(job.id.token_id(), image.to_string(), metadata.to_string(), now_secs())
            .await;
        if let Err(e) = noted {
            tracing::warn!(job = %job.id, error = %e, "the token's content was not noted for replication");
        }
    }

    /// Asks every configured remote pinning service (through this node's Kubo) to pin both files.
    async fn pin_remotely(&self, id: JobId, image: &Cid, metadata: &Cid) {
        for service in &self.parts.config.remote {
            for (what, cid) in [("image", image), ("metadata", metadata)] {
                let name = format!("genmint {id} {what}");
                let outcome = match self.parts.content.pin_remote(&service.name, cid, &name).await {
                    Ok(pin) => {
                        tracing::info!(token = %id, service = %service.name, %cid, status = %pin.status, "remote pin requested");
                        "requested"
                    }
                    Err(e) => {
                        tracing::warn!(token = %id, service = %service.name, %cid, error = %e, "the remote pinning service was not asked");
                        "error"
                    }
                };
                self.parts.metrics.pin_request("remote", outcome);
            }
        }
    }

    /// One round over the tokens due.
    pub async fn round(&self) {
        let due = match self.parts.store.due(now_secs(), ROUND).await {
            Ok(due) => due,
            Err(e) => return tracing::warn!(error = %e, "replication store unreadable"),
        };
        for pending in due {
            self.replicate(pending).await;
        }
        if let Ok(count) = self.parts.store.pending_count().await {
            self.parts.metrics.set_pending(count);
        }
    }

    /// Asks peers for the copies one token still lacks.
    async fn replicate(&self, pending: Pending) {
        let parts = &self.parts;
        let token_id = JobId::of_token(pending.token).to_string();
        let me = parts.operator.address();
        let mut receipts: Vec<PinReceipt> = match parts.store.receipts(pending.token).await {
            Ok(receipts) => receipts
                .into_iter()
                .filter(|r| covers(r, &token_id, &pending.image_cid, &pending.metadata_cid))
                .filter(|r| !r.holder.eq_ignore_ascii_case(&format!("{me:#x}")))
                .collect(),
            Err(e) => return tracing::warn!(error = %e, "replication store unreadable"),
        };
        let wanted = parts.config.copies;
        let mut providers = match parts.content.identity().await {
            Ok(identity) => identity.addresses,
            Err(e) => {
                tracing::debug!(error = %e, "this node's Kubo does not answer; asking peers to fetch from the other holders");
                Vec::new()
            }
        };
        for receipt in &receipts {
            providers.extend(receipt.kubo_addresses.iter().cloned());
        }
        let mut refusals = Vec::new();
        for candidate in self.ranked(pending.token, &receipts).await {
            if receipts.len() >= wanted {
                break;
            }
            providers.sort();
            providers.dedup();
            providers.truncate(MAX_KUBO_ADDRESSES);
            let request = PinRequest {
                token_id: token_id.clone(),
                image_cid: pending.image_cid.clone(),
                metadata_cid: pending.metadata_cid.clone(),
                providers: providers.clone(),
                receipts: receipts.clone(),
            };
            let (outcome, refusal) = match parts.network.ask_to_pin(&candidate.peer_id, request).await {
                Ok(PinAnswer::Pinned(receipt)) => {
                    match self.accept(pending.token, &token_id, &pending, &candidate, &receipt).await {
                        Ok(()) => {
                            providers.extend(receipt.kubo_addresses.iter().cloned());
                            receipts.push(receipt);
                            ("pinned".to_owned(), None)
                        }
                        Err(e) => (
                            "bad_receipt".to_owned(),
                            Some(format!("{}: its receipt is not valid: {e}", candidate.peer_id)),
                        ),
                    }
                }
                Ok(PinAnswer::Refused { code, message }) => {
                    let refusal = format!("{} refused ({code}): {message}", candidate.peer_id);
                    (code, Some(refusal))
                }
                Err(e) => ("unreachable".to_owned(), Some(format!("{}: {e}", candidate.peer_id))),
            };
            parts.metrics.pin_request("asked", &outcome);
            if let Some(refusal) = refusal {
                tracing::info!(token = %token_id, %refusal, "a peer did not pin the token");
                refusals.push(refusal);
            }
        }
        if receipts.len() >= wanted {
            tracing::info!(token = %token_id, copies = receipts.len(), "the token's content is pinned by enough peers");
            if let Err(e) = parts.store.done(pending.token).await {
                tracing::warn!(error = %e, "replication store not updated");
            }
            self.share(&token_id, &pending, &receipts).await;
            return;
        }
        let wait = FIRST_RETRY_SECS
            .saturating_mul(1u64 << pending.attempts.min(20))
            .min(parts.config.max_retry_secs.max(1));
        let why = if refusals.is_empty() {
            format!("{} of {wanted} copies; no other registered peer to ask", receipts.len())
        } else {
            format!("{} of {wanted} copies; {}", receipts.len(), refusals.join("; "))
        };
        tracing::info!(token = %token_id, retry_in_secs = wait, %why, "the token's content is short of copies");
        let next = now_secs().saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
        if let Err(e) = parts.store.retry_at(pending.token, next, why).await {
            tracing::warn!(error = %e, "replication store not updated");
        }
    }

    /// Registered peers that hold no copy yet, in rendezvous order for `token`.
    async fn ranked(&self, token: U256, receipts: &[PinReceipt]) -> Vec<Candidate> {
        let local = self.parts.network.local_peer_id();
        let me = self.parts.operator.address();
        let mut candidates: Vec<Candidate> = self
            .parts
            .network
            .candidates()
            .await
            .into_iter()
            .filter(|c| c.peer_id != local && c.operator != me)
            .filter(|c| {
                !receipts.iter().any(|r| r.holder.eq_ignore_ascii_case(&format!("{:#x}", c.operator)))
            })
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(rendezvous(token, &c.peer_id)));
        candidates.dedup_by(|a, b| a.operator == b.operator);
        candidates
    }

    /// Checks a peer's receipt (signed by the operator its advert names, for this content) and
    /// keeps it.
    async fn accept(
        &self,
        token: U256,
        token_id: &str,
        pending: &Pending,
        candidate: &Candidate,
        receipt: &PinReceipt,
    ) -> Result<(), String> {
        let parts = &self.parts;
        let holder = verify(receipt, parts.chain_id, parts.contract)?;
        if holder != candidate.operator {
            return Err(format!("signed by {holder}, but the peer's operator is {}", candidate.operator));
        }
        if receipt.holder_peer_id != candidate.peer_id {
            return Err(format!("it names peer {}, not the peer asked", receipt.holder_peer_id));
        }
        if !covers(receipt, token_id, &pending.image_cid, &pending.metadata_cid) {
            return Err("it is for other content".into());
        }
        parts.store.record(token, holder, receipt.clone()).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Tells every holder the others' receipts (they answer with their own again).
    async fn share(&self, token_id: &str, pending: &Pending, receipts: &[PinReceipt]) {
        if receipts.len() < 2 {
            return;
        }
        for receipt in receipts {
            let request = PinRequest {
                token_id: token_id.to_owned(),
                image_cid: pending.image_cid.clone(),
                metadata_cid: pending.metadata_cid.clone(),
                providers: Vec::new(),
                receipts: receipts.iter().filter(|r| r.holder != receipt.holder).cloned().collect(),
            };
            if let Err(e) = self.parts.network.ask_to_pin(&receipt.holder_peer_id, request).await {
                tracing::debug!(holder = %receipt.holder, error = %e, "a holder was not told where else the token is kept");
            }
        }
    }
}

/// The rendezvous weight of `peer` for `token`: the highest weights hold the copies.
fn rendezvous(token: U256, peer: &str) -> [u8; 32] {
    let mut input = token.to_be_bytes::<32>().to_vec();
    input.extend_from_slice(peer.as_bytes());
    keccak256(input).0
}

fn now_secs() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_order_depends_on_the_token_and_is_the_same_everywhere() {
        let peers = ["12D3KooWa", "12D3KooWb", "12D3KooWc", "12D3KooWd"];
        let order = |token: u64| {
            let mut sorted = peers.to_vec();
            sorted.sort_by_key(|p| std::cmp::Reverse(rendezvous(U256::from(token), p)));
            sorted
        };
        assert_eq!(order(1), order(1));
        assert!((2..40).any(|t| order(t)[0] != order(1)[0]), "every token picks the same first peer");
    }
}
