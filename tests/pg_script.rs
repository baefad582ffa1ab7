//! `scripts/pg.sh`, the private clusters every test, the load tests and the run command use:
//! over TCP a connection needs the cluster's password, and the cluster's socket and files are
//! its owner's alone.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn pg(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
    let out = Command::new("bash").arg(script).args(args).output().expect("run pg.sh");
    assert!(out.status.success(), "pg.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A cluster of this test's own, stopped and deleted however the test ends.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether connecting with `url` succeeds; PostgreSQL's words when it does not.
fn connects(url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| format!("{e:?}"))?;
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.map_err(|e| format!("{e:?}"))?;
        Ok(())
    })
}

#[test]
fn tcp_connections_need_the_clusters_password() {
    let dir = std::env::temp_dir().join(format!("bareapi-pg-script-{}", std::process::id()));
    let cluster = Cluster(dir.clone());
    let port = pg(&["free-port"]).trim().to_owned();
    let url = pg(&["start", dir.to_str().unwrap(), &port, "--throwaway"]).trim().to_owned();

    let (userinfo, rest) = url.strip_prefix("postgres://").unwrap().split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').expect("the URL carries a password");
    assert_eq!(user, "bareapi");
    assert!(password.len() >= 20, "a password of some length: {password:?}");
    connects(&url).unwrap_or_else(|e| panic!("with the password: {e}"));
    let without = format!("postgres://{user}@{rest}");
    let err = connects(&without).expect_err("without a password");
    assert!(err.contains("password"), "{err}");
    let wrong = format!("postgres://{user}:not-{password}@{rest}");
    let err = connects(&wrong).expect_err("with a wrong password");
    assert!(err.contains("28P01") || err.contains("password authentication failed"), "{err}");

    // The password file and the folder holding the socket are private.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("bareapi.password")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert!(
        std::fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(".s.PGSQL."))
    );

    // Started again, the same URL.
    pg(&["stop", dir.to_str().unwrap()]);
    assert_eq!(pg(&["start", dir.to_str().unwrap(), &port, "--throwaway"]).trim(), url);
    connects(&url).unwrap();
    drop(cluster);
}
