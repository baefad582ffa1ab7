//! The cost of recording one request in the metrics (what every request pays), and of a
//! scrape after a million recorded requests.

use std::hint::black_box;
use std::time::Duration;

use bareapi::metrics::{Metrics, Writers};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;

fn metrics(c: &mut Criterion) {
    let m = Metrics::new(vec!["/plaintext", "/json", "/db", "/api/users/{id}"]);
    let many = m.shard(Writers::Many);
    let shard = m.shard(Writers::One);
    let mut g = c.benchmark_group("metrics");
    g.bench_function("record (one writer: per-core)", |b| {
        b.iter(|| {
            shard.record(black_box(2), black_box(&Method::GET), black_box(200), black_box(Duration::from_micros(420)))
        })
    });
    g.bench_function("record (many writers: multi-thread)", |b| {
        b.iter(|| {
            many.record(black_box(2), black_box(&Method::GET), black_box(200), black_box(Duration::from_micros(420)))
        })
    });
    for i in 0..1_000_000u64 {
        shard.record(
            (i % 5) as usize,
            &Method::GET,
            [200, 404, 503][(i % 3) as usize],
            Duration::from_micros(i % 5000),
        );
    }
    g.bench_function("render", |b| b.iter(|| black_box(m.render())));
    g.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
