//! HTTP/2 with prior knowledge (h2c, `--http2`) against the real binary and a real PostgreSQL.
//! hyper's own HTTP/2 client drives what a well-behaved client does: every TechEmpower route,
//! the users API, the limits, many streams on one connection. A small raw-frame client
//! ([`raw`]) does what no well-behaved client does: open and reset streams in a flood, open
//! streams past the advertised limit, leave pings unanswered, say nothing at all.

mod common;

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, users};
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

type Body = BoxBody<Bytes, Infallible>;

fn empty() -> Body {
    Empty::new().boxed()
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body sent as `chunks` DATA frames with no length known beforehand (no Content-Length).
fn streamed(chunks: Vec<Bytes>) -> Body {
    let frames = chunks.into_iter().map(|c| Ok::<_, Infallible>(Frame::data(c)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// One HTTP/2 connection made by hyper's client; its connection task runs beside the test.
struct Client {
    sender: SendRequest<Body>,
    conn: tokio::task::JoinHandle<hyper::Result<()>>,
    /// Asks the connection task for the stream limit the server advertised.
    ask_max_streams: mpsc::UnboundedSender<oneshot::Sender<usize>>,
    base: String,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
        let (ask_max_streams, mut asked) = mpsc::unbounded_channel::<oneshot::Sender<usize>>();
        let conn = tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    ended = conn.as_mut() => return ended,
                    Some(reply) = asked.recv() => {
                        let _ = reply.send(conn.current_max_send_streams());
                    }
                }
            }
        });
        Client { sender, conn, ask_max_streams, base: format!("http://{addr}") }
    }

    /// The stream limit the server advertised (its SETTINGS have arrived once it has answered).
    async fn peer_max_streams(&self) -> usize {
        let (reply, answer) = oneshot::channel();
        self.ask_max_streams.send(reply).expect("connection task running");
        answer.await.expect("connection task answers")
    }

    fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(format!("{}{path}", self.base))
    }

    /// Sends `req` on this connection; the error is hyper's (a reset stream, a closed connection).
    async fn try_send(&mut self, req: Request<Body>) -> Result<Res, hyper::Error> {
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Res { status: parts.status, version: parts.version, headers: parts.headers, body })
    }

    async fn send(&mut self, req: Request<Body>) -> Res {
        self.try_send(req).await.expect("HTTP/2 exchange")
    }

    async fn get(&mut self, path: &str) -> Res {
        let req = self.request("GET", path).body(empty()).unwrap();
        self.send(req).await
    }
}

struct Res {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Res {
    fn header(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.get_all(name).iter();
        let first = all.next().map(|v| v.to_str().expect("ASCII header"));
        assert!(all.next().is_none(), "header {name} appears twice");
        first
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.text()))
    }

    /// What every answer carries, over HTTP/2 as over HTTP/1.1.
    fn assert_standard_headers(&self) {
        assert_eq!(self.version, Version::HTTP_2);
        assert_eq!(self.header("server"), Some("bareapi"));
        httpdate::parse_http_date(self.header("date").expect("Date")).expect("Date is an HTTP date");
        let len: usize = self.header("content-length").expect("Content-Length").parse().unwrap();
        assert_eq!(len, self.body.len());
        assert!(self.header("content-type").is_some(), "Content-Type");
        assert!(self.header("connection").is_none(), "no connection-specific header in HTTP/2");
    }

    /// A problem answer with `status`.
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        self.assert_standard_headers();
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        assert_eq!(self.json()["status"], status);
    }
}

fn assert_world(v: &Value) -> (i64, i64) {
    let obj = v.as_object().expect("world is an object");
    assert_eq!(obj.len(), 2, "{v}");
    let id = obj["id"].as_i64().expect("id is an integer");
    let n = obj["randomNumber"].as_i64().expect("randomNumber is an integer");
    assert!((1..=10_000).contains(&id) && (1..=10_000).contains(&n), "{v}");
    (id, n)
}

