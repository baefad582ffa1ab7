//! The users API over real HTTP against the real binary and database: every route's happy
//! path, the bad-input rows of the error contract, and what the API withholds and bounds (who
//! sees an email, what a change needs, how much work a request can cause; issue #17).

mod common;

use std::io::Read;

use common::users::{JSON, PASSWORD, create_user, login, post_json, token_for, unique_email};
use common::{Conn, Response, Server};
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get_auth(conn: &mut Conn, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
    let auth = bearer(token);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    conn.send("GET", path, &headers, None)
}

/// A problem answer with `status`; returns the field names it lists.
fn problem(res: &Response, status: u16) -> Vec<String> {
    assert_eq!(res.status, status, "{}", res.text());
    res.assert_standard_headers();
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body = res.json();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn assert_user_shape(v: &Value) {
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "email", "id", "name", "updated_at"], "{v}");
}

/// Creating a user answers 201 with Location and the user, email lower-cased, no hash.
#[test]
fn create_user_answers_201_with_location_and_no_secret() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("create");
    let res = post_json(&mut conn, "/api/users", &json!({"email": email, "password": PASSWORD, "name": "Ann"}));
    assert_eq!(res.status, 201, "{}", res.text());
    res.assert_standard_headers();
    let user = res.json();
    assert_user_shape(&user);
    let id = user["id"].as_i64().unwrap();
    assert_eq!(res.header("location"), Some(format!("/api/users/{id}").as_str()));
    assert_eq!(user["email"], email.to_lowercase());
    assert_eq!(user["name"], "Ann");
    assert!(!res.text().contains("argon2") && !res.text().contains("password"), "{}", res.text());
    // name is optional.
    let res = post_json(&mut conn, "/api/users", &json!({"email": unique_email("noname"), "password": PASSWORD}));
    assert_eq!(res.status, 201);
    assert_eq!(res.json()["name"], "");
}

/// The same email in another case is a conflict.
#[test]
fn duplicate_email_is_409_whatever_the_case() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("dup");
    create_user(&mut conn, &email);
    let res = post_json(&mut conn, "/api/users", &json!({"email": email.to_uppercase(), "password": PASSWORD}));
    problem(&res, 409);
}

/// Malformed JSON, wrong types, missing and unknown fields and failed rules are all 400s that
/// name the fields, all of them in one answer.
#[test]
fn bad_bodies_get_400_naming_every_field() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let send = |conn: &mut Conn, body: &str| conn.send("POST", "/api/users", &[JSON], Some(body.as_bytes()));

    for malformed in ["{", "{\"email\":}", "[1]", "\"text\"", "", "null", "{\"email\":\"a@b.c\"} trailing"] {
        let res = send(&mut conn, malformed);
        problem(&res, 400);
    }
    let res = send(&mut conn, r#"{"email": 5, "password": true}"#);
    assert_eq!(problem(&res, 400), ["email", "password"]);
    let res = send(&mut conn, "{}");
    assert_eq!(problem(&res, 400), ["email", "password"]);
    let res = send(&mut conn, &json!({"email": unique_email("u"), "password": PASSWORD, "admin": true}).to_string());
    assert_eq!(problem(&res, 400), ["admin"]);
    let long_name = "n".repeat(101);
    let res = send(&mut conn, &json!({"email": "not-an-email", "password": "short", "name": long_name}).to_string());
    let fields = problem(&res, 400);
    assert_eq!(fields, ["email", "password", "name"]);
    let long_email = format!("{}@example.com", "a".repeat(250));
    let res = send(&mut conn, &json!({"email": long_email, "password": PASSWORD}).to_string());
    assert_eq!(problem(&res, 400), ["email"]);
    let res = send(&mut conn, &json!({"email": unique_email("p"), "password": "x".repeat(129)}).to_string());
    assert_eq!(problem(&res, 400), ["password"]);
    // Past simd-json's depth limit (1024), within the users API's body limit.
    let deep = format!("{{\"email\":{}{}}}", "[".repeat(2_000), "]".repeat(2_000));
    problem(&send(&mut conn, &deep), 400);
}

/// JSON routes refuse other content types with 415.
#[test]
fn wrong_content_type_is_415() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let body = json!({"email": unique_email("ct"), "password": PASSWORD}).to_string();
    for headers in
        [&[("Content-Type", "text/plain")][..], &[("Content-Type", "application/x-www-form-urlencoded")], &[]]
    {
        let res = conn.send("POST", "/api/users", headers, Some(body.as_bytes()));
        problem(&res, 415);
    }
    let res =
        conn.send("POST", "/api/users", &[("Content-Type", "application/json; charset=utf-8")], Some(body.as_bytes()));
    assert_eq!(res.status, 201);
}

