//! The connection pool and how requests get a connection.
//!
//! deadpool-postgres owns connection creation, health checks, recycling and timeouts. On top of
//! it, a [`Db`] in `shared` mode keeps a few pool objects checked out for good and lets all
//! in-flight requests share them round-robin: tokio-postgres pipelines the concurrent queries
//! of many requests on one connection, which serves far more requests per second than handing
//! each request a connection of its own. A shared connection found closed is dropped (the pool
//! discards it) and replaced by a fresh one from the pool. `checkout` mode is the usual
//! exclusive checkout per request, kept for measuring the difference.
//!
//! A shared connection can also wedge without closing: PostgreSQL or the network stops
//! answering on one socket while new connections still work. Requests do not look for that (it
//! would cost every request a clock read); a watcher task per [`Db`] does instead (see
//! [`Db::warm_up`]): every `--pool-recycle-ms` it sends an empty query down each shared
//! connection that requests are using, and retires the connection when that probe, answered
//! after everything sent before it, does not come back within `--pool-recycle-ms` either. A
//! retired connection takes no more requests, its slot is refilled from the pool by the next
//! request, and once its last in-flight request lets go (at the latest at the request timeout)
//! it is taken out of the pool for good and its socket closed. Every connection requests use is
//! one the watcher sees: a slot is filled only while empty or closed, never over a connection
//! still in use (see `install`).
//!
//! Every statement is prepared once per connection, when the connection is taken from the
//! pool into a [`PreparedClient`]; requests never prepare. Preparing has its own timeout
//! (`--pool-create-ms`), and a connection whose preparation did not finish (timed out, failed
//! on the connection, or abandoned with its request) is closed instead of going back to the
//! pool, whose recycle check (is it closed?) would hand a wedged one out again.

use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use deadpool_postgres::{Connect, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::{NoTls, Statement};

use super::in_flight::StatementBudget;
use super::{DbError, fortune, sessions, users, world};
use crate::config::{DbConfig, DbMode};

/// Declares [`Statements`] once: each field with its SQL. `prepare` sends every statement at
/// once (pipelined); `cached` goes through the pool's per-connection cache.
macro_rules! statements {
    ($($field:ident = $sql:expr,)*) => {
        /// The statements every connection prepares once.
        #[derive(Debug)]
        pub struct Statements {
            $(pub $field: Statement,)*
        }

        impl Statements {
            /// Prepares every statement on a new connection, pipelined.
            async fn prepare(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
                let ($($field,)*) = futures_util::try_join!($(client.prepare($sql),)*)?;
                Ok(Statements { $($field,)* })
            }

            /// `checkout` mode: the pool's per-connection statement cache, as a typical pool
            /// user would write it (a cache lookup per statement per request).
            async fn cached(client: &deadpool_postgres::ClientWrapper) -> Result<Self, tokio_postgres::Error> {
                let ($($field,)*) = futures_util::try_join!($(client.prepare_cached($sql),)*)?;
                Ok(Statements { $($field,)* })
            }
        }
    };
}

statements! {
    world_by_id = world::SELECT_BY_ID,
    all_fortunes = fortune::SELECT_ALL,
    update_worlds = world::UPDATE_MANY,
    insert_user = users::INSERT,
    user_by_id = users::SELECT_BY_ID,
    users_by_ids = users::SELECT_BY_IDS,
    users_page = users::SELECT_PAGE,
    user_for_change = users::SELECT_FOR_CHANGE,
    update_user = users::UPDATE,
    delete_user = users::DELETE,
    login_by_email = users::SELECT_LOGIN,
    insert_session = sessions::INSERT,
    session_user = sessions::SELECT_USER,
    revoke_session = sessions::REVOKE,
    revoke_all_sessions = sessions::REVOKE_ALL,
    delete_dead_sessions = sessions::DELETE_DEAD,
}

/// A pool connection with its prepared statements.
pub struct PreparedClient {
    /// Returned to the pool when the last request sharing it lets go.
    object: Object,
    pub stmts: Statements,
}

impl PreparedClient {
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.object
    }
}

/// A request's hold on a connection: shared with other requests, or its own.
pub enum Lease {
    Shared(Arc<PreparedClient>),
    /// Boxed to keep `Lease` small; this mode exists for comparison, not speed.
    Exclusive(Box<PreparedClient>),
}

impl Deref for Lease {
    type Target = PreparedClient;
    fn deref(&self) -> &PreparedClient {
        match self {
            Lease::Shared(c) => c,
            Lease::Exclusive(c) => c,
        }
    }
}

/// One worker's database access (in multi-thread mode, the whole server's).
pub struct Db {
    pool: Pool,
    mode: DbMode,
    /// The long-lived shared connections (`shared` mode); `None` until first filled or after a
    /// failure to replace a closed one.
    shared: Box<[ArcSwapOption<PreparedClient>]>,
    /// Round-robin cursor over `shared`.
    next: AtomicUsize,
    /// Caps the statements in flight over all of this `Db`'s connections.
    statements: StatementBudget,
    /// How long preparing the statements on a new connection may take (`--pool-create-ms`).
    prepare_timeout: Duration,
    /// How often the shared connections in use are probed, and how long a probe may take
    /// before its connection is retired (`--pool-recycle-ms`).
    probe_timeout: Duration,
}

