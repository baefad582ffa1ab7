//! Operations surface over real HTTP: health and readiness, Prometheus metrics that match the
//! requests made, request ids, the access log, the request timeout and panic isolation.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Server};

/// `/healthz` and `/readyz` answer 200 while the database is up.
#[test]
fn health_and_readiness_answer_200() {
    let server = Server::start(&[]);
    let res = server.get("/healthz");
    assert_eq!(res.status, 200);
    res.assert_standard_headers();
    assert_eq!(res.json()["status"], "ok");
    // Ready once the database answers: right after start that can take a moment (the check
    // waits at most 1 s, and a loaded machine may still be opening the first connection), so
    // the test waits for it, as a load balancer's probe would.
    let ready = common::eventually(Duration::from_secs(10), || server.get("/readyz").status == 200);
    let res = server.get("/readyz");
    assert!(ready, "/readyz never answered 200; last: {} {}", res.status, res.text());
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["status"], "ready");
}

/// Parses the Prometheus text: every sample line is `name{labels} value` with a numeric value.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {l:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            assert!(series.chars().next().unwrap().is_ascii_alphabetic(), "{l:?}");
            (series.to_owned(), value)
        })
        .collect()
}

fn sample(all: &[(String, f64)], series: &str) -> Option<f64> {
    all.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

/// The counters and histograms of `/metrics` match exactly the requests made, by method,
/// route template and status class.
#[test]
fn metrics_count_exactly_the_requests_made() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    for _ in 0..7 {
        assert_eq!(conn.request("GET", "/plaintext").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(conn.request("GET", "/db").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(conn.request("GET", "/no/such/thing").status, 404);
    }
    assert_eq!(conn.request("POST", "/json").status, 405);
    assert_eq!(conn.request("HEAD", "/json").status, 200);
    let res = conn.request("GET", "/metrics");
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let all = samples(res.text());
    let count = |labels: &str| sample(&all, &format!("bareapi_http_requests_total{{{labels}}}"));
    assert_eq!(count(r#"method="GET",route="/plaintext",status="2xx""#), Some(7.0));
    assert_eq!(count(r#"method="GET",route="/db",status="2xx""#), Some(3.0));
    assert_eq!(count(r#"method="GET",route="<unmatched>",status="4xx""#), Some(2.0));
    assert_eq!(count(r#"method="POST",route="/json",status="4xx""#), Some(1.0));
    assert_eq!(count(r#"method="HEAD",route="/json",status="2xx""#), Some(1.0));
    let inf = r#"bareapi_http_request_duration_seconds_bucket{method="GET",route="/db",status="2xx",le="+Inf"}"#;
    assert_eq!(sample(&all, inf), Some(3.0));
    assert_eq!(
        sample(&all, r#"bareapi_http_request_duration_seconds_count{method="GET",route="/db",status="2xx"}"#),
        Some(3.0)
    );
    // Buckets are cumulative.
    let buckets: Vec<f64> = all
        .iter()
        .filter(|(s, _)| {
            s.starts_with(r#"bareapi_http_request_duration_seconds_bucket{method="GET",route="/plaintext""#)
        })
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(*buckets.last().unwrap(), 7.0);
    // The scrape itself is in flight while it renders.
    assert_eq!(sample(&all, "bareapi_http_requests_in_flight"), Some(1.0));
    assert_eq!(sample(&all, "bareapi_http_connections_open"), Some(1.0));
    assert!(sample(&all, "bareapi_http_connections_total").unwrap() >= 1.0);
    assert!(sample(&all, r#"bareapi_db_pool_max_size{pool="0"}"#).is_some());
    assert!(sample(&all, r#"bareapi_db_pool_size{pool="1"}"#).is_some(), "one pool per worker");
    assert!(all.iter().any(|(s, _)| s.starts_with("bareapi_build_info{version=")));
}

/// A client's `x-request-id` is echoed; without one, a fresh id is generated per request.
#[test]
fn request_ids_are_echoed_or_generated() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let res = conn.send("GET", "/plaintext", &[("X-Request-Id", "client-chosen-42")], None);
    assert_eq!(res.header("x-request-id"), Some("client-chosen-42"));
    let a = conn.request("GET", "/plaintext");
    let b = conn.request("GET", "/nope");
    let (a, b) = (a.header("x-request-id").unwrap().to_owned(), b.header("x-request-id").unwrap().to_owned());
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
}

/// `--no-request-id`: answers carry no `x-request-id` and a client's is not echoed, but a 5xx
/// still carries the id its log line was written with.
#[test]
fn without_request_ids_only_server_errors_carry_one() {
    let server = Server::start(&["--no-request-id"]);
    let mut conn = server.connect();
    let res = conn.send("GET", "/plaintext", &[("X-Request-Id", "client-chosen-43")], None);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-request-id"), None);
    assert_eq!(conn.request("GET", "/nope").header("x-request-id"), None);
    let failed = conn.request("GET", "/__test/panic");
    assert_eq!(failed.status, 500);
    assert_eq!(failed.header("x-request-id").map(str::len), Some(32), "a 5xx names its log line");
}

/// A 5xx's log line carries the id its answer carries, the client's or a generated one, as
/// text (ids are sensitive header values, whose `Debug` would print `Sensitive`).
#[test]
fn server_errors_log_the_request_id_they_answer_with() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let sent = conn.send("GET", "/__test/panic", &[("X-Request-Id", "trace-5xx-7")], None);
    assert_eq!((sent.status, sent.header("x-request-id")), (500, Some("trace-5xx-7")));
    let generated = conn.request("GET", "/__test/panic");
    assert_eq!(generated.status, 500);
    let generated = generated.header("x-request-id").unwrap().to_owned();
    let lines: Vec<String> = (0..2).filter_map(|_| server.wait_log("internal error", Duration::from_secs(5))).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("trace-5xx-7"), "{}", lines[0]);
    assert!(lines[1].contains(&generated), "{} should name {generated}", lines[1]);
    assert!(lines.iter().all(|l| !l.contains("Sensitive")), "{lines:?}");
}

/// With the access log on, each request logs one line with method, route template, status,
/// duration and request id.
#[test]
fn access_log_has_one_line_per_request() {
    let server = Server::start(&["--access-log"]);
    let mut conn = server.connect();
    conn.send("GET", "/plaintext", &[("X-Request-Id", "access-log-test-1")], None);
    conn.send("GET", "/api/users/77", &[("X-Request-Id", "access-log-test-2")], None);
    let lines: Vec<String> =
        (0..2).filter_map(|_| server.wait_log("access-log-test-", Duration::from_secs(5))).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, route, status) in
        [(&lines[0], "route=\"/plaintext\"", "status=200"), (&lines[1], "route=\"/api/users/{id}\"", "status=401")]
    {
        assert!(line.contains("method=\"GET\""), "{line}");
        assert!(line.contains(route), "{line}");
        assert!(line.contains(status), "{line}");
        assert!(line.contains("duration_us="), "{line}");
    }
}

/// A panicking handler answers 500 for its request; the connection and the server live on.
/// Both places a handler can panic: while its request is planned, and inside its boxed future
/// after an await.
#[test]
fn a_panicking_handler_costs_only_its_own_request() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    for path in ["/__test/panic", "/__test/panic?after_ms=20", "/__test/panic", "/__test/panic?after_ms=0"] {
        let res = conn.request("GET", path);
        assert_eq!(res.status, 500);
        res.assert_standard_headers();
        assert_eq!(res.json()["detail"], "An internal error occurred.");
        assert!(!res.text().contains("deliberate"), "the panic message is not sent");
        // Same connection, next request.
        assert_eq!(conn.request("GET", "/plaintext").text(), "Hello, World!");
    }
    assert_eq!(server.get("/db").status, 200);
}

/// A handler past the request timeout answers 503 with Retry-After, on time.
#[test]
fn slow_handlers_answer_503_at_the_request_timeout() {
    let server = Server::start(&["--request-timeout-ms", "300"]);
    let mut conn = server.connect();
    let started = Instant::now();
    let res = conn.request("GET", "/__test/sleep?ms=5000");
    let took = started.elapsed();
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.header("retry-after"), Some("1"));
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(conn.request("GET", "/__test/sleep?ms=10").status, 200);
    // The connection reuses its timeout's sleep (src/sleeps.rs): a later request gets the whole
    // timeout again, whether the kept sleep's old deadline has passed meanwhile or not.
    for pause in [Duration::ZERO, Duration::from_millis(400)] {
        std::thread::sleep(pause);
        let started = Instant::now();
        let res = conn.request("GET", "/__test/sleep?ms=5000");
        let took = started.elapsed();
        assert_eq!(res.status, 503, "{}", res.text());
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "after {pause:?}: {took:?}");
        assert_eq!(conn.request("GET", "/__test/sleep?ms=10").status, 200);
    }
}

/// A client that goes away while its request is being answered leaves the in-flight gauge as
/// it found it: the request is counted while it runs, and when the client leaves, hyper drops
/// the request's future and the gauge follows at once, long before the handler would have
/// finished.
#[test]
fn abandoned_requests_leave_the_in_flight_gauge() {
    let server = Server::start(&[]);
    // Every reading is taken by a /metrics request, which counts itself.
    let gauge = || sample(&samples(server.get("/metrics").text()), "bareapi_http_requests_in_flight");
    assert_eq!(gauge(), Some(1.0), "only the scrape is in flight at first");
    let mut conn = server.connect();
    conn.send_raw(b"GET /__test/sleep?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let sent = Instant::now();
    while gauge() != Some(2.0) && sent.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gauge(), Some(2.0), "the sleeping request is counted while it runs");
    assert!(!conn.answered_within(Duration::from_millis(200)), "the sleeping request was answered early");
    drop(conn);
    let dropped = Instant::now();
    while gauge() != Some(1.0) && dropped.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        gauge(),
        Some(1.0),
        "the abandoned request is still counted {:?} after the client left",
        dropped.elapsed()
    );
    assert!(sent.elapsed() < Duration::from_secs(8), "the gauge fell only when the handler would have finished anyway");
}

/// Pipelined row reads go out in rounds bounded by the statement budget: many concurrent
/// /queries?queries=500 on one worker (3 000 statements, more than its budget lets out at
/// once) all get their 500 rows, and once they are answered or abandoned the budget's gauge is
/// back at zero.
#[test]
fn the_statement_budget_serves_every_row_and_comes_back_whole() {
    let server = Server::start(&["--workers", "1"]);
    let in_flight = || -> f64 {
        samples(server.get("/metrics").text())
            .iter()
            .filter(|(s, _)| s.starts_with("bareapi_db_statements_in_flight{"))
            .map(|(_, v)| *v)
            .sum()
    };
    assert_eq!(in_flight(), 0.0);
    let addr = server.addr;
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(move || {
                let mut conn = Conn::new(addr);
                for _ in 0..3 {
                    let res = conn.request("GET", "/queries?queries=500");
                    assert_eq!(res.status, 200, "{}", res.text());
                    assert_eq!(res.json().as_array().map(Vec::len), Some(500));
                }
            });
        }
        for _ in 0..4 {
            scope.spawn(move || {
                // Abandoned mid-request: its statements' places must come back too.
                let mut conn = Conn::new(addr);
                conn.send_raw(b"GET /queries?queries=500 HTTP/1.1\r\nHost: t\r\n\r\n");
                std::thread::sleep(Duration::from_millis(2));
                drop(conn);
            });
        }
    });
    common::eventually(Duration::from_secs(5), || in_flight() == 0.0);
    assert_eq!(in_flight(), 0.0, "every permit is given back");
}

/// The configuration logged at start names the database without its password, in each form
/// tokio-postgres accepts: in the URL's user part, as `?password=`, and as `key=value`.
#[test]
fn the_start_up_log_never_shows_the_database_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for url in [
        format!("postgres://someone:s3cr3t-pw@127.0.0.1:{port}/bareapi"),
        format!("postgres://someone@127.0.0.1:{port}/bareapi?password=s3cr3t-pw"),
        format!("host=127.0.0.1 port={port} user=someone password=s3cr3t-pw dbname=bareapi"),
    ] {
        // No database listens there; without migrations the server starts anyway.
        let server = Server::start_with_db(&["--no-migrate"], &url);
        assert_eq!(server.get("/healthz").status, 200);
        let logs = [server.start_up.clone(), server.drain_logs()].concat().join("\n");
        let config =
            logs.lines().find(|l| l.contains("starting")).unwrap_or_else(|| panic!("no start-up line: {logs}"));
        assert!(config.contains("user=someone") && config.contains(&format!("port={port}")), "{config}");
        assert!(config.contains("password=(set, not shown)"), "{config}");
        assert!(!logs.contains("s3cr3t"), "{url}: the password reached the log: {logs}");
    }
}

/// With `--metrics-listen`, `/metrics` moves to its own listener (with `/healthz`): the public
/// port answers 404 for it, and the metrics listener serves nothing else.
#[test]
fn metrics_listen_moves_metrics_off_the_public_port() {
    let server = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    let line = server.start_up.iter().find(|l| l.contains("metrics_addr=")).expect("metrics listener logged");
    let addr: std::net::SocketAddr =
        line.split("metrics_addr=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert_ne!(addr, server.addr);
    assert_eq!(server.get("/plaintext").status, 200);
    let public = server.get("/metrics");
    assert_eq!(public.status, 404, "{}", public.text());
    assert_eq!(server.get("/healthz").status, 200, "liveness stays on the public port too");
    assert_eq!(server.get("/readyz").status, 200);

    let mut ops = Conn::new(addr);
    let res = ops.request("GET", "/metrics");
    assert_eq!(res.status, 200);
    res.assert_standard_headers();
    let text = res.text().to_owned();
    let plaintext = samples(&text)
        .into_iter()
        .find(|(s, _)| s.starts_with("bareapi_http_requests_total{") && s.contains("route=\"/plaintext\""))
        .map(|(_, v)| v);
    assert_eq!(plaintext, Some(1.0), "the public port's requests are counted: {text}");
    assert_eq!(ops.request("GET", "/healthz").status, 200);
    for (method, path, status) in [("GET", "/readyz", 404), ("GET", "/plaintext", 404), ("POST", "/metrics", 405)] {
        let res = ops.request(method, path);
        assert_eq!(res.status, status, "{method} {path}: {}", res.text());
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
    }
    assert_eq!(ops.request("POST", "/metrics").header("allow"), Some("GET, HEAD"));
}
