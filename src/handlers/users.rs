//! The users resource: create, read (one, a batch by ids, or a page), change and delete.
//! Reads need a valid session and show a user's email to that user alone (everyone else gets the
//! public view, without it); changes are allowed only on one's own account, and a new email or
//! password also needs the current password. A change honours `If-Match` and `If-None-Match`
//! (412, not applied). In `checkout` mode a lease is an exclusive pool connection, so none is
//! held while a body is read or a password hashed.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH, LOCATION};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::db::sessions::TokenHash;
use crate::db::users::{self, User, UserChanges};
use crate::db::{DbError, PreparedClient, sessions};
use crate::error::AppError;
use crate::http::body::read_json;
use crate::http::caching::preconditions_hold;
use crate::http::client_ip::client_ip;
use crate::http::json_in::{Fields, parse_object};
use crate::http::negotiate::{Cacheable, api_json, etags};
use crate::http::query::param;
use crate::http::{Body, FieldError, to_json};
use crate::router::Params;
use crate::validation;
use crate::{abuse, auth};

/// Most ids one batch read may name, duplicates included.
pub const MAX_BATCH_IDS: usize = 100;
/// Page size bounds and default for `GET /api/users?limit=`.
pub const MAX_PAGE_LIMIT: i64 = 100;
pub const DEFAULT_PAGE_LIMIT: i64 = 20;
/// Serialized user JSON is rarely longer than this.
const USER_JSON_BYTES: usize = 192;

/// The request's live session.
pub struct Session {
    pub user_id: i64,
    /// Its token's hash.
    pub token: TokenHash,
}

/// The live session of the request's bearer token; 401 without one.
pub async fn authenticate(db: &PreparedClient, parts: &Parts) -> Result<Session, AppError> {
    let token = auth::bearer_token_hash(parts)?;
    let user_id = sessions::session_user(db, &token).await?.ok_or(AppError::Unauthorized { invalid_token: true })?;
    Ok(Session { user_id, token })
}

/// The `{id}` path parameter: a positive integer, else 400.
pub fn path_id(params: &Params<'_>) -> Result<i64, AppError> {
    match params.get("id").and_then(|raw| raw.parse::<i64>().ok()) {
        Some(id) if id > 0 => Ok(id),
        _ => Err(AppError::invalid("id", "must be a positive integer")),
    }
}

/// A user as one reader sees them: the user themselves sees everything but the password hash;
/// anyone else the public view, without the email.
#[derive(Serialize)]
struct UserView<'a> {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    name: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
}

impl<'a> UserView<'a> {
    fn of(user: &'a User, reader: i64) -> Self {
        UserView {
            id: user.id,
            email: (user.id == reader).then_some(user.email.as_str()),
            name: &user.name,
            created_at: &user.created_at,
            updated_at: &user.updated_at,
        }
    }
}

fn user_json(view: &UserView<'_>) -> Result<Bytes, AppError> {
    Ok(to_json(view, USER_JSON_BYTES)?)
}

/// `POST /api/users`: `{email, password, name?}` → 201 with `Location`. Limited per client
/// address (a token bucket, checked before the body is read): the 409 for a taken email tells
/// whether an address has an account, and this bounds how fast one client can ask.
pub async fn create<B>(app: &App, parts: &Parts, body: B, peer: IpAddr) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let shared = &app.shared;
    let client = client_ip(peer, &parts.headers, &shared.trusted_proxies, shared.forwarded_header);
    shared.limits.signups.check(client, Instant::now())?;
    let mut buf = read_json(parts, body, app.users.max_body_bytes).await?;
    let obj = parse_object(&mut buf)?;
    let mut f = Fields::new(&obj, &["email", "password", "name"]);
    let email = f.string("email");
    let email = f.check("email", email, validation::email);
    let password = f.string("password");
    f.check("password", password, validation::password);
    let name = f.opt_string("name");
    f.check("name", name, validation::name);
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AppError::Internal("validated fields missing".into()));
    };
    let hash = app.shared.hashing.hash_password(password.to_owned()).await?;
    let lease = app.db.lease().await?;
    let user = users::insert_user(&lease, &email, name.unwrap_or(""), &hash).await.map_err(conflict_on_email)?;
    drop(lease);
    let mut res = api_json(parts, StatusCode::CREATED, user_json(&UserView::of(&user, user.id))?, Cacheable::No);
    let location = HeaderValue::from_str(&format!("/api/users/{}", user.id))
        .map_err(|e| AppError::Internal(format!("location header: {e}")))?;
    res.headers_mut().insert(LOCATION, location);
    Ok(res)
}

