//! Wire messages between nodes: versioned, JSON-encoded, and size-bounded before decoding.
//!
//! Every message travels in an [`Envelope`] that carries [`PROTOCOL_VERSION`]; a receiver refuses
//! other versions and anything larger than [`MAX_MESSAGE_BYTES`] without parsing it.

use serde::{Deserialize, Serialize};

/// The job protocol's name on the wire, including its version.
pub const PROTOCOL_NAME: &str = "/genmint/job/1";
/// Version carried in every envelope; bump it with any incompatible change below.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest encoded message a node accepts (a signed request with the longest prompt fits easily).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One message with its protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub message: Message,
}

/// What nodes say to each other about jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Run this signed request (the request JSON exactly as the creator's node received it).
    Submit { job_id: String, signed_request: String },
    /// The receiver took the job, or says why not (unknown model, no capacity, bad signature, ...).
    SubmitReply { job_id: String, accepted: bool, reason: Option<String> },
    /// Ask for a job's state.
    Status { job_id: String },
    /// A job's state as its executing node sees it.
    StatusReply { job_id: String, state: String, detail: Option<String> },
    /// Stop working on a job.
    Cancel { job_id: String },
    /// Sent back to the origin node once the executing node minted the token.
    Completed { job_id: String, token_id: String, tx_hash: String },
}

/// Why bytes from a peer were refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message of {size} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("peer speaks protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    Version(u16),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Encodes a message for the wire, refusing one that would exceed the size bound.
pub fn encode(message: &Message) -> Result<Vec<u8>, WireError> {
    let bytes = serde_json::to_vec(&Envelope { version: PROTOCOL_VERSION, message: message.clone() })?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { size: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes bytes from a peer: size is checked before parsing, the version after.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { size: bytes.len() });
    }
    let envelope: Envelope = serde_json::from_slice(bytes)?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(WireError::Version(envelope.version));
    }
    Ok(envelope.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_message() {
        let messages = [
            Message::Submit { job_id: "0x01".into(), signed_request: "{}".into() },
            Message::SubmitReply {
                job_id: "0x01".into(),
                accepted: false,
                reason: Some("no capacity".into()),
            },
            Message::Status { job_id: "0x01".into() },
            Message::StatusReply { job_id: "0x01".into(), state: "generating".into(), detail: None },
            Message::Cancel { job_id: "0x01".into() },
            Message::Completed { job_id: "0x01".into(), token_id: "1".into(), tx_hash: "0xab".into() },
        ];
        for message in messages {
            assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        }
    }

    #[test]
    fn refuses_oversized_bytes_before_parsing() {
        let junk = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(decode(&junk), Err(WireError::TooLarge { .. })));
        let huge = Message::Submit { job_id: "j".into(), signed_request: "y".repeat(MAX_MESSAGE_BYTES) };
        assert!(matches!(encode(&huge), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let other = br#"{"version":2,"message":{"type":"status","job_id":"j"}}"#;
        assert!(matches!(decode(other), Err(WireError::Version(2))));
        assert!(matches!(decode(b"\x00\x01not json"), Err(WireError::Malformed(_))));
    }
}
