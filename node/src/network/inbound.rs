//! Answers peers' job-protocol requests through the narrow [`PeerJobs`] interface: run a forwarded
//! job here, report or cancel a job, and take the state updates of jobs this node forwarded.
//! Peers' spot checks go on to their own task.

use genmint_p2p::spot_check::ReceivedSpotCheck;
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{InboundJob, NetworkEvent, PeerId};
use tokio::sync::mpsc;

use super::status::{from_wire, to_wire};
use crate::jobs::{PeerCancelError, PeerJobs, PeerRef, SubmitError};
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;

/// Handles network events until the swarm stops.
pub async fn serve(
    jobs: &dyn PeerJobs,
    mut events: mpsc::Receiver<NetworkEvent>,
    spot_checks: mpsc::Sender<Box<ReceivedSpotCheck>>,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::InboundJob(InboundJob { peer, request, responder }) => {
                responder.respond(answer(jobs, peer, request).await);
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

/// One request's answer.
pub async fn answer(jobs: &dyn PeerJobs, peer: PeerId, request: JobRequest) -> JobResponse {
    let peer = PeerRef(peer.to_string());
    match request {
        JobRequest::Submit { job_id, signed_request } => submit(jobs, &peer, job_id, &signed_request).await,
        JobRequest::Status { job_id } => match job_id.parse() {
            Ok(id) => status(jobs, id).await,
            Err(e) => unreadable_id(e),
        },
        JobRequest::Cancel { job_id } => match job_id.parse() {
            Ok(id) => cancel(jobs, &peer, id).await,
            Err(e) => unreadable_id(e),
        },
        JobRequest::Update(status) => match from_wire(status) {
            Ok(status) => match jobs.update(&peer, status).await {
                Ok(()) => JobResponse::Ack,
                Err(e) => error("rejected", e.to_string()),
            },
            Err(e) => error("rejected", e.to_string()),
        },
    }
}

fn unreadable_id(e: crate::provenance::ids::IdError) -> JobResponse {
    error("bad_request", e.to_string())
}

async fn submit(jobs: &dyn PeerJobs, peer: &PeerRef, job_id: String, signed_request: &str) -> JobResponse {
    let rejected = |job_id: String, code: &str, message: String| JobResponse::Rejected {
        job_id,
        code: code.into(),
        message,
    };
    let signed: SignedRequest = match serde_json::from_str(signed_request) {
        Ok(signed) => signed,
        Err(e) => return rejected(job_id, "bad_request", format!("the signed request is not readable: {e}")),
    };
    match jobs.submit(&signed, peer.clone()).await {
        Ok(job) if job.id.to_string() == job_id.to_lowercase() => JobResponse::Accepted { job_id },
        Ok(job) => rejected(
            job_id,
            "bad_request",
            format!("the request's digest is {}, not the job id sent", job.id),
        ),
        Err(SubmitError::Rejected(r)) => rejected(job_id, r.code.as_str(), r.message),
        Err(e @ SubmitError::Busy(_)) => rejected(job_id, "busy", e.to_string()),
        Err(e @ SubmitError::Store(_)) => error("internal", e.to_string()),
    }
}

async fn status(jobs: &dyn PeerJobs, id: JobId) -> JobResponse {
    match jobs.job(id).await {
        Ok(Some(job)) => JobResponse::Status(to_wire(&job, None)),
        Ok(None) => error("not_found", format!("job {id} is unknown here")),
        Err(e) => error("internal", e.to_string()),
    }
}

async fn cancel(jobs: &dyn PeerJobs, peer: &PeerRef, id: JobId) -> JobResponse {
    match jobs.cancel(id, peer).await {
        Ok(job) => JobResponse::Status(to_wire(&job, None)),
        Err(e @ PeerCancelError::NotFound(_)) => error("not_found", e.to_string()),
        Err(e @ PeerCancelError::Forbidden) => error("forbidden", e.to_string()),
        Err(PeerCancelError::Store(e)) => error("cannot_cancel", e.to_string()),
    }
}