fn conflict_on_email(e: DbError) -> AppError {
    if e.is_unique_violation() { AppError::Conflict("A user with this email already exists.") } else { e.into() }
}

/// `GET /api/users/{id}`: any signed-in user may read any user, the email only their own.
pub async fn get(app: &App, parts: &Parts, id: i64) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    // The session check and the read go out together: the read is one primary-key lookup, no
    // more work than the check itself, and nothing is answered before both are back.
    let (session, user) = futures_util::try_join!(authenticate(&lease, parts), async {
        users::find_user(&lease, id).await.map_err(AppError::from)
    })?;
    drop(lease);
    let user = user.ok_or(AppError::NotFound("No user has this id."))?;
    Ok(api_json(parts, StatusCode::OK, user_json(&UserView::of(&user, session.user_id))?, Cacheable::Revalidate))
}

/// What a `PATCH` body asks to change.
struct Change<'b> {
    email: Option<String>,
    name: Option<&'b str>,
    password: Option<&'b str>,
    /// Checked when the email or password changes.
    current_password: Option<&'b str>,
}

impl Change<'_> {
    fn touches_credentials(&self) -> bool {
        self.email.is_some() || self.password.is_some()
    }
}

/// Reads a `PATCH` body: `{email?, name?, password?, current_password?}`, the current password
/// required with a new email or password.
fn read_change<'b>(obj: &'b simd_json::borrowed::Object<'_>) -> Result<Change<'b>, AppError> {
    let mut f = Fields::new(obj, &["email", "password", "name", "current_password"]);
    let raw_email = f.opt_string("email");
    let email = f.check("email", raw_email, validation::email);
    let password = f.opt_string("password");
    f.check("password", password, validation::password);
    let name = f.opt_string("name");
    f.check("name", name, validation::name);
    let current_password = f.opt_string("current_password");
    if (raw_email.is_some() || password.is_some()) && current_password.is_none() {
        f.error("current_password", "is required to change the email or password");
    }
    if raw_email.is_none() && password.is_none() && name.is_none() && obj.is_empty() {
        f.error("body", "names no field to change (email, name or password)");
    }
    f.finish()?;
    Ok(Change { email, name, password, current_password })
}

/// `PATCH /api/users/{id}`: `{email?, name?, password?, current_password?}`, only on one's own
/// account. A new email or password needs `current_password`; a new password revokes every
/// other session of the account. `If-Match` / `If-None-Match` are checked against the account
/// as it is before the body is read (412, nothing changed), and the change applies only if the
/// account is still that version.
pub async fn patch<B>(app: &App, parts: &Parts, body: B, id: i64) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (session, current, stored_hash) = {
        let lease = app.db.lease().await?;
        let session = authenticate(&lease, parts).await?;
        if session.user_id != id {
            return Err(AppError::Forbidden("You may change only your own account."));
        }
        let (user, hash) =
            users::find_for_change(&lease, id).await?.ok_or(AppError::NotFound("No user has this id."))?;
        (session, user, hash)
    };
    // RFC 9110 section 13.2.1: preconditions before the content is processed.
    let [identity, gzipped] = etags(&user_json(&UserView::of(&current, id))?);
    let if_match = parts.headers.get(IF_MATCH);
    if !preconditions_hold(if_match, parts.headers.get(IF_NONE_MATCH), &[&identity, &gzipped]) {
        return Err(AppError::PreconditionFailed);
    }

    let mut buf = read_json(parts, body, app.users.max_body_bytes).await?;
    let obj = parse_object(&mut buf)?;
    let change = read_change(&obj)?;
    if change.touches_credentials() {
        let given = change.current_password.unwrap_or_default();
        check_current_password(app, &current.email, given, stored_hash).await?;
    }
    let password_hash = match change.password {
        Some(p) => Some(app.shared.hashing.hash_password(p.to_owned()).await?),
        None => None,
    };
    // The version the preconditions and the current password were checked against; without
    // either, the last change wins.
    let if_version = (if_match.is_some() || change.touches_credentials()).then_some(current.updated_at.as_str());
    let changes = UserChanges {
        email: change.email.as_deref(),
        name: change.name,
        password_hash: password_hash.as_deref(),
        if_version,
        session: &session.token,
    };
    let lease = app.db.lease().await?;
    let updated = users::update_user(&lease, id, &changes).await.map_err(conflict_on_email)?;
    drop(lease);
    let user = match updated {
        Some(user) => user,
        None if if_match.is_some() => return Err(AppError::PreconditionFailed),
        None if if_version.is_some() => {
            return Err(AppError::Conflict("The account changed while this request ran; send it again."));
        }
        None => return Err(AppError::NotFound("No user has this id.")),
    };
    Ok(api_json(parts, StatusCode::OK, user_json(&UserView::of(&user, id))?, Cacheable::Revalidate))
}

