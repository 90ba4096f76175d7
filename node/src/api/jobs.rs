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

use super::views::{EventView, JobView};
use super::{ApiError, ApiState, job_id};
use crate::jobs::events::JobEvent;
use crate::jobs::{JobRecord, JobRoute, JobState};
use crate::provenance::eip712::SignedRequest;

pub async fn submit(
    State(node): State<Arc<ApiState>>,
    body: Result<Json<SignedRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let Json(signed) = body.map_err(|e| {
        let status = match e {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // Too large (413) or unreadable.
            JsonRejection::BytesRejection(_) => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "bad_request", e.body_text())
    })?;
    let (job, created) = node.jobs.submit(&signed).await?;
    Ok((if created { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(view(&node, &job).await?)))
}

pub async fn get(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let job = node.jobs.job(id).await?.ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(view(&node, &job).await?))
}

/// The job's view, with its place in this node's queue while it waits for the generator.
async fn view(node: &ApiState, job: &JobRecord) -> Result<JobView, ApiError> {
    let mut view = JobView::from(job);
    if job.route == JobRoute::Local && matches!(job.state, JobState::Received | JobState::Queued) {
        view.queue_position = Some(node.jobs.store().jobs_ahead(job.id).await?);
    }
    Ok(view)
}

pub async fn cancel(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    Ok(Json(JobView::from(&node.jobs.cancel(id).await?)))
}

pub async fn events(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = job_id(&id)?;
    // Subscribe before reading the current state, so no change falls in between.
    let live = BroadcastStream::new(node.jobs.events().subscribe());
    let current = node.jobs.job(id).await?.ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let done = current.state.is_terminal();
    let first = stream::once(async move { JobEvent::State(Box::new(current)) });
    let rest = live
        .filter_map(move |event| {
            let keep = event.ok().filter(|e| e.job_id() == id);
            async move { keep }
        })
        .take_while(move |_| std::future::ready(!done));
    // Stop after the first terminal event, which is still delivered, or when the node stops.
    let mut finished = false;
    let tasks = node.tasks.clone();
    let stream = first
        .chain(rest)
        .take_while(move |event| {
            let go_on = !finished;
            finished = finished || event.is_terminal();
            std::future::ready(go_on)
        })
        .take_until(async move { tasks.stopping().await });
    let sse = stream.then(move |event| {
        let node = node.clone();
        async move { Ok(to_sse(&node, &event).await) }
    });
    Ok(Sse::new(sse).keep_alive(KeepAlive::default()))
}

async fn to_sse(node: &ApiState, event: &JobEvent) -> Event {
    let data = match event {
        JobEvent::State(job) => match view(node, job).await {
            Ok(view) => serde_json::to_string(&EventView::State(Box::new(view))),
            Err(e) => Ok(serde_json::json!({ "error": e.message }).to_string()),
        },
        other => serde_json::to_string(&EventView::from(other)),
    };
    let data = data.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    Event::default().event(event.name()).data(data)
}
