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
//! Every statement is prepared once per connection, when the connection is taken from the
//! pool into a [`PreparedClient`]; requests never prepare.

use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
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
    update_user = users::UPDATE,
    delete_user = users::DELETE,
    login_by_email = users::SELECT_LOGIN,
    insert_session = sessions::INSERT,
    session_user = sessions::SELECT_USER,
    revoke_session = sessions::REVOKE,
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

impl Db {
    /// Builds the pool; connects nothing yet. `pool_size` and `shared_conns` are this `Db`'s own
    /// (multi-thread mode passes the per-worker values times the worker count).
    pub fn new(cfg: &DbConfig, pool_size: usize, shared_conns: usize) -> Result<Self, String> {
        let pg = pg_config(cfg).map_err(|e| format!("DATABASE_URL: {}", crate::causes::Chain(&e)))?;
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
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
        })
    }

    /// The cap on pipelined statements in flight (see [`super::in_flight`]).
    pub fn statements(&self) -> &StatementBudget {
        &self.statements
    }

    async fn checkout(&self) -> Result<PreparedClient, DbError> {
        let object = self.pool.get().await?;
        let stmts = Statements::prepare(&object).await?;
        Ok(PreparedClient { object, stmts })
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
        // Empty or broken: take a fresh connection from the pool. The closed one is dropped
        // once its last in-flight user finishes; the pool's recycle check discards it.
        // Boxed: preparing every statement at once is a future of about 17 KiB, and unboxed it
        // would be part of every database handler's future, moved with each request.
        let fresh = Arc::new(Box::pin(self.checkout()).await?);
        slot.store(Some(Arc::clone(&fresh)));
        Ok(Lease::Shared(fresh))
    }

    /// Opens the shared connections ahead of the first request. Failures are logged, not
    /// fatal: the slots are filled on demand later.
    pub async fn warm_up(&self) {
        for slot in self.shared.iter() {
            match self.checkout().await {
                Ok(c) => slot.store(Some(Arc::new(c))),
                Err(e) => {
                    tracing::warn!(error = %e, "could not open a shared database connection yet");
                    return;
                }
            }
        }
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
