//! API errors: every failure becomes `{"error": {"code", "message"}}` with a 4xx/5xx status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jobs::admission::RefusalCode;
use crate::jobs::{CancelError, StoreError, SubmitError};

/// How long a client told "busy" waits before it asks again (`Retry-After`, seconds): about
/// the time a small model takes to free a slot.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (seconds), with a 429 or 503.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None }
    }

    /// A refusal that passes: the client should try again after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => Self::not_found(format!("job {id}")),
            StoreError::Transition { from, .. } => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the job is {from} and can no longer be changed that way"),
            ),
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Rejected(r) => {
                let status = match r.code {
                    RefusalCode::BadSignature => StatusCode::UNAUTHORIZED,
                    RefusalCode::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
                    RefusalCode::InvalidPrompt
                    | RefusalCode::PromptTooLong
                    | RefusalCode::NegativePromptUnsupported
                    | RefusalCode::UnknownModel
                    | RefusalCode::FeeTooLow
                    | RefusalCode::OutOfRange
                    | RefusalCode::Expired => StatusCode::UNPROCESSABLE_ENTITY,
                };
                Self::new(status, r.code.as_str(), r.message)
            }
            SubmitError::Busy(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
                .retry_after(BUSY_RETRY_AFTER_SECS),
            SubmitError::Store(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::Store(store) => store.into(),
            CancelError::NotFound(id) => Self::not_found(format!("job {id}")),
            e @ CancelError::BadSignature(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string())
            }
            e @ CancelError::NotCreator(_) => Self::new(StatusCode::FORBIDDEN, "not_creator", e.to_string()),
            e @ CancelError::Expired { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "expired", e.to_string())
            }
        }
    }
}