/// Checks the account's current password (PATCH of credentials, DELETE): 403 when wrong. A
/// wrong one counts as a failed login of the account's email, so a stolen token cannot be used
/// to guess the password faster than logins can (429 past the limit, before any hashing).
async fn check_current_password(app: &App, email: &str, given: &str, stored_hash: String) -> Result<(), AppError> {
    let failures = &app.shared.limits.failed_logins;
    let key = abuse::email_key(email);
    failures.attempt(&key, Instant::now())?;
    match app.shared.hashing.verify_password(given.to_owned(), Some(stored_hash)).await {
        Ok(true) => {
            failures.succeeded(&key);
            Ok(())
        }
        Ok(false) => Err(AppError::Forbidden("The current password is wrong.")),
        Err(e) => {
            failures.not_attempted(&key);
            Err(e)
        }
    }
}

/// `DELETE /api/users/{id}`: only one's own account, and only with its current password
/// (`{"current_password": ...}`: 400 without, 403 when wrong), so that a stolen token alone
/// cannot delete it; its sessions go with it.
pub async fn delete<B>(app: &App, parts: &Parts, body: B, id: i64) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (current, stored_hash) = {
        let lease = app.db.lease().await?;
        let session = authenticate(&lease, parts).await?;
        if session.user_id != id {
            return Err(AppError::Forbidden("You may delete only your own account."));
        }
        users::find_for_change(&lease, id).await?.ok_or(AppError::NotFound("No user has this id."))?
    };
    let required = || AppError::invalid("current_password", "is required to delete the account");
    // No body at all: the password is missing (not the wrong media type of a body).
    if !parts.headers.contains_key(CONTENT_TYPE) {
        return Err(required());
    }
    let mut buf = read_json(parts, body, app.users.max_body_bytes).await?;
    let obj = parse_object(&mut buf)?;
    let mut f = Fields::new(&obj, &["current_password"]);
    let given = f.string("current_password");
    f.finish()?;
    let given = given.ok_or_else(required)?;
    check_current_password(app, &current.email, given, stored_hash).await?;
    let lease = app.db.lease().await?;
    if !users::delete_user(&lease, id).await? {
        return Err(AppError::NotFound("No user has this id."));
    }
    Ok(no_content())
}

pub fn no_content() -> Response<Body> {
    let mut res = Response::new(Body::new(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

#[derive(Serialize)]
struct Batch<'a> {
    items: &'a [UserView<'a>],
}

#[derive(Serialize)]
struct Page<'a> {
    items: &'a [UserView<'a>],
    /// The cursor for the next page (`after=`), or null on the last page.
    next: Option<String>,
}

/// `GET /api/users?ids=1,2,3` (a batch, in the order asked, unknown ids skipped) or
/// `GET /api/users?limit=&after=` (a page in id order). The session is checked before anything
/// else: a request without one costs a session lookup and nothing more, its query unread.
pub async fn list(app: &App, parts: &Parts) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    let reader = authenticate(&lease, parts).await?.user_id;
    let query = parts.uri.query();
    match param(query, "ids") {
        Some(raw) => batch(&lease, parts, reader, raw).await,
        None => page(&lease, parts, reader, page_bounds(query)?).await,
    }
}

