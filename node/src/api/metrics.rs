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
use crate::network::{ConnectionKind, reachability_name};

/// What Prometheus asks for and gets: the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(node): State<Arc<ApiState>>) -> Result<impl IntoResponse, ApiError> {
    let (states, oldest) = node.jobs.store().census().await?;
    let waiting = node.jobs.models().waiting().await;
    // A network that does not answer shows no peers rather than failing the scrape.
    let (peers, relayed_peers, reachability) = match &node.network {
        Some(network) => {
            let peers = network.peers().await.unwrap_or_default();
            let relayed = peers.iter().filter(|p| p.connection == ConnectionKind::Relayed).count();
            let reachability =
                network.nat_status().await.map_or("unknown", |s| reachability_name(s.reachability));
            (Some(peers.len() as i64), Some(relayed as i64), Some(reachability))
        }
        None => (None, None, None),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let snapshot = Snapshot {
        jobs_by_state: states.into_iter().map(|(state, count)| (state.as_str(), count)).collect(),
        oldest_unfinished_secs: oldest.map_or(0, |received| (now - received).max(0)),
        waiting_per_model: waiting.into_iter().map(|(model, n)| (model, n as i64)).collect(),
        peers,
        relayed_peers,
        reachability,
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], node.metrics.render(&snapshot)))
}
