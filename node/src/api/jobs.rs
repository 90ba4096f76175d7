//! Job routes: submit, read, follow (SSE) and cancel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::views::{EventView, JobView};
use super::{ApiError, ApiState, job_id};
use crate::jobs::events::JobEvent;
use crate::jobs::{JobRecord, JobRoute, JobState};
use crate::provenance::eip712::{SignedCancel, SignedRequest};

pub async fn submit(
    State(node): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Result<Json<SignedRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    node.limits.addresses.check(client.ip())?;
    let Json(signed) = body.map_err(body_refusal)?;
    // Only a creator's own signature spends their allowance (admission refuses the rest).
    if signed.verify(node.jobs.domain()).is_ok() {
        node.limits.creators.check(signed.request.creator)?;
    }
    let (job, created) = node.jobs.submit(&signed).await?;
    Ok((if created { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(view(&node, &job).await?)))
}

/// Why a body was not read, with the code that names it.
fn body_refusal(e: JsonRejection) -> ApiError {
    let (status, code) = match &e {
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        JsonRejection::BytesRejection(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    let hint = match code {
        "unsupported_media_type" => "; send JSON with `Content-Type: application/json`",
        "payload_too_large" => "; a signed request is a few KB: check what is being sent",
        _ => "",
    };
    ApiError::new(status, code, format!("{}{hint}", e.body_text()))
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

/// Cancels a job for its creator: the body is the creator's signed `CancelJob`
/// (`{"deadline", "signature"}`); without it nothing is cancelled.
pub async fn cancel(
    State(node): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<JobView>, ApiError> {
    node.limits.addresses.check(client.ip())?;
    let id = job_id(&id)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_required",
            "cancelling a job needs its creator's signature: send {\"deadline\", \"signature\"} over the \
             EIP-712 CancelJob(jobId, deadline) of GET /v1/eip712 (`genmint cancel JOB_ID` signs it)",
        ));
    }
    let cancel: SignedCancel = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the cancel is unreadable: {e}; send {{\"deadline\": \"<unix seconds>\", \"signature\": \"0x…\"}}"),
        )
    })?;
    Ok(Json(JobView::from(&node.jobs.cancel(id, &cancel).await?)))
}

pub async fn events(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = job_id(&id)?;
    let slot = node.limits.streams.open(id)?;
    // Subscribe before reading the current state, so no change falls in between.
    let live = BroadcastStream::new(node.jobs.events().subscribe());
    let current = node.jobs.job(id).await?.ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let first = stream::once(async move { JobEvent::State(Box::new(current)) });
    let rest = live.filter_map(move |event| {
        let keep = event.ok().filter(|e| e.job_id() == id);
        async move { keep }
    });
    let tasks = node.tasks.clone();
    let stream =
        until_terminal(Box::pin(first.chain(rest))).take_until(async move { tasks.stopping().await });
    // The slot is held as long as the stream is: until it ends or the client goes away.
    let sse = stream.then(move |event| {
        let node = node.clone();
        let _slot = &slot;
        async move { Ok(to_sse(&node, &event).await) }
    });
    Ok(Sse::new(sse).keep_alive(KeepAlive::default()))
}

/// The events up to and including the first terminal one: the stream ends right after it, without
/// waiting for another event to arrive.
fn until_terminal(events: impl Stream<Item = JobEvent> + Unpin) -> impl Stream<Item = JobEvent> {
    stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        let event = events.next().await?;
        let rest = (!event.is_terminal()).then_some(events);
        Some((event, rest))
    })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::B256;

    use super::*;
    use crate::jobs::JobOutputs;
    use crate::jobs::testing::record;
    use crate::provenance::ids::JobId;

    #[tokio::test]
    async fn a_job_stream_ends_right_after_its_terminal_event() {
        let state =
            |state| JobEvent::State(Box::new(record(JobId(B256::ZERO), state, JobOutputs::default())));
        // Nothing comes after the terminal event: the stream must not wait for more.
        let events =
            stream::iter([state(JobState::Queued), state(JobState::Minted), state(JobState::Failed)])
                .chain(stream::pending());
        let seen = tokio::time::timeout(
            Duration::from_secs(2),
            until_terminal(Box::pin(events)).collect::<Vec<_>>(),
        )
        .await
        .expect("the stream ended");
        let names: Vec<&str> = seen.iter().map(JobEvent::name).collect();
        assert_eq!(names, ["queued", "minted"]);
    }
}
