//! The job protocol's view of a job, both ways: a [`JobRecord`] becomes the wire's [`JobStatus`]
//! when this node reports a job it runs, and a peer's [`JobStatus`] becomes a [`RemoteStatus`]
//! (every field parsed, or the report refused) when it reports a job this node forwarded.

use genmint_p2p::wire::JobStatus;

use crate::jobs::{JobOutputs, JobRecord, RemoteStatus};

/// The job protocol's codes for answers that are not a job's state (beside admission's refusal
/// codes): what this node answers and what it reads in peers' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCode {
    /// The request or its job id cannot be read.
    BadRequest,
    /// The node has no room for the job now.
    Busy,
    NotFound,
    /// Only the job's origin may cancel it.
    Forbidden,
    CannotCancel,
    /// A state update that is not taken.
    Rejected,
    Internal,
}

impl PeerCode {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerCode::BadRequest => "bad_request",
            PeerCode::Busy => "busy",
            PeerCode::NotFound => "not_found",
            PeerCode::Forbidden => "forbidden",
            PeerCode::CannotCancel => "cannot_cancel",
            PeerCode::Rejected => "rejected",
            PeerCode::Internal => "internal",
        }
    }
}

/// Why a peer's report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable job status from the peer: {0}")]
pub struct BadStatus(String);

/// What this node tells peers about a job it runs.
pub fn to_wire(job: &JobRecord, progress: Option<(u32, u32)>) -> JobStatus {
    let outputs = &job.outputs;
    JobStatus {
        job_id: job.id.to_string(),
        state: job.state.as_str().to_owned(),
        step: progress.map(|(step, _)| step),
        steps: progress.map(|(_, steps)| steps),
        token_id: outputs.token_id.map(|t| t.to_string()),
        tx_hash: outputs.tx_hash.map(|t| t.to_string()),
        error: outputs.error.clone(),
        pixel_digest: outputs.pixel_digest.map(|d| d.to_string()),
        image_cid: outputs.image_cid.as_ref().map(ToString::to_string),
        metadata_cid: outputs.metadata_cid.as_ref().map(ToString::to_string),
        minted_by: outputs.minted_by.map(|a| a.to_checksum(None)),
    }
}

fn field<T: std::str::FromStr>(name: &str, text: Option<String>) -> Result<Option<T>, BadStatus>
where
    T::Err: std::fmt::Display,
{
    text.map(|t| t.parse().map_err(|e: T::Err| BadStatus(format!("{name} {t:?}: {e}")))).transpose()
}

/// What a peer says about a job it runs for this node.
pub fn from_wire(status: JobStatus) -> Result<RemoteStatus, BadStatus> {
    let id = status.job_id.parse().map_err(|e: crate::provenance::ids::IdError| BadStatus(e.to_string()))?;
    Ok(RemoteStatus {
        id,
        state: status.state.parse().map_err(BadStatus)?,
        progress: status.step.zip(status.steps),
        outputs: JobOutputs {
            pixel_digest: field("pixel_digest", status.pixel_digest)?,
            image_cid: field("image_cid", status.image_cid)?,
            metadata_cid: field("metadata_cid", status.metadata_cid)?,
            // The executor's signature travels on chain, not on the wire.
            node_signature: None,
            tx_hash: field("tx_hash", status.tx_hash)?,
            token_id: field("token_id", status.token_id)?,
            minted_by: field("minted_by", status.minted_by)?,
            error: status.error,
            // The confirmation count stays with the executor; the state (`confirming`) travels.
            ..JobOutputs::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, Bytes, U256};

    use super::*;
    use crate::ipfs::Cid;
    use crate::jobs::JobState;
    use crate::provenance::ids::{JobId, PixelDigest, TxHash};

    fn record(outputs: JobOutputs) -> JobRecord {
        crate::jobs::testing::record(JobId(B256::repeat_byte(0xab)), JobState::Minted, outputs)
    }

    #[test]
    fn every_output_crosses_the_wire_and_back() {
        let outputs = JobOutputs {
            pixel_digest: Some(PixelDigest(B256::repeat_byte(1))),
            image_cid: Some(Cid::raw_sha256(b"image")),
            metadata_cid: Some(Cid::raw_sha256(b"metadata")),
            node_signature: Some(Bytes::from(vec![9; 65])),
            tx_hash: Some(TxHash(B256::repeat_byte(2))),
            token_id: Some(U256::from(77)),
            minted_by: Some(alloy::primitives::Address::repeat_byte(5)),
            error: Some("why".into()),
            ..JobOutputs::default()
        };
        let job = record(outputs.clone());
        let wire = to_wire(&job, Some((3, 20)));
        assert_eq!((wire.state.as_str(), wire.step, wire.steps), ("minted", Some(3), Some(20)));
        assert_eq!(wire.token_id.as_deref(), Some("77"), "token ids travel in decimal");
        let back = from_wire(wire).unwrap();
        assert_eq!((back.id, back.state, back.progress), (job.id, JobState::Minted, Some((3, 20))));
        assert_eq!(back.outputs, JobOutputs { node_signature: None, ..outputs });
    }

    #[test]
    fn an_unreadable_report_is_refused_with_the_field() {
        let mut wire = to_wire(&record(JobOutputs::default()), None);
        wire.tx_hash = Some("0x12".into());
        assert!(from_wire(wire.clone()).unwrap_err().to_string().contains("tx_hash"));
        wire.tx_hash = None;
        wire.state = "exploded".into();
        assert!(from_wire(wire).unwrap_err().to_string().contains("exploded"));
    }
}
