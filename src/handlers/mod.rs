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

/// Runs the handler of `endpoint` (the service calls it only for those [`answer_at_once`] does
/// not answer).
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
    let query = parts.uri.query();
    match endpoint {
        Endpoint::Db => bench::db(app).await,
        Endpoint::Queries => bench::queries(app, query).await,
        Endpoint::Fortunes => bench::fortunes(app).await,
        Endpoint::Updates => bench::updates(app, query).await,
        Endpoint::CachedQueries => bench::cached_queries(app, query).await,
        Endpoint::CreateUser => Box::pin(users::create(app, parts, body)).await,
        Endpoint::ListUsers => Box::pin(users::list(app, parts)).await,
        Endpoint::GetUser => Box::pin(users::get(app, parts, params)).await,
        Endpoint::PatchUser => Box::pin(users::patch(app, parts, body, params)).await,
        Endpoint::DeleteUser => Box::pin(users::delete(app, parts, params)).await,
        Endpoint::CreateSession => Box::pin(sessions::create(app, parts, body)).await,
        Endpoint::DeleteCurrentSession => Box::pin(sessions::delete_current(app, parts)).await,
        Endpoint::Readyz => ops::readyz(app).await,
        // The service answers these through `answer_at_once` without calling `dispatch`.
        Endpoint::Plaintext | Endpoint::Json | Endpoint::OpenApi | Endpoint::Healthz | Endpoint::Metrics => {
            answer_at_once(app, endpoint)
                .unwrap_or_else(|| Err(AppError::Internal(format!("{endpoint:?} has no instant answer"))))
        }
        #[cfg(feature = "test-hooks")]
        Endpoint::TestPanic => test_hooks::panic(),
        #[cfg(feature = "test-hooks")]
        Endpoint::TestSleep => test_hooks::sleep(query).await,
        #[cfg(not(feature = "test-hooks"))]
        Endpoint::TestPanic | Endpoint::TestSleep => Err(AppError::NotFound("No route matches this path.")),
    }
}
