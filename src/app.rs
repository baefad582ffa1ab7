//! The state handlers run against. [`Shared`] is process-wide (the router, the world cache, the
//! metrics registry, the shutdown signal, the clock, the one session sweeper); an [`App`] is
//! one worker's (its database access, its metrics shard, the settings handlers read). In
//! per-core mode every worker has its own `App`; in multi-thread mode there is one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abuse::{self, Limits, Reason};
use crate::auth::Hashing;
use crate::cache::WorldCache;
use crate::config::{AbuseSettings, OpsSettings, UsersSettings};
use crate::db::Db;
use crate::http::client_ip::{ForwardedHeader, TrustedProxies};
use crate::metrics::{Counter, Gauge, LabelledCounter, Metrics, Shard, Writers};
use crate::router::{RouteError, Router};
use crate::routes::{self, Endpoint, MetricsOn};
use crate::session_sweeper;
use crate::shutdown::Shutdown;

/// Process-wide state shared by every worker.
pub struct Shared {
    /// The route table, built once at start-up.
    pub router: Router<Endpoint>,
    pub worlds: WorldCache,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    /// Times requests (metrics, access log). Calibrated once, when `Shared` is built.
    pub clock: quanta::Clock,
    /// The users API's limiters (failed logins per email, logins and signups per address).
    pub limits: Limits,
    /// Password hashing, bounded in concurrency and queue.
    pub hashing: Arc<Hashing>,
    /// Peers whose forwarding header names the client, and which header that is.
    pub trusted_proxies: TrustedProxies,
    pub forwarded_header: ForwardedHeader,
    /// Set once the process's session sweeper runs (see [`App::start_session_sweeper`]).
    session_sweeper: AtomicBool,
}

impl Shared {
    pub fn new(metrics_on: MetricsOn, abuse: &AbuseSettings) -> Result<Shared, RouteError> {
        let router = routes::router(metrics_on)?;
        let metrics = Metrics::new(router.templates());
        let hashing = Hashing::new(abuse.hash_concurrency, abuse.hash_queue, abuse.hash_nice);
        let h = Arc::clone(&hashing);
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hashes_running",
            help: "Password hashes (argon2id) running on the hashing threads.",
            read: Box::new(move || h.running()),
        });
        let h = Arc::clone(&hashing);
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hash_permits",
            help: "Password hashes that may run at once.",
            read: Box::new(move || h.concurrency() as i64),
        });
        let h = Arc::clone(&hashing);
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hash_queue_depth",
            help: "Requests waiting for a password-hashing slot.",
            read: Box::new(move || h.waiting() as i64),
        });
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hash_queue_bound",
            help: "Requests that may wait for a password-hashing slot before the next is refused (503).",
            read: Box::new({
                let bound = abuse.hash_queue as i64;
                move || bound
            }),
        });
        let h = Arc::clone(&hashing);
        metrics.register_counter(Counter {
            name: "bareapi_password_hashes_total",
            help: "Password hashes (argon2id) started.",
            read: Box::new(move || h.started_total()),
        });
        metrics.register_labelled_counter(LabelledCounter {
            name: "bareapi_throttled_requests_total",
            help: "Users-API requests refused by an abuse limit (429, or 503 for a full hashing queue), by reason.",
            label: "reason",
            read: Box::new(|| Reason::ALL.iter().map(|r| (r.label(), abuse::throttled(*r))).collect()),
        });
        Ok(Shared {
            limits: Limits::new(abuse),
            hashing,
            trusted_proxies: abuse.trusted_proxies.clone(),
            forwarded_header: abuse.forwarded_header,
            router,
            worlds: WorldCache::default(),
            metrics,
            shutdown: Shutdown::default(),
            clock: quanta::Clock::new(),
            session_sweeper: AtomicBool::new(false),
        })
    }
}

/// One worker's state.
pub struct App {
    pub users: UsersSettings,
    pub ops: OpsSettings,
    /// Shared with the session sweeper when it runs on this worker.
    pub db: Arc<Db>,
    pub shared: Arc<Shared>,
    /// This worker's metrics.
    pub shard: Arc<Shard>,
}

impl App {
    /// `writers`: whether only this worker's thread records into its metrics (per-core) or
    /// every thread of the runtime does (multi-thread).
    pub fn new(db: Db, shared: Arc<Shared>, users: UsersSettings, ops: OpsSettings, writers: Writers) -> Self {
        let shard = shared.metrics.shard(writers);
        App { users, ops, db: Arc::new(db), shared, shard }
    }

    /// Starts the process's one session sweeper on this worker's runtime and database access,
    /// unless another worker started it already. Called by each worker as it starts (from
    /// within its runtime); the first one runs it.
    pub fn start_session_sweeper(&self) {
        let flag = &self.shared.session_sweeper;
        if flag.load(Ordering::Relaxed) || flag.swap(true, Ordering::AcqRel) {
            return;
        }
        let every = self.users.session_sweep_interval;
        let db = Arc::clone(&self.db);
        tokio::spawn(session_sweeper::run(db, every, self.ops.request_timeout, self.shared.shutdown.subscribe()));
    }
}
