//! A shared database connection that stops answering without closing (PostgreSQL or the network
//! stalls one socket) is retired and replaced, so traffic recovers within seconds instead of a
//! third of the requests timing out for good; a new connection whose statement preparation
//! stalls fails within `--pool-create-ms` instead of hanging; and the stalled sockets are
//! closed, not leaked.
//!
//! The stall comes from a TCP proxy the test controls, between bareapi and PostgreSQL: told to,
//! it stops forwarding on the connections it already carries while still accepting and
//! forwarding new ones (or, in other modes, forwards a new connection's start-up, or its
//! start-up and statement preparation, and then stops), and it never closes a stalled
//! connection itself.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Server, eventually};

/// How often the proxy's threads look at their flags while blocked.
const POLL: Duration = Duration::from_millis(20);

/// One proxied connection.
struct Link {
    id: u64,
    /// Stalled on its own: set in [`Proxy::stall_new_after_startup`] mode once the server's
    /// first ReadyForQuery went through.
    stalled_after_startup: AtomicBool,
    /// Stalled on its own: set in [`Proxy::stall_new_at_first_query`] mode when bareapi sends
    /// its first query (Bind or Query) on it, which is not forwarded.
    stalled_at_query: AtomicBool,
    /// bareapi closed its end.
    closed_by_client: AtomicBool,
}

struct ProxyState {
    upstream: SocketAddr,
    next_id: AtomicU64,
    /// Connections with a smaller id are stalled.
    stall_below: AtomicU64,
    /// New connections forward their start-up, then stall.
    stall_new_after_startup: AtomicBool,
    /// New connections forward their start-up and statement preparation, then stall.
    stall_new_at_first_query: AtomicBool,
    /// How long new connections wait before PostgreSQL's first answer reaches bareapi.
    delay_new_ms: AtomicU64,
    stopping: AtomicBool,
    links: Mutex<Vec<Arc<Link>>>,
}

impl ProxyState {
    fn is_stalled(&self, link: &Link) -> bool {
        link.id < self.stall_below.load(Ordering::SeqCst)
            || link.stalled_after_startup.load(Ordering::SeqCst)
            || link.stalled_at_query.load(Ordering::SeqCst)
    }
}

