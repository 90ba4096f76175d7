//! Job routes: submit, read, follow (SSE) and cancel.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::ApiError;
use crate::jobs::JobRecord;
use crate::jobs::events::JobEvent;
use crate::jobs::pipeline::Pipeline;
use crate::provenance::eip712::SignedRequest;

pub async fn submit(
    State(pipeline): State<Arc<Pipeline>>,
    body: Result<Json<SignedRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let Json(signed) = body.map_err(|e| {
        let status = match e {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // Too large (413) or unreadable.
            JsonRejection::BytesRejection(_) => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "bad_request", e.body_text())
    })?;
    let (job, created) = pipeline.submit(&signed).await?;
    Ok((if created { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(job)))
}

pub async fn get(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = normalize(&id)?;
    pipeline.store().get(&id)?.map(Json).ok_or_else(|| ApiError::not_found(format!("job {id}")))
}

pub async fn cancel(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = normalize(&id)?;
    Ok(Json(pipeline.cancel(&id).await?))
}

pub async fn events(
    State(pipeline): State<Arc<Pipeline>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = normalize(&id)?;
    // Subscribe before reading the current state, so no change falls in between.
    let live = BroadcastStream::new(pipeline.events().subscribe());
    let current = pipeline.store().get(&id)?.ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let done = current.state.is_terminal();
    let first = stream::once(async move { JobEvent::State(Box::new(current)) });
    let rest = live
        .filter_map(move |event| {
            let keep = event.ok().filter(|e| e.job_id() == id);
            async move { keep }
        })
        .take_while(move |_| std::future::ready(!done));
    // Stop after the first terminal event, which is still delivered.
    let mut finished = false;
    let stream = first.chain(rest).take_while(move |event| {
        let go_on = !finished;
        finished = finished || event.is_terminal();
        std::future::ready(go_on)
    });
    Ok(Sse::new(stream.map(|event| Ok(to_sse(&event)))).keep_alive(KeepAlive::default()))
}

fn to_sse(event: &JobEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    Event::default().event(event.name()).data(data)
}

/// Job ids are request digests: 32 bytes as 0x-prefixed lowercase hex.
fn normalize(id: &str) -> Result<String, ApiError> {
    let hex = id.strip_prefix("0x").unwrap_or(id).to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("0x{hex}"))
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{id:?} is not a job id (0x + 64 hex digits)"),
        ))
    }
}
