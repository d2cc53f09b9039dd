//! Queries and analyses on the phantom, whose ground truth is known: a molecular query
//! for each compartment's gene program must rank that compartment's patches on top
//! (AUC) and its heatmap's high region must overlap the compartment (Dice); k-means
//! domains must recover the compartments (ARI) and predicted expression must follow the
//! true expression (PCC); outputs are written; bad input gets clear errors.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{expect_ok, expect_user_error, new_model_store, phantom, s};
use vortexdb::Store;
use vortexdb::heatmap;
use vortexdb::{GeneQuery, gene_profile, rank_patches};
use vortexdb::{NpyVolume, VolumeSource};

/// Phantom seed 7 (held out: the default model was trained on seeds 1 and 3 and tuned on
/// seed 2), 48 x 256 x 256, with its volume and spots ingested, made once and
/// shared by every test of this file (the ingest is the slow part). Tests only read the
/// store, except `domains`, which writes its own table.
fn shared() -> &'static (PathBuf, PathBuf) {
    static SHARED: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        setup(&dir)
    })
}

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let ph = phantom(dir, 7, [48, 256, 256], 16);
    let db = new_model_store(dir, "db");
    expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "ph",
        s(&ph.join("volume.npy")),
    ]);
    expect_ok(&[
        "ingest",
        "spots",
        s(&db),
        "--sample",
        "ph",
        s(&ph.join("spots.parquet")),
    ]);
    // The H&E plane at z = 24 as a 2D image sample (the 3D -> 2D retrieval target).
    expect_ok(&[
        "ingest",
        "image",
        s(&db),
        "--sample",
        "he24",
        "--um-per-px",
        "4",
        s(&ph.join("planes").join("plane_024.png")),
    ]);
    (ph, db)
}

/// Ground-truth labels (Z, Y, X) of the phantom.
fn labels(ph: &Path) -> (Vec<u8>, [usize; 3]) {
    let mut v = NpyVolume::open(&ph.join("labels.npy"), None).unwrap();
    let shape = v.info().shape;
    let mut out = Vec::new();
    for z in 0..shape[0] {
        out.extend(
            v.read_slice(z)
                .unwrap()
                .data
                .iter()
                .map(|x| (x * 255.0).round() as u8),
        );
    }
    (out, shape)
}

#[test]
fn molecular_queries_recover_each_compartment_on_the_phantom() {
    let (ph, db) = shared().clone();
    let (lab, shape) = labels(&ph);
    let store = Store::open_read_only(&db).unwrap();
    let rec = store.sample("ph").unwrap().unwrap();
    let at = |z: usize, y: usize, x: usize| lab[(z * shape[1] + y) * shape[2] + x];
    let mut report = Vec::new();
    let mut aucs = Vec::new();
    for (gene, label, name) in [
        ("GLD01", 1u8, "gland"),
        ("TUM01", 2, "tumour"),
        ("STR01", 3, "stroma"),
        ("FAT01", 4, "fat"),
    ] {
        let p = gene_profile(
            &store,
            "vortex-tiny-phantom",
            &GeneQuery::new(vec![gene.into()]),
        )
        .unwrap();
        assert!(p.correlated.len() >= 5, "{gene}: {:?}", p.correlated);
        let ranked =
            rank_patches(&store, "vortex-tiny-phantom:3d", &p.embedding, None, vec![]).unwrap();
        assert_eq!(ranked.len() as u64, rec.patches);
        // Patch label: the compartment at its centre.
        let (scores, pos): (Vec<f32>, Vec<bool>) = ranked
            .iter()
            .map(|r| {
                let c: Vec<usize> = (0..3)
                    .map(|a| r.origin[a] as usize + rec.grid.patch[a] / 2)
                    .collect();
                (r.score, at(c[0], c[1], c[2]) == label)
            })
            .unzip();
        let a = vortexdb::roc_auc(&scores, &pos);
        // Heatmap high region (as large as the compartment within the covered voxels) vs
        // the compartment: Dice.
        let pts: Vec<([i64; 3], f32)> = ranked.iter().map(|r| (r.origin, r.score)).collect();
        let h = heatmap(&rec.grid, &pts, 1);
        let covered: Vec<usize> = (0..h.data.len()).filter(|&i| !h.data[i].is_nan()).collect();
        let truth: Vec<bool> = covered.iter().map(|&i| lab[i] == label).collect();
        let n_true = truth.iter().filter(|&&t| t).count();
        let mut vals: Vec<f32> = covered.iter().map(|&i| h.data[i]).collect();
        vals.sort_by(|a, b| b.total_cmp(a));
        let cut = vals[n_true.max(1) - 1];
        let high: Vec<bool> = covered.iter().map(|&i| h.data[i] >= cut).collect();
        let inter = high.iter().zip(&truth).filter(|(h, t)| **h && **t).count();
        let dice = 2.0 * inter as f64 / (high.iter().filter(|&&h| h).count() + n_true) as f64;
        report.push(format!(
            "{name}: AUC {a:.3}, Dice {dice:.3} ({} spots, {} patches in the compartment)",
            p.spots.len(),
            pos.iter().filter(|&&p| p).count()
        ));
        aucs.push((name, a, dice));
    }
    println!(
        "phantom molecular queries (seed 7, held out, 48x256x256, default model):\n  {}",
        report.join("\n  ")
    );
    for (name, a, dice) in aucs {
        assert!(a > 0.8, "{name}: AUC {a}");
        // Held-out seed 7: fat's heatmap overlap is the weakest (Dice 0.50 measured).
        assert!(dice > 0.45, "{name}: Dice {dice}");
    }
}

