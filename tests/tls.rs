//! TLS (`--tls-cert`, `--tls-key`) against the real binary and a real PostgreSQL, with curl as
//! the client (HTTP/1.1 and HTTP/2 chosen by ALPN) and a certificate chain made here with
//! rcgen: every TechEmpower route and a users-API round trip over both protocols, plain HTTP
//! sent to the TLS port, clients that never finish their handshake, the certificate and key
//! files the server must refuse to start with, certificate reloads on SIGHUP, the handshake
//! metrics, the bound on handshakes in progress, and session resumption (with rustls as the
//! client, which says whether a handshake resumed).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Conn, Server, database_url, run_to_exit, users};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

/// A folder of PEM files for one test, removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("bareapi-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// A CA (`ca.pem`), a leaf for localhost and 127.0.0.1 signed by it, its chain file
    /// (`chain.pem`: leaf then CA, as a server is configured) and its key (`key.pem`).
    fn chain(&self) {
        self.chain_named("bareapi test CA");
    }

    /// [`Pki::chain`] with a CA named `ca_name` (clients tell CAs apart by name first).
    fn chain_named(&self, ca_name: &str) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        self.write("ca.pem", &ca_cert.pem());
        self.write("chain.pem", &format!("{}{}", leaf_cert.pem(), ca_cert.pem()));
        self.write("key.pem", &leaf_key.serialize_pem());
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the server with `pki`'s chain and key, passed as flags or (`by_env`) through
/// `BAREAPI_TLS_CERT` / `BAREAPI_TLS_KEY`, plus `extra` flags.
fn start_tls(pki: &Pki, by_env: bool, extra: &[&str]) -> Server {
    let (cert, key) = (pki.path("chain.pem"), pki.path("key.pem"));
    if by_env {
        Server::start_with_env(extra, &[("BAREAPI_TLS_CERT", cert.as_str()), ("BAREAPI_TLS_KEY", key.as_str())])
    } else {
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        args.extend_from_slice(extra);
        Server::start(&args)
    }
}

struct CurlAnswer {
    status: u16,
    /// curl's `%{http_version}`: "1.1" or "2".
    version: String,
    body: String,
}

impl CurlAnswer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.body))
    }
}

/// One request with curl over TLS to `addr` as https://localhost, verifying the server's
/// chain against the test CA; `version` is `--http1.1` or `--http2`.
fn curl(pki: &Pki, addr: SocketAddr, version: &str, path: &str, extra: &[&str]) -> CurlAnswer {
    let port = addr.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", version, "--cacert", &pki.path("ca.pem")])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl runs (Debian's curl package)");
    let text = String::from_utf8(out.stdout).expect("UTF-8 answer");
    assert!(out.status.success(), "curl {version} {path}: {}{text}", String::from_utf8_lossy(&out.stderr));
    let (body, tail) = text.rsplit_once('\n').expect("curl's -w line");
    let (status, version) = tail.split_once(' ').expect("status and version");
    CurlAnswer { status: status.parse().unwrap(), version: version.to_owned(), body: body.to_owned() }
}

fn curl_has_http2() {
    let out = Command::new("curl").arg("-V").output().expect("curl installed (apt-get install curl)");
    let features = String::from_utf8_lossy(&out.stdout);
    assert!(features.contains("HTTP2"), "this curl has no HTTP/2 (nghttp2): {features}");
}

