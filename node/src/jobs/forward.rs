//! Forwarded jobs, at the node the creator talked to: place the job on the best peer, mirror the
//! state that peer reports (pushed updates, with polling as the fallback), and fail over to the
//! next peer when the executor goes silent or loses the job.
//!
//! Fail-over never risks a second token: the token id is the request digest, so whichever node
//! mints first wins and any later mint of the same request is refused by the contract. Before
//! placing a job again the chain is asked whether the token exists already.

use std::sync::Arc;

use tracing::{info, warn};

use super::admission;
use super::error::{JobError, StepError};
use super::events::JobEvent;
use super::followed::POLL_AFTER;
use super::forwarder::{Candidate, Forwarder, Need, Placement, RemoteStatus, StatusReply};
use super::service::{Jobs, now_unix};
use super::state::JobState;
use super::store::{JobOutputs, JobRecord, JobRoute, PeerRef, StoreError};
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;

/// Unanswered status questions in a row before the job moves to another peer.
pub(super) const SILENT_POLLS_BEFORE_FAILOVER: u32 = 2;

/// Why a peer's report of a job was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("job {0} is unknown here")]
    UnknownJob(JobId),
    #[error("{peer} does not run job {id}")]
    NotTheExecutor { peer: PeerRef, id: JobId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Jobs {
    fn forwarder(&self) -> Result<&Arc<dyn Forwarder>, StepError> {
        self.parts.forwarder.as_ref().ok_or_else(|| {
            StepError::invalid("the job was forwarded, but this node is no longer on the network")
        })
    }

    /// One step of a forwarded job: place it, or wait for news and check on the executor.
    pub(super) async fn follow(&self, job: &JobRecord) -> Result<(), StepError> {
        let forwarder = self.forwarder()?;
        let Some(executor) = job.executor.clone() else { return self.place(job).await };
        let (woken, last_heard) = self.followed.with(job.id, |f| (f.woken.clone(), f.last_heard));
        let quiet_for = last_heard.elapsed();
        if quiet_for < POLL_AFTER {
            tokio::select! {
                _ = tokio::time::timeout(POLL_AFTER - quiet_for, woken.notified()) => {}
                () = self.tasks().stopping() => {}
            }
            return Ok(());
        }
        match forwarder.status(&executor, job.id).await {
            StatusReply::Status(status) => self.apply_update(&executor, *status).await.map_err(|e| match e {
                UpdateError::Store(e) => StepError::from(e),
                other => StepError::Retry(JobError::Invalid(other.to_string())),
            }),
            StatusReply::NotFound(message) => {
                warn!(job = %job.id, %executor, %message, "the executor no longer knows the job");
                self.fail_over(job, executor).await
            }
            StatusReply::Silent(error) => {
                let silent = self.followed.with(job.id, |f| {
                    f.silent_polls += 1;
                    f.silent_polls
                });
                warn!(job = %job.id, %executor, %error, silent, "no status from the executor");
                if silent >= SILENT_POLLS_BEFORE_FAILOVER {
                    self.fail_over(job, executor).await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Runs the job here when this node serves its model and has room; otherwise offers it to the
    /// ranked peers in turn until one accepts it. Busy peers are asked again on the next try; a
    /// peer that refused for another reason is left out until every peer has been.
    async fn place(&self, job: &JobRecord) -> Result<(), StepError> {
        let forwarder = self.forwarder()?;
        let signed = Self::signed(job)?;
        if signed.request.deadline <= now_unix() {
            return self.advance(job.id, JobState::Expired, JobOutputs::default()).await;
        }
        if self.take_here(job, &signed).await? {
            return Ok(());
        }
        let need = Need::of(&signed);
        let tried = self.followed.with(job.id, |f| f.tried.clone());
        let mut candidates = forwarder.candidates(&need, &tried).await;
        if candidates.is_empty() && !tried.is_empty() {
            self.followed.with(job.id, |f| f.tried.clear());
            candidates = forwarder.candidates(&need, &[]).await;
        }
        let mut refusals = Vec::new();
        for Candidate { peer, .. } in candidates {
            match forwarder.submit(&peer, job.id, &job.signed_request).await {
                Placement::Accepted => {
                    info!(job = %job.id, executor = %peer, "job forwarded");
                    let placed = self.parts.store.set_executor(job.id, Some(peer)).await?;
                    self.followed.heard(job.id);
                    self.events.state(&placed);
                    return Ok(());
                }
                Placement::Busy(_) => refusals.push(format!("{peer}: busy")),
                Placement::Refused { code, message } => {
                    refusals.push(format!("{peer}: {code} ({message})"));
                    self.followed.with(job.id, |f| f.tried.push(peer));
                }
                Placement::Failed(error) => refusals.push(format!("{peer}: {error}")),
            }
        }
        Err(StepError::Retry(JobError::Invalid(if refusals.is_empty() {
            "waiting for a node that serves the model: none is reachable now".into()
        } else {
            format!("waiting for a node with room for the job: {}", refusals.join("; "))
        })))
    }

    /// Moves a forwarded job that no peer has taken to this node, if this node would admit it and
    /// has room now. Returns whether it did.
    async fn take_here(&self, job: &JobRecord, signed: &SignedRequest) -> Result<bool, StepError> {
        if admission::admit(signed, &self.admission_context()).is_err() {
            return Ok(false);
        }
        let _admitting = self.admitting.lock().await;
        if self.load().await?.free == 0 {
            return Ok(false);
        }
        let here = self.parts.store.set_route(job.id, JobRoute::Local).await?;
        info!(job = %job.id, "running the job here: this node has room now");
        self.events.state(&here);
        Ok(true)
    }

    /// The executor went silent or lost the job: record the token if it was minted after all,
    /// otherwise place the job again elsewhere.
    async fn fail_over(&self, job: &JobRecord, executor: PeerRef) -> Result<(), StepError> {
        if let Some(mint) = self.parts.chain.minted(job.id.token_id()).await? {
            return self.minted_elsewhere(job, mint).await;
        }
        warn!(job = %job.id, %executor, "moving the job to another peer");
        self.followed.with(job.id, |f| {
            f.tried.push(executor);
            f.silent_polls = 0;
        });
        self.parts.store.set_executor(job.id, None).await?;
        let reset = self.parts.store.mirror(job.id, JobState::Received, JobOutputs::default()).await?;
        self.events.state(&reset);
        Ok(())
    }

    /// Takes a state report from `peer` for a forwarded job: only its current executor is heard.
    pub async fn apply_update(&self, peer: &PeerRef, status: RemoteStatus) -> Result<(), UpdateError> {
        let job = self.parts.store.get(status.id).await?.ok_or(UpdateError::UnknownJob(status.id))?;
        if job.executor.as_ref() != Some(peer) {
            return Err(UpdateError::NotTheExecutor { peer: peer.clone(), id: job.id });
        }
        self.followed.heard(job.id);
        if let (JobState::Generating, Some((step, total))) = (status.state, status.progress) {
            self.events.publish(JobEvent::Progress { id: job.id, step, total, preview: None });
        }
        if (status.state != job.state || status.state.is_terminal()) && !job.state.is_terminal() {
            let updated = self.parts.store.mirror(job.id, status.state, status.outputs).await?;
            self.events.state(&updated);
        }
        if status.state.is_terminal() {
            self.followed.forget(job.id);
        } else {
            self.followed.with(job.id, |f| f.woken.notify_one());
        }
        Ok(())
    }

    /// Asks the executor to cancel; the local record is cancelled by the caller either way.
    pub(super) async fn cancel_at_executor(&self, job: &JobRecord) {
        let (Some(forwarder), Some(executor)) = (&self.parts.forwarder, &job.executor) else { return };
        if let Err(e) = forwarder.cancel(executor, job.id).await {
            warn!(job = %job.id, %executor, error = %e, "the executor did not confirm the cancellation");
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, U256};

    use std::sync::Mutex;

    use super::*;
    use crate::jobs::forwarder::ForwardError;
    use crate::jobs::testing::{FakeForwarder, Harness, Setup, lock};
    use crate::provenance::ids::TxHash;

    const MODEL: genmint_model_runtime::ModelHash = genmint_model_runtime::ModelHash([0x77; 32]);

    fn peer(name: &str) -> PeerRef {
        PeerRef(name.into())
    }

    fn harness(forwarder: FakeForwarder) -> Harness {
        Harness::new(Setup { forwarder: Some(forwarder), ..Setup::default() })
    }

    /// A forwarded job in the store (no task drives it: the test does).
    async fn forwarded(h: &Harness, executor: Option<PeerRef>) -> JobRecord {
        let signed = h.sign(h.request(MODEL, 1));
        let id = JobId(crate::provenance::eip712::request_digest(&signed.request, h.jobs.domain()));
        let store = h.jobs.store();
        store.insert(id, serde_json::to_string(&signed).unwrap(), JobRoute::Forwarded, None).await.unwrap();
        store.set_executor(id, executor).await.unwrap()
    }

    /// Makes the origin think it has not heard from the executor for a long time.
    fn quiet(h: &Harness, id: JobId) {
        h.jobs.followed.not_heard_for(id, POLL_AFTER * 2);
    }

    async fn reload(h: &Harness, job: &JobRecord) -> JobRecord {
        h.jobs.job(job.id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_job_goes_to_the_first_peer_that_takes_it_and_busy_peers_are_asked_again() {
        let (busy, other, free) = (peer("busy"), peer("other"), peer("free"));
        let h = harness(FakeForwarder {
            peers: vec![busy.clone(), other.clone(), free.clone()],
            placements: [
                (busy.clone(), Placement::Busy("full".into())),
                (other.clone(), Placement::Refused { code: "fee_too_low".into(), message: "dear".into() }),
            ]
            .into(),
            ..FakeForwarder::default()
        });
        let job = forwarded(&h, None).await;
        h.jobs.follow(&job).await.unwrap();
        assert_eq!(reload(&h, &job).await.executor, Some(free.clone()));
        assert_eq!(lock(&h.forwarder.as_ref().unwrap().submitted).as_slice(), [busy, other.clone(), free]);
        assert_eq!(
            h.jobs.followed.tried(job.id),
            vec![other],
            "only a refusal other than busy is remembered"
        );
    }

    #[tokio::test]
    async fn while_every_peer_is_busy_the_job_waits_and_asks_the_busy_ones_again() {
        let (a, b) = (peer("a"), peer("b"));
        let h = harness(FakeForwarder {
            peers: vec![a.clone(), b.clone()],
            placements: [
                (a.clone(), Placement::Busy("full".into())),
                (b.clone(), Placement::Refused { code: "out_of_range".into(), message: "no".into() }),
            ]
            .into(),
            ..FakeForwarder::default()
        });
        let job = forwarded(&h, None).await;
        for _ in 0..3 {
            let err = h.jobs.follow(&job).await.unwrap_err();
            assert!(
                matches!(&err, StepError::Retry(e) if e.to_string().contains("waiting for a node with room")),
                "{err:?}"
            );
        }
        let asked = lock(&h.forwarder.as_ref().unwrap().submitted).clone();
        assert_eq!(
            asked.iter().filter(|p| **p == a).count(),
            3,
            "the busy peer is asked every time: {asked:?}"
        );
        assert_eq!(
            asked.iter().filter(|p| **p == b).count(),
            1,
            "the refusing one while others remain: {asked:?}"
        );
        assert_eq!(reload(&h, &job).await.state, JobState::Received, "held, not failed");
    }

    #[tokio::test]
    async fn with_no_peer_to_take_it_placing_is_tried_again_later() {
        let lost = peer("lost");
        let h = harness(FakeForwarder {
            peers: vec![lost.clone()],
            placements: [(lost, Placement::Failed(ForwardError("timed out".into())))].into(),
            ..FakeForwarder::default()
        });
        let job = forwarded(&h, None).await;
        let err = h.jobs.follow(&job).await.unwrap_err();
        assert!(matches!(&err, StepError::Retry(e) if e.to_string().contains("lost: timed out")), "{err:?}");
        let h = harness(FakeForwarder::default());
        let job = forwarded(&h, None).await;
        let err = h.jobs.follow(&job).await.unwrap_err();
        assert!(
            matches!(&err, StepError::Retry(e) if e.to_string().contains("none is reachable")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_forwarded_job_for_this_nodes_model_runs_here_once_there_is_room() {
        let busy = peer("busy");
        let h = harness(FakeForwarder {
            peers: vec![busy.clone()],
            placements: [(busy, Placement::Busy("full".into()))].into(),
            ..FakeForwarder::default()
        });
        let signed = h.sign(h.request(crate::jobs::testing::MODEL, 5));
        let id = JobId(crate::provenance::eip712::request_digest(&signed.request, h.jobs.domain()));
        let store = h.jobs.store();
        store.insert(id, serde_json::to_string(&signed).unwrap(), JobRoute::Forwarded, None).await.unwrap();
        let job = reload(&h, &store.get(id).await.unwrap().unwrap()).await;
        h.jobs.follow(&job).await.unwrap();
        let here = reload(&h, &job).await;
        assert_eq!((here.route, here.executor), (JobRoute::Local, None));
        assert!(lock(&h.forwarder.as_ref().unwrap().submitted).is_empty(), "no peer was asked");
    }

    #[tokio::test]
    async fn an_executor_that_lost_the_job_is_left_for_another_peer() {
        let executor = peer("executor");
        let h = harness(FakeForwarder {
            statuses: Mutex::new([StatusReply::NotFound("unknown".into())].into()),
            ..FakeForwarder::default()
        });
        let job = forwarded(&h, Some(executor.clone())).await;
        quiet(&h, job.id);
        h.jobs.follow(&job).await.unwrap();
        let moved = reload(&h, &job).await;
        assert_eq!((moved.state, moved.executor), (JobState::Received, None));
        assert_eq!(h.jobs.followed.tried(job.id), vec![executor]);
    }

    #[tokio::test]
    async fn a_silent_executor_loses_the_job_after_two_unanswered_questions() {
        let executor = peer("executor");
        let h = harness(FakeForwarder::default());
        let job = forwarded(&h, Some(executor.clone())).await;
        quiet(&h, job.id);
        h.jobs.follow(&job).await.unwrap();
        assert_eq!(reload(&h, &job).await.executor, Some(executor.clone()), "one silence is forgiven");
        h.jobs.follow(&job).await.unwrap();
        assert_eq!(reload(&h, &job).await.executor, None);
    }

    #[tokio::test]
    async fn fail_over_records_a_token_the_executor_minted_after_all() {
        let h = harness(FakeForwarder::default());
        let job = forwarded(&h, Some(peer("executor"))).await;
        let tx = TxHash(B256::repeat_byte(0x99));
        h.chain.mint_elsewhere(job.id.token_id(), tx);
        quiet(&h, job.id);
        for _ in 0..SILENT_POLLS_BEFORE_FAILOVER {
            h.jobs.follow(&job).await.unwrap();
        }
        let done = reload(&h, &job).await;
        assert_eq!((done.state, done.outputs.tx_hash), (JobState::Minted, Some(tx)));
    }

    #[tokio::test]
    async fn reports_are_mirrored_from_the_executor_only() {
        let executor = peer("executor");
        let h = harness(FakeForwarder::default());
        let job = forwarded(&h, Some(executor.clone())).await;
        let mut events = h.jobs.events().subscribe();
        let report = |state, progress, outputs| RemoteStatus { id: job.id, state, progress, outputs };

        h.jobs
            .apply_update(&executor, report(JobState::Generating, Some((3, 20)), JobOutputs::default()))
            .await
            .unwrap();
        assert!(matches!(events.recv().await.unwrap(), JobEvent::Progress { step: 3, total: 20, .. }));
        assert_eq!(reload(&h, &job).await.state, JobState::Generating);

        let err = h
            .jobs
            .apply_update(&peer("impostor"), report(JobState::Failed, None, JobOutputs::default()))
            .await;
        assert!(matches!(err, Err(UpdateError::NotTheExecutor { .. })), "{err:?}");
        let unknown = RemoteStatus {
            id: JobId(B256::repeat_byte(1)),
            ..report(JobState::Queued, None, JobOutputs::default())
        };
        assert!(matches!(h.jobs.apply_update(&executor, unknown).await, Err(UpdateError::UnknownJob(_))));

        let minted = JobOutputs { token_id: Some(U256::from(5)), ..JobOutputs::default() };
        h.jobs.apply_update(&executor, report(JobState::Minted, None, minted)).await.unwrap();
        let done = reload(&h, &job).await;
        assert_eq!((done.state, done.outputs.token_id), (JobState::Minted, Some(U256::from(5))));
        // A terminal job stays as it ended, whatever comes later.
        h.jobs.apply_update(&executor, report(JobState::Failed, None, JobOutputs::default())).await.unwrap();
        assert_eq!(reload(&h, &job).await.state, JobState::Minted);
    }
}