/// Cross-modal retrieval: a 3D patch of the volume finds the 2D H&E patches of the same
/// compartment (`query patch --target 2d`), and the 2D patches come back to the volume.
#[test]
fn cross_modal_3d_to_2d_retrieval_finds_the_compartment() {
    let (ph, db) = shared().clone();
    let (lab, shape) = labels(&ph);
    let at = |z: usize, y: usize, x: usize| lab[(z * shape[1] + y) * shape[2] + x];
    let mut report = Vec::new();
    let mut precisions = Vec::new();
    for (label, name) in [(1u8, "gland"), (2, "tumour"), (3, "stroma")] {
        // Five query positions of the compartment around the plane, spread over the volume.
        let pos: Vec<(usize, usize, usize)> = (0..shape[0] * shape[1] * shape[2])
            .step_by(7919)
            .map(|i| {
                (
                    i / (shape[1] * shape[2]),
                    i / shape[2] % shape[1],
                    i % shape[2],
                )
            })
            .filter(|&(z, y, x)| {
                (16..32).contains(&z)
                    && (32..224).contains(&y)
                    && (32..224).contains(&x)
                    && at(z, y, x) == label
            })
            .take(5)
            .collect();
        assert_eq!(pos.len(), 5, "{name}: not enough query positions");
        let mut hits_in = 0;
        for &(z, y, x) in &pos {
            let j: serde_json::Value = serde_json::from_str(&expect_ok(&[
                "--json",
                "query",
                "patch",
                s(&db),
                "--sample",
                "ph",
                "--at",
                &format!("{z},{y},{x}"),
                "--target",
                "2d",
                "--top",
                "10",
            ]))
            .unwrap();
            let hits = j["hits"].as_array().unwrap();
            assert_eq!(hits.len(), 10);
            for h in hits {
                assert_eq!(h["sample"], "he24", "a 2D search returns 2D patches only");
                let o = h["origin"].as_array().unwrap();
                let (hy, hx) = (
                    o[1].as_u64().unwrap() as usize,
                    o[2].as_u64().unwrap() as usize,
                );
                hits_in += usize::from(at(24, hy + 16, hx + 16) == label);
            }
        }
        let precision = hits_in as f64 / 50.0;
        let chance = (0..shape[1] * shape[2])
            .filter(|&i| lab[24 * shape[1] * shape[2] + i] == label)
            .count() as f64
            / (shape[1] * shape[2]) as f64;
        report.push(format!(
            "{name}: top-10 precision {precision:.2} (plane fraction {chance:.2})"
        ));
        precisions.push((name, precision, chance));
    }
    println!(
        "3D -> 2D retrieval on the phantom:\n  {}",
        report.join("\n  ")
    );
    for (name, p, chance) in precisions {
        assert!(
            p > 0.6 && p > 2.0 * chance,
            "{name}: precision {p}, chance {chance}"
        );
    }
    // 2D -> 3D: a 2D patch queries the volume.
    let j: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "query",
        "patch",
        s(&db),
        "--sample",
        "he24",
        "--at",
        "0,100,100",
        "--top",
        "5",
    ]))
    .unwrap();
    assert!(
        j["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["sample"] == "ph")
    );
    // Bad input: an unknown target, and a 2D sample where 3D predictions are needed.
    expect_user_error(
        &[
            "query",
            "patch",
            s(&db),
            "--sample",
            "ph",
            "--at",
            "1,1,1",
            "--target",
            "4d",
        ],
        &["--target", "'4d' is not 3d or 2d"],
    );
    let out = tempfile::tempdir().unwrap();
    expect_user_error(
        &[
            "predict",
            s(&db),
            "--sample",
            "he24",
            "--out",
            s(&out.path().join("p.parquet")),
        ],
        &["'he24' is a 2D image", "3D volume or a 2.5D section stack"],
    );
}