/// A thread-per-direction TCP proxy to PostgreSQL. While a connection is stalled, nothing
/// PostgreSQL sends reaches bareapi, and what bareapi sends is read and thrown away (so the
/// proxy notices when bareapi closes its end) but never reaches PostgreSQL.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream,
            next_id: AtomicU64::new(0),
            stall_below: AtomicU64::new(0),
            stall_new_after_startup: AtomicBool::new(false),
            stall_new_at_first_query: AtomicBool::new(false),
            delay_new_ms: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
        });
        let st = Arc::clone(&state);
        let acceptor = std::thread::spawn(move || {
            while !st.stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(st.upstream) else { continue };
                        let link = Arc::new(Link {
                            id: st.next_id.fetch_add(1, Ordering::SeqCst),
                            stalled_after_startup: AtomicBool::new(false),
                            stalled_at_query: AtomicBool::new(false),
                            closed_by_client: AtomicBool::new(false),
                        });
                        st.links.lock().unwrap().push(Arc::clone(&link));
                        let mode = NewLink {
                            after_startup: st.stall_new_after_startup.load(Ordering::SeqCst),
                            at_first_query: st.stall_new_at_first_query.load(Ordering::SeqCst),
                            delay: Duration::from_millis(st.delay_new_ms.load(Ordering::SeqCst)),
                        };
                        spawn_pumps(&st, link, client, server, mode);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(e) => panic!("proxy accept: {e}"),
                }
            }
        });
        Proxy { addr, state, acceptor: Some(acceptor) }
    }

    /// Stops forwarding on every connection open now; new ones pass.
    fn stall_existing(&self) {
        let next = self.state.next_id.load(Ordering::SeqCst);
        self.state.stall_below.store(next, Ordering::SeqCst);
    }

    /// From now on, new connections get through start-up and authentication and then stall:
    /// the first statements they send are never answered.
    fn stall_new_after_startup(&self) {
        self.state.stall_new_after_startup.store(true, Ordering::SeqCst);
    }

    /// From now on, new connections get through start-up and the preparation of bareapi's
    /// statements and then stall: their first query is never forwarded.
    fn stall_new_at_first_query(&self) {
        self.state.stall_new_at_first_query.store(true, Ordering::SeqCst);
    }

    /// From now on, new connections take `delay` longer to open.
    fn delay_new(&self, delay: Duration) {
        self.state.delay_new_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Connections stalled at their first query so far.
    fn stalled_at_query(&self) -> usize {
        self.state.links.lock().unwrap().iter().filter(|l| l.stalled_at_query.load(Ordering::SeqCst)).count()
    }

    /// Stalled connections bareapi has not closed yet.
    fn stalled_open(&self) -> usize {
        let links = self.state.links.lock().unwrap();
        links.iter().filter(|l| self.state.is_stalled(l) && !l.closed_by_client.load(Ordering::SeqCst)).count()
    }

    /// Connections stalled so far.
    fn stalled(&self) -> usize {
        self.state.links.lock().unwrap().iter().filter(|l| self.state.is_stalled(l)).count()
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// The proxy's modes for a new connection, as they were when it was accepted.
#[derive(Clone, Copy)]
struct NewLink {
    after_startup: bool,
    at_first_query: bool,
    delay: Duration,
}

fn spawn_pumps(state: &Arc<ProxyState>, link: Arc<Link>, client: TcpStream, server: TcpStream, mode: NewLink) {
    for s in [&client, &server] {
        s.set_read_timeout(Some(POLL)).unwrap();
        s.set_nodelay(true).unwrap();
    }
    let (st, l) = (Arc::clone(state), Arc::clone(&link));
    let (from, to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || pump_up(&st, &l, from, to, mode.at_first_query));
    let st = Arc::clone(state);
    std::thread::spawn(move || {
        std::thread::sleep(mode.delay);
        pump_down(&st, &link, server, client, mode.after_startup)
    });
}

/// bareapi → PostgreSQL. Reads even while stalled (and drops what it reads), so that bareapi
/// closing its end is seen; then closes both ends. With `at_first_query`, forwards whole
/// messages until the first Bind or Query, then stalls the link.
fn pump_up(state: &ProxyState, link: &Link, mut from: TcpStream, mut to: TcpStream, at_first_query: bool) {
    let mut buf = [0u8; 16 * 1024];
    let mut pending = Vec::new();
    // The start-up message has no type byte, only a length that counts itself.
    let mut startup = true;
    'pump: while !state.stopping.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if !at_first_query {
            if !state.is_stalled(link) && to.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut sent = 0;
        while !state.is_stalled(link) {
            let (type_len, rest) = (usize::from(!startup), &pending[sent..]);
            if rest.len() < type_len + 4 {
                break;
            }
            let len = type_len + u32::from_be_bytes(rest[type_len..type_len + 4].try_into().unwrap()) as usize;
            if rest.len() < len {
                break;
            }
            if !startup && matches!(rest[0], b'B' | b'Q') {
                link.stalled_at_query.store(true, Ordering::SeqCst);
                break;
            }
            if to.write_all(&rest[..len]).is_err() {
                break 'pump;
            }
            startup = false;
            sent += len;
        }
        if state.is_stalled(link) {
            sent = pending.len();
        }
        pending.drain(..sent);
    }
    link.closed_by_client.store(true, Ordering::SeqCst);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// PostgreSQL → bareapi. While stalled, reads nothing and sends nothing. With `after_startup`,
/// forwards whole messages up to and including the first ReadyForQuery, then stalls the link.
fn pump_down(state: &ProxyState, link: &Link, mut from: TcpStream, mut to: TcpStream, after_startup: bool) {
    let mut buf = [0u8; 16 * 1024];
    let mut pending = Vec::new();
    while !state.stopping.load(Ordering::SeqCst) && !link.closed_by_client.load(Ordering::SeqCst) {
        if state.is_stalled(link) {
            std::thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if !after_startup {
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        }
        // Whole messages (type byte, then a length that counts itself), until ReadyForQuery.
        pending.extend_from_slice(&buf[..n]);
        let mut sent = 0;
        while !link.stalled_after_startup.load(Ordering::SeqCst) && pending.len() - sent >= 5 {
            let len = u32::from_be_bytes(pending[sent + 1..sent + 5].try_into().unwrap()) as usize;
            if pending.len() - sent < 1 + len {
                break;
            }
            if to.write_all(&pending[sent..sent + 1 + len]).is_err() {
                return;
            }
            if pending[sent] == b'Z' {
                link.stalled_after_startup.store(true, Ordering::SeqCst);
            }
            sent += 1 + len;
        }
        pending.drain(..sent);
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A one-worker server with one shared connection, through `proxy`, probing every 300 ms,
/// with the request timeout and `--pool-create-ms` given (and `extra` flags), once `/db` answers.
fn one_shared_connection(proxy: &Proxy, request_timeout_ms: u32, pool_create_ms: u32, extra: &[&str]) -> Server {
    let (timeout, create) = (request_timeout_ms.to_string(), pool_create_ms.to_string());
    let mut args = vec!["--db-mode", "shared", "--workers", "1", "--shared-conns", "1"];
    args.extend(["--request-timeout-ms", &timeout, "--pool-create-ms", &create, "--pool-recycle-ms", "300"]);
    args.extend_from_slice(extra);
    let server = Server::start_with_db(&args, &proxy.url_for(&common::database_url()));
    assert!(eventually(Duration::from_secs(10), || server.get("/db").status == 200), "/db never answered 200");
    server
}

fn upstream() -> SocketAddr {
    let url = common::database_url();
    let rest = url.split_once("://").expect("a postgres:// URL").1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.to_socket_addrs().expect("DATABASE_URL's host:port resolves").next().unwrap()
}

/// One answered (or failed) request of the load: when it ended and whether it was a 200.
#[derive(Clone, Copy)]
struct Outcome {
    ended: Instant,
    ok: bool,
}

/// Client threads sending `GET /db` one after another on kept-alive connections, each outcome
/// recorded with its time.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Outcome>>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            let s = TcpStream::connect(addr).expect("connect to bareapi");
                            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                            s.set_nodelay(true).unwrap();
                            conn = Some((BufReader::new(s.try_clone().unwrap()), s));
                        }
                        let (reader, writer) = conn.as_mut().unwrap();
                        let answer = writer
                            .write_all(b"GET /db HTTP/1.1\r\nHost: load\r\n\r\n")
                            .ok()
                            .and_then(|()| read_status(reader));
                        outcomes.push(Outcome { ended: Instant::now(), ok: answer == Some(200) });
                        if answer.is_none() {
                            conn = None;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Outcome> = self.threads.into_iter().flat_map(|t| t.join().expect("load thread")).collect();
        all.sort_by_key(|o| o.ended);
        all
    }
}

/// Reads one answer; its status, or `None` when the connection failed.
fn read_status(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

/// (answered, of which 200) among the outcomes that ended in `[from, from + width)`.
fn window(outcomes: &[Outcome], from: Instant, width: Duration) -> (usize, usize) {
    let inside = outcomes.iter().filter(|o| o.ended >= from && o.ended < from + width);
    inside.fold((0, 0), |(n, ok), o| (n + 1, ok + usize::from(o.ok)))
}

fn ok_share((n, ok): (usize, usize)) -> f64 {
    if n == 0 { 0.0 } else { ok as f64 / n as f64 }
}

fn retired_total(server: &Server) -> u64 {
    let text = server.get("/metrics").text().to_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("bareapi_db_connections_retired_total "))
        .unwrap_or_else(|| panic!("no retired counter in /metrics:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Every shared connection stalls at once under steady `/db` load: the stalled ones are retired
/// (the pool's default probe and create timeouts), /db answers 200 again for nearly every
/// request within a few seconds and stays so, and the stalled sockets are closed once the
/// requests stuck on them time out.
#[test]
fn stalled_shared_connections_are_retired_and_traffic_recovers() {
    let proxy = Proxy::start(upstream());
    let mut server = Server::start_with_db(
        &["--db-mode", "shared", "--shared-conns", "3", "--workers", "2", "--request-timeout-ms", "1000"],
        &proxy.url_for(&common::database_url()),
    );
    assert!(eventually(Duration::from_secs(10), || server.get("/db").status == 200), "/db never answered 200");

    let load = Load::start(server.addr, 12);
    std::thread::sleep(Duration::from_secs(1));
    let stalled_at = Instant::now();
    proxy.stall_existing();
    let stalled = proxy.stalled();
    std::thread::sleep(Duration::from_secs(8));
    let outcomes = load.stop();

    let before = window(&outcomes, stalled_at - Duration::from_millis(800), Duration::from_millis(800));
    assert!(before.0 >= 50 && ok_share(before) >= 0.99, "before the stall: {before:?} (answered, 200)");
    assert!(stalled >= 6, "the stall caught the 3 shared connections of each worker: {stalled}");
    // The stall bit: requests on the stalled connections timed out (at the request timeout, 1 s).
    let first = window(&outcomes, stalled_at, Duration::from_secs(2));
    assert!(ok_share(first) < 0.9, "the stall did not show in the first 2 s: {first:?}");

    // The first whole second (in steps of 100 ms) with at least 95% answered 200.
    let step = Duration::from_millis(100);
    let recovered = (0..70)
        .map(|i| stalled_at + step * i)
        .find(|&from| {
            let w = window(&outcomes, from, Duration::from_secs(1));
            w.0 >= 100 && ok_share(w) >= 0.95
        })
        .map(|from| from - stalled_at);
    let seconds: Vec<String> = (0..8)
        .map(|s| format!("{:?}", window(&outcomes, stalled_at + Duration::from_secs(s), Duration::from_secs(1))))
        .collect();
    eprintln!("(answered, 200) per second after the stall: {seconds:?}; recovered after {recovered:?}");
    let recovered = recovered
        .unwrap_or_else(|| panic!("/db never recovered; (answered, 200) per second after the stall: {seconds:?}"));
    assert!(recovered <= Duration::from_secs(4), "recovered only {recovered:?} after the stall: {seconds:?}");
    // And stays recovered.
    let last = window(&outcomes, stalled_at + Duration::from_secs(6), Duration::from_secs(2));
    assert!(last.0 >= 200 && ok_share(last) >= 0.95, "the last 2 s: {last:?}; per second: {seconds:?}");

    let retired = retired_total(&server);
    assert!(retired >= 6, "retired {retired} shared connections; 6 were stalled");
    let logs = server.drain_logs().join("\n");
    let line = logs
        .lines()
        .find(|l| l.contains("retired a shared database connection"))
        .unwrap_or_else(|| panic!("no retirement logged: {logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("health probe") && line.contains("no answer within 1s"), "the cause: {line}");

    // Retired connections are closed once the requests on them are over, not leaked.
    assert!(
        eventually(Duration::from_secs(5), || proxy.stalled_open() == 0),
        "{} of {} stalled connections still open",
        proxy.stalled_open(),
        proxy.stalled()
    );
    server.terminate();
    server.wait_exit(Duration::from_secs(15));
}

/// A new connection that gets through start-up but never answers its statement preparation:
/// the request waiting for it answers 503 within `--pool-create-ms`, long before the request
/// timeout, and the connection is closed rather than handed out again.
#[test]
fn stalled_statement_preparation_fails_within_its_timeout() {
    let proxy = Proxy::start(upstream());
    let server = one_shared_connection(&proxy, 6000, 500, &[]);
    proxy.stall_new_after_startup();
    proxy.stall_existing();

    // A request stuck on the stalled shared connection keeps it busy, so it gets probed and
    // retired; it answers 503 itself at the request timeout.
    let addr = server.addr;
    let stuck = std::thread::spawn(move || {
        let started = Instant::now();
        let res = common::Conn::new(addr).request("GET", "/db");
        (res.status, started.elapsed())
    });
    assert!(
        eventually(Duration::from_secs(5), || retired_total(&server) >= 1),
        "the stalled shared connection was not retired"
    );

    // Now each request takes a connection from the pool, whose preparation stalls: one opened at
    // start-up beside the shared one (stalled with it), or a new one.
    let mut conn = server.connect();
    for _ in 0..3 {
        let started = Instant::now();
        let res = conn.request("GET", "/db");
        let took = started.elapsed();
        assert_eq!(res.status, 503, "{}", res.text());
        assert_eq!(res.header("retry-after"), Some("1"));
        assert!(took < Duration::from_secs(2), "a stalled preparation took {took:?} (request timeout 6 s)");
    }
    let logs = server.drain_logs().join("\n");
    assert!(
        logs.contains("stalled: preparing statements on a new connection got no answer within 500ms"),
        "the 503's cause: {logs}"
    );

    let (status, took) = stuck.join().unwrap();
    assert_eq!(status, 503);
    assert!(took >= Duration::from_secs(5), "the request on the stalled connection answered after {took:?}");
    // The connections that stalled in preparation were closed at once, and the retired shared
    // one once its request was over.
    assert!(
        eventually(Duration::from_secs(3), || proxy.stalled_open() == 0),
        "{} of {} stalled connections still open",
        proxy.stalled_open(),
        proxy.stalled()
    );
    assert!(proxy.stalled() >= 4, "the shared connection and 3 new ones stalled: {}", proxy.stalled());
}

/// The session sweeper's statements end at the request timeout, as requests' do: a sweep caught
/// on a stalled shared connection makes it busy, so it is retired, and lets go of it at the
/// request timeout, so it is closed instead of held open for good (and the sweeper carries on).
#[test]
fn a_sweep_stuck_on_a_stalled_connection_lets_go_of_it_at_the_request_timeout() {
    let proxy = Proxy::start(upstream());
    let server = one_shared_connection(&proxy, 1500, 1000, &["--session-sweep-interval-secs", "1"]);
    proxy.stall_existing();

    // No request of ours: the sweeper's next sweep, within a second, is what keeps the stalled
    // shared connection busy.
    assert!(
        eventually(Duration::from_secs(5), || retired_total(&server) >= 1),
        "the shared connection the sweeper is stuck on was not retired"
    );
    // Connections opened at start-up beside the shared one wait in the pool, stalled too: each
    // request takes one (its preparation stalls: 503) until a new connection answers.
    assert!(eventually(Duration::from_secs(10), || server.get("/db").status == 200), "/db never recovered");
    assert!(
        eventually(Duration::from_secs(5), || proxy.stalled_open() == 0),
        "{} of {} stalled connections still open",
        proxy.stalled_open(),
        proxy.stalled()
    );
    let logs = server.drain_logs().join("\n");
    assert!(
        logs.contains("could not delete expired and revoked sessions")
            && logs.contains("stalled: deleting dead sessions got no answer within 1.5s"),
        "the sweep's timeout: {logs}"
    );
}

/// Requests that find their shared slot empty at the same moment (here, just after its
/// connection was retired, with new connections slow to open) each open a connection, but they
/// all then use the one that filled the slot first, which the watcher probes: the others go back
/// to the pool unused. Were each to use its own, all but one would be in no slot, so a stall on
/// them would never be retired, and they would go back to the pool still wedged and open.
#[test]
fn requests_refilling_a_slot_at_once_share_the_connection_the_watcher_probes() {
    let proxy = Proxy::start(upstream());
    let server = one_shared_connection(&proxy, 3000, 2000, &[]);
    // From now on new connections open half a second late and stall at their first query.
    proxy.delay_new(Duration::from_millis(500));
    proxy.stall_new_at_first_query();
    proxy.stall_existing();

    // Retire the shared connection: a request stuck on it keeps it busy.
    let addr = server.addr;
    let stuck = std::thread::spawn(move || common::Conn::new(addr).request("GET", "/db").status);
    assert!(
        eventually(Duration::from_secs(5), || retired_total(&server) >= 1),
        "the stalled shared connection was not retired"
    );

    // Six requests find the slot empty at once. The first ones may take connections opened at
    // start-up beside the shared one, idle in the pool and stalled (their preparation stalls);
    // the others each open a new one, all ready at about the same time.
    let refills: Vec<_> =
        (0..6).map(|_| std::thread::spawn(move || common::Conn::new(addr).request("GET", "/db").status)).collect();
    let statuses: Vec<u16> = refills.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 503), "every refill stalls: {statuses:?}");
    assert!(
        proxy.stalled_at_query() == 1,
        "the requests queried {} of the new connections; only the one in the slot is probed",
        proxy.stalled_at_query()
    );
    assert_eq!(retired_total(&server), 2, "the shared connection and its replacement were retired");

    assert_eq!(stuck.join().unwrap(), 503);
    assert!(
        eventually(Duration::from_secs(3), || proxy.stalled_open() == 0),
        "{} of {} stalled connections still open",
        proxy.stalled_open(),
        proxy.stalled()
    );
}
