//! Spot readers on fixtures the project generates (Visium MTX and .h5, Parquet wide
//! and long, her2st layout), preprocessing against scanpy's reference values, `ingest
//! spots` against a direct computation on the phantom, and bad input refused with a
//! clear error and an untouched store.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
use common::{MODEL, expect_ok, expect_user_error, new_model_store, phantom, s};
use ndarray::Array2;
use vortexdb::Store;
use vortexdb::{GeneIndex, QcSettings, highly_variable_genes, normalize_log1p, quality_control};
use vortexdb::{Model, RunOptions};
use vortexdb::{SpotFormat, SpotPaths, SpotTable, read_spots};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn dense(t: &SpotTable) -> Vec<Vec<f32>> {
    (0..t.ids.len())
        .map(|i| {
            let mut r = vec![0.0f32; t.counts.n_genes()];
            for (g, c) in t.counts.row(i) {
                r[g] = c;
            }
            r
        })
        .collect()
}

#[test]
fn visium_mtx_and_h5_read_the_same_spots_as_generated() {
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("visium_expected.json")).unwrap())
            .unwrap();
    let mtx = read_spots(
        &fixture("visium_mtx"),
        SpotFormat::Visium,
        &SpotPaths::default(),
    )
    .unwrap();
    let h5 = read_spots(
        &fixture("visium_h5/filtered_feature_bc_matrix.h5"),
        SpotFormat::Visium,
        &SpotPaths::default(),
    )
    .unwrap();
    // The barcode outside the tissue (index 7) is dropped, the others kept in order.
    let kept: Vec<usize> = (0..12).filter(|&i| want["in_tissue"][i] == 1).collect();
    for t in [&mtx, &h5] {
        assert_eq!(t.dropped_outside_tissue, 1);
        assert_eq!(t.ids.len(), kept.len());
        assert_eq!(t.spot_diameter_px, Some(89.4));
        let genes: Vec<&str> = want["genes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(t.counts.genes, genes);
        let d = dense(t);
        for (r, &i) in kept.iter().enumerate() {
            assert_eq!(t.ids[r], want["barcodes"][i].as_str().unwrap());
            let row: Vec<f32> = want["counts"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(d[r], row, "spot {i}");
            assert_eq!(
                t.pixel[r],
                [
                    want["pixel_x"][i].as_f64().unwrap(),
                    want["pixel_y"][i].as_f64().unwrap()
                ]
            );
        }
    }
    assert_eq!(mtx.pixel, h5.pixel);
    assert_eq!(dense(&mtx), dense(&h5));
    // Spot 3 is almost all mitochondrial: QC removes it by that rule.
    let (qc, sum) = quality_control(
        &mtx.counts,
        &QcSettings {
            min_genes: 3,
            ..Default::default()
        },
    );
    assert!(!qc[3].kept && qc[3].mito_fraction > 0.9);
    assert_eq!(sum.removed_mito, 1);
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    common::write_batch(path, &batch);
}

#[test]
fn parquet_wide_and_long_tables_read_the_same_spots() {
    let dir = tempfile::tempdir().unwrap();
    let spots = ["s0", "s1", "s2"];
    let counts = [[3i64, 0, 1], [0, 0, 7], [2, 5, 0]];
    let genes = ["GA", "GB", "GC"];
    let wide = dir.path().join("wide.parquet");
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("spot", Arc::new(StringArray::from(spots.to_vec()))),
        ("x", Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0]))),
        ("y", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))),
    ];
    for (j, g) in genes.iter().enumerate() {
        cols.push((
            g,
            Arc::new(Int64Array::from(
                counts.iter().map(|r| r[j]).collect::<Vec<_>>(),
            )),
        ));
    }
    write_parquet(&wide, cols);
    let long = dir.path().join("long.parquet");
    let (mut sp, mut gn, mut ct, mut xs, mut ys) = (vec![], vec![], vec![], vec![], vec![]);
    // Rows in gene-major order, one spot (s1) with a zero row too.
    for (j, g) in genes.iter().enumerate() {
        for (i, spot) in spots.iter().enumerate() {
            sp.push(*spot);
            gn.push(*g);
            ct.push(counts[i][j] as f64);
            xs.push([10.0, 20.0, 30.0][i]);
            ys.push([1.0, 2.0, 3.0][i]);
        }
    }
    write_parquet(
        &long,
        vec![
            ("spot", Arc::new(StringArray::from(sp))),
            ("gene", Arc::new(StringArray::from(gn))),
            ("count", Arc::new(Float64Array::from(ct))),
            ("x", Arc::new(Float64Array::from(xs))),
            ("y", Arc::new(Float64Array::from(ys))),
        ],
    );
    let a = read_spots(&wide, SpotFormat::Parquet, &SpotPaths::default()).unwrap();
    let b = read_spots(&long, SpotFormat::Parquet, &SpotPaths::default()).unwrap();
    for t in [&a, &b] {
        assert_eq!(t.ids, spots);
        assert_eq!(t.counts.genes, genes);
        assert_eq!(t.pixel, vec![[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]]);
        let d = dense(t);
        for i in 0..3 {
            assert_eq!(
                d[i],
                counts[i].iter().map(|&c| c as f32).collect::<Vec<_>>()
            );
        }
    }
}

