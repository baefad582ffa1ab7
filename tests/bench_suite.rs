//! The TechEmpower suite over real HTTP against the real binary and a real PostgreSQL, in both
//! runtime modes.

mod common;

use common::{Server, db_client};
use serde_json::Value;

const MODES: [&[&str]; 2] = [&["--runtime", "per-core"], &["--runtime", "multi-thread"]];

/// Taken by every test here that writes to `world` (through /updates) and by every test that
/// compares what the server read from `world` with what is stored, so the two never overlap:
/// the tests of one binary run on parallel threads. (Other binaries run one after another.)
static WORLD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn world_turn() -> std::sync::MutexGuard<'static, ()> {
    WORLD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn assert_world(v: &Value) -> (i64, i64) {
    let obj = v.as_object().expect("world is an object");
    assert_eq!(obj.len(), 2, "{v}");
    let id = obj["id"].as_i64().expect("id is an integer");
    let n = obj["randomNumber"].as_i64().expect("randomNumber is an integer");
    assert!((1..=10_000).contains(&id), "{v}");
    assert!((1..=10_000).contains(&n), "{v}");
    (id, n)
}

/// /plaintext and /json answer exactly what the rules require, with every mandatory header.
#[test]
fn plaintext_and_json_follow_the_rules_in_both_runtimes() {
    for mode in MODES {
        let server = Server::start(mode);
        let res = server.get("/plaintext");
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("text/plain"));
        assert_eq!(res.text(), "Hello, World!");

        let res = server.get("/json");
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.text(), r#"{"message":"Hello, World!"}"#);
    }
}

/// /db returns one world row as a JSON object.
#[test]
fn db_returns_one_world_row_in_both_runtimes() {
    for mode in MODES {
        let server = Server::start(mode);
        let mut conn = server.connect();
        for _ in 0..20 {
            let res = conn.request("GET", "/db");
            assert_eq!(res.status, 200, "{}", res.text());
            res.assert_standard_headers();
            assert_eq!(res.header("content-type"), Some("application/json"));
            assert_world(&res.json());
        }
    }
}

/// The `queries` parameter is clamped to 1..=500, and bad values count as 1.
#[test]
fn queries_are_clamped_by_the_published_rules() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    for (query, want) in [
        ("?queries=0", 1),
        ("?queries=-1", 1),
        ("?queries=1", 1),
        ("?queries=20", 20),
        ("?queries=500", 500),
        ("?queries=501", 500),
        ("?queries=foo", 1),
        ("?queries=", 1),
        ("", 1),
    ] {
        let res = conn.request("GET", &format!("/queries{query}"));
        assert_eq!(res.status, 200, "{query}: {}", res.text());
        res.assert_standard_headers();
        let rows = res.json();
        let rows = rows.as_array().unwrap_or_else(|| panic!("{query}: not an array"));
        assert_eq!(rows.len(), want, "{query}");
        rows.iter().for_each(|r| {
            assert_world(r);
        });
    }
}

/// What /queries returns is what the table holds. (`world_turn` keeps this binary's one
/// /updates test from writing meanwhile; the /updates tests live in their own binary, which
/// cargo runs after this one.)
#[test]
fn queries_return_the_stored_rows() {
    let server = Server::start(&[]);
    let _turn = world_turn();
    let db = db_client();
    let res = server.get("/queries?queries=20");
    let rows = res.json();
    assert_eq!(rows.as_array().unwrap().len(), 20);
    for row in rows.as_array().unwrap() {
        let (id, n) = assert_world(row);
        let stored: i32 = db.query("SELECT randomnumber FROM world WHERE id = $1", &[&(id as i32)])[0].get(0);
        assert_eq!(i64::from(stored), n, "row {id}");
    }
    let res = server.get("/db");
    let (id, n) = assert_world(&res.json());
    let stored: i32 = db.query("SELECT randomnumber FROM world WHERE id = $1", &[&(id as i32)])[0].get(0);
    assert_eq!(i64::from(stored), n, "row {id}");
}

