//! PostgreSQL stopped and started again under a running server (pg_ctl on the throwaway test
//! cluster): database routes answer 503 while it is down, the rest keep serving, and the server
//! recovers by itself once it is back. In its own test binary so no other test runs meanwhile.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

fn pg(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
    let status = Command::new("bash").arg(script).args(args).status().expect("run pg.sh");
    assert!(status.success(), "pg.sh {args:?} failed");
}

#[test]
fn database_restart_gives_503s_then_recovers_without_a_restart() {
    // Set by scripts/test.sh for the cluster it owns; with a DATABASE_URL of your own there is
    // no cluster this test may stop.
    let Ok(dir) = std::env::var("BAREAPI_TEST_PGDATA") else {
        eprintln!("BAREAPI_TEST_PGDATA not set: this test needs the throwaway cluster of scripts/test.sh");
        return;
    };
    let url = common::database_url();
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap().to_owned();
    let server = Server::start(&["--pool-wait-ms", "500", "--pool-create-ms", "500"]);
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/db").status, 200);

    pg(&["stop", &dir]);
    let down_started = Instant::now();
    let mut saw_503 = false;
    for _ in 0..5 {
        let started = Instant::now();
        let res = conn.request("GET", "/db");
        assert!(started.elapsed() < Duration::from_secs(3), "a request hung while the database was down");
        if res.status == 503 {
            saw_503 = true;
            assert_eq!(res.header("retry-after"), Some("1"));
        } else {
            panic!("expected 503 while the database is down, got {}: {}", res.status, res.text());
        }
        assert_eq!(conn.request("GET", "/plaintext").status, 200);
        assert_eq!(conn.request("GET", "/readyz").status, 503);
    }
    assert!(saw_503);
    assert!(down_started.elapsed() < Duration::from_secs(15));

    pg(&["start", &dir, &port, "--throwaway"]);
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
    assert_eq!(conn.request("GET", "/readyz").status, 200);
}
