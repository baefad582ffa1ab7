//! The `fortune` table: the 12 standard rows of (id, message).

use tokio_postgres::Row;

use super::{DbError, PreparedClient};

pub const SELECT_ALL: &str = "SELECT id, message FROM fortune";

/// All rows. Messages are read in place from the returned rows by the caller, so no string is
/// copied per row.
pub async fn query_fortunes(db: &PreparedClient) -> Result<Vec<Row>, DbError> {
    Ok(db.client().query(&db.stmts.all_fortunes, &[]).await?)
}
