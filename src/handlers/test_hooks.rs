//! Routes compiled only with the `test-hooks` feature, for the integration tests: a handler
//! that panics (at once, or after an await) and one that takes a while. Release builds never contain them.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::error::AppError;
use crate::http::query::param;
use crate::http::{Body, TEXT_PLAIN, response};

/// Longest sleep a test may ask for.
const MAX_SLEEP_MS: u64 = 60_000;

pub fn panic() -> Result<Response<Body>, AppError> {
    panic!("test hook: deliberate panic");
}

/// `?after_ms=`: panic only after awaiting that long, inside the boxed handler future rather
/// than while the request is planned.
pub fn panic_after_ms(query: Option<&str>) -> Option<u64> {
    param(query, "after_ms").and_then(|v| v.parse::<u64>().ok()).map(|ms| ms.min(MAX_SLEEP_MS))
}

pub async fn panic_after(ms: u64) -> Result<Response<Body>, AppError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    panic!("test hook: deliberate panic after {ms} ms");
}

/// `?ms=`: how long to sleep (100 ms when absent, at most a minute).
pub fn sleep_ms(query: Option<&str>) -> u64 {
    param(query, "ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(100).min(MAX_SLEEP_MS)
}

pub async fn sleep(ms: u64) -> Result<Response<Body>, AppError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(response(StatusCode::OK, TEXT_PLAIN, Bytes::from(format!("slept {ms} ms"))))
}
