//! Insertion order (issue 38): a collection that receives batches from shifting
//! distributions (a small first batch, a search after every batch so that the graph
//! follows the import, later batches about other centres and at other scales) answers
//! as well as the same vectors imported at once, for every representation. The int8
//! codes need no fit (each vector has its own offset and step), so nothing in them
//! depends on the order; the binary codes' mean is still fitted on the first batch.
//! `cargo bench --bench insertion_order` runs the same at 140,000 x 128.

#[path = "common/shifting.rs"]
mod shifting;

use shifting::{import, recall, truth};
use vortexdb::{Quantization, Store};

const N: usize = 60_000;
const DIM: usize = 64;
const FIRST: usize = 64;
const BATCHES: usize = 14;
const QUERIES: usize = 500;

#[test]
fn shifting_batches_answer_as_well_as_the_import_at_once() {
    let (batches, queries) = shifting::shifting(N, DIM, FIRST, BATCHES, QUERIES);
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    let mut expected: Option<Vec<Vec<u64>>> = None;
    for q in [Quantization::F32, Quantization::Int8, Quantization::Binary] {
        let store = Store::create(dir.path().join(q.name())).unwrap();
        import(&store, "inc", q, &batches, true);
        import(&store, "once", q, &batches, false);
        let truth = expected.get_or_insert_with(|| truth(&store, "once", &queries));
        for ef in [64, 128, 256] {
            let (inc, once) = (
                recall(&store, "inc", &queries, truth, ef),
                recall(&store, "once", &queries, truth, ef),
            );
            eprintln!("{} ef {ef}: shifting {inc:.4}, at once {once:.4}", q.name());
            if inc < once - 0.01 {
                failed.push(format!("{} ef {ef}: {inc:.4} against {once:.4}", q.name()));
            }
            if q != Quantization::Binary && once < 0.85 {
                failed.push(format!("{} ef {ef}: at once only {once:.4}", q.name()));
            }
        }
    }
    assert!(failed.is_empty(), "recall@10: {failed:?}");
}