/// Column types pandas and pyarrow write besides Utf8 / Float64 / Int64 read the same:
/// spot ids as a categorical (dictionary) or as integers, positions as float32 or
/// int32, counts as int32 or uint16; a text column where numbers belong is refused
/// naming the column and its type.
#[test]
fn parquet_columns_of_other_arrow_types_read_as_their_values() {
    use arrow_array::types::Int8Type;
    use arrow_array::{DictionaryArray, Float32Array, Int32Array, UInt16Array};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("types.parquet");
    let ids: DictionaryArray<Int8Type> = vec!["s0", "s1", "s0b"].into_iter().collect();
    write_parquet(
        &p,
        vec![
            ("spot", Arc::new(ids)),
            ("x", Arc::new(Float32Array::from(vec![10.5, 20.0, 30.0]))),
            ("y", Arc::new(Int32Array::from(vec![1, 2, 3]))),
            ("GA", Arc::new(Int32Array::from(vec![3, 0, 2]))),
            ("GB", Arc::new(UInt16Array::from(vec![0, 7, 5]))),
        ],
    );
    let t = read_spots(&p, SpotFormat::Parquet, &SpotPaths::default()).unwrap();
    assert_eq!(t.ids, ["s0", "s1", "s0b"]);
    assert_eq!(t.pixel, vec![[10.5, 1.0], [20.0, 2.0], [30.0, 3.0]]);
    assert_eq!(
        dense(&t),
        vec![vec![3.0, 0.0], vec![0.0, 7.0], vec![2.0, 5.0]]
    );
    let q = dir.path().join("ints.parquet");
    write_parquet(
        &q,
        vec![
            ("spot", Arc::new(Int64Array::from(vec![7, 8]))),
            ("x", Arc::new(StringArray::from(vec!["a", "b"]))),
            ("y", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
            ("GA", Arc::new(Int64Array::from(vec![1, 2]))),
        ],
    );
    let e = read_spots(&q, SpotFormat::Parquet, &SpotPaths::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ints.parquet") && e.contains("'x'") && e.contains("Utf8"),
        "{e}"
    );
}

/// A small her2st-layout section: counts/NAME.tsv.gz and spots/NAME_selection.tsv.
fn write_her2st(
    root: &Path,
    name: &str,
    rows: &[(&str, Vec<&str>)],
    genes: &[&str],
    sel: &[(f64, f64, u8)],
) -> PathBuf {
    std::fs::create_dir_all(root.join("counts")).unwrap();
    std::fs::create_dir_all(root.join("spots")).unwrap();
    let path = root.join("counts").join(format!("{name}.tsv.gz"));
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    writeln!(gz, "\t{}", genes.join("\t")).unwrap();
    for (id, vals) in rows {
        writeln!(gz, "{id}\t{}", vals.join("\t")).unwrap();
    }
    gz.finish().unwrap();
    let mut t = String::from("x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected\n");
    for (x, y, selected) in sel {
        t.push_str(&format!(
            "{x}\t{y}\t{x}\t{y}\t{}\t{}\t{selected}\n",
            x * 100.0,
            y * 100.0
        ));
    }
    std::fs::write(root.join("spots").join(format!("{name}_selection.tsv")), t).unwrap();
    path
}

#[test]
fn her2st_layout_reads_counts_positions_and_selection() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_her2st(
        dir.path(),
        "X1",
        &[
            ("2x3", vec!["1", "0", "4"]),
            ("5x6", vec!["0", "2", "0"]),
            ("7x7", vec!["9", "9", "9"]),
        ],
        &["A", "B", "C"],
        &[(2.02, 2.98, 1), (5.0, 6.0, 1), (7.0, 7.0, 0), (9.0, 9.0, 1)],
    );
    let t = read_spots(&p, SpotFormat::Her2st, &SpotPaths::default()).unwrap();
    // 7x7 is not under the tissue (selected 0): dropped.
    assert_eq!(t.ids, ["2x3", "5x6"]);
    assert_eq!(t.dropped_outside_tissue, 1);
    assert_eq!(t.pixel, vec![[202.0, 298.0], [500.0, 600.0]]);
    assert_eq!(dense(&t), vec![vec![1.0, 0.0, 4.0], vec![0.0, 2.0, 0.0]]);
}

