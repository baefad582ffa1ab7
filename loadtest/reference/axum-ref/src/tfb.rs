//! The TechEmpower routes, by the published rules: responses are built and JSON is serialized
//! per request, and every row of `/queries` and `/updates` is read by its own statement.

use std::fmt::Write;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};
use deadpool_postgres::{Client, Pool};
use futures_util::future::try_join_all;
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};
use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;

use crate::SharedState;
use crate::error::AppError;

const SELECT_WORLD: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
const SELECT_ALL_WORLDS: &str = "SELECT id, randomnumber FROM world";
const SELECT_FORTUNES: &str = "SELECT id, message FROM fortune";
/// One statement for the whole batch, rows joined in id order so that concurrent batches lock
/// rows in the same order.
const UPDATE_WORLDS: &str = "UPDATE world SET randomnumber = v.rn \
     FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v \
     WHERE world.id = v.id";

/// Rows of `world`: ids and random numbers are 1..=10000.
pub const WORLD_ROWS: i32 = 10_000;
const UPDATE_ATTEMPTS: usize = 3;
const EXTRA_FORTUNE: &str = "Additional fortune added at request time.";

#[derive(Debug, Clone, Copy, Serialize)]
pub struct World {
    pub id: i32,
    #[serde(rename = "randomNumber")]
    pub random_number: i32,
}

#[derive(Serialize)]
pub struct Message {
    message: &'static str,
}

#[derive(Deserialize)]
pub struct QueriesParams {
    queries: Option<String>,
}

#[derive(Deserialize)]
pub struct CountParams {
    count: Option<String>,
}

fn random_id() -> i32 {
    fastrand::i32(1..=WORLD_ROWS)
}

/// The `queries`/`count` rule: an integer clamped to 1..=500; missing, empty or non-integer
/// values count as 1, and a number too large for any integer type as 500.
fn query_count(raw: Option<&str>) -> usize {
    let Some(raw) = raw else { return 1 };
    let (negative, digits) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if negative || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    digits.parse::<usize>().map_or(500, |n| n.clamp(1, 500))
}

async fn fetch_world(client: &Client, stmt: &Statement, id: i32) -> Result<World, tokio_postgres::Error> {
    let row = client.query_one(stmt, &[&id]).await?;
    Ok(World { id: row.try_get(0)?, random_number: row.try_get(1)? })
}

/// Loads every `world` row into the cache (at start-up).
pub async fn fill_cache(pool: &Pool, cache: &Cache<i32, World>) -> Result<usize, Box<dyn std::error::Error>> {
    let client = pool.get().await?;
    let rows = client.query(SELECT_ALL_WORLDS, &[]).await?;
    for row in &rows {
        let world = World { id: row.try_get(0)?, random_number: row.try_get(1)? };
        cache.insert(world.id, world);
    }
    Ok(rows.len())
}

pub async fn plaintext() -> impl IntoResponse {
    ([(CONTENT_TYPE, HeaderValue::from_static("text/plain"))], "Hello, World!")
}

pub async fn json() -> Json<Message> {
    Json(Message { message: "Hello, World!" })
}

pub async fn db(State(state): State<SharedState>) -> Result<Json<World>, AppError> {
    let client = state.pool.get().await?;
    let stmt = client.prepare_cached(SELECT_WORLD).await?;
    Ok(Json(fetch_world(&client, &stmt, random_id()).await?))
}

/// The statements go out together and are pipelined on the one connection.
pub async fn queries(
    State(state): State<SharedState>,
    Query(params): Query<QueriesParams>,
) -> Result<Json<Vec<World>>, AppError> {
    let n = query_count(params.queries.as_deref());
    let client = state.pool.get().await?;
    let stmt = client.prepare_cached(SELECT_WORLD).await?;
    let worlds = try_join_all((0..n).map(|_| fetch_world(&client, &stmt, random_id()))).await?;
    Ok(Json(worlds))
}