/// A body over the limit is refused with 413, by Content-Length or while reading a chunked one.
#[test]
fn oversized_body_is_413() {
    let server = Server::start(&["--max-body-bytes", "1024"]);
    let mut conn = server.connect();
    let big = json!({"email": unique_email("big"), "password": PASSWORD, "name": "x".repeat(2000)}).to_string();
    problem(&conn.send("POST", "/api/users", &[JSON], Some(big.as_bytes())), 413);

    // Chunked: no Content-Length to look at; the limit applies while reading.
    let mut conn = server.connect();
    let chunk = "y".repeat(600);
    let raw = format!(
        "POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    conn.send_raw(raw.as_bytes());
    problem(&conn.read_response(false), 413);

    // Under the limit still works.
    let mut conn = server.connect();
    let ok = json!({"email": unique_email("small"), "password": PASSWORD}).to_string();
    assert_eq!(conn.send("POST", "/api/users", &[JSON], Some(ok.as_bytes())).status, 201);
}

/// Login answers a token; a wrong password and an unknown email get the very same 401.
#[test]
fn login_gives_a_token_and_failures_look_alike() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("login");
    create_user(&mut conn, &email);
    let res = login(&mut conn, &email.to_uppercase(), PASSWORD);
    assert_eq!(res.status, 201, "{}", res.text());
    // The answer holds a credential: no cache may keep it (issue #17, finding 4).
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    assert_eq!(body["token"].as_str().unwrap().len(), 43);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    let wrong = login(&mut conn, &email, "wrong password!");
    let unknown = login(&mut conn, &unique_email("nobody"), PASSWORD);
    problem(&wrong, 401);
    problem(&unknown, 401);
    assert_eq!(wrong.body, unknown.body);
    let nul = login(&mut conn, "a\u{0}b@example.com", PASSWORD);
    problem(&nul, 401);
    assert_eq!(nul.body, unknown.body);
    let res = post_json(&mut conn, "/api/sessions", &json!({"email": email}));
    assert_eq!(problem(&res, 400), ["password"]);
}

/// Reading a user needs a valid token; bad ids and unknown users are 400 and 404.
#[test]
fn reading_users_needs_a_valid_token() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("read");
    let id = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let path = format!("/api/users/{id}");

    let res = get_auth(&mut conn, &path, &token, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_user_shape(&res.json());
    assert!(res.header("etag").unwrap().starts_with('"'));
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));

    let res = conn.request("GET", &path);
    problem(&res, 401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let res = get_auth(&mut conn, &path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &[]);
    problem(&res, 401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer error=\"invalid_token\""));
    problem(&get_auth(&mut conn, &path, "garbage", &[]), 401);
    assert_eq!(problem(&get_auth(&mut conn, "/api/users/abc", &token, &[]), 400), ["id"]);
    assert_eq!(problem(&get_auth(&mut conn, "/api/users/0", &token, &[]), 400), ["id"]);
    problem(&get_auth(&mut conn, "/api/users/999999999", &token, &[]), 404);
}

/// A matching If-None-Match answers 304 without a body; after a change the old tag no longer
/// matches.
#[test]
fn conditional_get_answers_304_until_the_user_changes() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("etag");
    let id = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let path = format!("/api/users/{id}");
    let first = get_auth(&mut conn, &path, &token, &[]);
    let etag = first.header("etag").unwrap().to_owned();

    let res = get_auth(&mut conn, &path, &token, &[("If-None-Match", &etag)]);
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    let weak = format!("\"other\", W/{etag}");
    assert_eq!(get_auth(&mut conn, &path, &token, &[("If-None-Match", &weak)]).status, 304);
    assert_eq!(get_auth(&mut conn, &path, &token, &[("If-None-Match", "\"nope\"")]).status, 200);

    let auth = bearer(&token);
    let res = conn.send("PATCH", &path, &[JSON, ("Authorization", &auth)], Some(br#"{"name":"Renamed"}"#));
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["name"], "Renamed");
    let res = get_auth(&mut conn, &path, &token, &[("If-None-Match", &etag)]);
    assert_eq!(res.status, 200);
    assert_ne!(res.header("etag"), Some(etag.as_str()));
}

