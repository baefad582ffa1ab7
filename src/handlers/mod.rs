//! The route table and the dispatch from a matched route to its handler. One module per
//! resource: [`bench`] (TechEmpower suite), [`users`], [`sessions`], [`docs`] (OpenAPI),
//! [`ops`] (health, readiness, metrics) and, in builds with the `test-hooks` feature only,
//! [`test_hooks`].

pub mod bench;
pub mod docs;
pub mod ops;
pub mod sessions;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod users;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response};

use crate::app::App;
use crate::error::AppError;
use crate::http::Body;
use crate::http::query::{param, query_count};
use crate::router::{Params, RouteError, Router};

/// Every handler the router can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Plaintext,
    Json,
    Db,
    Queries,
    Fortunes,
    Updates,
    CachedQueries,
    CreateUser,
    ListUsers,
    GetUser,
    PatchUser,
    DeleteUser,
    CreateSession,
    DeleteCurrentSession,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
    /// `test-hooks` builds only: panics inside the handler.
    TestPanic,
    /// `test-hooks` builds only: answers after `?ms=` milliseconds.
    TestSleep,
}

/// The route table: declared once, here. `HEAD` is served for every `GET` route.
pub const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/plaintext", Endpoint::Plaintext),
    (Method::GET, "/json", Endpoint::Json),
    (Method::GET, "/db", Endpoint::Db),
    (Method::GET, "/queries", Endpoint::Queries),
    (Method::GET, "/fortunes", Endpoint::Fortunes),
    (Method::GET, "/updates", Endpoint::Updates),
    (Method::GET, "/cached-queries", Endpoint::CachedQueries),
    (Method::POST, "/api/users", Endpoint::CreateUser),
    (Method::GET, "/api/users", Endpoint::ListUsers),
    (Method::GET, "/api/users/{id}", Endpoint::GetUser),
    (Method::PATCH, "/api/users/{id}", Endpoint::PatchUser),
    (Method::DELETE, "/api/users/{id}", Endpoint::DeleteUser),
    (Method::POST, "/api/sessions", Endpoint::CreateSession),
    (Method::DELETE, "/api/sessions/current", Endpoint::DeleteCurrentSession),
    (Method::GET, "/openapi.json", Endpoint::OpenApi),
    (Method::GET, "/healthz", Endpoint::Healthz),
    (Method::GET, "/readyz", Endpoint::Readyz),
    (Method::GET, "/metrics", Endpoint::Metrics),
];

/// Routes that exist only in builds with the `test-hooks` feature (the integration tests'
/// binary), to provoke a panic or a slow handler.
#[cfg(feature = "test-hooks")]
const TEST_ROUTES: &[(Method, &str, Endpoint)] =
    &[(Method::GET, "/__test/panic", Endpoint::TestPanic), (Method::GET, "/__test/sleep", Endpoint::TestSleep)];
#[cfg(not(feature = "test-hooks"))]
const TEST_ROUTES: &[(Method, &str, Endpoint)] = &[];

/// The router over [`ROUTES`] (and the test routes in `test-hooks` builds).
pub fn router() -> Result<Router<Endpoint>, RouteError> {
    let routes: Vec<_> = ROUTES.iter().chain(TEST_ROUTES).cloned().collect();
    Router::new(&routes)
}

/// Answers the endpoints whose handlers await nothing (`None` for the others), so that the
/// service can skip the request timeout for them: no clock read, no timer, no future.
pub fn answer_at_once(app: &App, endpoint: Endpoint) -> Option<Result<Response<Body>, AppError>> {
    Some(match endpoint {
        Endpoint::Plaintext => Ok(bench::plaintext()),
        Endpoint::Json => bench::json(),
        Endpoint::OpenApi => Ok(docs::openapi()),
        Endpoint::Healthz => Ok(ops::healthz()),
        Endpoint::Metrics => Ok(ops::metrics(app)),
        _ => return None,
    })
}

/// The work of a handler that needs nothing from its request but what it parses up front (a
/// query parameter at most), so that the service can drop the request head before the first
/// await.
///
/// hyper slices a request's URI and header values out of its connection's read buffer (8 KiB),
/// and reads ahead on the connection while the request is being served: a head kept across a
/// database round trip keeps that buffer alive, so hyper allocates a second one. Detached, an
/// in-flight database request costs its connection one buffer instead of two (heaptrack of
/// `/queries?queries=20` at 64 connections: hyper's read buffers 1.09 MB -> 0.52 MB; peak RSS
/// about 1 MiB lower on every database route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detached {
    Db,
    Queries(usize),
    Fortunes,
    Updates(usize),
    CachedQueries(usize),
    Readyz,
}

impl Detached {
    /// The detached work of `endpoint`, or `None` for the handlers that read their request as
    /// they go (the users API, the test hooks) and go through [`dispatch`].
    pub fn of(endpoint: Endpoint, query: Option<&str>) -> Option<Self> {
        Some(match endpoint {
            Endpoint::Db => Detached::Db,
            Endpoint::Queries => Detached::Queries(query_count(param(query, "queries"))),
            Endpoint::Fortunes => Detached::Fortunes,
            Endpoint::Updates => Detached::Updates(query_count(param(query, "queries"))),
            Endpoint::CachedQueries => Detached::CachedQueries(query_count(param(query, "count"))),
            Endpoint::Readyz => Detached::Readyz,
            _ => return None,
        })
    }