/// A pool connection whose statements are being prepared: closed and taken out of the pool
/// if dropped before [`Preparing::keep`], whether preparation timed out, failed on the
/// connection or was abandoned with its request.
struct Preparing(Option<Object>);

impl Preparing {
    fn object(&self) -> &Object {
        self.0.as_ref().expect("kept only once")
    }

    /// Preparation went through (or PostgreSQL refused a statement, which says nothing
    /// against the connection): the object goes back to the pool as usual when dropped.
    fn keep(mut self) -> Object {
        self.0.take().expect("kept only once")
    }
}

impl Drop for Preparing {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            close(object);
        }
    }
}

/// Takes `object` out of its pool for good and drops it, which aborts its connection task and
/// so closes the socket (dropped normally, it would go back to the pool, and a tokio-postgres
/// client being dropped does not end a connection still waiting for answers).
fn close(object: Object) {
    drop(Object::take(object));
}

/// Puts `fresh` into `slot`, unless another checkout filled the slot while this one was
/// preparing (at start-up `warm_up`, the session sweeper and the first requests all find it
/// empty; after a retirement, every request that arrives during the refill): then `fresh` goes
/// back to the pool and the connection already in the slot is used. Returns the connection to
/// use. Never replaces an open connection: one replaced while requests use it would be in no
/// slot, so `watch` would never probe, retire or close it, and a wedged one would hang its
/// requests until their timeout and then go back to the pool still wedged.
fn install(slot: &ArcSwapOption<PreparedClient>, fresh: PreparedClient) -> Arc<PreparedClient> {
    let fresh = Arc::new(fresh);
    let mut seen = slot.load_full();
    loop {
        if let Some(current) = &seen
            && !current.client().is_closed()
        {
            return Arc::clone(current);
        }
        // Empty or closed: replace exactly what was seen, or look again.
        let before = slot.compare_and_swap(&seen, Some(Arc::clone(&fresh)));
        let replaced = match (&*before, &seen) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if replaced {
            return fresh;
        }
        seen = (*before).clone();
    }
}

/// Parses a `DATABASE_URL` into the tokio-postgres configuration, with the connect timeout set
/// (tokio-postgres has none by default, so an unreachable host would hang a connect).
pub fn pg_config(cfg: &DbConfig) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(cfg.create_timeout);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("bareapi");
    }
    Ok(pg)
}

/// How the pool opens a connection: deadpool's own way (connect, then drive the connection in a
/// task of its own), except that a connection ending in an error is logged with its whole cause
/// ([`Chain`](crate::causes::Chain): PostgreSQL's severity, SQLSTATE and message, as "FATAL
/// 57P01: terminating connection due to administrator command"), where deadpool logs
/// tokio-postgres's `Display` alone, "db error".
struct LoggedConnect;

impl Connect for LoggedConnect {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>> {
        let pg = pg.clone();
        Box::pin(async move {
            let (client, connection) = pg.connect(NoTls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %crate::causes::Chain(&e), "database connection ended with an error");
                }
            });
            Ok((client, task))
        })
    }
}