/// Users change and delete only themselves; bad changes are 400 and taken emails 409; a new
/// password replaces the old one.
#[test]
fn users_change_only_themselves() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let (a_email, b_email) = (unique_email("a"), unique_email("b"));
    let a = create_user(&mut conn, &a_email);
    let b = create_user(&mut conn, &b_email);
    let token_a = token_for(&mut conn, &a_email);
    let auth_a = bearer(&token_a);
    let h = [JSON, ("Authorization", auth_a.as_str())];

    problem(&conn.send("PATCH", &format!("/api/users/{b}"), &h, Some(br#"{"name":"x"}"#)), 403);
    problem(&conn.send("DELETE", &format!("/api/users/{b}"), &h[1..], None), 403);
    problem(&conn.send("PATCH", &format!("/api/users/{a}"), &[JSON], Some(br#"{"name":"x"}"#)), 401);

    let mine = format!("/api/users/{a}");
    assert_eq!(problem(&conn.send("PATCH", &mine, &h, Some(br#"{"name":5,"x":1}"#)), 400), ["x", "name"]);
    assert_eq!(problem(&conn.send("PATCH", &mine, &h, Some(b"{}")), 400), ["body"]);
    problem(&conn.send("PATCH", &mine, &[("Authorization", auth_a.as_str())], Some(b"{}")), 415);
    let taken = json!({"email": b_email, "current_password": PASSWORD}).to_string();
    problem(&conn.send("PATCH", &mine, &h, Some(taken.as_bytes())), 409);

    let change = json!({"password": "a brand new secret", "current_password": PASSWORD}).to_string();
    let res = conn.send("PATCH", &mine, &h, Some(change.as_bytes()));
    assert_eq!(res.status, 200, "{}", res.text());
    problem(&login(&mut conn, &a_email, PASSWORD), 401);
    assert_eq!(login(&mut conn, &a_email, "a brand new secret").status, 201);

    let confirm = json!({"current_password": "a brand new secret"}).to_string();
    let res = conn.send("DELETE", &mine, &h, Some(confirm.as_bytes()));
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());
    // The account's sessions went with it.
    problem(&get_auth(&mut conn, &format!("/api/users/{b}"), &token_a, &[]), 401);
    let token_b = token_for(&mut conn, &b_email);
    problem(&get_auth(&mut conn, &mine, &token_b, &[]), 404);
}

/// Logging out revokes the token; an expired token is refused.
#[test]
fn revoked_and_expired_tokens_are_refused() {
    let server = Server::start(&["--session-ttl-secs", "1"]);
    let mut conn = server.connect();
    let email = unique_email("logout");
    let id = create_user(&mut conn, &email);
    let path = format!("/api/users/{id}");

    let token = token_for(&mut conn, &email);
    assert_eq!(get_auth(&mut conn, &path, &token, &[]).status, 200);
    let auth = bearer(&token);
    let res = conn.send("DELETE", "/api/sessions/current", &[("Authorization", &auth)], None);
    assert_eq!(res.status, 204);
    problem(&get_auth(&mut conn, &path, &token, &[]), 401);
    problem(&conn.send("DELETE", "/api/sessions/current", &[("Authorization", &auth)], None), 401);
    problem(&conn.send("DELETE", "/api/sessions/current", &[], None), 401);

    let token = token_for(&mut conn, &email);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    problem(&get_auth(&mut conn, &path, &token, &[]), 401);
}

/// A batch read keeps the order asked, skips unknown ids, and refuses 0, 101 and
/// non-numeric ids.
#[test]
fn batch_reads_keep_order_and_are_bounded() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("batch");
    let first = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let ids: Vec<i64> =
        std::iter::once(first).chain((0..4).map(|_| create_user(&mut conn, &unique_email("bm")))).collect();
    let asked = [ids[3], 999_999_999, ids[0], ids[4], ids[1], ids[3]];
    let query: Vec<String> = asked.iter().map(|i| i.to_string()).collect();
    let res = get_auth(&mut conn, &format!("/api/users?ids={}", query.join(",")), &token, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.header("etag").is_some());
    let got: Vec<i64> = res.json()["items"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![ids[3], ids[0], ids[4], ids[1]]);

    let hundred_one: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    for bad in ["", "abc", "1,x", "0", "-1", "1,,2", &hundred_one.join(",")] {
        let res = get_auth(&mut conn, &format!("/api/users?ids={bad}"), &token, &[]);
        assert_eq!(problem(&res, 400), ["ids"], "{bad}");
    }
    problem(&conn.request("GET", &format!("/api/users?ids={first}")), 401);
}

/// Keyset pagination walks every user once, in id order, and refuses bad limits and cursors.
#[test]
fn pagination_walks_all_users_in_order() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("page");
    let mut created = vec![create_user(&mut conn, &email)];
    let token = token_for(&mut conn, &email);
    for _ in 0..6 {
        created.push(create_user(&mut conn, &unique_email("pg")));
    }
    // Other tests add and delete users meanwhile: every user present both before and after the
    // walk must be seen, and once.
    let db = common::db_client();
    let ids = || -> std::collections::BTreeSet<i64> {
        db.query("SELECT id FROM users", &[]).iter().map(|r| r.get(0)).collect()
    };
    let before = ids();
    let mut seen = Vec::new();
    let mut after = String::from("0");
    let mut pages = 0;
    loop {
        let res = get_auth(&mut conn, &format!("/api/users?limit=2&after={after}"), &token, &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|u| u["id"].as_i64().unwrap()));
        pages += 1;
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), 2, "a page before the last is full");
                after = next.to_owned();
            }
            None => break,
        }
        assert!(pages < 100_000);
    }
    let after_walk = ids();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ids ascend without repeats: {seen:?}");
    for id in &created {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "created user {id} seen once in {seen:?}");
    }
    let seen_set: std::collections::BTreeSet<i64> = seen.iter().copied().collect();
    let missed: Vec<i64> = before.intersection(&after_walk).filter(|id| !seen_set.contains(id)).copied().collect();
    assert!(missed.is_empty(), "users present throughout the walk but never listed: {missed:?}");
    let res = get_auth(&mut conn, "/api/users", &token, &[]);
    assert!(res.json()["items"].as_array().unwrap().len() <= 20);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("after=x", "after"),
        ("after=-5", "after"),
    ] {
        assert_eq!(problem(&get_auth(&mut conn, &format!("/api/users?{query}"), &token, &[]), 400), [field], "{query}");
    }
    assert_eq!(problem(&get_auth(&mut conn, "/api/users?ids=1&limit=2", &token, &[]), 400), ["ids"]);
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

