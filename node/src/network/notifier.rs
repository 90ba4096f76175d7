//! Tells the origin of each job this node runs for a peer how it goes: every state change, and
//! generation progress at most a few times a second. Best effort: the origin also polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use genmint_p2p::PeerId;
use genmint_p2p::wire::{JobRequest, JobStatus};
use tokio::sync::broadcast::error::RecvError;

use super::Network;
use crate::jobs::JobRecord;
use crate::jobs::events::JobEvent;
use crate::jobs::pipeline::Pipeline;

/// Progress updates for one job are sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The job-protocol view of a job record.
pub fn status_of(job: &JobRecord) -> JobStatus {
    JobStatus {
        job_id: job.id.clone(),
        state: job.state.as_str().to_owned(),
        step: None,
        steps: None,
        token_id: job.token_id.clone(),
        tx_hash: job.tx_hash.clone(),
        error: job.error.clone(),
        pixel_digest: job.pixel_digest.clone(),
        image_cid: job.image_cid.clone(),
        metadata_cid: job.metadata_cid.clone(),
    }
}

/// Forwards job events of peer-originated jobs until the event stream or the network ends.
pub async fn run(network: Arc<Network>, pipeline: Arc<Pipeline>) {
    let mut events = pipeline.events().subscribe();
    let mut last_progress: HashMap<String, Instant> = HashMap::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "notifier fell behind; the origins' polling covers the gap");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (job, status) = match &event {
            JobEvent::State(job) => {
                if job.state.is_terminal() {
                    last_progress.remove(&job.id);
                }
                (job.as_ref().clone(), status_of(job))
            }
            JobEvent::Progress { id, step, total } => {
                if last_progress.get(id).is_some_and(|at| at.elapsed() < PROGRESS_INTERVAL) {
                    continue;
                }
                let Ok(Some(job)) = pipeline.store().get(id) else { continue };
                last_progress.insert(id.clone(), Instant::now());
                let status = JobStatus { step: Some(*step), steps: Some(*total), ..status_of(&job) };
                (job, status)
            }
        };
        let Some(origin) = job.origin.as_deref().and_then(|o| o.parse::<PeerId>().ok()) else { continue };
        // In order, one at a time: an origin applies the states as they come.
        if let Err(e) = network.handle().request(origin, JobRequest::Update(status)).await {
            tracing::debug!(job = %job.id, %origin, error = %e, "origin not told; it will ask");
            if matches!(e, genmint_p2p::NetworkError::Closed) {
                return;
            }
        }
    }
}
