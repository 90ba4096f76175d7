//! Job events: every state change and every generation step, fanned out to whoever listens (the
//! SSE stream, the advertiser, the notifier of peers' jobs) and counted in the metrics. Events are
//! a view; the job store stays the source of truth.
//! A notice tells the creator something about the job that is not a state, such as a prompt cut
//! to fit the model; it is said once, on the stream, and not stored.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::state::JobState;
use super::store::JobRecord;
use genmint_model_runtime::ModelHash;

use crate::metrics::JobMetrics;
use crate::provenance::ids::JobId;

/// How many events a slow listener may fall behind before it skips ahead.
const CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The job reached a new durable state; carries the whole record.
    State(Box<JobRecord>),
    /// A denoising step finished; with the picture so far as PNG where the model previews it
    /// cheaply (pixel-space models).
    Progress { id: JobId, step: u32, total: u32, preview: Option<Arc<[u8]>> },
    /// The job waits while its model loads.
    Loading { id: JobId, model: ModelHash },
    /// Something the creator should know, in a sentence (e.g. that the prompt was cut).
    Notice { id: JobId, message: String },
}

impl JobEvent {
    pub fn job_id(&self) -> JobId {
        match self {
            JobEvent::State(job) => job.id,
            JobEvent::Progress { id, .. } | JobEvent::Loading { id, .. } | JobEvent::Notice { id, .. } => *id,
        }
    }

    /// The SSE event name: the state's name, `progress`, `loading` or `notice`.
    pub fn name(&self) -> &'static str {
        match self {
            JobEvent::State(job) => job.state.as_str(),
            JobEvent::Progress { .. } => "progress",
            JobEvent::Loading { .. } => "loading",
            JobEvent::Notice { .. } => "notice",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, JobEvent::State(job) if job.state.is_terminal())
    }
}

/// The fan-out point for job events.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<JobEvent>,
    /// Counts every state change.
    metrics: JobMetrics,
}

impl Default for Events {
    fn default() -> Self {
        Self::counted_in(JobMetrics::default())
    }
}

impl Events {
    /// Events whose state changes are counted in `metrics`.
    pub fn counted_in(metrics: JobMetrics) -> Self {
        Self { sender: broadcast::channel(CAPACITY).0, metrics }
    }

    pub fn publish(&self, event: JobEvent) {
        // No listener is fine: events are only a view.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.sender.subscribe()
    }

    pub fn state(&self, job: &JobRecord) {
        debug_assert!(JobState::ALL.contains(&job.state));
        self.metrics.entered(job.state.as_str());
        self.publish(JobEvent::State(Box::new(job.clone())));
    }
}
