//! The users resource: create, read (one, a batch by ids, or a page), change and delete.
//! Reads need a valid session; changes are allowed only on one's own account.

use bytes::Bytes;
use http::header::LOCATION;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::auth;
use crate::db::users::{self, User, UserChanges};
use crate::db::{DbError, PreparedClient, sessions};
use crate::error::AppError;
use crate::http::body::read_json;
use crate::http::json_in::{Fields, parse_object};
use crate::http::negotiate::{Cacheable, api_json};
use crate::http::query::param;
use crate::http::{Body, FieldError, to_json};
use crate::router::Params;
use crate::validation;

/// Most ids one batch read may name.
pub const MAX_BATCH_IDS: usize = 100;
/// Page size bounds and default for `GET /api/users?limit=`.
pub const MAX_PAGE_LIMIT: i64 = 100;
pub const DEFAULT_PAGE_LIMIT: i64 = 20;
/// Serialized user JSON is rarely longer than this.
const USER_JSON_BYTES: usize = 192;

/// The user id of the request's live session.
pub async fn authenticate(db: &PreparedClient, parts: &Parts) -> Result<i64, AppError> {
    let hash = auth::bearer_token_hash(parts)?;
    sessions::session_user(db, &hash).await?.ok_or(AppError::Unauthorized { invalid_token: true })
}

/// The `{id}` path parameter: a positive integer, else 400.
pub fn path_id(params: &Params<'_>) -> Result<i64, AppError> {
    match params.get("id").and_then(|raw| raw.parse::<i64>().ok()) {
        Some(id) if id > 0 => Ok(id),
        _ => Err(AppError::Validation(vec![FieldError::new("id", "must be a positive integer")])),
    }
}

fn user_json(user: &User) -> Result<Bytes, AppError> {
    Ok(to_json(user, USER_JSON_BYTES)?)
}

/// `POST /api/users`: `{email, password, name?}` → 201 with `Location`.
pub async fn create<B>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    let hash = auth::hash_password(password.to_owned()).await?;
    let lease = app.db.lease().await?;
    let user = users::insert_user(&lease, &email, name.unwrap_or(""), &hash).await.map_err(conflict_on_email)?;
    let mut res = api_json(parts, StatusCode::CREATED, user_json(&user)?, Cacheable::No);
    let location = HeaderValue::from_str(&format!("/api/users/{}", user.id))
        .map_err(|e| AppError::Internal(format!("location header: {e}")))?;
    res.headers_mut().insert(LOCATION, location);
    Ok(res)
}

fn conflict_on_email(e: DbError) -> AppError {
    if e.is_unique_violation() { AppError::Conflict("A user with this email already exists.") } else { e.into() }
}

/// `GET /api/users/{id}`: any signed-in user may read any user.
pub async fn get(app: &App, parts: &Parts, id: i64) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    // The session check and the read are independent: both statements go out together.
    let (who, user) = futures_util::try_join!(authenticate(&lease, parts), async {
        users::find_user(&lease, id).await.map_err(AppError::from)
    })?;
    let _ = who;
    let user = user.ok_or(AppError::NotFound("No user has this id."))?;
    Ok(api_json(parts, StatusCode::OK, user_json(&user)?, Cacheable::Revalidate))
}

/// `PATCH /api/users/{id}`: `{email?, name?, password?}`, only on one's own account.
pub async fn patch<B>(app: &App, parts: &Parts, body: B, id: i64) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let lease = app.db.lease().await?;
    let me = authenticate(&lease, parts).await?;
    if me != id {
        return Err(AppError::Forbidden("You may change only your own account."));
    }
    let mut buf = read_json(parts, body, app.users.max_body_bytes).await?;
    let obj = parse_object(&mut buf)?;
    let mut f = Fields::new(&obj, &["email", "password", "name"]);
    let email = f.opt_string("email");
    let email = f.check("email", email, validation::email);
    let password = f.opt_string("password");
    f.check("password", password, validation::password);
    let name = f.opt_string("name");
    f.check("name", name, validation::name);
    if email.is_none() && password.is_none() && name.is_none() && obj.is_empty() {
        f.error("body", "names no field to change (email, name or password)");
    }
    f.finish()?;
    let password_hash = match password {
        Some(p) => Some(auth::hash_password(p.to_owned()).await?),
        None => None,
    };
    let changes = UserChanges { email: email.as_deref(), name, password_hash: password_hash.as_deref() };
    let user = users::update_user(&lease, id, &changes)
        .await
        .map_err(conflict_on_email)?
        .ok_or(AppError::NotFound("No user has this id."))?;
    Ok(api_json(parts, StatusCode::OK, user_json(&user)?, Cacheable::Revalidate))
}

