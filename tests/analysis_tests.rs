//! Analyses on the phantom, whose ground truth is known: k-means domains must recover
//! the compartments (ARI) and predicted expression must follow the true expression
//! (PCC); predict, domains and eval write their outputs; bad input gets clear errors.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::Path;

use common::seed7::shared;
use common::{expect_ok, expect_user_error, s};
use vortexdb::{NpyVolume, Store, VolumeSource};

/// Truth of the phantom's spots: noise-free expected expression per gene (log1p of the
/// profile normalised to 1e4), by spot id.
fn truth_expression(ph: &Path) -> (Vec<String>, std::collections::HashMap<String, Vec<f64>>) {
    use arrow_array::{Array, Float64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(ph.join("truth/spots_truth.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = std::collections::HashMap::new();
    let mut genes = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let schema = b.schema();
        let cols: Vec<(String, &Float64Array)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let g = f.name().strip_prefix("expected_")?;
                Some((
                    g.to_string(),
                    b.column(i).as_any().downcast_ref::<Float64Array>()?,
                ))
            })
            .collect();
        genes = cols.iter().map(|c| c.0.clone()).collect();
        let ids = b.column_by_name("spot").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        for r in 0..b.num_rows() {
            // Already log1p of the noise-free profile normalised to 1e4, like the
            // measured spots.
            let v: Vec<f64> = cols.iter().map(|c| c.1.value(r)).collect();
            assert!(ids.is_valid(r));
            out.insert(ids.value(r).to_string(), v);
        }
    }
    (genes, out)
}

#[test]
fn predicted_expression_and_domains_recover_the_phantom() {
    use vortexdb::Predictions;
    use vortexdb::{KMeansOptions, ari_against, cluster_patches as compute, read_segmentation};
    use vortexdb::{nanmean, pearson};
    let (ph, db) = shared().clone();
    let store = Store::open_read_only(&db).unwrap();
    let pred = Predictions::load(&store, "ph").unwrap();
    assert_eq!(pred.genes.len(), 60);
    assert_eq!(
        pred.len() as u64,
        store.sample("ph").unwrap().unwrap().patches
    );
    assert!(pred.hidden_dim() > 0);
    // Domains (k = 4 compartments) against the ground-truth labels.
    let (seg, shape) = read_segmentation(&ph.join("labels.npy")).unwrap();
    let opts = KMeansOptions {
        k: 4,
        restarts: 10,
        seed: 0,
        ..Default::default()
    };
    let (rec, summaries) = compute(&pred, &opts).unwrap();
    let (ari, n) = ari_against(&pred, &rec.labels, &seg, shape, &ph.join("labels.npy")).unwrap();
    println!(
        "phantom domains k=4: ARI {ari:.3} over {n} patches, inertia {:.1}",
        rec.inertia
    );
    assert!(ari > 0.7, "ARI {ari}");
    assert_eq!(
        summaries.iter().map(|s| s.patches).sum::<usize>(),
        pred.len()
    );
    // Each domain's top gene comes from a different compartment program.
    let mut programs: Vec<String> = summaries
        .iter()
        .map(|s| s.top_genes[0].0[..3].to_string())
        .collect();
    programs.sort();
    programs.dedup();
    assert_eq!(programs.len(), 4, "{summaries:?}");
    // Same seed, same domains.
    let (again, _) = compute(&pred, &opts).unwrap();
    assert_eq!(again.labels, rec.labels);

    // Predicted vs true (noise-free) expression at the spots, per gene.
    let (tgenes, truth) = truth_expression(&ph);
    let spots = store.spots("ph").unwrap();
    let recs: Vec<&vortexdb::SpotRecord> = spots.iter().map(|s| &s.0).collect();
    let at = pred.at_spots(&recs);
    let g = pred.genes.len();
    let mut pccs = Vec::new();
    let mut measured_pccs = Vec::new();
    for (tj, gene) in tgenes.iter().enumerate() {
        let j = pred.genes.iter().position(|x| x == gene).unwrap();
        let p: Vec<f64> = (0..recs.len()).map(|i| at[i * g + j] as f64).collect();
        let t: Vec<f64> = recs.iter().map(|s| truth[&s.id][tj]).collect();
        pccs.push(pearson(&p, &t));
        let m: Vec<f64> = spots
            .iter()
            .map(|(_, e)| e.as_ref().unwrap().normalized[j] as f64)
            .collect();
        measured_pccs.push(pearson(&p, &m));
    }
    let (pt, pm) = (
        nanmean(pccs.iter().copied()),
        nanmean(measured_pccs.iter().copied()),
    );
    println!(
        "phantom predicted vs true expression: mean PCC {pt:.3} (vs measured {pm:.3}) over {} genes, {} spots",
        tgenes.len(),
        recs.len()
    );
    assert!(pt > 0.5, "PCC vs truth {pt}");
}

