//! What can go wrong with a job: [`SubmitError`] when a request is offered, [`StepError`] when a
//! step runs. A step's error keeps its source and says whether another try may help.

use super::admission::Rejection;
use super::forwarder::ForwardError;
use super::inference::InferenceError;
use super::store::StoreError;
use crate::chain::ChainError;
use crate::fs::FileError;
use crate::ipfs::IpfsError;
use crate::provenance::credentials::CredentialsError;
use crate::provenance::eip712::Eip712Error;
use crate::provenance::png::PngError;

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Neither this node nor a peer that serves the model has room now.
    #[error(
        "no room for the job now: {0} jobs wait here and no node that serves the model has room; \
         try again after the Retry-After seconds"
    )]
    Busy(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ipfs(#[from] IpfsError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    Png(#[from] PngError),
    #[error("cannot embed the content credentials: {0}")]
    Credentials(#[source] CredentialsError),
    #[error("cannot sign the attestation: {0}")]
    Signing(#[source] Eip712Error),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Refused(#[from] Rejection),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The job's own data cannot go on (a stored request that does not parse, a missing output,
    /// no peer to run it).
    #[error("{0}")]
    Invalid(String),
    #[error("a blocking task did not finish: {0}")]
    Interrupted(String),
}

impl JobError {
    /// Where the error came from, as the metrics name it.
    pub fn source_name(&self) -> &'static str {
        match self {
            JobError::Ipfs(_) => "ipfs",
            JobError::Chain(_) => "chain",
            JobError::Inference(_) => "inference",
            JobError::Forward(_) => "peer",
            JobError::Store(_) => "store",
            _ => "other",
        }
    }
}

/// A step's failure: worth another try, or final for this job.
#[derive(Debug)]
pub enum StepError {
    Retry(JobError),
    Fatal(JobError),
    /// The job was moved to a terminal state by someone else (cancelled), or the node is stopping:
    /// stop quietly.
    Stopped,
}

impl StepError {
    pub fn fatal(error: impl Into<JobError>) -> Self {
        StepError::Fatal(error.into())
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        StepError::Fatal(JobError::Invalid(reason.into()))
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Transition { .. } => StepError::Stopped,
            other => StepError::Retry(other.into()),
        }
    }
}

impl From<IpfsError> for StepError {
    fn from(e: IpfsError) -> Self {
        match e {
            IpfsError::CidMismatch { .. } => StepError::Fatal(e.into()),
            other => StepError::Retry(other.into()),
        }
    }
}

impl From<ChainError> for StepError {
    fn from(e: ChainError) -> Self {
        if e.is_permanent() { StepError::Fatal(e.into()) } else { StepError::Retry(e.into()) }
    }
}

impl From<tokio::task::JoinError> for StepError {
    fn from(e: tokio::task::JoinError) -> Self {
        StepError::Retry(JobError::Interrupted(e.to_string()))
    }
}
