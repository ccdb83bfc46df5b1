//! Per-token and per-donor rate limiting of writes (`--rate-limit N`, 0 disables): one token
//! bucket per key holding up to `2 * N` writes (the burst) and refilled at `N` per second.
//! A write over the limit answers 429 `rate_limited` with `Retry-After` (whole seconds) and is
//! never handed to the writer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Buckets beyond this many trigger a sweep of the full (idle) ones.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by a string (`token:…`, `donor:…`).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A refused write: how long until one more is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds to wait, at least 1.
    pub retry_after: u64,
}

impl RateLimiter {
    /// `per_second` writes per second per key with a burst of twice that; `None` when 0.
    #[must_use]
    pub fn new(per_second: u32) -> Option<RateLimiter> {
        (per_second > 0).then(|| RateLimiter {
            per_second: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one write from `key`'s bucket at `now`, or says how long to wait.
    ///
    /// # Errors
    /// [`Limited`] when the bucket is empty.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Limited> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            // Bounded by 1 / per_second <= 1 s, so the cast cannot overflow.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0 < wait <= 1")]
            let retry_after = (wait.ceil() as u64).max(1);
            Err(Limited { retry_after })
        }
    }

    /// [`RateLimiter::check_at`] now.
    ///
    /// # Errors
    /// [`Limited`] when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        self.check_at(key, Instant::now())
    }
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many writes; retry after {} s", self.retry_after),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_disables() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn bursts_then_refills() {
        let limiter = RateLimiter::new(2).unwrap_or_else(|| unreachable!());
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Err(Limited { retry_after: 1 }));
        // Keys are independent.
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        // Half a second later one write is back (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check_at("a", t1), Ok(()));
        assert!(limiter.check_at("a", t1).is_err());
        // Never more than the burst after a long pause.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..4 {
            assert_eq!(limiter.check_at("a", t2), Ok(()));
        }
        assert!(limiter.check_at("a", t2).is_err());
    }
}