/// gzip is used when Accept-Encoding allows it and the body is over a kilobyte, never for
/// small bodies, and the gzip body decompresses to the identity body.
#[test]
fn gzip_is_negotiated_by_accept_encoding() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("gzip");
    let first = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let ids: Vec<String> = std::iter::once(first)
        .chain((0..19).map(|_| create_user(&mut conn, &unique_email("gz"))))
        .map(|i| i.to_string())
        .collect();
    let path = format!("/api/users?ids={}", ids.join(","));

    let plain = get_auth(&mut conn, &path, &token, &[]);
    assert_eq!(plain.status, 200);
    assert!(plain.body.len() > 1024, "a 20-user batch is over a kilobyte");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));

    for accept in ["gzip", "deflate, gzip;q=0.5", "*", "br;q=1, *;q=0.2"] {
        let res = get_auth(&mut conn, &path, &token, &[("Accept-Encoding", accept)]);
        assert_eq!(res.header("content-encoding"), Some("gzip"), "{accept}");
        assert_eq!(res.header("vary"), Some("accept-encoding"));
        assert!(res.body.len() < plain.body.len());
        assert_eq!(gunzip(&res.body), plain.body, "{accept}");
        assert_ne!(res.header("etag"), plain.header("etag"), "each representation has its own tag");
        // The gzip tag revalidates too.
        let tag = res.header("etag").unwrap().to_owned();
        let again = get_auth(&mut conn, &path, &token, &[("Accept-Encoding", accept), ("If-None-Match", &tag)]);
        assert_eq!(again.status, 304);
    }
    for accept in ["gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *"] {
        let res = get_auth(&mut conn, &path, &token, &[("Accept-Encoding", accept)]);
        assert_eq!(res.header("content-encoding"), None, "{accept}");
        assert_eq!(res.body, plain.body);
    }
    // A single user is far under a kilobyte: never compressed.
    let res = get_auth(&mut conn, &format!("/api/users/{first}"), &token, &[("Accept-Encoding", "gzip")]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-encoding"), None);
}

/// The OpenAPI document is served as JSON.
#[test]
fn openapi_document_is_served() {
    let server = Server::start(&[]);
    let res = server.get("/openapi.json");
    assert_eq!(res.status, 200);
    res.assert_standard_headers();
    assert_eq!(res.json()["openapi"], "3.1.0");
}

/// The value of gauge `name` in `/metrics`, read on `conn`.
fn gauge(conn: &mut Conn, name: &str) -> i64 {
    let res = conn.request("GET", "/metrics");
    assert_eq!(res.status, 200);
    let prefix = format!("{name} ");
    let line = res.text().lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[prefix.len()..].parse().unwrap()
}

fn assert_public_shape(v: &Value) {
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "id", "name", "updated_at"], "{v}");
}

