//! The users API's abuse limits over real HTTP against the real binary and database (issue #17,
//! "Abuse resistance"): failed logins per email, logins and signups per client address (and
//! which address that is behind a trusted proxy), the bounded password-hashing queue, and the
//! current password that deleting an account needs.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::users::{JSON, PASSWORD, create_user, login, post_json, token_for, unique_email};
use common::{Conn, Response, Server};
use serde_json::json;

/// A problem answer with `status`; its `detail`.
fn problem(res: &Response, status: u16) -> String {
    assert_eq!(res.status, status, "{}", res.text());
    res.assert_standard_headers();
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body = res.json();
    assert_eq!(body["status"], status);
    body["detail"].as_str().unwrap().to_owned()
}

/// A 429 or 503 with a `Retry-After` of whole seconds within `1..=max`; its value and detail.
fn refused(res: &Response, status: u16, max: u64) -> (u64, String) {
    let detail = problem(res, status);
    let after: u64 = res.header("retry-after").expect("Retry-After").parse().expect("Retry-After in seconds");
    assert!((1..=max).contains(&after), "Retry-After {after} not within 1..={max}");
    (after, detail)
}

/// A value in `/metrics`: the line starting with `series ` (a name, or a name and labels).
fn metric(conn: &mut Conn, series: &str) -> i64 {
    let res = conn.request("GET", "/metrics");
    assert_eq!(res.status, 200);
    let prefix = format!("{series} ");
    let text = res.text();
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in /metrics"));
    line[prefix.len()..].parse().unwrap()
}

fn signup(conn: &mut Conn, headers: &[(&str, &str)]) -> Response {
    let body = json!({"email": unique_email("signup"), "password": PASSWORD}).to_string();
    let mut all = vec![JSON];
    all.extend_from_slice(headers);
    conn.send("POST", "/api/users", &all, Some(body.as_bytes()))
}

/// Log lines the server printed so far that contain `needle`.
fn logged(server: &Server, seen: &mut Vec<String>, needle: &str) -> usize {
    std::thread::sleep(Duration::from_millis(200));
    seen.extend(server.drain_logs());
    seen.iter().filter(|l| l.contains(needle)).count()
}

/// After `--login-failures-max` failed logins for one email, its logins answer 429 with
/// `Retry-After`, the right password included, without hashing anything; an email no account
/// has gets exactly the same; a success before the limit starts the count again.
#[test]
fn failed_logins_for_one_email_are_throttled_whether_or_not_it_exists() {
    let server = Server::start(&["--login-failures-max", "3", "--login-failures-window-secs", "60"]);
    let mut conn = server.connect();
    let real = unique_email("victim");
    create_user(&mut conn, &real);
    let ghost = unique_email("nobody");
    let mut details = Vec::new();
    for email in [&real, &ghost] {
        for _ in 0..3 {
            problem(&login(&mut conn, email, "wrong password!"), 401);
        }
        let hashes = metric(&mut conn, "bareapi_password_hashes_total");
        let (after, detail) = refused(&login(&mut conn, email, "wrong password!"), 429, 60);
        assert!(after > 50, "the window started moments ago: {after}");
        // Any spelling of the email, and the right password, are refused the same way.
        refused(&login(&mut conn, &email.to_uppercase(), PASSWORD), 429, 60);
        for _ in 0..5 {
            refused(&login(&mut conn, email, PASSWORD), 429, 60);
        }
        assert_eq!(metric(&mut conn, "bareapi_password_hashes_total"), hashes, "a throttled login hashes nothing");
        details.push(detail);
    }
    assert_eq!(details[0], details[1], "an email with no account is throttled alike");
    // Other emails are not affected.
    let other = unique_email("other");
    create_user(&mut conn, &other);
    assert_eq!(login(&mut conn, &other, PASSWORD).status, 201);
    assert!(metric(&mut conn, "bareapi_throttled_requests_total{reason=\"login_failures\"}") >= 14);
    // A success resets the count: two failures, a success, then three failures are allowed.
    let person = unique_email("typo");
    create_user(&mut conn, &person);
    for _ in 0..2 {
        problem(&login(&mut conn, &person, "wrong password!"), 401);
    }
    assert_eq!(login(&mut conn, &person, PASSWORD).status, 201);
    for _ in 0..3 {
        problem(&login(&mut conn, &person, "wrong password!"), 401);
    }
    refused(&login(&mut conn, &person, PASSWORD), 429, 60);
}

