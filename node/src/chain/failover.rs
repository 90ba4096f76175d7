//! [`Failover`]: one JSON-RPC transport over several endpoints, tried in the configured order.
//!
//! Every request goes to the endpoint in use. When that endpoint cannot be reached (connection
//! refused, reset or timed out) or answers with an HTTP error status of its own (429, 5xx), the
//! same request goes to the next endpoint, which then stays in use; so a node keeps reading and
//! minting while one RPC provider is down, and comes back to the first only when the one in use
//! fails in turn. An answer from the chain (a result, or a JSON-RPC error such as a revert) is
//! never tried elsewhere. Sending a signed transaction twice is harmless: both endpoints hold the
//! same transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::{Http, reqwest};
use alloy::transports::{RpcError, TransportError, TransportErrorKind, TransportFut};

/// Several RPC endpoints of one chain as one transport; cheap to clone (clones share the
/// endpoint in use).
#[derive(Clone, Debug)]
pub struct Failover {
    endpoints: Arc<[Endpoint]>,
    in_use: Arc<AtomicUsize>,
}

#[derive(Clone, Debug)]
struct Endpoint {
    url: reqwest::Url,
    http: Http<reqwest::Client>,
}

impl Failover {
    /// The endpoints in order of preference, sharing one HTTP client. At least one.
    pub fn new(client: reqwest::Client, urls: Vec<reqwest::Url>) -> Option<Self> {
        if urls.is_empty() {
            return None;
        }
        let endpoints = urls
            .into_iter()
            .map(|url| Endpoint { http: Http::with_client(client.clone(), url.clone()), url })
            .collect();
        Some(Self { endpoints, in_use: Arc::new(AtomicUsize::new(0)) })
    }

    /// The endpoint requests go to now.
    pub fn in_use(&self) -> &reqwest::Url {
        &self.endpoints[self.in_use.load(Ordering::Relaxed) % self.endpoints.len()].url
    }

    async fn send(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let first = self.in_use.load(Ordering::Relaxed);
        let count = self.endpoints.len();
        let mut last_error = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            let endpoint = &self.endpoints[index];
            let mut http = endpoint.http.clone();
            match tower::Service::call(&mut http, request.clone()).await {
                Ok(response) => {
                    if offset > 0 {
                        self.in_use.store(index, Ordering::Relaxed);
                        tracing::warn!(endpoint = %endpoint.url, "RPC failover: now using this endpoint");
                    }
                    return Ok(response);
                }
                Err(error) if endpoint_failed(&error) => {
                    tracing::warn!(endpoint = %endpoint.url, %error, "RPC endpoint failed; trying the next");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| TransportErrorKind::custom_str("no RPC endpoint is configured")))
    }
}

/// Whether the endpoint itself failed (rather than the chain answering).
fn endpoint_failed(error: &TransportError) -> bool {
    match error {
        RpcError::Transport(TransportErrorKind::Custom(_) | TransportErrorKind::BackendGone) => true,
        RpcError::Transport(TransportErrorKind::HttpError(http)) => {
            http.status == 429 || (500..600).contains(&http.status)
        }
        _ => false,
    }
}

impl tower::Service<RequestPacket> for Failover {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

#[cfg(test)]
mod tests {
    use alloy::transports::HttpError;

    use super::*;

    #[test]
    fn only_an_endpoints_own_failure_moves_on() {
        let http = |status| {
            RpcError::Transport(TransportErrorKind::HttpError(HttpError { status, body: String::new() }))
        };
        assert!(endpoint_failed(&TransportErrorKind::custom_str("connection refused")));
        assert!(endpoint_failed(&TransportErrorKind::backend_gone()));
        assert!(endpoint_failed(&http(503)) && endpoint_failed(&http(429)));
        assert!(!endpoint_failed(&http(400)), "a bad request is the same everywhere");
        let reverted = RpcError::ErrorResp(alloy::rpc::json_rpc::ErrorPayload {
            code: 3,
            message: "execution reverted".into(),
            data: None,
        });
        assert!(!endpoint_failed(&reverted), "the chain answered");
    }
}