#[test]
fn predict_domains_and_eval_write_their_outputs() {
    let (ph, db) = shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("pred.parquet");
    let vols = dir.path().join("vol");
    let o = expect_ok(&[
        "predict",
        s(&db),
        "--sample",
        "ph",
        "--out",
        s(&pq),
        "--genes",
        "tum01,GLD01",
        "--volumes",
        s(&vols),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let n = v["patches"].as_u64().unwrap();
    assert!(n > 1000);
    {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let r = SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
        let md = r.metadata();
        assert_eq!(md.file_metadata().num_rows() as u64, n);
        // patch_id, z, y, x, tissue + 60 genes.
        assert_eq!(md.file_metadata().schema_descr().num_columns(), 65);
    }
    // The gene volume is float32 at the model's grid (downsample 1 here): readable, of
    // the sample's shape, finite inside the patches.
    let vol = NpyVolume::open(&vols.join("TUM01.npy"), None).unwrap();
    assert_eq!(vol.info().shape, [48, 256, 256]);
    for f in ["TUM01.tif", "GLD01.npy", "TUM01_z0024.png"] {
        assert!(vols.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    // The k-nearest-spots baseline predicts the same shape of table.
    let pk = dir.path().join("knn.parquet");
    let o = expect_ok(&[
        "predict",
        s(&db),
        "--sample",
        "ph",
        "--out",
        s(&pk),
        "--knn",
        "5",
        "--reference",
        "ph",
        "--json",
    ]);
    assert!(o.contains("\"Knn\""), "{o}");
    // Domains with outputs and the ARI against the labels.
    let dd = dir.path().join("dom");
    let o = expect_ok(&[
        "domains",
        s(&db),
        "--sample",
        "ph",
        "--k",
        "4",
        "--segmentation",
        s(&ph.join("labels.npy")),
        "--out",
        s(&dd),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(v["ari"].as_f64().unwrap() > 0.7, "{o}");
    for f in [
        "domains.npy",
        "domains.csv",
        "domains.json",
        "domains_z0024.png",
    ] {
        assert!(dd.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    let csv = std::fs::read_to_string(dd.join("domains.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, n + 1);
    // Eval: report files and figures.
    let ed = dir.path().join("eval");
    let o = expect_ok(&[
        "eval",
        s(&db),
        "--sample",
        "ph",
        "--markers",
        "TUM01,GLD01,NOTAGENE",
        "--segmentation",
        s(&ph.join("labels.npy")),
        "--out",
        s(&ed),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let r = &v["report"];
    assert!(r["pcc_all"].as_f64().unwrap() > 0.5, "{o}");
    assert!(r["pcc_top50"].as_f64().unwrap() >= r["pcc_all"].as_f64().unwrap());
    assert!(r["ssim"].as_f64().unwrap().is_finite(), "{o}");
    assert_eq!(r["markers_missing"][0], "NOTAGENE");
    assert!(v["ari"].as_f64().unwrap() > 0.7);
    let md = std::fs::read_to_string(ed.join("eval.md")).unwrap();
    assert!(
        md.contains("PCC, all genes") && md.contains("| TUM01 |"),
        "{md}"
    );
    assert!(ed.join("pcc.png").metadata().unwrap().len() > 100);
}

#[test]
fn analysis_bad_input_is_explained() {
    let (ph, db) = shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("p.parquet");
    // Genes the model does not predict, with close matches.
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "ph",
            "--out",
            s(&pq),
            "--genes",
            "TUM1,ERBB2",
            "--volumes",
            s(dir.path()),
        ],
        &[
            "unknown gene(s) among the genes model",
            "TUM1 (did you mean",
            "ERBB2",
        ],
    );
    assert!(!pq.exists(), "nothing written on bad input");
    // k beyond what a uint8 label volume holds.
    expect_user_error(
        &["domains", s(&db), "--sample", "ph", "--k", "1000000"],
        &["--k", "out of range (must be 1 to 255)"],
    );
    // A segmentation of a different shape.
    let seg = dir.path().join("seg.npy");
    common::write_npy(&seg, &vec![vec![1.0; 4]; 3]);
    expect_user_error(
        &[
            "domains",
            s(&db),
            "--sample",
            "ph",
            "--k",
            "4",
            "--segmentation",
            s(&seg),
        ],
        &["seg.npy", "must be 3D"],
    );
    let seg3 = dir.path().join("seg3.npy");
    {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(&seg3).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[4, 5, 6])
            .writer(f)
            .begin_nd()
            .unwrap();
        w.extend((0..120).map(|i| (i % 3) as u8)).unwrap();
        w.finish().unwrap();
    }
    expect_user_error(
        &[
            "domains",
            s(&db),
            "--sample",
            "ph",
            "--k",
            "4",
            "--segmentation",
            s(&seg3),
        ],
        &[
            "seg3.npy",
            "[4, 5, 6]",
            "differs from sample 'ph'",
            "[48, 256, 256]",
        ],
    );
    // Unknown sample.
    expect_user_error(
        &["eval", s(&db), "--sample", "nope"],
        &["sample 'nope' is not in this store", "ph"],
    );
    // k-nearest spots without a reference, and with too large a k.
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "ph",
            "--out",
            s(&pq),
            "--knn",
            "5",
        ],
        &["--reference"],
    );
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "ph",
            "--out",
            s(&pq),
            "--knn",
            "100000",
            "--reference",
            "ph",
        ],
        &["larger than the", "reference spots"],
    );
    let _ = ph;
}

/// `spots export --image` writes, per kept spot, the mean stored embedding of the image
/// sample's patches that contain the spot: checked against a direct computation from
/// the store's records; a 2D or unknown image sample is refused before anything is
/// written.
#[test]
fn spots_export_reads_image_embeddings_at_the_spots() {
    let (_ph, db) = shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spots");
    let o = expect_ok(&[
        "spots",
        "export",
        s(&db),
        "--sample",
        "ph",
        "--image",
        "ph",
        "--out",
        s(&out),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let kept = v["kept"].as_u64().unwrap() as usize;
    let dim = v["image_dim"].as_u64().unwrap() as usize;
    assert!(kept > 50 && dim > 0, "{v}");
    assert_eq!(v["image"], "ph");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("export.json")).unwrap()).unwrap();
    assert_eq!(meta["image_dim"], v["image_dim"]);
    let (shape, at) = vortexdb::read_f32_nd(&out.join("image_embeddings.npy")).unwrap();
    assert_eq!(shape, vec![kept, dim]);

    // The direct computation: kept spots' positions from spots.csv, every patch's box
    // and embedding from the store.
    let csv = std::fs::read_to_string(out.join("spots.csv")).unwrap();
    let pos: Vec<[f64; 3]> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| c[9] == "1")
        .map(|c| {
            [
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
                c[5].parse().unwrap(),
            ]
        })
        .collect();
    assert_eq!(pos.len(), kept);
    let store = Store::open_read_only(&db).unwrap();
    let rec = store.sample("ph").unwrap().unwrap();
    let pred = store.sample_predictions(&rec.collection, "ph").unwrap();
    let emb: Vec<Vec<f32>> = pred
        .ids
        .iter()
        .map(|&id| store.get(&rec.collection, id).unwrap().unwrap().0)
        .collect();
    let mut checked = 0;
    for (i, p) in pos.iter().enumerate() {
        let q: [f64; 3] = std::array::from_fn(|a| p[a] * rec.voxel_um[a] / rec.model_voxel_um[a]);
        let inside: Vec<usize> = (0..pred.records.len())
            .filter(|&j| {
                let r = &pred.records[j];
                (0..3).all(|a| {
                    q[a] >= r.origin[a] as f64 && q[a] < (r.origin[a] + r.size[a] as i64) as f64
                })
            })
            .collect();
        if inside.is_empty() {
            continue;
        }
        for d in 0..dim {
            let want = inside.iter().map(|&j| emb[j][d]).sum::<f32>() / inside.len() as f32;
            assert!((at[i * dim + d] - want).abs() < 1e-5, "spot {i} dim {d}");
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} spots inside patches");
    // The features differ between spots (not one constant row).
    assert!((0..dim).any(|d| (at[d] - at[(kept - 1) * dim + d]).abs() > 1e-4));

    for (image, needles) in [
        ("he24", &["he24", "2D image"][..]),
        ("nosuch", &["nosuch", "ph"][..]),
    ] {
        let bad = dir.path().join(format!("bad-{image}"));
        expect_user_error(
            &[
                "spots",
                "export",
                s(&db),
                "--sample",
                "ph",
                "--image",
                image,
                "--out",
                s(&bad),
            ],
            needles,
        );
        assert!(!bad.exists(), "{image}: {} was written", bad.display());
    }
}

/// The ridge readout fitted on the phantom's spots (in sample: the held-out figures are
/// her2st's, docs/EVALUATION.md) fits them better than the predictor head and records
/// its penalty; `predict --ridge` writes the same table shape; bad arguments are
/// explained and write nothing.
#[test]
fn ridge_readout_fits_reference_spots_and_bad_arguments_are_explained() {
    let (_ph, db) = shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let eval = |extra: &[&str], out: &str| -> serde_json::Value {
        let o = dir.path().join(out);
        let mut args = vec!["eval", s(&db), "--sample", "ph", "--spots", "ph", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", s(&o)]);
        serde_json::from_str(&expect_ok(&args)).unwrap()
    };
    // Scoring the reference's own spots is refused, naming why and the way out.
    for method in [&["--ridge"][..], &["--knn", "5"][..]] {
        let mut args = vec!["eval", s(&db), "--sample", "ph", "--spots", "ph"];
        args.extend_from_slice(method);
        args.extend_from_slice(&["--reference", "ph"]);
        expect_user_error(&args, &["also the readout's reference", "held-out"]);
    }
    let model = eval(&[], "model");
    let ins = "--allow-in-sample";
    let ridge = eval(&["--ridge", "--reference", "ph", ins], "ridge");
    let fixed = eval(
        &["--ridge", "--reference", "ph", "--alpha", "1e6", ins],
        "fixed",
    );
    let bare = eval(
        &["--ridge", "--reference", "ph", "--context-um", "0", ins],
        "bare",
    );
    // Allowed explicitly, the report says the figure is in-sample; the predictor's is not.
    assert_eq!(ridge["in_sample"], serde_json::json!(true));
    assert_eq!(model["in_sample"], serde_json::json!(false));
    let md = std::fs::read_to_string(dir.path().join("ridge/eval.md")).unwrap();
    assert!(md.contains("in-sample") || md.contains("IN-SAMPLE"), "{md}");
    let pcc = |v: &serde_json::Value| v["report"]["pcc_all"].as_f64().unwrap();
    eprintln!(
        "pcc model {} ridge {} alpha 1e6 {}",
        pcc(&model),
        pcc(&ridge),
        pcc(&fixed)
    );
    assert_eq!(
        ridge["method"],
        serde_json::json!({"Ridge": {"reference": ["ph"], "alpha": 100.0, "context_um": [200.0, 400.0]}})
    );
    // The fit is reported: one reference sample, so no cross-validation; the context
    // scales add one embedding-wide block each, and `--context-um 0` none.
    let (fit, bare_fit) = (&ridge["ridge"], &bare["ridge"]);
    assert!(fit["cv_pcc"].is_null() && fit["spots"].as_u64().unwrap() >= 10);
    let own = bare_fit["features"].as_u64().unwrap();
    let dim = (fit["features"].as_u64().unwrap() - own) / 2;
    assert!(dim > 0 && own > dim, "{fit} {bare_fit}");
    assert_eq!(bare_fit["context_um"], serde_json::json!([]));
    assert_eq!(bare["method"]["Ridge"]["context_um"], serde_json::json!([]));
    assert!(model.get("ridge").is_none());
    assert!(
        pcc(&ridge) > pcc(&model),
        "in-sample ridge should fit the spots"
    );
    assert!(pcc(&ridge) > pcc(&fixed), "a huge penalty shrinks the fit");
    let pq = dir.path().join("ridge.parquet");
    let o = expect_ok(&[
        "predict",
        s(&db),
        "--sample",
        "ph",
        "--ridge",
        "--reference",
        "ph",
        "--out",
        s(&pq),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(v["patches"].as_u64().unwrap() > 1000 && pq.exists());
    assert_eq!(
        v["ridge"], ridge["ridge"],
        "predict reports the same fit as eval"
    );

    let bad = dir.path().join("bad.parquet");
    for (extra, needles) in [
        (&["--ridge"][..], &["--ridge needs --reference"][..]),
        (
            &["--ridge", "--reference", "ph", "--alpha=-1"],
            &["alpha", "-1"],
        ),
        (&["--ridge", "--reference", "nosuch"], &["nosuch"]),
        (
            &["--ridge", "--reference", "ph", "--context-um=-5"],
            &["--context-um", "-5", "micrometres"],
        ),
        (
            &["--ridge", "--reference", "ph", "--context-um", "1,2,3,4,5"],
            &["context", "at most 4"],
        ),
    ] {
        let mut args = vec!["predict", s(&db), "--sample", "ph", "--out", s(&bad)];
        args.extend_from_slice(extra);
        expect_user_error(&args, needles);
        assert!(!bad.exists());
    }
}