/// Every TechEmpower route, then a users-API round trip (signup, login, read with the bearer
/// token), over HTTP/1.1 and over HTTP/2 as ALPN chooses them.
fn every_route_over_both_protocols(pki: &Pki, server: &Server) {
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let get = |path: &str| {
            let res = curl(pki, server.addr, flag, path, &[]);
            assert_eq!((res.status, res.version.as_str()), (200, version), "{flag} {path}: {}", res.body);
            res
        };
        assert_eq!(get("/plaintext").body, "Hello, World!");
        assert_eq!(get("/json").json(), json!({"message": "Hello, World!"}));
        let row = get("/db").json();
        assert!(row["id"].as_i64().is_some_and(|id| (1..=10_000).contains(&id)), "{row}");
        for path in ["/queries?queries=3", "/updates?queries=3", "/cached-queries?count=3"] {
            let rows = get(path).json();
            assert_eq!(rows.as_array().map(Vec::len), Some(3), "{path}: {rows}");
            assert!(rows[0]["randomNumber"].as_i64().is_some(), "{path}: {rows}");
        }
        assert_eq!(get("/fortunes").body, common::expected_fortunes_page());

        let email = users::unique_email(&format!("tls-h{version}"));
        let signup = json!({"email": email, "password": users::PASSWORD, "name": "Tls"}).to_string();
        let json_type = ["-H", "Content-Type: application/json", "--data-binary"];
        let mut args = json_type.to_vec();
        args.push(&signup);
        let created = curl(pki, server.addr, flag, "/api/users", &args);
        assert_eq!((created.status, created.version.as_str()), (201, version), "{}", created.body);
        let id = created.json()["id"].as_i64().unwrap();
        let login = json!({"email": email, "password": users::PASSWORD}).to_string();
        let mut args = json_type.to_vec();
        args.push(&login);
        let session = curl(pki, server.addr, flag, "/api/sessions", &args);
        assert_eq!((session.status, session.version.as_str()), (201, version), "{}", session.body);
        let token = session.json()["token"].as_str().unwrap().to_owned();
        let bearer = format!("Authorization: Bearer {token}");
        let me = curl(pki, server.addr, flag, &format!("/api/users/{id}"), &["-H", &bearer]);
        assert_eq!((me.status, me.version.as_str()), (200, version), "{}", me.body);
        assert_eq!(me.json()["email"], json!(email.to_lowercase()));
    }
}

/// Configured through the environment, without `--http2`: ALPN still gives h2 to a client that
/// offers it.
#[test]
fn every_route_and_the_users_api_over_tls_with_http1_and_http2() {
    curl_has_http2();
    let pki = Pki::new("routes");
    pki.chain();
    let server = start_tls(&pki, true, &[]);
    every_route_over_both_protocols(&pki, &server);
}

/// With `--http2` too (h2c on a cleartext port): over TLS the same, ALPN decides.
#[test]
fn tls_with_the_http2_flag_serves_both_protocols() {
    curl_has_http2();
    let pki = Pki::new("http2flag");
    pki.chain();
    let server = start_tls(&pki, false, &["--http2"]);
    every_route_over_both_protocols(&pki, &server);
}

/// Reads from `stream` until the server closes it (EOF or reset); how long that took, or None
/// when it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            // A TLS alert, or a 400: what the server says before it closes.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(start.elapsed()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Plain HTTP/1.1 sent to the TLS port is not a TLS record: the handshake fails and the
/// connection is closed at once (long before the 10 s header timeout), and the server carries on.
#[test]
fn plain_http_to_the_tls_port_is_closed_at_once() {
    let pki = Pki::new("plain");
    pki.chain();
    let server = start_tls(&pki, false, &["--header-read-timeout-ms", "10000"]);
    for request in [&b"GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(request).unwrap();
        let took = closed_within(&mut stream, Duration::from_secs(3));
        assert!(took.is_some(), "plain {:?} to the TLS port: still open after 3 s", String::from_utf8_lossy(request));
    }
    assert_eq!(curl(&pki, server.addr, "--http1.1", "/plaintext", &[]).body, "Hello, World!");
}

/// A client that opens TCP and sends nothing, and one that stalls in the middle of its
/// ClientHello, are both cut at the header timeout (600 ms here), and hold nothing after.
#[test]
fn unfinished_handshakes_are_cut_at_the_header_timeout() {
    let pki = Pki::new("stall");
    pki.chain();
    let server = start_tls(&pki, false, &["--header-read-timeout-ms", "600"]);
    // A TLS handshake record header announcing 512 bytes, then nothing.
    let half_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    for (what, bytes) in [("silent", &[][..]), ("half a ClientHello", half_hello)] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(bytes).unwrap();
        let took = closed_within(&mut stream, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: still open 5 s after connecting"));
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
            "{what}: closed after {took:?}, expected at the 600 ms header timeout"
        );
    }
    assert_eq!(curl(&pki, server.addr, "--http2", "/plaintext", &[]).version, "2");
}