fn world_rows(res: &Res, want: usize) -> Vec<(i64, i64)> {
    assert_eq!(res.status, 200, "{}", res.text());
    res.assert_standard_headers();
    assert_eq!(res.header("content-type"), Some("application/json"));
    let rows = res.json();
    let rows = rows.as_array().expect("an array of rows");
    assert_eq!(rows.len(), want, "{}", res.text());
    rows.iter().map(assert_world).collect()
}

/// Every TechEmpower route answers over HTTP/2 exactly as over HTTP/1.1, in both runtime
/// modes (HTTP/2 runs each stream as a task of the worker's runtime), all on one connection;
/// and the server advertises the default stream limit.
#[tokio::test]
async fn every_benchmark_route_answers_over_http2_in_both_runtimes() {
    let fortunes = common::expected_fortunes_page();
    let (db, db_conn) =
        tokio_postgres::connect(&common::database_url(), tokio_postgres::NoTls).await.expect("connect db");
    tokio::spawn(db_conn);
    for mode in ["per-core", "multi-thread"] {
        let server = Server::start(&["--http2", "--runtime", mode]);
        let mut h2 = Client::connect(server.addr).await;

        let res = h2.get("/plaintext").await;
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("text/plain"));
        assert_eq!(res.text(), "Hello, World!");
        // The server's SETTINGS have arrived with the first answer.
        assert_eq!(h2.peer_max_streams().await, 100, "--http2-max-concurrent-streams default");

        let res = h2.get("/json").await;
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.text(), r#"{"message":"Hello, World!"}"#);

        let res = h2.get("/db").await;
        assert_eq!(res.status, 200, "{}", res.text());
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_world(&res.json());

        for (query, want) in [("?queries=20", 20), ("?queries=0", 1), ("?queries=501", 500), ("?queries=x", 1)] {
            world_rows(&h2.get(&format!("/queries{query}")).await, want);
        }

        let res = h2.get("/fortunes").await;
        assert_eq!(res.status, 200, "{}", res.text());
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(res.text(), fortunes);

        // /updates answers the rows with their new numbers, and those are what is stored.
        let rows = world_rows(&h2.get("/updates?queries=5").await, 5);
        for (id, n) in rows {
            let row = db.query_one("SELECT randomnumber FROM world WHERE id = $1", &[&(id as i32)]).await.unwrap();
            assert_eq!(i64::from(row.get::<_, i32>(0)), n, "row {id}");
        }
        world_rows(&h2.get("/updates?queries=501").await, 500);

        for (query, want) in [("?count=10", 10), ("?count=0", 1), ("?count=501", 500)] {
            world_rows(&h2.get(&format!("/cached-queries{query}")).await, want);
        }

        h2.get("/nope").await.assert_problem(404);
        assert!(!h2.conn.is_finished(), "one connection served every route");
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

/// The users API over HTTP/2: create (201 + Location), log in, read with an ETag and get 304
/// for it, and gzip for a large batch when Accept-Encoding allows it, each representation with
/// its own tag that revalidates too.
#[tokio::test]
async fn users_api_over_http2_with_etags_and_gzip() {
    let server = Server::start(&["--http2"]);
    let mut h2 = Client::connect(server.addr).await;
    let post = |h2: &Client, path: &str, body: Value| {
        h2.request("POST", path).header("content-type", "application/json").body(full(body.to_string())).unwrap()
    };

    let email = users::unique_email("h2");
    let res =
        h2.send(post(&h2, "/api/users", json!({"email": email, "password": users::PASSWORD, "name": "Ann"}))).await;
    assert_eq!(res.status, 201, "{}", res.text());
    res.assert_standard_headers();
    let id = res.json()["id"].as_i64().unwrap();
    assert_eq!(res.header("location"), Some(format!("/api/users/{id}").as_str()));
    assert_eq!(res.json()["email"], email.to_lowercase());
    assert_eq!(res.json()["name"], "Ann");

    let res = h2.send(post(&h2, "/api/sessions", json!({"email": email, "password": users::PASSWORD}))).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let auth = bearer(res.json()["token"].as_str().unwrap());
    let get = |h2: &Client, path: &str, extra: &[(&str, &str)]| {
        let mut req = h2.request("GET", path).header("authorization", &auth);
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        req.body(empty()).unwrap()
    };

    let path = format!("/api/users/{id}");
    let res = h2.send(get(&h2, &path, &[])).await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.assert_standard_headers();
    assert_eq!(res.json()["email"], email.to_lowercase());
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));
    let etag = res.header("etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");

    let res = h2.send(get(&h2, &path, &[("if-none-match", &etag)])).await;
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    assert_eq!(h2.send(get(&h2, &path, &[("if-none-match", "\"other\"")])).await.status, 200);
    // Without a token: 401, on the same connection.
    h2.get(&path).await.assert_problem(401);

    // Nineteen more users make a batch of over a kilobyte.
    let mut ids = vec![id.to_string()];
    for _ in 0..19 {
        let body = json!({"email": users::unique_email("h2gz"), "password": users::PASSWORD});
        let res = h2.send(post(&h2, "/api/users", body)).await;
        assert_eq!(res.status, 201, "{}", res.text());
        ids.push(res.json()["id"].as_i64().unwrap().to_string());
    }
    let batch = format!("/api/users?ids={}", ids.join(","));
    let plain = h2.send(get(&h2, &batch, &[])).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert!(plain.body.len() > 1024, "a 20-user batch is over a kilobyte");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));

    let res = h2.send(get(&h2, &batch, &[("accept-encoding", "gzip")])).await;
    assert_eq!(res.status, 200);
    res.assert_standard_headers();
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    assert!(res.body.len() < plain.body.len());
    assert_eq!(gunzip(&res.body), plain.body);
    let gz_tag = res.header("etag").expect("ETag").to_owned();
    assert_ne!(Some(gz_tag.as_str()), plain.header("etag"), "each representation has its own tag");
    let again = h2.send(get(&h2, &batch, &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)])).await;
    assert_eq!(again.status, 304);
    let res = h2.send(get(&h2, &batch, &[("accept-encoding", "gzip;q=0")])).await;
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.body, plain.body);
}

