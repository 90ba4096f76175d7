//! Cancelling a job for its creator. Job ids are public (they are token ids), so a cancel counts
//! only with the creator's EIP-712 `CancelJob` signature over the job id, under this node's domain
//! (one chain, one contract) and before the cancel's own deadline:
//!
//! ```text
//! DELETE /v1/jobs/{id} {deadline, signature} ─► job's stored request ─► its creator
//!   ─► deadline ahead? ─► signature recovers to the creator? ─► stop it here (and at its executor)
//! ```
//! A refused cancel changes nothing. The same signature works on any node that holds the job: the
//! creator's word is about the request, not about a node. Peers reach [`Jobs::cancel_here`]
//! through `PeerJobs`, which takes a cancel only from the node that forwarded the job.

use super::service::{Jobs, now_unix};
use super::store::{JobRecord, JobRoute, StoreError};
use crate::provenance::eip712::{Eip712Error, SignedCancel, SignedRequest};
use crate::provenance::ids::JobId;

/// Why a cancel was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("the cancel's signature cannot be read: {0}")]
    BadSignature(#[source] Eip712Error),
    #[error(
        "only the job's creator can cancel it: {0}; sign `CancelJob` (GET /v1/eip712) with the creator's key"
    )]
    NotCreator(#[source] Eip712Error),
    #[error("the cancel's deadline {deadline} has passed (now {now}): sign it again with a later deadline")]
    Expired { deadline: u64, now: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Jobs {
    /// Cancels a job that has not reached the chain yet (a forwarded one at its executor too), if
    /// `cancel` is its creator's signature over its id.
    pub async fn cancel(&self, id: JobId, cancel: &SignedCancel) -> Result<JobRecord, CancelError> {
        let job = self.parts.store.get(id).await?.ok_or(CancelError::NotFound(id))?;
        let creator = serde_json::from_str::<SignedRequest>(&job.signed_request)
            .map_err(|e| StoreError::Corrupt { column: "signed_request", detail: e.to_string() })?
            .request
            .creator;
        let now = now_unix();
        if cancel.deadline <= now {
            return Err(CancelError::Expired { deadline: cancel.deadline, now });
        }
        cancel.verify(id.0, creator, &self.domain).map_err(|e| match e {
            Eip712Error::WrongSigner { .. } => CancelError::NotCreator(e),
            other => CancelError::BadSignature(other),
        })?;
        if job.route == JobRoute::Forwarded && job.state.can_cancel() {
            self.cancel_at_executor(&job).await;
        }
        Ok(self.cancel_here(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::jobs::JobState;
    use crate::jobs::testing::{Harness, MODEL, Setup};

    #[tokio::test]
    async fn only_the_creators_signature_before_its_deadline_cancels_and_a_refusal_changes_nothing() {
        let h = Harness::new(Setup::default());
        let signed = h.sign(h.request(MODEL, 40));
        let id = JobId(crate::provenance::eip712::request_digest(&signed.request, h.jobs.domain()));
        // Stored, not started: it stays in `received` while the cancels are tried.
        let json = serde_json::to_string(&signed).unwrap();
        h.jobs.store().insert(id, json, JobRoute::Local, None).await.unwrap();
        let later = now_unix() + 600;

        let stranger = PrivateKeySigner::random();
        let forged = SignedCancel::sign(&stranger, id.0, later, h.jobs.domain()).unwrap();
        let err = h.jobs.cancel(id, &forged).await.unwrap_err();
        assert!(matches!(err, CancelError::NotCreator(_)), "{err}");
        assert!(err.to_string().contains("only the job's creator"), "{err}");

        let stale = SignedCancel::sign(&h.creator, id.0, now_unix() - 1, h.jobs.domain()).unwrap();
        assert!(matches!(h.jobs.cancel(id, &stale).await.unwrap_err(), CancelError::Expired { .. }));

        let mut garbled = SignedCancel::sign(&h.creator, id.0, later, h.jobs.domain()).unwrap();
        garbled.signature = garbled.signature.slice(..10);
        assert!(matches!(h.jobs.cancel(id, &garbled).await.unwrap_err(), CancelError::BadSignature(_)));

        let other_job = SignedCancel::sign(&h.creator, [7; 32].into(), later, h.jobs.domain()).unwrap();
        assert!(matches!(h.jobs.cancel(id, &other_job).await.unwrap_err(), CancelError::NotCreator(_)));
        assert_eq!(h.jobs.job(id).await.unwrap().unwrap().state, JobState::Received, "nothing changed");

        let missing = JobId([9; 32].into());
        let err = h.jobs.cancel(missing, &h.sign_cancel(missing)).await.unwrap_err();
        assert!(matches!(err, CancelError::NotFound(_)), "{err}");

        let cancelled = h.jobs.cancel(id, &h.sign_cancel(id)).await.unwrap();
        assert_eq!(cancelled.state, JobState::Cancelled);
    }
}
