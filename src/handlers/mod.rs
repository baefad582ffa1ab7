//! The handlers, one module per resource: [`techempower`] (the TechEmpower benchmark suite),
//! [`users`], [`sessions`], [`docs`] (OpenAPI), [`ops`] (health, readiness, metrics) and, in
//! builds with the `test-hooks` feature only, [`test_hooks`]; and [`plan`], the one decision
//! per endpoint of what its handler needs from the request.

pub mod docs;
pub mod ops;
pub mod sessions;
pub mod techempower;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod users;

use std::net::IpAddr;

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use crate::app::App;
use crate::error::AppError;
use crate::http::Body;
use crate::http::query::{param, query_count};
use crate::router::Params;
use crate::routes::Endpoint;

/// What answering one request takes, decided from its head alone.
pub enum Work {
    /// The answer itself: the handler awaits nothing, so the service needs no timer and no
    /// future for it.
    Ready(Result<Response<Body>, AppError>),
    /// Work that needs nothing of the request but what was parsed up front (see [`Detached`]).
    Detached(Detached),
    /// A handler that reads its request (headers, body) as it goes.
    WithRequest(WithRequest),
}

/// The work of `endpoint` for a request with this query and these path parameters. The match
/// is exhaustive: a new endpoint does not compile until it is given its kind of work here.
pub fn plan(app: &App, endpoint: Endpoint, query: Option<&str>, params: &Params<'_>) -> Work {
    match endpoint {
        Endpoint::Plaintext => Work::Ready(Ok(techempower::plaintext())),
        Endpoint::Json => Work::Ready(techempower::json()),
        Endpoint::OpenApi => Work::Ready(Ok(docs::openapi())),
        Endpoint::Healthz => Work::Ready(Ok(ops::healthz())),
        Endpoint::Metrics => Work::Ready(Ok(ops::metrics(app))),
        Endpoint::Db => Work::Detached(Detached::Db),
        Endpoint::Queries => Work::Detached(Detached::Queries(query_count(param(query, "queries")))),
        Endpoint::Fortunes => Work::Detached(Detached::Fortunes),
        Endpoint::Updates => Work::Detached(Detached::Updates(query_count(param(query, "queries")))),
        Endpoint::CachedQueries => Work::Detached(Detached::CachedQueries(query_count(param(query, "count")))),
        Endpoint::Readyz => Work::Detached(Detached::Readyz),
        Endpoint::CreateUser => Work::WithRequest(WithRequest::CreateUser),
        Endpoint::ListUsers => Work::WithRequest(WithRequest::ListUsers),
        Endpoint::GetUser => with_user_id(params, WithRequest::GetUser),
        Endpoint::PatchUser => with_user_id(params, WithRequest::PatchUser),
        Endpoint::DeleteUser => with_user_id(params, WithRequest::DeleteUser),
        Endpoint::CreateSession => Work::WithRequest(WithRequest::CreateSession),
        Endpoint::DeleteAllSessions => Work::WithRequest(WithRequest::DeleteAllSessions),
        Endpoint::DeleteCurrentSession => Work::WithRequest(WithRequest::DeleteCurrentSession),
        #[cfg(feature = "test-hooks")]
        Endpoint::TestPanic => match test_hooks::panic_after_ms(query) {
            Some(ms) => Work::Detached(Detached::TestPanicAfter(ms)),
            None => Work::Ready(test_hooks::panic()),
        },
        #[cfg(feature = "test-hooks")]
        Endpoint::TestSleep => Work::Detached(Detached::TestSleep(test_hooks::sleep_ms(query))),
    }
}

/// The users routes' `{id}`, parsed while the path is at hand (a bad one is answered at once).
fn with_user_id(params: &Params<'_>, work: fn(i64) -> WithRequest) -> Work {
    match users::path_id(params) {
        Ok(id) => Work::WithRequest(work(id)),
        Err(e) => Work::Ready(Err(e)),
    }
}

