//! Forwarded jobs, at the node the creator talked to: place the job on the best peer, mirror the
//! state that peer reports (pushed `Update`s, with polling as the fallback), and fail over to the
//! next peer when the executor goes silent.
//!
//! Fail-over never risks a second token: the token id is the request digest, so whichever node
//! mints first wins and any later mint of the same request is refused by the contract. Before
//! placing a job again the chain is asked whether the token exists already.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use genmint_p2p::PeerId;
use genmint_p2p::wire::{JobRequest, JobResponse, JobStatus};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::events::JobEvent;
use super::pipeline::{Pipeline, StepError, need, now_unix, parse_b256};
use super::state::JobState;
use super::store::{JobRecord, Outputs};

/// Without news from the executor for this long, the origin asks it for the job's state.
const POLL_AFTER: Duration = Duration::from_secs(5);
/// Unanswered status questions in a row before the job moves to another peer.
const SILENT_POLLS_BEFORE_FAILOVER: u32 = 2;

/// What the origin remembers, in memory, about each job it follows.
#[derive(Default)]
pub struct RemoteJobs {
    jobs: Mutex<HashMap<String, Followed>>,
}

struct Followed {
    woken: Arc<Notify>,
    last_heard: Instant,
    silent_polls: u32,
    /// Peers that refused the job or went silent with it.
    tried: Vec<PeerId>,
}

impl Default for Followed {
    fn default() -> Self {
        Self { woken: Arc::default(), last_heard: Instant::now(), silent_polls: 0, tried: Vec::new() }
    }
}

impl RemoteJobs {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Followed) -> T) -> T {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        f(jobs.entry(id.to_owned()).or_default())
    }

    fn forget(&self, id: &str) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

fn executor_of(job: &JobRecord) -> Option<PeerId> {
    job.executor.as_deref().and_then(|peer| peer.parse().ok())
}

/// One step of a forwarded job: place it, or wait for news and check on the executor.
pub(super) async fn follow(pipeline: &Pipeline, job: &JobRecord) -> Result<(), StepError> {
    let Some(network) = pipeline.network() else {
        return Err(StepError::Fatal(
            "the job was forwarded, but this node is no longer on the network".into(),
        ));
    };
    let Some(executor) = executor_of(job) else { return place(pipeline, job).await };

    let (woken, last_heard) = pipeline.remote().with(&job.id, |f| (f.woken.clone(), f.last_heard));
    let quiet_for = last_heard.elapsed();
    if quiet_for < POLL_AFTER {
        let _ = tokio::time::timeout(POLL_AFTER - quiet_for, woken.notified()).await;
        return Ok(());
    }
    match network.handle().request(executor, JobRequest::Status { job_id: job.id.clone() }).await {
        Ok(JobResponse::Status(status)) => {
            apply(pipeline, executor, status).map_err(StepError::Retry)?;
            Ok(())
        }
        Ok(JobResponse::Error { code, message }) if code == "not_found" => {
            warn!(job = %job.id, %executor, %message, "the executor no longer knows the job");
            fail_over(pipeline, job, executor).await
        }
        outcome => {
            let silent = pipeline.remote().with(&job.id, |f| {
                f.silent_polls += 1;
                f.silent_polls
            });
            warn!(job = %job.id, %executor, ?outcome, silent, "no status from the executor");
            if silent >= SILENT_POLLS_BEFORE_FAILOVER {
                fail_over(pipeline, job, executor).await
            } else {
                Ok(())
            }
        }
    }
}