/// The her2st data. Tests that need it are `#[ignore]`d with the reason, so that a run
/// without it lists them as ignored by name; `scripts/test.sh` runs them (`--ignored`)
/// when the data is there, and then its absence is a failure, never a silent pass.
fn her2st() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/her2st");
    assert!(
        p.join("counts/C1.tsv.gz").is_file(),
        "{} is absent: this test needs the her2st data",
        p.display()
    );
    p
}

fn reference() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/expression_her2st_C1.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
#[ignore = "needs ../shared/data/her2st (scripts/test.sh runs it when the data is there)"]
fn qc_normalisation_and_hvg_match_scanpy_on_her2st_c1() {
    let root = her2st();
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

fn assert_no_spots(db: &Path) {
    let store = Store::open_read_only(db).unwrap();
    assert!(
        store.spot_sets().unwrap().is_empty(),
        "a spot set was recorded"
    );
    assert!(store.spots("x").unwrap().is_empty());
    if let Ok(c) = store.collection("vortex-tiny-phantom:spots") {
        assert_eq!(c.live, 0);
    }
}

#[test]
fn phantom_spot_embeddings_equal_a_direct_computation_and_rerun_is_a_noop() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 3, [48, 256, 256], 16);
    let db = new_model_store(dir.path(), "db");
    let spots = ph.join("spots.parquet");
    let out = expect_ok(&[
        "--json",
        "ingest",
        "spots",
        s(&db),
        "--sample",
        "ph3",
        s(&spots),
    ]);
    let rep: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = rep["qc"]["kept"].as_u64().unwrap() as usize;
    assert!(n > 20, "{rep}");
    assert_eq!(rep["embedded"].as_u64().unwrap() as usize, n);
    assert_eq!(rep["encoder_genes_found"], rep["encoder_genes"]);

    // Direct computation: read, QC, normalise, select the encoder genes, run the network.
    let model = Model::load(Path::new(MODEL)).unwrap();
    let enc = model.manifest.encoder_genes.clone().unwrap().names;
    let t = read_spots(&spots, SpotFormat::Parquet, &SpotPaths::default()).unwrap();
    let (qc, _) = quality_control(&t.counts, &QcSettings::default());
    let keep: Vec<usize> = (0..qc.len()).filter(|&i| qc[i].kept).collect();
    assert_eq!(keep.len(), n);
    let totals = t.counts.totals();
    let gi = GeneIndex::new(&t.counts.genes);
    let mut x = Array2::<f32>::zeros((n, enc.len()));
    for (r, &i) in keep.iter().enumerate() {
        for (j, g) in enc.iter().enumerate() {
            let col = gi.get(g).unwrap();
            let c = t
                .counts
                .row(i)
                .find(|e| e.0 == col)
                .map_or(0.0, |e| e.1 as f64);
            x[[r, j]] = (c / totals[i] * 1e4).ln_1p() as f32;
        }
    }
    let want = model
        .network("genes", &RunOptions::default())
        .unwrap()
        .embed(x.view().into_dyn())
        .unwrap();
    let store = Store::open_read_only(&db).unwrap();
    let stored = store.spots("ph3").unwrap();
    assert_eq!(stored.len(), t.ids.len());
    let mut r = 0;
    for (i, (sp, e)) in stored.iter().enumerate() {
        assert_eq!(sp.id, t.ids[i]);
        // Parquet x, y are the volume's voxels; identity affine; z from the table.
        assert_eq!(
            sp.position,
            [t.z.as_ref().unwrap()[i], t.pixel[i][1], t.pixel[i][0]]
        );
        if !sp.qc.kept {
            assert!(e.is_none() && sp.vector_id.is_none());
            continue;
        }
        let (v, rec) = store
            .get("vortex-tiny-phantom:spots", sp.vector_id.unwrap())
            .unwrap()
            .unwrap();
        let d = v
            .iter()
            .zip(want.row(r))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d <= 1e-5, "spot {}: {d}", sp.id);
        assert_eq!(rec.unwrap().sample, "ph3");
        let e = e.as_ref().unwrap();
        for (j, &xv) in x.row(r).iter().enumerate() {
            assert!((e.normalized[j] - xv).abs() <= 1e-6);
        }
        r += 1;
    }
    assert_eq!(r, n);
    let set = store.spot_set("ph3").unwrap().unwrap();
    assert_eq!(set.kept, n);
    assert!(!set.hvg.is_empty() && set.hvg.len() <= 1200);
    drop(store);

    // Same data again: nothing to do. Same sample id with other settings: refused.
    let again = expect_ok(&["ingest", "spots", s(&db), "--sample", "ph3", s(&spots)]);
    assert!(again.contains("nothing to do"), "{again}");
    expect_user_error(
        &[
            "ingest",
            "spots",
            s(&db),
            "--sample",
            "ph3",
            s(&spots),
            "--smooth-k",
            "4",
        ],
        &["already has spots", "another sample id"],
    );
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(
        store.collection("vortex-tiny-phantom:spots").unwrap().live as usize,
        n
    );
}

