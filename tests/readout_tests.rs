//! Stored readouts: fitted once on one phantom's spots, kept in the store under a name,
//! applied to another phantom's volume (another seed: other gene programs, as another
//! patient) through `predict|eval --readout`; bad input refused with a clear error.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use common::{expect_ok, expect_user_error, new_model_store, phantom, s};

fn pcc(v: &serde_json::Value) -> f64 {
    v["report"]["pcc_all"].as_f64().unwrap()
}

#[test]
fn a_readout_fitted_on_one_phantom_predicts_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_model_store(dir.path(), "db");
    for (name, seed) in [("a", 7), ("b", 8)] {
        let ph = phantom(&dir.path().join(name), seed, [48, 256, 256], 16);
        let vol = ph.join("volume.npy");
        expect_ok(&["ingest", "volume", s(&db), "--sample", name, s(&vol)]);
        let spots = ph.join("spots.parquet");
        expect_ok(&["ingest", "spots", s(&db), "--sample", name, s(&spots)]);
    }
    let fit: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "readout",
        "fit",
        s(&db),
        "--name",
        "tumour-a",
        "--sample",
        "a",
        "--reference",
        "a",
    ]))
    .unwrap();
    assert_eq!(fit["model"], "vortex-tiny-phantom");
    assert_eq!(fit["genes"], 60);
    assert_eq!(fit["anchored"], false);
    assert_eq!(fit["per_sample"], true);
    assert_eq!(fit["sha256"].as_str().unwrap().len(), 64);
    // One reference sample with spots on three sections: penalty and context are
    // chosen leaving one section out.
    assert!(fit["cv_pcc"].as_f64().is_some(), "{fit}");
    let list = expect_ok(&["readout", "list", s(&db)]);
    assert!(
        list.contains("tumour-a") && list.contains("fitted on a"),
        "{list}"
    );

    let eval = |extra: &[&str], out: &str| -> serde_json::Value {
        let o = dir.path().join(out);
        let mut args = vec!["--json", "eval", s(&db), "--sample", "b", "--spots", "b"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", s(&o)]);
        serde_json::from_str(&expect_ok(&args)).unwrap()
    };
    let head = eval(&[], "head");
    let readout = eval(&["--readout", "tumour-a"], "readout");
    let knn = eval(&["--knn", "10", "--reference", "a"], "knn");
    eprintln!(
        "phantom 7 -> 8: predictor {:.4}, stored readout {:.4}, kNN {:.4}",
        pcc(&head),
        pcc(&readout),
        pcc(&knn)
    );
    // Held out: b's spots were never part of the fit, so the figure is not in-sample.
    assert_eq!(readout["in_sample"], false);
    assert_eq!(
        readout["method"],
        serde_json::json!({"Readout": {"name": "tumour-a", "reference": ["a"]}})
    );
    assert!(pcc(&readout) > 0.5, "{}", pcc(&readout));
    assert!(
        pcc(&readout) > pcc(&knn),
        "readout {} vs kNN {}",
        pcc(&readout),
        pcc(&knn)
    );
    assert!(
        pcc(&readout) > pcc(&head) - 0.06,
        "readout {} vs predictor {}",
        pcc(&readout),
        pcc(&head)
    );
    // Anchored on the predictor head, the readout stays within 0.02 of the head with
    // the 61 reference spots of this small phantom.
    expect_ok(&[
        "readout",
        "fit",
        s(&db),
        "--name",
        "anchored-a",
        "--sample",
        "a",
        "--reference",
        "a",
        "--anchored",
    ]);
    let anchored = eval(&["--readout", "anchored-a"], "anchored");
    eprintln!("anchored readout {:.4}", pcc(&anchored));
    assert!(
        pcc(&anchored) > pcc(&head) - 0.02,
        "anchored readout {} vs predictor {}",
        pcc(&anchored),
        pcc(&head)
    );
    // On its own reference spots it is a fit, refused unless asked for.
    expect_user_error(
        &[
            "eval",
            s(&db),
            "--sample",
            "a",
            "--spots",
            "a",
            "--readout",
            "tumour-a",
        ],
        &["also the readout's reference"],
    );
    let pq = dir.path().join("b.parquet");
    expect_ok(&[
        "predict",
        s(&db),
        "--sample",
        "b",
        "--readout",
        "tumour-a",
        "--out",
        s(&pq),
    ]);
    assert!(pq.exists());

    // Bad input: an unknown name (the stored ones listed), a second fit under the same
    // name without --replace, a sample of another model; nothing written.
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "b",
            "--readout",
            "nope",
            "--out",
            s(&pq),
        ],
        &["no readout named 'nope'", "stored: anchored-a, tumour-a"],
    );
    expect_user_error(
        &[
            "readout",
            "fit",
            s(&db),
            "--name",
            "tumour-a",
            "--sample",
            "b",
            "--reference",
            "b",
        ],
        &["a readout named 'tumour-a' exists", "fitted on a"],
    );
    let refit: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "readout",
        "fit",
        s(&db),
        "--name",
        "tumour-a",
        "--sample",
        "b",
        "--reference",
        "b",
        "--replace",
        "--no-per-sample",
    ]))
    .unwrap();
    assert_eq!(refit["sample"], "b");
    assert_eq!(refit["per_sample"], false);
    expect_user_error(
        &[
            "readout",
            "fit",
            s(&db),
            "--name",
            "bad/name",
            "--sample",
            "b",
            "--reference",
            "b",
        ],
        &["bad/name"],
    );
    // Another model: the same networks under another name, a small volume embedded
    // with it.
    let other = dir.path().join("other");
    let src = db.join("models/vortex-tiny-phantom");
    std::fs::create_dir_all(&other).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), other.join(e.file_name())).unwrap();
    }
    let mpath = other.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["name"] = serde_json::json!("other-model");
    std::fs::write(&mpath, m.to_string()).unwrap();
    expect_ok(&["models", "add", s(&db), s(&other)]);
    let c = phantom(&dir.path().join("c"), 9, [24, 128, 128], 8);
    expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "c",
        "--model",
        "other-model",
        s(&c.join("volume.npy")),
    ]);
    let cpq = dir.path().join("c.parquet");
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "c",
            "--readout",
            "tumour-a",
            "--out",
            s(&cpq),
        ],
        &[
            "reads the features of model 'vortex-tiny-phantom'",
            "'other-model'",
        ],
    );
    assert!(!cpq.exists());

    // Target spots that lack some of the readout's genes (a smaller panel, as another
    // platform measures: five of the ten GLD genes dropped): scored on the 55 genes they
    // measure, and a gene they lack, asked for by name, is refused naming the gene and
    // the spots. (`anchored-a` is fitted on a; `tumour-a` is now b's.)
    let ph_b = dir.path().join("b/ph");
    let small = dir.path().join("b5.parquet");
    keep_columns(&ph_b.join("spots.parquet"), &small, 5);
    expect_ok(&[
        "ingest",
        "spots",
        s(&db),
        "--sample",
        "b5",
        "--model",
        "vortex-tiny-phantom",
        s(&small),
    ]);
    let few: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "eval",
        s(&db),
        "--sample",
        "b",
        "--spots",
        "b5",
        "--readout",
        "tumour-a",
        "--out",
        s(&dir.path().join("b5")),
    ]))
    .unwrap();
    assert_eq!(few["report"]["genes"], 55);
    assert!(
        few["report"]["per_gene"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["gene"] != "GLD10")
    );
    let o = dir.path().join("b5-gld10");
    expect_user_error(
        &[
            "eval",
            s(&db),
            "--sample",
            "b",
            "--spots",
            "b5",
            "--readout",
            "anchored-a",
            "--genes",
            "GLD10",
            "--out",
            s(&o),
        ],
        &["GLD10", "not measured in the spots of 'b5'"],
    );
    assert!(!o.exists());
}

/// Copy a wide spots Parquet table keeping its non-gene columns and its first `genes`
/// gene columns (`GLD..`).
fn keep_columns(src: &std::path::Path, dst: &std::path::Path, genes: usize) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(src).unwrap();
    let batch = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let schema = batch.schema();
    let mut seen = 0;
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| {
            let gene = schema.field(i).name().starts_with("GLD");
            seen += usize::from(gene);
            !gene || seen <= genes
        })
        .collect();
    common::write_batch(dst, &batch.project(&keep).unwrap());
}
