//! The route table: every endpoint the server has, declared once with its method and path
//! template, and the [`Router`] built from it.

use http::Method;

use crate::router::{RouteError, Router};

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
    DeleteAllSessions,
    DeleteCurrentSession,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
    /// Panics inside the handler.
    #[cfg(feature = "test-hooks")]
    TestPanic,
    /// Answers after `?ms=` milliseconds.
    #[cfg(feature = "test-hooks")]
    TestSleep,
}

/// The route table. `HEAD` is served for every `GET` route.
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
    (Method::DELETE, "/api/sessions", Endpoint::DeleteAllSessions),
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

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOn {
    /// On the public port with every other route (the default).
    PublicPort,
    /// On a listener of its own (`--metrics-listen`): the public port answers 404 for it.
    OwnListener,
}

/// The router over [`ROUTES`] (and the test routes in `test-hooks` builds). Built once, at
/// start-up, and shared by every worker.
pub fn router(metrics: MetricsOn) -> Result<Router<Endpoint>, RouteError> {
    let routes: Vec<_> = ROUTES
        .iter()
        .chain(TEST_ROUTES)
        .filter(|(_, _, endpoint)| metrics == MetricsOn::PublicPort || *endpoint != Endpoint::Metrics)
        .cloned()
        .collect();
    Router::new(&routes)
}
