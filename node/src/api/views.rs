//! What the API shows of a job: its own view types, so the store's records can change without
//! changing the API. Every identifier is written as text (0x-hex digests, CIDs, decimal token ids);
//! a job's outputs are the jobs layer's [`JobOutputs`], flattened.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use serde::Serialize;

use crate::jobs::events::JobEvent;
use crate::jobs::{JobOutputs, JobRecord, JobState};
use crate::provenance::ids::JobId;

/// A job as `GET /v1/jobs/{id}` and the SSE state events show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: JobId,
    pub state: JobState,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(flatten)]
    pub outputs: JobOutputs,
    /// `local` or `forwarded`.
    pub route: &'static str,
    /// The peer id of the node running a forwarded job, once one took it.
    pub executor: Option<String>,
    /// The peer id of the node that forwarded this job here.
    pub origin: Option<String>,
    /// While the job waits for this node's generator: how many jobs are ahead of it (0: next).
    pub queue_position: Option<usize>,
}

impl From<&JobRecord> for JobView {
    fn from(job: &JobRecord) -> Self {
        JobView {
            id: job.id,
            state: job.state,
            created_at: job.created_at,
            updated_at: job.updated_at,
            outputs: job.outputs.clone(),
            route: job.route.as_str(),
            executor: job.executor.as_ref().map(|p| p.0.clone()),
            origin: job.origin.as_ref().map(|p| p.0.clone()),
            queue_position: None,
        }
    }
}

/// One SSE event's data: the job's view for a state change, the step for progress, the model for
/// loading, a sentence for a notice.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventView {
    State(Box<JobView>),
    Progress {
        id: String,
        step: u32,
        total: u32,
        /// The picture so far, a `data:image/png;base64,…` URL, where the model previews it.
        #[serde(skip_serializing_if = "Option::is_none")]
        preview: Option<String>,
    },
    Loading {
        id: String,
        model: String,
    },
    Notice {
        id: String,
        message: String,
    },
}

impl From<&JobEvent> for EventView {
    fn from(event: &JobEvent) -> Self {
        match event {
            JobEvent::State(job) => EventView::State(Box::new(job.as_ref().into())),
            JobEvent::Progress { id, step, total, preview } => EventView::Progress {
                id: id.to_string(),
                step: *step,
                total: *total,
                preview: preview
                    .as_ref()
                    .map(|png| format!("data:image/png;base64,{}", BASE64_STANDARD.encode(png))),
            },
            JobEvent::Loading { id, model } => {
                EventView::Loading { id: id.to_string(), model: model.to_string() }
            }
            JobEvent::Notice { id, message } => {
                EventView::Notice { id: id.to_string(), message: message.clone() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, Bytes, U256};

    use super::*;
    use crate::ipfs::Cid;
    use crate::jobs::{JobOutputs, JobRoute, PeerRef};
    use crate::provenance::ids::{JobId, PixelDigest, TxHash};

    #[test]
    fn the_job_view_keeps_the_api_shape() {
        let outputs = JobOutputs {
            pixel_digest: Some(PixelDigest(B256::repeat_byte(1))),
            image_cid: Some(Cid::raw_sha256(b"i")),
            metadata_cid: None,
            node_signature: Some(Bytes::from(vec![0xcd; 2])),
            tx_hash: Some(TxHash(B256::repeat_byte(2))),
            token_id: Some(U256::from(255)),
            minted_by: Some(alloy::primitives::address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")),
            mint_block: Some(7),
            mint_block_hash: Some(B256::repeat_byte(3)),
            confirmations: Some(2),
            confirmations_needed: Some(12),
            resends: Some(1),
            error: None,
        };
        let job = JobRecord {
            route: JobRoute::Forwarded,
            executor: Some(PeerRef("12D3KooWPeer".into())),
            ..crate::jobs::testing::record(JobId(B256::repeat_byte(0xab)), JobState::Minted, outputs)
        };
        let json = serde_json::to_value(JobView::from(&job)).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "state",
                "created_at",
                "updated_at",
                "pixel_digest",
                "image_cid",
                "metadata_cid",
                "node_signature",
                "tx_hash",
                "token_id",
                "minted_by",
                "mint_block",
                "mint_block_hash",
                "confirmations",
                "confirmations_needed",
                "resends",
                "error",
                "route",
                "executor",
                "origin",
                "queue_position"
            ]
        );
        assert_eq!(json["id"], format!("0x{}", "ab".repeat(32)));
        assert_eq!(json["state"], "minted");
        assert_eq!(json["token_id"], "255");
        assert_eq!(json["node_signature"], "0xcdcd");
        assert_eq!(json["minted_by"], "0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
        assert_eq!(json["route"], "forwarded");
        assert_eq!((&json["confirmations"], &json["confirmations_needed"]), (&2.into(), &12.into()));
        assert_eq!(json["mint_block"], 7);
        assert_eq!(json["metadata_cid"], serde_json::Value::Null);
        let progress = serde_json::to_value(EventView::from(&JobEvent::Progress {
            id: job.id,
            step: 3,
            total: 20,
            preview: None,
        }))
        .unwrap();
        assert_eq!(progress, serde_json::json!({"id": job.id.to_string(), "step": 3, "total": 20}));
        let png: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"\x89PNG"[..]);
        let previewed =
            EventView::from(&JobEvent::Progress { id: job.id, step: 4, total: 20, preview: Some(png) });
        assert_eq!(serde_json::to_value(previewed).unwrap()["preview"], "data:image/png;base64,iVBORw==");
        let notice = JobEvent::Notice { id: job.id, message: "the prompt was cut".into() };
        assert_eq!(notice.name(), "notice");
        assert_eq!(
            serde_json::to_value(EventView::from(&notice)).unwrap(),
            serde_json::json!({"id": job.id.to_string(), "message": "the prompt was cut"})
        );
    }
}
