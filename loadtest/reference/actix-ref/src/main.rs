//! The actix-web reference server of the load-test suite: the routes of bareapi written the way
//! a team would write them with actix-web 4 and its usual companions (deadpool-postgres,
//! serde_json, quick_cache, mimalloc), so that bareapi is compared against an idiomatic
//! framework server rather than a strawman.
//!
//! ```text
//! DATABASE_URL=postgres://user@host:port/db actix-ref --listen 127.0.0.1:8080 [--workers N] [--pool-size N]
//!     [--tls-cert fullchain.pem --tls-key key.pem]
//! ```
//!
//! With `--tls-cert` and `--tls-key` the port speaks TLS 1.3/1.2 through rustls (ring), ALPN
//! `h2` then `http/1.1`, with session tickets and a 256-session cache: what bareapi's TLS
//! offers, for loadtest/tls.sh.
//!
//! Once listening it prints one line, `listening addr=IP:PORT`, to stdout. actix handles
//! SIGINT/SIGTERM (graceful stop) itself.

use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, middleware, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Timeouts};
use futures_util::future::try_join_all;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: actix-ref --listen IP:PORT [--workers N] [--pool-size N] [--tls-cert PEM --tls-key PEM]  (DATABASE_URL in the environment)";
const DEFAULT_POOL_SIZE: usize = 16;
/// Pool wait, connection create and recycle timeouts.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// actix-web's own default backlog for `HttpServer::bind`.
const BACKLOG: i32 = 1024;

const HELLO: &str = "Hello, World!";
const EXTRA_FORTUNE: &str = "Additional fortune added at request time.";
/// Rows in `world`; ids and random numbers are in 1..=WORLD_ROWS.
const WORLD_ROWS: i32 = 10_000;
const UPDATE_ATTEMPTS: usize = 3;
const MAX_BATCH_IDS: usize = 100;
const MIN_GZIP_BYTES: usize = 1024;

const WORLD_BY_ID: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
const ALL_WORLDS: &str = "SELECT id, randomnumber FROM world";
const UPDATE_WORLDS: &str = "UPDATE world SET randomnumber = v.rn \
     FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v \
     WHERE world.id = v.id";
const ALL_FORTUNES: &str = "SELECT id, message FROM fortune";
const SESSION_USER: &str = "SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()";
macro_rules! user_columns {
    () => {
        "id, email, name, \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    };
}
const USER_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
const USERS_BY_IDS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ANY($1)");

type WorldCache = quick_cache::sync::Cache<i32, World>;

// ---------------------------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone, Copy, Serialize)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Debug, Serialize)]
struct User {
    id: i64,
    /// The reader's own only, as bareapi: see [`User::seen_by`].
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    name: String,
    created_at: String,
    updated_at: String,
}

impl User {
    fn from_row(row: &tokio_postgres::Row) -> Result<User, tokio_postgres::Error> {
        Ok(User {
            id: row.try_get(0)?,
            email: Some(row.try_get(1)?),
            name: row.try_get(2)?,
            created_at: row.try_get(3)?,
            updated_at: row.try_get(4)?,
        })
    }

    /// The user as `reader` may see it: the email to its owner alone.
    fn seen_by(mut self, reader: i64) -> User {
        if self.id != reader {
            self.email = None;
        }
        self
    }
}

#[derive(Serialize)]
struct Batch<'a> {
    items: Vec<&'a User>,
}

// ---------------------------------------------------------------------------------------------
// Errors: RFC 9457 problem responses, as bareapi answers them

#[derive(Debug, Serialize)]
struct FieldError {
    field: &'static str,
    message: &'static str,
}

#[derive(Debug)]
enum AppError {
    /// A field of the path or query is invalid (400).
    Invalid(FieldError),
    /// No bearer token (`invalid_token: false`) or one that is not valid (401).
    Unauthorized {
        invalid_token: bool,
    },
    NotFound(&'static str),
    Pool(PoolError),
    Db(tokio_postgres::Error),
    Json(serde_json::Error),
}

impl AppError {
    fn invalid(field: &'static str, message: &'static str) -> Self {
        AppError::Invalid(FieldError { field, message })
    }

