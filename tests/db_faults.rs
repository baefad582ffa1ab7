//! A database that refuses or never answers: database routes answer 503 problem bodies within
//! the pool timeouts, never hang, and the other routes keep serving.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{FreshDb, Server, eventually};

const FAST_TIMEOUTS: &[&str] = &["--no-migrate", "--pool-wait-ms", "500", "--pool-create-ms", "500"];
const DB_ROUTES: &[&str] = &["/db", "/queries?queries=5", "/fortunes", "/updates?queries=5", "/cached-queries?count=3"];

fn assert_unavailable_quickly(server: &Server) {
    let mut conn = server.connect();
    for path in DB_ROUTES {
        let started = Instant::now();
        let res = conn.request("GET", path);
        let took = started.elapsed();
        assert_eq!(res.status, 503, "{path}: {}", res.text());
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
        assert_eq!(res.header("retry-after"), Some("1"));
        let body = res.json();
        assert_eq!(body["status"], 503);
        assert!(!res.text().contains("127.0.0.1"), "internal detail leaked: {}", res.text());
        assert!(took < Duration::from_secs(3), "{path} took {took:?}");
    }
    // Routes without the database are unaffected, on the same connection.
    let res = conn.request("GET", "/plaintext");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "Hello, World!");
}

/// Connection refused (nothing listens on the database port).
#[test]
fn refused_database_answers_503_and_other_routes_serve() {
    // Bind and drop to find a port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server::start_with_db(FAST_TIMEOUTS, &format!("postgres://bareapi@127.0.0.1:{port}/bareapi"));
    assert_unavailable_quickly(&server);
    // The 503's log line carries the whole cause, down to the refused TCP connect.
    let logs = server.drain_logs().join("\n");
    let line =
        logs.lines().find(|l| l.contains("service unavailable")).unwrap_or_else(|| panic!("no 503 logged: {logs}"));
    assert!(line.contains("error connecting to server"), "{line}");
    assert!(line.contains("Connection refused"), "the cause under the pool's error: {line}");
    assert_eq!(line.matches("error connecting to server").count(), 1, "each cause once: {line}");
}

/// A database host that accepts TCP but never answers the startup message: the connect and
/// create timeouts bound every request.
#[test]
fn silent_database_answers_503_within_the_timeouts() {
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in blackhole.incoming().flatten() {
            held.push(stream); // never read, never answer, never close
        }
    });
    let server = Server::start_with_db(FAST_TIMEOUTS, &format!("postgres://bareapi@127.0.0.1:{port}/bareapi"));
    assert_unavailable_quickly(&server);
}

/// Starting with migrations on and no database is a clear start-up failure, not a hang.
#[test]
fn start_with_migrations_and_no_database_fails_clearly() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bareapi"))
        .args(["serve", "--listen", "127.0.0.1:0", "--pool-create-ms", "500"])
        .env("DATABASE_URL", format!("postgres://bareapi@127.0.0.1:{port}/bareapi"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to the database: error connecting to server"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "the cause under tokio-postgres's error: {stderr}");
}

/// PostgreSQL ending the server's connections (an administrator's `pg_terminate_backend`, a
/// shutdown) is logged with its reason and SQLSTATE, not tokio-postgres's bare "db error"; the
/// database routes then answer from fresh connections.
#[test]
fn connections_the_database_ends_are_logged_with_its_reason() {
    let fresh = FreshDb::new("terminated");
    let server = Server::start_with_db(&[], &fresh.url);
    assert!(eventually(Duration::from_secs(10), || server.get("/db").status == 200), "/db never answered");
    let admin = common::db_client();
    let ended = admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&fresh.name],
    );
    assert!(!ended.is_empty(), "the server holds no connection to {}", fresh.name);
    let line = server
        .wait_log("database connection ended with an error", Duration::from_secs(10))
        .expect("no log line for the ended connection");
    assert!(
        line.contains("57P01") && line.contains("terminating connection due to administrator command"),
        "the log line lacks PostgreSQL's reason: {line}"
    );
    assert!(eventually(Duration::from_secs(10), || server.get("/db").status == 200), "/db did not recover");
}