/// The server refuses to start with files it cannot serve, and says which and why.
#[test]
fn bad_certificate_or_key_files_are_refused_at_start_with_the_reason() {
    let pki = Pki::new("bad");
    pki.chain();
    let chain = pki.path("chain.pem");
    let key = pki.path("key.pem");
    // Another key: valid, but not the certificate's.
    let other_key = pki.write("other-key.pem", &KeyPair::generate().unwrap().serialize_pem());
    // A self-signed certificate that expired in 2001.
    let old_key = KeyPair::generate().unwrap();
    let mut old = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    old.not_before = rcgen::date_time_ymd(2000, 1, 1);
    old.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let expired = pki.write("expired.pem", &old.self_signed(&old_key).unwrap().pem());
    let expired_key = pki.write("expired-key.pem", &old_key.serialize_pem());
    let empty = pki.write("empty.pem", "");
    let not_pem = pki.write("not-pem.pem", "just some text\n");
    let missing = pki.path("missing.pem");
    let p = |path: &Path| path.to_str().unwrap().to_owned();

    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (vec![chain.clone()], vec!["--tls-cert needs --tls-key".into()]),
        (vec![String::new(), key.clone()], vec!["--tls-key needs --tls-cert".into()]),
        (
            vec![missing.clone(), key.clone()],
            vec![format!("TLS certificate {missing}: cannot read it"), "No such file".into()],
        ),
        (vec![chain.clone(), missing.clone()], vec![format!("TLS private key {missing}: cannot read it")]),
        // A folder where a file should be: unreadable as a file whoever runs the test (root reads
        // any mode-000 file).
        (vec![pki.dir.to_str().unwrap().to_owned(), key.clone()], vec!["cannot read it".into(), "directory".into()]),
        (vec![p(&empty), key.clone()], vec![format!("TLS certificate {}: no PEM certificate in it", p(&empty))]),
        (vec![p(&not_pem), key.clone()], vec![format!("TLS certificate {}: no PEM certificate in it", p(&not_pem))]),
        (vec![chain.clone(), p(&empty)], vec![format!("TLS private key {}: no PEM private key in it", p(&empty))]),
        // The certificate file given as the key.
        (vec![chain.clone(), chain.clone()], vec!["no PEM private key in it".into()]),
        (
            vec![chain.clone(), p(&other_key)],
            vec![format!("TLS private key {} does not match the certificate in {chain}", p(&other_key))],
        ),
        (
            vec![p(&expired), p(&expired_key)],
            vec![format!("TLS certificate {}: expired on", p(&expired)), "2001".into()],
        ),
    ];
    let db = database_url();
    for (files, expected) in cases {
        let mut args: Vec<&str> = Vec::new();
        if !files[0].is_empty() {
            args.extend(["--tls-cert", files[0].as_str()]);
        }
        if let Some(key) = files.get(1) {
            args.extend(["--tls-key", key.as_str()]);
        }
        let (status, output) = run_to_exit(&args, &db);
        assert!(!status.success(), "{args:?} started");
        for text in &expected {
            assert!(output.contains(text.as_str()), "{args:?}: no {text:?} in:\n{output}");
        }
        assert!(!output.contains("listening"), "{args:?} listened:\n{output}");
    }
}