    /// The database is unreachable, overloaded or shutting down (503), rather than a bug (500).
    fn is_unavailable(&self) -> bool {
        match self {
            AppError::Pool(_) => true,
            AppError::Db(e) => {
                e.is_closed()
                    || e.code().is_none_or(|code| {
                        let c = code.code();
                        c.starts_with("08") || c.starts_with("53") || matches!(c, "57P01" | "57P02" | "57P03")
                    })
            }
            _ => false,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Invalid(e) => write!(f, "{}: {}", e.field, e.message),
            AppError::Unauthorized { .. } => f.write_str("unauthorized"),
            AppError::NotFound(detail) => f.write_str(detail),
            AppError::Pool(e) => write!(f, "pool: {e}"),
            AppError::Db(e) => write!(f, "query: {e}"),
            AppError::Json(e) => write!(f, "json: {e}"),
        }
    }
}

impl From<PoolError> for AppError {
    fn from(e: PoolError) -> Self {
        AppError::Pool(e)
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError::Db(e)
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Json(e)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[&'a FieldError; 1]>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            _ if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = HttpResponse::build(status);
        res.content_type("application/problem+json");
        let detail = match self {
            AppError::Invalid(_) => "The request has invalid fields; see errors.",
            AppError::Unauthorized { invalid_token: false } => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
                "This route needs an Authorization: Bearer token."
            }
            AppError::Unauthorized { invalid_token: true } => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
                "The bearer token is not valid (unknown, expired or revoked)."
            }
            AppError::NotFound(detail) => detail,
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                eprintln!("actix-ref: service unavailable: {self}");
                res.insert_header((header::RETRY_AFTER, "1"));
                "The database is unavailable; retry shortly."
            }
            _ => {
                eprintln!("actix-ref: internal error: {self}");
                "An internal error occurred."
            }
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors: match self {
                AppError::Invalid(e) => Some([e]),
                _ => None,
            },
        };
        res.body(serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

// ---------------------------------------------------------------------------------------------
// Query strings

/// The raw value of the first `name=value` pair of the query string (a bare `name` is `""`).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) if key == name => Some(value),
        None if pair == name => Some(""),
        _ => None,
    })
}

/// The TechEmpower rule for `queries`/`count`: an integer clamped to 1..=500; missing, empty or
/// non-integer values count as 1, numbers too large for any integer type as 500.
fn query_count(raw: Option<&str>) -> usize {
    let Some(raw) = raw else { return 1 };
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 1; // includes every negative number
    }
    digits.parse::<usize>().map_or(500, |n| n.clamp(1, 500))
}

// ---------------------------------------------------------------------------------------------
// TechEmpower routes

fn random_id() -> i32 {
    fastrand::i32(1..=WORLD_ROWS)
}

async fn query_world(
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    id: i32,
) -> Result<World, tokio_postgres::Error> {
    let row = client.query_one(stmt, &[&id]).await?;
    Ok(World { id: row.try_get(0)?, random_number: row.try_get(1)? })
}

async fn plaintext() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(HELLO)
}

async fn json() -> HttpResponse {
    HttpResponse::Ok().json(Message { message: HELLO })
}

async fn db(pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(WORLD_BY_ID).await?;
    let world = query_world(&client, &stmt, random_id()).await?;
    Ok(HttpResponse::Ok().json(world))
}

async fn queries(req: HttpRequest, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let n = query_count(param(req.query_string(), "queries"));
    let client = pool.get().await?;
    let stmt = client.prepare_cached(WORLD_BY_ID).await?;
    // One statement per row, all sent at once: tokio-postgres pipelines them on the connection.
    let worlds = try_join_all((0..n).map(|_| query_world(&client, &stmt, random_id()))).await?;
    Ok(HttpResponse::Ok().json(worlds))
}

