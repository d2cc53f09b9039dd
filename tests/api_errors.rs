//! Each class of bad input to the library is a typed error variant with structured
//! fields a caller can match (no message text is inspected here); the CLI's message for
//! the same input still names the file or flag and the next step.

mod common;

use common::fixture::{private_store, shared};
use common::{expect_user_error, s, write_npy};
use vortexdb::{
    Error, GeneQuery, ImportOptions, KMeansOptions, Layer, Method, PatchQuery, PatchSource,
    ScoreOptions, SpotFormat, SpotOptions, SpotPaths, Store, find_domains, import_vectors,
    ingest_spots, open_volume, predict, query_genes, query_patch, read_spots,
};

#[test]
fn an_unknown_sample_lists_the_known_ones() {
    let store = Store::open_read_only(&shared().store).unwrap();
    match predict(&store, "nope", &Method::Predictor) {
        Err(Error::UnknownSample {
            name,
            sample,
            known,
            ..
        }) => {
            assert_eq!((name.as_str(), sample.as_str()), ("sample", "nope"));
            assert_eq!(known, vec!["ph".to_string()]);
        }
        other => panic!("{:?}", other.map(|p| p.len())),
    }
    let knn = Method::Knn {
        k: 3,
        reference: vec!["nospots".into()],
    };
    let e = predict(&store, "ph", &knn).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownSample { name, known, .. } if name == "reference" && known == &["ph"]),
        "{e:?}"
    );
    expect_user_error(
        &[
            "predict",
            s(&shared().store),
            "--sample",
            "nope",
            "--out",
            "/dev/null",
        ],
        &["--sample", "nope", "samples: ph"],
    );
}

#[test]
fn an_unknown_gene_comes_with_suggestions() {
    let store = Store::open_read_only(&shared().store).unwrap();
    let q = GeneQuery::new(vec!["TUM1".into(), "TUM01".into()]);
    match query_genes(&store, &q, &ScoreOptions::default()) {
        Err(Error::UnknownGenes { name, genes, .. }) => {
            assert_eq!(name, "genes");
            assert_eq!(genes.len(), 1);
            assert_eq!(genes[0].gene, "TUM1");
            assert!(
                genes[0].suggestions.contains(&"TUM01".to_string()),
                "{genes:?}"
            );
        }
        other => panic!("{:?}", other.map(|r| r.ranked.len())),
    }
    let pred = predict(&store, "ph", &Method::Predictor).unwrap();
    let e = pred.gene_columns(&["ERBB2".to_string()]).unwrap_err();
    assert!(matches!(&e, Error::UnknownGenes { genes, .. } if genes[0].gene == "ERBB2"));
    expect_user_error(
        &["query", "genes", s(&shared().store), "--genes", "TUM1"],
        &["--genes", "TUM1 (did you mean TUM01"],
    );
}

#[test]
fn a_dimension_mismatch_carries_both_numbers() {
    let (dir, store_dir) = private_store();
    let store = Store::open(&store_dir).unwrap();
    let a = dir.path().join("a.npy");
    let b = dir.path().join("b.npy");
    write_npy(&a, &[vec![1.0; 16], vec![0.5; 16]]);
    write_npy(&b, &[vec![1.0; 8]]);
    let opts = ImportOptions::new("raw");
    import_vectors(&store, &a, &opts, &mut |_| {}).unwrap();
    match import_vectors(&store, &b, &opts, &mut |_| {}) {
        Err(Error::DimensionMismatch {
            path,
            found,
            expected,
            ..
        }) => assert_eq!((path, found, expected), (b.clone(), 8, 16)),
        other => panic!("{:?}", other.map(|r| r.imported)),
    }
    drop(store);
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store_dir),
            "--collection",
            "raw",
            s(&b),
        ],
        &["b.npy", "dimension 8", "dimension 16"],
    );
}