/// Logins and signups from one client address past their burst answer 429 with `Retry-After`
/// (before the body is even read), one log line per address per window; other limits and
/// other routes are unaffected.
#[test]
fn logins_and_signups_are_rate_limited_per_client_address() {
    let server = Server::start(&[
        "--login-rate-per-minute",
        "1",
        "--login-burst",
        "3",
        "--signup-rate-per-minute",
        "1",
        "--signup-burst",
        "2",
    ]);
    let mut conn = server.connect();
    let mut logs = Vec::new();
    assert_eq!(signup(&mut conn, &[]).status, 201);
    assert_eq!(signup(&mut conn, &[]).status, 201);
    let (after, detail) = refused(&signup(&mut conn, &[]), 429, 60);
    assert!(after > 30, "one signup a minute: {after}");
    assert!(detail.contains("signups"), "{detail}");
    // Refused before its body is read: a bad body gets the same 429, not a 400.
    let res = conn.send("POST", "/api/users", &[JSON], Some(b"{not json"));
    refused(&res, 429, 60);

    // Logins have their own bucket.
    let email = unique_email("rate");
    let res = post_json(&mut conn, "/api/sessions", &json!({"email": email, "password": PASSWORD}));
    problem(&res, 401);
    problem(&login(&mut conn, &email, PASSWORD), 401);
    problem(&login(&mut conn, &email, PASSWORD), 401);
    let (_, detail) = refused(&login(&mut conn, &email, PASSWORD), 429, 60);
    assert!(detail.contains("logins"), "{detail}");
    refused(&login(&mut conn, &email, PASSWORD), 429, 60);
    refused(&login(&mut conn, &email, PASSWORD), 429, 60);
    assert!(metric(&mut conn, "bareapi_throttled_requests_total{reason=\"login_rate\"}") >= 3);
    assert!(metric(&mut conn, "bareapi_throttled_requests_total{reason=\"signup_rate\"}") >= 2);
    assert_eq!(metric(&mut conn, "bareapi_throttled_requests_total{reason=\"login_failures\"}"), 0);
    // One line per throttled address per window, however many requests it refused.
    assert_eq!(logged(&server, &mut logs, "limit=\"login_rate\""), 1, "{logs:#?}");
    assert_eq!(logged(&server, &mut logs, "limit=\"signup_rate\""), 1, "{logs:#?}");
    // Reads are not limited.
    assert_eq!(conn.request("GET", "/healthz").status, 200);
}

/// `X-Forwarded-For` names the client only when the peer is a trusted proxy, read right to
/// left: a client's own left-most entry is ignored; without `--trusted-proxies` every request
/// from the proxy is the proxy's.
#[test]
fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let limits = ["--signup-rate-per-minute", "1", "--signup-burst", "1"];
    let mut args = limits.to_vec();
    args.extend(["--trusted-proxies", "10.0.0.0/8,127.0.0.1"]);
    let server = Server::start(&args);
    let mut conn = server.connect();
    let xff = |v: &'static str| [("X-Forwarded-For", v)];
    assert_eq!(signup(&mut conn, &xff("203.0.113.1")).status, 201);
    refused(&signup(&mut conn, &xff("203.0.113.1")), 429, 60);
    // Another client behind the same proxy has its own bucket, through a chain of trusted proxies.
    assert_eq!(signup(&mut conn, &xff("203.0.113.2, 10.1.2.3")).status, 201);
    refused(&signup(&mut conn, &xff("203.0.113.2")), 429, 60);
    // A client cannot escape its bucket by writing another address in front of its own.
    refused(&signup(&mut conn, &xff("198.51.100.77, 203.0.113.1")), 429, 60);
    // Forwarded (RFC 7239) is not what this proxy writes: ignored, the proxy is the client.
    assert_eq!(signup(&mut conn, &[("Forwarded", "for=203.0.113.3")]).status, 201);
    refused(&signup(&mut conn, &[("Forwarded", "for=203.0.113.4")]), 429, 60);
    drop(server);

    // The same requests to a server that trusts no proxy: every one is 127.0.0.1's.
    let server = Server::start(&limits);
    let mut conn = server.connect();
    assert_eq!(signup(&mut conn, &xff("203.0.113.1")).status, 201);
    refused(&signup(&mut conn, &xff("203.0.113.2")), 429, 60);

    // With --forwarded-header forwarded, RFC 7239's header is read instead.
    let mut args = limits.to_vec();
    args.extend(["--trusted-proxies", "127.0.0.0/8", "--forwarded-header", "forwarded"]);
    let server = Server::start(&args);
    let mut conn = server.connect();
    let fwd = |v: &'static str| [("Forwarded", v)];
    assert_eq!(signup(&mut conn, &fwd("for=\"[2001:db8::1]:4711\";proto=https")).status, 201);
    refused(&signup(&mut conn, &fwd("for=\"[2001:db8::ffff]\"")), 429, 60); // the same /64
    assert_eq!(signup(&mut conn, &fwd("for=6.6.6.6, for=203.0.113.5")).status, 201);
    refused(&signup(&mut conn, &fwd("for=203.0.113.5")), 429, 60);
    assert_eq!(signup(&mut conn, &xff("203.0.113.6")).status, 201, "the peer's own bucket");
}

