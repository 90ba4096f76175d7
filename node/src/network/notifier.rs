//! Tells the origin of each job this node runs for a peer how it goes: every state change, and
//! generation progress at most a few times a second. Best effort: the origin also polls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use genmint_p2p::wire::JobRequest;
use genmint_p2p::{NetworkHandle, PeerId};
use tokio::sync::broadcast::error::RecvError;

use super::status::to_wire;
use crate::jobs::PeerJobs;
use crate::jobs::events::{Events, JobEvent};
use crate::provenance::ids::JobId;

/// Progress updates for one job are sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Forwards job events of peer-originated jobs until the event stream or the network ends.
pub async fn run(handle: NetworkHandle, jobs: &dyn PeerJobs, events: &Events) {
    let mut events = events.subscribe();
    let mut last_progress: HashMap<JobId, Instant> = HashMap::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "notifier fell behind; the origins' polling covers the gap");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (job, status) = match event {
            JobEvent::State(job) => {
                if job.state.is_terminal() {
                    last_progress.remove(&job.id);
                }
                let status = to_wire(&job, None);
                (*job, status)
            }
            // The origin learns of loading from the state that follows. Notices have no place on
            // the wire: the executing node logs them.
            JobEvent::Loading { .. } | JobEvent::Notice { .. } => continue,
            JobEvent::Progress { id, step, total, .. } => {
                if last_progress.get(&id).is_some_and(|at| at.elapsed() < PROGRESS_INTERVAL) {
                    continue;
                }
                let Ok(Some(job)) = jobs.job(id).await else { continue };
                last_progress.insert(id, Instant::now());
                let status = to_wire(&job, Some((step, total)));
                (job, status)
            }
        };
        let Some(origin) = job.origin.as_ref().and_then(|o| o.0.parse::<PeerId>().ok()) else { continue };
        // In order, one at a time: an origin applies the states as they come.
        if let Err(e) = handle.request(origin, JobRequest::Update(status)).await {
            tracing::debug!(job = %job.id, %origin, error = %e, "origin not told; it will ask");
            if matches!(e, genmint_p2p::NetworkError::Closed) {
                return;
            }
        }
    }
}
