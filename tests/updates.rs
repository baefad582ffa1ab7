//! /updates against the real binary and database. Kept apart from the read-only suite so that
//! nothing else writes to `world` while these tests compare what was returned with what is
//! stored; the tests here take turns for the same reason.

mod common;

use common::{Server, db_client};
use serde_json::Value;

/// The tests here write to `world` and compare it before and after; they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn world(v: &Value) -> (i32, i32) {
    let obj = v.as_object().expect("world is an object");
    assert_eq!(obj.len(), 2, "{v}");
    let id = obj["id"].as_i64().expect("id") as i32;
    let n = obj["randomNumber"].as_i64().expect("randomNumber") as i32;
    assert!((1..=10_000).contains(&id) && (1..=10_000).contains(&n), "{v}");
    (id, n)
}

fn stored(db: &common::postgres_sync::Client) -> Vec<i32> {
    db.query("SELECT id, randomnumber FROM world ORDER BY id", &[]).iter().map(|r| r.get(1)).collect()
}

/// Every returned row is persisted with a number different from the one it had, the ids of
/// one batch are distinct, `queries` is clamped, and both runtime modes and both db modes agree.
#[test]
fn updates_persist_a_new_number_for_every_returned_row() {
    let _turn = serial();
    let db = db_client();
    for flags in [&["--runtime", "per-core"][..], &["--runtime", "multi-thread"], &["--db-mode", "checkout"]] {
        let server = Server::start(flags);
        let mut conn = server.connect();
        for (query, want) in
            [("?queries=20", 20), ("?queries=1", 1), ("?queries=foo", 1), ("?queries=0", 1), ("?queries=501", 500)]
        {
            let before = stored(&db);
            let res = conn.request("GET", &format!("/updates{query}"));
            assert_eq!(res.status, 200, "{}", res.text());
            res.assert_standard_headers();
            assert_eq!(res.header("content-type"), Some("application/json"));
            let after = stored(&db);
            let rows = res.json();
            let rows = rows.as_array().unwrap();
            assert_eq!(rows.len(), want, "{query}");
            let mut ids = Vec::new();
            for row in rows {
                let (id, n) = world(row);
                let i = (id - 1) as usize;
                assert_eq!(after[i], n, "row {id} was not persisted ({flags:?} {query})");
                assert_ne!(before[i], n, "row {id} kept its old number");
                ids.push(id);
            }
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), want, "ids within one batch are distinct");
            let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            assert_eq!(changed, want, "only the returned rows changed");
        }
    }
}

/// Concurrent /updates batches (which lock overlapping rows) all succeed: deadlocks between
/// batches are avoided by locking in id order, and retried if PostgreSQL still reports one.
#[test]
fn concurrent_update_batches_all_succeed() {
    let _turn = serial();
    let server = Server::start(&[]);
    let addr = server.addr;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = common::Conn::new(addr);
                for _ in 0..10 {
                    let res = conn.request("GET", "/updates?queries=200");
                    assert_eq!(res.status, 200, "{}", res.text());
                    assert_eq!(res.json().as_array().unwrap().len(), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no failed batch");
    }
}
