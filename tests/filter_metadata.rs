//! Filtered searches keep each collection's provenance incrementally (issue 38): after
//! an import batch only the new records are read, and every filtered answer equals the
//! answer of a store opened afresh (which reads every record), through appends of new
//! samples, deletes and a compaction.

use std::collections::BTreeSet;

use vortexdb::{CollectionSpec, Filter, Metric, NewVector, PatchRecord, SearchOptions, Store};

fn rows(n: usize, offset: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            let x = (i + offset) as f32;
            vec![
                (x * 0.37).sin(),
                (x * 0.11).cos(),
                (x * 0.07).sin() + 1.5,
                1.0,
            ]
        })
        .collect()
}

fn insert(store: &Store, sample: &str, v: &[Vec<f32>]) -> Vec<u64> {
    let batch: Vec<NewVector> = v
        .iter()
        .enumerate()
        .map(|(i, r)| NewVector {
            vector: r,
            record: Some(PatchRecord {
                sample: sample.into(),
                origin: [i as i64, 0, 0],
                size: [1, 1, 1],
                tissue_fraction: 1.0,
            }),
        })
        .collect();
    store.insert("c", &batch, None).unwrap().collect()
}

/// What a filtered scan (sample, id pairs) and a filtered exact search (ids) answer.
type Answer = (BTreeSet<(String, u64)>, Vec<u64>);

/// The answers per sample set.
fn answers(store: &Store) -> Vec<Answer> {
    let q = vec![0.3, 0.5, 1.0, 1.0];
    let mut out = Vec::new();
    for samples in [vec!["a"], vec!["b"], vec!["a", "c"], vec!["c"]] {
        let f = Filter {
            samples: Some(samples.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let scored = store.similarities("c", &q, &f).unwrap();
        let set: BTreeSet<(String, u64)> = scored
            .items
            .iter()
            .map(|p| (scored.samples[p.sample as usize].clone(), p.id))
            .collect();
        let hits = store
            .search(
                "c",
                std::slice::from_ref(&q),
                &SearchOptions {
                    k: 15,
                    exact: true,
                    filter: f,
                    ..Default::default()
                },
            )
            .unwrap();
        out.push((set, hits[0].iter().map(|h| h.id).collect()));
    }
    out
}

#[test]
fn incremental_provenance_answers_as_a_whole_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::create(&path).unwrap();
    store
        .create_collection(&CollectionSpec::raw("c", 4, Metric::Cosine))
        .unwrap();
    let a = insert(&store, "a", &rows(300, 0));
    let check = |store: &Store, step: &str| {
        let got = answers(store);
        let fresh = Store::open_read_only(&path).unwrap();
        assert_eq!(got, answers(&fresh), "after {step}");
        got
    };
    let first = check(&store, "sample a");
    assert_eq!(first[0].0.len(), 300);
    assert!(first[1].0.is_empty());
    // Appends: another sample, then more of the first.
    insert(&store, "b", &rows(200, 1000));
    let got = check(&store, "sample b appended");
    assert_eq!((got[0].0.len(), got[1].0.len()), (300, 200));
    insert(&store, "a", &rows(50, 2000));
    insert(&store, "c", &rows(10, 3000));
    let got = check(&store, "more of a, and c");
    assert_eq!(
        (got[0].0.len(), got[2].0.len(), got[3].0.len()),
        (350, 360, 10)
    );
    // A delete, then a compaction, then an append again.
    store.delete("c", &a[..100]).unwrap();
    let got = check(&store, "a delete");
    assert_eq!(got[0].0.len(), 250);
    assert!(got[0].1.iter().all(|id| !a[..100].contains(id)));
    store.compact("c").unwrap();
    let got = check(&store, "a compaction");
    assert_eq!(got[0].0.len(), 250);
    insert(&store, "b", &rows(25, 4000));
    let got = check(&store, "an append after the compaction");
    assert_eq!(got[1].0.len(), 225);
}
