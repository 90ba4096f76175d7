//! [`ReplicationNetwork`] on the job protocol: candidates are the registered peers with a fresh
//! advert, and a pin request is one `Pin` round trip answered `Pinned` or `Rejected`.

use alloy::primitives::Address;
use futures_util::future::BoxFuture;
use genmint_p2p::PeerId;
use genmint_p2p::pin::PinRequest;
use genmint_p2p::wire::{JobRequest, JobResponse};

use super::Network;
use crate::replication::{Candidate, PinAnswer, ReplicationNetwork};

impl ReplicationNetwork for Network {
    fn local_peer_id(&self) -> String {
        self.peer_id().to_string()
    }

    fn candidates(&self) -> BoxFuture<'_, Vec<Candidate>> {
        Box::pin(async move {
            let adverts = match self.registered_adverts().await {
                Ok(adverts) => adverts,
                Err(e) => {
                    tracing::debug!(error = %e, "the network is not answering");
                    return Vec::new();
                }
            };
            adverts
                .into_iter()
                .filter_map(|advert| {
                    Some(Candidate { operator: advert.operator.parse().ok()?, peer_id: advert.peer_id })
                })
                .collect()
        })
    }

    fn ask_to_pin(&self, peer: &str, request: PinRequest) -> BoxFuture<'_, Result<PinAnswer, String>> {
        let peer = peer.parse::<PeerId>().map_err(|e| format!("{peer:?} is not a peer id: {e}"));
        Box::pin(async move {
            let answer =
                self.handle.request(peer?, JobRequest::Pin(request)).await.map_err(|e| e.to_string())?;
            match answer {
                JobResponse::Pinned(receipt) => Ok(PinAnswer::Pinned(receipt)),
                JobResponse::Rejected { code, message, .. } | JobResponse::Error { code, message } => {
                    Ok(PinAnswer::Refused { code, message })
                }
                other => Err(format!("the peer answered a pin request with {other:?}")),
            }
        })
    }

    fn is_registered(&self, operator: Address) -> BoxFuture<'_, bool> {
        Box::pin(Network::is_registered(self, operator))
    }
}