/// A malformed `--trusted-proxies` is refused at start with a message naming it.
#[test]
fn malformed_trusted_proxies_are_refused_at_start() {
    for bad in ["10.0.0.0/33", "10.0.0.1/8", "proxy.example.com", "10.0.0.0/8,,"] {
        let (status, out) = common::run_to_exit(&["--trusted-proxies", bad], &common::database_url());
        assert!(!status.success(), "{bad}: {out}");
        assert!(out.contains("--trusted-proxies"), "{bad}: {out}");
    }
}

/// With every hashing slot busy and the queue full, logins and signups answer 503 with
/// `Retry-After` at once instead of waiting; an attempt refused that way does not count as a
/// failed login; the queue depth is a gauge.
#[test]
fn a_full_hashing_queue_answers_503_at_once() {
    // Four of each round's logins are for `email`, counted as they start: a limit above that.
    let server = Server::start(&["--hash-concurrency", "1", "--hash-queue", "1", "--login-failures-max", "5"]);
    let mut conn = server.connect();
    assert_eq!(metric(&mut conn, "bareapi_password_hash_queue_depth"), 0);
    assert_eq!(metric(&mut conn, "bareapi_password_hash_queue_bound"), 1);
    assert_eq!(metric(&mut conn, "bareapi_password_hash_permits"), 1);
    let email = unique_email("busy");
    create_user(&mut conn, &email);
    let clients = 12;
    let mut busy: i64 = 0;
    for _round in 0..20 {
        let barrier = Arc::new(Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, addr) = (Arc::clone(&barrier), server.addr);
                let email = if i % 2 == 0 { unique_email("nobody") } else { email.clone() };
                std::thread::spawn(move || {
                    let mut conn = Conn::new(addr);
                    barrier.wait();
                    let started = Instant::now();
                    let res = if i % 3 == 0 { signup(&mut conn, &[]) } else { login(&mut conn, &email, PASSWORD) };
                    (res, started.elapsed())
                })
            })
            .collect();
        let answers: Vec<(Response, Duration)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let slowest_hash = answers.iter().filter(|(r, _)| r.status != 503).map(|(_, d)| *d).max().unwrap();
        for (res, took) in &answers {
            match res.status {
                // Logins for the email no account has answer 401.
                201 | 401 => {}
                503 => {
                    let (_, detail) = refused(res, 503, 1);
                    assert!(detail.contains("password"), "{detail}");
                    assert!(*took <= slowest_hash, "a refusal waits for no hash: {took:?} > {slowest_hash:?}");
                    busy += 1;
                }
                _ => panic!("{}: {}", res.status, res.text()),
            }
        }
        if busy >= clients as i64 {
            break;
        }
    }
    assert!(busy > 0, "no request found the queue full");
    assert!(metric(&mut conn, "bareapi_throttled_requests_total{reason=\"hash_queue_full\"}") >= busy);
    assert_eq!(metric(&mut conn, "bareapi_password_hash_queue_depth"), 0);
    // Logins refused as busy never checked a password: they do not count against the account.
    for _ in 0..4 {
        problem(&login(&mut conn, &email, "wrong password!"), 401);
    }
    assert_eq!(login(&mut conn, &email, PASSWORD).status, 201);
}

