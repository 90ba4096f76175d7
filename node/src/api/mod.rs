//! The HTTP API (JSON, errors as `{"error": {"code", "message"}}`):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/jobs` | submit a signed `GenerationRequest`; idempotent (the job id is the request digest) |
//! | `GET /v1/jobs/{id}` | the job's state and outputs |
//! | `GET /v1/jobs/{id}/events` | SSE: the current state, then `progress` and each new state until a terminal one |
//! | `DELETE /v1/jobs/{id}` | cancel a job that has not reached the chain |
//! | `GET /v1/models` | the models of the whole network: this node's and its peers', with their providers |
//! | `GET /v1/peers` | connected peers: addresses, latency, advert, operator registration |
//! | `GET /v1/tokens/{id}/provenance` | every verification check of a token, by name (`genmint verify --json`), and the spot checks nodes reported |
//! | `GET /v1/eip712` | EIP-712 domain and types in the `eth_signTypedData_v4` shape |
//! | `GET /healthz` | liveness and the node's chain, contract and operator |

mod error;
mod jobs;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

pub use error::ApiError;

use genmint_p2p::advert::AdvertisedModel;

use crate::jobs::pipeline::Pipeline;
use crate::provenance::eip712::eip712_description;
use crate::spotcheck::PeerChecks;
use crate::verify::Report;

/// Builds the router over a running pipeline.
pub fn router(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/jobs", axum::routing::post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/models", get(models))
        .route("/v1/peers", get(peers))
        .route("/v1/tokens/{id}/provenance", get(provenance))
        .route("/v1/eip712", get(eip712))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(pipeline)
}

/// Every model on the network, keyed by hash: what this node serves (`local`) and, from the
/// registered peers' fresh adverts, who else serves it at which price and load.
async fn models(State(pipeline): State<Arc<Pipeline>>) -> Result<Json<Value>, ApiError> {
    let local = pipeline.inference().descriptor();
    let mut models: BTreeMap<String, Value> = BTreeMap::new();
    let mut local_entry = serde_json::to_value(local).map_err(|e| ApiError::internal(e.to_string()))?;
    local_entry["local"] = json!(true);
    local_entry["providers"] = json!([]);
    models.insert(local.hash.to_string(), local_entry);
    if let Some(network) = pipeline.network() {
        let adverts = network.registered_adverts().await.map_err(|e| ApiError::internal(e.to_string()))?;
        for advert in adverts {
            for model in &advert.models {
                let entry = models.entry(model.hash.to_lowercase()).or_insert_with(|| {
                    json!({
                        "name": model.name, "kind": model.kind, "hash": model.hash.to_lowercase(),
                        "limits": remote_limits(model),
                        "local": false, "providers": [],
                    })
                });
                if let Some(providers) = entry["providers"].as_array_mut() {
                    providers.push(json!({
                        "peer_id": advert.peer_id, "operator": advert.operator, "price_wei": advert.price_wei,
                        "queue_depth": advert.queue_depth, "capacity": advert.capacity, "devices": advert.devices,
                    }));
                }
            }
        }
    }
    // This node's own model first, so a client without a preference picks it.
    let local_hash = local.hash.to_string();
    let mut list: Vec<Value> = models.remove(&local_hash).into_iter().collect();
    list.extend(models.into_values());
    Ok(Json(json!({ "models": list })))
}

/// A token's verification report with the spot checks nodes reported for it.
#[derive(Serialize)]
struct TokenProvenance {
    #[serde(flatten)]
    report: Report,
    #[serde(flatten)]
    peer_checks: PeerChecks,
}

/// The verification report of a token (decimal or 0x-hex id) against this node's chain and Kubo,
/// and the spot checks this node holds for it: 200 whether or not every check passes (`ok` and
/// `peerChecksOk` say), 404 when no such token exists.
async fn provenance(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> Result<Json<TokenProvenance>, ApiError> {
    let token_id = crate::verify::parse_token_id(&id)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message))?;
    if !pipeline.chain().token_exists(token_id).await.map_err(|e| ApiError::internal(e.to_string()))? {
        return Err(ApiError::not_found(format!("token {id}")));
    }
    let report = crate::verify::verify_token(pipeline.chain(), pipeline.ipfs(), token_id).await;
    let checks =
        pipeline.store().spot_checks_of(&report.token_id).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(TokenProvenance { report, peer_checks: PeerChecks::new(&checks) }))
}

/// What an advert says about a model's limits, in the shape of the local model's `limits`.
fn remote_limits(model: &AdvertisedModel) -> Value {
    let mut limits =
        json!({"max_width": model.max_width, "max_height": model.max_height, "max_steps": model.max_steps});
    if let Some(defaults) = &model.defaults {
        limits["default_width"] = json!(defaults.width);
        limits["default_height"] = json!(defaults.height);
        limits["default_steps"] = json!(defaults.steps);
        limits["default_guidance"] = json!(f64::from(defaults.guidance_x100) / 100.0);
    }
    limits
}

/// This node's peer id and bootstrap addresses, and its connected peers.
async fn peers(State(pipeline): State<Arc<Pipeline>>) -> Result<Json<Value>, ApiError> {
    let Some(network) = pipeline.network() else {
        return Ok(Json(json!({ "enabled": false, "peers": [] })));
    };
    let internal = |e: anyhow::Error| ApiError::internal(format!("{e:#}"));
    Ok(Json(json!({
        "enabled": true,
        "peer_id": network.peer_id().to_string(),
        "addresses": network.bootstrap_addrs().await.map_err(internal)?,
        "peers": network.peers().await.map_err(internal)?,
    })))
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
        "peerId": pipeline.network().map(|n| n.peer_id().to_string()),
    }))
}
