//! Answers peers' job-protocol requests: run a forwarded job here, report or cancel a job, and take
//! the state updates of jobs this node forwarded. Peers' spot checks go on to their own task.

use std::sync::Arc;

use genmint_p2p::spot_check::ReceivedSpotCheck;
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{InboundJob, NetworkEvent};
use tokio::sync::mpsc;

use super::notifier::status_of;
use crate::jobs::pipeline::{Pipeline, SubmitError};
use crate::jobs::remote;
use crate::provenance::eip712::SignedRequest;

/// Handles network events until the swarm stops.
pub async fn serve(
    pipeline: Arc<Pipeline>,
    mut events: mpsc::Receiver<NetworkEvent>,
    spot_checks: mpsc::Sender<Box<ReceivedSpotCheck>>,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::InboundJob(InboundJob { peer, request, responder }) => {
                let response = answer(&pipeline, peer, request).await;
                responder.respond(response);
            }
            NetworkEvent::PeerConnected(peer) => tracing::debug!(%peer, "peer connected"),
            NetworkEvent::PeerDisconnected(peer) => tracing::debug!(%peer, "peer disconnected"),
            NetworkEvent::Advert(received) => {
                tracing::debug!(peer = %received.advert.peer_id, sequence = received.advert.sequence, "advert")
            }
            // Unjudged, gossip drops it after a few heartbeats without forwarding it.
            NetworkEvent::SpotCheck(received) => {
                if let Err(e) = spot_checks.try_send(received) {
                    tracing::debug!(error = %e, "too many peers' spot checks waiting; one left unjudged");
                }
            }
        }
    }
}

fn error(code: &str, message: impl Into<String>) -> JobResponse {
    JobResponse::Error { code: code.into(), message: message.into() }
}

async fn answer(pipeline: &Arc<Pipeline>, peer: genmint_p2p::PeerId, request: JobRequest) -> JobResponse {
    match request {
        JobRequest::Submit { job_id, signed_request } => {
            let signed: SignedRequest = match serde_json::from_str(&signed_request) {
                Ok(signed) => signed,
                Err(e) => {
                    let message = format!("the signed request is not readable: {e}");
                    return JobResponse::Rejected { job_id, code: "bad_request".into(), message };
                }
            };
            match pipeline.submit_from_peer(&signed, &peer.to_string()).await {
                Ok((job, _)) if job.id == job_id => JobResponse::Accepted { job_id },
                Ok((job, _)) => JobResponse::Rejected {
                    job_id,
                    code: "bad_request".into(),
                    message: format!("the request's digest is {}, not the job id sent", job.id),
                },
                Err(SubmitError::Rejected(r)) => {
                    JobResponse::Rejected { job_id, code: r.code.into(), message: r.message }
                }
                Err(e @ SubmitError::Busy(_)) => {
                    JobResponse::Rejected { job_id, code: "busy".into(), message: e.to_string() }
                }
                Err(e @ SubmitError::Store(_)) => error("internal", e.to_string()),
            }
        }
        JobRequest::Status { job_id } => match pipeline.store().get(&job_id) {
            Ok(Some(job)) => JobResponse::Status(status_of(&job)),
            Ok(None) => error("not_found", format!("job {job_id} is unknown here")),
            Err(e) => error("internal", e.to_string()),
        },
        JobRequest::Cancel { job_id } => match pipeline.store().get(&job_id) {
            Ok(Some(job)) if job.origin.as_deref() == Some(peer.to_string().as_str()) => {
                match pipeline.cancel_here(&job_id) {
                    Ok(job) => JobResponse::Status(status_of(&job)),
                    Err(e) => error("cannot_cancel", e.to_string()),
                }
            }
            Ok(Some(_)) => error("forbidden", "only the node that forwarded a job may cancel it"),
            Ok(None) => error("not_found", format!("job {job_id} is unknown here")),
            Err(e) => error("internal", e.to_string()),
        },
        JobRequest::Update(status) => match remote::apply(pipeline, peer, status) {
            Ok(()) => JobResponse::Ack,
            Err(message) => error("rejected", message),
        },
    }
}