#[test]
fn a_bad_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("volume.npy");
    std::fs::write(&f, b"\x93NUMPY\x01\x00garbage").unwrap();
    match open_volume(&f, None) {
        Err(Error::BadFile { path, .. }) => assert_eq!(path, f),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("garbage opened"),
    }
    let p = dir.path().join("spots.parquet");
    std::fs::write(&p, b"PAR1 not really PAR1").unwrap();
    let e = read_spots(&p, SpotFormat::Parquet, &SpotPaths::default()).unwrap_err();
    assert!(
        matches!(&e, Error::BadFile { path, .. } if path == &p),
        "{e:?}"
    );
    assert_eq!(e.layer(), Layer::Input);
}

#[test]
fn a_locked_store_reports_the_holder() {
    let (_dir, store_dir) = private_store();
    let _writer = Store::open(&store_dir).unwrap();
    match Store::open(&store_dir) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("two writers"),
    }
    assert!(Store::open_read_only(&store_dir).is_ok());
}

#[test]
fn an_out_of_range_parameter_is_named() {
    let (_dir, store_dir) = private_store();
    let store = Store::open(&store_dir).unwrap();
    let opts = KMeansOptions {
        k: 0,
        ..Default::default()
    };
    let e = find_domains(&store, "ph", &opts, None).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { name, .. } if name == "k"),
        "{e:?}"
    );
    let mut q = PatchQuery::new(PatchSource::Stored {
        sample: "ph".into(),
        at: [0, 0, 0],
    });
    q.top = 0;
    let e = query_patch(&store, &q).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { name, .. } if name == "top"),
        "{e:?}"
    );
    drop(store);
    expect_user_error(
        &["domains", s(&store_dir), "--sample", "ph", "--k", "0"],
        &["--k", "out of range"],
    );
}

#[test]
fn unknown_names_in_the_store_list_what_exists() {
    let store = Store::open_read_only(&shared().store).unwrap();
    let e = store.collection("nope").unwrap_err();
    assert!(
        matches!(&e, Error::UnknownCollection { name, known } if name == "nope" && known.len() == 2),
        "{e:?}"
    );
    let e = store.load_model(Some("other")).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownModel { name, known, .. } if name == "other" && known == &["vortex-tiny-phantom"]),
        "{e:?}"
    );
    let empty = tempfile::tempdir().unwrap();
    let bare = Store::create(empty.path().join("db")).unwrap();
    assert!(matches!(bare.load_model(None), Err(Error::NoModel { .. })));
    let e = Store::open(empty.path().join("nothing")).err().unwrap();
    assert!(matches!(&e, Error::NotAStore { .. }), "{e:?}");
    assert_eq!(e.layer(), Layer::Store);
    expect_user_error(
        &[
            "query",
            "genes",
            s(&empty.path().join("db")),
            "--genes",
            "A",
        ],
        &["no model", "vortexdb models add"],
    );
    expect_user_error(
        &["info", s(&empty.path().join("nothing"))],
        &["not a vortexdb store", "vortexdb init"],
    );
}

#[test]
fn a_filter_that_selects_nothing_says_which_stage() {
    let (_dir, store_dir) = private_store();
    let store = Store::open(&store_dir).unwrap();
    let model = store.load_model(None).unwrap();
    let table = read_spots(
        &shared().ph.join("spots.parquet"),
        SpotFormat::Parquet,
        &SpotPaths::default(),
    )
    .unwrap();
    let mut opts = SpotOptions::new("strict");
    opts.qc.min_genes = 1_000_000;
    match ingest_spots(&store, &model, table, &opts) {
        Err(Error::NothingSelected { stage, .. }) => assert_eq!(stage, "spot_qc"),
        other => panic!("{:?}", other.map(|r| r.embedded)),
    }
    assert!(
        store.spot_set("strict").unwrap().is_none(),
        "a half-written spot set"
    );
    drop(store);
    let spots = shared().ph.join("spots.parquet");
    expect_user_error(
        &[
            "ingest",
            "spots",
            s(&store_dir),
            "--sample",
            "strict",
            "--min-genes",
            "1000000",
            s(&spots),
        ],
        &["spots.parquet", "no spot passes QC", "lower --min-genes"],
    );
}
