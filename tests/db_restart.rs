//! PostgreSQL stopped and started again under a running server: database routes answer 503
//! while it is down, the rest keep serving, and the server recovers by itself once it is back.
//!
//! The test starts a cluster of its own with `scripts/pg.sh` (in a fresh folder, on a port the
//! kernel picks), so it never needs to be skipped and never stops the database other tests use;
//! the cluster is stopped and deleted however the test ends.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

/// Runs `scripts/pg.sh args`; its standard output.
fn pg(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
    let out = Command::new("bash").arg(script).args(args).output().expect("run pg.sh");
    assert!(out.status.success(), "pg.sh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("pg.sh prints UTF-8")
}

/// A throwaway PostgreSQL cluster of this test's own, stopped and deleted on drop.
struct Cluster {
    dir: PathBuf,
    port: String,
    url: String,
}

impl Cluster {
    fn start() -> Cluster {
        // A port from the kernel rather than `pg.sh free-port`, whose scan from 55433 would hand
        // other clusters started meanwhile the very port this one leaves free while stopped.
        let port = common::daemon::free_port().to_string();
        let dir = std::env::temp_dir().join(format!("bareapi-db-restart-{}-{port}", std::process::id()));
        let out = pg(&["start", dir.to_str().unwrap(), &port, "--throwaway"]);
        let url = out.lines().rfind(|l| l.starts_with("postgres://")).expect("pg.sh prints the URL").to_owned();
        Cluster { dir, port, url }
    }

    fn stop(&self) {
        pg(&["stop", self.dir.to_str().unwrap()]);
    }

    fn start_again(&self) {
        pg(&["start", self.dir.to_str().unwrap(), &self.port, "--throwaway"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn database_restart_gives_503s_then_recovers_without_a_restart() {
    let cluster = Cluster::start();
    // The server applies the migrations to the fresh database (world rows included).
    let server = Server::start_with_db(&["--pool-wait-ms", "500", "--pool-create-ms", "500"], &cluster.url);
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/db").status, 200);
    assert_eq!(conn.request("GET", "/readyz").status, 200, "/readyz before the database stops");

    cluster.stop();
    let down_started = Instant::now();
    for _ in 0..5 {
        let started = Instant::now();
        let res = conn.request("GET", "/db");
        assert!(started.elapsed() < Duration::from_secs(3), "a request hung while the database was down");
        assert_eq!(res.status, 503, "expected 503 while the database is down: {}", res.text());
        assert_eq!(res.header("retry-after"), Some("1"));
        assert_eq!(conn.request("GET", "/plaintext").status, 200);
        assert_eq!(conn.request("GET", "/readyz").status, 503, "/readyz while the database is down");
    }
    assert!(down_started.elapsed() < Duration::from_secs(15));

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ok = 0;
    while Instant::now() < deadline && ok < 20 {
        let res = conn.request("GET", "/db");
        if res.status == 200 {
            ok += 1;
        } else {
            assert_eq!(res.status, 503, "{}", res.text());
            ok = 0;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(ok, 20, "the server did not recover after the database came back");
    assert_eq!(conn.request("GET", "/queries?queries=20").status, 200);
    assert_eq!(conn.request("GET", "/readyz").status, 200, "/readyz after the database is back");
}
