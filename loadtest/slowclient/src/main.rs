//! A light slowloris generator, so that measuring a server under slow clients does not measure
//! the generator's own CPU instead (a Python asyncio version visibly disturbed wrk on a 2-core
//! machine). One thread, non-blocking std sockets, mostly asleep:
//!
//!   slowclient 127.0.0.1:PORT [--rate 200] [--seconds 60]
//!
//! opens RATE connections a second for SECONDS; each sends a request line and then one header
//! byte a second, spread evenly over time, and never finishes its headers. Prints how many the
//! server closed and how long after connecting (to within a second: a connection is looked at
//! when its next byte is due). Targets 127.0.0.0/8 only; stops by itself
//! (SECONDS plus 30 s at most).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Slow {
    stream: TcpStream,
    opened: Instant,
    next_byte: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target: SocketAddr =
        args.get(1).and_then(|a| a.parse().ok()).expect("usage: slowclient IP:PORT [--rate N] [--seconds N]");
    assert!(target.ip().is_loopback(), "targets 127.0.0.0/8 only");
    let mut rate = 200u32;
    let mut seconds = 60u64;
    let mut i = 2;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--rate" => rate = args[i + 1].parse().expect("--rate N"),
            "--seconds" => seconds = args[i + 1].parse().expect("--seconds N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    let stop_opening = start + Duration::from_secs(seconds);
    let give_up = stop_opening + Duration::from_secs(30);
    let mut open: VecDeque<Slow> = VecDeque::new();
    let mut closed_after: Vec<Duration> = Vec::new();
    let mut opened = 0u64;
    let mut buf = [0u8; 512];
    while Instant::now() < give_up && (Instant::now() < stop_opening || !open.is_empty()) {
        let now = Instant::now();
        // Open the connections due by now at RATE per second.
        let due = if now < stop_opening { (now - start).as_secs_f64() * f64::from(rate) } else { opened as f64 };
        while (opened as f64) < due {
            opened += 1;
            if let Ok(mut s) = TcpStream::connect(target) {
                let _ = s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Slow: ");
                let _ = s.set_nonblocking(true);
                open.push_back(Slow {
                    stream: s,
                    opened: Instant::now(),
                    next_byte: Instant::now() + Duration::from_secs(1),
                });
            }
        }
        // Each connection is visited once a second, a second after its last byte, so the
        // server sees an even trickle rather than bursts. Connections were opened in order and
        // each moves one second on, so the queue stays ordered by due time.
        while open.front().is_some_and(|c| c.next_byte <= now) {
            let Some(mut c) = open.pop_front() else { break };
            let gone = match c.stream.read(&mut buf) {
                Ok(_) => true, // EOF, or an answer (408): either way the server ended it
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if gone || c.stream.write(b"a").is_err() {
                closed_after.push(c.opened.elapsed());
                continue;
            }
            c.next_byte += Duration::from_secs(1);
            open.push_back(c);
        }
        std::thread::sleep(tick);
    }
    closed_after.sort();
    let median = closed_after.get(closed_after.len() / 2).copied().unwrap_or_default();
    let max = closed_after.last().copied().unwrap_or_default();
    println!(
        "slow connections opened: {opened}, closed by the server: {}, still open at the end: {}; closed after: median {:.2} s, max {:.2} s",
        closed_after.len(),
        open.len(),
        median.as_secs_f64(),
        max.as_secs_f64()
    );
}
