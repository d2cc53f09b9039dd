//! AnnData `.h5ad` spots on fixtures written by the `anndata` package
//! (tests/fixtures/make_h5ad_fixture.py): every layout of the counts (dense, CSR, CSC,
//! a layer, `raw`, the anndata < 0.8 sparse attributes) reads the same table, and bad
//! files are refused by `ingest spots` with the file named and nothing written.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{expect_user_error, new_model_store, s};
use vortexdb::{H5adOptions, SpotFormat, SpotPaths, SpotTable, Store, read_spots};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/h5ad")
        .join(name)
}

fn read(name: &str, h5ad: H5adOptions) -> vortexdb::Result<SpotTable> {
    read_spots(
        &fixture(name),
        SpotFormat::detect(&fixture(name))?,
        &SpotPaths {
            positions: None,
            h5ad,
        },
    )
}

fn dense(t: &SpotTable) -> Vec<Vec<f64>> {
    (0..t.ids.len())
        .map(|i| {
            let mut r = vec![0.0; t.counts.n_genes()];
            for (g, c) in t.counts.row(i) {
                r[g] = c as f64;
            }
            r
        })
        .collect()
}

#[test]
fn every_layout_of_the_counts_reads_the_table_anndata_wrote() {
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let json = |k: &str| serde_json::from_value::<Vec<Vec<f64>>>(want[k].clone()).unwrap();
    let strings = |k: &str| serde_json::from_value::<Vec<String>>(want[k].clone()).unwrap();
    let layer = H5adOptions {
        layer: Some("counts".into()),
        ..Default::default()
    };
    let raw = H5adOptions {
        raw: true,
        ..Default::default()
    };
    let cases = [
        ("dense.h5ad", H5adOptions::default()),
        ("csr.h5ad", H5adOptions::default()),
        ("csc.h5ad", H5adOptions::default()),
        ("legacy.h5ad", H5adOptions::default()),
        ("layer.h5ad", layer),
        ("raw.h5ad", raw),
    ];
    for (name, opts) in cases {
        let t = read(name, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.format, SpotFormat::H5ad);
        assert_eq!(t.ids, strings("ids"), "{name}");
        assert_eq!(t.counts.genes, strings("genes"), "{name}");
        assert_eq!(dense(&t), json("counts"), "{name}");
        let pixel: Vec<Vec<f64>> = t.pixel.iter().map(|p| p.to_vec()).collect();
        assert_eq!(pixel, json("pixel"), "{name}");
        let array: Vec<Vec<f64>> = t.array.unwrap().iter().map(|p| p.to_vec()).collect();
        assert_eq!(array, json("array"), "{name}");
        assert_eq!(
            t.z.unwrap(),
            serde_json::from_value::<Vec<f64>>(want["z"].clone()).unwrap()
        );
        assert_eq!(t.spot_diameter_px, want["spot_diameter_px"].as_f64());
        assert_eq!(t.files, vec![fixture(name)]);
    }
    // The library is named explicitly or not at all; a wrong one is an error.
    let named = H5adOptions {
        library_id: Some("lib1".into()),
        ..Default::default()
    };
    assert_eq!(
        read("csr.h5ad", named).unwrap().spot_diameter_px,
        Some(55.5)
    );
    let wrong = H5adOptions {
        library_id: Some("other".into()),
        ..Default::default()
    };
    let e = read("csr.h5ad", wrong).unwrap_err().to_string();
    assert!(e.contains("libraries: lib1"), "{e}");
}

fn assert_no_spots(db: &Path) {
    let store = Store::open_read_only(db).unwrap();
    assert!(
        store.spot_sets().unwrap().is_empty(),
        "a spot set was recorded"
    );
}

#[test]
fn bad_h5ad_files_are_refused_with_the_file_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_model_store(dir.path(), "db");
    let run = |p: &Path, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["ingest", "spots", s(&db), "--sample", "x", s(p)];
        args.extend_from_slice(extra);
        let err = expect_user_error(&args, needles);
        assert!(err.contains(s(p)), "{err}");
        assert_no_spots(&db);
    };
    // A normalised X: the layers holding the counts are named.
    run(
        &fixture("layer.h5ad"),
        &[],
        &["not an integer", "--layer NAME or --raw", "layers: counts"],
    );
    run(&fixture("raw.h5ad"), &[], &["not an integer", "raw/X"]);
    run(
        &fixture("csr.h5ad"),
        &["--layer", "nope"],
        &["no layer 'nope'"],
    );
    run(&fixture("csr.h5ad"), &["--raw"], &["no raw/X"]);
    run(
        &fixture("csr.h5ad"),
        &["--spatial-key", "X_umap"],
        &["no obsm/X_umap", "obsm: spatial", "--spatial-key"],
    );
    // Damaged files: truncated at several points, and not HDF5 at all.
    let bytes = std::fs::read(fixture("csr.h5ad")).unwrap();
    let bad = dir.path().join("bad.h5ad");
    for cut in [bytes.len() / 8, bytes.len() / 2, bytes.len() - 100] {
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        run(&bad, &[], &["bad.h5ad"]);
    }
    std::fs::write(&bad, b"spot,gene,count\n").unwrap();
    run(&bad, &[], &["bad.h5ad", "HDF5"]);
    // The .h5ad options on another format are an error, not ignored.
    let parquet = dir.path().join("spots.parquet");
    std::fs::write(&parquet, b"not read").unwrap();
    let err = expect_user_error(
        &[
            "ingest",
            "spots",
            s(&db),
            "--sample",
            "x",
            s(&parquet),
            "--layer",
            "counts",
        ],
        &["parts of an .h5ad file", "Parquet"],
    );
    assert!(err.contains("layer"), "{err}");
    // Every byte flipped in turn in a stretch of the file: an error or a table, never a
    // crash (read directly, without a store, to keep the loop fast).
    for i in (0..bytes.len()).step_by(97) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&bad, &b).unwrap();
        let _ = read_spots(&bad, SpotFormat::H5ad, &SpotPaths::default());
    }
}
