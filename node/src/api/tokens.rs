//! Token routes: the gallery's listing (`GET /v1/tokens`), a token's or a job's image from IPFS,
//! and a creator's deposit.

use std::sync::Arc;

use alloy::primitives::Address;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, job_id, token_id};
use crate::gallery::{GalleryCursor, GalleryPage, TokenQuery};
use crate::ipfs::{Cid, ContentStore};
use crate::verify::MAX_IMAGE_BYTES;

/// How many tokens a page holds unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 24;

/// `GET /v1/tokens`'s query, as text: each value is checked and named when it is unreadable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    creator: Option<String>,
    model: Option<String>,
    node: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

impl ListParams {
    /// The typed query; empty values count as absent (an HTML form sends them).
    pub(super) fn query(&self) -> Result<TokenQuery, ApiError> {
        fn given<T: std::str::FromStr>(
            name: &str,
            value: Option<&String>,
            shape: &str,
        ) -> Result<Option<T>, ApiError> {
            value
                .filter(|v| !v.is_empty())
                .map(|v| v.parse().map_err(|_| bad_request(format!("{name}={v:?} is not {shape}"))))
                .transpose()
        }
        Ok(TokenQuery {
            creator: given("creator", self.creator.as_ref(), "an address (0x and 40 hex digits)")?,
            model: given("model", self.model.as_ref(), "a model hash (0x and 64 hex digits)")?,
            node: given("node", self.node.as_ref(), "an operator address (0x and 40 hex digits)")?,
            after: self
                .cursor
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c.parse::<GalleryCursor>().map_err(bad_request))
                .transpose()?,
            limit: self.limit.unwrap_or(DEFAULT_PAGE),
        })
    }
}

pub(super) fn list_params(params: Result<Query<ListParams>, QueryRejection>) -> Result<TokenQuery, ApiError> {
    let Query(params) = params.map_err(|e| bad_request(e.body_text()))?;
    params.query()
}

/// Lists the contract's tokens, newest first: all, or a creator's, a model's or a node's.
pub async fn list(
    State(node): State<Arc<ApiState>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<GalleryPage>, ApiError> {
    let query = list_params(params)?;
    Ok(Json(node.gallery.page(query).await.map_err(|e| ApiError::internal(e.to_string()))?))
}

/// A token's image, by the image CID its mint event names (from the gallery, else the chain).
pub async fn image(State(node): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let token = token_id(&id)?;
    let listed = node.gallery.token(token).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let cid = match listed.and_then(|t| t.image_cid) {
        Some(cid) => cid,
        None => {
            let minted =
                node.chain.minted_event(token).await.map_err(|e| ApiError::internal(e.to_string()))?;
            let named = minted.ok_or_else(|| ApiError::not_found(format!("token {id}")))?.image_cid;
            named.parse().map_err(|_| ApiError::not_found(format!("a readable image CID for token {id}")))?
        }
    };
    png(&node, &cid).await
}

/// A job's image, once it is pinned.
pub async fn job_image(
    State(node): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = node.jobs.job(id).await?.ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let cid = job
        .outputs
        .image_cid
        .ok_or_else(|| ApiError::not_found(format!("an image of job {id} (not pinned yet)")))?;
    png(&node, &cid).await
}

/// The PNG behind `cid`, from IPFS; the same CID is always the same bytes, so it may be cached for good.
async fn png(node: &ApiState, cid: &Cid) -> Result<Response, ApiError> {
    let bytes = node.ipfs.cat(cid, MAX_IMAGE_BYTES).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "ipfs",
            format!("the image {cid} cannot be read from IPFS: {e}"),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
        bytes,
    )
        .into_response())
}

/// What `address` has deposited on the contract, in wei.
pub async fn deposit(
    State(node): State<Arc<ApiState>>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account: Address = address
        .parse()
        .map_err(|_| bad_request(format!("{address:?} is not an address (0x and 40 hex digits)")))?;
    let funds = node.chain.funds_of(account).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "chain",
            format!("the deposit cannot be read from the chain: {e}"),
        )
    })?;
    Ok(Json(json!({ "account": account.to_checksum(None), "deposit_wei": funds.to_string() })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_are_typed_and_each_unreadable_one_is_named() {
        let params = ListParams {
            creator: Some(format!("0x{}", "ab".repeat(20))),
            model: Some(String::new()),
            cursor: Some("7.1".into()),
            ..ListParams::default()
        };
        let query = params.query().unwrap();
        assert_eq!(query.creator, Some(Address::repeat_byte(0xab)));
        assert_eq!(query.model, None, "an empty value is no filter");
        assert_eq!(query.after, Some(GalleryCursor { block_number: 7, log_index: 1 }));
        assert_eq!(query.limit, DEFAULT_PAGE);
        for (params, says) in [
            (ListParams { creator: Some("me".into()), ..ListParams::default() }, "creator=\"me\""),
            (ListParams { model: Some("0x12".into()), ..ListParams::default() }, "model hash"),
            (ListParams { cursor: Some("next".into()), ..ListParams::default() }, "cursor \"next\""),
        ] {
            let err = params.query().unwrap_err();
            assert!(err.message.contains(says), "{}", err.message);
        }
    }
}
