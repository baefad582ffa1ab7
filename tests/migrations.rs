//! `bareapi migrate` against real databases: the schema and seed data are exactly as the rules
//! say, re-running applies nothing, and concurrent migrators do not race.

mod common;

use std::process::Command;

use common::{FreshDb, postgres_sync};

fn migrate(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bareapi")).arg("migrate").env("DATABASE_URL", url).output().unwrap()
}

/// The seeded tables hold exactly the published data, and a second run applies nothing.
#[test]
fn migrate_seeds_the_published_tables_once() {
    let fresh = FreshDb::new("seed");
    let out = migrate(&fresh.url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = postgres_sync::Client::connect(&fresh.url);

    let stats = db.query(
        "SELECT count(*), min(id), max(id), min(randomnumber), max(randomnumber), count(DISTINCT id) FROM world",
        &[],
    );
    let row = &stats[0];
    assert_eq!(row.get::<_, i64>(0), 10_000);
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, i32>(2), 10_000);
    assert!(row.get::<_, i32>(3) >= 1);
    assert!(row.get::<_, i32>(4) <= 10_000);
    assert_eq!(row.get::<_, i64>(5), 10_000);

    let want = common::standard_fortunes();
    let got: Vec<(i32, String)> =
        db.query("SELECT id, message FROM fortune ORDER BY id", &[]).iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, want);

    let versions: Vec<i64> =
        db.query("SELECT version FROM schema_migrations ORDER BY version", &[]).iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, vec![1, 2, 3]);

    let again = migrate(&fresh.url);
    assert!(again.status.success());
    let count: i64 = db.query("SELECT count(*) FROM world", &[])[0].get(0);
    assert_eq!(count, 10_000, "a second run must not seed again");
}

/// Four migrators started at once on an empty database: all succeed, each migration is
/// applied exactly once (the advisory lock serialises them).
#[test]
fn concurrent_migrators_do_not_race() {
    let fresh = FreshDb::new("race");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_bareapi"))
                .arg("migrate")
                .env("DATABASE_URL", &fresh.url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = postgres_sync::Client::connect(&fresh.url);
    let n: i64 = db.query("SELECT count(*) FROM schema_migrations", &[])[0].get(0);
    assert_eq!(n, 3);
    let worlds: i64 = db.query("SELECT count(*) FROM world", &[])[0].get(0);
    assert_eq!(worlds, 10_000);
}

/// A database holding a `world` table that bareapi did not make: the exit message carries
/// PostgreSQL's own words and SQLSTATE, and says what to do.
#[test]
fn a_foreign_schema_is_refused_with_postgres_words_and_a_way_out() {
    let fresh = FreshDb::new("foreign");
    let db = postgres_sync::Client::connect(&fresh.url);
    db.query("CREATE TABLE world (id integer PRIMARY KEY)", &[]);
    let out = migrate(&fresh.url);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migration 0001_world.sql"), "{stderr}");
    assert!(stderr.contains(r#"ERROR 42P07: relation "world" already exists"#), "{stderr}");
    assert!(stderr.contains("bareapi did not make them"), "{stderr}");
    assert!(stderr.contains("an empty database"), "{stderr}");
    // Nothing half-applied: the failed migration's transaction rolled back.
    let n: i64 = db.query("SELECT count(*) FROM schema_migrations", &[])[0].get(0);
    assert_eq!(n, 0);
}

/// PostgreSQL's hint reaches the exit message too: a domain named `world` blocks the table
/// (42710, "a relation has an associated type of the same name").
#[test]
fn postgres_hints_reach_the_exit_message() {
    let fresh = FreshDb::new("hint");
    let db = postgres_sync::Client::connect(&fresh.url);
    db.query("CREATE DOMAIN world AS integer", &[]);
    let out = migrate(&fresh.url);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"ERROR 42710: type "world" already exists"#), "{stderr}");
    assert!(stderr.contains("(hint: A relation has an associated type of the same name"), "{stderr}");
    assert!(stderr.contains("bareapi did not make them"), "{stderr}");
}

/// A malformed DATABASE_URL is refused with a message, not a panic.
#[test]
fn malformed_database_url_is_refused_with_a_message() {
    let out = migrate("postgres://[::1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
