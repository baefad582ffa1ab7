//! The session sweeper: one task per process deletes dead sessions (expired or revoked), at
//! once and then every `--session-sweep-interval-secs`, so that the `sessions` table holds the
//! live sessions rather than every login ever made.
//!
//! Each statement deletes at most [`BATCH`] rows, so no single one holds locks or pipelined
//! requests behind it for long; a sweep repeats it until a batch comes back short.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::db::{Db, DbError, sessions};
use crate::shutdown::{Phase, reached};

/// Rows one statement deletes at most. The sweep runs on the connection requests use (in
/// `shared` mode one that requests pipeline on), so a batch is kept to a few milliseconds.
pub const BATCH: i64 = 500;

/// Sweeps now and then every `every`, until shutdown begins. Each batch may take up to
/// `batch_timeout` (the request timeout), like a request: a batch stuck on a wedged shared
/// connection would otherwise hold it forever, so the pool could never close it once retired,
/// and no sweep would run again.
pub async fn run(db: Arc<Db>, every: Duration, batch_timeout: Duration, mut shutdown: watch::Receiver<Phase>) {
    loop {
        match sweep(&db, batch_timeout, &shutdown).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted expired and revoked sessions"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired and revoked sessions; retrying later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = reached(&mut shutdown, Phase::Closing) => return,
        }
    }
}

/// Deletes dead sessions batch by batch until one comes back short or shutdown begins; how many
/// it deleted.
async fn sweep(db: &Db, batch_timeout: Duration, shutdown: &watch::Receiver<Phase>) -> Result<u64, DbError> {
    let mut deleted = 0;
    loop {
        let batch = async { sessions::delete_dead_sessions(&*db.lease().await?, BATCH).await };
        let n = tokio::time::timeout(batch_timeout, batch)
            .await
            .map_err(|_| DbError::Stalled { what: "deleting dead sessions", after: batch_timeout })??;
        deleted += n;
        if n < BATCH as u64 || *shutdown.borrow() >= Phase::Closing {
            return Ok(deleted);
        }
        // Let the requests on this worker run between two batches.
        tokio::task::yield_now().await;
    }
}
