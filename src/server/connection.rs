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
//!
//! With HTTP/2 enabled, a connection with no request running for the header timeout is closed
//! ([`Activity`]; GOAWAY for HTTP/2), as hyper closes an idle HTTP/1.1 one; that includes a
//! connection that never sends the bytes telling HTTP/1.1 from the HTTP/2 preface. HTTP/2's
//! own limits (streams, header list, reset floods, windows, pings) are set in
//! [`Protocols::new`].
//!
//! With TLS (`--tls-cert`), [`serve_tls`] runs the handshake first, bounded by the header
//! timeout and, per worker, by `--tls-handshake-concurrency` handshakes at once (see
//! [`handshake`]), counting each outcome; then serves HTTP/2 when ALPN chose `h2` (with
//! `--http2` or without) and HTTP/1.1 otherwise, with the same builders and limits. A TLS connection never gets the raw 400/431
//! above (those bytes would be cleartext inside a TLS stream): hyper's close is the answer.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use http::StatusCode;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::causes::Chain;
use crate::config::{DEFAULT_MAX_HEADERS, HttpSettings};
use crate::error::problem_json;
use crate::metrics::{Shard, TlsFailure, TlsProtocol};
use crate::server::runtime::Worker;
use crate::server::timer::ConnTimer;
use crate::server::tls::SharedTlsConfig;
use crate::service;
use crate::sleeps::ConnSleeps;

/// The connection builders of one worker, built once from the settings;
/// [`serve`] borrows them for each accepted connection.
pub struct Protocols {
    http1: http1::Builder,
    /// Set when HTTP/2 (prior knowledge) is enabled: serves HTTP/1.1 and h2c on one port.
    auto: Option<auto::Builder<TokioExecutor>>,
    /// The header read timeout, which with HTTP/2 enabled also bounds a connection's idle
    /// time (see [`Activity`]).
    header_read_timeout: Duration,
    /// Set when TLS is configured (see [`serve_tls`]).
    tls: Option<TlsProtocols>,
}

/// What a TLS connection is served with: the configuration new handshakes use, and an HTTP/2
/// builder with the same limits as the h2c one, for connections whose ALPN chose `h2`.
struct TlsProtocols {
    config: SharedTlsConfig,
    http2: http2::Builder<TokioExecutor>,
}

/// Streams a client may open and reset before the server has accepted them, at any one time,
/// before the connection is closed with GOAWAY ENHANCE_YOUR_CALM. This is the "rapid reset"
/// flood of CVE-2023-44487: a reset frees the stream's concurrency slot at once, so
/// `max_concurrent_streams` alone bounds nothing against it. h2's own default, pinned here so
/// an upgrade cannot loosen it: a well-behaved client cancels a request now and then, never
/// dozens before the server has even seen them.
const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the server may reset for the client's faults (a stream past the concurrency limit
/// refused, a malformed header block) over one connection's life before it is closed with
/// GOAWAY ENHANCE_YOUR_CALM (RUSTSEC-2024-0003: without a bound a client makes the server
/// write resets forever). hyper's default, pinned.
const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// Flow-control windows a client may fill before the server reads: per stream and per
/// connection, hence what one connection can make the server hold unread at once. 1 MiB (the
/// default `--max-body-bytes`) lets a whole body arrive in one round trip; hyper's default,
/// pinned.
const H2_WINDOW_BYTES: u32 = 1 << 20;

/// How much response data hyper queues per stream ahead of the client's flow-control window.
/// Responses are complete in memory before they are sent, so this bounds nothing a client
/// controls; hyper's default, pinned.
const H2_MAX_SEND_BUF_BYTES: usize = 400 * 1024;

/// The HTTP/1 settings both builders share, applied alike to hyper's HTTP/1 builder and to the
/// HTTP/1 side of hyper-util's auto builder (two types with the same methods). Where they
/// differ: the head-size limit is set apart, since only hyper's own builder has
/// `max_header_size` (the auto builder bounds its buffer instead, which also makes it flush
/// gathered pipelined answers at that size rather than hyper's ~400 KiB); and the auto builder
/// reads a connection's first bytes before hyper's header timer starts, with no timeout of
/// its own, which [`Activity`] bounds by the same timeout.
macro_rules! configure_http1 {
    ($builder:expr, $http:expr) => {{
        let (b, http): (_, &HttpSettings) = ($builder, $http);
        // hyper parses up to 100 headers on the stack; setting any limit moves parsing to the
        // heap (an allocation per request), so the limit is set only when it differs.
        if http.max_headers != DEFAULT_MAX_HEADERS {
            b.max_headers(http.max_headers);
        }
        b.timer(ConnTimer::default())
            .header_read_timeout(http.header_read_timeout)
            .keep_alive(true)
            // Pipelined requests: answers are gathered and flushed together.
            .pipeline_flush(true);
    }};
}

