//! Two instances behind nginx, with the repository's own nginx file (`deploy/nginx/bareapi.conf`,
//! ports swapped for free ones): under steady keep-alive load through nginx, each instance in
//! turn is stopped (SIGTERM, drained) and started again on its port, the next one only once the
//! restarted one takes traffic again. While one is down nginx sends everything to the other
//! (`proxy_next_upstream`); not one request may fail.
//!
//! nginx is Debian's package, installed by `scripts/test.sh` when missing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::daemon::{Daemon, find_binary, free_port, is_root, private_dir};
use common::load::{Load, MIXED_PATHS};

/// Starts nginx in the foreground with `deploy/nginx/bareapi.conf` inside a minimal main
/// context whose files all live in a private folder; cleartext on `listen`, TLS on `tls`.
fn start_nginx(listen: u16, tls: u16, upstreams: [SocketAddr; 2]) -> Daemon {
    let conf =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/bareapi.conf")).unwrap();
    assert!(conf.contains("127.0.0.1:8081") && conf.contains("127.0.0.1:8082") && conf.contains("listen 8080;"));
    assert!(conf.contains("listen 443 ssl http2;"), "the TLS listener");
    let dir = private_dir("nginx");
    // A throwaway certificate where the file expects the real one, and a free port for 443.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(dir.join("fullchain.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("privkey.pem"), key.serialize_pem()).unwrap();
    let conf = conf
        .replace("127.0.0.1:8081", &upstreams[0].to_string())
        .replace("127.0.0.1:8082", &upstreams[1].to_string())
        .replace("listen 8080;", &format!("listen 127.0.0.1:{listen};"))
        .replace("listen 443 ssl http2;", &format!("listen 127.0.0.1:{tls} ssl http2;"))
        .replace("/etc/nginx/tls/", &format!("{}/", dir.display()));
    std::fs::write(dir.join("bareapi.conf"), conf).unwrap();
    let d = dir.display();
    // As root, nginx's workers would switch to "nobody", who cannot use the private folder.
    let user = if is_root() { "user root;" } else { "" };
    let main = format!(
        "{user}\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/bareapi.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let nginx = find_binary("nginx");
    let check = Command::new(&nginx)
        .args(["-t", "-q", "-e"])
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .output()
        .unwrap();
    assert!(check.status.success(), "nginx -t: {}", String::from_utf8_lossy(&check.stderr));
    let mut cmd = Command::new(&nginx);
    cmd.arg("-e").arg(dir.join("error.log")).arg("-c").arg(dir.join("nginx.conf")).stdout(Stdio::null());
    Daemon::start(cmd, dir, listen, "error.log")
}

/// `/plaintext` requests `server` has answered (its own `/metrics`).
fn served_plaintext(server: &Server) -> u64 {
    server
        .get("/metrics")
        .text()
        .lines()
        .filter(|l| l.starts_with("bareapi_http_requests_total{method=\"GET\",route=\"/plaintext\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn rolling_restart_behind_nginx_loses_no_request() {
    let mut instances = [Server::start(&[]), Server::start(&[])];
    let addrs = [instances[0].addr, instances[1].addr];
    let (nginx_port, tls_port) = (free_port(), free_port());
    let nginx = start_nginx(nginx_port, tls_port, addrs);
    let front: SocketAddr = ([127, 0, 0, 1], nginx_port).into();
    // TLS at nginx, HTTP/2 or HTTP/1.1 by ALPN, cleartext to the instances.
    for (version, path, expected) in
        [("--http2", "/json", "200 2"), ("--http1.1", "/plaintext", "200 1.1"), ("--http2", "/metrics", "404 2")]
    {
        let out = Command::new("curl")
            .args(["-sS", "-k", "--max-time", "10", version, "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .arg(format!("https://127.0.0.1:{tls_port}{path}"))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{path} over TLS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The instances serve /metrics on their public port here; nginx does not pass it on.
    assert_eq!(instances[0].get("/metrics").status, 200);
    assert_eq!(common::Conn::new(front).request("GET", "/metrics").status, 404);
    let load = Load::start(front, 12, MIXED_PATHS);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..2 {
        let before = load.answered();
        instances[i].terminate();
        let status =
            instances[i].wait_exit(Duration::from_secs(15)).unwrap_or_else(|| panic!("instance {i} still running"));
        assert!(status.success(), "instance {i} exit {status:?}");
        // Down for a while: everything goes to the other instance.
        std::thread::sleep(Duration::from_millis(500));
        if load.answered() < before + 100 {
            let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
            panic!("no answers while instance {i} was down: {:?}\nnginx error log:\n{log}", load.stop());
        }
        instances[i] = Server::start_at(addrs[i], &[]);
        // A rolling restart moves on only once the restarted instance takes traffic again:
        // nginx retries it after fail_timeout (2 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        while served_plaintext(&instances[i]) < 100 {
            assert!(Instant::now() < deadline, "restarted instance {i} gets no traffic through nginx");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop();
    eprintln!("through nginx: {report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.ok > 2000, "{report:?}");
    let error_log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
    eprintln!("nginx error log:\n{error_log}");
    drop(nginx);
}
