//! Insertion order (issue 38): a collection that receives batches from shifting
//! distributions (a small first batch, a search after every batch so the graph follows
//! the import, later batches about other centres and at other scales) against the same
//! vectors imported at once (one search at the end builds the graph from every row),
//! for every representation. Recall@10 against exact search on held-out queries drawn
//! from the batches' distributions, at several ef, default rescoring; and the times.
//!
//!     cargo bench --bench insertion_order -- [N] [DIM] [FIRST] [BATCHES] [QUERIES]
//!     # default 140000 128 64 14 1000

#[path = "../tests/common/shifting.rs"]
mod shifting;

use std::time::Instant;

use vortexdb::{CollectionSpec, Metric, NewVector, Quantization, SearchOptions, Store};

fn import(
    store: &Store,
    name: &str,
    q: Quantization,
    dim: usize,
    batches: &[Vec<Vec<f32>>],
    between: bool,
) -> (f64, f64) {
    store
        .create_collection(&CollectionSpec::raw(name, dim, Metric::L2).with_quantization(q))
        .unwrap();
    let probe = [batches[0][0].clone()];
    let (mut ins, mut search) = (0.0, 0.0);
    for batch in batches {
        let nv: Vec<NewVector> = batch
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        let t = Instant::now();
        store.insert(name, &nv, None).unwrap();
        ins += t.elapsed().as_secs_f64();
        if between {
            let t = Instant::now();
            store
                .search(name, &probe, &SearchOptions::default())
                .unwrap();
            search += t.elapsed().as_secs_f64();
        }
    }
    if !between {
        let t = Instant::now();
        store
            .search(name, &probe, &SearchOptions::default())
            .unwrap();
        search += t.elapsed().as_secs_f64();
    }
    (ins, search)
}

fn recall(store: &Store, name: &str, queries: &[Vec<f32>], truth: &[Vec<u64>], ef: usize) -> f64 {
    let opts = SearchOptions {
        k: 10,
        ef,
        ..Default::default()
    };
    let found = store.search(name, queries, &opts).unwrap();
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|h| t.contains(&h.id)).count())
        .sum();
    hits as f64 / (10 * queries.len()) as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .map(|a| a.parse().unwrap())
        .collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (n, dim, first, nb, nq) = (
        arg(0, 140_000),
        arg(1, 128),
        arg(2, 64),
        arg(3, 14),
        arg(4, 1_000),
    );
    let (batches, queries) = shifting::shifting(n, dim, first, nb, nq);
    println!(
        "{n} x {dim}, L2: a first batch of {first}, then {nb} batches from shifting \
         distributions; {nq} queries; {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let mut truth: Option<Vec<Vec<u64>>> = None;
    println!("| representation | ef | shifting | at once | difference |");
    println!("|---|---|---|---|---|");
    let mut times = Vec::new();
    for q in [Quantization::F32, Quantization::Int8, Quantization::Binary] {
        let store = Store::create(dir.path().join(q.name())).unwrap();
        let inc = import(&store, "inc", q, dim, &batches, true);
        let once = import(&store, "once", q, dim, &batches, false);
        let truth = truth.get_or_insert_with(|| {
            let exact = SearchOptions {
                k: 10,
                exact: true,
                ..Default::default()
            };
            store
                .search("once", &queries, &exact)
                .unwrap()
                .into_iter()
                .map(|h| h.into_iter().map(|h| h.id).collect())
                .collect()
        });
        for ef in [64, 128, 256] {
            let a = recall(&store, "inc", &queries, truth, ef);
            let b = recall(&store, "once", &queries, truth, ef);
            println!("| {} | {ef} | {a:.4} | {b:.4} | {:+.4} |", q.name(), a - b);
        }
        times.push((q, inc, once));
        drop(store);
    }
    println!(
        "\n| representation | shifting: inserts s | searches between batches s | at once: inserts s | build s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (q, inc, once) in times {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            q.name(),
            inc.0,
            inc.1,
            once.0,
            once.1
        );
    }
}