/// HTTP/2's limits, applied alike to hyper-util's auto builder (h2c) and to hyper's HTTP/2
/// builder (h2 over TLS): two types with the same methods.
macro_rules! configure_http2 {
    ($builder:expr, $http:expr) => {{
        let (b, http): (_, &HttpSettings) = ($builder, $http);
        b.timer(TokioTimer::new())
            // Beyond it a compliant client waits; one that does not has its extra streams
            // refused (REFUSED_STREAM, counted below). Bounds the handlers and request
            // bodies one connection holds at once (config.rs).
            .max_concurrent_streams(http.http2_max_concurrent_streams)
            // The HTTP/1 head bound, applied to the decoded header list (names, values and
            // RFC 9113's 32 bytes per field): past it the stream gets 431 and the
            // connection carries on; past four times it, h2 closes the connection.
            // (One header value past `--max-header-bytes` gets the service's 431, as with
            // HTTP/1; `--max-headers` is HTTP/1's only: here the list size bounds the count.)
            .max_header_list_size(u32::try_from(http.max_head_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
            .initial_stream_window_size(H2_WINDOW_BYTES)
            .initial_connection_window_size(H2_WINDOW_BYTES)
            .max_send_buf_size(H2_MAX_SEND_BUF_BYTES)
            // A client with requests open that does not answer a ping within the header
            // timeout is gone (or stalling on purpose): the connection is closed instead
            // of waiting for TCP to notice (minutes). Idle connections are closed apart.
            .keep_alive_interval(http.header_read_timeout)
            .keep_alive_timeout(http.header_read_timeout);
    }};
}

impl Protocols {
    pub fn new(http: &HttpSettings) -> Self {
        Self::with_tls(http, None)
    }

    /// Like [`Protocols::new`], serving TLS with `tls` when it is set.
    pub fn with_tls(http: &HttpSettings, tls: Option<SharedTlsConfig>) -> Self {
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
            configure_http2!(&mut b.http2(), http);
            b
        });
        let tls = tls.map(|config| {
            let mut http2 = http2::Builder::new(TokioExecutor::new());
            configure_http2!(&mut http2, http);
            TlsProtocols { config, http2 }
        });
        Protocols { http1, auto, header_read_timeout: http.header_read_timeout, tls }
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

/// Serves the hyper connection `$conn` until it ends, the same way for every protocol when
/// shutdown begins: finish gracefully. `$idle` resolves when the connection has been idle too
/// long: it is closed gracefully then. `$finishing` is the pinned [`Finishing`] future.
///
/// [`Finishing`]: crate::shutdown::Finishing
macro_rules! until_done_or_shutdown {
    ($conn:expr, $idle:expr, $finishing:ident) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = $idle => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = $finishing.as_mut() => {
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

/// How long a kept-alive connection may stay open after shutdown begins before it is closed
/// if idle. Closing an idle connection can cross a request the client has just sent (which
/// then fails); a request already on the wire arrives well within this, and is answered.
const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(250);

/// The service of a connection whose idle time an [`Activity`] tracks (HTTP/2, h2c or over
/// TLS): each request counts as running until its answer is ready or hyper drops it.
macro_rules! tracked_service {
    ($app:expr, $sleeps:expr, $peer:expr, $activity:expr) => {{
        let tracked = Arc::clone(&$activity);
        let (app, sleeps, peer) = ($app, $sleeps, $peer);
        service_fn(move |req| {
            let running = Running::new(&tracked);
            service::handle(app, &sleeps, &peer, req).map(move |answer| {
                drop(running);
                answer
            })
        })
    }};
}

/// Serves `stream`, from `peer`, until the client or shutdown ends it. `open` counts it for the drain;
/// `_permit` holds its place under the worker's connection limit (`None` for the few accepted
/// from the backlog after shutdown began, see runtime.rs).
pub async fn serve(stream: TcpStream, peer: SocketAddr, open: Open, _permit: Option<OwnedSemaphorePermit>) {
    // The users API limits logins and signups per client address; nothing else reads it.
    let peer = peer.ip();
    let worker = open.worker;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    let protocols = &worker.protocols;
    // Each protocol's future is boxed: unboxed, all of them (12 KiB) were part of every
    // connection's task, copied about nine times as the task was spawned and finished.
    if let Some(tls) = &protocols.tls {
        return Box::pin(serve_tls(tls, stream, peer, worker)).await;
    }
    Box::pin(serve_clear(stream, peer, worker)).await;
}

/// Serves a cleartext connection: HTTP/1.1, or with `--http2` whichever of HTTP/1.1 and h2c
/// the client speaks.
async fn serve_clear(stream: TcpStream, peer: IpAddr, worker: &'static Worker) {
    let app = &worker.app;
    let protocols = &worker.protocols;
    // Polled beside hyper each time the connection wakes, so cheap to poll (see `Finishing`).
    let finishing = app.shared.shutdown.finishing_connections();
    tokio::pin!(finishing);
    // See the module doc: for answering requests hyper could not parse.
    let spare = socket2::SockRef::from(&stream).try_clone().ok();
    let io = TokioIo::new(NoShutdown(stream));
    let sleeps = Arc::new(ConnSleeps::default());
    let result = match &protocols.auto {
        Some(auto) => {
            // This connection's own timer, reusing its sleeps (server/timer.rs).
            let mut auto = auto.clone();
            auto.http1().timer(ConnTimer::new(Arc::clone(&sleeps)));
            let activity = Arc::new(Activity::new());
            let svc = tracked_service!(app, sleeps, peer, activity);
            until_done_or_shutdown!(
                auto.serve_connection(io, svc),
                activity.idle_for(protocols.header_read_timeout),
                finishing
            )
        }
        None => {
            // hyper's header timer closes an idle HTTP/1.1 connection by itself.
            let mut http1 = protocols.http1.clone();
            http1.timer(ConnTimer::new(Arc::clone(&sleeps)));
            let svc = service_fn(move |req| service::handle(app, &sleeps, &peer, req));
            until_done_or_shutdown!(http1.serve_connection(io, svc), std::future::pending(), finishing)
                .map_err(Into::into)
        }
    };
    if let Err(e) = result {
        // Client resets, header timeouts and malformed requests end here; none is the server's fault.
        tracing::debug!(error = %Chain(e.as_ref()), "connection ended with an error");
        if let (Some(err), Some(socket)) = (e.downcast_ref::<hyper::Error>(), spare) {
            answer_unparsable(err, socket);
        }
    }
}

/// Serves a TLS connection: the handshake (see [`handshake`]), bounded as a whole by the header
/// timeout (a client that sends nothing, or stalls mid-handshake, is cut then) and given up
/// when shutdown begins; then HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise. A failed
/// handshake (plain HTTP sent to the TLS port among them) ends with the close; rustls answers
/// it with an alert where it can. Every outcome is counted (metrics.rs).
async fn serve_tls(tls: &TlsProtocols, stream: TcpStream, peer: IpAddr, worker: &'static Worker) {
    let app = &worker.app;
    let protocols = &worker.protocols;
    let timeout = protocols.header_read_timeout;
    let finishing = app.shared.shutdown.finishing_connections();
    tokio::pin!(finishing);
    let stream = tokio::select! {
        done = tokio::time::timeout(timeout, handshake(tls, stream, worker)) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                app.shard.tls_handshake_failed(failure(&e));
                tracing::debug!(error = %Chain(&e), "TLS handshake failed");
                return;
            }
            Err(_) => {
                app.shard.tls_handshake_failed(TlsFailure::Timeout);
                tracing::debug!(?timeout, "TLS handshake not done within the header timeout");
                return;
            }
        },
        () = finishing.as_mut() => return,
    };
    let conn = stream.get_ref().1;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    app.shard.tls_handshake_done(if h2 { TlsProtocol::H2 } else { TlsProtocol::Http1 }, resumed);
    let io = TokioIo::new(stream);
    let sleeps = Arc::new(ConnSleeps::default());
    let result = if h2 {
        // hyper keeps an idle HTTP/2 connection open while its client answers pings.
        let activity = Arc::new(Activity::new());
        let svc = tracked_service!(app, sleeps, peer, activity);
        until_done_or_shutdown!(tls.http2.serve_connection(io, svc), activity.idle_for(timeout), finishing)
    } else {
        // hyper's header timer closes an idle HTTP/1.1 connection by itself.
        let mut http1 = protocols.http1.clone();
        http1.timer(ConnTimer::new(Arc::clone(&sleeps)));
        let svc = service_fn(move |req| service::handle(app, &sleeps, &peer, req));
        until_done_or_shutdown!(http1.serve_connection(io, svc), std::future::pending(), finishing)
    };
    if let Err(e) = result {
        tracing::debug!(error = %Chain(&e), "TLS connection ended with an error");
    }
}

/// A TLS handshake in two steps. First the ClientHello is read, which costs the server nothing
/// but a buffer: a client that stalls here (silent, or half a ClientHello) waits for the
/// header timeout without holding anything else. Then the handshake takes one of the worker's
/// `--tls-handshake-concurrency` slots, waiting for one if they are all taken, and holds it to
/// the end: the slot covers the CPU-heavy step (the key exchange and the signature, one
/// synchronous call on the worker's thread) and the state kept until the client finishes.
/// Before that step the task yields, so that the requests of connections already being served
/// that are ready run first: a flood of handshakes queues behind them, at most a slot's worth
/// at a time, instead of ahead of them.
async fn handshake(
    tls: &TlsProtocols,
    stream: TcpStream,
    worker: &'static Worker,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let shard = &worker.app.shard;
    let hello = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let waiting = Gauge::up(shard, Shard::tls_waiting);
    // Never closed: the worker lives as long as the process.
    let _slot = worker.handshake_permits.acquire().await.map_err(std::io::Error::other)?;
    drop(waiting);
    let _in_progress = Gauge::up(shard, Shard::tls_in_progress);
    tokio::task::yield_now().await;
    hello.into_stream(tls.config.load_full()).await
}

/// A gauge of the worker's shard raised by one for as long as this lives (however its future
/// ends: done, failed, or dropped at the timeout).
struct Gauge {
    shard: &'static Shard,
    add: fn(&Shard, i64),
}

impl Gauge {
    fn up(shard: &'static Shard, add: fn(&Shard, i64)) -> Gauge {
        add(shard, 1);
        Gauge { shard, add }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.add)(self.shard, -1);
    }
}

/// Why a handshake failed, from the error rustls (through tokio-rustls) or the socket gave.
fn failure(e: &std::io::Error) -> TlsFailure {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => TlsFailure::Eof,
        std::io::ErrorKind::InvalidData => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::AlertReceived(_)) => TlsFailure::Alert,
            _ => TlsFailure::Protocol,
        },
        _ => TlsFailure::Io,
    }
}

