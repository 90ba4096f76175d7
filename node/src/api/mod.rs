//! The HTTP API (JSON, errors as `{"error": {"code", "message"}}`):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/jobs` | submit a signed `GenerationRequest`; idempotent (the job id is the request digest) |
//! | `GET /v1/jobs/{id}` | the job's state and outputs |
//! | `GET /v1/jobs/{id}/events` | SSE: the current state, then `progress` and each new state until a terminal one |
//! | `DELETE /v1/jobs/{id}` | cancel a job that has not reached the chain, with its creator's signed `CancelJob` |
//! | `GET /v1/models` | the models of the whole network: this node's and its peers', with their providers |
//! | `GET /v1/peers` | connected peers: addresses, latency, advert, operator registration, direct or relayed; this node's NAT status |
//! | `GET /v1/tokens/{id}/provenance` | every verification check of a token, by name (`genmint verify --json`), the spot checks nodes reported, and where its content is held |
//! | `GET /v1/tokens/{id}/holders` | where a token's content is held: the holders' signed pin receipts, and whether this node's Kubo has it |
//! | `GET /v1/tokens?creator=&model=&node=&cursor=&limit=` | the contract's tokens from its mint events, newest first, a page at a time |
//! | `GET /v1/tokens/{id}/image` | a token's image (from IPFS) |
//! | `GET /v1/jobs/{id}/image` | a job's image once pinned |
//! | `GET /v1/deposits/{address}` | a creator's deposit on the contract, from which fees are paid |
//! | `POST /v1/detect` | an image file as the body: genmint's invisible watermark in it, and the token it points to |
//! | `GET /v1/eip712` | EIP-712 domain and types in the `eth_signTypedData_v4` shape |
//! | `GET /healthz` | liveness and the node's chain, contract and operator |
//! | `GET /`, `/tokens/{id}`, `/gallery` | the web page ([`web`]) |

mod detect;
mod error;
mod jobs;
mod limits;
mod metrics;
mod tokens;
mod views;
mod web;

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::U256;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

pub use error::ApiError;
pub use limits::ApiLimits;
pub use views::{EventView, JobView};
pub use web::PageConfig;

use genmint_p2p::advert::AdvertisedModel;

use crate::chain::{ChainClient, DisputeState};
use crate::gallery::GalleryStore;
use crate::ipfs::KuboClient;
use crate::jobs::Jobs;
use crate::lifecycle::Tasks;
use crate::metrics::Metrics;
use crate::network::Network;
use crate::provenance::eip712::eip712_description;
use crate::provenance::ids::JobId;
use crate::replication::{ContentHolders, ReplicationStore};
use crate::spotcheck::{PeerChecks, SpotCheckStore};
use crate::verify::Report;

/// What the API serves from: the running node's parts.
#[derive(Clone)]
pub struct ApiState {
    pub jobs: Arc<Jobs>,
    pub chain: ChainClient,
    pub ipfs: KuboClient,
    pub spot_checks: SpotCheckStore,
    pub gallery: GalleryStore,
    /// The pin receipts of tokens' content.
    pub replication: ReplicationStore,
    /// The remote pinning services the node's Kubo pins tokens on, by name.
    pub remote_pin_services: Arc<[String]>,
    /// The node's network, when it is on one.
    pub network: Option<Arc<Network>>,
    /// The node's tasks: event streams end when they stop.
    pub tasks: Tasks,
    /// What the web page needs to know beyond the API.
    pub page: PageConfig,
    /// Rate limits per creator and client address, and the bound on event streams.
    pub limits: Arc<ApiLimits>,
    /// What `GET /metrics` shows.
    pub metrics: Arc<Metrics>,
}

/// Builds the router over a running node.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/jobs", axum::routing::post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/image", get(tokens::job_image))
        .route("/v1/models", get(models))
        .route("/v1/peers", get(peers))
        .route("/v1/tokens", get(tokens::list))
        .route("/v1/tokens/{id}/provenance", get(provenance))
        .route("/v1/tokens/{id}/holders", get(holders))
        .route("/v1/tokens/{id}/image", get(tokens::image))
        .route("/v1/deposits/{address}", get(tokens::deposit))
        .route(
            "/v1/detect",
            // Its own bound (an image, not JSON), which the handler enforces with a JSON error.
            axum::routing::post(detect::detect).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/fingerprints/{dhash}", get(detect::fingerprint_matches))
        .route("/v1/eip712", get(eip712))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(state))
}

/// Every model on the network, keyed by hash: what this node serves (`local`) and, from the
/// registered peers' fresh adverts, who else serves it at which price and load.
async fn models(State(node): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let mut models: BTreeMap<String, Value> = BTreeMap::new();
    let local: Vec<String> = node.jobs.models().descriptors().map(|m| m.hash.to_string()).collect();
    for model in node.jobs.models().descriptors() {
        let mut entry = serde_json::to_value(model).map_err(|e| ApiError::internal(e.to_string()))?;
        entry["local"] = json!(true);
        entry["price_wei"] = json!(node.jobs.min_fee().to_string());
        entry["providers"] = json!([]);
        models.insert(model.hash.to_string(), entry);
    }
    if let Some(network) = &node.network {
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
    // This node's own models first (its primary first), so a client without a preference picks it.
    let mut list: Vec<Value> = local.iter().filter_map(|hash| models.remove(hash)).collect();
    list.extend(models.into_values());
    Ok(Json(json!({ "models": list })))
}

/// A token's verification report with the spot checks nodes reported for it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenProvenance {
    #[serde(flatten)]
    report: Report,
    #[serde(flatten)]
    peer_checks: PeerChecks,
    /// Where the content is held: the signed pin receipts, and whether this node's Kubo has it.
    content_holders: ContentHolders,
    /// The token's on-chain dispute; status `fraud_confirmed` marks it forged.
    dispute: DisputeState,
}

