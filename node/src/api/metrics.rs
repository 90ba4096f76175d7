//! `GET /metrics`: the node's Prometheus metrics ([`crate::metrics`]), the gauges read from the
//! job store, the inference threads and the network at each scrape.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use super::error::ApiError;
use crate::metrics::Snapshot;

/// What Prometheus asks for and gets: the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(node): State<Arc<ApiState>>) -> Result<impl IntoResponse, ApiError> {
    let (states, oldest) = node.jobs.store().census().await?;
    let waiting = node.jobs.models().waiting().await;
    let peers = match &node.network {
        // A network that does not answer shows no peers rather than failing the scrape.
        Some(network) => Some(network.peers().await.map_or(0, |peers| peers.len() as i64)),
        None => None,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let snapshot = Snapshot {
        jobs_by_state: states.into_iter().map(|(state, count)| (state.as_str(), count)).collect(),
        oldest_unfinished_secs: oldest.map_or(0, |received| (now - received).max(0)),
        waiting_per_model: waiting.into_iter().map(|(model, n)| (model, n as i64)).collect(),
        peers,
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], node.metrics.render(&snapshot)))
}