/// Work that needs nothing from its request but what [`plan`] parsed (a query parameter at
/// most), so that the service drops the request head before the first await: hyper slices a
/// request's URI and headers out of its connection's read buffer, and a head kept across a
/// database round trip would keep that buffer alive while hyper reads ahead into a second one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detached {
    Db,
    Queries(usize),
    Fortunes,
    Updates(usize),
    CachedQueries(usize),
    Readyz,
    #[cfg(feature = "test-hooks")]
    TestSleep(u64),
    #[cfg(feature = "test-hooks")]
    TestPanicAfter(u64),
}

impl Detached {
    /// Hands this handler's own future to `to`.
    pub fn start<'a, S: Start<'a>>(self, app: &'a App, to: S) -> S::Output {
        match self {
            Detached::Db => to.start(techempower::db(app)),
            Detached::Queries(n) => to.start(techempower::queries(app, n)),
            Detached::Fortunes => to.start(techempower::fortunes(app)),
            Detached::Updates(n) => to.start(techempower::updates(app, n)),
            Detached::CachedQueries(n) => to.start(techempower::cached_queries(app, n)),
            Detached::Readyz => to.start(ops::readyz(app)),
            #[cfg(feature = "test-hooks")]
            Detached::TestSleep(ms) => to.start(test_hooks::sleep(ms)),
            #[cfg(feature = "test-hooks")]
            Detached::TestPanicAfter(ms) => to.start(test_hooks::panic_after(ms)),
        }
    }
}

/// Where [`Detached::start`] and [`WithRequest::start`] hand a handler's future: each
/// handler's own future type, so the service boxes a future of that handler's size. (One
/// `async fn` matching over every handler is as large as its largest arm, 2.5 KiB and more
/// for the batched queries, and that whole size was copied at every move: about 1 000
/// instructions of memcpy per /db request, BENCHMARKS.md.)
pub trait Start<'a> {
    type Output;
    fn start<F>(self, work: F) -> Self::Output
    where
        F: Future<Output = Result<Response<Body>, AppError>> + Send + 'a;
}

/// The handlers that read their request as they go (the users API), with the path parameter
/// [`plan`] already parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithRequest {
    CreateUser,
    ListUsers,
    GetUser(i64),
    PatchUser(i64),
    DeleteUser(i64),
    CreateSession,
    DeleteAllSessions,
    DeleteCurrentSession,
}

/// `handler`'s outcome, an abuse refusal held for `--refusal-delay-ms` first.
async fn hold<T>(app: &App, handler: impl Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    app.shared.limits.hold_refusal(handler.await).await
}