async fn fortunes(pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let rows = {
        let client = pool.get().await?;
        let stmt = client.prepare_cached(ALL_FORTUNES).await?;
        client.query(&stmt, &[]).await?
    };
    let mut list: Vec<(i32, &str)> = Vec::with_capacity(rows.len() + 1);
    for row in &rows {
        list.push((row.try_get(0)?, row.try_get(1)?));
    }
    list.push((0, EXTRA_FORTUNE));
    list.sort_unstable_by(|a, b| a.1.cmp(b.1));
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(render_fortunes(&list)))
}

fn render_fortunes(rows: &[(i32, &str)]) -> String {
    use std::fmt::Write as _;
    let mut html = String::with_capacity(1280);
    html.push_str(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in rows {
        let _ = write!(html, "<tr><td>{id}</td><td>");
        escape_html(&mut html, message);
        html.push_str("</td></tr>");
    }
    html.push_str("</table></body></html>");
    html
}

fn escape_html(out: &mut String, text: &str) {
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        out.push_str(entity);
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

async fn updates(req: HttpRequest, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let n = query_count(param(req.query_string(), "queries"));
    let client = pool.get().await?;
    let select = client.prepare_cached(WORLD_BY_ID).await?;
    let update = client.prepare_cached(UPDATE_WORLDS).await?;
    // Distinct ids, so that what is returned is what is stored.
    let mut worlds =
        try_join_all(distinct_random_ids(n).into_iter().map(|id| query_world(&client, &select, id))).await?;
    for world in &mut worlds {
        world.random_number = loop {
            let n = random_id();
            if n != world.random_number {
                break n;
            }
        };
    }
    let ids: Vec<i32> = worlds.iter().map(|w| w.id).collect();
    let numbers: Vec<i32> = worlds.iter().map(|w| w.random_number).collect();
    let params: [&(dyn ToSql + Sync); 2] = [&ids, &numbers];
    let mut attempt = 1;
    loop {
        match client.execute(&update, &params).await {
            Ok(_) => break,
            // A deadlock between two concurrent batches (or a serialization failure): retry.
            Err(e) if attempt < UPDATE_ATTEMPTS && matches!(e.code().map(|c| c.code()), Some("40P01" | "40001")) => {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(HttpResponse::Ok().json(worlds))
}

/// `n` (at most 500) distinct ids in 1..=10000, in random order.
fn distinct_random_ids(n: usize) -> Vec<i32> {
    let mut seen = vec![false; WORLD_ROWS as usize + 1];
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = random_id();
        if !std::mem::replace(&mut seen[id as usize], true) {
            ids.push(id);
        }
    }
    ids
}

async fn cached_queries(
    req: HttpRequest,
    pool: web::Data<Pool>,
    cache: web::Data<WorldCache>,
) -> Result<HttpResponse, AppError> {
    let n = query_count(param(req.query_string(), "count"));
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        let id = random_id();
        let world = match cache.get(&id) {
            Some(world) => world,
            None => {
                let client = pool.get().await?;
                let stmt = client.prepare_cached(WORLD_BY_ID).await?;
                let world = query_world(&client, &stmt, id).await?;
                cache.insert(id, world);
                world
            }
        };
        worlds.push(world);
    }
    Ok(HttpResponse::Ok().json(worlds))
}

// ---------------------------------------------------------------------------------------------
// Users API (reads)

/// The SHA-256 of the request's bearer token (32 random bytes, 43 base64url characters).
fn bearer_token_hash(req: &HttpRequest) -> Result<[u8; 32], AppError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(AppError::Unauthorized { invalid_token: false });
    };
    let invalid = AppError::Unauthorized { invalid_token: true };
    let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.trim().split_once(' ')) else {
        return Err(invalid);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AppError::Unauthorized { invalid_token: false });
    }
    let token = token.trim();
    if token.len() != 43 {
        return Err(invalid);
    }
    let mut bytes = [0u8; 34];
    match URL_SAFE_NO_PAD.decode_slice(token, &mut bytes) {
        Ok(32) => Ok(Sha256::digest(&bytes[..32]).into()),
        _ => Err(invalid),
    }
}