/// The requests of one connection served with HTTP/2 enabled, for closing it once idle. hyper
/// closes an idle HTTP/1.1 connection at the header timeout, but keeps an idle HTTP/2 one open
/// for as long as its client answers pings; and hyper-util's auto builder waits for the bytes
/// that tell HTTP/1.1 from the HTTP/2 preface with no timeout (hyper's header timer starts
/// after them), so without this a client sending nothing, or half a preface, would hold its
/// connection and its place under `--max-connections` for good. Closing an idle connection
/// gracefully cancels that wait.
struct Activity {
    opened: Instant,
    /// Handlers running now (HTTP/2 streams whose answer is not ready yet).
    running: AtomicUsize,
    /// When the last handler ended, in milliseconds since `opened`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { opened: Instant::now(), running: AtomicUsize::new(0), last_ms: AtomicU64::new(0) }
    }

    /// Resolves once no handler has run for `limit` (checked again every `limit` while one runs).
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Acquire);
            match Duration::from_millis(last).checked_add(limit).and_then(|d| self.opened.checked_add(d)) {
                Some(at) => tokio::time::sleep_until(at).await,
                // Past any instant the clock can express: never idle.
                None => std::future::pending().await,
            }
            if self.running.load(Ordering::Acquire) == 0 {
                if self.last_ms.load(Ordering::Acquire) == last {
                    return;
                }
            } else {
                tokio::time::sleep(limit).await;
            }
        }
    }
}

/// One handler of an [`Activity`] running, from its request until its answer is ready (or
/// hyper drops it when the client resets the stream).
struct Running(Arc<Activity>);

impl Running {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.running.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(activity))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_ms.store(ms, Ordering::Release);
        activity.running.fetch_sub(1, Ordering::AcqRel);
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
