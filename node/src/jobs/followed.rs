//! What the origin of forwarded jobs remembers about each, in memory only: when it last heard from
//! the executor (and a way to wake the job's task when it does), how many status questions went
//! unanswered, and which peers refused the job or went silent with it. A restart forgets it; the
//! job store keeps what must survive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::store::PeerRef;
use crate::provenance::ids::JobId;

/// Without news from the executor for this long, the origin asks it for the job's state.
pub(super) const POLL_AFTER: Duration = Duration::from_secs(5);

/// What the origin remembers, in memory, about each job it follows.
#[derive(Default)]
pub struct Followed {
    jobs: Mutex<HashMap<JobId, Follow>>,
}

pub(super) struct Follow {
    pub woken: Arc<Notify>,
    pub last_heard: Instant,
    pub silent_polls: u32,
    /// Peers that refused the job or went silent with it.
    pub tried: Vec<PeerRef>,
}

impl Default for Follow {
    fn default() -> Self {
        Self { woken: Arc::default(), last_heard: Instant::now(), silent_polls: 0, tried: Vec::new() }
    }
}

impl Followed {
    pub(super) fn with<T>(&self, id: JobId, f: impl FnOnce(&mut Follow) -> T) -> T {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        f(jobs.entry(id).or_default())
    }

    pub(super) fn forget(&self, id: JobId) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    pub(super) fn heard(&self, id: JobId) {
        self.with(id, |f| {
            f.last_heard = Instant::now();
            f.silent_polls = 0;
        });
    }
}

#[cfg(test)]
impl Followed {
    pub(super) fn not_heard_for(&self, id: JobId, quiet: Duration) {
        self.with(id, |f| f.last_heard = Instant::now().checked_sub(quiet).unwrap_or(f.last_heard));
    }

    pub(super) fn tried(&self, id: JobId) -> Vec<PeerRef> {
        self.with(id, |f| f.tried.clone())
    }
}
