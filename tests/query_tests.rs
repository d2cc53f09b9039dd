//! Queries on the phantom, whose ground truth is known: a molecular query for each
//! compartment's gene program must rank that compartment's patches on top (AUC) and
//! its heatmap's high region must overlap the compartment (Dice); outputs are written;
//! bad queries get clear errors.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{expect_ok, expect_user_error};
use vortexdb::query::heatmap::heatmap;
use vortexdb::query::{GeneQuery, gene_profile, rank_patches};
use vortexdb::volume::{NpyVolume, VolumeSource};
use vortexdb::{PhantomParams, Store};

const MODEL: &str = "models/default";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Phantom seed 2, 48 x 256 x 256, with its volume and spots ingested.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let ph = dir.join("ph");
    vortexdb::phantom::generate(
        &PhantomParams {
            seed: 2,
            shape: [48, 256, 256],
            plane_step: 16,
            overwrite: false,
        },
        &ph,
    )
    .unwrap();
    let db = dir.join("db");
    expect_ok(&["init", s(&db)]);
    expect_ok(&["models", "add", s(&db), MODEL]);
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

/// Area under the ROC curve of `scores` for `positive` (ties counted half).
fn auc(scores: &[f32], positive: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if positive[k] {
                rank_sum += r;
            }
        }
        i = j + 1;
    }
    let np = positive.iter().filter(|&&p| p).count() as f64;
    let nn = positive.len() as f64 - np;
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[test]
fn molecular_queries_recover_each_compartment_on_the_phantom() {
    let dir = tempfile::tempdir().unwrap();
    let (ph, db) = setup(dir.path());
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
        let a = auc(&scores, &pos);
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
        "phantom molecular queries (seed 2, 48x256x256, default model):\n  {}",
        report.join("\n  ")
    );
    for (name, a, dice) in aucs {
        assert!(a > 0.8, "{name}: AUC {a}");
        assert!(dice > 0.5, "{name}: Dice {dice}");
    }
}

#[test]
fn query_cli_writes_outputs_and_explains_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (_ph, db) = setup(dir.path());
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
