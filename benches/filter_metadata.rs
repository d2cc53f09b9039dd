//! The first filtered search after an import batch (issue 38, "filtered searches keep
//! their metadata incrementally"): on a collection of N vectors with patch records, a
//! batch of B vectors is imported, then one sample-filtered exact search runs. Timed
//! against the same search on a freshly opened handle, which reads every record (what
//! every first filtered search after a write did before), interleaved, medians.
//!
//!     cargo bench --bench filter_metadata -- [N] [B] [ROUNDS]   # default 500000 1000 5

use std::time::Instant;

use vortexdb::{CollectionSpec, Filter, Metric, NewVector, PatchRecord, SearchOptions, Store};

fn batch(n: usize, offset: usize, samples: usize) -> (Vec<Vec<f32>>, Vec<PatchRecord>) {
    let rows = (0..n)
        .map(|i| {
            let x = (i + offset) as f32;
            (0..16)
                .map(|d| (x * 0.013 * (d + 1) as f32).sin() + 1.5)
                .collect()
        })
        .collect();
    let recs = (0..n)
        .map(|i| PatchRecord {
            sample: format!("s{}", (i + offset) % samples),
            origin: [(i + offset) as i64, 0, 0],
            size: [16, 32, 32],
            tissue_fraction: 1.0,
        })
        .collect();
    (rows, recs)
}

fn insert(store: &Store, n: usize, offset: usize) {
    let (rows, recs) = batch(n, offset, 20);
    let b: Vec<NewVector> = rows
        .iter()
        .zip(recs)
        .map(|(v, r)| NewVector {
            vector: v,
            record: Some(r),
        })
        .collect();
    store.insert("c", &b, None).unwrap();
}

fn search(store: &Store) -> f64 {
    let t = Instant::now();
    let hits = store
        .search(
            "c",
            &[vec![0.5; 16]],
            &SearchOptions {
                k: 10,
                exact: true,
                filter: Filter {
                    samples: Some(vec!["s3".into()]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits[0].len(), 10);
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = *args.first().unwrap_or(&500_000);
    let b = *args.get(1).unwrap_or(&1_000);
    let rounds = *args.get(2).unwrap_or(&5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::create(&path).unwrap();
    store
        .create_collection(&CollectionSpec::raw("c", 16, Metric::Cosine))
        .unwrap();
    let t = Instant::now();
    for k in 0..n.div_ceil(10_000) {
        insert(&store, 10_000.min(n - k * 10_000), k * 10_000);
    }
    eprintln!(
        "{n} vectors with records written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    search(&store);
    let (mut inc, mut whole) = (Vec::new(), Vec::new());
    let mut offset = n;
    for _ in 0..rounds {
        insert(&store, b, offset);
        offset += b;
        inc.push(search(&store));
        let fresh = Store::open_read_only(&path).unwrap();
        whole.push(search(&fresh));
    }
    let (i, w) = (median(inc), median(whole));
    println!(
        "first sample-filtered exact search after a batch of {b} on {n} vectors (20 samples), \
         median of {rounds}: incremental {:.1} ms, whole read (fresh handle) {:.1} ms: {:.1}x",
        i * 1e3,
        w * 1e3,
        w / i
    );
}
