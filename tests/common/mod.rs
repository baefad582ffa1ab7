//! Test support: start the real `bareapi` binary on a free port against the test database, and
//! talk raw HTTP/1.1 to it over TCP (so tests control pipelining, HEAD and exact bytes).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Polls `done` every 50 ms for up to `limit`; whether it came true.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// The database the tests run against (set by `scripts/test.sh`).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must be set: run the tests through scripts/test.sh, which starts a throwaway PostgreSQL")
}

/// Runs `bareapi serve` with `args` against `database_url` until it exits (it is expected to
/// refuse to start); its exit status and everything it printed. Killed after 30 s.
pub fn run_to_exit(args: &[&str], database_url: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bareapi"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bareapi");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("bareapi {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

/// Abuse limits out of the way of the tests that do not test them.
pub const UNTHROTTLED: &[(&str, &str)] = &[
    ("BAREAPI_LOGIN_FAILURES_MAX", "1000000"),
    ("BAREAPI_LOGIN_RATE_PER_MINUTE", "1000000"),
    ("BAREAPI_LOGIN_BURST", "1000000"),
    ("BAREAPI_SIGNUP_RATE_PER_MINUTE", "1000000"),
    ("BAREAPI_SIGNUP_BURST", "1000000"),
    ("BAREAPI_HASH_QUEUE", "100000"),
    ("BAREAPI_REFUSAL_DELAY_MS", "0"),
];

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Log lines the server printed after it started listening.
    pub logs: mpsc::Receiver<String>,
    /// Log lines the server printed before (the configuration, migrations, warnings).
    #[allow(dead_code)] // read by some test binaries only
    pub start_up: Vec<String>,
}

impl Server {
    /// Starts `bareapi serve` on 127.0.0.1 port 0 with two workers plus `extra` flags, against
    /// the test database.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with_db(extra, &database_url())
    }

    /// Like [`Server::start`], on `addr` (for a restart on the same port).
    pub fn start_at(addr: SocketAddr, extra: &[&str]) -> Server {
        let listen = addr.to_string();
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        Server::start_with_db(&args, &database_url())
    }

    pub fn start_with_db(extra: &[&str], database_url: &str) -> Server {
        Server::spawn(extra, database_url, &[])
    }

    /// Like [`Server::start`], with extra environment variables (text or JSON logs both work).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(extra, &database_url(), env)
    }

    fn spawn(extra: &[&str], database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bareapi"))
            .arg("serve")
            .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] })
            .args(if extra.contains(&"--workers") { &[][..] } else { &["--workers", "2"][..] })
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("BAREAPI_LOG", "info")
            // Most tests log in and sign up many times from 127.0.0.1, many with wrong
            // passwords on purpose: limits that never bite them. The abuse-limit tests pass
            // flags (which win over these) or override these in `env`.
            .envs(UNTHROTTLED.iter().copied())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bareapi");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut start_up = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("bareapi did not report listening within 60 s (exit: {:?})", child.try_wait());
                }
            };
            if let Some(rest) = line.split("listening addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return Server { child, addr, logs: rx, start_up };
            }
            if line.contains("\"message\":\"listening\"") {
                let rest = line.split("\"addr\":\"").nth(1).expect("JSON listening line has addr");
                let addr = rest.split('"').next().unwrap().parse().unwrap();
                return Server { child, addr, logs: rx, start_up };
            }
            start_up.push(line);
        }
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for a log line containing `needle`; the line, or None.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.logs.recv_timeout(left).ok()?;
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// Sends SIGTERM to the server.
    pub fn terminate(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Waits up to `limit` for the process to exit; its exit status, or None if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines printed so far (after the listening line), without waiting.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }

    pub fn connect(&self) -> Conn {
        Conn::new(self.addr)
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.connect().request("GET", path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} appears twice");
        first
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.text()))
    }

    /// Asserts the headers every response must carry.
    pub fn assert_standard_headers(&self) {
        assert_eq!(self.header("server"), Some("bareapi"));
        let date = self.header("date").expect("Date header");
        httpdate::parse_http_date(date).expect("Date is an HTTP date");
        // That the body is exactly Content-Length bytes is checked as it is read (see
        // `Conn::read_response`); here, that the header is there and a number.
        let len = self.header("content-length").expect("Content-Length");
        assert!(len.parse::<usize>().is_ok(), "Content-Length {len:?}");
        assert!(self.header("content-type").is_some(), "Content-Type");
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let writer = stream.try_clone().unwrap();
        Conn { reader: BufReader::new(stream), writer }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    pub fn request(&mut self, method: &str, path: &str) -> Response {
        self.send(method, path, &[], None)
    }

    /// A request with extra headers and an optional body (sent with Content-Length).
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(body) = body {
            bytes.extend_from_slice(body);
        }
        self.send_raw(&bytes);
        self.read_response(method == "HEAD")
    }

    /// Reads one response; `head` says the request was HEAD (headers only).
    ///
    /// The body is read by its Content-Length, and that length is checked: a body shorter than
    /// it fails the read (at the read timeout), and one longer than it (or any body after a
    /// HEAD) leaves bytes that do not start the next response, which fails at once when they
    /// arrived with the rest.
    pub fn read_response(&mut self, head: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').expect("header has a colon");
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let len = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        let mut body = vec![0; if head { 0 } else { len }];
        if let Err(e) = self.reader.read_exact(&mut body) {
            panic!("{line:?}: the body is shorter than its Content-Length {len} ({e})");
        }
        // Whatever else has arrived must be the start of the next (pipelined) response.
        const NEXT: &[u8] = b"HTTP/1.1 ";
        let extra = self.reader.buffer();
        let n = extra.len().min(NEXT.len());
        assert!(
            extra[..n] == NEXT[..n],
            "{line:?}: bytes past the {} body: {:?}",
            if head { "(absent) HEAD".to_owned() } else { format!("{len}-byte") },
            String::from_utf8_lossy(&extra[..extra.len().min(64)])
        );
        Response { status, headers, body }
    }

    /// True when response bytes arrive within `limit` (nothing is consumed).
    pub fn answered_within(&mut self, limit: Duration) -> bool {
        self.set_read_timeout(limit);
        matches!(self.reader.fill_buf(), Ok(b) if !b.is_empty())
    }

    /// Sets how long reads wait before failing.
    pub fn set_read_timeout(&self, limit: Duration) {
        self.writer.set_read_timeout(Some(limit)).unwrap();
    }

    /// True when the server closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