impl Db {
    /// Builds the pool; connects nothing yet. `pool_size` and `shared_conns` are this `Db`'s own
    /// (multi-thread mode passes the per-worker values times the worker count).
    pub fn new(cfg: &DbConfig, pool_size: usize, shared_conns: usize) -> Result<Self, String> {
        let pg = pg_config(cfg).map_err(|e| format!("DATABASE_URL: {}", crate::causes::Chain(&e)))?;
        let manager =
            Manager::from_connect(pg, LoggedConnect, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .timeouts(Timeouts {
                wait: Some(cfg.wait_timeout),
                create: Some(cfg.create_timeout),
                recycle: Some(cfg.recycle_timeout),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("building the pool: {e}"))?;
        let slots = if cfg.mode == DbMode::Shared { shared_conns } else { 0 };
        Ok(Db {
            pool,
            mode: cfg.mode,
            shared: (0..slots).map(|_| ArcSwapOption::empty()).collect(),
            next: AtomicUsize::new(0),
            statements: StatementBudget::for_connections(if slots > 0 { slots } else { pool_size }),
            prepare_timeout: cfg.create_timeout,
            probe_timeout: cfg.recycle_timeout,
        })
    }

    /// The cap on pipelined statements in flight (see [`super::in_flight`]).
    pub fn statements(&self) -> &StatementBudget {
        &self.statements
    }

    /// A pool connection for a shared slot, its statements prepared within `prepare_timeout`.
    async fn checkout(&self) -> Result<PreparedClient, DbError> {
        let preparing = Preparing(Some(self.pool.get().await?));
        let prepared = tokio::time::timeout(self.prepare_timeout, Statements::prepare(preparing.object())).await;
        match prepared {
            Ok(Ok(stmts)) => Ok(PreparedClient { object: preparing.keep(), stmts }),
            // PostgreSQL answered, with an error: the connection itself is fine.
            Ok(Err(e)) if e.code().is_some() => {
                drop(preparing.keep());
                Err(e.into())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                Err(DbError::Stalled { what: "preparing statements on a new connection", after: self.prepare_timeout })
            }
        }
    }

    /// `checkout` mode: a pool object with its statements from the pool's cache, boxed (see
    /// [`Lease::Exclusive`]).
    async fn checkout_exclusive(&self) -> Result<Box<PreparedClient>, DbError> {
        let object = self.pool.get().await?;
        let stmts = Statements::cached(&object).await?;
        Ok(Box::new(PreparedClient { object, stmts }))
    }

    /// A connection for one request.
    pub async fn lease(&self) -> Result<Lease, DbError> {
        if self.mode == DbMode::Checkout {
            return Ok(Lease::Exclusive(Box::pin(self.checkout_exclusive()).await?));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shared.len();
        let slot = &self.shared[i];
        if let Some(client) = slot.load_full()
            && !client.client().is_closed()
        {
            return Ok(Lease::Shared(client));
        }
        // Empty (never filled, or retired by `watch`) or closed: take a fresh connection from
        // the pool. A closed one is dropped once its last in-flight user finishes; the pool's
        // recycle check discards it.
        // Boxed: preparing every statement at once is a future of about 17 KiB, and unboxed it
        // would be part of every database handler's future, moved with each request.
        let fresh = Box::pin(self.checkout()).await?;
        Ok(Lease::Shared(install(slot, fresh)))
    }

    /// Opens the shared connections ahead of the first request, then watches them until the
    /// pool is closed (see [`Db::watch`]). Failures to open are logged, not fatal: the slots
    /// are filled on demand later.
    pub async fn warm_up(&self) {
        for slot in self.shared.iter() {
            match self.checkout().await {
                Ok(c) => drop(install(slot, c)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not open a shared database connection yet");
                    break;
                }
            }
        }
        self.watch().await;
    }

    /// Retires shared connections that stopped answering, and closes retired connections once
    /// no request uses them any more. Every `probe_timeout`, each shared connection that
    /// requests are using is sent an empty query; tokio-postgres answers in order, so the probe
    /// comes back only after everything sent before it. One that does not come back within
    /// `probe_timeout` means the connection is wedged, or so far behind that the requests on
    /// it are better off on a fresh one. An idle connection is not probed: the first request
    /// that finds it wedged makes it busy.
    ///
    /// Costs requests nothing: no clock read, lock or counter of their own; a connection is
    /// busy when its `Arc` has holders other than its slot and this watcher.
    async fn watch(&self) {
        if self.shared.is_empty() {
            return;
        }
        let mut retired: Vec<Arc<PreparedClient>> = Vec::new();
        loop {
            tokio::time::sleep(self.probe_timeout).await;
            if self.pool.is_closed() {
                return;
            }
            let probes = futures_util::future::join_all(self.shared.iter().map(|slot| self.probe(slot))).await;
            retired.extend(probes.into_iter().flatten());
            retired = retired
                .into_iter()
                .filter_map(|c| match Arc::try_unwrap(c) {
                    Ok(unused) => {
                        close(unused.object);
                        tracing::debug!("closed a retired database connection");
                        None
                    }
                    Err(in_use) => Some(in_use),
                })
                .collect();
        }
    }

    /// Probes the connection in `slot` if requests are using it; the connection when it was
    /// retired.
    async fn probe(&self, slot: &ArcSwapOption<PreparedClient>) -> Option<Arc<PreparedClient>> {
        let client = slot.load_full()?;
        // Held by the slot and by `client` here, and by nothing else: idle.
        if Arc::strong_count(&client) <= 2 || client.client().is_closed() {
            return None;
        }
        let cause = match tokio::time::timeout(self.probe_timeout, client.client().simple_query("")).await {
            Ok(Ok(_)) => return None,
            // Closed meanwhile: requests replace it themselves.
            Ok(Err(_)) if client.client().is_closed() => return None,
            Ok(Err(e)) => DbError::Query(e),
            Err(_) => {
                DbError::Stalled { what: "a health probe of a shared connection in use", after: self.probe_timeout }
            }
        };
        // Only if the slot still holds it (a request may have replaced it meanwhile).
        let swapped = slot.compare_and_swap(&client, None).as_ref().is_some_and(|p| Arc::ptr_eq(p, &client));
        if !swapped {
            return None;
        }
        crate::metrics::DB_CONNECTIONS_RETIRED.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error = %cause,
            in_flight = Arc::strong_count(&client) - 1,
            "retired a shared database connection; requests use a fresh one, this one is closed once its last request ends"
        );
        Some(client)
    }

    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Drops the shared connections and closes the pool.
    pub fn close(&self) {
        for slot in self.shared.iter() {
            slot.store(None);
        }
        self.pool.close();
    }
}
