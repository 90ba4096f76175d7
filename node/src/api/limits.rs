//! Bounds per client, so no one creator or address can crowd out the others:
//!
//! ```text
//! POST /v1/jobs, DELETE /v1/jobs/{id} ─► bucket of the client's address ─┐
//! POST /v1/jobs (signature verified)  ─► bucket of the request's creator ─┴─► 429 rate_limited + Retry-After
//! GET /v1/jobs/{id}/events            ─► a stream slot (per job and in all) ─► 429 too_many_streams
//! ```
//! Buckets are token buckets: a client may send a minute's allowance at once, and it refills
//! evenly over the minute. A creator is charged only once their signature verifies, so nobody can
//! use up another creator's allowance.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alloy::primitives::Address;
use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use crate::config::LimitsConfig;
use crate::provenance::ids::JobId;

/// How many clients' buckets are kept at most; past it, the full ones (idle clients) are dropped.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// How long a client told "too many streams" waits before it asks again, in seconds.
const STREAMS_RETRY_AFTER_SECS: u64 = 5;

/// The API's bounds, from `[limits]`.
pub struct ApiLimits {
    pub creators: RateLimiter<Address>,
    pub addresses: RateLimiter<IpAddr>,
    pub streams: Streams,
}

impl ApiLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            creators: RateLimiter::new("creator", config.creator_requests_per_minute),
            addresses: RateLimiter::new("address", config.address_requests_per_minute),
            streams: Streams::new(config.max_streams, config.max_streams_per_job),
        }
    }
}

/// Token buckets keyed by client: `per_minute` requests a minute each (0: no limit).
pub struct RateLimiter<K> {
    what: &'static str,
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone + std::fmt::Display> RateLimiter<K> {
    pub fn new(what: &'static str, per_minute: u32) -> Self {
        Self { what, per_minute, buckets: Mutex::default() }
    }

    /// Counts one request of `key`, or refuses it with 429 `rate_limited` and the seconds until
    /// the next one is allowed.
    pub fn check(&self, key: K) -> Result<(), ApiError> {
        self.take(key.clone(), Instant::now()).map_err(|wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "the {} {key} sent more than {} requests in a minute; try again in {wait} s",
                    self.what, self.per_minute
                ),
            )
            .retry_after(wait)
        })
    }

    /// Takes a token from `key`'s bucket, or says how many seconds until one is there.
    fn take(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let refilled = |bucket: &Bucket| {
            (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second)
                .min(capacity)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS {
            buckets.retain(|_, bucket| refilled(bucket) < capacity);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = refilled(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The event streams open now: at most `max_total` in all and `max_per_job` for one job.
pub struct Streams {
    total: Arc<Semaphore>,
    max_total: usize,
    per_job: Arc<Mutex<HashMap<JobId, usize>>>,
    max_per_job: usize,
}

/// One open event stream; dropping it (the client went away, the stream ended) frees the slot.
pub struct StreamSlot {
    _total: OwnedSemaphorePermit,
    per_job: Arc<Mutex<HashMap<JobId, usize>>>,
    id: JobId,
}

impl Streams {
    pub fn new(max_total: usize, max_per_job: usize) -> Self {
        Self { total: Arc::new(Semaphore::new(max_total)), max_total, per_job: Arc::default(), max_per_job }
    }

    /// A slot for one more stream of job `id`, or 429 `too_many_streams` with `Retry-After`.
    pub fn open(&self, id: JobId) -> Result<StreamSlot, ApiError> {
        let refuse = |message: String| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", message)
                .retry_after(STREAMS_RETRY_AFTER_SECS)
        };
        let total = self.total.clone().try_acquire_owned().map_err(|_| {
            refuse(format!(
                "this node serves {} event streams already, its limit; close one or poll GET /v1/jobs/{{id}}",
                self.max_total
            ))
        })?;
        let mut per_job = self.per_job.lock().unwrap_or_else(|p| p.into_inner());
        let open = per_job.entry(id).or_default();
        if *open >= self.max_per_job {
            return Err(refuse(format!(
                "job {id} has {} event streams open already, the limit per job; close one or poll GET /v1/jobs/{id}",
                self.max_per_job
            )));
        }
        *open += 1;
        Ok(StreamSlot { _total: total, per_job: self.per_job.clone(), id })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut per_job = self.per_job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = per_job.get_mut(&self.id) {
            *open -= 1;
            if *open == 0 {
                per_job.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::B256;

    use super::*;

    #[test]
    fn a_bucket_allows_a_minutes_worth_at_once_then_refills_evenly() {
        let limiter = RateLimiter::new("address", 3);
        let start = Instant::now();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            limiter.take(ip, start).unwrap();
        }
        assert_eq!(limiter.take(ip, start), Err(20), "one token every 20 s");
        assert_eq!(limiter.take(ip, start + Duration::from_secs(15)), Err(5));
        limiter.take(ip, start + Duration::from_secs(21)).unwrap();
        limiter.take([10, 0, 0, 2].into(), start).expect("another client has its own bucket");
        let refused = limiter.check(ip).unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
        assert!(refused.retry_after_secs.is_some_and(|s| s > 0), "{refused:?}");
        assert!(RateLimiter::new("creator", 0).check(Address::ZERO).is_ok(), "0: no limit");
    }

    #[test]
    fn streams_are_bounded_per_job_and_in_all_and_a_closed_one_frees_its_slot() {
        let streams = Streams::new(3, 2);
        let (a, b) = (JobId(B256::repeat_byte(1)), JobId(B256::repeat_byte(2)));
        let first = streams.open(a).unwrap();
        let _second = streams.open(a).unwrap();
        let refused = streams.open(a).err().expect("two per job");
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"));
        let _other = streams.open(b).unwrap();
        assert!(streams.open(b).is_err(), "three in all");
        drop(first);
        streams.open(a).expect("a closed stream frees its slot");
    }
}
