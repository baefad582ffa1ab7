//! The hyper service: match the route, run its handler under the request timeout, turn errors
//! and panics into problem responses, stamp `Server` and `x-request-id` on every response
//! (hyper writes `Date`), add `Connection: close` while draining, and record metrics and the
//! access log.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderValue, Request, Response, Version};

use crate::app::App;
use crate::error::AppError;
use crate::handlers;
use crate::http::request_id::{self, REQUEST_ID};
use crate::http::{Body, stamp};
use crate::router::Match;

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Most query parameters a request may carry. The routes read one or two; a flood of them is
/// refused (400) before any handler scans it.
pub const MAX_QUERY_PARAMS: usize = 64;

const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Refusals decided from the request head alone, before the handler: framing that smuggling
/// relies on, oversized header values and floods of query parameters.
fn refuse_early(parts: &Parts, max_header_bytes: usize) -> Option<AppError> {
    let headers = &parts.headers;
    if headers.values().any(|v| v.len() > max_header_bytes) {
        return Some(AppError::HeaderTooLarge { limit: max_header_bytes });
    }
    if headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH) {
        return Some(AppError::BadRequest(
            "Content-Length and Transfer-Encoding together are refused (request smuggling).".to_owned(),
        ));
    }
    if let Some(q) = parts.uri.query()
        && q.bytes().filter(|b| *b == b'&').count() >= MAX_QUERY_PARAMS
    {
        return Some(AppError::BadRequest(format!("At most {MAX_QUERY_PARAMS} query parameters are accepted.")));
    }
    None
}

/// Answers one request. Never fails: every error is already a response.
pub async fn handle<B>(app: &App, req: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let shard = &app.shard;
    shard.in_flight.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let id = request_id::from_request(&parts);
    let (mut res, template, route) = match app.router.find(&parts.method, parts.uri.path()) {
        Match::Found { handler, params, template, route } => {
            let res = match refuse_early(&parts, app.ops.max_header_bytes) {
                Some(e) => {
                    let mut res = e.into_response(template, Some(&id));
                    res.headers_mut().insert(CONNECTION, CLOSE);
                    res
                }
                None => {
                    let run = AssertUnwindSafe(handlers::dispatch(app, *handler, &parts, body, params)).catch_unwind();
                    match tokio::time::timeout(app.ops.request_timeout, run).await {
                        Ok(Ok(Ok(res))) => res,
                        Ok(Ok(Err(e))) => e.into_response(template, Some(&id)),
                        // A panicking handler answers 500 for its own request; the connection,
                        // the worker and the process carry on (release builds keep
                        // panic = "unwind" for this).
                        Ok(Err(panic)) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "non-string panic payload".to_owned());
                            AppError::Internal(format!("handler panicked: {what}")).into_response(template, Some(&id))
                        }
                        Err(_) => AppError::Timeout(app.ops.request_timeout).into_response(template, Some(&id)),
                    }
                }
            };
            (res, template, route)
        }
        Match::MethodNotAllowed { allow, template, route } => {
            (AppError::MethodNotAllowed { allow: allow.clone() }.into_response(template, None), template, route)
        }
        Match::NotFound => (
            AppError::NotFound("No route matches this path.").into_response(UNMATCHED, None),
            UNMATCHED,
            app.shared.metrics.unmatched(),
        ),
    };
    stamp(&mut res);
    res.headers_mut().insert(REQUEST_ID, id);
    // Draining: every HTTP/1 answer closes its connection, so a busy client learns to go
    // elsewhere from the answer itself instead of from a close that could cross its next request.
    if app.shared.shutdown.is_finishing_connections() && parts.version < Version::HTTP_2 {
        res.headers_mut().insert(CONNECTION, CLOSE);
    }
    shard.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = res.status().as_u16();
    if app.ops.record_metrics || app.ops.access_log {
        let elapsed = started.elapsed();
        if app.ops.record_metrics {
            shard.record(route, &parts.method, status, elapsed);
        }
        if app.ops.access_log {
            tracing::info!(
                target: "access",
                method = parts.method.as_str(),
                route = template,
                status,
                duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                request_id = res.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or(""),
            );
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn smuggling_shapes_and_query_floods_are_refused_early() {
        let limit = 16 * 1024;
        let early = |p: Parts| refuse_early(&p, limit);
        assert!(early(parts("/x", &[("content-length", "5"), ("transfer-encoding", "chunked")])).is_some());
        let flood = format!("/x?{}", vec!["a=1"; 10_000].join("&"));
        assert!(early(parts(&flood, &[])).is_some());
        let fine = format!("/x?{}", vec!["a=1"; MAX_QUERY_PARAMS].join("&"));
        assert!(early(parts(&fine, &[])).is_none());
        assert!(early(parts("/x?queries=20", &[("content-length", "0")])).is_none());
        let big = "b".repeat(limit + 1);
        assert!(matches!(early(parts("/x", &[("x-big", &big)])), Some(AppError::HeaderTooLarge { .. })));
        assert!(early(parts("/x", &[("x-big", &big[1..])])).is_none());
    }
}
