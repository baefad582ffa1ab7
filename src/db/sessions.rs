//! The `sessions` table: login sessions, keyed by the SHA-256 of their token.

use super::{DbError, PreparedClient};

/// A session token's SHA-256, the only form in which tokens are stored.
pub type TokenHash = [u8; 32];

/// Expiry is computed by PostgreSQL so that one clock decides validity.
pub const INSERT: &str = "INSERT INTO sessions (token_hash, user_id, expires_at) \
     VALUES ($1, $2, now() + make_interval(secs => $3)) \
     RETURNING to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
pub const SELECT_USER: &str =
    "SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()";
pub const REVOKE: &str =
    "UPDATE sessions SET revoked = true WHERE token_hash = $1 AND NOT revoked AND expires_at > now()";
/// Revokes every live session of the user whose live session `$1` is, that one included; none
/// when `$1` is not live.
pub const REVOKE_ALL: &str = "UPDATE sessions SET revoked = true \
     WHERE user_id = (SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()) \
     AND NOT revoked AND expires_at > now()";
/// Deletes at most `$1` dead sessions (revoked or expired). The rows are picked by their
/// physical address (`ctid = ANY(ARRAY(...))` plans as a TID scan), so one statement never
/// deletes, locks or logs more than a batch; a row changed meanwhile is left for the next one.
pub const DELETE_DEAD: &str = "DELETE FROM sessions WHERE ctid = ANY(ARRAY( \
     SELECT ctid FROM sessions WHERE revoked OR expires_at <= now() LIMIT $1))";

/// Stores a new session; returns its expiry (RFC 3339).
pub async fn insert_session(
    db: &PreparedClient,
    hash: &TokenHash,
    user_id: i64,
    ttl_secs: f64,
) -> Result<String, DbError> {
    let row = db.client().query_one(&db.stmts.insert_session, &[&&hash[..], &user_id, &ttl_secs]).await?;
    Ok(row.try_get(0)?)
}

/// The user of a live (not expired, not revoked) session.
pub async fn session_user(db: &PreparedClient, hash: &TokenHash) -> Result<Option<i64>, DbError> {
    let row = db.client().query_opt(&db.stmts.session_user, &[&&hash[..]]).await?;
    row.map(|r| r.try_get(0)).transpose().map_err(DbError::from)
}

/// Revokes a live session; false when there was none.
pub async fn revoke_session(db: &PreparedClient, hash: &TokenHash) -> Result<bool, DbError> {
    Ok(db.client().execute(&db.stmts.revoke_session, &[&&hash[..]]).await? == 1)
}

/// Revokes every live session of the user of the live session `hash`; how many (0 when `hash`
/// is not live).
pub async fn revoke_all_sessions(db: &PreparedClient, hash: &TokenHash) -> Result<u64, DbError> {
    Ok(db.client().execute(&db.stmts.revoke_all_sessions, &[&&hash[..]]).await?)
}

/// Deletes at most `batch` dead sessions; how many it deleted.
pub async fn delete_dead_sessions(db: &PreparedClient, batch: i64) -> Result<u64, DbError> {
    Ok(db.client().execute(&db.stmts.delete_dead_sessions, &[&batch]).await?)
}
