//! gzip (flate2, level 1) of a 4 KiB and a 64 KiB users-API JSON body.

use std::hint::black_box;

use bareapi::http::compression::gzip;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn body(bytes: usize) -> Vec<u8> {
    let mut out = b"{\"items\":[".to_vec();
    let mut i = 0;
    while out.len() < bytes {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"email\":\"user-{i}@example.com\",\"name\":\"User Number {i}\",\
                 \"created_at\":\"2026-11-23T15:43:30.057674Z\",\"updated_at\":\"2026-11-23T15:43:30.057674Z\"}},"
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(bytes);
    out
}

fn compression(c: &mut Criterion) {
    let mut g = c.benchmark_group("gzip");
    for (name, size) in [("4KiB", 4 * 1024), ("64KiB", 64 * 1024)] {
        let input = body(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(name, |b| b.iter(|| black_box(gzip(black_box(&input)))));
    }
    g.finish();
}

criterion_group!(benches, compression);
criterion_main!(benches);
