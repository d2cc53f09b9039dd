//! Inputs held in memory (what the Python package hands over): an array volume ingests
//! like its NPY file, resumes after an interrupting callback and is told apart from
//! other data by its content; an array imports like its file; spots from arrays are
//! validated like a file's.

mod common;

use std::ops::ControlFlow;

use common::{clustered, phantom, write_npy};
use vortexdb::{
    ArrayVolume, CountMatrix, Dtype, Error, Filter, ImportOptions, IngestOptions, SearchOptions,
    SpotOptions, SpotPositions, SpotTable, Store, import_array, import_vectors, ingest_spots,
    ingest_volume, open_volume, write_default_model,
};

fn npy_bytes(path: &std::path::Path) -> (Vec<u8>, [usize; 3]) {
    let mut v = open_volume(path, None).unwrap();
    let shape = v.info().shape;
    let mut out = Vec::new();
    for z in 0..shape[0] {
        let sl = v.read_slice(z).unwrap();
        out.extend(sl.data.iter().map(|x| (x * 255.0).round() as u8));
    }
    (out, shape)
}

#[test]
fn an_array_volume_ingests_like_its_file_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 7, [16, 96, 96], 8);
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .add_model(&write_default_model(&dir.path().join("m")).unwrap())
        .unwrap();
    let model = store.load_model(None).unwrap();
    let opts = |sample: &str| IngestOptions {
        batch: 8,
        ..IngestOptions::new(sample)
    };
    let file = ingest_volume(
        &store,
        &model,
        open_volume(&ph.join("volume.npy"), None).unwrap(),
        &opts("file"),
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let (bytes, shape) = npy_bytes(&ph.join("volume.npy"));
    let array =
        || Box::new(ArrayVolume::new(&bytes[..], &shape, Dtype::U8, "<array>", None).unwrap());
    // Stopped by the callback after the first durable batch: a typed error, resumable.
    let mut calls = 0;
    let stop = ingest_volume(&store, &model, array(), &opts("arr"), &mut |_| {
        calls += 1;
        ControlFlow::Break(())
    });
    match stop {
        Err(Error::Interrupted { done, total, .. }) => assert!(done > 0 && done < total),
        other => panic!("{:?}", other.map(|r| r.patches_total)),
    }
    assert_eq!(calls, 1);
    let r = ingest_volume(&store, &model, array(), &opts("arr"), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(r.resumed_from > 0);
    assert_eq!(r.patches_total, file.patches_total);
    // The same embeddings as the file's (same voxels, same model): every patch scores
    // the same against one query.
    let col = &file.collection;
    let (query, _) = store.get(col, 0).unwrap().unwrap();
    let scores = |sample: &str| {
        let f = Filter {
            samples: Some(vec![sample.into()]),
            ..Default::default()
        };
        let mut v: Vec<([i64; 3], f32)> = store
            .similarities(col, &query, &f)
            .unwrap()
            .items
            .iter()
            .map(|p| (p.origin, p.score))
            .collect();
        v.sort_by_key(|p| p.0);
        v
    };
    let (a, b) = (scores("file"), scores("arr"));
    assert_eq!(a.len() as u64, file.patches_total);
    assert_eq!(
        a.iter().map(|p| p.0).collect::<Vec<_>>(),
        b.iter().map(|p| p.0).collect::<Vec<_>>()
    );
    assert!(a.iter().zip(&b).all(|(x, y)| (x.1 - y.1).abs() < 1e-5));
    // Other content under the same sample id is other data, not a resume.
    let mut other = bytes.clone();
    other[7] ^= 0xff;
    let src = Box::new(ArrayVolume::new(&other[..], &shape, Dtype::U8, "<array>", None).unwrap());
    let e = ingest_volume(&store, &model, src, &opts("arr"), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { name, .. } if name == "sample"),
        "{e:?}"
    );
}

#[test]
fn an_array_imports_like_its_file_and_bad_rows_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("db")).unwrap();
    let rows = clustered(3000, 16, 5, 4);
    let f = dir.path().join("v.npy");
    write_npy(&f, &rows);
    import_vectors(&store, &f, &ImportOptions::new("file"), &mut |_| {}).unwrap();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let r = import_array(&store, &flat, 16, &ImportOptions::new("arr"), &mut |_| {}).unwrap();
    assert_eq!((r.rows, r.imported, r.file.as_deref()), (3000, 3000, None));
    // Importing the same array again is a no-op (resume of a finished import).
    let again = import_array(&store, &flat, 16, &ImportOptions::new("arr"), &mut |_| {}).unwrap();
    assert_eq!(again.imported, 0);
    let q: Vec<&[f32]> = flat.chunks_exact(16).step_by(97).collect();
    // Exact search: two HNSW graphs built in parallel from the same rows need not be
    // identical.
    let opts = SearchOptions {
        exact: true,
        ..Default::default()
    };
    let hf = store.search("file", &q, &opts).unwrap();
    let ha = store.search("arr", &q, &opts).unwrap();
    let ids = |h: &Vec<Vec<vortexdb::Hit>>| -> Vec<Vec<u64>> {
        h.iter().map(|r| r.iter().map(|x| x.id).collect()).collect()
    };
    assert_eq!(ids(&hf), ids(&ha));
    let mut bad = flat.clone();
    bad[16 * 2500 + 3] = f32::NAN;
    let e = import_array(&store, &bad, 16, &ImportOptions::new("bad"), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, Error::BadInput { message, .. } if message.contains("row 2500")),
        "{e:?}"
    );
    assert!(store.collection("bad").is_err(), "nothing created");
    let e = import_array(
        &store,
        &flat[..100],
        16,
        &ImportOptions::new("x"),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::BadInput { .. }), "{e:?}");
    let e = import_array(
        &store,
        &flat[..64],
        8,
        &ImportOptions::new("file"),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimensionMismatch {
                found: 8,
                expected: 16,
                ..
            }
        ),
        "{e:?}"
    );
}