/// Header limits over HTTP/2. One value past `--max-header-bytes` gets the service's 431
/// problem; a header list past `--max-head-bytes` is refused by HTTP/2 itself (SETTINGS_MAX_
/// HEADER_LIST_SIZE): 431 on that stream, and the connection carries on; one within it passes,
/// though it is far past h2's 16 KiB default; one past four times the limit closes the
/// connection (the server carries on).
#[tokio::test]
async fn header_limits_over_http2() {
    let server = Server::start(&["--http2"]);
    let mut h2 = Client::connect(server.addr).await;
    let with_headers = |h2: &Client, headers: &[(String, String)]| {
        let mut req = h2.request("GET", "/plaintext");
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        req.body(empty()).unwrap()
    };
    let padded = |count: usize, each: usize| -> Vec<(String, String)> {
        (0..count).map(|i| (format!("x-pad-{i}"), "p".repeat(each))).collect()
    };

    // 60 KiB of headers in all: under the 64 KiB list limit.
    let res = h2.send(with_headers(&h2, &padded(4, 15 * 1024))).await;
    assert_eq!(res.status, 200, "60 KiB of headers: {}", res.text());
    assert_eq!(res.text(), "Hello, World!");

    // One value of 17 KiB: the per-value limit (16 KiB), answered by the service.
    let res = h2.send(with_headers(&h2, &[("x-big".to_owned(), "b".repeat(17 * 1024))])).await;
    res.assert_problem(431);

    // 75 KiB: past the list limit. h2 answers 431 itself (no body) and resets the stream.
    let res = h2.send(with_headers(&h2, &padded(5, 15 * 1024))).await;
    assert_eq!(res.status, 431);
    assert!(res.body.is_empty());
    // The same connection serves the next request.
    assert_eq!(h2.get("/plaintext").await.text(), "Hello, World!");
    assert!(!h2.conn.is_finished());

    // 300 KiB, past four times the limit: the connection is closed, the server carries on.
    let err = h2.try_send(with_headers(&h2, &padded(20, 15 * 1024))).await.err();
    assert!(err.is_some(), "a 300 KiB header list was served");
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut h2.conn).await;
    assert!(closed.is_ok(), "the connection stayed open after a 300 KiB header list");
    let mut fresh = Client::connect(server.addr).await;
    assert_eq!(fresh.get("/plaintext").await.text(), "Hello, World!");
}

