//! The users-API reads: `GET /api/users/{id}` and `GET /api/users?ids=1,2,3`, behind a bearer
//! session token, with ETag revalidation and gzip for large bodies, as bareapi answers them.

use std::fmt::Write as _;
use std::io::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Client;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use crate::SharedState;
use crate::error::AppError;

/// The user columns, timestamps rendered by PostgreSQL as RFC 3339 UTC.
macro_rules! user_columns {
    () => {
        "id, email, name, \
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    };
}

const SELECT_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
const SELECT_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ANY($1)");
const SELECT_SESSION_USER: &str =
    "SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()";

/// Most ids one batch read may name.
const MAX_BATCH_IDS: usize = 100;
/// Smaller bodies are never compressed.
const MIN_GZIP_BYTES: usize = 1024;

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
    fn from_row(row: &Row) -> Result<User, tokio_postgres::Error> {
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

#[derive(Deserialize)]
pub struct ListParams {
    ids: Option<String>,
}

/// The SHA-256 of the request's bearer token (32 random bytes, 43 base64url characters).
fn bearer_token_hash(headers: &HeaderMap) -> Result<[u8; 32], AppError> {
    let invalid = AppError::Unauthorized { invalid_token: true };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AppError::Unauthorized { invalid_token: false });
    };
    let value = value.to_str().map_err(|_| AppError::Unauthorized { invalid_token: true })?;
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return Err(invalid);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AppError::Unauthorized { invalid_token: false });
    }
    let token = token.trim();
    if token.len() != 43 {
        return Err(invalid);
    }
    match URL_SAFE_NO_PAD.decode(token) {
        Ok(bytes) if bytes.len() == 32 => Ok(Sha256::digest(&bytes).into()),
        _ => Err(invalid),
    }
}

/// The user id of the live session whose token hashes to `hash`.
async fn authenticate(client: &Client, hash: &[u8; 32]) -> Result<i64, AppError> {
    let stmt = client.prepare_cached(SELECT_SESSION_USER).await?;
    let row = client.query_opt(&stmt, &[&&hash[..]]).await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(AppError::Unauthorized { invalid_token: true }),
    }
}

/// `GET /api/users/{id}`: any signed-in user may read any user, the email only their own.
pub async fn get_one(
    State(state): State<SharedState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = match raw_id.parse::<i64>() {
        Ok(id) if id > 0 => id,
        _ => return Err(AppError::Validation { field: "id", message: "must be a positive integer" }),
    };
    let token_hash = bearer_token_hash(&headers)?;
    let client = state.pool.get().await?;
    let reader = authenticate(&client, &token_hash).await?;
    let stmt = client.prepare_cached(SELECT_USER).await?;
    let row = client.query_opt(&stmt, &[&id]).await?;
    drop(client);
    let user = match row {
        Some(row) => User::from_row(&row)?.seen_by(reader),
        None => return Err(AppError::NotFound("No user has this id.")),
    };
    let body = serde_json::to_vec(&user)?;
    Ok(revalidatable_json(&headers, body))
}

/// `GET /api/users?ids=1,2,3`: the users in the order asked, unknown ids skipped.
pub async fn list(
    State(state): State<SharedState>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let ids = parse_ids(params.ids.as_deref().unwrap_or(""))?;
    let token_hash = bearer_token_hash(&headers)?;
    let client = state.pool.get().await?;
    let reader = authenticate(&client, &token_hash).await?;
    let stmt = client.prepare_cached(SELECT_USERS).await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    drop(client);
    let found =
        rows.iter().map(|row| Ok(User::from_row(row)?.seen_by(reader))).collect::<Result<Vec<_>, AppError>>()?;
    let items = ids.iter().filter_map(|id| found.iter().find(|u| u.id == *id)).collect();
    let body = serde_json::to_vec(&Batch { items })?;
    Ok(revalidatable_json(&headers, body))
}

/// `ids=1,2,3`: 1..=100 positive integers; duplicates are answered once.
fn parse_ids(raw: &str) -> Result<Vec<i64>, AppError> {
    let bad = |message| AppError::Validation { field: "ids", message };
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

/// A 200 JSON answer of `body` with a strong ETag (`Cache-Control: private, no-cache`), 304
/// when `If-None-Match` names it, gzip when the body is large enough and the client accepts it.
fn revalidatable_json(headers: &HeaderMap, body: Vec<u8>) -> Response {
    let use_gzip = body.len() >= MIN_GZIP_BYTES && accepts_gzip(headers.get(ACCEPT_ENCODING));
    let digest = Sha256::digest(&body);
    let mut hex = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(hex, "{b:02x}");
    }
    let identity_tag = format!("\"{hex}\"");
    let gzip_tag = format!("\"{hex}-gzip\"");
    let not_modified = none_match_hits(headers.get(IF_NONE_MATCH), &[&identity_tag, &gzip_tag]);
    let etag = if use_gzip { gzip_tag } else { identity_tag };

    let mut res = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if use_gzip {
        (
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            ],
            gzip(&body),
        )
            .into_response()
    } else {
        ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
    };
    let out = res.headers_mut();
    out.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(ETAG, etag);
    }
    out.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    res
}

/// True when `If-None-Match` is `*` or lists one of `tags` (weak comparison: `W/` is ignored).
fn none_match_hits(if_none_match: Option<&HeaderValue>, tags: &[&str]) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || tags.contains(&candidate.strip_prefix("W/").unwrap_or(candidate)))
}

/// True when `Accept-Encoding` accepts gzip (or x-gzip) with q > 0, or does not list it and
/// accepts `*` with q > 0.
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
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), Compression::fast());
    encoder.write_all(body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_bounded_and_numeric() {
        assert_eq!(parse_ids("3,1,2").unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_ids("5,5,4").unwrap(), vec![5, 4]);
        let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        assert_eq!(parse_ids(&hundred.join(",")).unwrap().len(), 100);
        let hundred_one: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        for bad in ["", "a", "1,,2", "1,x", "0", "-3", "1.5", " 1", &hundred_one.join(",")] {
            assert!(matches!(parse_ids(bad), Err(AppError::Validation { .. })), "{bad:?}");
        }
    }

    #[test]
    fn accept_encoding_rules() {
        let accepts = |v: &str| accepts_gzip(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(!accepts_gzip(None));
        assert!(accepts("gzip"));
        assert!(accepts("deflate, gzip;q=0.5"));
        assert!(accepts("br;q=1.0, *;q=0.1"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0.0, *"));
        assert!(!accepts("identity"));
    }

    #[test]
    fn if_none_match_lists_star_and_weak_tags() {
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(none_match_hits(Some(&h("\"ab\"")), &["\"ab\""]));
        assert!(none_match_hits(Some(&h("\"x\", W/\"ab\"")), &["\"ab\""]));
        assert!(none_match_hits(Some(&h("*")), &["\"ab\""]));
        assert!(!none_match_hits(Some(&h("\"nope\"")), &["\"ab\""]));
        assert!(!none_match_hits(None, &["\"ab\""]));
    }
}