/// The verification report of a token (decimal or 0x-hex id) against this node's chain and Kubo,
/// and the spot checks this node holds for it: 200 whether or not every check passes (`ok` and
/// `peerChecksOk` say), 404 when no such token exists.
async fn provenance(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<TokenProvenance>, ApiError> {
    Ok(Json(token_provenance(&node, token_id(&id)?).await?))
}

/// The report `GET /v1/tokens/{id}/provenance` serves, and the token page shows.
async fn token_provenance(node: &ApiState, token_id: U256) -> Result<TokenProvenance, ApiError> {
    if !node.chain.token_exists(token_id).await.map_err(|e| ApiError::internal(e.to_string()))? {
        return Err(ApiError::not_found(format!("token {token_id}")));
    }
    connect_to_holders(node, token_id).await;
    let (report, evidence) = crate::verify::inspect(&node.chain, &node.ipfs, token_id).await;
    let checks = node.spot_checks.of_token(token_id).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let content_holders = content_holders(node, token_id, &evidence).await?;
    let dispute = node.chain.dispute_of(token_id).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(TokenProvenance { report, peer_checks: PeerChecks::new(&checks), content_holders, dispute })
}

/// Connects this node's Kubo to the Kubos of the token's holders, so the content is found when
/// this node holds no copy and the minting node is gone.
async fn connect_to_holders(node: &ApiState, token_id: U256) {
    use crate::ipfs::SwarmPeers;
    let Ok(receipts) = node.replication.receipts(token_id).await else { return };
    let (chain_id, contract) = (node.chain.chain_id(), node.chain.address());
    let addresses: Vec<String> =
        crate::replication::holder_views(receipts, chain_id, contract, token_id, None)
            .into_iter()
            .filter(|h| h.receipt_ok)
            .flat_map(|h| h.kubo_addresses)
            .collect();
    if !addresses.is_empty()
        && let Err(e) = node.ipfs.connect(&addresses).await
    {
        tracing::debug!(error = %e, "the holders' Kubos did not answer");
    }
}

/// Where a token's content is held, checked against the CIDs the chain records.
async fn content_holders(
    node: &ApiState,
    token_id: U256,
    evidence: &crate::verify::Evidence,
) -> Result<ContentHolders, ApiError> {
    let cids = evidence.image_cid.as_deref().zip(evidence.metadata_cid.as_deref());
    let deployment = (node.chain.chain_id(), node.chain.address());
    let services = &node.remote_pin_services;
    crate::replication::holders_of(&node.replication, &node.ipfs, services, deployment, token_id, cids)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `GET /v1/tokens/{id}/holders`: where the token's content is held, without the rest of the
/// report.
async fn holders(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<ContentHolders>, ApiError> {
    let token = token_id(&id)?;
    let internal = |e: crate::chain::ChainError| ApiError::internal(e.to_string());
    let Some(record) = node.chain.provenance(token).await.map_err(internal)? else {
        return Err(ApiError::not_found(format!("token {id}")));
    };
    let event = node.chain.minted_event(token).await.map_err(internal)?;
    let evidence = crate::verify::Evidence {
        metadata_cid: Some(record.metadata_cid),
        image_cid: event.map(|e| e.image_cid),
        ..crate::verify::Evidence::default()
    };
    Ok(Json(content_holders(&node, token, &evidence).await?))
}

/// Reads a token id from a path: decimal or 0x-hex.
fn token_id(text: &str) -> Result<U256, ApiError> {
    crate::verify::parse_token_id(text)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message))
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
        if let Some(scheduler) = &defaults.scheduler {
            limits["default_scheduler"] = json!(scheduler);
        }
    }
    limits
}

/// This node's peer id and bootstrap addresses, and its connected peers.
async fn peers(State(node): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let Some(network) = &node.network else {
        return Ok(Json(json!({ "enabled": false, "peers": [] })));
    };
    let internal = |e: genmint_p2p::NetworkError| ApiError::internal(e.to_string());
    Ok(Json(json!({
        "enabled": true,
        "peer_id": network.peer_id().to_string(),
        "addresses": network.bootstrap_addrs().await.map_err(internal)?,
        "nat": network.nat_status().await.map_err(internal)?,
        "peers": network.peers().await.map_err(internal)?,
    })))
}

async fn eip712(State(node): State<Arc<ApiState>>) -> Json<Value> {
    Json(eip712_description(node.chain.chain_id(), node.chain.address()))
}

async fn healthz(State(node): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "chainId": node.chain.chain_id(),
        "contract": node.chain.address().to_checksum(None),
        "operator": node.jobs.operator().to_checksum(None),
        "model": node.jobs.models().primary().map(|m| m.hash.to_string()),
        "models": node.jobs.models().hashes().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peerId": node.network.as_ref().map(|n| n.peer_id().to_string()),
    }))
}

/// Reads a job id from a path: 0x + 64 hex digits, any case.
fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse().map_err(|e: crate::provenance::ids::IdError| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
    })
}
