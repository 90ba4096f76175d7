//! The node's tasks, owned: every task the running node starts is spawned through [`Tasks`], which
//! holds them in one `JoinSet` beside one cancellation token. Shutdown cancels the token, gives the
//! tasks a bounded time to reach a safe point and end, aborts what is left, and says how it went.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Tasks that had not ended when the grace time ran out and were aborted.
    pub aborted: usize,
}

/// The set of a node's tasks and the signal that asks them to stop; cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    stop: CancellationToken,
    set: Arc<Mutex<JoinSet<()>>>,
}

impl Tasks {
    fn set(&self) -> MutexGuard<'_, JoinSet<()>> {
        // Spawning and reaping cannot leave the set half-changed, so a poisoned lock is usable.
        self.set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a task that watches [`Self::stopping`] itself and ends at its next safe point.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.set();
        // Reap what has ended, so a long-running node does not keep every finished job's entry.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Starts a task that may be dropped at any await point: it simply ends at shutdown.
    pub fn spawn_until_stopped(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        });
    }

    /// Resolves once shutdown has begun.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Sleeps for `duration`; `false` if shutdown began meanwhile.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.stop.cancelled() => false,
        }
    }

    /// Asks every task to stop, waits up to `grace` for them to end, then aborts the rest.
    pub async fn shutdown(&self, grace: Duration) -> Shutdown {
        self.stop.cancel();
        let mut set = std::mem::take(&mut *self.set());
        let ended = tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        let aborted = if ended.is_ok() { 0 } else { set.len() };
        set.abort_all();
        while set.join_next().await.is_some() {}
        // Tasks spawned while the others were ending (there should be none) stop the same way.
        let mut late = std::mem::take(&mut *self.set());
        late.abort_all();
        while late.join_next().await.is_some() {}
        Shutdown { aborted }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_tasks_that_stop_and_aborts_those_that_do_not() {
        let tasks = Tasks::default();
        let cleaned_up = Arc::new(AtomicBool::new(false));
        let flag = cleaned_up.clone();
        let watcher = tasks.clone();
        tasks.spawn(async move {
            watcher.stopping().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.spawn_until_stopped(std::future::pending());
        assert_eq!(tasks.shutdown(Duration::from_secs(5)).await, Shutdown { aborted: 0 });
        assert!(cleaned_up.load(Ordering::SeqCst), "shutdown returned before the task ended");

        let stubborn = Tasks::default();
        stubborn.spawn(std::future::pending());
        assert_eq!(stubborn.shutdown(Duration::from_millis(20)).await, Shutdown { aborted: 1 });
    }

    #[tokio::test]
    async fn sleep_ends_early_at_shutdown() {
        let tasks = Tasks::default();
        let sleeper = tasks.clone();
        let slept = tokio::spawn(async move { sleeper.sleep(Duration::from_secs(60)).await });
        tasks.shutdown(Duration::from_secs(1)).await;
        assert!(!slept.await.unwrap());
    }
}
