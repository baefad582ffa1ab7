//! The state handlers run against. [`Shared`] is process-wide (the router, the world cache, the
//! metrics registry, the shutdown signal, the clock); an [`App`] is one worker's (its database
//! access, its metrics shard, the settings handlers read). In per-core mode every worker has its
//! own `App`; in multi-thread mode there is one.

use std::sync::Arc;

use crate::cache::WorldCache;
use crate::config::{OpsSettings, UsersSettings};
use crate::db::Db;
use crate::metrics::{Metrics, Shard, Writers};
use crate::router::{RouteError, Router};
use crate::routes::{self, Endpoint, MetricsOn};
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
}

impl Shared {
    pub fn new(metrics_on: MetricsOn) -> Result<Shared, RouteError> {
        let router = routes::router(metrics_on)?;
        let metrics = Metrics::new(router.templates());
        Ok(Shared {
            router,
            worlds: WorldCache::default(),
            metrics,
            shutdown: Shutdown::default(),
            clock: quanta::Clock::new(),
        })
    }
}

/// One worker's state.
pub struct App {
    pub users: UsersSettings,
    pub ops: OpsSettings,
    pub db: Db,
    pub shared: Arc<Shared>,
    /// This worker's metrics.
    pub shard: Arc<Shard>,
}

impl App {
    /// `writers`: whether only this worker's thread records into its metrics (per-core) or
    /// every thread of the runtime does (multi-thread).
    pub fn new(db: Db, shared: Arc<Shared>, users: UsersSettings, ops: OpsSettings, writers: Writers) -> Self {
        let shard = shared.metrics.shard(writers);
        App { users, ops, db, shared, shard }
    }
}