/// Logins whose clients hang up while their password is hashed keep the hash's permit until the
/// hash ends: however many logins are cancelled, the hashes running never outnumber the
/// permits (issue #17, finding 1). An unknown email runs the dummy verify, so no account is
/// needed.
#[test]
fn cancelled_logins_never_run_more_hashes_than_the_permits() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let server = Server::start(&[]);
    let mut metrics = server.connect();
    let permits = gauge(&mut metrics, "bareapi_password_hash_permits");
    let body = json!({"email": unique_email("nobody"), "password": PASSWORD}).to_string();
    let request = Arc::new(format!(
        "POST /api/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let (request, stop) = (Arc::clone(&request), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { continue };
                    if stream.write_all(request.as_bytes()).is_err() {
                        continue;
                    }
                    // Long enough for the login to reach its hash, far shorter than the hash.
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        })
        .collect();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        peak = peak.max(gauge(&mut metrics, "bareapi_password_hashes_running"));
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(peak >= 1, "no hash was seen running: the logins never reached their hash");
    assert!(peak <= permits, "{peak} hashes ran at once with {permits} permits");
}

/// A user's email is shown to that user alone: every other reader gets the public view, in a
/// single read, a batch and a page alike (issue #17, finding 2).
#[test]
fn only_the_owner_sees_an_email() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let (a_email, b_email) = (unique_email("own"), unique_email("other"));
    let a = create_user(&mut conn, &a_email);
    let b = create_user(&mut conn, &b_email);
    let token = token_for(&mut conn, &a_email);

    let own = get_auth(&mut conn, &format!("/api/users/{a}"), &token, &[]);
    assert_eq!(own.status, 200, "{}", own.text());
    assert_user_shape(&own.json());
    assert_eq!(own.json()["email"], a_email.to_lowercase());
    let other = get_auth(&mut conn, &format!("/api/users/{b}"), &token, &[]);
    assert_eq!(other.status, 200, "{}", other.text());
    assert_public_shape(&other.json());
    assert!(!other.text().to_lowercase().contains(&b_email.to_lowercase()), "{}", other.text());

    let res = get_auth(&mut conn, &format!("/api/users?ids={b},{a}"), &token, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    let items = res.json()["items"].as_array().unwrap().clone();
    assert_public_shape(&items[0]);
    assert_eq!(items[0]["id"], b);
    assert_user_shape(&items[1]);
    assert_eq!(items[1]["email"], a_email.to_lowercase());

    for (id, own) in [(a, true), (b, false)] {
        let res = get_auth(&mut conn, &format!("/api/users?limit=1&after={}", id - 1), &token, &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        let item = &res.json()["items"][0];
        assert_eq!(item["id"], id);
        if own { assert_user_shape(item) } else { assert_public_shape(item) }
    }
}

/// A new email or password needs the current password: 400 without it, 403 with a wrong one
/// (and nothing changes); a new name needs none (issue #17, finding 3).
#[test]
fn changing_email_or_password_needs_the_current_password() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("cred");
    let id = create_user(&mut conn, &email);
    let auth = bearer(&token_for(&mut conn, &email));
    let path = format!("/api/users/{id}");
    let h = [JSON, ("Authorization", auth.as_str())];
    let new_email = unique_email("cred-new");

    for body in [
        json!({"email": new_email}),
        json!({"password": "another secret!"}),
        json!({"email": new_email, "password": "another secret!", "current_password": null}),
    ] {
        let res = conn.send("PATCH", &path, &h, Some(body.to_string().as_bytes()));
        assert_eq!(problem(&res, 400), ["current_password"], "{body}");
    }
    for body in [
        json!({"email": new_email, "current_password": "not the password"}),
        json!({"password": "another secret!", "current_password": "not the password"}),
    ] {
        let res = conn.send("PATCH", &path, &h, Some(body.to_string().as_bytes()));
        problem(&res, 403);
        assert!(res.json()["detail"].as_str().unwrap().contains("current password"), "{}", res.text());
    }
    let res = get_auth(&mut conn, &path, &auth[7..], &[]);
    assert_eq!(res.json()["email"], email.to_lowercase(), "nothing changed");
    assert_eq!(login(&mut conn, &email, PASSWORD).status, 201, "the password did not change");

    let res = conn.send("PATCH", &path, &h, Some(br#"{"name":"No password needed"}"#));
    assert_eq!(res.status, 200, "{}", res.text());
    let body = json!({"email": new_email, "current_password": PASSWORD}).to_string();
    let res = conn.send("PATCH", &path, &h, Some(body.as_bytes()));
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["email"], new_email.to_lowercase());
}

/// A new password revokes every other session of the account, and leaves the one that changed
/// it and other accounts' sessions alone (issue #17, finding 3).
#[test]
fn a_new_password_revokes_every_other_session() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let (a_email, b_email) = (unique_email("pw"), unique_email("pw-other"));
    let a = create_user(&mut conn, &a_email);
    create_user(&mut conn, &b_email);
    let (changer, stolen, other) =
        (token_for(&mut conn, &a_email), token_for(&mut conn, &a_email), token_for(&mut conn, &b_email));
    let path = format!("/api/users/{a}");
    let auth = bearer(&changer);
    let body = json!({"password": "a brand new secret", "current_password": PASSWORD}).to_string();
    let res = conn.send("PATCH", &path, &[JSON, ("Authorization", &auth)], Some(body.as_bytes()));
    assert_eq!(res.status, 200, "{}", res.text());

    problem(&get_auth(&mut conn, &path, &stolen, &[]), 401);
    assert_eq!(get_auth(&mut conn, &path, &changer, &[]).status, 200);
    assert_eq!(get_auth(&mut conn, &path, &other, &[]).status, 200);
    assert_eq!(login(&mut conn, &a_email, "a brand new secret").status, 201);
}

