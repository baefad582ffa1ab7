//! hyper-bare, the floor of the load-test suite (issue #12): the TechEmpower routes answered as
//! bareapi answers them, written the plainest way on hyper 1.x with nothing else. No router (a
//! `match` on the path), no metrics, request ids, timeouts, limits or panic catching: what
//! bareapi spends above this is what its production layer costs.
//!
//!   hyper-bare [--listen 127.0.0.1:8080] [--workers N]
//!
//! One current-thread tokio runtime per worker (default: one per core), each with its own
//! SO_REUSEPORT listener and exactly three tokio-postgres connections (NoTls, `DATABASE_URL`,
//! statements prepared once per connection) that its requests take round-robin, so concurrent
//! queries pipeline on one connection. The `world` cache of /cached-queries (quick_cache) is
//! filled from every row at start-up. The tables must exist (`bareapi migrate`); nothing is
//! migrated here. Once every worker is connected, `listening addr=IP:PORT` goes to stdout.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use bytes::Bytes;
use futures_util::future::try_join_all;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use quick_cache::OptionsBuilder;
use quick_cache::sync::Cache;
use serde::Serialize;
use socket2::{Domain, Socket, Type};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SELECT_WORLD: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
const SELECT_ALL_WORLDS: &str = "SELECT id, randomnumber FROM world";
const SELECT_FORTUNES: &str = "SELECT id, message FROM fortune";
/// One statement for a whole batch; rows joined in id order, so concurrent batches lock rows in
/// the same order (deadlocks stay rare, and are retried).
const UPDATE_WORLDS: &str = "UPDATE world SET randomnumber = v.rn \
     FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v \
     WHERE world.id = v.id";
const CONNECTIONS_PER_WORKER: usize = 3;
const WORLD_ROWS: i32 = 10_000;
const UPDATE_ATTEMPTS: usize = 3;
const FORTUNES_HEAD: &str =
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>";
const FORTUNES_TAIL: &str = "</table></body></html>";

type Body = Full<Bytes>;
type DbResult<T> = Result<T, tokio_postgres::Error>;

#[derive(Clone, Copy, Serialize)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    world: Statement,
    fortunes: Statement,
    update: Statement,
}

/// What the requests of one worker share.
struct Worker {
    conns: Vec<Conn>,
    next: AtomicUsize,
    cache: Arc<Cache<i32, World>>,
}

impl Worker {
    fn conn(&self) -> &Conn {
        &self.conns[self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()]
    }
}

async fn connect(url: &str) -> DbResult<Conn> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("hyper-bare: database connection: {e}");
        }
    });
    let (world, fortunes, update) = futures_util::try_join!(
        client.prepare(SELECT_WORLD),
        client.prepare(SELECT_FORTUNES),
        client.prepare(UPDATE_WORLDS)
    )?;
    Ok(Conn { client, world, fortunes, update })
}

async fn handle(req: Request<Incoming>, w: Arc<Worker>) -> Result<Response<Body>, Infallible> {
    let query = req.uri().query();
    let res = match req.uri().path() {
        "/plaintext" => Ok(respond("text/plain", Bytes::from_static(b"Hello, World!"))),
        "/json" => Ok(json(&Message { message: "Hello, World!" })),
        "/db" => query_world(w.conn(), random_id()).await.map(|world| json(&world)),
        "/queries" => queries(&w, count(param(query, "queries"))).await,
        "/fortunes" => fortunes(&w).await,
        "/updates" => updates(&w, count(param(query, "queries"))).await,
        "/cached-queries" => cached_queries(&w, count(param(query, "count"))).await,
        _ => Ok(empty(StatusCode::NOT_FOUND)),
    };
    Ok(res.unwrap_or_else(|e| {
        eprintln!("hyper-bare: {e}");
        empty(StatusCode::INTERNAL_SERVER_ERROR)
    }))
}

fn respond(content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(SERVER, HeaderValue::from_static("hyper-bare"));
    res
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Full::default());
    *res.status_mut() = status;
    res.headers_mut().insert(SERVER, HeaderValue::from_static("hyper-bare"));
    res
}

fn json<T: Serialize>(value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("plain structs always serialize");
    respond("application/json", Bytes::from(body))
}

/// The raw value of the first `name=value` pair of the query string (a bare `name` is "").
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) if key == name => Some(value),
        None if pair == name => Some(""),
        _ => None,
    })
}

/// The TechEmpower rule: an integer clamped to 1..=500; missing, empty or not an integer is 1.
fn count(raw: Option<&str>) -> usize {
    let Some(raw) = raw else { return 1 };
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 1; // also every negative number
    }
    digits.parse::<usize>().map_or(500, |n| n.clamp(1, 500)) // only overflow fails
}

fn random_id() -> i32 {
    fastrand::i32(1..=WORLD_ROWS)
}

async fn query_world(c: &Conn, id: i32) -> DbResult<World> {
    let row = c.client.query_one(&c.world, &[&id]).await?;
    Ok(World { id: row.try_get(0)?, random_number: row.try_get(1)? })
}

/// One statement per row, all sent at once on one connection (pipelined).
async fn queries(w: &Worker, n: usize) -> DbResult<Response<Body>> {
    let c = w.conn();
    let worlds = try_join_all((0..n).map(|_| query_world(c, random_id()))).await?;
    Ok(json(&worlds))
}

