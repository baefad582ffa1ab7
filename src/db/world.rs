//! The `world` table: 10 000 rows of (id, randomnumber), both 1..=10000.

use serde::Serialize;

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

pub async fn query_world(db: &PreparedClient, id: i32) -> Result<World, DbError> {
    let row = db.client().query_one(&db.stmts.world_by_id, &[&id]).await?;
    Ok(World { id: row.try_get(0)?, random_number: row.try_get(1)? })
}

/// One statement per row (the published rules forbid `IN (...)`); the statements are sent
/// together and pipelined on the connection rather than awaited one after another.
pub async fn query_worlds(db: &PreparedClient, ids: impl Iterator<Item = i32>) -> Result<Vec<World>, DbError> {
    futures_util::future::try_join_all(ids.map(|id| query_world(db, id))).await
}

pub async fn update_worlds(db: &PreparedClient, worlds: &[World]) -> Result<(), DbError> {
    let ids: Vec<i32> = worlds.iter().map(|w| w.id).collect();
    let numbers: Vec<i32> = worlds.iter().map(|w| w.random_number).collect();
    db.client().execute(&db.stmts.update_worlds, &[&ids, &numbers]).await?;
    Ok(())
}

/// Every row, for filling the cache of `/cached-queries`.
pub async fn all_worlds(client: &tokio_postgres::Client) -> Result<Vec<World>, DbError> {
    let rows = client.query(SELECT_ALL, &[]).await?;
    rows.iter().map(|r| Ok(World { id: r.try_get(0)?, random_number: r.try_get(1)? })).collect()
}
