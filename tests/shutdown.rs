//! Graceful shutdown on SIGTERM: in-flight requests are answered, idle and stalled connections
//! do not hold the process, and it exits 0, in both runtime modes.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Server};

/// SIGTERM during a burst of slow requests: every one is answered with 200 and
/// `Connection: close`, then the process exits 0 and the port stops accepting.
#[test]
fn sigterm_during_slow_requests_loses_none_in_both_runtimes() {
    for mode in ["per-core", "multi-thread"] {
        let mut server = Server::start(&["--runtime", mode]);
        let addr = server.addr;
        let clients: Vec<_> = (0..10)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut conn = Conn::new(addr);
                    conn.request("GET", "/__test/sleep?ms=1000")
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        server.terminate();
        for client in clients {
            let res = client.join().expect("client thread");
            assert_eq!(res.status, 200, "{mode}: {}", res.text());
            assert_eq!(res.text(), "slept 1000 ms");
            assert_eq!(res.header("connection"), Some("close"), "{mode}");
        }
        let status = server.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| panic!("{mode}: still running"));
        assert!(status.success(), "{mode}: exit {status:?}");
        assert!(std::net::TcpStream::connect(addr).is_err(), "{mode}: still accepting after exit");
    }
}

/// Idle kept-alive connections are closed at once on shutdown; they do not hold the process.
#[test]
fn idle_connections_do_not_hold_shutdown() {
    let mut server = Server::start(&["--drain-timeout-ms", "20000"]);
    let mut idle = server.connect();
    assert_eq!(idle.request("GET", "/plaintext").status, 200);
    let _never_spoke = server.connect();
    let started = Instant::now();
    server.terminate();
    idle.set_read_timeout(Duration::from_secs(5));
    assert!(idle.is_closed());
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// A connection stuck halfway through its headers is dropped at the drain deadline.
#[test]
fn a_stalled_request_is_dropped_at_the_drain_deadline() {
    let mut server = Server::start(&["--drain-timeout-ms", "1000", "--header-read-timeout-ms", "60000"]);
    let mut stalled = server.connect();
    stalled.send_raw(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Half: ");
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// Once shutdown begins, a kept-alive connection's next request is still answered, with
/// `Connection: close`: `/readyz` says 503 (draining, with `Retry-After`), and the connection
/// then closes.
#[test]
fn readyz_answers_503_with_connection_close_while_draining() {
    let mut server = Server::start(&["--drain-timeout-ms", "5000"]);
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/readyz").status, 200);
    server.terminate();
    std::thread::sleep(Duration::from_millis(50));
    let res = conn.request("GET", "/readyz");
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.header("connection"), Some("close"));
    assert!(res.header("retry-after").is_some());
    assert!(res.text().contains("shutting down"), "{}", res.text());
    conn.set_read_timeout(Duration::from_secs(2));
    assert!(conn.is_closed());
    assert!(server.wait_exit(Duration::from_secs(5)).expect("exited").success());
}
