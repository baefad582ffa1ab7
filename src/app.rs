//! The state handlers run against. [`Shared`] is process-wide (the router, the world cache, the
//! metrics registry, the shutdown signal, the clock, the one session sweeper); an [`App`] is
//! one worker's (its database access, its metrics shard, the settings handlers read). In
//! per-core mode every worker has its own `App`; in multi-thread mode there is one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::WorldCache;
use crate::config::{OpsSettings, UsersSettings};
use crate::db::Db;
use crate::metrics::{Gauge, Metrics, Shard, Writers};
use crate::router::{RouteError, Router};
use crate::routes::{self, Endpoint, MetricsOn};
use crate::shutdown::Shutdown;
use crate::{auth, session_sweeper};

/// Process-wide state shared by every worker.
pub struct Shared {
    /// The route table, built once at start-up.
    pub router: Router<Endpoint>,
    pub worlds: WorldCache,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    /// Times requests (metrics, access log). Calibrated once, when `Shared` is built.
    pub clock: quanta::Clock,
    /// Set once the process's session sweeper runs (see [`App::start_session_sweeper`]).
    session_sweeper: AtomicBool,
}

impl Shared {
    pub fn new(metrics_on: MetricsOn) -> Result<Shared, RouteError> {
        let router = routes::router(metrics_on)?;
        let metrics = Metrics::new(router.templates());
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hashes_running",
            help: "Password hashes (argon2id) running on the blocking pool.",
            read: Box::new(auth::hashes_running),
        });
        metrics.register_gauge(Gauge {
            name: "bareapi_password_hash_permits",
            help: "Password hashes that may run at once.",
            read: Box::new(|| auth::hash_permits() as i64),
        });
        Ok(Shared {
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
        tokio::spawn(session_sweeper::run(Arc::clone(&self.db), every, self.shared.shutdown.subscribe()));
    }
}