/// The fortunes page is exactly the standard rows plus the added one, sorted and escaped.
#[test]
fn fortunes_page_is_exactly_the_expected_document() {
    assert_eq!(common::standard_fortunes().len(), 12);
    let want = common::expected_fortunes_page();

    for mode in MODES {
        let server = Server::start(mode);
        let res = server.get("/fortunes");
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(res.text(), want);
    }
}

/// /cached-queries clamps `count` like /queries and returns world rows.
#[test]
fn cached_queries_clamp_and_return_rows() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    for (query, want) in [("?count=10", 10), ("?count=0", 1), ("?count=501", 500), ("?count=x", 1), ("", 1)] {
        let res = conn.request("GET", &format!("/cached-queries{query}"));
        assert_eq!(res.status, 200);
        res.assert_standard_headers();
        let rows = res.json();
        assert_eq!(rows.as_array().unwrap().len(), want, "{query}");
        rows.as_array().unwrap().iter().for_each(|r| {
            assert_world(r);
        });
    }
}

/// Unknown paths get 404 and known paths with the wrong method 405 + Allow, as problem+json
/// with the standard headers.
#[test]
fn unknown_paths_and_wrong_methods_get_problem_answers() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    for path in ["/nope", "/plaintext/", "/", "/JSON", "/db/1"] {
        let res = conn.request("GET", path);
        assert_eq!(res.status, 404, "{path}");
        res.assert_standard_headers();
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
        let body = res.json();
        assert_eq!(body["status"], 404);
        assert_eq!(body["title"], "Not Found");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = conn.request(method, "/json");
        assert_eq!(res.status, 405, "{method}");
        res.assert_standard_headers();
        assert_eq!(res.header("allow"), Some("GET, HEAD"));
        assert_eq!(res.json()["status"], 405);
    }
}

/// HEAD is answered by GET routes with the headers (Content-Length included) and no body.
#[test]
fn head_returns_headers_without_a_body() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let res = conn.request("HEAD", "/json");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length"), Some("27"));
    assert_eq!(res.header("server"), Some("bareapi"));
    assert!(res.header("date").is_some());
    // The connection stays usable: had a body been sent, this would read it as a status line.
    let res = conn.request("GET", "/plaintext");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "Hello, World!");
}

/// Sixteen pipelined requests on one connection are all answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order_in_both_runtimes() {
    for mode in MODES {
        let server = Server::start(mode);
        let mut conn = server.connect();
        let mut batch = Vec::new();
        for _ in 0..16 {
            batch.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        conn.send_raw(&batch);
        for _ in 0..16 {
            let res = conn.read_response(false);
            assert_eq!(res.status, 200);
            assert_eq!(res.text(), "Hello, World!");
        }
        // Mixed routes, including database ones, keep their order too.
        conn.send_raw(
            b"GET /json HTTP/1.1\r\nHost: t\r\n\r\nGET /db HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /queries?queries=3 HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(conn.read_response(false).text(), r#"{"message":"Hello, World!"}"#);
        assert_world(&conn.read_response(false).json());
        assert_eq!(conn.read_response(false).status, 404);
        assert_eq!(conn.read_response(false).json().as_array().unwrap().len(), 3);
        assert_eq!(conn.read_response(false).text(), "Hello, World!");
    }
}

/// The plain pool checkout mode serves the database routes too.
#[test]
fn checkout_db_mode_serves_the_database_routes() {
    let server = Server::start(&["--db-mode", "checkout"]);
    let _turn = world_turn();
    let mut conn = server.connect();
    assert_world(&conn.request("GET", "/db").json());
    assert_eq!(conn.request("GET", "/queries?queries=5").json().as_array().unwrap().len(), 5);
    assert_eq!(conn.request("GET", "/updates?queries=5").json().as_array().unwrap().len(), 5);
    assert_eq!(conn.request("GET", "/fortunes").status, 200);
}

/// With HTTP/2 enabled, HTTP/1.1 clients are still served on the same port.
#[test]
fn http2_flag_keeps_http1_working() {
    let server = Server::start(&["--http2"]);
    let mut conn = server.connect();
    assert_eq!(conn.request("GET", "/plaintext").text(), "Hello, World!");
    assert_world(&conn.request("GET", "/db").json());
}