/// The user id of the live session with this token hash, else 401.
async fn session_user(client: &deadpool_postgres::Client, hash: &[u8; 32]) -> Result<i64, AppError> {
    let stmt = client.prepare_cached(SESSION_USER).await?;
    match client.query_opt(&stmt, &[&&hash[..]]).await? {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(AppError::Unauthorized { invalid_token: true }),
    }
}

async fn find_user(client: &deadpool_postgres::Client, id: i64) -> Result<Option<User>, AppError> {
    let stmt = client.prepare_cached(USER_BY_ID).await?;
    let row = client.query_opt(&stmt, &[&id]).await?;
    Ok(row.as_ref().map(User::from_row).transpose()?)
}

async fn find_users(client: &deadpool_postgres::Client, ids: &[i64]) -> Result<Vec<User>, AppError> {
    let stmt = client.prepare_cached(USERS_BY_IDS).await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    Ok(rows.iter().map(User::from_row).collect::<Result<_, _>>()?)
}

/// `GET /api/users/{id}`: any signed-in user may read any user, the email only their own.
async fn get_user(req: HttpRequest, id: web::Path<String>, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let id = match id.parse::<i64>() {
        Ok(id) if id > 0 => id,
        _ => return Err(AppError::invalid("id", "must be a positive integer")),
    };
    let hash = bearer_token_hash(&req)?;
    let client = pool.get().await?;
    // The session check and the read are independent: both go out together on the connection.
    let (reader, user) = futures_util::try_join!(session_user(&client, &hash), find_user(&client, id))?;
    drop(client);
    let user = user.ok_or(AppError::NotFound("No user has this id."))?.seen_by(reader);
    Ok(api_json(&req, serde_json::to_vec(&user)?))
}

/// `GET /api/users?ids=1,2,3`: the users asked for, in the order asked, unknown ids skipped.
async fn list_users(req: HttpRequest, pool: web::Data<Pool>) -> Result<HttpResponse, AppError> {
    let ids = parse_ids(param(req.query_string(), "ids").unwrap_or(""))?;
    let hash = bearer_token_hash(&req)?;
    let client = pool.get().await?;
    let (reader, found) = futures_util::try_join!(session_user(&client, &hash), find_users(&client, &ids))?;
    drop(client);
    let found: Vec<User> = found.into_iter().map(|u| u.seen_by(reader)).collect();
    let items = ids.iter().filter_map(|id| found.iter().find(|u| u.id == *id)).collect();
    Ok(api_json(&req, serde_json::to_vec(&Batch { items })?))
}

/// `ids=1,2,3`: 1..=100 positive integers; duplicates are answered once.
fn parse_ids(raw: &str) -> Result<Vec<i64>, AppError> {
    let bad = |message| AppError::invalid("ids", message);
    if raw.is_empty() {
        return Err(bad("must list at least one id"));
    }
    let mut ids = Vec::new();
    for part in raw.split(',') {
        if ids.len() == MAX_BATCH_IDS {
            return Err(bad("must list at most 100 ids"));
        }
        match part.parse::<i64>() {
            Ok(id) if id > 0 => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            _ => return Err(bad("must be positive integers separated by commas")),
        }
    }
    Ok(ids)
}

