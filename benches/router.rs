//! Router matching: static hit, parameter hit, miss and 405, on the real route table plus one
//! two-parameter route.

use std::hint::black_box;

use bareapi::router::{Match, Router};
use bareapi::routes::{Endpoint, ROUTES};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;

fn table() -> Router<Endpoint> {
    let mut routes = ROUTES.to_vec();
    // One two-parameter template, to measure the deepest match.
    routes.push((Method::GET, "/api/users/{id}/sessions/{sid}", Endpoint::Db));
    Router::new(&routes).unwrap()
}

fn router(c: &mut Criterion) {
    let r = table();
    let mut g = c.benchmark_group("router");
    g.bench_function("static_hit_first", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::GET), black_box("/plaintext")), Match::Found { .. }))
    });
    g.bench_function("static_hit_last", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::GET), black_box("/cached-queries")), Match::Found { .. }))
    });
    g.bench_function("param_hit", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::GET), black_box("/api/users/12345")), Match::Found { .. }))
    });
    g.bench_function("two_params_hit", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::GET), black_box("/api/users/1/sessions/2")), Match::Found { .. }))
    });
    g.bench_function("miss", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::GET), black_box("/no/such/path")), Match::NotFound))
    });
    g.bench_function("method_not_allowed", |b| {
        b.iter(|| matches!(r.find(black_box(&Method::DELETE), black_box("/json")), Match::MethodNotAllowed { .. }))
    });
    g.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
