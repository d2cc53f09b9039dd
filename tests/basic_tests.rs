//! Store behaviour through the library API: insert, get, delete, search with filters,
//! exact agreement, snapshots, catch-up, compaction, readers beside a writer.

mod common;

use common::{brute_force, clustered};
use vortexdb::{
    CollectionSpec, Error, Filter, Metric, NewVector, PatchRecord, Region, SearchOptions, Store,
};

fn insert_rows(
    store: &Store,
    name: &str,
    rows: &[Vec<f32>],
    sample: impl Fn(usize) -> Option<PatchRecord>,
) {
    for (c, chunk) in rows.chunks(1000).enumerate() {
        let batch: Vec<NewVector> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| NewVector {
                vector: v,
                record: sample(c * 1000 + i),
            })
            .collect();
        store.insert(name, &batch, None).unwrap();
    }
}

fn record(i: usize) -> Option<PatchRecord> {
    Some(PatchRecord {
        sample: format!("s{}", i % 4),
        origin: [(i % 10) as i64, (i / 10 % 10) as i64, (i / 100) as i64],
        size: [21, 112, 112],
        tissue_fraction: 1.0,
    })
}

#[test]
fn insert_get_search_matches_exact_and_self_recall() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .create_collection(&CollectionSpec::raw("v", 24, Metric::L2))
        .unwrap();
    let rows = clustered(3000, 24, 20, 1);
    insert_rows(&store, "v", &rows, |_| None);
    let (v, rec) = store.get("v", 1234).unwrap().unwrap();
    assert_eq!(v, rows[1234]);
    assert!(rec.is_none());
    assert!(store.get("v", 3000).unwrap().is_none());
    // Every stored vector finds itself (no orphaned points).
    let hits = store
        .search(
            "v",
            &rows,
            &SearchOptions {
                k: 1,
                ef: 64,
                ..Default::default()
            },
        )
        .unwrap();
    // Every stored vector is reachable: a search for it finds it. At ef 64 a rare
    // miss is an approximate-search miss; a wider search must then find it.
    let misses: Vec<usize> = (0..rows.len())
        .filter(|&i| hits[i][0].id != i as u64)
        .collect();
    assert!(
        misses.len() <= 3,
        "{} of 3000 stored vectors not found at ef 64",
        misses.len()
    );
    for &i in &misses {
        let wide = store
            .search(
                "v",
                &rows[i..i + 1],
                &SearchOptions {
                    k: 1,
                    ef: 512,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            wide[0][0].id,
            i as u64,
            "stored vector {i} is unreachable (orphaned): {:?}",
            (
                &wide[0],
                store
                    .search(
                        "v",
                        &rows[i..i + 1],
                        &SearchOptions {
                            k: 2,
                            exact: true,
                            ..Default::default()
                        }
                    )
                    .unwrap()
            )
        );
    }
    // Exact search equals brute force; HNSW recall@10 is high.
    let queries = clustered(50, 24, 20, 99);
    let exact = store
        .search(
            "v",
            &queries,
            &SearchOptions {
                k: 10,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    let approx = store
        .search(
            "v",
            &queries,
            &SearchOptions {
                k: 10,
                ef: 128,
                ..Default::default()
            },
        )
        .unwrap();
    let mut found = 0;
    for (i, q) in queries.iter().enumerate() {
        let truth = brute_force(&rows, q, 10);
        assert_eq!(exact[i].iter().map(|h| h.id).collect::<Vec<_>>(), truth);
        found += approx[i].iter().filter(|h| truth.contains(&h.id)).count();
    }
    let recall = found as f64 / 500.0;
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[test]
fn filters_by_sample_and_region_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .create_collection(&CollectionSpec::raw("p", 16, Metric::Cosine))
        .unwrap();
    let rows = clustered(4000, 16, 10, 2);
    insert_rows(&store, "p", &rows, record);
    let q = clustered(10, 16, 10, 3);
    let cases = vec![
        Filter {
            samples: Some(vec!["s1".into()]),
            ..Default::default()
        },
        Filter {
            exclude_samples: vec!["s0".into(), "s2".into()],
            ..Default::default()
        },
        Filter {
            region: Some(Region {
                min: [0, 0, 0],
                max: [5, 5, 40],
            }),
            ..Default::default()
        },
        Filter {
            samples: Some(vec!["s3".into()]),
            region: Some(Region {
                min: [2, 0, 0],
                max: [10, 10, 40],
            }),
            ..Default::default()
        },
    ];
    for f in cases {
        let approx = store
            .search(
                "p",
                &q,
                &SearchOptions {
                    k: 10,
                    ef: 200,
                    filter: f.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        let exact = store
            .search(
                "p",
                &q,
                &SearchOptions {
                    k: 10,
                    exact: true,
                    filter: f.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        for (a, e) in approx.iter().zip(&exact) {
            assert_eq!(a.len(), 10);
            for h in a {
                let (_, rec) = store.get("p", h.id).unwrap().unwrap();
                let rec = rec.unwrap();
                if let Some(s) = &f.samples {
                    assert!(
                        s.contains(&rec.sample),
                        "filter {f:?} let {} through",
                        rec.sample
                    );
                }
                assert!(!f.exclude_samples.contains(&rec.sample));
                if let Some(r) = &f.region {
                    assert!((0..3).all(|i| rec.origin[i] >= r.min[i] && rec.origin[i] < r.max[i]));
                }
            }
            let overlap = a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count();
            assert!(overlap >= 9, "filtered search far from exact: {overlap}/10");
        }
    }
}

#[test]
fn deleted_vectors_never_returned_and_compaction_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let rows = clustered(2000, 8, 10, 4);
    let q = clustered(20, 8, 10, 5);
    {
        let store = Store::create(&path).unwrap();
        store
            .create_collection(&CollectionSpec::raw("d", 8, Metric::L2))
            .unwrap();
        insert_rows(&store, "d", &rows, |_| None);
        store.sync_index("d").unwrap();
        // delete the exact nearest neighbours of every query
        let near = store
            .search(
                "d",
                &q,
                &SearchOptions {
                    k: 3,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let ids: Vec<u64> = near.iter().flatten().map(|h| h.id).collect();
        let n = store.delete("d", &ids).unwrap();
        assert!(n > 0);
        let after = store
            .search(
                "d",
                &q,
                &SearchOptions {
                    k: 10,
                    ef: 100,
                    ..Default::default()
                },
            )
            .unwrap();
        for h in after.iter().flatten() {
            assert!(!ids.contains(&h.id), "deleted id {} returned", h.id);
        }
        assert!(store.get("d", ids[0]).unwrap().is_none());
    }
    // Reopen: tombstones persist; compaction drops them and results stay right.
    let store = Store::open(&path).unwrap();
    let before = store
        .search(
            "d",
            &q,
            &SearchOptions {
                k: 5,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    let removed = store.compact("d").unwrap();
    assert!(removed > 0);
    let info = store.collection("d").unwrap();
    assert_eq!(info.tombstones, 0);
    let after = store
        .search(
            "d",
            &q,
            &SearchOptions {
                k: 5,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(before, after);
    let approx = store
        .search(
            "d",
            &q,
            &SearchOptions {
                k: 5,
                ef: 100,
                ..Default::default()
            },
        )
        .unwrap();
    let agree: usize = approx
        .iter()
        .zip(&after)
        .map(|(a, e)| a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count())
        .sum();
    assert!(agree >= 95, "compacted index recall {agree}/100");
}

#[test]
fn reopen_uses_snapshot_and_catches_up_from_redb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let rows = clustered(3000, 12, 10, 6);
    {
        let store = Store::create(&path).unwrap();
        store
            .create_collection(&CollectionSpec::raw("c", 12, Metric::L2))
            .unwrap();
        insert_rows(&store, "c", &rows[..2000], |_| None);
        store.sync_index("c").unwrap();
        store.save_snapshot("c").unwrap();
        // more rows written after the snapshot, without a new one
        let batch: Vec<NewVector> = rows[2000..]
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        store.insert("c", &batch, None).unwrap();
    }
    let store = Store::open_read_only(&path).unwrap();
    let info = store.info().unwrap();
    assert!(!info.collections[0].1.fresh, "snapshot should be stale");
    let hits = store
        .search(
            "c",
            &rows[2500..2510],
            &SearchOptions {
                k: 1,
                ..Default::default()
            },
        )
        .unwrap();
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(
            h[0].id,
            2500 + i as u64,
            "row written after the snapshot not found"
        );
    }
    assert!(store.take_warnings().is_empty());
}

#[test]
fn reader_beside_writer_and_second_writer_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer = Store::create(&path).unwrap();
    writer
        .create_collection(&CollectionSpec::raw("c", 4, Metric::L2))
        .unwrap();
    let v = [1.0f32, 2.0, 3.0, 4.0];
    writer
        .insert(
            "c",
            &[NewVector {
                vector: &v,
                record: None,
            }],
            None,
        )
        .unwrap();
    match Store::open(&path) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second writer admitted"),
    }
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.collection("c").unwrap().live, 1);
    writer
        .insert(
            "c",
            &[NewVector {
                vector: &v,
                record: None,
            }],
            None,
        )
        .unwrap();
    assert_eq!(
        reader.collection("c").unwrap().live,
        2,
        "reader does not see new commits"
    );
    assert!(
        reader
            .insert(
                "c",
                &[NewVector {
                    vector: &v,
                    record: None
                }],
                None
            )
            .is_err()
    );
}

#[test]
fn bad_vectors_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .create_collection(&CollectionSpec::raw("c", 3, Metric::Cosine))
        .unwrap();
    let good = [1.0f32, 0.0, 0.0];
    let nan = [1.0f32, f32::NAN, 0.0];
    let zero = [0.0f32; 3];
    let short = [1.0f32, 2.0];
    for bad in [&nan[..], &zero[..], &short[..]] {
        let batch = [
            NewVector {
                vector: &good,
                record: None,
            },
            NewVector {
                vector: bad,
                record: None,
            },
        ];
        let e = store.insert("c", &batch, None).unwrap_err();
        assert!(matches!(e, Error::BadInput { .. }), "{e}");
    }
    assert_eq!(
        store.collection("c").unwrap().live,
        0,
        "partial batch written"
    );
    assert!(matches!(
        store.collection("nope"),
        Err(Error::UnknownCollection { .. })
    ));
}

#[test]
fn one_collection_per_model_and_modality() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    let a = store
        .create_collection(&CollectionSpec::for_model(
            "vortex-tiny",
            "3d",
            128,
            Metric::Cosine,
        ))
        .unwrap();
    assert_eq!(a.name, "vortex-tiny:3d");
    store
        .create_collection(&CollectionSpec::for_model(
            "vortex-tiny",
            "2d",
            128,
            Metric::Cosine,
        ))
        .unwrap();
    store
        .create_collection(&CollectionSpec::for_model(
            "other",
            "3d",
            64,
            Metric::Cosine,
        ))
        .unwrap();
    let again = CollectionSpec {
        name: "alias".into(),
        ..CollectionSpec::for_model("vortex-tiny", "3d", 128, Metric::Cosine)
    };
    assert!(matches!(
        store.create_collection(&again),
        Err(Error::InvalidArgument { .. })
    ));
    // vectors of another dimension never enter a collection
    let v = vec![1.0f32; 64];
    assert!(
        store
            .insert(
                "vortex-tiny:3d",
                &[NewVector {
                    vector: &v,
                    record: None
                }],
                None
            )
            .is_err()
    );
}
