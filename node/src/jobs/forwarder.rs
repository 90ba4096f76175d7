//! Peers as jobs see them: [`Forwarder`] places a job on a peer, asks how it goes, and cancels it.
//! The network layer implements it over the job protocol; unit tests run a fake. Jobs never see
//! the wire: peers are [`PeerRef`]s and reports are [`RemoteStatus`]es.

use alloy::primitives::U256;
use futures_util::future::BoxFuture;
use genmint_model_runtime::ModelHash;

use super::state::JobState;
use super::store::{JobOutputs, PeerRef};
use crate::provenance::eip712::SignedRequest;
use crate::provenance::ids::JobId;

/// What a job needs from the node that runs it (for choosing a peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub model_hash: ModelHash,
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    /// The most the creator signed to pay.
    pub fee: U256,
}

impl Need {
    pub fn of(signed: &SignedRequest) -> Self {
        let request = &signed.request;
        Self {
            model_hash: ModelHash(request.modelHash.0),
            width: request.width,
            height: request.height,
            steps: request.steps,
            fee: request.fee,
        }
    }
}

/// A forwarded job's state as its executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    pub id: JobId,
    pub state: JobState,
    /// The denoising step reached and the number of steps, while generating.
    pub progress: Option<(u32, u32)>,
    pub outputs: JobOutputs,
}

/// A peer could not be asked, or its answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ForwardError(pub String);

/// How a peer answered the offer of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Accepted,
    /// The peer has no room now: ask it again later.
    Busy(String),
    /// The peer will not take it (another model, its price, ...): `code` is its refusal code.
    Refused {
        code: String,
        message: String,
    },
    /// No usable answer.
    Failed(ForwardError),
}

/// A peer that serves what a job needs, with the free capacity its latest advert shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub peer: PeerRef,
    /// Jobs the peer said it can take now; 0 for a full peer (worth asking again later).
    pub free: usize,
}

/// How an executor answered a status question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusReply {
    Status(Box<RemoteStatus>),
    /// The executor does not know the job (it lost it, or never had it).
    NotFound(String),
    /// No usable answer.
    Silent(ForwardError),
}

/// The network, as far as forwarded jobs need it.
pub trait Forwarder: Send + Sync {
    /// Peers that serve `need`, best first (those with free capacity before full ones), leaving
    /// out `exclude`.
    fn candidates<'a>(&'a self, need: &'a Need, exclude: &'a [PeerRef]) -> BoxFuture<'a, Vec<Candidate>>;

    /// Offers the job (its signed request JSON as the creator sent it) to `peer`.
    fn submit<'a>(
        &'a self,
        peer: &'a PeerRef,
        id: JobId,
        signed_request: &'a str,
    ) -> BoxFuture<'a, Placement>;

    /// Asks `peer` for the job's state.
    fn status<'a>(&'a self, peer: &'a PeerRef, id: JobId) -> BoxFuture<'a, StatusReply>;

    /// Asks `peer` to stop working on the job.
    fn cancel<'a>(&'a self, peer: &'a PeerRef, id: JobId) -> BoxFuture<'a, Result<(), ForwardError>>;
}