/// Deleting an account needs its current password: 400 without it, 403 when wrong (the
/// account stays), 204 with it; a stolen token alone cannot delete the account.
#[test]
fn deleting_an_account_needs_its_current_password() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("delete");
    let id = create_user(&mut conn, &email);
    let auth = format!("Bearer {}", token_for(&mut conn, &email));
    let path = format!("/api/users/{id}");
    let with_token = [JSON, ("Authorization", auth.as_str())];
    let fields = |res: &Response| -> Vec<String> {
        res.json()["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    };

    let res = conn.send("DELETE", &path, &with_token[1..], None);
    problem(&res, 400);
    assert_eq!(fields(&res), ["current_password"]);
    let res = conn.send("DELETE", &path, &with_token, Some(b"{}"));
    problem(&res, 400);
    assert_eq!(fields(&res), ["current_password"]);
    let res = conn.send("DELETE", &path, &with_token, Some(br#"{"current_password": 5, "x": 1}"#));
    problem(&res, 400);
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", auth.as_str())];
    problem(&conn.send("DELETE", &path, &form, Some(b"current_password=x")), 415);
    let wrong = json!({"current_password": "not my password"}).to_string();
    problem(&conn.send("DELETE", &path, &with_token, Some(wrong.as_bytes())), 403);
    // Without a token the password alone does nothing either.
    let right = json!({"current_password": PASSWORD}).to_string();
    problem(&conn.send("DELETE", &path, &[JSON], Some(right.as_bytes())), 401);

    // Still there.
    assert_eq!(conn.send("GET", &path, &with_token[1..], None).status, 200);
    assert_eq!(login(&mut conn, &email, PASSWORD).status, 201);

    let res = conn.send("DELETE", &path, &with_token, Some(right.as_bytes()));
    assert_eq!(res.status, 204, "{}", res.text());
    problem(&login(&mut conn, &email, PASSWORD), 401);
}

/// A wrong current password (DELETE, or PATCH of credentials) counts as a failed login of the
/// account's email, so a stolen token cannot guess the password faster than logins can.
#[test]
fn wrong_current_passwords_count_as_failed_logins() {
    let server = Server::start(&["--login-failures-max", "2", "--login-failures-window-secs", "60"]);
    let mut conn = server.connect();
    let email = unique_email("guess");
    let id = create_user(&mut conn, &email);
    let auth = format!("Bearer {}", token_for(&mut conn, &email));
    let path = format!("/api/users/{id}");
    let h = [JSON, ("Authorization", auth.as_str())];
    let wrong = json!({"current_password": "guess number one"}).to_string();
    problem(&conn.send("DELETE", &path, &h, Some(wrong.as_bytes())), 403);
    let patch = json!({"password": "a new password", "current_password": "guess number two"}).to_string();
    problem(&conn.send("PATCH", &path, &h, Some(patch.as_bytes())), 403);
    let hashes = metric(&mut conn, "bareapi_password_hashes_total");
    let right = json!({"current_password": PASSWORD}).to_string();
    refused(&conn.send("DELETE", &path, &h, Some(right.as_bytes())), 429, 60);
    refused(&login(&mut conn, &email, PASSWORD), 429, 60);
    assert_eq!(metric(&mut conn, "bareapi_password_hashes_total"), hashes);
    assert_eq!(conn.send("GET", &path, &h[1..], None).status, 200, "not deleted");
}

/// A refused login is held for `--refusal-delay-ms` before its 429 is written (a client retrying
/// at once is slowed to one attempt per connection per delay), while other requests, on other
/// connections, are answered meanwhile; a login that is not refused is not held.
#[test]
fn refusals_are_held_for_the_refusal_delay() {
    let delay = Duration::from_millis(600);
    let server = Server::start(&[
        "--login-failures-max",
        "1",
        "--login-failures-window-secs",
        "60",
        "--refusal-delay-ms",
        "600",
    ]);
    let mut conn = server.connect();
    let email = unique_email("held");
    create_user(&mut conn, &email);
    problem(&login(&mut conn, &email, "wrong password!"), 401);
    let addr = server.addr;
    let held = std::thread::spawn(move || {
        let started = Instant::now();
        let res = login(&mut Conn::new(addr), &email, PASSWORD);
        (res, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    // The worker is free while the refusal waits.
    let mut other = server.connect();
    other.set_read_timeout(Duration::from_millis(400));
    assert_eq!(other.request("GET", "/healthz").status, 200, "answered while a refusal is held");
    let (res, took) = held.join().unwrap();
    refused(&res, 429, 60);
    assert!(took >= delay, "the 429 came after {took:?}, before the {delay:?} delay");
}

/// The password-hashing threads run at `--hash-nice`: a login flood takes only the CPU that
/// serving requests leaves.
#[test]
fn password_hashes_run_at_the_configured_niceness() {
    let server = Server::start(&["--hash-nice", "7", "--hash-concurrency", "2"]);
    let mut conn = server.connect();
    let email = unique_email("nice");
    create_user(&mut conn, &email);
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Field 19 is the niceness; fields are counted after the ")" that ends the name.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap();
        found.push((comm.trim().to_owned(), fields[16].to_owned()));
    }
    let hashing: Vec<_> = found.iter().filter(|(comm, _)| comm.starts_with("bareapi-hash")).collect();
    assert_eq!(hashing.len(), 2, "one thread per hashing slot: {found:?}");
    assert!(hashing.iter().all(|(_, nice)| nice == "7"), "{found:?}");
    assert!(
        found.iter().filter(|(comm, _)| !comm.starts_with("bareapi-hash")).all(|(_, nice)| nice == "0"),
        "{found:?}"
    );
}
