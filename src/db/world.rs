//! The `world` table: 10 000 rows of (id, randomnumber), both 1..=10000.

use serde::Serialize;

use futures_util::TryStreamExt;
use futures_util::future::try_join_all;

use super::in_flight::StatementBudget;
use super::{DbError, PreparedClient};

pub const SELECT_BY_ID: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
pub const SELECT_ALL: &str = "SELECT id, randomnumber FROM world";
/// One statement for a whole batch. Rows are joined in id order so that concurrent batches
/// lock rows in the same order, which keeps deadlocks rare (and they are retried).
pub const UPDATE_MANY: &str = "UPDATE world SET randomnumber = v.rn \
     FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v \
     WHERE world.id = v.id";

/// Number of rows, and the range of ids and random numbers.
pub const ROWS: i32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct World {
    pub id: i32,
    #[serde(rename = "randomNumber")]
    pub random_number: i32,
}

/// A uniformly random id or number in 1..=10000.
pub fn random_id() -> i32 {
    fastrand::i32(1..=ROWS)
}

/// One row by its id, read by its own statement.
///
/// Not `query_one`: it reads the answer to its end (the `CommandComplete` tag parsed into a
/// row count, then `ReadyForQuery`) to check that no second row follows, through a slice of
/// `dyn ToSql`. A primary key has at most one row, so this takes the first `DataRow` and drops
/// the stream; the connection task still pages through the rest of the answer, so nothing is
/// left behind on the shared connection. About 1 250 instructions less per statement (callgrind).
/// `query_prepared_raw` (patches/tokio-postgres) is `query_raw` without `ToStatement`: its future
/// has no room for the "prepare first" branch, which was moved into place with every statement.
pub async fn query_world(db: &PreparedClient, id: i32) -> Result<World, DbError> {
    let rows = db.client().query_prepared_raw(&db.stmts.world_by_id, [id]).await?;
    let row = std::pin::pin!(rows).try_next().await?.ok_or(DbError::NoRow("world"))?;
    Ok(World { id: row.try_get(0)?, random_number: row.try_get(1)? })
}

/// Statements a request sends together at least, when the budget is spent (see
/// [`super::in_flight`]).
pub const BATCH: usize = 10;

/// One statement per row (the published rules forbid `IN (...)`), pipelined on the connection
/// rather than awaited one after another: each round sends as many statements as `budget`
/// allows (all of them on a quiet worker, at least [`BATCH`]) and awaits them all.
///
/// A round is several joined batches of [`BATCH`] rather than one join of its size: every
/// batch's allocation is then of one size, which mimalloc (pages per size class) reuses best.
pub async fn query_worlds(
    db: &PreparedClient,
    mut ids: impl ExactSizeIterator<Item = i32>,
    budget: &StatementBudget,
) -> Result<Vec<World>, DbError> {
    let mut rows = Vec::with_capacity(ids.len());
    while ids.len() > 0 {
        let permits = budget.take(ids.len(), BATCH);
        let batches = permits.count().div_ceil(BATCH);
        let mut granted = permits.count();
        let round = try_join_all((0..batches).map(|_| {
            let size = granted.min(BATCH);
            granted -= size;
            try_join_all(ids.by_ref().take(size).map(|id| query_world(db, id)))
        }));
        for batch in round.await? {
            rows.extend(batch);
        }
    }
    Ok(rows)
}

pub async fn update_worlds(db: &PreparedClient, worlds: &[World]) -> Result<(), DbError> {
    let ids: Vec<i32> = worlds.iter().map(|w| w.id).collect();
    let numbers: Vec<i32> = worlds.iter().map(|w| w.random_number).collect();
    db.client().execute(&db.stmts.update_worlds, &[&ids, &numbers]).await?;
    Ok(())
}

/// Every row, for filling the cache of `/cached-queries`: handed to `each` as they arrive, so
/// the 10 000 rows are never all held at once (collected first, they set the process's
/// start-up peak memory). Returns how many rows there were.
pub async fn for_each_world(client: &tokio_postgres::Client, mut each: impl FnMut(World)) -> Result<usize, DbError> {
    let rows = client.query_raw(SELECT_ALL, std::iter::empty::<i32>()).await?;
    let mut rows = std::pin::pin!(rows);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        each(World { id: row.try_get(0)?, random_number: row.try_get(1)? });
        n += 1;
    }
    Ok(n)
}
