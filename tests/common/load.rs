//! Steady keep-alive load for restart tests: client threads that each send `GET` requests one
//! after another over a kept-alive connection, reconnect when an answer says
//! `Connection: close`, and count every request as answered or failed. A request fails when
//! the connection cannot be opened, is reset or closed before a complete answer arrives, or
//! the answer is not `200` with the route's body. Nothing is retried, so a restart that drops
//! one request shows up as a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The mix the restart tests drive: each path with the start its answer body must have.
pub const MIXED_PATHS: &[(&str, &str)] =
    &[("/plaintext", "Hello, World!"), ("/db", "{\"id\":"), ("/json", "{\"message\"")];

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Answers that carried `Connection: close` (the server draining).
    closed_by_server: AtomicU64,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Vec<JoinHandle<Vec<String>>>,
}

#[derive(Debug)]
pub struct Report {
    pub ok: u64,
    pub failed: u64,
    pub closed_by_server: u64,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
}

impl Load {
    /// Starts `clients` threads against `addr`, cycling through `paths` (each with the body
    /// prefix its answer must start with).
    pub fn start(addr: SocketAddr, clients: usize, paths: &'static [(&'static str, &'static str)]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let threads = (0..clients)
            .map(|i| {
                let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
                std::thread::spawn(move || client(addr, i, paths, &stop, &counts))
            })
            .collect();
        Load { stop, counts, threads }
    }

    pub fn answered(&self) -> u64 {
        self.counts.ok.load(Ordering::Relaxed)
    }

    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.threads {
            errors.extend(t.join().expect("load thread"));
        }
        errors.truncate(10);
        Report {
            ok: self.counts.ok.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            closed_by_server: self.counts.closed_by_server.load(Ordering::Relaxed),
            errors,
        }
    }
}

fn client(addr: SocketAddr, index: usize, paths: &[(&str, &str)], stop: &AtomicBool, counts: &Counts) -> Vec<String> {
    let mut errors = Vec::new();
    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
    let mut n = index;
    while !stop.load(Ordering::Relaxed) {
        let (path, expect) = paths[n % paths.len()];
        n += 1;
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s.set_nodelay(true).unwrap();
                    let w = s.try_clone().unwrap();
                    conn = Some((BufReader::new(s), w));
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let (reader, writer) = conn.as_mut().unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: load\r\n\r\n");
        let answer = writer.write_all(req.as_bytes()).map_err(|e| format!("write: {e}")).and_then(|()| read(reader));
        match answer {
            Ok((status, close, body)) => {
                if status == 200 && body.starts_with(expect.as_bytes()) {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("{path}: {status} {}", String::from_utf8_lossy(&body)));
                }
                if close {
                    counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
            Err(e) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                errors.push(format!("{path}: {e}"));
                conn = None;
            }
        }
    }
    errors
}

/// Reads one answer: status, whether it says `Connection: close`, body.
fn read(reader: &mut BufReader<TcpStream>) -> Result<(u16, bool, Vec<u8>), String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => return Err("closed before any answer".into()),
        Ok(_) => {}
        Err(e) => return Err(format!("reading the status line: {e}")),
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(format!("status line {line:?}"))?;
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).map_err(|e| format!("reading headers: {e}"))?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').ok_or(format!("header {h:?}"))?;
        if name.eq_ignore_ascii_case("content-length") {
            len = value.trim().parse().map_err(|_| format!("content-length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, close, body))
}
