//! A small IPFS Pinning Service API server (the public spec's `POST /pins` and `GET /pins`) for
//! the tests, backed by a Kubo of its own: a pin request makes that Kubo connect to the
//! requester's origins and pin the CID, and its addresses are the delegates. Access needs the
//! bearer token it was started with.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use genmint_node::devnet::kubo::KuboDaemon;
use serde::Deserialize;
use serde_json::{Value, json};

/// One pin the service holds: (request id, cid, name, status).
type Pin = (String, String, String, String);

#[derive(Clone)]
struct Service {
    token: String,
    kubo_api: String,
    delegates: Vec<String>,
    pins: Arc<Mutex<Vec<Pin>>>,
}

pub(crate) struct PinningService {
    pub endpoint: String,
    pub kubo: KuboDaemon,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PinningService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn rpc(api: &str, path: &str, args: &[(&str, &str)]) -> Result<Value> {
    let url = reqwest::Url::parse_with_params(&format!("{api}/api/v0/{path}"), args)?;
    Ok(reqwest::Client::new().post(url).send().await?.error_for_status()?.json().await?)
}

fn status_json(id: &str, cid: &str, name: &str, status: &str, delegates: &[String]) -> Value {
    json!({
        "requestid": id, "status": status, "created": "2026-01-01T00:00:00Z",
        "pin": {"cid": cid, "name": name}, "delegates": delegates, "info": {},
    })
}

fn authorized(service: &Service, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", service.token))
}

#[derive(Deserialize)]
struct PinBody {
    cid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    origins: Vec<String>,
}

async fn add(State(service): State<Service>, headers: HeaderMap, Json(body): Json<PinBody>) -> Response {
    if !authorized(&service, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"reason": "UNAUTHORIZED"}})))
            .into_response();
    }
    let id = format!("req-{}", service.pins.lock().unwrap().len() + 1);
    service.pins.lock().unwrap().push((id.clone(), body.cid.clone(), body.name.clone(), "pinning".into()));
    let status = status_json(&id, &body.cid, &body.name, "pinning", &service.delegates);
    let (worker, request) = (service.clone(), id.clone());
    tokio::spawn(async move {
        for origin in &body.origins {
            let _ = rpc(&worker.kubo_api, "swarm/connect", &[("arg", origin)]).await;
        }
        let pinned = rpc(&worker.kubo_api, "pin/add", &[("arg", &body.cid)]).await.is_ok();
        for pin in worker.pins.lock().unwrap().iter_mut().filter(|p| p.0 == request) {
            pin.3 = if pinned { "pinned" } else { "failed" }.into();
        }
    });
    (StatusCode::ACCEPTED, Json(status)).into_response()
}

async fn list(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !authorized(&service, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"reason": "UNAUTHORIZED"}})))
            .into_response();
    }
    let wanted =
        |key: &str, value: &str| query.get(key).is_none_or(|list| list.split(',').any(|v| v == value));
    let results: Vec<Value> = service
        .pins
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, cid, name, status)| {
            wanted("cid", cid) && wanted("name", name) && wanted("status", status)
        })
        .map(|(id, cid, name, status)| status_json(id, cid, name, status, &service.delegates))
        .collect();
    Json(json!({"count": results.len(), "results": results})).into_response()
}

impl PinningService {
    /// Starts the service on a free loopback port, with its own networked Kubo under `dir`.
    pub async fn start(dir: &std::path::Path, token: &str) -> Result<Self> {
        let kubo = KuboDaemon::start_networked(dir).await?;
        let id = rpc(kubo.api_url(), "id", &[]).await?;
        let peer = id["ID"].as_str().unwrap_or_default().to_owned();
        let delegates = id["Addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| if a.contains("/p2p/") { a.to_owned() } else { format!("{a}/p2p/{peer}") })
            .collect();
        let service = Service {
            token: token.to_owned(),
            kubo_api: kubo.api_url().to_owned(),
            delegates,
            pins: Arc::default(),
        };
        let app = Router::new().route("/pins", get(list).post(add)).with_state(service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { endpoint, kubo, server })
    }
}