#[test]
fn query_cli_writes_outputs_and_explains_bad_queries() {
    let (_ph, db) = shared().clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q");
    let j: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "query",
        "genes",
        s(&db),
        "--genes",
        "tum01,TUM02",
        "--out",
        s(&out),
        "--top",
        "5",
    ]))
    .unwrap();
    assert_eq!(j["top"].as_array().unwrap().len(), 5);
    assert_eq!(j["query"]["genes"], serde_json::json!(["TUM01", "TUM02"]));
    for f in [
        "patches.parquet",
        "triage.csv",
        "heatmap_ph.npy",
        "heatmap_ph.tif",
        "query.json",
    ] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 0, "{f}");
    }
    let pngs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert_eq!(pngs, 3);
    // Profile and marker queries point the same way as the molecular query.
    let m: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "query",
        "profile",
        s(&db),
        "--markers",
        "TUM01,TUM02,TUM03",
        "--top",
        "1",
    ]))
    .unwrap();
    assert_eq!(m["patches"], j["patches"]);
    // Morphology retrieval from a stored patch finds itself first.
    let top = &j["top"][0];
    // The centre of the best patch (patches are 16 x 32 x 32).
    let o = |a: usize| top["origin"][a].as_i64().unwrap();
    let at = format!("{},{},{}", o(0) + 8, o(1) + 16, o(2) + 16);
    let r: serde_json::Value = serde_json::from_str(&expect_ok(&[
        "--json",
        "query",
        "patch",
        s(&db),
        "--sample",
        "ph",
        "--at",
        &at,
        "--top",
        "3",
        "--exact",
    ]))
    .unwrap();
    assert_eq!(r["hits"][0]["id"], top["id"], "{r}");
    // Bad queries.
    expect_user_error(
        &["query", "genes", s(&db), "--genes", "TUM01,TUMO2,XYZ123"],
        &["unknown gene", "TUMO2", "did you mean", "TUM02", "XYZ123"],
    );
    expect_user_error(
        &[
            "query",
            "genes",
            s(&db),
            "--genes",
            "TUM01",
            "--percentile",
            "100",
        ],
        &[
            "no spot",
            "above their 100th percentile",
            "lower --percentile",
        ],
    );
    expect_user_error(
        &[
            "query",
            "genes",
            s(&db),
            "--genes",
            "TUM01",
            "--sample",
            "nope",
        ],
        &["sample 'nope' is not in this store", "ph"],
    );
    expect_user_error(
        &[
            "query",
            "genes",
            s(&db),
            "--genes",
            "TUM01",
            "--spots-from",
            "nope",
        ],
        &["'nope' has no spots"],
    );
    expect_user_error(
        &["query", "profile", s(&db), "--markers", "ERBB2,GRB7"],
        &["none of the profile's genes"],
    );
}

/// Truth of the phantom's spots: noise-free expected expression per gene (log1p of the
/// profile normalised to 1e4), by spot id.
fn truth_expression(ph: &Path) -> (Vec<String>, std::collections::HashMap<String, Vec<f64>>) {
    use arrow::array::{Array, Float64Array, StringArray};
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