/// Offers the job to the ranked peers in turn until one accepts it.
async fn place(pipeline: &Pipeline, job: &JobRecord) -> Result<(), StepError> {
    let Some(network) = pipeline.network() else { return Ok(()) };
    let signed = Pipeline::signed(job)?;
    if signed.request.deadline <= now_unix() {
        return pipeline.advance(&job.id, JobState::Expired, Outputs::default()).map(drop);
    }
    let tried = pipeline.remote().with(&job.id, |f| f.tried.clone());
    let offers = network.candidates(&need(&signed), &tried).await;
    let mut refusals = Vec::new();
    for offer in offers {
        let submit =
            JobRequest::Submit { job_id: job.id.clone(), signed_request: job.signed_request.clone() };
        match network.handle().request(offer.peer, submit).await {
            Ok(JobResponse::Accepted { .. }) => {
                info!(job = %job.id, executor = %offer.peer, operator = %offer.advert.operator, "job forwarded");
                let placed = pipeline.store().set_executor(&job.id, Some(&offer.peer.to_string()))?;
                pipeline.remote().with(&job.id, |f| {
                    f.last_heard = Instant::now();
                    f.silent_polls = 0;
                });
                pipeline.events().state(&placed);
                return Ok(());
            }
            Ok(JobResponse::Rejected { code, message, .. }) => {
                refusals.push(format!("{}: {code} ({message})", offer.peer));
                pipeline.remote().with(&job.id, |f| f.tried.push(offer.peer));
            }
            other => refusals.push(format!("{}: {other:?}", offer.peer)),
        }
    }
    Err(StepError::Retry(if refusals.is_empty() {
        "no peer that serves the model can take the job now".into()
    } else {
        format!("no peer took the job: {}", refusals.join("; "))
    }))
}

/// The executor went silent or lost the job: record the token if it was minted after all,
/// otherwise place the job again elsewhere.
async fn fail_over(pipeline: &Pipeline, job: &JobRecord, executor: PeerId) -> Result<(), StepError> {
    let token_id = U256::from_be_bytes(parse_b256(&job.id)?.0);
    if pipeline.chain().token_exists(token_id).await? {
        return pipeline.minted_elsewhere(job, token_id).await;
    }
    warn!(job = %job.id, %executor, "moving the job to another peer");
    pipeline.remote().with(&job.id, |f| {
        f.tried.push(executor);
        f.silent_polls = 0;
    });
    pipeline.store().set_executor(&job.id, None)?;
    let reset = pipeline.store().mirror(&job.id, JobState::Received, Outputs::default())?;
    pipeline.events().state(&reset);
    Ok(())
}

/// Takes a state report from `peer` for a forwarded job: only its current executor is heard.
pub fn apply(pipeline: &Pipeline, peer: PeerId, status: JobStatus) -> Result<(), String> {
    let job = pipeline
        .store()
        .get(&status.job_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("job {} is unknown here", status.job_id))?;
    if executor_of(&job) != Some(peer) {
        return Err(format!("{peer} does not run job {}", job.id));
    }
    let state: JobState = status.state.parse()?;
    pipeline.remote().with(&job.id, |f| {
        f.last_heard = Instant::now();
        f.silent_polls = 0;
    });
    if let (JobState::Generating, Some(step), Some(total)) = (state, status.step, status.steps) {
        pipeline.events().publish(JobEvent::Progress { id: job.id.clone(), step, total });
    }
    let outputs = Outputs {
        pixel_digest: status.pixel_digest,
        image_cid: status.image_cid,
        metadata_cid: status.metadata_cid,
        node_signature: None,
        tx_hash: status.tx_hash,
        token_id: status.token_id,
        error: status.error,
    };
    if state != job.state || state.is_terminal() {
        if job.state.is_terminal() {
            return Ok(());
        }
        let updated = pipeline.store().mirror(&job.id, state, outputs).map_err(|e| e.to_string())?;
        pipeline.events().state(&updated);
    }
    if state.is_terminal() {
        pipeline.remote().forget(&job.id);
    } else {
        pipeline.remote().with(&job.id, |f| f.woken.notify_one());
    }
    Ok(())
}

/// Asks the executor to cancel; the local record is cancelled by the caller either way.
pub(super) async fn cancel_at_executor(pipeline: &Pipeline, job: &JobRecord) {
    let (Some(network), Some(executor)) = (pipeline.network(), executor_of(job)) else { return };
    if let Err(e) = network.handle().request(executor, JobRequest::Cancel { job_id: job.id.clone() }).await {
        warn!(job = %job.id, %executor, error = %e, "the executor did not confirm the cancellation");
    }
}
