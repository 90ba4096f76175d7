//! Answers peers' job-protocol requests through the narrow [`PeerJobs`] interface: run a forwarded
//! job here, report or cancel a job, and take the state updates of jobs this node forwarded.
//! Peers' spot checks and pin requests go on to their own tasks (a pin takes a while: it must
//! not hold up the job requests behind it).

use genmint_p2p::spot_check::ReceivedSpotCheck;
use genmint_p2p::wire::{JobRequest, JobResponse};
use genmint_p2p::{InboundJob, NetworkEvent, PeerId};
use tokio::sync::mpsc;

use super::status::{PeerCode, from_wire, to_wire};
use crate::jobs::{PeerCancelError, PeerJobs, PeerRef, SubmitError};
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;
use crate::replication::InboundPin;

/// Where the requests that are not about jobs go.
pub struct Channels {
    pub spot_checks: mpsc::Sender<Box<ReceivedSpotCheck>>,
    pub pins: mpsc::Sender<InboundPin>,
}

/// Handles network events until the swarm stops.
pub async fn serve(jobs: &dyn PeerJobs, mut events: mpsc::Receiver<NetworkEvent>, channels: Channels) {
    let Channels { spot_checks, pins } = channels;
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::InboundJob(InboundJob { peer, request: JobRequest::Pin(request), responder }) => {
                let token_id = request.token_id.clone();
                if let Err(refused) = pins.try_send(InboundPin { peer, request, responder }) {
                    let pin = refused.into_inner();
                    pin.responder.respond(JobResponse::Rejected {
                        job_id: token_id,
                        code: PeerCode::Busy.as_str().into(),
                        message: "too many pin requests waiting here; ask again later".into(),
                    });
                }
            }
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

fn error(code: PeerCode, message: impl Into<String>) -> JobResponse {
    JobResponse::Error { code: code.as_str().into(), message: message.into() }
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
                Err(e) => error(PeerCode::Rejected, e.to_string()),
            },
            Err(e) => error(PeerCode::Rejected, e.to_string()),
        },
        // `serve` hands pin requests to the holder; without one this node holds nothing.
        JobRequest::Pin(request) => JobResponse::Rejected {
            job_id: request.token_id,
            code: "disabled".into(),
            message: "this node does not pin other nodes' tokens".into(),
        },
    }
}

fn unreadable_id(e: crate::provenance::ids::IdError) -> JobResponse {
    error(PeerCode::BadRequest, e.to_string())
}

async fn submit(jobs: &dyn PeerJobs, peer: &PeerRef, job_id: String, signed_request: &str) -> JobResponse {
    let rejected = |job_id: String, code: &str, message: String| JobResponse::Rejected {
        job_id,
        code: code.into(),
        message,
    };
    let signed: SignedRequest = match serde_json::from_str(signed_request) {
        Ok(signed) => signed,
        Err(e) => {
            return rejected(
                job_id,
                PeerCode::BadRequest.as_str(),
                format!("the signed request is not readable: {e}"),
            );
        }
    };
    match jobs.submit(&signed, peer.clone()).await {
        Ok(job) if job.id.to_string() == job_id.to_lowercase() => JobResponse::Accepted { job_id },
        Ok(job) => rejected(
            job_id,
            PeerCode::BadRequest.as_str(),
            format!("the request's digest is {}, not the job id sent", job.id),
        ),
        Err(SubmitError::Rejected(r)) => rejected(job_id, r.code.as_str(), r.message),
        Err(e @ SubmitError::Busy(_)) => rejected(job_id, PeerCode::Busy.as_str(), e.to_string()),
        Err(e @ SubmitError::Store(_)) => error(PeerCode::Internal, e.to_string()),
    }
}

async fn status(jobs: &dyn PeerJobs, id: JobId) -> JobResponse {
    match jobs.job(id).await {
        Ok(Some(job)) => JobResponse::Status(to_wire(&job, None)),
        Ok(None) => error(PeerCode::NotFound, format!("job {id} is unknown here")),
        Err(e) => error(PeerCode::Internal, e.to_string()),
    }
}

