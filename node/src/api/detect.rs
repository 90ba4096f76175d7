//! `POST /v1/detect`: the request body is an image file (PNG, JPEG or WebP, at most
//! [`MAX_UPLOAD_BYTES`]); the answer says whether genmint's invisible watermark is in it, its tag
//! and confidence, and the token of this node's contract the tag points to (`genmint detect
//! --json` prints the same shape). Free for anyone: nothing is stored.
//!
//! Without a watermark, the answer lists the tokens whose pinned image looks like the upload
//! (`fingerprintMatches`, from the gallery's fingerprint index), which
//! `GET /v1/fingerprints/{dhash}` answers for a dHash alone.
//!
//! 413 `too_large` for a body (or an image) over the bounds, 415 `not_an_image` for anything
//! else, 400 `bad_request` for an empty body, 503 `busy` while [`CONCURRENT_DETECTIONS`] others
//! are being read (decoding takes up to 128 MiB and some CPU each).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;

use super::error::BUSY_RETRY_AFTER_SECS;
use super::{ApiError, ApiState};
use crate::gallery::GalleryStore;
use crate::verify::copy::{
    self, CopyError, DetectReport, FingerprintIndex, FingerprintMatch, MAX_UPLOAD_BYTES,
};
use crate::verify::regenerate::DHASH_THRESHOLD;

/// The most tokens a fingerprint lookup names.
const MAX_MATCHES: usize = 5;

/// How many uploads are decoded at once, node-wide.
pub const CONCURRENT_DETECTIONS: usize = 2;
static DETECTIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_DETECTIONS);

/// How long, and how much, an upload over the bound is read on and discarded before the 413 goes
/// out, so that a client still sending sees the answer rather than a reset connection (the
/// lingering close web servers do).
const LINGER: Duration = Duration::from_secs(3);
const LINGER_BYTES: usize = 2 * MAX_UPLOAD_BYTES;

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
}

pub(super) async fn detect(
    State(node): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DetectReport>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let bound = format!("send an image file of at most {MAX_UPLOAD_BYTES} bytes as the request body");
    let mut body = body.into_data_stream();
    if declared.is_some_and(|length| length > MAX_UPLOAD_BYTES) {
        linger(&mut body, 0).await;
        return Err(too_large(bound));
    }
    let Ok(_permit) = DETECTIONS.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("this node is reading {CONCURRENT_DETECTIONS} other images; send it again shortly"),
        )
        .retry_after(BUSY_RETRY_AFTER_SECS));
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("reading the upload failed: {e}"))
        })?;
        if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
            linger(&mut body, bytes.len() + chunk.len()).await;
            return Err(too_large(bound));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request body is empty: send the image file itself (for example curl --data-binary @copy.jpg)",
        ));
    }
    let report = copy::detect_and_find(&node.chain, &node.gallery, bytes, 0).await.map_err(|e| match e {
        e @ CopyError::NotAnImage(_) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image", e.to_string())
        }
        e @ CopyError::TooLarge(_) => too_large(e.to_string()),
    })?;
    Ok(Json(report))
}

/// Reads and discards the rest of an upload over the bound, for at most [`LINGER`] and until
/// [`LINGER_BYTES`] were read in all (`read` so far).
async fn linger(body: &mut axum::body::BodyDataStream, mut read: usize) {
    let drain = async {
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len();
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

impl FingerprintIndex for GalleryStore {
    async fn nearest(&self, fingerprint: u64) -> Result<Vec<FingerprintMatch>, String> {
        let near = GalleryStore::nearest(self, fingerprint, DHASH_THRESHOLD, MAX_MATCHES).await;
        Ok(near
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(id, distance)| FingerprintMatch { token_id: id.to_string(), distance })
            .collect())
    }
}

/// `GET /v1/fingerprints/{dhash}`: the tokens whose pinned image's 64-bit dHash (0x and 16 hex
/// digits, as `POST /v1/detect` reports a file's) is within [`DHASH_THRESHOLD`] bits, nearest first.
pub(super) async fn fingerprint_matches(
    State(node): State<Arc<ApiState>>,
    Path(dhash): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let fingerprint = dhash
        .strip_prefix("0x")
        .filter(|hex| hex.len() == 16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{dhash:?} is not a 64-bit dHash: give 0x and 16 hex digits (POST /v1/detect reports a file's)"),
            )
        })?;
    let matches = FingerprintIndex::nearest(&node.gallery, fingerprint).await.map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({
        "fingerprint": format!("{fingerprint:#018x}"),
        "maxDistance": DHASH_THRESHOLD,
        "matches": matches,
    })))
}
