//! The `users` table: accounts of the users API.

use serde::Serialize;
use tokio_postgres::Row;

use super::{DbError, PreparedClient};

/// A timestamp column rendered by PostgreSQL as RFC 3339 UTC, to the microsecond.
macro_rules! utc_text {
    ($column:literal) => {
        concat!("to_char(", $column, " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    };
}

/// The columns of a [`User`], timestamps as RFC 3339 UTC.
macro_rules! user_columns {
    () => {
        concat!(
            "id, email, name, ",
            utc_text!("created_at"),
            " AS created_at, ",
            utc_text!("updated_at"),
            " AS updated_at"
        )
    };
}

pub const INSERT: &str =
    concat!("INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING ", user_columns!());
pub const SELECT_BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
/// One statement for a batch; the caller restores the requested order.
pub const SELECT_BY_IDS: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ANY($1)");
/// Keyset pagination: rows after the cursor id, in id order.
pub const SELECT_PAGE: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id > $1 ORDER BY id LIMIT $2");
/// A user and their password hash, read before a change: the change's preconditions are
/// checked against this version, and its current password against this hash.
pub const SELECT_FOR_CHANGE: &str = concat!("SELECT ", user_columns!(), ", password_hash FROM users WHERE id = $1");
/// Changes the given fields (NULL keeps a field as it is), only while the user's `updated_at`
/// is still `$5` when `$5` is given (the version the change was checked against). A new
/// password (`$4`) revokes every other session of the user (all but `$6`'s), in the same
/// statement, so that the two happen together or not at all.
pub const UPDATE: &str = concat!(
    "WITH changed AS (UPDATE users SET email = COALESCE($2, email), name = COALESCE($3, name), \
     password_hash = COALESCE($4, password_hash), updated_at = now() \
     WHERE id = $1 AND ($5::text IS NULL OR ",
    utc_text!("updated_at"),
    " = $5) RETURNING ",
    user_columns!(),
    "), revoked AS (UPDATE sessions SET revoked = true \
     WHERE $4::text IS NOT NULL AND user_id = $1 AND token_hash <> $6 AND NOT revoked \
     AND EXISTS (SELECT 1 FROM changed)) \
     SELECT * FROM changed"
);
pub const DELETE: &str = "DELETE FROM users WHERE id = $1";
pub const SELECT_LOGIN: &str = "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)";

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl User {
    fn from_row(row: &Row) -> Result<User, DbError> {
        Ok(User {
            id: row.try_get(0)?,
            email: row.try_get(1)?,
            name: row.try_get(2)?,
            created_at: row.try_get(3)?,
            updated_at: row.try_get(4)?,
        })
    }
}

/// What a change to a user sets; `None` keeps the field.
#[derive(Debug, Default)]
pub struct UserChanges<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    /// A new password's hash; the user's other sessions are revoked with it.
    pub password_hash: Option<&'a str>,
    /// Apply only if the user's `updated_at` is still this ([`User::updated_at`] as read).
    pub if_version: Option<&'a str>,
    /// The session making the change, which a new password leaves alive.
    pub session: &'a [u8],
}

pub async fn insert_user(db: &PreparedClient, email: &str, name: &str, password_hash: &str) -> Result<User, DbError> {
    let row = db.client().query_one(&db.stmts.insert_user, &[&email, &name, &password_hash]).await?;
    User::from_row(&row)
}

pub async fn find_user(db: &PreparedClient, id: i64) -> Result<Option<User>, DbError> {
    let row = db.client().query_opt(&db.stmts.user_by_id, &[&id]).await?;
    row.as_ref().map(User::from_row).transpose()
}

pub async fn find_users_by_ids(db: &PreparedClient, ids: &[i64]) -> Result<Vec<User>, DbError> {
    let rows = db.client().query(&db.stmts.users_by_ids, &[&ids]).await?;
    rows.iter().map(User::from_row).collect()
}

pub async fn users_page(db: &PreparedClient, after: i64, limit: i64) -> Result<Vec<User>, DbError> {
    let rows = db.client().query(&db.stmts.users_page, &[&after, &limit]).await?;
    rows.iter().map(User::from_row).collect()
}

/// The user and their password hash, as a change is checked against them.
pub async fn find_for_change(db: &PreparedClient, id: i64) -> Result<Option<(User, String)>, DbError> {
    let row = db.client().query_opt(&db.stmts.user_for_change, &[&id]).await?;
    row.map(|r| Ok((User::from_row(&r)?, r.try_get(5)?))).transpose()
}

/// The changed user; `None` when there is no such user or it is no longer at
/// `changes.if_version`.
pub async fn update_user(db: &PreparedClient, id: i64, changes: &UserChanges<'_>) -> Result<Option<User>, DbError> {
    let row = db
        .client()
        .query_opt(
            &db.stmts.update_user,
            &[&id, &changes.email, &changes.name, &changes.password_hash, &changes.if_version, &changes.session],
        )
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

/// True when a row was deleted.
pub async fn delete_user(db: &PreparedClient, id: i64) -> Result<bool, DbError> {
    Ok(db.client().execute(&db.stmts.delete_user, &[&id]).await? == 1)
}

/// The id and password hash of the account with `email` (any case).
pub async fn find_login(db: &PreparedClient, email: &str) -> Result<Option<(i64, String)>, DbError> {
    let row = db.client().query_opt(&db.stmts.login_by_email, &[&email]).await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}