/// A body past `--max-body-bytes` gets 413 with a problem body over HTTP/2, decided from
/// Content-Length or while reading DATA frames that came without one; the connection carries on.
#[tokio::test]
async fn oversized_bodies_get_413_over_http2() {
    let server = Server::start(&["--http2", "--max-body-bytes", "1024"]);
    let mut h2 = Client::connect(server.addr).await;
    let post = |h2: &Client, body: Body| {
        h2.request("POST", "/api/users").header("content-type", "application/json").body(body).unwrap()
    };
    let big = json!({"email": users::unique_email("h2big"), "password": users::PASSWORD, "name": "x".repeat(2000)});
    let res = h2.send(post(&h2, full(big.to_string()))).await;
    res.assert_problem(413);
    assert!(res.json()["detail"].is_string());

    // No Content-Length: two DATA frames of 600 bytes.
    let chunk = Bytes::from("y".repeat(600));
    let res = h2.send(post(&h2, streamed(vec![chunk.clone(), chunk]))).await;
    res.assert_problem(413);

    let ok = json!({"email": users::unique_email("h2small"), "password": users::PASSWORD}).to_string();
    let res = h2.send(post(&h2, streamed(vec![Bytes::from(ok)]))).await;
    assert_eq!(res.status, 201, "{}", res.text());
}

