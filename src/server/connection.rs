//! Serving one accepted connection with hyper: HTTP/1.1 with keep-alive and pipelining, or
//! HTTP/1.1 + h2c through hyper-util's auto builder when HTTP/2 is enabled. When shutdown
//! begins the connection is told to finish gracefully: the request in flight is answered (with
//! `Connection: close`, as is every later request on it), an idle connection is closed after a
//! short grace.
//!
//! Malformed requests: hyper queues its 400/431 answer for a request it cannot parse, but with
//! `pipeline_flush` on (which multiplies pipelined throughput several times over) it closes the
//! connection without flushing that answer while the bad bytes sit unread in its buffer. So the
//! connection keeps a duplicate of the socket and, when hyper ends it with a parse error, writes
//! the answer itself: 431 for an oversized head or too many headers, 400 otherwise, then closes.
//! hyper would shut the write side down before returning that error, so the stream it gets
//! ([`NoShutdown`]) leaves the FIN to the close that follows.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::causes::Chain;
use crate::config::{DEFAULT_MAX_HEADERS, HttpSettings};
use crate::error::problem_json;
use crate::server::runtime::Worker;
use crate::server::timer::LazyTimer;
use crate::service;
use crate::shutdown::{Phase, reached};

/// The connection builders of one worker, built once from the settings;
/// [`serve`] borrows them for each accepted connection.
pub struct Protocols {
    http1: http1::Builder,
    /// Set when HTTP/2 (prior knowledge) is enabled: serves HTTP/1.1 and h2c on one port.
    auto: Option<auto::Builder<TokioExecutor>>,
}

/// The HTTP/1 settings both builders share, applied alike to hyper's HTTP/1 builder and to the
/// HTTP/1 side of hyper-util's auto builder (two types with the same methods). The head-size
/// limit is set apart: only hyper's own builder has `max_header_size`.
macro_rules! configure_http1 {
    ($builder:expr, $http:expr) => {{
        let (b, http): (_, &HttpSettings) = ($builder, $http);
        // hyper parses up to 100 headers on the stack; setting any limit moves parsing to the
        // heap (an allocation per request), so the limit is set only when it differs.
        if http.max_headers != DEFAULT_MAX_HEADERS {
            b.max_headers(http.max_headers);
        }
        b.timer(LazyTimer)
            .header_read_timeout(http.header_read_timeout)
            .keep_alive(true)
            // Pipelined requests: answers are gathered and flushed together.
            .pipeline_flush(true);
    }};
}

impl Protocols {
    pub fn new(http: &HttpSettings) -> Self {
        let mut http1 = http1::Builder::new();
        configure_http1!(&mut http1, http);
        // An exact bound on the head: past it, 431 (tests/limits.rs).
        http1.max_header_size(http.max_head_bytes);
        let auto = http.http2.then(|| {
            let mut b = auto::Builder::new(TokioExecutor::new());
            configure_http1!(&mut b.http1(), http);
            // The auto builder's only bound is its read buffer's, which a head may pass by up
            // to one read before hyper answers 431. hyper asserts at least 8 KiB (config.rs
            // refuses less; the max keeps a library caller from the panic).
            b.http1().max_buf_size(http.max_head_bytes.max(8192));
            b.http2().timer(TokioTimer::new());
            b
        });
        Protocols { http1, auto }
    }
}

/// One accepted connection in its worker's count, from before its task is spawned (so a drain
/// that starts before the task first runs still waits for it) until the task ends, however it
/// ends (even dropped at the drain deadline); the last one to end wakes the drain.
pub struct Open {
    worker: &'static Worker,
}

impl Open {
    pub fn new(worker: &'static Worker) -> Open {
        worker.app.shard.connection_opened();
        Open { worker }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.worker.app.shard.connection_closed() {
            self.worker.idle.notify_waiters();
        }
    }
}

/// A TCP stream whose `shutdown` does nothing: the socket is closed (FIN) when both it and
/// the spare duplicate are dropped, right after the connection ends.
struct NoShutdown(TcpStream);

impl AsyncRead for NoShutdown {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NoShutdown {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// How long a kept-alive connection may stay open after shutdown begins before it is closed
/// if idle. Closing an idle connection can cross a request the client has just sent (which
/// then fails); a request already on the wire arrives well within this, and is answered.
const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(250);

/// Serves `stream` until the client or shutdown ends it. `open` counts it for the drain;
/// `_permit` holds its place under the worker's connection limit (`None` for the few accepted
/// from the backlog after shutdown began, see runtime.rs).
pub async fn serve(stream: TcpStream, open: Open, _permit: Option<OwnedSemaphorePermit>) {
    let worker = open.worker;
    let app = &worker.app;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    // See the module doc: for answering requests hyper could not parse.
    let spare = socket2::SockRef::from(&stream).try_clone().ok();
    let io = TokioIo::new(NoShutdown(stream));
    let svc = service_fn(move |req| service::handle(app, req));
    let mut shutdown = app.shared.shutdown.subscribe();
    // Both connection types answer the same way to shutdown: finish gracefully.
    macro_rules! until_done_or_shutdown {
        ($conn:expr) => {{
            let conn = $conn;
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = reached(&mut shutdown, Phase::Draining) => {
                    // A busy connection closes after its next answer (service.rs adds
                    // `Connection: close` while draining). An idle one gets a moment for a
                    // request already on its way, then closes.
                    tokio::select! {
                        r = conn.as_mut() => r,
                        _ = tokio::time::sleep(DRAIN_IDLE_GRACE) => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    }
                }
            }
        }};
    }
    let result = match &worker.protocols.auto {
        Some(auto) => until_done_or_shutdown!(auto.serve_connection(io, svc)),
        None => until_done_or_shutdown!(worker.protocols.http1.serve_connection(io, svc)).map_err(Into::into),
    };
    if let Err(e) = result {
        // Client resets, header timeouts and malformed requests end here; none is the server's fault.
        tracing::debug!(error = %Chain(e.as_ref()), "connection ended with an error");
        if let (Some(err), Some(socket)) = (e.downcast_ref::<hyper::Error>(), spare) {
            answer_unparsable(err, socket);
        }
    }
}

/// Writes the 400 or 431 hyper queued but did not flush for a request it could not parse
/// (see the module doc); other errors get the close alone.
fn answer_unparsable(err: &hyper::Error, socket: socket2::Socket) {
    let (status, detail) = if err.is_parse_too_large() {
        (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "The request head is too large or has too many headers.")
    } else if err.is_parse() {
        (StatusCode::BAD_REQUEST, "The request is malformed HTTP/1.1.")
    } else {
        return;
    };
    let mut socket = std::net::TcpStream::from(socket);
    // A small write into an idle socket's buffer completes at once; if it cannot, the client
    // gets the close alone.
    let _ = socket.write_all(&raw_problem(status, detail));
}

/// A complete `Connection: close` problem response as bytes, for writing without hyper.
fn raw_problem(status: StatusCode, detail: &'static str) -> Vec<u8> {
    let body = problem_json(status, detail, None);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nserver: bareapi\r\ndate: {}\r\nconnection: close\r\n\
         content-type: application/problem+json\r\ncontent-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        crate::http::date::now().to_str().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