/// `DELETE /api/sessions` revokes every session of the token's account, its own included,
/// and no other account's (issue #17, finding 3).
#[test]
fn logging_out_everywhere_revokes_every_session_of_the_account() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let (a_email, b_email) = (unique_email("everywhere"), unique_email("elsewhere"));
    let a = create_user(&mut conn, &a_email);
    create_user(&mut conn, &b_email);
    let (t1, t2, other) =
        (token_for(&mut conn, &a_email), token_for(&mut conn, &a_email), token_for(&mut conn, &b_email));
    let path = format!("/api/users/{a}");

    let res = conn.send("DELETE", "/api/sessions", &[("Authorization", &bearer(&t1))], None);
    assert_eq!(res.status, 204, "{}", res.text());
    problem(&get_auth(&mut conn, &path, &t1, &[]), 401);
    problem(&get_auth(&mut conn, &path, &t2, &[]), 401);
    assert_eq!(get_auth(&mut conn, &path, &other, &[]).status, 200);
    problem(&conn.send("DELETE", "/api/sessions", &[("Authorization", &bearer(&t2))], None), 401);
    problem(&conn.send("DELETE", "/api/sessions", &[], None), 401);
    let again = token_for(&mut conn, &a_email);
    assert_eq!(get_auth(&mut conn, &path, &again, &[]).status, 200, "logging in again works");
}

/// A PATCH whose If-None-Match matches (or is `*`) or whose If-Match does not is answered
/// 412 and changes nothing; a matching If-Match applies it and answers the new ETag
/// (issue #17, finding 4).
#[test]
fn patch_preconditions_answer_412_and_change_nothing() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("precond");
    let id = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let auth = bearer(&token);
    let path = format!("/api/users/{id}");
    let before = get_auth(&mut conn, &path, &token, &[]);
    let etag = before.header("etag").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let rename = |conn: &mut Conn, condition: (&str, &str), name: &str| {
        let body = json!({ "name": name }).to_string();
        conn.send("PATCH", &path, &[JSON, ("Authorization", &auth), condition], Some(body.as_bytes()))
    };

    for condition in [
        ("If-None-Match", "*"),
        ("If-None-Match", etag.as_str()),
        ("If-None-Match", weak.as_str()),
        ("If-Match", "\"stale\""),
        ("If-Match", weak.as_str()),
    ] {
        problem(&rename(&mut conn, condition, "Changed"), 412);
    }
    let now = get_auth(&mut conn, &path, &token, &[]);
    assert_eq!(now.body, before.body, "nothing was changed");

    let res = rename(&mut conn, ("If-Match", &etag), "Matched");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["name"], "Matched");
    let new_tag = res.header("etag").unwrap().to_owned();
    assert_ne!(new_tag, etag);
    assert_eq!(get_auth(&mut conn, &path, &token, &[("If-None-Match", &new_tag)]).status, 304);
    problem(&rename(&mut conn, ("If-Match", &etag), "Stale"), 412);
    let res = rename(&mut conn, ("If-None-Match", "\"other\""), "Unconditional");
    assert_eq!(res.status, 200, "{}", res.text());
}

