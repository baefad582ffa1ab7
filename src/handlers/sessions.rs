//! Sessions: log in (a new bearer token), log out (revoke the current one) and log out
//! everywhere (revoke every session of one's account).

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::db::{sessions, users};
use crate::error::AppError;
use crate::handlers::users::no_content;
use crate::http::body::read_json;
use crate::http::caching::NO_STORE;
use crate::http::client_ip::client_ip;
use crate::http::json_in::{Fields, parse_object};
use crate::http::negotiate::{Cacheable, api_json};
use crate::http::{Body, to_json};
use crate::validation;
use crate::{abuse, auth};

#[derive(Serialize)]
struct NewSession<'a> {
    token: &'a str,
    expires_at: &'a str,
}

/// `POST /api/sessions`: `{email, password}` → 201 `{token, expires_at}`, `Cache-Control:
/// no-store`. Wrong credentials get the same 401 whether or not the email exists, after the same
/// password work. No connection is held while the password is verified (in `checkout` mode a
/// lease is an exclusive pool connection).
///
/// Abuse limits, each decided before any password work: the client address's token bucket
/// (before the body is read), then the email's failed-login count (the same for an email no
/// account has); a full hashing queue answers 503 at once and does not count as an attempt.
pub async fn create<B>(app: &App, parts: &Parts, body: B, peer: IpAddr) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let shared = &app.shared;
    let client = client_ip(peer, &parts.headers, &shared.trusted_proxies, shared.forwarded_header);
    shared.limits.logins.check(client, Instant::now())?;
    let mut buf = read_json(parts, body, app.users.max_body_bytes).await?;
    let obj = parse_object(&mut buf)?;
    let mut f = Fields::new(&obj, &["email", "password"]);
    let email = f.string("email");
    let password = f.string("password");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AppError::Internal("validated fields missing".into()));
    };
    let failures = &shared.limits.failed_logins;
    let key = abuse::email_key(email);
    failures.attempt(&key, Instant::now())?;
    let user_id = match check_credentials(app, email, password).await {
        Ok(Some(user_id)) => {
            failures.succeeded(&key);
            user_id
        }
        Ok(None) => return Err(AppError::BadCredentials),
        Err(e) => {
            // No password was checked (busy, database down): the attempt does not count.
            failures.not_attempted(&key);
            return Err(e);
        }
    };
    let token = auth::new_token()?;
    let lease = app.db.lease().await?;
    let expires_at =
        sessions::insert_session(&lease, &token.hash, user_id, app.users.session_ttl.as_secs_f64()).await?;
    drop(lease);
    let body = to_json(&NewSession { token: &token.token, expires_at: &expires_at }, 128)?;
    let mut res = api_json(parts, StatusCode::CREATED, body, Cacheable::No);
    // The answer holds a credential: no cache, shared or private, may keep it.
    res.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    Ok(res)
}

/// The account whose email and password these are, or `None` (the same password work either
/// way).
async fn check_credentials(app: &App, email: &str, password: &str) -> Result<Option<i64>, AppError> {
    // An address that fails the rules cannot belong to an account (and may hold bytes PostgreSQL
    // refuses, such as NUL): answer it like any unknown email, after the same password work.
    let account = match validation::email(email) {
        Ok(email) => {
            let lease = app.db.lease().await?;
            users::find_login(&lease, &email).await?
        }
        Err(_) => None,
    };
    let (user_id, stored) = match account {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    if app.shared.hashing.verify_password(password.to_owned(), stored).await? { Ok(user_id) } else { Ok(None) }
}

/// `DELETE /api/sessions`: revokes every live session of the bearer token's account, that
/// token's own included ("log out everywhere").
pub async fn delete_all(app: &App, parts: &Parts) -> Result<Response<Body>, AppError> {
    let hash = auth::bearer_token_hash(parts)?;
    let lease = app.db.lease().await?;
    if sessions::revoke_all_sessions(&lease, &hash).await? > 0 {
        Ok(no_content())
    } else {
        Err(AppError::Unauthorized { invalid_token: true })
    }
}

/// `DELETE /api/sessions/current`: revokes the bearer token of this request.
pub async fn delete_current(app: &App, parts: &Parts) -> Result<Response<Body>, AppError> {
    let hash = auth::bearer_token_hash(parts)?;
    let lease = app.db.lease().await?;
    if sessions::revoke_session(&lease, &hash).await? {
        Ok(no_content())
    } else {
        Err(AppError::Unauthorized { invalid_token: true })
    }
}
