//! The ceiling responder of the load-test suite: the machine's limit for a TCP request/response
//! exchange. It parses no HTTP: it counts request ends (`\r\n\r\n`) in what it reads and answers
//! each with a canned response, all of one read batch in one write. One current-thread runtime
//! per worker with its own SO_REUSEPORT listener, like bareapi's per-core mode.
//!
//!   ceiling --listen 127.0.0.1:9000 [--workers N]
//!
//! Only GET requests without bodies are supported (wrk and oha send exactly those). The body
//! depends on the path's first byte after '/': 'j' answers the /json body, anything else the
//! /plaintext one.

use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PLAINTEXT: &[u8] = b"HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: Mon, 23 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";
const JSON: &[u8] = b"HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: application/json\r\nContent-Length: 27\r\nDate: Mon, 23 Nov 2026 00:00:00 GMT\r\n\r\n{\"message\":\"Hello, World!\"}";

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

async fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut scan = Scanner::default();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        scan.feed(&buf[..n], &mut out);
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Finds request ends across reads and picks each request's canned answer from the first byte
/// after the request line's first '/'.
struct Scanner {
    /// How many bytes of "\r\n\r\n" were matched so far.
    matched: usize,
    in_request_line: bool,
    slash_seen: bool,
    body_picked: bool,
    body: &'static [u8],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { matched: 0, in_request_line: true, slash_seen: false, body_picked: false, body: PLAINTEXT }
    }
}

impl Scanner {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        const END: &[u8; 4] = b"\r\n\r\n";
        for &b in bytes {
            if self.in_request_line {
                if self.slash_seen && !self.body_picked {
                    self.body = if b == b'j' { JSON } else { PLAINTEXT };
                    self.body_picked = true;
                } else if b == b'/' && !self.slash_seen {
                    self.slash_seen = true;
                } else if b == b'\n' {
                    self.in_request_line = false;
                }
            }
            if b == END[self.matched] {
                self.matched += 1;
                if self.matched == 4 {
                    out.extend_from_slice(self.body);
                    *self = Scanner { body: self.body, ..Scanner::default() };
                }
            } else {
                self.matched = usize::from(b == b'\r');
            }
        }
    }
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--listen" => listen = args[i + 1].parse().expect("--listen ADDR"),
            "--workers" => workers = args[i + 1].parse().expect("--workers N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let first = listener(listen).expect("bind");
    let addr = first.local_addr().unwrap();
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(listener(addr).expect("bind"));
    }
    println!("listening addr={addr}");
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
                rt.block_on(async move {
                    let l = TcpListener::from_std(l).unwrap();
                    loop {
                        if let Ok((s, _)) = l.accept().await {
                            tokio::spawn(serve(s));
                        }
                    }
                });
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
