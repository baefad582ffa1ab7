//! The state handlers run against. [`Shared`] is process-wide (the world cache, the metrics
//! registry, the shutdown signal); an [`App`] is one worker's (its route table, database access,
//! metrics shard and connection builders). In per-core mode every worker has its own `App`; in
//! multi-thread mode there is one.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Semaphore;

use crate::cache::WorldCache;
use crate::db::Db;
use crate::handlers::{self, Endpoint};
use crate::metrics::{Metrics, Shard};
use crate::router::{RouteError, Router};
use crate::server::shutdown::Shutdown;
use crate::server::timer::LazyTimer;

/// Connection-level HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Time allowed for a request's headers, and for an idle kept-alive connection to start
    /// the next request (hyper runs one timer for both).
    pub header_read_timeout: Duration,
    pub http2: bool,
    /// Largest request head (request line and headers); larger answers 431 and closes.
    pub max_head_bytes: usize,
    /// Most headers one request may carry; more answers 431 and closes.
    pub max_headers: usize,
}

/// Settings of the users API.
#[derive(Debug, Clone, Copy)]
pub struct UsersSettings {
    /// How long a session token stays valid.
    pub session_ttl: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

/// Operational settings: limits, timeouts, observability switches.
#[derive(Debug, Clone, Copy)]
pub struct OpsSettings {
    /// Largest single header value; larger answers 431 and closes.
    pub max_header_bytes: usize,
    /// A handler still running after this answers 503.
    pub request_timeout: Duration,
    /// Connections one worker serves at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub drain_timeout: Duration,
    pub access_log: bool,
    pub record_metrics: bool,
}

/// Process-wide state shared by every worker.
pub struct Shared {
    pub worlds: WorldCache,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    /// Times requests (metrics, access log). Calibrated once, when `Shared` is built.
    pub clock: quanta::Clock,
}

impl Shared {
    pub fn new() -> Result<Shared, RouteError> {
        let templates = handlers::router()?.templates();
        Ok(Shared {
            worlds: WorldCache::default(),
            metrics: Metrics::new(templates, crate::service::UNMATCHED),
            shutdown: Shutdown::default(),
            clock: quanta::Clock::new(),
        })
    }
}

pub struct App {
    pub router: Router<Endpoint>,
    pub users: UsersSettings,
    pub ops: OpsSettings,
    pub db: Db,
    pub shared: Arc<Shared>,
    /// This worker's metrics.
    pub shard: Arc<Shard>,
    /// Bounds the connections this worker serves at once (`ops.max_connections`).
    pub connection_permits: Arc<Semaphore>,
    /// Built once; `serve_connection` borrows it for each accepted connection.
    pub http1: http1::Builder,
    /// Set when HTTP/2 (prior knowledge) is enabled: serves HTTP/1.1 and h2c on one port.
    pub auto: Option<auto::Builder<TokioExecutor>>,
}

impl App {
    pub fn new(
        db: Db,
        shared: Arc<Shared>,
        http: HttpSettings,
        users: UsersSettings,
        ops: OpsSettings,
    ) -> Result<Self, RouteError> {
        let mut h1 = http1::Builder::new();
        configure_http1(&mut h1, &http);
        let auto = http.http2.then(|| {
            let mut b = auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(LazyTimer)
                .header_read_timeout(http.header_read_timeout)
                .max_headers(http.max_headers)
                .max_buf_size(http.max_head_bytes.max(8192))
                .keep_alive(true)
                .pipeline_flush(true);
            b.http2().timer(TokioTimer::new());
            b
        });
        let shard = shared.metrics.shard();
        Ok(App {
            router: handlers::router()?,
            users,
            ops,
            db,
            shared,
            shard,
            connection_permits: Arc::new(Semaphore::new(ops.max_connections)),
            http1: h1,
            auto,
        })
    }
}

fn configure_http1(h1: &mut http1::Builder, http: &HttpSettings) {
    // hyper parses up to 100 headers on the stack; setting any limit moves parsing to the heap
    // (an allocation per request), so the limit is only set when it differs from that.
    if http.max_headers != crate::config::DEFAULT_MAX_HEADERS {
        h1.max_headers(http.max_headers);
    }
    h1.timer(LazyTimer)
        .header_read_timeout(http.header_read_timeout)
        .max_header_size(http.max_head_bytes)
        .keep_alive(true)
        // Pipelined requests: answers are gathered and flushed together.
        .pipeline_flush(true);
}
