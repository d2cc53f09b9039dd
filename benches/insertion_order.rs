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

use shifting::{import, recall, truth};
use vortexdb::{Quantization, Store};

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
    let mut expected: Option<Vec<Vec<u64>>> = None;
    println!("| representation | ef | shifting | at once | difference |");
    println!("|---|---|---|---|---|");
    let mut times = Vec::new();
    for q in [Quantization::F32, Quantization::Int8, Quantization::Binary] {
        let store = Store::create(dir.path().join(q.name())).unwrap();
        let inc = import(&store, "inc", q, &batches, true);
        let once = import(&store, "once", q, &batches, false);
        let truth = expected.get_or_insert_with(|| truth(&store, "once", &queries));
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
