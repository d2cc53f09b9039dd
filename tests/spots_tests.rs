//! Spot readers, preprocessing against scanpy, and `ingest spots`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use vortexdb::expression::{
    GeneIndex, QcSettings, highly_variable_genes, normalize_log1p, quality_control,
};
use vortexdb::spots::{SpotFormat, SpotPaths, read_spots};

fn her2st() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/her2st");
    if p.join("counts/C1.tsv.gz").is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: ../shared/data/her2st is absent");
        None
    }
}

fn reference() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/expression_her2st_C1.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn qc_normalisation_and_hvg_match_scanpy_on_her2st_c1() {
    let Some(root) = her2st() else { return };
    let r = reference();
    let t = read_spots(
        &root.join("counts/C1.tsv.gz"),
        SpotFormat::Her2st,
        &SpotPaths::default(),
    )
    .unwrap();
    let (qc, sum) = quality_control(&t.counts, &QcSettings::default());
    let q = &r["qc"];
    assert_eq!(sum.spots_in as u64, q["spots_in"].as_u64().unwrap());
    assert_eq!(sum.kept as u64, q["kept"].as_u64().unwrap());
    assert_eq!(
        sum.removed_min_genes as u64,
        q["removed_min_genes"].as_u64().unwrap()
    );
    assert_eq!(sum.removed_mito as u64, q["removed_mito"].as_u64().unwrap());
    assert_eq!(sum.removed_both as u64, q["removed_both"].as_u64().unwrap());
    for (i, s) in qc.iter().enumerate() {
        assert_eq!(s.n_genes as u64, q["n_genes"][i].as_u64().unwrap());
        let pct = q["pct_counts_mt"][i].as_f64().unwrap();
        assert!((s.mito_fraction * 100.0 - pct).abs() < 1e-9, "spot {i}");
    }
    let keep: Vec<usize> = (0..qc.len()).filter(|&i| qc[i].kept).collect();
    let kept = t.counts.select_rows(&keep);
    let ids: Vec<&String> = keep.iter().map(|&i| &t.ids[i]).collect();
    let norm = normalize_log1p(&kept, 1e4);
    // Every sampled (spot, gene) value, zeros included, within 1e-5.
    let n = &r["normalized"];
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let genes = GeneIndex::new(&norm.genes);
    let mut checked = 0;
    for k in 0..n["values"].as_array().unwrap().len() {
        let i = row_of[n["spots"][k].as_str().unwrap()];
        let g = genes.get(n["genes"][k].as_str().unwrap()).unwrap();
        let v = norm.row(i).find(|e| e.0 == g).map(|e| e.1).unwrap_or(0.0) as f64;
        let want = n["values"][k].as_f64().unwrap();
        assert!((v - want).abs() <= 1e-5, "{k}: {v} vs {want}");
        checked += 1;
    }
    assert_eq!(checked, 350);
    for i in 0..norm.n_spots() {
        let s: f64 = norm.row(i).map(|e| e.1 as f64).sum();
        let want = n["row_sums"][i].as_f64().unwrap();
        assert!(
            (s - want).abs() <= 1e-5 * want.max(1.0),
            "row {i}: {s} vs {want}"
        );
    }
    for top in [300usize, 1200] {
        let ours: BTreeSet<String> = highly_variable_genes(&kept, 1e4, top)
            .into_iter()
            .map(|j| kept.genes[j].clone())
            .collect();
        let theirs: BTreeSet<String> = r["hvg"][top.to_string()]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        assert_eq!(ours.len(), theirs.len(), "n_top_genes {top}");
        assert_eq!(ours, theirs, "n_top_genes {top}");
    }
}