/// A handler past `--request-timeout-ms` answers 503 + Retry-After on time, while the other
/// streams of the same connection are served meanwhile.
#[tokio::test]
async fn slow_handlers_answer_503_at_the_request_timeout_over_http2() {
    // 1 s: a stream that waited for the slow one would be answered only after it, and the
    // margin to a loaded machine's scheduling delays is wide.
    let server = Server::start(&["--http2", "--request-timeout-ms", "1000"]);
    let mut h2 = Client::connect(server.addr).await;
    let started = Instant::now();
    let slow = h2.sender.send_request(h2.request("GET", "/__test/sleep?ms=5000").body(empty()).unwrap());
    let res = h2.get("/plaintext").await;
    assert_eq!(res.text(), "Hello, World!");
    assert!(started.elapsed() < Duration::from_millis(900), "a stream waited for another");
    let slow = slow.await.expect("the slow stream is answered");
    let took = started.elapsed();
    assert_eq!(slow.status(), 503);
    assert_eq!(slow.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let problem: Value = serde_json::from_slice(&slow.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(problem["status"], 503);
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(4), "{took:?}");
    assert_eq!(h2.get("/__test/sleep?ms=10").await.status, 200);
}

/// A panicking handler answers 500 for its own stream; the stream beside it and the next
/// request on the same connection are served.
#[tokio::test]
async fn a_panicking_handler_costs_only_its_own_stream() {
    let server = Server::start(&["--http2"]);
    let mut h2 = Client::connect(server.addr).await;
    let beside = h2.sender.send_request(h2.request("GET", "/__test/sleep?ms=300").body(empty()).unwrap());
    let res = h2.get("/__test/panic").await;
    res.assert_problem(500);
    assert!(res.header("x-request-id").is_some());
    let beside = beside.await.expect("the stream beside the panic is answered");
    assert_eq!(beside.status(), 200);
    for _ in 0..3 {
        assert_eq!(h2.get("/plaintext").await.text(), "Hello, World!");
    }
    assert!(!h2.conn.is_finished());
}

/// Past `--http2-max-concurrent-streams`, a compliant client's requests wait for a place: the
/// server advertises the limit, and nine requests of 400 ms on a limit of three take three
/// rounds, all answered.
#[tokio::test]
async fn streams_past_the_limit_wait_for_a_place() {
    let server = Server::start(&["--http2", "--http2-max-concurrent-streams", "3"]);
    let mut h2 = Client::connect(server.addr).await;
    assert_eq!(h2.get("/plaintext").await.status, 200);
    assert_eq!(h2.peer_max_streams().await, 3);
    let started = Instant::now();
    let waiting: Vec<_> = (0..9)
        .map(|_| h2.sender.send_request(h2.request("GET", "/__test/sleep?ms=400").body(empty()).unwrap()))
        .collect();
    for res in futures_util::future::join_all(waiting).await {
        assert_eq!(res.expect("answered").status(), 200);
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1150), "nine 400 ms requests on three streams took {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Streams a client cancels (RST_STREAM CANCEL, as hyper sends when a request is dropped) stop
/// their handlers at once, and cancelling accepted streams costs the connection nothing.
#[tokio::test]
async fn cancelled_streams_stop_their_handlers_and_keep_the_connection() {
    let server = Server::start(&["--http2", "--workers", "1"]);
    let mut h2 = Client::connect(server.addr).await;
    let mut scrape = Client::connect(server.addr).await;
    async fn in_flight(scrape: &mut Client) -> f64 {
        let text = scrape.get("/metrics").await;
        let line = text.text().lines().find(|l| l.starts_with("bareapi_http_requests_in_flight ")).expect("gauge");
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }
    assert_eq!(in_flight(&mut scrape).await, 1.0, "only the scrape is in flight at first");
    let sleepers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(h2.sender.send_request(h2.request("GET", "/__test/sleep?ms=10000").body(empty()).unwrap()))
        })
        .collect();
    let sent = Instant::now();
    while in_flight(&mut scrape).await != 21.0 && sent.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight(&mut scrape).await, 21.0, "the twenty sleepers run");
    for s in &sleepers {
        s.abort();
    }
    let cancelled = Instant::now();
    while in_flight(&mut scrape).await != 1.0 && cancelled.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight(&mut scrape).await, 1.0, "cancelled handlers still running");
    assert!(cancelled.elapsed() < Duration::from_secs(2));
    assert_eq!(h2.get("/plaintext").await.text(), "Hello, World!");
    assert!(!h2.conn.is_finished());
}

/// An HTTP/2 connection with nothing running is closed (GOAWAY) after the header read timeout,
/// as an idle HTTP/1.1 one is; one whose request runs longer than that is not.
#[tokio::test]
async fn idle_http2_connections_are_closed_after_the_header_timeout() {
    let server = Server::start(&["--http2", "--header-read-timeout-ms", "500"]);
    let mut h2 = Client::connect(server.addr).await;
    // Busy past the timeout: answered (and the client answers the server's pings meanwhile).
    assert_eq!(h2.get("/__test/sleep?ms=1200").await.status, 200);
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), &mut h2.conn).await;
    let took = idle_since.elapsed();
    let ended = closed.unwrap_or_else(|_| panic!("an idle HTTP/2 connection stayed open for 5 s"));
    assert!(ended.expect("connection task").is_ok(), "closed gracefully (GOAWAY)");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2000), "{took:?}");
    // A new connection is served.
    let mut fresh = Client::connect(server.addr).await;
    assert_eq!(fresh.get("/plaintext").await.text(), "Hello, World!");
}