async fn cancel(jobs: &dyn PeerJobs, peer: &PeerRef, id: JobId) -> JobResponse {
    match jobs.cancel(id, peer).await {
        Ok(job) => JobResponse::Status(to_wire(&job, None)),
        Err(e @ PeerCancelError::NotFound(_)) => error(PeerCode::NotFound, e.to_string()),
        Err(e @ PeerCancelError::Forbidden) => error(PeerCode::Forbidden, e.to_string()),
        Err(PeerCancelError::Store(e)) => error(PeerCode::CannotCancel, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use alloy::primitives::B256;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::jobs::admission::{RefusalCode, Rejection};
    use crate::jobs::{JobOutputs, JobRecord, JobState, Load, RemoteStatus, StoreError, UpdateError};

    /// Jobs as a peer would find them: one known job forwarded here by `origin`.
    struct FakeJobs {
        job: JobRecord,
        refusal: Option<Rejection>,
        updates: Mutex<Vec<RemoteStatus>>,
    }

    impl PeerJobs for FakeJobs {
        fn submit<'a>(
            &'a self,
            _: &'a SignedRequest,
            _: PeerRef,
        ) -> BoxFuture<'a, Result<JobRecord, SubmitError>> {
            let answer = match &self.refusal {
                Some(r) => Err(SubmitError::Rejected(r.clone())),
                None => Ok(self.job.clone()),
            };
            Box::pin(async move { answer })
        }

        fn job(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
            let found = (id == self.job.id).then(|| self.job.clone());
            Box::pin(async move { Ok(found) })
        }

        fn load(&self) -> BoxFuture<'_, Result<Load, StoreError>> {
            Box::pin(async { Ok(Load { queued: 0, free: 1 }) })
        }

        fn cancel<'a>(
            &'a self,
            id: JobId,
            origin: &'a PeerRef,
        ) -> BoxFuture<'a, Result<JobRecord, PeerCancelError>> {
            let answer = if id != self.job.id {
                Err(PeerCancelError::NotFound(id))
            } else if self.job.origin.as_ref() != Some(origin) {
                Err(PeerCancelError::Forbidden)
            } else {
                Ok(JobRecord { state: JobState::Cancelled, ..self.job.clone() })
            };
            Box::pin(async move { answer })
        }

        fn update<'a>(
            &'a self,
            _: &'a PeerRef,
            status: RemoteStatus,
        ) -> BoxFuture<'a, Result<(), UpdateError>> {
            self.updates.lock().unwrap().push(status);
            Box::pin(async { Ok(()) })
        }
    }

    fn jobs(origin: PeerId, refusal: Option<Rejection>) -> FakeJobs {
        let job = JobRecord {
            origin: Some(PeerRef(origin.to_string())),
            ..crate::jobs::testing::record(
                JobId(B256::repeat_byte(0xab)),
                JobState::Queued,
                JobOutputs::default(),
            )
        };
        FakeJobs { job, refusal, updates: Mutex::default() }
    }

    fn code(response: &JobResponse) -> &str {
        match response {
            JobResponse::Error { code, .. } | JobResponse::Rejected { code, .. } => code,
            JobResponse::Accepted { .. } => "accepted",
            JobResponse::Status(_) => "status",
            JobResponse::Ack => "ack",
            JobResponse::Pinned(_) => "pinned",
        }
    }

    #[tokio::test]
    async fn peers_get_a_coded_answer_to_every_request() {
        let origin = PeerId::random();
        let fake = jobs(origin, None);
        let id = fake.job.id.to_string();
        let ask = |peer, request| answer(&fake, peer, request);
        let unreadable = JobRequest::Submit { job_id: id.clone(), signed_request: "{".into() };
        assert_eq!(code(&ask(origin, unreadable).await), "bad_request");
        let status = ask(origin, JobRequest::Status { job_id: id.clone() }).await;
        assert!(matches!(&status, JobResponse::Status(s) if s.state == "queued"), "{status:?}");
        let unknown = JobRequest::Status { job_id: JobId(B256::repeat_byte(1)).to_string() };
        assert_eq!(code(&ask(origin, unknown).await), "not_found");
        assert_eq!(code(&ask(origin, JobRequest::Status { job_id: "0x12".into() }).await), "bad_request");
        let stranger = PeerId::random();
        assert_eq!(code(&ask(stranger, JobRequest::Cancel { job_id: id.clone() }).await), "forbidden");
        let cancelled = ask(origin, JobRequest::Cancel { job_id: id.clone() }).await;
        assert!(matches!(&cancelled, JobResponse::Status(s) if s.state == "cancelled"), "{cancelled:?}");
        let mut report = to_wire(&fake.job, Some((1, 2)));
        assert_eq!(code(&ask(origin, JobRequest::Update(report.clone())).await), "ack");
        assert_eq!(fake.updates.lock().unwrap()[0].progress, Some((1, 2)));
        report.state = "exploded".into();
        assert_eq!(code(&ask(origin, JobRequest::Update(report)).await), "rejected");
    }

    #[tokio::test]
    async fn a_refused_submission_carries_the_admission_code() {
        let refusal = Rejection { code: RefusalCode::FeeTooLow, message: "pay more".into() };
        let fake = jobs(PeerId::random(), Some(refusal));
        let signed = serde_json::json!({
            "request": {
                "creator": "0x0000000000000000000000000000000000000001",
                "modelHash": B256::ZERO.to_string(), "prompt": "p", "negativePrompt": "", "seed": "1",
                "width": "8", "height": "8", "steps": "1", "guidance": "100", "scheduler": "ddim",
                "fee": "0", "nonce": "0", "deadline": "1"
            },
            "signature": format!("0x{}", "11".repeat(65)),
        });
        let submit =
            JobRequest::Submit { job_id: fake.job.id.to_string(), signed_request: signed.to_string() };
        let response = answer(&fake, PeerId::random(), submit).await;
        assert!(
            matches!(&response, JobResponse::Rejected { code, message, .. } if code == "fee_too_low" && message == "pay more"),
            "{response:?}"
        );
    }
}
