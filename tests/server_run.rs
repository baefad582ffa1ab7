//! `server::run` in process, as the binary runs it but without spawning it: started on
//! listeners the test binds, stopped by a future the test resolves, drained.

mod common;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bareapi::config::{Cli, RuntimeMode, ServerConfig};
use bareapi::server;
use clap::Parser;
use common::Conn;
use tokio::sync::oneshot;

/// A server run in a thread of the test, with its shutdown trigger.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Running {
    /// `server::run` with `flags` on 127.0.0.1, port 0. The header-read timeout is a minute, so
    /// that only the drain can close an idle connection within a test's bounds.
    fn start(runtime: RuntimeMode, flags: &[&str]) -> Running {
        let url = common::database_url();
        let layout = match runtime {
            RuntimeMode::PerCore => "per-core",
            RuntimeMode::MultiThread => "multi-thread",
        };
        let mut args = vec!["bareapi", "--listen", "127.0.0.1:0", "--workers", "1", "--runtime", layout];
        args.extend_from_slice(&["--no-migrate", "--header-read-timeout-ms", "60000"]);
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--database-url", &url]);
        let cfg = Cli::try_parse_from(&args).expect("flags parse").serve.to_config().expect("config");
        let (bound, addr) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let bind = move |cfg: &ServerConfig| {
                let listeners = server::bind(cfg)?;
                let _ = bound.send(listeners.local_addr().map_err(|e| e.to_string())?);
                Ok(listeners)
            };
            server::run(cfg, bind, async {
                let _ = stopped.await;
                Ok(())
            })
        });
        let addr = addr.recv_timeout(Duration::from_secs(30)).expect("run binds its listeners");
        Running { addr, stop: Some(stop), thread: Some(thread) }
    }

    /// Resolves the shutdown future; returns how long `run` took to return after it.
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().expect("stopped once").send(());
        let result = self.thread.take().expect("stopped once").join().expect("run did not panic");
        assert_eq!(result, Ok(()), "run returns Ok after draining");
        started.elapsed()
    }
}

/// A response arrives on a fresh connection (the listener accepts before any request, so
/// this also waits out start-up).
fn plaintext(addr: SocketAddr) {
    let res = Conn::new(addr).request("GET", "/plaintext");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "Hello, World!");
}

#[test]
fn run_serves_until_its_shutdown_future_resolves_then_closes_idle_connections() {
    for runtime in [RuntimeMode::PerCore, RuntimeMode::MultiThread] {
        let mut server = Running::start(runtime, &["--drain-timeout-ms", "10000"]);
        plaintext(server.addr);
        let mut idle = Conn::new(server.addr);
        assert_eq!(idle.request("GET", "/json").status, 200);
        // Idle and kept alive: neither the header timeout (a minute) nor the drain deadline
        // (10 s) is near, so returning within 3 s means the drain closed it and woke at its end;
        // not before the idle grace (250 ms), or nothing waited for the connection at all.
        let took = server.stop();
        assert!(took >= Duration::from_millis(240), "{runtime:?}: run returned after {took:?}, before the idle grace");
        assert!(took < Duration::from_secs(3), "{runtime:?}: run took {took:?} to return");
        idle.set_read_timeout(Duration::from_secs(1));
        assert!(idle.is_closed(), "{runtime:?}: the idle connection was closed");
        assert!(std::net::TcpStream::connect(server.addr).is_err(), "{runtime:?}: the listener is closed");
    }
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_request_in_flight_is_answered_and_the_drain_deadline_ends_the_rest() {
    for runtime in [RuntimeMode::PerCore, RuntimeMode::MultiThread] {
        let mut server = Running::start(runtime, &["--drain-timeout-ms", "1500"]);
        plaintext(server.addr);
        let mut finishing = Conn::new(server.addr);
        finishing.send_raw(b"GET /__test/sleep?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut stuck = Conn::new(server.addr);
        stuck.send_raw(b"GET /__test/sleep?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(100));
        let stopper = std::thread::spawn(move || server.stop());
        let res = finishing.read_response(false);
        assert_eq!(res.status, 200, "{runtime:?}: the request in flight is answered while draining");
        assert_eq!(res.header("connection"), Some("close"));
        let took = stopper.join().unwrap();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
            "{runtime:?}: run returned {took:?} after the signal; the drain deadline is 1.5 s"
        );
        stuck.set_read_timeout(Duration::from_secs(1));
        assert!(stuck.is_closed(), "{runtime:?}: the request past the deadline is cut off");
    }
}

/// The port is bound only once the database is ready: a process that fails to prepare it (here:
/// migrations on, nothing listening on the database port) never holds a listener that the
/// kernel would hand new connections to during a restart on the same port.
#[test]
fn a_server_that_cannot_prepare_its_database_never_binds() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("postgres://nobody@{closed}/nothing");
    let args = ["bareapi", "--listen", "127.0.0.1:0", "--workers", "1", "--pool-create-ms", "500"];
    let cfg = Cli::try_parse_from(args.iter().copied().chain(["--database-url", &url]))
        .expect("flags parse")
        .serve
        .to_config()
        .expect("config");
    let bound = std::cell::Cell::new(false);
    let result = server::run(
        cfg,
        |cfg: &ServerConfig| {
            bound.set(true);
            server::bind(cfg)
        },
        async { Ok(()) },
    );
    let err = result.expect_err("migrations cannot run without the database");
    assert!(err.contains("connecting"), "{err}");
    assert!(!bound.get(), "the listeners were bound before the database was ready");
}