/// The users named by `ids=`, in the order asked.
async fn batch(db: &PreparedClient, parts: &Parts, reader: i64, raw_ids: &str) -> Result<Response<Body>, AppError> {
    let query = parts.uri.query();
    if param(query, "limit").is_some() || param(query, "after").is_some() {
        return Err(AppError::invalid("ids", "cannot be combined with limit or after"));
    }
    let ids = parse_ids(raw_ids)?;
    let found = users::find_users_by_ids(db, &ids).await?;
    let ordered: Vec<UserView<'_>> =
        ids.iter().filter_map(|id| found.iter().find(|u| u.id == *id)).map(|u| UserView::of(u, reader)).collect();
    let body = to_json(&Batch { items: &ordered }, USER_JSON_BYTES * ordered.len() + 16)?;
    Ok(api_json(parts, StatusCode::OK, body, Cacheable::Revalidate))
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageBounds {
    /// The id the page starts after (a previous page's `next`, or 0).
    after: i64,
    limit: i64,
}

/// `limit=` (1..=100, default 20) and `after=` (a cursor, default 0); both reported when bad.
fn page_bounds(query: Option<&str>) -> Result<PageBounds, AppError> {
    let mut errors = Vec::new();
    let limit = match param(query, "limit").map(str::parse::<i64>) {
        None => DEFAULT_PAGE_LIMIT,
        Some(Ok(n)) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError::new("limit", "must be an integer from 1 to 100"));
            0
        }
    };
    let after = match param(query, "after").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            errors.push(FieldError::new("after", "must be a cursor from a previous page's next"));
            0
        }
    };
    if errors.is_empty() { Ok(PageBounds { after, limit }) } else { Err(AppError::Validation { errors, omitted: 0 }) }
}

/// One page of users in id order, with the cursor of the next one.
async fn page(db: &PreparedClient, parts: &Parts, reader: i64, bounds: PageBounds) -> Result<Response<Body>, AppError> {
    let PageBounds { after, limit } = bounds;
    let mut rows = users::users_page(db, after, limit + 1).await?;
    // One row more than asked tells whether another page follows.
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|u| u.id.to_string())
    } else {
        None
    };
    let items: Vec<UserView<'_>> = rows.iter().map(|u| UserView::of(u, reader)).collect();
    let body = to_json(&Page { items: &items, next }, USER_JSON_BYTES * items.len() + 32)?;
    Ok(api_json(parts, StatusCode::OK, body, Cacheable::Revalidate))
}

/// `ids=1,2,3`: 1..=100 positive integers, duplicates counted (and answered once). Parsing
/// stops at the 101st part, however many more follow.
fn parse_ids(raw: &str) -> Result<Vec<i64>, AppError> {
    let bad = |message: &str| AppError::invalid("ids", message);
    if raw.is_empty() {
        return Err(bad("must list at least one id"));
    }
    let mut ids = Vec::new();
    for (n, part) in raw.split(',').enumerate() {
        if n == MAX_BATCH_IDS {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds_default_and_report_every_bad_value() {
        assert_eq!(page_bounds(None).unwrap(), PageBounds { after: 0, limit: DEFAULT_PAGE_LIMIT });
        assert_eq!(page_bounds(Some("limit=100&after=7")).unwrap(), PageBounds { after: 7, limit: 100 });
        assert_eq!(page_bounds(Some("limit=1")).unwrap(), PageBounds { after: 0, limit: 1 });
        for bad in ["limit=0", "limit=101", "limit=x", "limit=", "after=-1", "after=y"] {
            assert!(
                matches!(page_bounds(Some(bad)), Err(AppError::Validation { errors, .. }) if errors.len() == 1),
                "{bad}"
            );
        }
        match page_bounds(Some("limit=0&after=z")) {
            Err(AppError::Validation { errors, .. }) => assert_eq!(errors.len(), 2, "both are reported"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_ids_are_bounded_and_numeric() {
        assert_eq!(parse_ids("3,1,2").unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_ids("5,5,4").unwrap(), vec![5, 4]);
        let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        assert_eq!(parse_ids(&hundred.join(",")).unwrap().len(), 100);
        let hundred_one: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        let hundred_one_same = vec!["7"; 101].join(",");
        for bad in ["", "a", "1,,2", "1,x", "0", "-3", "1.5", " 1", &hundred_one.join(","), &hundred_one_same] {
            assert!(matches!(parse_ids(bad), Err(AppError::Validation { .. })), "{bad:?}");
        }
        assert_eq!(parse_ids(&vec!["7"; 100].join(",")).unwrap(), vec![7]);
    }
}
