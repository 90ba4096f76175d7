//! The job protocol's messages: what nodes ask each other about jobs, versioned and size-bounded.
//!
//! Every message travels in an [`Envelope`] that carries [`PROTOCOL_VERSION`]; a receiver refuses
//! other versions and anything larger than [`MAX_MESSAGE_BYTES`] without parsing it. The framing
//! on a libp2p stream (a length prefix in front of each encoded envelope) lives in the codec.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bounded_json;
use crate::pin::{PinReceipt, PinRequest};

/// The job protocol's name on the wire, including its version.
pub const JOB_PROTOCOL: &str = "/genmint/job/1";
/// Version carried in every envelope; bump it (and [`JOB_PROTOCOL`]) with any incompatible change.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest encoded message a node accepts (a signed request with the longest prompt fits easily).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What one node asks another about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobRequest {
    /// Run this signed generation request: `signed_request` is the request JSON exactly as the
    /// origin node received it over HTTP (the executing node admits it like its own POST /v1/jobs).
    Submit { job_id: String, signed_request: String },
    /// Ask for a job's state.
    Status { job_id: String },
    /// Stop working on a job (only honoured before it is pinned).
    Cancel { job_id: String },
    /// Executor -> origin: the job's state changed (the terminal one is the completion notice).
    Update(JobStatus),
    /// Minting node -> peer: keep a copy of this token's content (answered `Pinned` or `Rejected`
    /// with the token id as `job_id`).
    Pin(PinRequest),
}

/// The answer to one [`JobRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobResponse {
    Accepted {
        job_id: String,
    },
    /// `code` is the node's admission error code (e.g. "unknown_model", "busy", "bad_signature").
    Rejected {
        job_id: String,
        code: String,
        message: String,
    },
    Status(JobStatus),
    Ack,
    /// The peer pinned the token's content: its signed receipt.
    Pinned(PinReceipt),
    /// The request could not be handled at all (unknown job id, node shutting down, ...).
    Error {
        code: String,
        message: String,
    },
}

/// A job's state as its executing node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: String,
    /// The node's job state name: "received", "queued", "generating", ..., "minted", "failed",
    /// "cancelled", "expired".
    pub state: String,
    pub step: Option<u32>,
    pub steps: Option<u32>,
    pub token_id: Option<String>,
    pub tx_hash: Option<String>,
    pub error: Option<String>,
    /// The outputs so far (0x-hex pixel digest, CIDs), so the origin can show them.
    #[serde(default)]
    pub pixel_digest: Option<String>,
    #[serde(default)]
    pub image_cid: Option<String>,
    #[serde(default)]
    pub metadata_cid: Option<String>,
    /// The operator address of the node that minted the token, once minted.
    #[serde(default)]
    pub minted_by: Option<String>,
}

/// One message with its protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u16,
    pub message: T,
}

/// Why bytes from a peer were refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {size} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error(
        "peer speaks job protocol version {0}, this node speaks {PROTOCOL_VERSION}; upgrade the older node"
    )]
    Version(u16),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Encodes a message for the wire, refusing one that would exceed the size bound.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let envelope = Envelope { version: PROTOCOL_VERSION, message };
    bounded_json::encode(&envelope, MAX_MESSAGE_BYTES, |size| WireError::TooLarge { size })
}

/// Decodes bytes from a peer: size is checked before parsing, the version before the message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    // The version is read first so that a newer peer gets "wrong version", not "malformed".
    let envelope: Envelope<serde_json::Value> =
        bounded_json::decode(bytes, MAX_MESSAGE_BYTES, |size| WireError::TooLarge { size })?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(WireError::Version(envelope.version));
    }
    Ok(serde_json::from_value(envelope.message)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> JobStatus {
        JobStatus {
            job_id: "0x01".into(),
            state: "minted".into(),
            step: Some(20),
            steps: Some(20),
            token_id: Some("1".into()),
            tx_hash: Some("0xab".into()),
            error: None,
            pixel_digest: Some("0x02".into()),
            image_cid: Some("bafkrei".into()),
            metadata_cid: None,
            minted_by: None,
        }
    }

    #[test]
    fn round_trips_every_request_and_response() {
        let requests = [
            JobRequest::Submit { job_id: "0x01".into(), signed_request: "{\"a\":1}".into() },
            JobRequest::Status { job_id: "0x01".into() },
            JobRequest::Cancel { job_id: "0x01".into() },
            JobRequest::Update(status()),
            JobRequest::Pin(PinRequest {
                token_id: "0x01".into(),
                image_cid: "bafy".into(),
                metadata_cid: "bafz".into(),
                providers: vec!["/ip4/127.0.0.1/tcp/1/p2p/12D3".into()],
                receipts: vec![crate::pin::tests::receipt()],
            }),
        ];
        for request in requests {
            assert_eq!(decode::<JobRequest>(&encode(&request).unwrap()).unwrap(), request);
        }
        let responses = [
            JobResponse::Accepted { job_id: "0x01".into() },
            JobResponse::Rejected { job_id: "0x01".into(), code: "busy".into(), message: "full".into() },
            JobResponse::Status(status()),
            JobResponse::Ack,
            JobResponse::Pinned(crate::pin::tests::receipt()),
            JobResponse::Error { code: "unknown_job".into(), message: "no such job".into() },
        ];
        for response in responses {
            assert_eq!(decode::<JobResponse>(&encode(&response).unwrap()).unwrap(), response);
        }
    }

    #[test]
    fn the_wire_form_is_tagged_and_versioned() {
        let bytes = encode(&JobRequest::Status { job_id: "j".into() }).unwrap();
        assert_eq!(bytes, br#"{"version":1,"message":{"type":"status","job_id":"j"}}"#);
        let update = serde_json::to_value(JobRequest::Update(status())).unwrap();
        assert_eq!(update["type"], "update");
        assert_eq!(update["state"], "minted");
    }

    #[test]
    fn refuses_oversized_bytes_before_parsing() {
        let junk = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(decode::<JobRequest>(&junk), Err(WireError::TooLarge { .. })));
        let huge = JobRequest::Submit { job_id: "j".into(), signed_request: "y".repeat(MAX_MESSAGE_BYTES) };
        assert!(matches!(encode(&huge), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let other = br#"{"version":2,"message":{"type":"something_new","x":[]}}"#;
        assert!(matches!(decode::<JobRequest>(other), Err(WireError::Version(2))));
        assert!(matches!(decode::<JobRequest>(b"\x00\x01not json"), Err(WireError::Malformed(_))));
        let unknown = br#"{"version":1,"message":{"type":"launch","job_id":"j"}}"#;
        assert!(matches!(decode::<JobRequest>(unknown), Err(WireError::Malformed(_))));
        // A response is not a request.
        let ack = encode(&JobResponse::Ack).unwrap();
        assert!(matches!(decode::<JobRequest>(&ack), Err(WireError::Malformed(_))));
    }
}
