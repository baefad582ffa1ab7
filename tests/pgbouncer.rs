//! bareapi through PgBouncer in session mode (Debian's pgbouncer, installed by `scripts/test.sh`
//! when missing): prepared statements, pipelined queries on shared connections, the writes
//! (the batched `UPDATE` of /updates and every users API write, including one that fails on a
//! unique index) and the connection budget check all work through it, and what was written
//! through the pooler is what the database holds. (No request opens a transaction: each write is
//! one statement. Transaction mode needs PgBouncer's protocol-level prepared statements, 1.21
//! and later; Debian 12 ships 1.18, so that mode is not tested here.)

mod common;

use std::process::{Command, Stdio};

use common::Server;
use common::daemon::{Daemon, find_binary, free_port, is_root, private_dir};
use common::users::{JSON, PASSWORD, create_user, post_json, token_for, unique_email};

struct PgBouncer {
    _daemon: Daemon,
    port: u16,
}

/// `postgres://user[:password]@host:port/db` of the test database, split (the password
/// empty when there is none).
fn parts(url: &str) -> (String, String, String, String, String) {
    let rest = url.strip_prefix("postgres://").expect("postgres:// URL");
    let (userinfo, rest) = rest.split_once('@').expect("user@");
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (hostport, db) = rest.split_once('/').expect("/db");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    (user.to_owned(), password.to_owned(), host.to_owned(), port.to_owned(), db.to_owned())
}

fn start_pgbouncer() -> PgBouncer {
    let (user, password, host, pg_port, db) = parts(&common::database_url());
    // PgBouncer logs in to PostgreSQL with the cluster's password (scripts/pg.sh); its own
    // clients, on 127.0.0.1 only, are trusted.
    // (`user=` too: without it PgBouncer logs in with the auth file's empty password.)
    let password = if password.is_empty() { String::new() } else { format!(" user={user} password={password}") };
    let port = free_port();
    let dir = private_dir("pgbouncer");
    let d = dir.display();
    let ini = format!(
        "[databases]\n{db} = host={host} port={pg_port} dbname={db}{password}\n\n[pgbouncer]\n\
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
fn every_route_reads_and_writes_through_pgbouncer_in_session_mode() {
    let bouncer = start_pgbouncer();
    let (user, _, _, _, db) = parts(&common::database_url());
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
    let direct = common::db_client();

    // /updates' batched UPDATE, sent through the pooler, is in the table (read directly, not
    // through PgBouncer): every returned row holds its new number, which differs from the old.
    let before: Vec<i32> =
        direct.query("SELECT randomnumber FROM world ORDER BY id", &[]).iter().map(|r| r.get(0)).collect();
    let res = server.get("/updates?queries=20");
    assert_eq!(res.status, 200, "{}", res.text());
    let rows = res.json();
    assert_eq!(rows.as_array().unwrap().len(), 20);
    for row in rows.as_array().unwrap() {
        let (id, n) = (row["id"].as_i64().unwrap() as i32, row["randomNumber"].as_i64().unwrap() as i32);
        let stored: i32 = direct.query("SELECT randomnumber FROM world WHERE id = $1", &[&id])[0].get(0);
        assert_eq!(stored, n, "row {id}: returned {n}, stored {stored}");
        assert_ne!(before[id as usize - 1], n, "row {id} kept its old number");
    }

    // The users API's writes, each one statement through the pooler, and what they stored.
    let mut conn = server.connect();
    let email = unique_email("pgbouncer");
    let id = create_user(&mut conn, &email);
    let stored = |sql: &str| direct.query(sql, &[&id]);
    assert_eq!(stored("SELECT email FROM users WHERE id = $1")[0].get::<_, String>(0), email.to_lowercase());
    // A statement that fails on the unique index leaves the pooled connection usable.
    let dup =
        post_json(&mut conn, "/api/users", &serde_json::json!({"email": email.to_uppercase(), "password": PASSWORD}));
    assert_eq!(dup.status, 409, "{}", dup.text());
    let token = token_for(&mut conn, &email);
    let auth = format!("Bearer {token}");
    let live = "SELECT count(*) FROM sessions WHERE user_id = $1 AND NOT revoked";
    assert_eq!(stored(live)[0].get::<_, i64>(0), 1, "the session is stored");
    let path = format!("/api/users/{id}");
    let res = conn.send("PATCH", &path, &[JSON, ("Authorization", &auth)], Some(br#"{"name":"Through PgBouncer"}"#));
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(stored("SELECT name FROM users WHERE id = $1")[0].get::<_, String>(0), "Through PgBouncer");
    let res = conn.send("GET", &path, &[("Authorization", &auth)], None);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!((res.json()["id"].as_i64(), res.json()["name"].as_str()), (Some(id), Some("Through PgBouncer")));
    let res = conn.send("DELETE", "/api/sessions/current", &[("Authorization", &auth)], None);
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(stored(live)[0].get::<_, i64>(0), 0, "the session is revoked");
    let token = token_for(&mut conn, &email);
    let confirm = serde_json::json!({"current_password": PASSWORD}).to_string();
    let res =
        conn.send("DELETE", &path, &[JSON, ("Authorization", &format!("Bearer {token}"))], Some(confirm.as_bytes()));
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(stored("SELECT id FROM users WHERE id = $1").is_empty(), "the user is deleted");

    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
}
