//! Searches of one collection while another collection's graph is built (issue 38,
//! "concurrency per collection"): a store holds a small collection and a big one
//! without a snapshot. Each round opens the store read-only (nothing is loaded), warms
//! the small collection's graph, times single-query searches of it on an idle store,
//! then times the same searches while another thread's first search of the big
//! collection builds its whole graph. Reported: p50 / p99 latency idle and during the
//! build, their ratio, and the build's time; rounds interleaved, medians.
//!
//!     cargo bench --bench concurrent_search -- [BIG] [ROUNDS]   # default 150000 3

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use vortexdb::{CollectionSpec, Metric, NewVector, SearchOptions, Store};

const DIM: usize = 64;
const SMALL: usize = 20_000;
const IDLE_SEARCHES: usize = 4_000;

/// Gaussian-like clustered rows (sum of uniforms), deterministic.
fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32
    };
    let centres: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..DIM).map(|_| u() * 10.0).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|c| c + (u() + u() + u() - 1.5))
                .collect()
        })
        .collect()
}

fn fill(store: &Store, name: &str, rows: &[Vec<f32>]) {
    store
        .create_collection(&CollectionSpec::raw(name, DIM, Metric::L2))
        .unwrap();
    for chunk in rows.chunks(10_000) {
        let b: Vec<NewVector> = chunk
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        store.insert(name, &b, None).unwrap();
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn timed(store: &Store, queries: &[Vec<f32>], i: usize, opts: &SearchOptions) -> f64 {
    let t = Instant::now();
    let hits = store
        .search(
            "small",
            std::slice::from_ref(&queries[i % queries.len()]),
            opts,
        )
        .unwrap();
    assert!(!hits[0].is_empty());
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let big: usize = args.first().map_or(150_000, |a| a.parse().unwrap());
    let rounds: usize = args.get(1).map_or(3, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let small = rows(SMALL, 1);
    let big_rows = rows(big, 2);
    {
        let store = Store::create(&path).unwrap();
        fill(&store, "small", &small);
        fill(&store, "big", &big_rows);
        store.sync_index("small").unwrap();
        store.save_snapshot("small").unwrap();
    }
    let queries = rows(1_000, 3);
    let opts = SearchOptions {
        k: 10,
        ef: 64,
        ..Default::default()
    };
    println!(
        "store: 'small' {SMALL} x {DIM} (snapshot), 'big' {big} x {DIM} (no snapshot); \
         single-query searches of 'small', k 10, ef 64; {} build threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (mut p50s, mut p99s, mut busy50, mut busy99, mut builds) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Read-only: the big graph is built in memory each round, never snapshotted.
        let store = Store::open_read_only(&path).unwrap();
        store.sync_index("small").unwrap();
        for i in 0..200 {
            timed(&store, &queries, i, &opts);
        }
        let mut idle: Vec<f64> = (0..IDLE_SEARCHES)
            .map(|i| timed(&store, &queries, i, &opts))
            .collect();
        let building = AtomicBool::new(true);
        let (build_s, mut busy) = std::thread::scope(|s| {
            let b = s.spawn(|| {
                let t = Instant::now();
                store.search("big", &big_rows[..1], &opts).unwrap();
                building.store(false, Ordering::SeqCst);
                t.elapsed().as_secs_f64()
            });
            let q = s.spawn(|| {
                let mut lat = Vec::new();
                let mut i = 0;
                while building.load(Ordering::SeqCst) {
                    lat.push(timed(&store, &queries, i, &opts));
                    i += 1;
                }
                lat
            });
            (b.join().unwrap(), q.join().unwrap())
        });
        let (i50, i99) = (percentile(&mut idle, 0.5), percentile(&mut idle, 0.99));
        let (b50, b99) = (percentile(&mut busy, 0.5), percentile(&mut busy, 0.99));
        println!(
            "round {round}: idle p50 {i50:.3} ms p99 {i99:.3} ms | during the build ({build_s:.1} s, \
             {} searches) p50 {b50:.3} ms p99 {b99:.3} ms | p99 ratio {:.2}",
            busy.len(),
            b99 / i99
        );
        p50s.push(i50);
        p99s.push(i99);
        busy50.push(b50);
        busy99.push(b99);
        builds.push(build_s);
    }
    let (i99, b99) = (median(p99s), median(busy99));
    println!(
        "median of {rounds}: idle p50 {:.3} ms p99 {i99:.3} ms; during the build p50 {:.3} ms \
         p99 {b99:.3} ms; p99 ratio {:.2} (target <= 2); build {:.1} s",
        median(p50s),
        median(busy50),
        b99 / i99,
        median(builds)
    );
}
