//! The hyper service: match the route once, answer at once when the handler awaits nothing or
//! else run it (boxed) under the request timeout, turn errors and panics into problem
//! responses, stamp `Server` and (unless `--no-request-id`) `x-request-id` on every response
//! (hyper writes `Date`), add `Connection: close` while draining, and record metrics and the
//! access log.

use std::any::Any;
use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONNECTION;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, Version};
use tokio::time::{Instant, Sleep};

use crate::app::App;
use crate::error::AppError;
use crate::handlers::{self, Work};
use crate::http::request_id::{self, REQUEST_ID};
use crate::http::{Body, CLOSE, stamp};
use crate::metrics::{Shard, UNMATCHED};
use crate::router::Match;
use crate::sleeps::ConnSleeps;

/// Most query parameters a request may carry. The routes read one or two; a flood of them is
/// refused (400) before any handler scans it.
pub const MAX_QUERY_PARAMS: usize = 64;

/// Refusals decided from the request head alone, before the handler: oversized header values
/// and floods of query parameters. (Framing is hyper's: it refuses duplicate or bad lengths and
/// folded headers, and a request with both Content-Length and Transfer-Encoding is read by
/// Transfer-Encoding alone, its Content-Length dropped, and its connection closed after the
/// answer, as RFC 9112 section 6.1 allows; the service never sees both.)
fn refuse_early(parts: &Parts, max_header_bytes: usize) -> Option<AppError> {
    if parts.headers.values().any(|v| v.len() > max_header_bytes) {
        return Some(AppError::HeaderTooLarge { limit: max_header_bytes });
    }
    if let Some(q) = parts.uri.query()
        && q.bytes().filter(|b| *b == b'&').count() >= MAX_QUERY_PARAMS
    {
        return Some(AppError::BadHead(format!("At most {MAX_QUERY_PARAMS} query parameters are accepted.")));
    }
    None
}

/// The future of one request: the answer itself when the handler awaits nothing (the
/// benchmark's /plaintext and /json, health, metrics, every refusal), or the boxed rest of the
/// work. hyper moves this future into its connection state for every request, so it is kept
/// to the size of a response (BENCHMARKS.md, "Behind the defaults").
pub enum Answer<'a> {
    Ready(Option<Response<Body>>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>),
}

impl Future for Answer<'_> {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Ready(res) => Poll::Ready(Ok(res.take().expect("Answer polled after completion"))),
            Answer::Later(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Counts a request in its worker's in-flight gauge for as long as it lives, however it ends:
/// answered, or dropped by hyper when the client goes away mid-request.
struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    fn new(shard: &'a Shard) -> Self {
        shard.request_started();
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// What a request carries from its start to its answer, for the response headers, the metrics
/// and the access log.
struct Pending<'a> {
    /// Raw reading of `app.shared.clock` at the request's start.
    started: u64,
    /// `None` with `--no-request-id`.
    id: Option<HeaderValue>,
    template: &'static str,
    route: usize,
    _in_flight: InFlight<'a>,
}

/// Answers one request. Never fails: every error is already a response. `sleeps` are the
/// connection's reusable timers (the request timeout's is taken from there); `peer` is the
/// connection's remote address, handed to the users API alone (its abuse limits are per client
/// address) and to nothing else.
pub fn handle<'a, B>(app: &'a App, sleeps: &Arc<ConnSleeps>, peer: &IpAddr, req: Request<B>) -> Answer<'a>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'a,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = app.shared.clock.raw();
    let in_flight = InFlight::new(&app.shard);
    let (parts, body) = req.into_parts();
    let id = app.ops.request_ids.then(|| request_id::from_request(&parts));
    let (work, template, route) = route(app, &parts);
    let pending = Pending { started, id, template, route, _in_flight: in_flight };
    match work {
        Work::Ready(outcome) => {
            let res = outcome.unwrap_or_else(|e| e.into_response(template, pending.id.as_ref()));
            Answer::Ready(Some(finish(app, &parts.method, parts.version, res, pending)))
        }
        // The head goes now (see `Detached`); only what `finish` reads stays.
        Work::Detached(work) => {
            work.start(app, Guard { app, sleeps: Arc::clone(sleeps), head: Head::of(parts), pending })
        }
        Work::WithRequest(work) => {
            let head = Head { method: parts.method.clone(), version: parts.version };
            work.start(app, owned_head(parts), body, *peer, Guard { app, sleeps: Arc::clone(sleeps), head, pending })
        }
    }
}

/// Matches the request once and decides its work, with the route's label and metrics slot.
/// Refusals, 404, 405 and a panic while deciding are all ready answers.
fn route(app: &App, parts: &Parts) -> (Work, &'static str, usize) {
    match app.shared.router.find(&parts.method, parts.uri.path()) {
        Match::Found { handler, params, template, route } => {
            let work = match refuse_early(parts, app.ops.max_header_bytes) {
                Some(refusal) => Work::Ready(Err(refusal)),
                None => catch_unwind(AssertUnwindSafe(|| handlers::plan(app, *handler, parts.uri.query(), &params)))
                    .unwrap_or_else(|panic| Work::Ready(Err(panicked(panic)))),
            };
            (work, template, route)
        }
        Match::MethodNotAllowed { allow, template, route } => {
            (Work::Ready(Err(AppError::MethodNotAllowed { allow: allow.clone() })), template, route)
        }
        Match::NotFound => (
            Work::Ready(Err(AppError::NotFound("No route matches this path."))),
            UNMATCHED,
            app.shared.metrics.unmatched(),
        ),
    }
}

/// What [`finish`] reads of a request's head: nothing that borrows hyper's read buffer.
struct Head {
    method: Method,
    version: Version,
}