/// The users API's bodies have a limit of their own, a few KiB, below the global one; a body of
/// thousands of unknown keys under a raised limit gets an answer of a few dozen errors, names
/// cut short, and the count of the rest (issue #17, finding 5).
#[test]
fn a_flood_of_unknown_fields_gets_a_bounded_answer() {
    let body_of_keys = |bytes: usize| {
        let mut body = String::from("{");
        let mut n = 0;
        while body.len() < bytes {
            body.push_str(&format!("\"k{n}\":1,"));
            n += 1;
        }
        body.push_str(&format!("\"{}\":1}}", "x".repeat(300)));
        (body, n + 1)
    };
    let server = Server::start(&[]);
    // A MiB, under the global limit: refused by its Content-Length (the rest is never sent).
    let mut conn = server.connect();
    let (mib, _) = body_of_keys(1 << 20);
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        mib.len()
    );
    conn.send_raw(head.as_bytes());
    conn.send_raw(&mib.as_bytes()[..1024]);
    problem(&conn.read_response(false), 413);
    let mut conn = server.connect();
    let (kib, _) = body_of_keys(16 * 1024);
    let res = conn.send("POST", "/api/users", &[JSON], Some(kib.as_bytes()));
    problem(&res, 413);
    assert!(res.json()["detail"].as_str().unwrap().contains("8192"), "{}", res.text());

    let server = Server::start(&["--users-max-body-bytes", "1048576"]);
    let mut conn = server.connect();
    let (body, unknown) = body_of_keys(1_000_000);
    let res = conn.send("POST", "/api/users", &[JSON], Some(body.as_bytes()));
    let fields = problem(&res, 400);
    assert!(res.body.len() < 4096, "a {}-byte answer", res.body.len());
    assert_eq!(fields.len(), 22, "twenty unknown fields, then email and password: {fields:?}");
    assert_eq!(&fields[20..], ["email", "password"]);
    assert_eq!(res.json()["errors_omitted"], unknown - 20);
    let long = format!("{}…", "x".repeat(64));
    let res = conn.send("POST", "/api/users", &[JSON], Some(format!("{{\"{}\":1}}", "x".repeat(300)).as_bytes()));
    assert_eq!(problem(&res, 400), [long.as_str(), "email", "password"]);
}

/// `GET /api/users` checks the session before it reads its query: a made-up token gets 401
/// whatever the query, and `ids=` stops at 100 parts, repeats included (issue #17, finding 6).
#[test]
fn list_reads_check_the_session_before_their_query() {
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("authfirst");
    let id = create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let made_up = "A".repeat(43);
    let many = vec!["1"; 20_000].join(",");
    for query in ["ids=x", "ids=", "limit=0", "after=-1", many.as_str()] {
        let path = format!("/api/users?{}", if query == many { format!("ids={many}") } else { query.to_owned() });
        problem(&get_auth(&mut conn, &path, &made_up, &[]), 401);
    }
    let repeated = |n: usize| vec![id.to_string(); n].join(",");
    let res = get_auth(&mut conn, &format!("/api/users?ids={}", repeated(101)), &token, &[]);
    assert_eq!(problem(&res, 400), ["ids"]);
    let res = get_auth(&mut conn, &format!("/api/users?ids={}", repeated(100)), &token, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["items"].as_array().unwrap().len(), 1);
}

/// A made-up (well-formed) token's page or batch request runs no statement on the users table:
/// with the table locked, no server statement is left waiting for it (issue #17, finding 6).
#[test]
fn a_made_up_token_runs_no_users_query() {
    let fresh = common::FreshDb::new("authfirst");
    // One worker with one shared connection, prepared by the first request before the lock.
    let server = Server::start_with_db(&["--workers", "1", "--shared-conns", "1"], &fresh.url);
    let mut conn = server.connect();
    let made_up = "A".repeat(43);
    problem(&get_auth(&mut conn, "/api/users/1", &made_up, &[]), 401);
    let locker = common::postgres_sync::Client::connect(&fresh.url);
    locker.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
    for path in ["/api/users?limit=5", "/api/users?ids=1,2"] {
        problem(&get_auth(&mut conn, path, &made_up, &[]), 401);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let n: i64 = locker.query(waiting, &[])[0].get(0);
        assert_eq!(n, 0, "{path}: a statement on the users table ran for a made-up token");
    }
    locker.batch_execute("ROLLBACK");
}