/// A minimal HTTP/2 frame client over a blocking socket, for what hyper's client never does.
/// Requests are HPACK literals without indexing, so no table is kept; answers are read as frames
/// (their header blocks are not decoded, except for recognising `:status 200`).
mod raw {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;
    pub const CANCEL: u32 = 0x8;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of a RST_STREAM or GOAWAY.
        pub fn error_code(&self) -> u32 {
            let at = if self.kind == GOAWAY { 4 } else { 0 };
            u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
        }

        /// A response HEADERS frame whose first field is `:status 200` (HPACK static index 8).
        pub fn is_status_200(&self) -> bool {
            self.kind == HEADERS && self.payload.first() == Some(&0x88)
        }
    }

    #[derive(Debug)]
    pub enum Event {
        Frame(Frame),
        /// The server closed the connection (end of stream or reset).
        Closed,
        TimedOut,
    }

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap();
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn hpack_int(out: &mut Vec<u8>, prefix_bits: u32, first: u8, mut n: usize) {
        let max = (1usize << prefix_bits) - 1;
        if n < max {
            out.push(first | n as u8);
            return;
        }
        out.push(first | max as u8);
        n -= max;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }

    /// A literal header field without indexing, with a literal name (RFC 7541 section 6.2.2).
    fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
        out.push(0x00);
        hpack_int(out, 7, 0, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(out, 7, 0, value.len());
        out.extend_from_slice(value.as_bytes());
    }

    /// A complete GET request on `stream` (HEADERS with END_STREAM).
    pub fn get(stream: u32, path: &str) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "test")] {
            literal(&mut block, name, value);
        }
        frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
    }

    pub fn rst(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    pub struct Conn {
        stream: TcpStream,
    }

    impl Conn {
        /// Connects, sends the preface and empty SETTINGS, and waits for the server's SETTINGS
        /// (acknowledged).
        pub fn open(addr: SocketAddr) -> Conn {
            let mut conn = Conn::silent(addr);
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend(frame(SETTINGS, 0, 0, &[]));
            conn.send(&hello);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match conn.next(deadline) {
                    Event::Frame(f) if f.kind == SETTINGS && f.flags & ACK == 0 => return conn,
                    Event::Frame(_) => {}
                    other => panic!("no SETTINGS from the server: {other:?}"),
                }
            }
        }

        /// Connects and sends nothing.
        pub fn silent(addr: SocketAddr) -> Conn {
            Conn { stream: TcpStream::connect(addr).expect("connect") }
        }

        pub fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("write");
        }

        /// The next frame, answering SETTINGS with an ACK (PINGs are left unanswered).
        pub fn next(&mut self, deadline: Instant) -> Event {
            let mut head = [0u8; 9];
            if let Some(end) = self.read_exact(&mut head, deadline) {
                return end;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if let Some(end) = self.read_exact(&mut payload, deadline) {
                return end;
            }
            let f = Frame {
                kind: head[3],
                flags: head[4],
                stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
                payload,
            };
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                self.send(&frame(SETTINGS, ACK, 0, &[]));
            }
            Event::Frame(f)
        }

        fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Option<Event> {
            let mut filled = 0;
            while filled < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Some(Event::TimedOut);
                }
                self.stream.set_read_timeout(Some(left)).unwrap();
                match self.stream.read(&mut buf[filled..]) {
                    Ok(0) => return Some(Event::Closed),
                    Ok(n) => filled += n,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        return Some(Event::TimedOut);
                    }
                    Err(_) => return Some(Event::Closed),
                }
            }
            None
        }

        /// Reads until a GOAWAY arrives (returned with every frame before it), or the server
        /// closes, or the deadline passes (both a panic).
        pub fn until_goaway(&mut self, limit: Duration) -> (Frame, Vec<Frame>) {
            let deadline = Instant::now() + limit;
            let mut before = Vec::new();
            loop {
                match self.next(deadline) {
                    Event::Frame(f) if f.kind == GOAWAY => return (f, before),
                    Event::Frame(f) => before.push(f),
                    other => panic!("no GOAWAY within {limit:?} ({other:?}, {} frames before)", before.len()),
                }
            }
        }

        /// True when the server closes the connection within `limit` (frames before that are
        /// read and dropped, a GOAWAY included).
        pub fn closed_within(&mut self, limit: Duration) -> bool {
            let deadline = Instant::now() + limit;
            loop {
                match self.next(deadline) {
                    Event::Frame(_) => {}
                    Event::Closed => return true,
                    Event::TimedOut => return false,
                }
            }
        }
    }

    /// How many of `frames` are RST_STREAM with `code`.
    pub fn resets(frames: &[Frame], code: u32) -> usize {
        frames.iter().filter(|f| f.kind == RST_STREAM && f.error_code() == code).count()
    }
}

