//! JSON in and out. Parsing a users-API body: simd-json into borrowed values read by field (what
//! bareapi does) against serde_json into a borrowed struct. Serializing the suite's responses:
//! simd-json's serde serializer (what bareapi does) against serde_json.

use std::hint::black_box;

use bareapi::db::world::World;
use bareapi::http::json_in::{Fields, parse_object};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

const BODY: &str =
    r#"{"email":"Ann.Example+tag@Example.COM","password":"correct horse battery staple","name":"Ann Example"}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CreateUser<'a> {
    email: &'a str,
    password: &'a str,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_users_body");
    g.bench_function("simd_json_fields", |b| {
        b.iter(|| {
            let mut buf = BODY.as_bytes().to_vec();
            let obj = parse_object(&mut buf).unwrap();
            let mut f = Fields::new(&obj, &["email", "password", "name"]);
            let e = f.string("email").map(str::len);
            let p = f.string("password").map(str::len);
            let n = f.opt_string("name").map(str::len);
            f.finish().unwrap();
            black_box((e, p, n))
        })
    });
    g.bench_function("serde_json_struct", |b| {
        b.iter(|| {
            // The same copy of the body as the simd-json case makes, for a like-for-like cost.
            let buf = BODY.as_bytes().to_vec();
            let u: CreateUser<'_> = serde_json::from_slice(&buf).unwrap();
            black_box((u.email.len(), u.password.len(), u.name.map(str::len)))
        })
    });
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let world = World { id: 4321, random_number: 8765 };
    let worlds: Vec<World> = (1..=20).map(|i| World { id: i * 17, random_number: i * 31 }).collect();
    let mut g = c.benchmark_group("serialize");
    g.bench_function("message/simd_json", |b| {
        b.iter(|| black_box(simd_json::to_vec(&Message { message: "Hello, World!" })))
    });
    g.bench_function("message/serde_json", |b| {
        b.iter(|| black_box(serde_json::to_vec(&Message { message: "Hello, World!" })))
    });
    g.bench_function("world/simd_json", |b| b.iter(|| black_box(simd_json::to_vec(black_box(&world)))));
    g.bench_function("world/serde_json", |b| b.iter(|| black_box(serde_json::to_vec(black_box(&world)))));
    g.bench_function("20_worlds/simd_json", |b| b.iter(|| black_box(simd_json::to_vec(black_box(&worlds)))));
    g.bench_function("20_worlds/serde_json", |b| b.iter(|| black_box(serde_json::to_vec(black_box(&worlds)))));
    g.finish();
}

criterion_group!(benches, parse, serialize);
criterion_main!(benches);
