//! Rendering the fortunes page: sort the 13 rows and write the escaped table.

use std::hint::black_box;

use bareapi::html::render_fortunes;
use criterion::{Criterion, criterion_group, criterion_main};

fn rows() -> Vec<(i32, String)> {
    let tsv = include_str!("../tests/data/tfb-fortunes.tsv");
    let mut rows: Vec<(i32, String)> = tsv
        .lines()
        .skip(1)
        .map(|l| {
            let (id, msg) = l.split_once('\t').unwrap();
            (id.parse().unwrap(), msg.to_owned())
        })
        .collect();
    rows.push((0, "Additional fortune added at request time.".to_owned()));
    rows
}

fn fortunes(c: &mut Criterion) {
    let owned = rows();
    c.bench_function("fortunes/sort_and_render", |b| {
        b.iter(|| {
            let mut list: Vec<(i32, &str)> = owned.iter().map(|(id, m)| (*id, m.as_str())).collect();
            list.sort_unstable_by(|a, b| a.1.cmp(b.1));
            let mut html = Vec::with_capacity(1280);
            render_fortunes(&mut html, &list);
            black_box(html)
        })
    });
}

criterion_group!(benches, fortunes);
criterion_main!(benches);