/// The standard fortune rows, exactly as published (tests/data/tfb-fortunes.tsv).
/// The whole `/fortunes` page the rules expect: the standard rows plus the one added at request
/// time, sorted by message, HTML-escaped.
#[allow(dead_code)] // used by some test binaries only
pub fn expected_fortunes_page() -> String {
    let mut rows = standard_fortunes();
    rows.push((0, "Additional fortune added at request time.".to_string()));
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let escape = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;")
    };
    let mut page = String::from(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, msg) in &rows {
        page.push_str(&format!("<tr><td>{id}</td><td>{}</td></tr>", escape(msg)));
    }
    page.push_str("</table></body></html>");
    page
}

pub fn standard_fortunes() -> Vec<(i32, String)> {
    let tsv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tfb-fortunes.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .map(|l| {
            let (id, msg) = l.split_once('\t').unwrap();
            (id.parse().unwrap(), msg.to_string())
        })
        .collect()
}

/// A direct database client for checking what the server stored.
pub fn db_client() -> postgres_sync::Client {
    postgres_sync::Client::connect(&database_url())
}

/// A fresh database of its own on the test cluster, dropped at the end.
pub struct FreshDb {
    admin: postgres_sync::Client,
    pub name: String,
    pub url: String,
}

impl FreshDb {
    pub fn new(tag: &str) -> FreshDb {
        let admin = postgres_sync::Client::connect(&database_url());
        let name = format!("bareapi_test_{tag}_{}", std::process::id());
        admin.query(&format!("DROP DATABASE IF EXISTS {name}"), &[]);
        admin.query(&format!("CREATE DATABASE {name}"), &[]);
        let base = database_url();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        FreshDb { admin, name, url }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        self.admin.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name), &[]);
    }
}

/// A tiny synchronous wrapper over tokio-postgres for assertions.
pub mod daemon;
pub mod load;

pub mod postgres_sync {
    pub struct Client {
        rt: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
    }

    impl Client {
        pub fn connect(url: &str) -> Client {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let client = rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect db");
                tokio::spawn(conn);
                client
            });
            Client { rt, client }
        }

        pub fn query(
            &self,
            sql: &str,
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Vec<tokio_postgres::Row> {
            self.rt.block_on(self.client.query(sql, params)).expect("query")
        }

        /// Runs `sql`, one or more statements separated by semicolons, without parameters.
        pub fn batch_execute(&self, sql: &str) {
            self.rt.block_on(self.client.batch_execute(sql)).expect("batch_execute")
        }
    }
}

/// Users-API helpers shared by the tests that need accounts and tokens.
pub mod users {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{Value, json};

    use super::{Conn, Response};

    pub const JSON: (&str, &str) = ("Content-Type", "application/json");
    pub const PASSWORD: &str = "correct horse battery";

    pub fn unique_email(tag: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        format!("{tag}-{}-{}-{nanos}@Example.com", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
    }

    pub fn post_json(conn: &mut Conn, path: &str, body: &Value) -> Response {
        conn.send("POST", path, &[JSON], Some(body.to_string().as_bytes()))
    }

    pub fn create_user(conn: &mut Conn, email: &str) -> i64 {
        let res = post_json(conn, "/api/users", &json!({"email": email, "password": PASSWORD, "name": "Test User"}));
        assert_eq!(res.status, 201, "{}", res.text());
        res.json()["id"].as_i64().unwrap()
    }

    pub fn login(conn: &mut Conn, email: &str, password: &str) -> Response {
        post_json(conn, "/api/sessions", &json!({"email": email, "password": password}))
    }

    pub fn token_for(conn: &mut Conn, email: &str) -> String {
        let res = login(conn, email, PASSWORD);
        assert_eq!(res.status, 201, "{}", res.text());
        res.json()["token"].as_str().unwrap().to_owned()
    }
}
