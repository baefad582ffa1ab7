//! Zero-downtime restart on one host: a new process binds the same port (`SO_REUSEPORT`)
//! while the old one is still serving, then the old one is sent SIGTERM and drains. Under
//! steady keep-alive load through three such hand-overs, in both runtime modes, not one request
//! fails.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::load::{Load, MIXED_PATHS};

#[test]
fn restarts_on_the_same_port_lose_no_request() {
    for mode in ["per-core", "multi-thread"] {
        let mut old = Server::start(&["--runtime", mode]);
        let addr = old.addr;
        let load = Load::start(addr, 12, MIXED_PATHS);
        std::thread::sleep(Duration::from_millis(300));
        for round in 1..=3 {
            // The new process is listening before the old one is told to stop.
            let new = Server::start_at(addr, &["--runtime", mode]);
            std::thread::sleep(Duration::from_millis(200));
            let before = load.answered();
            old.terminate();
            let started = Instant::now();
            let status = old
                .wait_exit(Duration::from_secs(15))
                .unwrap_or_else(|| panic!("{mode} round {round}: old process still running"));
            assert!(status.success(), "{mode} round {round}: old process exit {status:?}");
            // The drain ends with the answers in flight, not at the deadline.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{mode} round {round}: drain took {:?}",
                started.elapsed()
            );
            // Answers keep coming, from the new process alone now. (Its first database
            // connections take a while in a debug build: SCRAM's key derivation, unoptimised.)
            std::thread::sleep(Duration::from_millis(300));
            let waiting = Instant::now();
            while load.answered() <= before + 100 && waiting.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(load.answered() > before + 100, "{mode} round {round}: the new process is not answering");
            old = new;
        }
        let report = load.stop();
        eprintln!("{mode}: {report:?}");
        assert_eq!(report.failed, 0, "{mode}: {report:?}");
        // Every client was moved off each old process by an answer saying so.
        assert!(report.closed_by_server >= 12, "{mode}: {report:?}");
        assert!(report.ok > 3000, "{mode}: {report:?}");
        old.terminate();
        assert!(old.wait_exit(Duration::from_secs(15)).expect("last process exits").success());
    }
}
