//! Packed vectors (issue 19): disk use against the raw f32 bytes, and a one-sample
//! heatmap read from the packed file against the same scan over vectors held in RAM
//! (what `similarities` did before: a parallel dot product over the graph's
//! normalised f32 vectors with a provenance lookup per id), interleaved round by
//! round, best of each.
//!
//! ```text
//! cargo bench --bench packed_storage -- disk N DIM [QUANT]
//! cargo bench --bench packed_storage -- heatmap N DIM ROUNDS
//! ```

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;
use vortexdb::{CollectionSpec, Filter, Metric, NewVector, PatchRecord, Quantization, Store};

fn rows(n0: usize, n: usize, dim: usize) -> Vec<f32> {
    // Embedding-like: a few directions per cluster plus noise, deterministic.
    let mut out = Vec::with_capacity(n * dim);
    let mut s = 0x9E3779B97F4A7C15u64 ^ n0 as u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for i in n0..n0 + n {
        let c = (i % 97) as f32;
        for j in 0..dim {
            out.push(((c + 1.0) * (j as f32 + 1.0) * 0.013).sin() + 0.3 * next());
        }
    }
    out
}

fn fill(store: &Store, n: usize, dim: usize, sample: &str) {
    let batch = 10_000;
    for b0 in (0..n).step_by(batch) {
        let m = batch.min(n - b0);
        let v = rows(b0, m, dim);
        let nv: Vec<NewVector> = v
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, x)| NewVector {
                vector: x,
                record: Some(PatchRecord {
                    sample: sample.into(),
                    origin: [
                        (b0 + i) as i64 / 10_000,
                        ((b0 + i) % 10_000) as i64 / 100,
                        ((b0 + i) % 100) as i64,
                    ],
                    size: [8, 8, 8],
                    tissue_fraction: 1.0,
                }),
            })
            .collect();
        store.insert("c", &nv, None).unwrap();
    }
}

fn disk(n: usize, dim: usize, q: Quantization) {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or("/tmp".into())).unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .create_collection(&CollectionSpec::raw("c", dim, Metric::Cosine).with_quantization(q))
        .unwrap();
    let t = Instant::now();
    fill(&store, n, dim, "s");
    let write_s = t.elapsed().as_secs_f64();
    let info = store.info().unwrap();
    let d = info.disk[0];
    let vectors = d.packed_bytes + info.db_bytes;
    println!(
        "{{\"n\": {n}, \"dim\": {dim}, \"raw_bytes\": {}, \"packed_bytes\": {}, \"db_bytes\": {}, \
         \"ratio_packed\": {:.4}, \"ratio_packed_and_redb\": {:.4}, \"write_s\": {write_s:.1}}}",
        d.raw_bytes,
        d.packed_bytes,
        info.db_bytes,
        d.packed_bytes as f64 / d.raw_bytes as f64,
        vectors as f64 / d.raw_bytes as f64
    );
}

fn heatmap(n: usize, dim: usize, rounds: usize) {
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or("/tmp".into())).unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .create_collection(
            &CollectionSpec::raw("c", dim, Metric::Cosine).with_quantization(Quantization::Int8),
        )
        .unwrap();
    // One other sample first, so the one asked for is a part of the collection.
    fill(&store, n / 4, dim, "other");
    fill(&store, n, dim, "one");
    let filter = Filter {
        samples: Some(vec!["one".into()]),
        ..Default::default()
    };
    // The in-memory side: every vector normalised in RAM, provenance by id.
    let mut ram: Vec<(u64, Vec<f32>)> = Vec::new();
    let mut meta: HashMap<u64, (u32, [i64; 3])> = HashMap::new();
    let mut id = 0u64;
    for (s, count) in [(0u32, n / 4), (1, n)] {
        for b0 in (0..count).step_by(10_000) {
            let m = 10_000.min(count - b0);
            for x in rows(b0, m, dim).chunks_exact(dim) {
                ram.push((id, vortexdb::prepare(x, Metric::Cosine).unwrap()));
                meta.insert(id, (s, [0, 0, id as i64]));
                id += 1;
            }
        }
    }
    let q = vortexdb::prepare(&rows(7, 1, dim), Metric::Cosine).unwrap();
    let t = Instant::now();
    let first = store.similarities("c", &q, &filter).unwrap();
    let first_s = t.elapsed().as_secs_f64();
    let (mut best_packed, mut best_ram) = (f64::INFINITY, f64::INFINITY);
    let mut max_err = 0f32;
    for _ in 0..rounds {
        let t = Instant::now();
        let packed = store.similarities("c", &q, &filter).unwrap();
        best_packed = best_packed.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mem: Vec<(u64, f32)> = ram
            .par_iter()
            .filter_map(|(id, v)| {
                let (s, _) = meta.get(id)?;
                (*s == 1).then(|| (*id, v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>()))
            })
            .collect();
        best_ram = best_ram.min(t.elapsed().as_secs_f64());
        assert_eq!(mem.len(), packed.items.len());
        let by_id: HashMap<u64, f32> = mem.into_iter().collect();
        for it in &packed.items {
            max_err = max_err.max((it.score - by_id[&it.id]).abs());
        }
    }
    println!(
        "{{\"patches\": {}, \"collection\": {}, \"dim\": {dim}, \"first_packed_s\": {first_s:.3}, \
         \"packed_s\": {best_packed:.3}, \"in_memory_s\": {best_ram:.3}, \
         \"packed_over_memory\": {:.3}, \"max_abs_err\": {max_err:e}}}",
        first.items.len(),
        n + n / 4,
        best_packed / best_ram
    );
}

fn main() {
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|x| x != "--bench")
        .collect();
    let num = |i: usize, d: usize| a.get(i).and_then(|x| x.parse().ok()).unwrap_or(d);
    match a.first().map(String::as_str) {
        Some("disk") => disk(
            num(1, 1_000_000),
            num(2, 512),
            Quantization::from_name(a.get(3).map_or("f32", |s| s)).unwrap(),
        ),
        Some("heatmap") => heatmap(num(1, 1_000_000), num(2, 512), num(3, 5)),
        _ => eprintln!("usage: packed_storage disk N DIM [QUANT] | heatmap N DIM ROUNDS"),
    }
}
