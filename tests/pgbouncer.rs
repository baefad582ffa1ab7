//! bareapi through PgBouncer in session mode (Debian's pgbouncer, installed by `scripts/test.sh`
//! when missing): prepared statements, pipelined queries on shared connections, transactions
//! and the connection budget check all work through it. (Transaction mode needs PgBouncer's
//! protocol-level prepared statements, 1.21 and later; Debian 12 ships 1.18, so that mode is
//! not tested here.)

mod common;

use std::process::{Command, Stdio};

use common::Server;
use common::daemon::{Daemon, find_binary, free_port, is_root, private_dir};

struct PgBouncer {
    _daemon: Daemon,
    port: u16,
}

/// `postgres://user@host:port/db` of the test database, split.
fn parts(url: &str) -> (String, String, String, String) {
    let rest = url.strip_prefix("postgres://").expect("postgres:// URL");
    let (user, rest) = rest.split_once('@').expect("user@");
    let (hostport, db) = rest.split_once('/').expect("/db");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (user.split(':').next().unwrap().to_owned(), host.to_owned(), port.to_owned(), db.to_owned())
}

fn start_pgbouncer() -> PgBouncer {
    let (user, host, pg_port, db) = parts(&common::database_url());
    let port = free_port();
    let dir = private_dir("pgbouncer");
    let d = dir.display();
    let ini = format!(
        "[databases]\n{db} = host={host} port={pg_port} dbname={db}\n\n[pgbouncer]\n\
         listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = trust\nauth_file = {d}/userlist.txt\n\
         pool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 40\n\
         logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n"
    );
    std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
    std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n")).unwrap();
    let mut cmd;
    if is_root() {
        // PgBouncer refuses to run as root; run it as the cluster's owner. setpriv execs
        // (runuser would stay in between), so signals reach PgBouncer itself.
        assert!(Command::new("chown").args(["-R", "postgres"]).arg(&dir).status().unwrap().success());
        cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(find_binary("pgbouncer"));
    } else {
        cmd = Command::new(find_binary("pgbouncer"));
    }
    cmd.arg(dir.join("pgbouncer.ini")).stdout(Stdio::null()).stderr(Stdio::null());
    PgBouncer { _daemon: Daemon::start(cmd, dir, port, "pgbouncer.log"), port }
}

#[test]
fn every_database_route_works_through_pgbouncer_in_session_mode() {
    let bouncer = start_pgbouncer();
    let (user, _, _, db) = parts(&common::database_url());
    let url = format!("postgres://{user}@127.0.0.1:{}/{db}", bouncer.port);
    // The connection budget is read through the pooler too: pools bigger than the server's
    // max_connections are refused.
    let (status, out) = common::run_to_exit(&["--no-migrate", "--workers", "2", "--pool-size", "150"], &url);
    assert!(!status.success() && out.contains("connection budget"), "{status:?}: {out}");
    let server = Server::start_with_db(&["--no-migrate"], &url);
    // Several connections at once, so the shared connections carry pipelined queries.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = common::Conn::new(addr);
                for i in 0..50 {
                    let path = match (t + i) % 5 {
                        0 => "/db",
                        1 => "/queries?queries=7",
                        2 => "/updates?queries=5",
                        3 => "/fortunes",
                        _ => "/cached-queries?count=3",
                    };
                    let res = conn.request("GET", path);
                    assert_eq!(res.status, 200, "{path}: {}", res.text());
                    if path == "/queries?queries=7" {
                        assert_eq!(res.json().as_array().unwrap().len(), 7);
                    }
                    if path == "/fortunes" {
                        assert!(res.text().contains("Additional fortune added at request time."));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    // The users API: a transaction (create), a hashed login and an authenticated read.
    let mut conn = server.connect();
    let email = common::users::unique_email("pgbouncer");
    let id = common::users::create_user(&mut conn, &email);
    let token = common::users::token_for(&mut conn, &email);
    let res = conn.send("GET", &format!("/api/users/{id}"), &[("Authorization", &format!("Bearer {token}"))], None);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["id"], id);
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
}