impl WithRequest {
    /// Hands this handler's own future, owning the request head and body, to `to`. `peer` is
    /// the connection's remote address: login and signup are limited per client address.
    pub fn start<'a, B, S>(self, app: &'a App, parts: Parts, body: B, peer: IpAddr, to: S) -> S::Output
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'a,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S: Start<'a>,
    {
        match self {
            // The four that check passwords can be refused by an abuse limit: held a while.
            WithRequest::CreateUser => to.start(async move { hold(app, users::create(app, &parts, body, peer)).await }),
            WithRequest::ListUsers => to.start(async move { users::list(app, &parts).await }),
            WithRequest::GetUser(id) => to.start(async move { users::get(app, &parts, id).await }),
            WithRequest::PatchUser(id) => to.start(async move { hold(app, users::patch(app, &parts, body, id)).await }),
            WithRequest::DeleteUser(id) => {
                to.start(async move { hold(app, users::delete(app, &parts, body, id)).await })
            }
            WithRequest::CreateSession => {
                to.start(async move { hold(app, sessions::create(app, &parts, body, peer)).await })
            }
            WithRequest::DeleteAllSessions => to.start(async move { sessions::delete_all(app, &parts).await }),
            WithRequest::DeleteCurrentSession => to.start(async move { sessions::delete_current(app, &parts).await }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http::Method;

    use super::*;
    use crate::app::Shared;
    use crate::config::{DbConfig, DbMode, OpsSettings, UsersSettings};
    use crate::db::Db;
    use crate::metrics::Writers;
    use crate::router::Match;

    /// An app whose pool is never used: planning touches no database.
    fn app() -> App {
        let db = DbConfig {
            url: "postgres://test@127.0.0.1:1/test".to_owned(),
            pool_size: 1,
            shared_conns: 1,
            mode: DbMode::Shared,
            wait_timeout: Duration::from_millis(10),
            create_timeout: Duration::from_millis(10),
            recycle_timeout: Duration::from_millis(10),
        };
        let ops = OpsSettings {
            max_header_bytes: 16384,
            request_timeout: Duration::from_secs(1),
            max_connections: 8,
            drain_timeout: Duration::from_secs(1),
            access_log: false,
            record_metrics: true,
            request_ids: true,
        };
        let users = UsersSettings {
            session_ttl: Duration::from_secs(60),
            max_body_bytes: 1024,
            session_sweep_interval: Duration::from_secs(60),
        };
        App::new(
            Db::new(&db, 1, 1).unwrap(),
            Arc::new(
                Shared::new(crate::routes::MetricsOn::PublicPort, &crate::config::AbuseSettings::defaults(1)).unwrap(),
            ),
            users,
            ops,
            Writers::One,
        )
    }

    /// The work planned for `GET`/`PATCH`/... `target`, matched by the real route table.
    fn planned(app: &App, method: Method, target: &str) -> Work {
        let uri: http::Uri = target.parse().unwrap();
        match app.shared.router.find(&method, uri.path()) {
            Match::Found { handler, params, .. } => plan(app, *handler, uri.query(), &params),
            _ => panic!("{method} {target} matches no route"),
        }
    }

    fn detached(work: Work) -> Option<Detached> {
        match work {
            Work::Detached(d) => Some(d),
            _ => None,
        }
    }

    #[tokio::test]
    async fn detached_work_takes_its_counts_from_the_query_by_the_suite_rules() {
        let app = app();
        let get = |target| detached(planned(&app, Method::GET, target));
        assert_eq!(get("/db?queries=7"), Some(Detached::Db));
        assert_eq!(get("/queries?queries=20"), Some(Detached::Queries(20)));
        assert_eq!(get("/queries?x=1&queries=501"), Some(Detached::Queries(500)));
        assert_eq!(get("/queries?queries=foo"), Some(Detached::Queries(1)));
        assert_eq!(get("/updates"), Some(Detached::Updates(1)));
        assert_eq!(get("/updates?queries=0"), Some(Detached::Updates(1)));
        // /cached-queries reads `count`, not `queries`.
        assert_eq!(get("/cached-queries?count=12&queries=3"), Some(Detached::CachedQueries(12)));
        assert_eq!(get("/fortunes"), Some(Detached::Fortunes));
        assert_eq!(get("/readyz"), Some(Detached::Readyz));
    }

    #[tokio::test]
    async fn handlers_that_await_nothing_are_answered_at_once() {
        let app = app();
        for target in ["/plaintext", "/json", "/openapi.json", "/healthz", "/metrics"] {
            match planned(&app, Method::GET, target) {
                Work::Ready(Ok(res)) => assert_eq!(res.status(), 200, "{target}"),
                _ => panic!("{target} is not answered at once"),
            }
        }
    }

    #[tokio::test]
    async fn user_ids_are_parsed_from_the_one_route_match() {
        let app = app();
        let with_request = |method, target| match planned(&app, method, target) {
            Work::WithRequest(w) => Some(w),
            _ => None,
        };
        assert_eq!(with_request(Method::GET, "/api/users/42"), Some(WithRequest::GetUser(42)));
        assert_eq!(with_request(Method::PATCH, "/api/users/7"), Some(WithRequest::PatchUser(7)));
        assert_eq!(with_request(Method::DELETE, "/api/users/9"), Some(WithRequest::DeleteUser(9)));
        assert_eq!(with_request(Method::GET, "/api/users?ids=1,2"), Some(WithRequest::ListUsers));
        assert_eq!(with_request(Method::POST, "/api/sessions"), Some(WithRequest::CreateSession));
        assert_eq!(with_request(Method::DELETE, "/api/sessions"), Some(WithRequest::DeleteAllSessions));
        for bad in ["/api/users/0", "/api/users/-1", "/api/users/abc", "/api/users/99999999999999999999"] {
            assert!(
                matches!(planned(&app, Method::GET, bad), Work::Ready(Err(AppError::Validation { .. }))),
                "{bad} is answered 400 before any handler runs"
            );
        }
    }
}