#[test]
fn bad_spot_inputs_are_refused_with_clear_errors_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_model_store(dir.path(), "db");
    let genes: Vec<String> = (1..=10).map(|i| format!("GLD{i:02}")).collect();
    let g: Vec<&str> = genes.iter().map(|s| s.as_str()).collect();
    let ones = || vec!["1"; 10];
    let sel = [(1.0, 1.0, 1), (2.0, 2.0, 1)];
    let run = |p: &Path, needles: &[&str]| {
        let err = expect_user_error(&["ingest", "spots", s(&db), "--sample", "x", s(p)], needles);
        assert!(err.contains(s(p)) || needles.iter().any(|n| err.contains(n)));
        assert_no_spots(&db);
    };

    // Duplicated spot ids.
    let p = write_her2st(
        &dir.path().join("dup"),
        "D",
        &[("1x1", ones()), ("1x1", ones())],
        &g,
        &sel,
    );
    run(&p, &["duplicated spot id", "1x1"]);
    // Negative and non-integer counts.
    let mut neg = ones();
    neg[3] = "-2";
    let p = write_her2st(
        &dir.path().join("neg"),
        "N",
        &[("1x1", ones()), ("2x2", neg)],
        &g,
        &sel,
    );
    run(&p, &["N.tsv.gz", "spot '2x2', gene 'GLD04'", "negative"]);
    let mut frac = ones();
    frac[0] = "0.37";
    let p = write_her2st(
        &dir.path().join("frac"),
        "F",
        &[("1x1", frac), ("2x2", ones())],
        &g,
        &sel,
    );
    run(&p, &["F.tsv.gz", "not an integer", "raw counts"]);
    // Spots table not matching the count matrix.
    let p = write_her2st(
        &dir.path().join("mis"),
        "M",
        &[("1x1", ones()), ("8x8", ones())],
        &g,
        &sel,
    );
    run(
        &p,
        &["M_selection.tsv", "does not match the count matrix", "8x8"],
    );
    let vis = dir.path().join("vis");
    copy_dir(&fixture("visium_mtx"), &vis);
    let pos = vis.join("spatial/tissue_positions.csv");
    let text = std::fs::read_to_string(&pos).unwrap();
    let cut: String = text
        .lines()
        .filter(|l| !l.starts_with("AAAC0002"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pos, cut).unwrap();
    run(
        &vis,
        &[
            "tissue_positions.csv",
            "does not match the count matrix",
            "AAAC0002GGTT-1",
        ],
    );
    // Genes all missing from the model's panel (the default model knows GLD01..).
    let other: Vec<String> = (0..30).map(|i| format!("OTHER{i}")).collect();
    let o: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
    let p = write_her2st(
        &dir.path().join("genes"),
        "G",
        &[("1x1", vec!["3"; 30]), ("2x2", vec!["3"; 30])],
        &o,
        &sel,
    );
    run(
        &p,
        &["G.tsv.gz", "none of the model", "gene encoder", "OTHER0"],
    );
    // Malformed .h5: truncated, and not HDF5 at all.
    let h5 = std::fs::read(fixture("visium_h5/filtered_feature_bc_matrix.h5")).unwrap();
    let hv = dir.path().join("h5");
    copy_dir(&fixture("visium_h5"), &hv);
    let bad = hv.join("filtered_feature_bc_matrix.h5");
    std::fs::write(&bad, &h5[..h5.len() / 2]).unwrap();
    run(&bad, &["filtered_feature_bc_matrix.h5"]);
    std::fs::write(&bad, b"this is not an HDF5 file at all, just text").unwrap();
    run(&bad, &["filtered_feature_bc_matrix.h5", "HDF5"]);
    // Truncated gzip counts.
    let p = write_her2st(
        &dir.path().join("trunc"),
        "T",
        &[("1x1", ones()), ("2x2", ones())],
        &g,
        &sel,
    );
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 12]).unwrap();
    run(&p, &["T.tsv.gz"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
