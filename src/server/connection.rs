//! Serving one accepted connection with hyper: HTTP/1.1 with keep-alive and pipelining, or
//! HTTP/1.1 + h2c through hyper-util's auto builder when HTTP/2 is enabled.

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::app::App;
use crate::service;

pub async fn serve(stream: TcpStream, app: &'static App) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    let io = TokioIo::new(stream);
    let svc = service_fn(move |req| service::handle(app, req));
    let result = match &app.auto {
        Some(auto) => auto.serve_connection(io, svc).await,
        None => app.http1.serve_connection(io, svc).await.map_err(Into::into),
    };
    if let Err(e) = result {
        // Client resets, header timeouts and malformed requests end here; none is the server's fault.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