/// `DELETE /api/users/{id}`: only one's own account; its sessions go with it.
pub async fn delete(app: &App, parts: &Parts, id: i64) -> Result<Response<Body>, AppError> {
    let lease = app.db.lease().await?;
    let me = authenticate(&lease, parts).await?;
    if me != id {
        return Err(AppError::Forbidden("You may delete only your own account."));
    }
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
    items: &'a [&'a User],
}

#[derive(Serialize)]
struct Page<'a> {
    items: &'a [User],
    /// The cursor for the next page (`after=`), or null on the last page.
    next: Option<String>,
}

/// `GET /api/users?ids=1,2,3` (a batch, in the order asked, unknown ids skipped) or
/// `GET /api/users?limit=&after=` (a page in id order).
pub async fn list(app: &App, parts: &Parts) -> Result<Response<Body>, AppError> {
    let query = parts.uri.query();
    match param(query, "ids") {
        Some(raw) => batch(app, parts, raw).await,
        None => page(app, parts, page_bounds(query)?).await,
    }
}

/// The users named by `ids=`, in the order asked.
async fn batch(app: &App, parts: &Parts, raw_ids: &str) -> Result<Response<Body>, AppError> {
    let query = parts.uri.query();
    if param(query, "limit").is_some() || param(query, "after").is_some() {
        return Err(AppError::Validation(vec![FieldError::new("ids", "cannot be combined with limit or after")]));
    }
    let ids = parse_ids(raw_ids)?;
    let lease = app.db.lease().await?;
    let (_, found) = futures_util::try_join!(authenticate(&lease, parts), async {
        users::find_users_by_ids(&lease, &ids).await.map_err(AppError::from)
    })?;
    let ordered: Vec<&User> = ids.iter().filter_map(|id| found.iter().find(|u| u.id == *id)).collect();
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
    if errors.is_empty() { Ok(PageBounds { after, limit }) } else { Err(AppError::Validation(errors)) }
}

/// One page of users in id order, with the cursor of the next one.
async fn page(app: &App, parts: &Parts, bounds: PageBounds) -> Result<Response<Body>, AppError> {
    let PageBounds { after, limit } = bounds;
    let lease = app.db.lease().await?;
    let (_, mut rows) = futures_util::try_join!(authenticate(&lease, parts), async {
        users::users_page(&lease, after, limit + 1).await.map_err(AppError::from)
    })?;
    // One row more than asked tells whether another page follows.
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|u| u.id.to_string())
    } else {
        None
    };
    let body = to_json(&Page { items: &rows, next }, USER_JSON_BYTES * rows.len() + 32)?;
    Ok(api_json(parts, StatusCode::OK, body, Cacheable::Revalidate))
}

/// `ids=1,2,3`: 1..=100 positive integers; duplicates are answered once.
fn parse_ids(raw: &str) -> Result<Vec<i64>, AppError> {
    let bad = |message: &str| AppError::Validation(vec![FieldError::new("ids", message)]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds_default_and_report_every_bad_value() {
        assert_eq!(page_bounds(None).unwrap(), PageBounds { after: 0, limit: DEFAULT_PAGE_LIMIT });
        assert_eq!(page_bounds(Some("limit=100&after=7")).unwrap(), PageBounds { after: 7, limit: 100 });
        assert_eq!(page_bounds(Some("limit=1")).unwrap(), PageBounds { after: 0, limit: 1 });
        for bad in ["limit=0", "limit=101", "limit=x", "limit=", "after=-1", "after=y"] {
            assert!(matches!(page_bounds(Some(bad)), Err(AppError::Validation(e)) if e.len() == 1), "{bad}");
        }
        match page_bounds(Some("limit=0&after=z")) {
            Err(AppError::Validation(e)) => assert_eq!(e.len(), 2, "both are reported"),
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
        for bad in ["", "a", "1,,2", "1,x", "0", "-3", "1.5", " 1", &hundred_one.join(",")] {
            assert!(matches!(parse_ids(bad), Err(AppError::Validation(_))), "{bad:?}");
        }
    }
}
