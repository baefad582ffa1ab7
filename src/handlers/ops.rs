//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::app::{App, Shared};
use crate::error::AppError;
use crate::http::{APPLICATION_JSON, Body, response};

/// How long `/readyz` waits for the database before calling it unready.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

const PROMETHEUS_TEXT: HeaderValue = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// `GET /healthz`: the process is up and answering.
pub fn healthz() -> Response<Body> {
    response(StatusCode::OK, APPLICATION_JSON, Bytes::from_static(br#"{"status":"ok"}"#))
}

/// `GET /readyz`: 200 while the database answers within [`READY_CHECK_TIMEOUT`] and the server
/// is not draining; 503 otherwise.
pub async fn readyz(app: &App) -> Result<Response<Body>, AppError> {
    if app.shared.shutdown.is_draining() {
        return Err(AppError::Draining);
    }
    let check = async {
        let lease = app.db.lease().await?;
        lease.client().simple_query("SELECT 1").await?;
        Ok::<(), crate::db::DbError>(())
    };
    match tokio::time::timeout(READY_CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(response(StatusCode::OK, APPLICATION_JSON, Bytes::from_static(br#"{"status":"ready"}"#))),
        Ok(Err(e)) => Err(AppError::Unavailable(format!("readiness: {e}"))),
        Err(_) => Err(AppError::Unavailable(format!("readiness: no answer within {READY_CHECK_TIMEOUT:?}"))),
    }
}

/// `GET /metrics`: the Prometheus text format.
pub fn metrics(app: &App) -> Response<Body> {
    metrics_of(&app.shared)
}

/// The metrics answer from the process-wide state alone (the `--metrics-listen` listener has
/// no worker's `App`).
pub fn metrics_of(shared: &Shared) -> Response<Body> {
    response(StatusCode::OK, PROMETHEUS_TEXT, Bytes::from(shared.metrics.render()))
}
