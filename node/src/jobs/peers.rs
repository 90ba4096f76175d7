//! What peers may ask of this node's jobs: [`PeerJobs`], the narrow interface the network layer
//! hands inbound job-protocol requests to (run a job here, report one, cancel one, take the state
//! of a job this node forwarded). [`Jobs`] implements it; unit tests of the network run a fake.

use futures_util::future::BoxFuture;

use super::error::SubmitError;
use super::forward::UpdateError;
use super::forwarder::RemoteStatus;
use super::service::{Jobs, Load};
use super::store::{JobRecord, PeerRef, StoreError};
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;

/// Why a peer's cancellation was not done.
#[derive(Debug, thiserror::Error)]
pub enum PeerCancelError {
    #[error("job {0} is unknown here")]
    NotFound(JobId),
    #[error("only the node that forwarded a job may cancel it")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Jobs as peers see them.
pub trait PeerJobs: Send + Sync {
    /// Admits and runs a request `origin` forwarded here.
    fn submit<'a>(
        &'a self,
        signed: &'a SignedRequest,
        origin: PeerRef,
    ) -> BoxFuture<'a, Result<JobRecord, SubmitError>>;

    fn job(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// How many jobs wait for this node's generator, and how many more it takes (for adverts).
    fn load(&self) -> BoxFuture<'_, Result<Load, StoreError>>;

    /// Cancels a job `origin` forwarded here; nobody else may.
    fn cancel<'a>(
        &'a self,
        id: JobId,
        origin: &'a PeerRef,
    ) -> BoxFuture<'a, Result<JobRecord, PeerCancelError>>;

    /// Takes `executor`'s report of a job this node forwarded to it.
    fn update<'a>(
        &'a self,
        executor: &'a PeerRef,
        status: RemoteStatus,
    ) -> BoxFuture<'a, Result<(), UpdateError>>;
}

impl PeerJobs for Jobs {
    fn submit<'a>(
        &'a self,
        signed: &'a SignedRequest,
        origin: PeerRef,
    ) -> BoxFuture<'a, Result<JobRecord, SubmitError>> {
        Box::pin(async move { Ok(self.submit_from_peer(signed, origin).await?.0) })
    }

    fn job(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        Box::pin(self.store().get(id))
    }

    fn load(&self) -> BoxFuture<'_, Result<Load, StoreError>> {
        Box::pin(Jobs::load(self))
    }

    fn cancel<'a>(
        &'a self,
        id: JobId,
        origin: &'a PeerRef,
    ) -> BoxFuture<'a, Result<JobRecord, PeerCancelError>> {
        Box::pin(async move {
            let job = self.store().get(id).await?.ok_or(PeerCancelError::NotFound(id))?;
            if job.origin.as_ref() != Some(origin) {
                return Err(PeerCancelError::Forbidden);
            }
            Ok(self.cancel_here(id).await?)
        })
    }

    fn update<'a>(
        &'a self,
        executor: &'a PeerRef,
        status: RemoteStatus,
    ) -> BoxFuture<'a, Result<(), UpdateError>> {
        Box::pin(self.apply_update(executor, status))
    }
}