    pub async fn run(self, app: &App) -> Result<Response<Body>, AppError> {
        match self {
            Detached::Db => bench::db(app).await,
            Detached::Queries(n) => bench::queries(app, n).await,
            Detached::Fortunes => bench::fortunes(app).await,
            Detached::Updates(n) => bench::updates(app, n).await,
            Detached::CachedQueries(n) => bench::cached_queries(app, n).await,
            Detached::Readyz => ops::readyz(app).await,
        }
    }
}

/// Runs the handler of `endpoint` (the service calls it only for those neither
/// [`answer_at_once`] nor [`Detached`] covers).
///
/// The users API's handlers are boxed: their futures (authentication, then a query) are the
/// largest, up to 2.7 KiB, and unboxed they would set the size of every request's future, which
/// is moved in memory at least once per request. One allocation per users request is the
/// cheaper side of that trade (see the commit that introduced it for the measurements).
pub async fn dispatch<B>(
    app: &App,
    endpoint: Endpoint,
    parts: &Parts,
    body: B,
    params: Params<'_>,
) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match endpoint {
        Endpoint::CreateUser => Box::pin(users::create(app, parts, body)).await,
        Endpoint::ListUsers => Box::pin(users::list(app, parts)).await,
        Endpoint::GetUser => Box::pin(users::get(app, parts, params)).await,
        Endpoint::PatchUser => Box::pin(users::patch(app, parts, body, params)).await,
        Endpoint::DeleteUser => Box::pin(users::delete(app, parts, params)).await,
        Endpoint::CreateSession => Box::pin(sessions::create(app, parts, body)).await,
        Endpoint::DeleteCurrentSession => Box::pin(sessions::delete_current(app, parts)).await,
        // The service answers these through `answer_at_once` or `Detached` without calling
        // `dispatch`; answering them here too keeps this total.
        Endpoint::Plaintext | Endpoint::Json | Endpoint::OpenApi | Endpoint::Healthz | Endpoint::Metrics => {
            answer_at_once(app, endpoint)
                .unwrap_or_else(|| Err(AppError::Internal(format!("{endpoint:?} has no instant answer"))))
        }
        Endpoint::Db
        | Endpoint::Queries
        | Endpoint::Fortunes
        | Endpoint::Updates
        | Endpoint::CachedQueries
        | Endpoint::Readyz => match Detached::of(endpoint, parts.uri.query()) {
            Some(work) => work.run(app).await,
            None => Err(AppError::Internal(format!("{endpoint:?} is not detached"))),
        },
        #[cfg(feature = "test-hooks")]
        Endpoint::TestPanic => test_hooks::panic(),
        #[cfg(feature = "test-hooks")]
        Endpoint::TestSleep => test_hooks::sleep(parts.uri.query()).await,
        #[cfg(not(feature = "test-hooks"))]
        Endpoint::TestPanic | Endpoint::TestSleep => Err(AppError::NotFound("No route matches this path.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_work_takes_its_counts_from_the_query_by_the_suite_rules() {
        assert_eq!(Detached::of(Endpoint::Db, Some("queries=7")), Some(Detached::Db));
        assert_eq!(Detached::of(Endpoint::Queries, Some("queries=20")), Some(Detached::Queries(20)));
        assert_eq!(Detached::of(Endpoint::Queries, Some("x=1&queries=501")), Some(Detached::Queries(500)));
        assert_eq!(Detached::of(Endpoint::Queries, Some("queries=foo")), Some(Detached::Queries(1)));
        assert_eq!(Detached::of(Endpoint::Updates, None), Some(Detached::Updates(1)));
        assert_eq!(Detached::of(Endpoint::Updates, Some("queries=0")), Some(Detached::Updates(1)));
        // /cached-queries reads `count`, not `queries`.
        assert_eq!(
            Detached::of(Endpoint::CachedQueries, Some("count=12&queries=3")),
            Some(Detached::CachedQueries(12))
        );
        assert_eq!(Detached::of(Endpoint::Fortunes, None), Some(Detached::Fortunes));
        assert_eq!(Detached::of(Endpoint::Readyz, None), Some(Detached::Readyz));
    }

    #[test]
    fn handlers_that_read_their_request_or_answer_at_once_are_not_detached() {
        for endpoint in [
            Endpoint::Plaintext,
            Endpoint::Json,
            Endpoint::CreateUser,
            Endpoint::ListUsers,
            Endpoint::GetUser,
            Endpoint::PatchUser,
            Endpoint::DeleteUser,
            Endpoint::CreateSession,
            Endpoint::DeleteCurrentSession,
            Endpoint::OpenApi,
            Endpoint::Healthz,
            Endpoint::Metrics,
            Endpoint::TestPanic,
            Endpoint::TestSleep,
        ] {
            assert_eq!(Detached::of(endpoint, Some("queries=5")), None, "{endpoint:?}");
        }
    }
}
