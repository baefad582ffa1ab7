//! The TechEmpower benchmark suite, to the letter of its published rules: bodies and headers
//! are built per request (only the constant texts are static), JSON is serialized per request,
//! every row of `/queries` and `/updates` is read by its own statement.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::db::world::{self, World, query_world, query_worlds, update_worlds};
use crate::db::{DbError, fortune};
use crate::error::AppError;
use crate::html::render_fortunes;
use crate::http::{Body, TEXT_HTML, TEXT_PLAIN, json_response, response};

const HELLO: &[u8] = b"Hello, World!";
const EXTRA_FORTUNE: &str = "Additional fortune added at request time.";
/// Serialized `{"id":10000,"randomNumber":10000},` is at most 35 bytes.
const WORLD_JSON_BYTES: usize = 36;
/// Attempts at the batched update when PostgreSQL reports a deadlock between two batches.
const UPDATE_ATTEMPTS: usize = 3;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

pub fn plaintext() -> Response<Body> {
    response(StatusCode::OK, TEXT_PLAIN, Bytes::from_static(HELLO))
}

pub fn json() -> Result<Response<Body>, AppError> {
    Ok(json_response(&Message { message: "Hello, World!" }, 32)?)
}

pub async fn db(app: &App) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    let row = query_world(&lease, world::random_id()).await?;
    Ok(json_response(&row, WORLD_JSON_BYTES)?)
}

/// `n` rows (already clamped to 1..=500 from `?queries=`).
pub async fn queries(app: &App, n: usize) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    let rows = query_worlds(&lease, (0..n).map(|_| world::random_id()), app.db.statements()).await?;
    Ok(json_response(&rows, WORLD_JSON_BYTES * n + 2)?)
}

pub async fn fortunes(app: &App) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    let rows = fortune::query_fortunes(&lease).await?;
    drop(lease);
    let mut list: Vec<(i32, &str)> = Vec::with_capacity(rows.len() + 1);
    for row in &rows {
        list.push((row.try_get(0).map_err(DbError::from)?, row.try_get(1).map_err(DbError::from)?));
    }
    list.push((0, EXTRA_FORTUNE));
    list.sort_unstable_by(|a, b| a.1.cmp(b.1));
    let mut html = Vec::with_capacity(1280);
    render_fortunes(&mut html, &list);
    Ok(response(StatusCode::OK, TEXT_HTML, Bytes::from(html)))
}

/// `n` rows (already clamped to 1..=500 from `?queries=`).
pub async fn updates(app: &App, n: usize) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    // Distinct ids: one batch never updates a row twice, so what is returned is what is stored.
    let mut rows = query_worlds(&lease, distinct_random_ids(n).into_iter(), app.db.statements()).await?;
    for row in &mut rows {
        row.random_number = new_random_number(row.random_number);
    }
    let mut attempt = 1;
    loop {
        match update_worlds(&lease, &rows).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && attempt < UPDATE_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "retrying batched update");
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json_response(&rows, WORLD_JSON_BYTES * n + 2)?)
}

/// `n` rows (already clamped to 1..=500 from `?count=`).
pub async fn cached_queries(app: &App, n: usize) -> Result<Response<Body>, AppError> {
    let mut rows: Vec<World> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = world::random_id();
        let row = match app.shared.worlds.get(id) {
            Some(row) => row,
            // Only before the start-up fill succeeded: read through and remember.
            None => {
                let lease = app.db.lease().await?;
                let row = query_world(&lease, id).await?;
                app.shared.worlds.insert(row);
                row
            }
        };
        rows.push(row);
    }
    Ok(json_response(&rows, WORLD_JSON_BYTES * n + 2)?)
}

/// `n` (at most 500) distinct ids in 1..=10000, in random order.
fn distinct_random_ids(n: usize) -> Vec<i32> {
    let mut seen = [0u64; (world::ROWS as usize).div_ceil(64)];
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = world::random_id();
        let (word, bit) = ((id - 1) as usize / 64, (id - 1) as u32 % 64);
        if seen[word] & (1 << bit) == 0 {
            seen[word] |= 1 << bit;
            ids.push(id);
        }
    }
    ids
}

/// A random number in 1..=10000 different from `old`, so every updated row really changes.
fn new_random_number(old: i32) -> i32 {
    loop {
        let n = world::random_id();
        if n != old {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_are_distinct_and_in_range() {
        for n in [1, 20, 500] {
            let mut ids = distinct_random_ids(n);
            assert_eq!(ids.len(), n);
            assert!(ids.iter().all(|id| (1..=10_000).contains(id)));
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), n);
        }
    }

    #[test]
    fn new_numbers_differ_from_the_old_and_stay_in_range() {
        for old in [1, 5000, 10_000] {
            for _ in 0..1000 {
                let n = new_random_number(old);
                assert_ne!(n, old);
                assert!((1..=10_000).contains(&n));
            }
        }
    }
}
