//! [`Forwarder`] on the job protocol: jobs' questions to peers become [`JobRequest`]s, the answers
//! typed [`Placement`]s and [`StatusReply`]s. Peers are chosen from their verified adverts
//! ([`Network::offers`]).

use futures_util::future::BoxFuture;
use genmint_p2p::PeerId;
use genmint_p2p::wire::{JobRequest, JobResponse};

use super::Network;
use super::status::{PeerCode, from_wire};
use crate::jobs::{Candidate, ForwardError, Forwarder, Need, PeerRef, Placement, StatusReply};
use crate::provenance::ids::JobId;

fn peer_id(peer: &PeerRef) -> Result<PeerId, ForwardError> {
    peer.0.parse().map_err(|e| ForwardError(format!("{peer} is not a peer id: {e}")))
}

impl Network {
    async fn ask(&self, peer: &PeerRef, request: JobRequest) -> Result<JobResponse, ForwardError> {
        let peer = peer_id(peer)?;
        self.handle.request(peer, request).await.map_err(|e| ForwardError(e.to_string()))
    }
}

impl Forwarder for Network {
    fn candidates<'a>(&'a self, need: &'a Need, exclude: &'a [PeerRef]) -> BoxFuture<'a, Vec<Candidate>> {
        Box::pin(async move {
            let exclude: Vec<PeerId> = exclude.iter().filter_map(|peer| peer_id(peer).ok()).collect();
            let offers = self.offers(need, &exclude).await;
            offers
                .into_iter()
                .map(|offer| {
                    tracing::debug!(peer = %offer.peer, operator = %offer.advert.operator, "candidate executor");
                    Candidate {
                        peer: PeerRef(offer.peer.to_string()),
                        free: usize::try_from(offer.advert.capacity).unwrap_or(usize::MAX),
                    }
                })
                .collect()
        })
    }

    fn submit<'a>(
        &'a self,
        peer: &'a PeerRef,
        id: JobId,
        signed_request: &'a str,
    ) -> BoxFuture<'a, Placement> {
        Box::pin(async move {
            let submit =
                JobRequest::Submit { job_id: id.to_string(), signed_request: signed_request.to_owned() };
            match self.ask(peer, submit).await {
                Ok(JobResponse::Accepted { .. }) => Placement::Accepted,
                Ok(JobResponse::Rejected { code, message, .. }) if code == PeerCode::Busy.as_str() => {
                    Placement::Busy(message)
                }
                Ok(JobResponse::Rejected { code, message, .. }) => Placement::Refused { code, message },
                Ok(other) => Placement::Failed(ForwardError(format!("unexpected answer {other:?}"))),
                Err(e) => Placement::Failed(e),
            }
        })
    }

    fn status<'a>(&'a self, peer: &'a PeerRef, id: JobId) -> BoxFuture<'a, StatusReply> {
        Box::pin(async move {
            match self.ask(peer, JobRequest::Status { job_id: id.to_string() }).await {
                Ok(JobResponse::Status(status)) => match from_wire(status) {
                    Ok(status) => StatusReply::Status(Box::new(status)),
                    Err(e) => StatusReply::Silent(ForwardError(e.to_string())),
                },
                Ok(JobResponse::Error { code, message }) if code == PeerCode::NotFound.as_str() => {
                    StatusReply::NotFound(message)
                }
                Ok(other) => StatusReply::Silent(ForwardError(format!("unexpected answer {other:?}"))),
                Err(e) => StatusReply::Silent(e),
            }
        })
    }

    fn cancel<'a>(&'a self, peer: &'a PeerRef, id: JobId) -> BoxFuture<'a, Result<(), ForwardError>> {
        Box::pin(async move {
            match self.ask(peer, JobRequest::Cancel { job_id: id.to_string() }).await? {
                JobResponse::Status(_) => Ok(()),
                other => Err(ForwardError(format!("unexpected answer {other:?}"))),
            }
        })
    }
}