/// One request with curl that must fail (the server's certificate is not the one `ca` signed);
/// what curl said.
fn curl_refused(ca: &str, addr: SocketAddr) -> String {
    let port = addr.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", ca])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/plaintext"))
        .output()
        .expect("curl runs");
    assert!(!out.status.success(), "curl trusting {ca} was answered: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The metrics listener's address (`--metrics-listen 127.0.0.1:0`), from the start-up log.
fn metrics_addr(server: &Server) -> SocketAddr {
    let line = server.start_up.iter().find(|l| l.contains("metrics_addr=")).expect("metrics listener logged");
    line.split("metrics_addr=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

/// The value of the series `series` (name and labels, exactly as rendered) in `text`.
fn series(text: &str, series: &str) -> i64 {
    let prefix = format!("{series} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

/// /metrics from the cleartext metrics listener (so that reading them makes no handshake).
fn scrape(at: SocketAddr) -> String {
    let res = Conn::new(at).request("GET", "/metrics");
    assert_eq!(res.status, 200);
    res.text().to_owned()
}

fn send_sighup(server: &Server) {
    let ok = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().expect("kill");
    assert!(ok.success());
}

/// SIGHUP reloads the certificate for new connections; files that do not load (not PEM, a key
/// that is not the certificate's) leave the previous one serving, and the log says why.
#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_on_bad_files() {
    let a = Pki::new("reload-a");
    a.chain();
    let b = Pki::new("reload-b");
    b.chain_named("bareapi test CA B");
    let server = start_tls(&a, false, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    assert_eq!(curl(&a, server.addr, "--http1.1", "/plaintext", &[]).body, "Hello, World!");
    // The files the server was started with now hold B's chain and key.
    for name in ["chain.pem", "key.pem"] {
        std::fs::copy(b.path(name), a.path(name)).unwrap();
    }
    assert_eq!(curl(&a, server.addr, "--http1.1", "/plaintext", &[]).body, "Hello, World!", "no reload without SIGHUP");
    send_sighup(&server);
    let line = server.wait_log("TLS certificate reloaded", Duration::from_secs(10)).expect("reload logged");
    assert!(line.contains(&a.path("chain.pem")), "{line}");
    for version in ["--http1.1", "--http2"] {
        assert_eq!(curl(&b, server.addr, version, "/plaintext", &[]).body, "Hello, World!", "{version}");
    }
    let refused = curl_refused(&a.path("ca.pem"), server.addr);
    assert!(refused.contains("SSL certificate problem"), "{refused}");

    // Broken files: B keeps serving.
    let bad_cases = [
        ("chain.pem", "not a certificate\n".to_owned(), "no PEM certificate in it".to_owned()),
        ("key.pem", KeyPair::generate().unwrap().serialize_pem(), "does not match the certificate".to_owned()),
    ];
    for (errors, (name, text, reason)) in bad_cases.into_iter().enumerate() {
        let good = std::fs::read(a.path(name)).unwrap();
        std::fs::write(a.path(name), text).unwrap();
        send_sighup(&server);
        let line = server.wait_log("TLS certificate not reloaded", Duration::from_secs(10)).expect("refusal logged");
        assert!(line.contains(&reason) && line.contains(&a.path(name)), "{name}: no {reason:?} in {line}");
        assert!(line.contains("ERROR"), "{line}");
        assert_eq!(curl(&b, server.addr, "--http2", "/plaintext", &[]).body, "Hello, World!", "{name}");
        let text = scrape(metrics);
        assert_eq!(series(&text, "bareapi_tls_reloads_total{result=\"ok\"}"), 1);
        assert_eq!(series(&text, "bareapi_tls_reloads_total{result=\"error\"}"), errors as i64 + 1);
        std::fs::write(a.path(name), good).unwrap();
    }
}

/// Completed handshakes are counted by protocol and kind, failed ones by reason.
#[test]
fn handshakes_are_counted_by_protocol_and_failures_by_reason() {
    let pki = Pki::new("metrics");
    pki.chain();
    let other = Pki::new("metrics-other");
    other.chain_named("another CA");
    let server = start_tls(&pki, false, &["--metrics-listen", "127.0.0.1:0", "--header-read-timeout-ms", "600"]);
    let metrics = metrics_addr(&server);
    let before = scrape(metrics);
    for name in ["timeout", "eof", "alert", "protocol", "io"] {
        assert_eq!(series(&before, &format!("bareapi_tls_handshake_failures_total{{reason=\"{name}\"}}")), 0);
    }
    curl(&pki, server.addr, "--http2", "/plaintext", &[]);
    curl(&pki, server.addr, "--http2", "/json", &[]);
    curl(&pki, server.addr, "--http1.1", "/plaintext", &[]);
    // A client that does not trust the certificate says so with an alert.
    curl_refused(&other.path("ca.pem"), server.addr);
    // Plain HTTP is not TLS.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(3)).is_some());
    // Half a ClientHello, then the client closes; and the same, closed with a reset.
    let half_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    let mut gone = TcpStream::connect(server.addr).unwrap();
    gone.write_all(half_hello).unwrap();
    drop(gone);
    let reset = socket2::Socket::from(TcpStream::connect(server.addr).unwrap());
    reset.set_linger(Some(Duration::ZERO)).unwrap();
    let mut reset = TcpStream::from(reset);
    reset.write_all(half_hello).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(reset);
    // Silent past the 600 ms header timeout.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).is_some());

    let expected = [
        ("bareapi_tls_handshakes_total{protocol=\"h2\",kind=\"full\"}", 2),
        ("bareapi_tls_handshakes_total{protocol=\"http/1.1\",kind=\"full\"}", 1),
        ("bareapi_tls_handshakes_total{protocol=\"h2\",kind=\"resumed\"}", 0),
        ("bareapi_tls_handshake_failures_total{reason=\"alert\"}", 1),
        ("bareapi_tls_handshake_failures_total{reason=\"protocol\"}", 1),
        ("bareapi_tls_handshake_failures_total{reason=\"eof\"}", 1),
        ("bareapi_tls_handshake_failures_total{reason=\"io\"}", 1),
        ("bareapi_tls_handshake_failures_total{reason=\"timeout\"}", 1),
        ("bareapi_tls_handshakes_in_progress", 0),
        ("bareapi_tls_handshakes_waiting", 0),
    ];
    // The failures are counted as the server sees them, a moment after the client's part.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(metrics);
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(name, n)| series(&text, name) != *n)
            .map(|(name, n)| format!("{name} = {} (expected {n})", series(&text, name)))
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{wrong:#?}\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A rustls client configuration trusting `pki`'s CA, offering `version` only and ALPN
/// http/1.1; rustls's in-memory session store, so connections made with one configuration
/// resume each other's sessions.
fn client_config(pki: &Pki, version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.path("ca.pem")).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` with `config`, its handshake done.
fn tls_connect(config: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> TlsClient {
    let conn = rustls::ClientConnection::new(Arc::clone(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

/// GET /plaintext on a kept-alive TLS connection; the body.
fn plaintext(tls: &mut TlsClient) -> String {
    tls.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).expect("answer");
        assert!(n > 0, "closed mid-answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .expect("content-length")
                .trim()
                .parse()
                .unwrap();
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body.to_owned();
            }
        }
    }
}

/// A second connection with the same client resumes the first one's session (a ticket, with
/// TLS 1.3 and 1.2), on whichever worker it lands, and the server counts it as resumed; a
/// certificate reload in between does not stop that.
#[test]
fn a_second_connection_resumes_the_session() {
    let pki = Pki::new("resume");
    pki.chain();
    let server = start_tls(&pki, false, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    let mut resumed = 0;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = client_config(&pki, version);
        let mut first = tls_connect(&config, server.addr);
        assert_eq!(first.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // The answer brings the TLS 1.3 tickets along.
        assert_eq!(plaintext(&mut first), "Hello, World!");
        drop(first);
        // Several: the two workers' listeners share the port, so some land on the other one.
        for i in 0..6 {
            let mut again = tls_connect(&config, server.addr);
            assert_eq!(again.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "{version:?} #{i}");
            assert_eq!(plaintext(&mut again), "Hello, World!");
            resumed += 1;
        }
    }
    // A certificate reload keeps the ticket key and the session cache: sessions still resume.
    let config = client_config(&pki, &rustls::version::TLS13);
    let mut first = tls_connect(&config, server.addr);
    assert_eq!(plaintext(&mut first), "Hello, World!");
    drop(first);
    send_sighup(&server);
    server.wait_log("TLS certificate reloaded", Duration::from_secs(10)).expect("reload logged");
    let mut again = tls_connect(&config, server.addr);
    assert_eq!(again.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "after a reload");
    assert_eq!(plaintext(&mut again), "Hello, World!");
    let text = scrape(metrics);
    assert_eq!(series(&text, "bareapi_tls_handshakes_total{protocol=\"http/1.1\",kind=\"resumed\"}"), resumed + 1);
    assert_eq!(series(&text, "bareapi_tls_handshakes_total{protocol=\"http/1.1\",kind=\"full\"}"), 3);
}

/// With `--tls-handshake-concurrency 8` on one worker, 200 clients that send a whole ClientHello
/// and then stall hold 8 handshake slots, never more, and the rest wait; clients stalled inside
/// their ClientHello hold none. Meanwhile a connection already established keeps getting its
/// answers at once, and once the stalled clients are gone a new handshake goes through.
#[test]
fn handshakes_in_progress_are_bounded_and_served_connections_keep_answering() {
    const BOUND: i64 = 8;
    const STALLED: i64 = 200;
    let pki = Pki::new("bound");
    pki.chain();
    let server = start_tls(
        &pki,
        false,
        &[
            "--workers",
            "1",
            "--tls-handshake-concurrency",
            "8",
            "--metrics-listen",
            "127.0.0.1:0",
            "--header-read-timeout-ms",
            "30000",
        ],
    );
    let metrics = metrics_addr(&server);
    let config = client_config(&pki, &rustls::version::TLS13);
    let mut served = tls_connect(&config, server.addr);
    assert_eq!(plaintext(&mut served), "Hello, World!");

    let mut stalled = Vec::new();
    let half_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    for i in 0..STALLED {
        // A fresh configuration each: full handshakes, no session to resume.
        let fresh = client_config(&pki, &rustls::version::TLS13);
        let mut conn = rustls::ClientConnection::new(fresh, "localhost".try_into().unwrap()).unwrap();
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut tcp).unwrap();
        }
        let mut half = TcpStream::connect(server.addr).unwrap();
        half.write_all(half_hello).unwrap();
        stalled.push((conn, tcp, half));
        if i % 20 == 0 {
            let text = scrape(metrics);
            let in_progress = series(&text, "bareapi_tls_handshakes_in_progress");
            assert!(in_progress <= BOUND, "{in_progress} handshakes in progress after {i} stalled clients");
            assert_eq!(plaintext(&mut served), "Hello, World!");
        }
    }
    // Every ClientHello has arrived once the waiting count settles at the rest.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(metrics);
        let (in_progress, waiting) =
            (series(&text, "bareapi_tls_handshakes_in_progress"), series(&text, "bareapi_tls_handshakes_waiting"));
        assert!(in_progress <= BOUND, "{in_progress} in progress");
        if (in_progress, waiting) == (BOUND, STALLED - BOUND) {
            break;
        }
        assert!(Instant::now() < deadline, "in progress {in_progress}, waiting {waiting}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(plaintext(&mut served), "Hello, World!");
        assert!(started.elapsed() < Duration::from_secs(1), "an answer took {:?}", started.elapsed());
    }
    drop(stalled);
    // Each waiting handshake takes a freed slot in turn and fails on its closed socket.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(metrics);
        let (in_progress, waiting) =
            (series(&text, "bareapi_tls_handshakes_in_progress"), series(&text, "bareapi_tls_handshakes_waiting"));
        if (in_progress, waiting) == (0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the stalled clients left: {in_progress} in progress, {waiting} waiting"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&pki, server.addr, "--http2", "/plaintext", &[]).body, "Hello, World!");
}
