//! The operations listener (`--metrics-listen`): `/metrics` and `/healthz` on an address of
//! their own, so the public port does not tell anyone the request rates, pool state and
//! connection counts. Served by the control thread (the one that otherwise only waits for the
//! shutdown signal), so a scrape never takes a worker's time; it stops when shutdown begins.
//! `/readyz` stays on the public port, where a load balancer's check must reach.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::Shared;
use crate::causes::Chain;
use crate::error::AppError;
use crate::handlers::ops;
use crate::http::{Body, stamp};

/// Connections served at once; more wait in the backlog. Scrapers and probes open a few.
const MAX_CONNECTIONS: usize = 64;

/// The route labels its error answers are logged under.
const LABEL: &str = "ops listener";

/// Serves `listener` until the future is dropped (at shutdown).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, header_read_timeout: Duration) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "ops listener: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| std::future::ready(Ok::<_, Infallible>(answer(&shared, &req)))),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %Chain(&e), "ops listener: connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// The answer to one request on the operations listener.
fn answer<B>(shared: &Shared, req: &Request<B>) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut res = match req.uri().path() {
        "/metrics" if get => ops::metrics_of(shared),
        "/healthz" if get => ops::healthz(),
        "/metrics" | "/healthz" => {
            AppError::MethodNotAllowed { allow: HeaderValue::from_static("GET, HEAD") }.into_response(LABEL, None)
        }
        _ => AppError::NotFound("This listener serves /metrics and /healthz only.").into_response(LABEL, None),
    };
    stamp(&mut res, None);
    res
}