async fn fortunes(w: &Worker) -> DbResult<Response<Body>> {
    let c = w.conn();
    let rows = c.client.query(&c.fortunes, &[]).await?;
    let mut list: Vec<(i32, &str)> = Vec::with_capacity(rows.len() + 1);
    for row in &rows {
        list.push((row.try_get(0)?, row.try_get(1)?));
    }
    list.push((0, "Additional fortune added at request time."));
    list.sort_unstable_by(|a, b| a.1.cmp(b.1));
    let mut html = String::with_capacity(1280);
    html.push_str(FORTUNES_HEAD);
    for (id, message) in list {
        let _ = write!(html, "<tr><td>{id}</td><td>");
        for ch in message.chars() {
            match ch {
                '&' => html.push_str("&amp;"),
                '<' => html.push_str("&lt;"),
                '>' => html.push_str("&gt;"),
                '"' => html.push_str("&quot;"),
                '\'' => html.push_str("&#x27;"),
                _ => html.push(ch),
            }
        }
        html.push_str("</td></tr>");
    }
    html.push_str(FORTUNES_TAIL);
    Ok(respond("text/html; charset=utf-8", Bytes::from(html)))
}

/// `n` distinct rows read one statement each, each given a new number different from its old
/// one, written back in one statement.
async fn updates(w: &Worker, n: usize) -> DbResult<Response<Body>> {
    let c = w.conn();
    let mut seen = [0u64; (WORLD_ROWS as usize).div_ceil(64)];
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = random_id();
        let (word, bit) = ((id - 1) as usize / 64, (id - 1) % 64);
        if seen[word] & (1 << bit) == 0 {
            seen[word] |= 1 << bit;
            ids.push(id);
        }
    }
    let mut worlds = try_join_all(ids.iter().map(|&id| query_world(c, id))).await?;
    for world in &mut worlds {
        let old = world.random_number;
        while world.random_number == old {
            world.random_number = random_id();
        }
    }
    let numbers: Vec<i32> = worlds.iter().map(|w| w.random_number).collect();
    let mut attempt = 1;
    loop {
        match c.client.execute(&c.update, &[&ids, &numbers]).await {
            Ok(_) => return Ok(json(&worlds)),
            Err(e) if attempt < UPDATE_ATTEMPTS && is_retryable(&e) => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A deadlock between two concurrent batches, or a serialization failure.
fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

async fn cached_queries(w: &Worker, n: usize) -> DbResult<Response<Body>> {
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        let id = random_id();
        let world = match w.cache.get(&id) {
            Some(world) => world,
            None => {
                let world = query_world(w.conn(), id).await?;
                w.cache.insert(id, world);
                world
            }
        };
        worlds.push(world);
    }
    Ok(json(&worlds))
}

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// One worker thread: connects, reports on `ready`, then serves its listener forever.
fn worker(
    listener: std::net::TcpListener,
    url: &str,
    cache: Arc<Cache<i32, World>>,
    fill_cache: bool,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let conns = match try_join_all((0..CONNECTIONS_PER_WORKER).map(|_| connect(url))).await {
            Ok(conns) => conns,
            Err(e) => return drop(ready.send(Err(format!("connecting to the database: {e}")))),
        };
        if fill_cache {
            match conns[0].client.query(SELECT_ALL_WORLDS, &[]).await {
                Ok(rows) => {
                    for row in rows {
                        cache.insert(row.get(0), World { id: row.get(0), random_number: row.get(1) });
                    }
                }
                Err(e) => return drop(ready.send(Err(format!("filling the world cache: {e}")))),
            }
        }
        let worker = Arc::new(Worker { conns, next: AtomicUsize::new(0), cache });
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let _ = ready.send(Ok(()));
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let worker = Arc::clone(&worker);
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, Arc::clone(&worker)));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn fail(msg: &str) -> ! {
    eprintln!("hyper-bare: {msg}");
    std::process::exit(1)
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--listen", Some(v)) => listen = v.parse().unwrap_or_else(|_| fail("--listen IP:PORT")),
            ("--workers", Some(v)) => {
                workers = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| fail("--workers N (N >= 1)"))
            }
            _ => fail("usage: hyper-bare [--listen IP:PORT] [--workers N]"),
        }
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| fail("DATABASE_URL must be set"));
    // Port 0: the first listener picks the port, the others bind the same one.
    let first = listener(listen).unwrap_or_else(|e| fail(&format!("binding {listen}: {e}")));
    let addr = first.local_addr().unwrap_or_else(|e| fail(&e.to_string()));
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(listener(addr).unwrap_or_else(|e| fail(&format!("binding {addr}: {e}"))));
    }
    // Room for twice the rows: quick_cache splits its capacity evenly over its shards and the
    // ids hash unevenly, so at exactly WORLD_ROWS about 1% of the rows were evicted at the fill.
    let options = OptionsBuilder::new()
        .estimated_items_capacity(WORLD_ROWS as usize)
        .weight_capacity(2 * WORLD_ROWS as u64)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let cache = Arc::new(Cache::with_options(options, Default::default(), Default::default(), Default::default()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let (url, cache, ready) = (url.clone(), Arc::clone(&cache), ready_tx.clone());
            std::thread::spawn(move || worker(l, &url, cache, i == 0, ready))
        })
        .collect();
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail(&e),
            Err(_) => fail("a worker stopped before it was ready"),
        }
    }
    println!("listening addr={addr}");
    let _ = std::io::stdout().flush();
    for t in threads {
        let _ = t.join();
    }
}