/// CVE-2023-44487 ("rapid reset"): a client opening streams and resetting them at once, before
/// the server has accepted them, has its connection closed with GOAWAY ENHANCE_YOUR_CALM after
/// 20 of them; the server carries on serving.
#[test]
fn a_rapid_reset_flood_is_cut_off() {
    let server = Server::start(&["--http2"]);
    let mut conn = raw::Conn::open(server.addr);
    let mut flood = Vec::new();
    for i in 0..200 {
        let stream = 1 + 2 * i;
        flood.extend(raw::get(stream, "/plaintext"));
        flood.extend(raw::rst(stream, raw::CANCEL));
    }
    conn.send(&flood);
    let (goaway, _) = conn.until_goaway(Duration::from_secs(5));
    assert_eq!(goaway.error_code(), raw::ENHANCE_YOUR_CALM);
    assert_eq!(&goaway.payload[8..], b"too_many_resets");
    assert!(conn.closed_within(Duration::from_secs(5)), "the flooding connection stays open");

    // A few resets are a client's right: the connection carries on.
    let mut conn = raw::Conn::open(server.addr);
    let mut some = Vec::new();
    for i in 0..10 {
        some.extend(raw::get(1 + 2 * i, "/plaintext"));
        some.extend(raw::rst(1 + 2 * i, raw::CANCEL));
    }
    some.extend(raw::get(21, "/plaintext"));
    conn.send(&some);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match conn.next(deadline) {
            raw::Event::Frame(f) if f.stream == 21 && f.kind == raw::HEADERS => {
                assert!(f.is_status_200(), "{f:?}");
                break;
            }
            raw::Event::Frame(f) => assert_ne!(f.kind, raw::GOAWAY, "{f:?}"),
            other => panic!("stream 21 not answered: {other:?}"),
        }
    }
    assert_eq!(server.get("/plaintext").text(), "Hello, World!");
}