/// Expired and revoked sessions are deleted by the sweeper, more than one batch of them; live
/// sessions stay (issue #17, finding 7).
#[test]
fn expired_and_revoked_sessions_are_deleted() {
    let server = Server::start(&["--session-sweep-interval-secs", "1"]);
    let mut conn = server.connect();
    let email = unique_email("sweep");
    let id = create_user(&mut conn, &email);
    let live = token_for(&mut conn, &email);
    let revoked = token_for(&mut conn, &email);
    let res = conn.send("DELETE", "/api/sessions/current", &[("Authorization", &bearer(&revoked))], None);
    assert_eq!(res.status, 204);
    let db = common::db_client();
    db.query(
        "INSERT INTO sessions (token_hash, user_id, expires_at) \
         SELECT sha256(convert_to(random()::text || i, 'UTF8')), $1, now() - interval '1 minute' \
         FROM generate_series(1, 1200) i",
        &[&id],
    );
    let count = |sql: &str| -> i64 { db.query(sql, &[&id])[0].get(0) };
    let dead = "SELECT count(*) FROM sessions WHERE user_id = $1 AND (revoked OR expires_at <= now())";
    assert_eq!(count(dead), 1201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count(dead) > 0 {
        assert!(std::time::Instant::now() < deadline, "{} dead sessions are still there", count(dead));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(count("SELECT count(*) FROM sessions WHERE user_id = $1"), 1, "the live session stays");
    assert_eq!(get_auth(&mut conn, &format!("/api/users/{id}"), &live, &[]).status, 200);
}

/// Runs `work(i, conn)` in a loop on four connections at once for two seconds while reading
/// `path` with `token` on another: the most password hashes seen running at once, the
/// statuses of `work` and those of the reads.
fn hashing_side_by_side(
    server: &Server,
    work: impl Fn(usize, &mut Conn) -> u16 + Sync,
    path: &str,
    token: &str,
) -> (i64, Vec<u16>, Vec<u16>) {
    use std::time::{Duration, Instant};

    let deadline = Instant::now() + Duration::from_secs(2);
    let addr = server.addr;
    std::thread::scope(|s| {
        let work = &work;
        let writers: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    let mut conn = Conn::new(addr);
                    let mut statuses = Vec::new();
                    while Instant::now() < deadline {
                        statuses.push(work(i, &mut conn));
                    }
                    statuses
                })
            })
            .collect();
        let reads = s.spawn(|| {
            let mut conn = Conn::new(addr);
            let mut statuses = Vec::new();
            while Instant::now() < deadline {
                statuses.push(get_auth(&mut conn, path, token, &[]).status);
                std::thread::sleep(Duration::from_millis(20));
            }
            statuses
        });
        let mut metrics = server.connect();
        let mut peak = 0;
        while Instant::now() < deadline {
            peak = peak.max(gauge(&mut metrics, "bareapi_password_hashes_running"));
            std::thread::sleep(Duration::from_millis(2));
        }
        let writes = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        (peak, writes, reads.join().unwrap())
    })
}

/// In `--db-mode checkout` a login and a password change hold their pool connection only for
/// their statements, not while they hash: beside a pool of one connection, as many logins (and
/// then password changes) hash at once as there are permits, where holding the connection
/// through the hash would let one at a time; and every login, change and read beside them is
/// answered (issue #17, finding 8).
#[test]
fn checkout_mode_holds_no_connection_while_hashing() {
    let server = Server::start(&["--db-mode", "checkout", "--workers", "1", "--pool-size", "1"]);
    let mut conn = server.connect();
    let permits = gauge(&mut conn, "bareapi_password_hash_permits");
    assert!(permits >= 2, "this test needs two cores or more: {permits} hash permits");
    let email = unique_email("co-read");
    let path = format!("/api/users/{}", create_user(&mut conn, &email));
    let token = token_for(&mut conn, &email);

    let (peak, logins, reads) =
        hashing_side_by_side(&server, |_, conn| login(conn, &email, PASSWORD).status, &path, &token);
    assert_eq!(peak, permits, "logins hashing at once beside a pool of one connection");
    assert!(logins.iter().all(|s| *s == 201), "logins: {logins:?}");
    assert!(reads.iter().all(|s| *s == 200), "reads: {reads:?}");

    // Each change on an account of its own: a new password revokes the account's other sessions.
    let accounts: Vec<(i64, String)> = (0..4)
        .map(|_| {
            let email = unique_email("co-change");
            (create_user(&mut conn, &email), bearer(&token_for(&mut conn, &email)))
        })
        .collect();
    let body = json!({"password": PASSWORD, "current_password": PASSWORD}).to_string();
    let change = |i: usize, conn: &mut Conn| {
        let (id, auth) = &accounts[i];
        conn.send("PATCH", &format!("/api/users/{id}"), &[JSON, ("Authorization", auth)], Some(body.as_bytes())).status
    };
    let (peak, changes, reads) = hashing_side_by_side(&server, change, &path, &token);
    assert_eq!(peak, permits, "password changes hashing at once beside a pool of one connection");
    assert!(changes.iter().all(|s| *s == 200), "changes: {changes:?}");
    assert!(reads.iter().all(|s| *s == 200), "reads: {reads:?}");
}