fn table(
    counts: Vec<(usize, Vec<(u32, f32)>)>,
    n: usize,
) -> (Vec<String>, SpotPositions, CountMatrix) {
    let genes: Vec<String> = ["A", "B", "MT-C"].iter().map(|g| g.to_string()).collect();
    let mut indptr = vec![0];
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for (_, row) in &counts {
        for (j, v) in row {
            indices.push(*j);
            data.push(*v);
        }
        indptr.push(indices.len());
    }
    let ids = (0..n).map(|i| format!("s{i}")).collect();
    let pos = SpotPositions {
        pixel: (0..n).map(|i| [i as f64 * 10.0, 5.0]).collect(),
        ..Default::default()
    };
    (
        ids,
        pos,
        CountMatrix {
            genes,
            indptr,
            indices,
            data,
        },
    )
}

/// A change to an otherwise valid table.
type Edit = Box<dyn Fn(&mut Vec<String>, &mut SpotPositions, &mut CountMatrix)>;

#[test]
fn spot_arrays_are_validated_and_canonicalised() {
    // Unsorted and repeated columns in a row are summed and sorted; zeros dropped.
    let (ids, pos, counts) = table(
        vec![
            (0, vec![(2, 1.0), (0, 2.0), (0, 3.0), (1, 0.0)]),
            (1, vec![(1, 4.0)]),
        ],
        2,
    );
    let t = SpotTable::from_arrays("adata", ids, pos, counts).unwrap();
    assert_eq!(t.counts.indices, vec![0, 2, 1]);
    assert_eq!(t.counts.data, vec![5.0, 1.0, 4.0]);
    assert!(t.files.is_empty());
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|ids, _, _| ids[1] = "s0".into()),
            "duplicated spot",
        ),
        (
            Box::new(|_, p, _| p.pixel.pop().map(|_| ()).unwrap()),
            "pixel positions",
        ),
        (Box::new(|_, p, _| p.pixel[0][0] = f64::NAN), "finite"),
        (Box::new(|_, _, c| c.data[0] = -1.0), "negative"),
        (Box::new(|_, _, c| c.data[0] = 0.5), "not an integer"),
        (Box::new(|_, _, c| c.indices[0] = 9), "outside the 3 genes"),
        (Box::new(|_, _, c| c.indptr[2] = 99), "CSR"),
        (
            Box::new(|_, _, c| c.genes[1] = "A".into()),
            "duplicated gene",
        ),
    ];
    for (edit, words) in cases {
        let (mut ids, mut pos, mut counts) =
            table(vec![(0, vec![(0, 2.0)]), (1, vec![(1, 4.0)])], 2);
        edit(&mut ids, &mut pos, &mut counts);
        match SpotTable::from_arrays("adata", ids, pos, counts) {
            Err(Error::BadInput { what, message }) => {
                assert_eq!(what, "adata");
                assert!(message.contains(words), "{words}: {message}");
            }
            other => panic!("{words}: {:?}", other.map(|t| t.ids)),
        }
    }
}

#[test]
fn spots_from_arrays_are_fingerprinted_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 7, [8, 64, 64], 4);
    let store = Store::create(dir.path().join("db")).unwrap();
    store
        .add_model(&write_default_model(&dir.path().join("m")).unwrap())
        .unwrap();
    let model = store.load_model(None).unwrap();
    let file = vortexdb::read_spots(
        &ph.join("spots.parquet"),
        vortexdb::SpotFormat::Parquet,
        &Default::default(),
    )
    .unwrap();
    let arrays = |scale: f32| {
        let mut c = file.counts.clone();
        c.data.iter_mut().for_each(|v| *v *= scale);
        let pos = SpotPositions {
            pixel: file.pixel.clone(),
            array: file.array.clone(),
            z: file.z.clone(),
            spot_diameter_px: file.spot_diameter_px,
        };
        SpotTable::from_arrays("adata", file.ids.clone(), pos, c).unwrap()
    };
    let opts = SpotOptions::new("sp");
    let first = ingest_spots(&store, &model, arrays(1.0), &opts).unwrap();
    assert!(!first.already_present && first.embedded > 0);
    assert!(
        ingest_spots(&store, &model, arrays(1.0), &opts)
            .unwrap()
            .already_present
    );
    // Other counts under the same sample: not mistaken for the data already there.
    let other = ingest_spots(&store, &model, arrays(2.0), &opts);
    assert!(
        !matches!(other, Ok(ref r) if r.already_present),
        "{:?}",
        other.map(|r| r.embedded)
    );
}