/// A users-API JSON answer: a strong ETag (`If-None-Match` → 304), `Cache-Control: private,
/// no-cache`, and gzip (flate2, fastest level) for bodies of 1 KiB or more when accepted.
fn api_json(req: &HttpRequest, body: Vec<u8>) -> HttpResponse {
    let headers = req.headers();
    let use_gzip = body.len() >= MIN_GZIP_BYTES && accepts_gzip(headers.get(header::ACCEPT_ENCODING));
    let digest = Sha256::digest(&body);
    let identity = etag(&digest[..16], "");
    let gzipped = etag(&digest[..16], "-gzip");
    let hit = none_match_hits(headers.get(header::IF_NONE_MATCH), &[&identity, &gzipped]);
    let tag = if use_gzip { gzipped } else { identity };
    let mut res = if hit { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::VARY, "accept-encoding"))
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if hit {
        return res.finish();
    }
    res.content_type("application/json");
    if use_gzip {
        res.insert_header((header::CONTENT_ENCODING, "gzip"));
        res.body(gzip(&body))
    } else {
        res.body(body)
    }
}

fn etag(hash_prefix: &[u8], suffix: &str) -> String {
    use std::fmt::Write as _;
    let mut tag = String::with_capacity(34 + suffix.len());
    tag.push('"');
    for b in hash_prefix {
        let _ = write!(tag, "{b:02x}");
    }
    tag.push_str(suffix);
    tag.push('"');
    tag
}

/// `If-None-Match` names one of `tags` (a `W/` prefix ignored) or is `*`.
fn none_match_hits(if_none_match: Option<&HeaderValue>, tags: &[&str]) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || tags.contains(&candidate.strip_prefix("W/").unwrap_or(candidate)))
}

/// `Accept-Encoding` accepts gzip: listed (or `x-gzip`) with q > 0, or unlisted and `*` with q > 0.
fn accepts_gzip(accept_encoding: Option<&HeaderValue>) -> bool {
    let Some(value) = accept_encoding.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut gzip_q = None;
    let mut star_q = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip_q = Some(q);
        } else if coding == "*" {
            star_q = Some(q);
        }
    }
    gzip_q.or(star_q).is_some_and(|q| q > 0.0)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), flate2::Compression::fast());
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

// ---------------------------------------------------------------------------------------------
// Start-up

struct Args {
    listen: SocketAddr,
    workers: Option<usize>,
    pool_size: usize,
    /// The certificate chain and key files: TLS on.
    tls: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    fn positive(flag: &str, raw: &str) -> Result<usize, String> {
        match raw.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} must be a positive integer, not {raw:?}")),
        }
    }
    let mut listen = None;
    let mut workers = None;
    let mut pool_size = DEFAULT_POOL_SIZE;
    let (mut tls_cert, mut tls_key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        if matches!(flag.as_str(), "-h" | "--help") {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--listen" => {
                listen = Some(value.parse().map_err(|e| format!("--listen {value:?}: {e}"))?);
            }
            "--workers" => workers = Some(positive(&flag, &value)?),
            "--pool-size" => pool_size = positive(&flag, &value)?,
            "--tls-cert" => tls_cert = Some(value),
            "--tls-key" => tls_key = Some(value),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let listen = listen.ok_or("--listen IP:PORT is required")?;
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".to_owned()),
    };
    Ok(Args { listen, workers, pool_size, tls })
}

fn build_pool(url: &str, size: usize) -> Result<Pool, String> {
    let mut pg = tokio_postgres::Config::from_str(url).map_err(|e| format!("DATABASE_URL: {e}"))?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(POOL_TIMEOUT);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("actix-ref");
    }
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .timeouts(Timeouts { wait: Some(POOL_TIMEOUT), create: Some(POOL_TIMEOUT), recycle: Some(POOL_TIMEOUT) })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("building the pool: {e}"))
}

/// Fills the `/cached-queries` cache with every `world` row.
async fn fill_cache(pool: &Pool, cache: &WorldCache) -> Result<usize, AppError> {
    let client = pool.get().await?;
    let rows = client.query(ALL_WORLDS, &[]).await?;
    for row in &rows {
        let world = World { id: row.try_get(0)?, random_number: row.try_get(1)? };
        cache.insert(world.id, world);
    }
    Ok(rows.len())
}