impl Head {
    fn of(parts: Parts) -> Self {
        Head { method: parts.method, version: parts.version }
    }
}

/// `parts` with its URI and header values copied out of hyper's read buffer, for a handler
/// that reads its head as it goes (the users API): kept across its database round trips, the
/// original would keep the connection's 8 KiB buffer alive beside the one hyper reads ahead
/// into (see `handlers::Detached`). A few small allocations (one per header) against
/// microseconds of database work.
fn owned_head(mut parts: Parts) -> Parts {
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let Ok(mut own) = HeaderValue::from_bytes(value.as_bytes()) {
            own.set_sensitive(value.is_sensitive());
            headers.append(name.clone(), own);
        }
    }
    parts.headers = headers;
    parts
}

pin_project_lite::pin_project! {
    /// A handler's future under the request timeout, its errors and panics turned into
    /// responses, finished (headers, metrics) into the answer. One hand-written future instead
    /// of `timeout(catch_unwind(..))` inside an `async fn`: each of those layers moved the
    /// handler's future once more (BENCHMARKS.md, "bareapi against the bare-hyper floor").
    struct Guarded<'a, F> {
        #[pin]
        work: F,
        // The request timeout: taken from the connection's slot when the handler first waits,
        // and put back when the request ends (see `crate::sleeps`).
        deadline: Option<Pin<Box<Sleep>>>,
        sleeps: Arc<ConnSleeps>,
        app: &'a App,
        head: Head,
        pending: Option<Pending<'a>>,
    }

    impl<'a, F> PinnedDrop for Guarded<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(sleep) = this.deadline.take() {
                this.sleeps.request.put(sleep);
            }
        }
    }
}

impl<F> Future for Guarded<'_, F>
where
    F: Future<Output = Result<Response<Body>, AppError>>,
{
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        let this = self.project();
        let Some(pending) = this.pending.as_ref() else {
            panic!("Guarded polled after completion");
        };
        let mut work = this.work;
        let res = match catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Ready(Ok(res))) => res,
            Ok(Poll::Ready(Err(e))) => e.into_response(pending.template, pending.id.as_ref()),
            Err(panic) => panicked(panic).into_response(pending.template, pending.id.as_ref()),
            Ok(Poll::Pending) => {
                let timeout = this.app.ops.request_timeout;
                let deadline = this.deadline.get_or_insert_with(|| this.sleeps.request.take(Instant::now() + timeout));
                match deadline.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => AppError::Timeout(timeout).into_response(pending.template, pending.id.as_ref()),
                }
            }
        };
        let pending = this.pending.take().expect("checked above");
        Poll::Ready(finish(this.app, &this.head.method, this.head.version, res, pending))
    }
}

/// Boxes a handler's future (of that handler's own size, see [`handlers::Start`]) as a
/// [`Guarded`] answer.
struct Guard<'a> {
    app: &'a App,
    sleeps: Arc<ConnSleeps>,
    head: Head,
    pending: Pending<'a>,
}

impl<'a> handlers::Start<'a> for Guard<'a> {
    type Output = Answer<'a>;

    fn start<F>(self, work: F) -> Answer<'a>
    where
        F: Future<Output = Result<Response<Body>, AppError>> + Send + 'a,
    {
        let Guard { app, sleeps, head, pending } = self;
        Answer::Later(Box::pin(Guarded { work, deadline: None, sleeps, app, head, pending: Some(pending) }))
    }
}

/// A panicking handler answers 500 for its own request; the connection, the worker and the
/// process carry on (release builds keep panic = "unwind" for this).
fn panicked(panic: Box<dyn Any + Send>) -> AppError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    AppError::Internal(format!("handler panicked: {what}"))
}

/// Stamps the response headers every answer carries and records the request.
fn finish(
    app: &App,
    method: &Method,
    version: Version,
    mut res: Response<Body>,
    pending: Pending<'_>,
) -> Response<Body> {
    let Pending { started, id, template, route, _in_flight: in_flight } = pending;
    stamp(&mut res, id);
    // Draining: every HTTP/1 answer closes its connection, so a busy client learns to go
    // elsewhere from the answer itself instead of from a close that could cross its next request.
    if app.shared.shutdown.is_finishing_connections() && version < Version::HTTP_2 {
        res.headers_mut().insert(CONNECTION, CLOSE);
    }
    drop(in_flight);
    let shard = &app.shard;
    let status = res.status().as_u16();
    if app.ops.record_metrics || app.ops.access_log {
        let elapsed = app.shared.clock.delta(started, app.shared.clock.raw());
        if app.ops.record_metrics {
            shard.record(route, method, status, elapsed);
        }
        if app.ops.access_log {
            tracing::info!(
                target: "access",
                method = method.as_str(),
                route = template,
                status,
                duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                request_id = res.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or(""),
            );
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_head_reads_the_same_as_the_original() {
        let mut original = parts("/api/users?ids=1,2", &[("authorization", "Bearer x"), ("x-a", "1"), ("x-a", "2")]);
        original.headers.get_mut("authorization").unwrap().set_sensitive(true);
        let own = owned_head(original.clone());
        assert_eq!(own.uri, original.uri);
        assert_eq!(own.uri.query(), Some("ids=1,2"));
        assert_eq!(own.headers, original.headers);
        assert_eq!(own.headers.get_all("x-a").iter().count(), 2, "repeated headers are all kept");
        assert!(own.headers["authorization"].is_sensitive());
        assert_eq!(own.method, original.method);
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn oversized_values_and_query_floods_are_refused_early() {
        let limit = 16 * 1024;
        let early = |p: Parts| refuse_early(&p, limit);
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
