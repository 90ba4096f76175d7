//! The HTTP API (JSON, errors as `{"error": {"code", "message"}}`):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/jobs` | submit a signed `GenerationRequest`; idempotent (the job id is the request digest) |
//! | `GET /v1/jobs/{id}` | the job's state and outputs |
//! | `GET /v1/jobs/{id}/events` | SSE: the current state, then `progress` and each new state until a terminal one |
//! | `DELETE /v1/jobs/{id}` | cancel a job that has not reached the chain |
//! | `GET /v1/models` | the model this node serves, with its hash and limits |
//! | `GET /v1/eip712` | EIP-712 domain and types in the `eth_signTypedData_v4` shape |
//! | `GET /healthz` | liveness and the node's chain, contract and operator |

mod error;
mod jobs;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub use error::ApiError;

use crate::jobs::pipeline::Pipeline;
use crate::provenance::eip712::eip712_description;

/// Builds the router over a running pipeline.
pub fn router(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/jobs", axum::routing::post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/models", get(models))
        .route("/v1/eip712", get(eip712))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(pipeline)
}

async fn models(State(pipeline): State<Arc<Pipeline>>) -> Json<Value> {
    let model = pipeline.inference().descriptor();
    Json(json!({ "models": [model] }))
}

async fn eip712(State(pipeline): State<Arc<Pipeline>>) -> Json<Value> {
    Json(eip712_description(pipeline.chain_id(), pipeline.contract()))
}

async fn healthz(State(pipeline): State<Arc<Pipeline>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "chainId": pipeline.chain_id(),
        "contract": pipeline.contract().to_checksum(None),
        "operator": pipeline.operator().to_checksum(None),
        "model": pipeline.inference().descriptor().hash.to_string(),
    }))
}
