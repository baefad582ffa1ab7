//! The database layer: the connection pool and how requests share its connections
//! ([`pool`]), the connection budget checked at start ([`budget`]), the cap on pipelined
//! statements in flight ([`in_flight`]), schema migrations ([`migrate`]) and one module per table with its SQL, row type
//! and query functions ([`world`], [`fortune`], [`users`], [`sessions`]).

pub mod budget;
pub mod fortune;
pub mod in_flight;
pub mod migrate;
pub mod pool;
pub mod sessions;
pub mod users;
pub mod world;

pub use pool::{Db, Lease, PreparedClient, Statements};

use crate::causes::Chain;

/// The database layer's error. [`DbError::is_unavailable`] separates "the database cannot
/// serve now" (answered 503) from failures that point at a bug (answered 500).
#[derive(Debug)]
pub enum DbError {
    /// No connection within the pool's timeouts, or the pool could not create one.
    Pool(deadpool_postgres::PoolError),
    /// A statement failed.
    Query(tokio_postgres::Error),
    /// A migration's SQL failed; `foreign` when PostgreSQL said an object it creates already
    /// exists although `schema_migrations` does not record it: a schema bareapi did not make.
    Migration { name: &'static str, source: tokio_postgres::Error, foreign: bool },
    /// A connection gave no answer in time: `what` was waiting for it for `after`.
    Stalled { what: &'static str, after: std::time::Duration },
    /// A statement that must return a row returned none (the table named).
    NoRow(&'static str),
}

/// What to do when the database holds a schema bareapi did not make.
const FOREIGN_SCHEMA: &str = "the database already holds tables that bareapi's migrations create, \
    but its schema_migrations table does not record them, so bareapi did not make them; point \
    DATABASE_URL at an empty database (for example `createdb bareapi` and \
    postgres://.../bareapi), or start with --no-migrate if this schema is meant to be used as it is";

/// The whole cause chain (see [`crate::causes`]): PostgreSQL's message, SQLSTATE, detail and
/// hint, or the I/O error under a failed connect. The chain is in the text, so `source()` is
/// empty and nothing shows it twice.
impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Pool(e) => write!(f, "pool: {}", Chain(e)),
            DbError::Query(e) => write!(f, "query: {}", Chain(e)),
            DbError::Migration { name, source, foreign } => {
                write!(f, "migration {name}: {}", Chain(source))?;
                if *foreign {
                    write!(f, "; {FOREIGN_SCHEMA}")?;
                }
                Ok(())
            }
            DbError::Stalled { what, after } => write!(f, "stalled: {what} got no answer within {after:?}"),
            DbError::NoRow(table) => write!(f, "query: no row in {table}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::Pool(e)
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(e)
    }
}

impl DbError {
    /// True when the database is unreachable, overloaded or shutting down, rather than the
    /// statement being wrong.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            DbError::Pool(_) => return true,
            DbError::Stalled { .. } => return true,
            DbError::NoRow(_) => return false,
            DbError::Query(e) | DbError::Migration { source: e, .. } => e,
        };
        if e.is_closed() {
            return true;
        }
        match e.code() {
            // Class 08 (connection exception), 53 (insufficient resources),
            // 57P01..57P03 (shutdown, crash, cannot connect now).
            Some(code) => {
                let c = code.code();
                c.starts_with("08") || c.starts_with("53") || matches!(c, "57P01" | "57P02" | "57P03")
            }
            // No SQLSTATE: an I/O or protocol failure on the connection.
            None => true,
        }
    }

    /// True when a unique constraint refused the statement (a duplicate email).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// True for a deadlock or serialization failure: the statement may simply be retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Query(e) => matches!(e.code().map(|c| c.code()), Some("40P01" | "40001")),
            DbError::Pool(_) | DbError::Migration { .. } => false,
            DbError::Stalled { .. } | DbError::NoRow(_) => false,
        }
    }
}