/// A client ignoring the advertised stream limit has the streams past it refused
/// (REFUSED_STREAM) while the ones within it are answered; after 1024 refusals (the bound on
/// resets the server sends for a client's faults) the connection is closed with GOAWAY
/// ENHANCE_YOUR_CALM. The server carries on.
#[test]
fn streams_past_the_limit_are_refused_and_a_flood_of_them_is_cut_off() {
    let server = Server::start(&["--http2", "--http2-max-concurrent-streams", "2"]);
    let mut conn = raw::Conn::open(server.addr);
    // Two streams fill the limit for a second; the third is refused.
    let mut first = raw::get(1, "/__test/sleep?ms=1000");
    first.extend(raw::get(3, "/__test/sleep?ms=1000"));
    first.extend(raw::get(5, "/plaintext"));
    conn.send(&first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answered = Vec::new();
    let mut refused = Vec::new();
    while answered.len() + refused.len() < 3 {
        match conn.next(deadline) {
            raw::Event::Frame(f) if f.kind == raw::HEADERS && f.is_status_200() => answered.push(f.stream),
            raw::Event::Frame(f) if f.kind == raw::RST_STREAM => {
                assert_eq!(f.error_code(), raw::REFUSED_STREAM, "{f:?}");
                refused.push(f.stream);
            }
            raw::Event::Frame(f) => assert_ne!(f.kind, raw::GOAWAY, "{f:?}"),
            other => panic!("streams not answered: {other:?} (answered {answered:?}, refused {refused:?})"),
        }
    }
    assert_eq!(refused, [5], "the stream past the limit is refused");
    answered.sort();
    assert_eq!(answered, [1, 3], "the streams within the limit are answered");

    // Now a flood: two sleepers hold the places, 1100 more streams are refused one by one
    // until the bound on refusals closes the connection.
    let mut flood = raw::get(7, "/__test/sleep?ms=3000");
    flood.extend(raw::get(9, "/__test/sleep?ms=3000"));
    for i in 0..1100 {
        flood.extend(raw::get(11 + 2 * i, "/plaintext"));
    }
    conn.send(&flood);
    let (goaway, before) = conn.until_goaway(Duration::from_secs(5));
    assert_eq!(goaway.error_code(), raw::ENHANCE_YOUR_CALM);
    assert_eq!(&goaway.payload[8..], b"too_many_internal_resets");
    let refusals = raw::resets(&before, raw::REFUSED_STREAM);
    // Stream 5 was the first of the connection's 1024.
    assert_eq!(refusals, 1023, "refusals before the GOAWAY");
    assert_eq!(server.get("/plaintext").text(), "Hello, World!");
}

/// A client with a request running that leaves the server's pings unanswered for the header
/// timeout is taken for gone: its connection is closed long before the answer would be ready.
#[test]
fn unanswered_pings_close_the_connection() {
    let server = Server::start(&["--http2", "--header-read-timeout-ms", "500"]);
    let mut conn = raw::Conn::open(server.addr);
    conn.send(&raw::get(1, "/__test/sleep?ms=5000"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(4);
    let mut pinged = false;
    let closed = loop {
        match conn.next(deadline) {
            raw::Event::Frame(f) => pinged |= f.kind == raw::PING && f.flags & raw::ACK == 0,
            raw::Event::Closed => break true,
            raw::Event::TimedOut => break false,
        }
    };
    let took = started.elapsed();
    assert!(pinged, "the server sent no PING");
    assert!(closed, "a client not answering pings kept its connection for {took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

/// With HTTP/2 enabled, a connection that sends nothing, or only part of the HTTP/2 preface,
/// is closed at the header read timeout, as it is when only HTTP/1.1 is served.
#[test]
fn silent_connections_are_cut_off_with_http2_enabled() {
    let server = Server::start(&["--http2", "--header-read-timeout-ms", "500"]);
    let cases: [&[u8]; 3] = [b"", b"PRI * HTTP/2.0\r\n", b"GET /plaintext HTTP/1.1\r\nHost: t\r\n"];
    for sent in cases {
        let mut conn = raw::Conn::silent(server.addr);
        conn.send(sent);
        let started = Instant::now();
        let closed = conn.closed_within(Duration::from_secs(4));
        let took = started.elapsed();
        let what = String::from_utf8_lossy(sent);
        assert!(closed, "a connection that sent {what:?} was still open after {took:?}");
        assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(2000), "{what:?}: {took:?}");
    }
    // A client that sends promptly is served, in either protocol.
    let mut conn = raw::Conn::open(server.addr);
    conn.send(&raw::get(1, "/plaintext"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match conn.next(deadline) {
            raw::Event::Frame(f) if f.kind == raw::HEADERS => {
                assert!(f.is_status_200(), "{f:?}");
                break;
            }
            raw::Event::Frame(_) => {}
            other => panic!("not answered: {other:?}"),
        }
    }
    assert_eq!(server.get("/plaintext").text(), "Hello, World!");
}
