//! The application state one worker serves from: the route table, its database access, the
//! shared world cache and the connection builders. In per-core mode every worker has its own
//! (nothing crosses threads but the cache); in multi-thread mode there is one.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::cache::WorldCache;
use crate::db::Db;
use crate::handlers::{Endpoint, ROUTES};
use crate::router::{RouteError, Router};

/// Settings of the users API.
#[derive(Debug, Clone, Copy)]
pub struct UsersSettings {
    /// How long a session token stays valid.
    pub session_ttl: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

pub struct App {
    pub router: Router<Endpoint>,
    pub users: UsersSettings,
    pub db: Db,
    pub worlds: Arc<WorldCache>,
    /// Built once; `serve_connection` borrows it for each accepted connection.
    pub http1: http1::Builder,
    /// Set when HTTP/2 (prior knowledge) is enabled: serves HTTP/1.1 and h2c on one port.
    pub auto: Option<auto::Builder<TokioExecutor>>,
}

/// Connection-level HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub header_read_timeout: Duration,
    pub http2: bool,
}

impl App {
    pub fn new(db: Db, worlds: Arc<WorldCache>, http: HttpSettings, users: UsersSettings) -> Result<Self, RouteError> {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(http.header_read_timeout)
            .keep_alive(true)
            // Pipelined requests: answers are gathered and flushed together.
            .pipeline_flush(true);
        let auto = http.http2.then(|| {
            let mut b = auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(http.header_read_timeout)
                .keep_alive(true)
                .pipeline_flush(true);
            b.http2().timer(TokioTimer::new());
            b
        });
        Ok(App { router: Router::new(ROUTES)?, users, db, worlds, http1: h1, auto })
    }
}
