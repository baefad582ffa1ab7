//! Graceful shutdown on SIGTERM: the port stops accepting at once, in-flight requests are
//! answered, idle and stalled connections do not hold the process, and it exits 0, in both
//! runtime modes.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Server};

/// SIGTERM during a burst of slow requests: every one is answered with 200 and
/// `Connection: close`, then the process exits 0.
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
    }
}

/// The listener closes as soon as shutdown begins, while requests are still being answered:
/// a new connection is refused then, not first accepted and later reset.
#[test]
fn the_port_stops_accepting_while_requests_are_still_answered() {
    for mode in ["per-core", "multi-thread"] {
        let mut server = Server::start(&["--runtime", mode]);
        let addr = server.addr;
        let slow = std::thread::spawn(move || Conn::new(addr).request("GET", "/__test/sleep?ms=3000"));
        std::thread::sleep(Duration::from_millis(300));
        // Accepting before the signal: the check below can tell an open port from a closed one.
        assert!(std::net::TcpStream::connect(addr).is_ok(), "{mode}: not accepting before SIGTERM");
        server.terminate();
        let started = Instant::now();
        // Connections that slip in before the listener closes are served and closed by the
        // server; dropping them here is all they need.
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(started.elapsed() < Duration::from_secs(1), "{mode}: still accepting 1 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
        let refused_after = started.elapsed();
        assert!(!slow.is_finished(), "{mode}: the slow request ended before the port closed ({refused_after:?})");
        let res = slow.join().expect("client thread");
        assert_eq!((res.status, res.text()), (200, "slept 3000 ms"), "{mode}");
        assert!(server.wait_exit(Duration::from_secs(5)).expect("exited").success(), "{mode}");
    }
}

/// Idle kept-alive connections, and connections that never sent a byte, are closed at once on
/// shutdown (after the drain's short idle grace); they do not hold the process. The header read
/// timeout, which closes idle connections too, is set far beyond the bounds here, so only the
/// drain's own idle close can pass them.
#[test]
fn idle_connections_do_not_hold_shutdown() {
    let mut server = Server::start(&["--drain-timeout-ms", "20000", "--header-read-timeout-ms", "60000"]);
    let mut idle = server.connect();
    assert_eq!(idle.request("GET", "/plaintext").status, 200);
    let mut never_spoke = server.connect();
    // Both are open and served before the signal (a request on a second connection has been
    // answered, so the silent one has been accepted too).
    assert_eq!(server.get("/plaintext").status, 200);
    idle.set_read_timeout(Duration::from_millis(100));
    assert!(!idle.is_closed(), "the idle connection closed before shutdown");
    let started = Instant::now();
    server.terminate();
    for (what, conn) in [("idle", &mut idle), ("silent", &mut never_spoke)] {
        conn.set_read_timeout(Duration::from_secs(5));
        assert!(conn.is_closed(), "{what} connection still open");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{what} connection closed after {took:?}");
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
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
    // The signal is taken on the server's own time, and answers carry `Connection: close` once
    // every listener is closed (a moment later): until then the kept-alive connection gets
    // 200s, then 503s.
    // When the listeners close at once, a request can straddle the two steps (checked before
    // shutdown began, answered after): a 200 with the close, then the close itself.
    let mut res = conn.request("GET", "/readyz");
    let mut draining = false;
    for _ in 0..100 {
        draining |= res.status == 503;
        if res.header("connection").is_some() {
            break;
        }
        assert_eq!(res.status, if draining { 503 } else { 200 }, "{}", res.text());
        std::thread::sleep(Duration::from_millis(20));
        res = conn.request("GET", "/readyz");
    }
    if res.status == 200 && !draining {
        assert_eq!(res.header("connection"), Some("close"));
        conn.set_read_timeout(Duration::from_secs(2));
        assert!(conn.is_closed());
        assert!(server.wait_exit(Duration::from_secs(5)).expect("exited").success());
        return;
    }
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.header("connection"), Some("close"));
    assert!(res.header("retry-after").is_some());
    assert!(res.text().contains("shutting down"), "{}", res.text());
    conn.set_read_timeout(Duration::from_secs(2));
    assert!(conn.is_closed());
    assert!(server.wait_exit(Duration::from_secs(5)).expect("exited").success());
}
