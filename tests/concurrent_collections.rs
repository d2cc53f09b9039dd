//! Concurrency per collection (issue 38): building one collection's graph never blocks
//! the searches of another, and a search never writes to the store (the snapshot a
//! search's catch-up leaves due is written when the store closes, or by
//! `save_snapshots`).
//!
//! No timing is asserted: the first test checks an order of events (searches of one
//! collection that both started and ended while the other's graph was being built,
//! which a lock shared by all collections makes impossible); the latency figures are
//! measured by `cargo bench --bench concurrent_search`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::{clustered, files};
use vortexdb::{CollectionSpec, Metric, NewVector, SearchOptions, Store};

fn fill(store: &Store, name: &str, rows: &[Vec<f32>]) {
    store
        .create_collection(&CollectionSpec::raw(name, rows[0].len(), Metric::L2))
        .unwrap();
    for chunk in rows.chunks(5_000) {
        let batch: Vec<NewVector> = chunk
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        store.insert(name, &batch, None).unwrap();
    }
}

#[test]
fn building_one_graph_does_not_block_searches_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let small = clustered(2_000, 16, 8, 1);
    let big = clustered(40_000, 32, 16, 2);
    {
        let store = Store::create(&path).unwrap();
        fill(&store, "small", &small);
        fill(&store, "big", &big);
    }
    // A fresh handle: no graph is loaded and "big" has no snapshot, so its first
    // search builds its whole graph.
    let store = Store::open(&path).unwrap();
    let opts = SearchOptions {
        k: 5,
        ..Default::default()
    };
    store.search("small", &small[..1], &opts).unwrap();
    let building = AtomicBool::new(true);
    let (build, searches) = std::thread::scope(|s| {
        let builder = s.spawn(|| {
            let t0 = Instant::now();
            let hits = store.search("big", &big[..1], &opts).unwrap();
            let t1 = Instant::now();
            building.store(false, Ordering::SeqCst);
            assert_eq!(hits[0][0].id, 0, "the built graph finds the query itself");
            (t0, t1)
        });
        let searcher = s.spawn(|| {
            let mut spans = Vec::new();
            let mut i = 0;
            while building.load(Ordering::SeqCst) {
                let q = &small[i % small.len()];
                let t0 = Instant::now();
                let hits = store
                    .search("small", std::slice::from_ref(q), &opts)
                    .unwrap();
                spans.push((t0, Instant::now()));
                assert_eq!(hits[0][0].distance, 0.0, "query {i} finds itself");
                i += 1;
            }
            spans
        });
        (builder.join().unwrap(), searcher.join().unwrap())
    });
    let (b0, b1) = build;
    // Searches that began after the build had surely taken its lock (a quarter of the
    // way in) and ended before it finished.
    let from = b0 + (b1 - b0) / 4;
    let inside = searches
        .iter()
        .filter(|(s0, s1)| *s0 >= from && *s1 <= b1)
        .count();
    eprintln!(
        "{inside} of {} searches of 'small' ran inside the build of 'big' ({:?})",
        searches.len(),
        b1 - b0
    );
    assert!(
        inside >= 3,
        "only {inside} of {} searches of 'small' ran while 'big' was built ({:?}): the \
         build blocked them",
        searches.len(),
        b1 - b0
    );
}

#[test]
fn a_search_never_writes_and_the_due_snapshot_is_written_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let rows = clustered(3_000, 8, 4, 3);
    {
        let store = Store::create(&path).unwrap();
        fill(&store, "c", &rows);
    }
    let store = Store::open(&path).unwrap();
    assert!(!store.info().unwrap().collections[0].1.fresh);
    let before = files(&path);
    let hits = store
        .search(
            "c",
            &rows[..3],
            &SearchOptions {
                k: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits[2][0].id, 2);
    // The search built the graph in memory and wrote nothing.
    let after = files(&path);
    let changed: Vec<_> = after
        .keys()
        .chain(before.keys())
        .filter(|f| after.get(*f) != before.get(*f))
        .collect();
    assert!(changed.is_empty(), "the search wrote {changed:?}");
    drop(store);
    let store = Store::open_read_only(&path).unwrap();
    assert!(
        store.info().unwrap().collections[0].1.fresh,
        "the snapshot left due by the search was not written at close"
    );
    drop(store);

    // save_snapshots writes it without closing.
    {
        let store = Store::open(&path).unwrap();
        let batch: Vec<NewVector> = rows[..10]
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        store.insert("c", &batch, None).unwrap();
    }
    let store = Store::open(&path).unwrap();
    store.sync_index("c").unwrap();
    assert!(!store.info().unwrap().collections[0].1.fresh);
    store.save_snapshots().unwrap();
    assert!(store.info().unwrap().collections[0].1.fresh);
}
