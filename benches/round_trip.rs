//! A full in-process request through the service: routing, handler, error mapping, headers,
//! request id and metrics, for the routes that need no database (/plaintext, /json, a 404).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bareapi::app::{App, Shared};
use bareapi::config::{DbConfig, DbMode, OpsSettings, UsersSettings};
use bareapi::db::Db;
use bareapi::metrics::Writers;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;

fn app() -> App {
    // The pool is built but never used: these routes do not touch the database.
    let db_cfg = DbConfig {
        url: "postgres://bench@127.0.0.1:1/bench".to_owned(),
        pool_size: 1,
        shared_conns: 1,
        mode: DbMode::Shared,
        wait_timeout: Duration::from_millis(10),
        create_timeout: Duration::from_millis(10),
        recycle_timeout: Duration::from_millis(10),
    };
    let db = Db::new(&db_cfg, 1, 1).unwrap();
    let shared = Arc::new(
        Shared::new(bareapi::routes::MetricsOn::PublicPort, &bareapi::config::AbuseSettings::defaults(1)).unwrap(),
    );
    App::new(
        db,
        shared,
        UsersSettings {
            session_ttl: Duration::from_secs(60),
            max_body_bytes: 1 << 20,
            session_sweep_interval: Duration::from_secs(300),
        },
        OpsSettings {
            max_header_bytes: 16384,
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(1),
            access_log: false,
            record_metrics: true,
            request_ids: true,
        },
        Writers::One,
    )
}

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let app = rt.block_on(async { app() });
    let sleeps = std::sync::Arc::new(bareapi::sleeps::ConnSleeps::default());
    let mut g = c.benchmark_group("round_trip");
    for path in ["/plaintext", "/json", "/no/such/path"] {
        g.bench_function(path, |b| {
            b.iter(|| {
                let req = Request::get(path).header("host", "bench").body(Full::new(Bytes::new())).unwrap();
                black_box(
                    rt.block_on(bareapi::service::handle(&app, &sleeps, &std::net::Ipv4Addr::LOCALHOST.into(), req))
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