pub async fn fortunes(State(state): State<SharedState>) -> Result<Html<String>, AppError> {
    let client = state.pool.get().await?;
    let stmt = client.prepare_cached(SELECT_FORTUNES).await?;
    let rows = client.query(&stmt, &[]).await?;
    drop(client);
    let mut fortunes = Vec::with_capacity(rows.len() + 1);
    for row in &rows {
        fortunes.push((row.try_get::<_, i32>(0)?, row.try_get::<_, &str>(1)?));
    }
    fortunes.push((0, EXTRA_FORTUNE));
    fortunes.sort_unstable_by(|a, b| a.1.cmp(b.1));

    let mut html = String::with_capacity(1280);
    html.push_str(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in &fortunes {
        let _ = write!(html, "<tr><td>{id}</td><td>");
        escape_html(&mut html, message);
        html.push_str("</td></tr>");
    }
    html.push_str("</table></body></html>");
    Ok(Html(html))
}

/// Appends `text` with `&`, `<`, `>`, `"` and `'` escaped.
fn escape_html(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
}

pub async fn updates(
    State(state): State<SharedState>,
    Query(params): Query<QueriesParams>,
) -> Result<Json<Vec<World>>, AppError> {
    let n = query_count(params.queries.as_deref());
    let client = state.pool.get().await?;
    let select = client.prepare_cached(SELECT_WORLD).await?;
    // Distinct ids: one batch never updates a row twice, so what is returned is what is stored.
    let mut worlds =
        try_join_all(distinct_random_ids(n).into_iter().map(|id| fetch_world(&client, &select, id))).await?;
    for world in &mut worlds {
        world.random_number = new_random_number(world.random_number);
    }
    let ids: Vec<i32> = worlds.iter().map(|w| w.id).collect();
    let numbers: Vec<i32> = worlds.iter().map(|w| w.random_number).collect();
    let update = client.prepare_cached(UPDATE_WORLDS).await?;
    let mut attempt = 1;
    loop {
        match client.execute(&update, &[&ids, &numbers]).await {
            Ok(_) => break,
            Err(e) if attempt < UPDATE_ATTEMPTS && is_retryable(&e) => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(worlds))
}

/// A deadlock between two concurrent batches, or a serialization failure.
fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// `n` (at most 500) distinct ids in 1..=10000, in random order.
fn distinct_random_ids(n: usize) -> Vec<i32> {
    let mut seen = [0u64; (WORLD_ROWS as usize).div_ceil(64)];
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = random_id();
        let (word, bit) = ((id - 1) as usize / 64, (id - 1) % 64);
        if seen[word] & (1 << bit) == 0 {
            seen[word] |= 1 << bit;
            ids.push(id);
        }
    }
    ids
}

/// A random number in 1..=10000 different from `old`.
fn new_random_number(old: i32) -> i32 {
    loop {
        let n = random_id();
        if n != old {
            return n;
        }
    }
}

pub async fn cached_queries(
    State(state): State<SharedState>,
    Query(params): Query<CountParams>,
) -> Result<Json<Vec<World>>, AppError> {
    let n = query_count(params.count.as_deref());
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        let id = random_id();
        let world = match state.cache.get(&id) {
            Some(world) => world,
            None => {
                let client = state.pool.get().await?;
                let stmt = client.prepare_cached(SELECT_WORLD).await?;
                let world = fetch_world(&client, &stmt, id).await?;
                state.cache.insert(id, world);
                world
            }
        };
        worlds.push(world);
    }
    Ok(Json(worlds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_clamp_like_bareapi() {
        for (raw, want) in [
            (None, 1),
            (Some(""), 1),
            (Some("foo"), 1),
            (Some("0"), 1),
            (Some("-1"), 1),
            (Some("20"), 20),
            (Some("+20"), 20),
            (Some("500"), 500),
            (Some("501"), 500),
            (Some("99999999999999999999999999"), 500),
            (Some("-99999999999999999999999999"), 1),
            (Some("1.5"), 1),
            (Some(" 5"), 1),
        ] {
            assert_eq!(query_count(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn escapes_the_five_characters() {
        let mut out = String::new();
        escape_html(&mut out, r#"<a href="x">'&'</a> フ"#);
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt; フ");
    }

    #[test]
    fn distinct_ids_are_distinct() {
        let mut ids = distinct_random_ids(500);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 500);
        assert!(ids.iter().all(|id| (1..=WORLD_ROWS).contains(id)));
    }
}