/// The rustls configuration of the TLS mode, set up as bareapi's (src/server/tls.rs).
fn tls_config(cert: &str, key: &str) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {key}: {e}"))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("--tls-cert {cert} with --tls-key: {e}"))?;
    // actix-web sets ALPN (h2, http/1.1) itself in listen_rustls_0_23.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(256);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The listening socket, made as actix-web's own `bind` makes it (socket2, SO_REUSEADDR,
/// backlog 1024), but here so that port 0 works and the bound address can be printed.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[actix_web::main]
async fn main() -> io::Result<()> {
    let fail = |message: String| -> ! {
        eprintln!("actix-ref: {message}\n{USAGE}");
        std::process::exit(2);
    };
    let args = parse_args().unwrap_or_else(|e| fail(e));
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| fail("DATABASE_URL is not set".into()));
    let pool = build_pool(&url, args.pool_size).unwrap_or_else(|e| fail(e));
    let tls = args.tls.as_ref().map(|(cert, key)| tls_config(cert, key).unwrap_or_else(|e| fail(e)));
    let cache = WorldCache::new(WORLD_ROWS as usize);
    if let Err(e) = fill_cache(&pool, &cache).await {
        // Not fatal: misses read through and fill the cache.
        eprintln!("actix-ref: could not fill the world cache at start-up: {e}");
    }
    let pool = web::Data::new(pool);
    let cache = web::Data::new(cache);

    let listener = bind(args.listen)?;
    let addr = listener.local_addr()?;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .app_data(cache.clone())
            .wrap(middleware::DefaultHeaders::new().add((header::SERVER, "actix-ref")))
            .route("/plaintext", web::get().to(plaintext))
            .route("/json", web::get().to(json))
            .route("/db", web::get().to(db))
            .route("/queries", web::get().to(queries))
            .route("/fortunes", web::get().to(fortunes))
            .route("/updates", web::get().to(updates))
            .route("/cached-queries", web::get().to(cached_queries))
            .route("/api/users", web::get().to(list_users))
            .route("/api/users/{id}", web::get().to(get_user))
    })
    // actix leaves accepted sockets at the OS default (Nagle on) unless told otherwise.
    .tcp_nodelay(true);
    if let Some(n) = args.workers {
        server = server.workers(n);
    }
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?.run(),
        None => server.listen(listener)?.run(),
    };
    println!("listening addr={addr}");
    io::stdout().flush()?;
    server.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_clamp_by_the_published_rules() {
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
            (Some("-"), 1),
        ] {
            assert_eq!(query_count(raw), want, "{raw:?}");
        }
        assert_eq!(param("a=1&queries=7&queries=8", "queries"), Some("7"));
        assert_eq!(param("queries", "queries"), Some(""));
        assert_eq!(param("queriesx=1", "queries"), None);
    }

    #[test]
    fn fortunes_escape_the_five_characters() {
        let html = render_fortunes(&[(2, r#"<a href="x">'&'</a>"#)]);
        assert!(html.contains("<tr><td>2</td><td>&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;</td></tr>"));
    }

    #[test]
    fn batch_ids_are_bounded_and_numeric() {
        assert_eq!(parse_ids("3,1,2").unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_ids("5,5,4").unwrap(), vec![5, 4]);
        for bad in ["", "a", "1,,2", "0", "-3", " 1"] {
            assert!(parse_ids(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        assert!(parse_ids(&many.join(",")).is_err());
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &'static str| Some(HeaderValue::from_static(v));
        assert!(accepts_gzip(h("gzip, deflate, br").as_ref()));
        assert!(!accepts_gzip(h("gzip;q=0").as_ref()));
        assert!(accepts_gzip(h("*").as_ref()));
        assert!(!accepts_gzip(None));
    }
}
