//! One set of limits: the table of argument ranges in docs/CLI.md equals the library's
//! `ARG_RULES`, and the values that commands used to treat differently are now refused
//! the same way, with an explicit error for an option that cannot apply: `ingest spots
//! --batch 0`, `predict --downsample 0` / huge, `vectors import` with a path-like or
//! overlong sample id or non-numeric origins, `--quantization` different from an
//! existing collection's, raw vectors into a model's collection, a sample filter on a
//! collection without sample tags, an ingest that finds no tissue.

mod common;

use std::path::Path;

use common::fixture::{private_store, shared};
use common::{expect_ok, expect_user_error, s, write_npy};

#[test]
fn the_documented_table_is_the_code() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CLI.md")).unwrap();
    let at = doc
        .find("## Argument limits")
        .expect("the table in docs/CLI.md");
    let rows: Vec<Vec<String>> = doc[at..]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), vortexdb::ARG_RULES.len(), "{rows:?}");
    for (row, rule) in rows.iter().zip(vortexdb::ARG_RULES) {
        assert_eq!(row[0], rule.key);
        assert_eq!(row[1].parse::<f64>().unwrap(), rule.lo, "{}", rule.key);
        assert_eq!(row[2].parse::<f64>().unwrap(), rule.hi, "{}", rule.key);
        assert_eq!(row[3], rule.used_by, "{}", rule.key);
    }
}

#[test]
fn values_commands_treated_differently_are_refused_alike() {
    let sh = shared();
    let db = s(&sh.store);
    let spots = sh.ph.join("spots.parquet");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.parquet");
    let vols = dir.path().join("vols");
    // The gene encoder's batch follows the same rule as every other batch.
    let (_d, w) = private_store();
    expect_user_error(
        &[
            "ingest",
            "spots",
            s(&w),
            "--sample",
            "ph2",
            "--format",
            "parquet",
            "--batch",
            "0",
            s(&spots),
        ],
        &["batch", "1 to 65536"],
    );
    // predict --volumes refuses the downsample `query genes` refuses.
    for d in ["0", "4000000000"] {
        expect_user_error(
            &[
                "predict",
                db,
                "--sample",
                "ph",
                "--out",
                s(&out),
                "--genes",
                "TUM01",
                "--volumes",
                s(&vols),
                "--downsample",
                d,
            ],
            &["downsample", "1 to 1048576"],
        );
        expect_user_error(
            &[
                "query",
                "genes",
                db,
                "--genes",
                "TUM01",
                "--out",
                s(&vols),
                "--downsample",
                d,
            ],
            &["downsample", "1 to 1048576"],
        );
        assert!(!out.exists() && !vols.exists());
    }
}

#[test]
fn vector_imports_follow_the_ingest_rules() {
    let (_d, w) = private_store();
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("v.npy");
    write_npy(&npy, &common::clustered(40, 8, 2, 1));
    let long = "x".repeat(100_000);
    for bad in ["../../x", "", long.as_str()] {
        expect_user_error(
            &[
                "vectors",
                "import",
                s(&w),
                "--collection",
                "raw",
                "--sample",
                bad,
                s(&npy),
            ],
            &["sample"],
        );
    }
    // Non-numeric origins are refused, not read as 0.
    let pq = dir.path().join("v.parquet");
    let rows = common::clustered(4, 8, 1, 2);
    {
        use arrow_array::builder::{Float32Builder, ListBuilder};
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        use std::sync::Arc;
        let mut list = ListBuilder::new(Float32Builder::new());
        for r in &rows {
            list.values().append_slice(r);
            list.append(true);
        }
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("vector", Arc::new(list.finish())),
            ("sample", Arc::new(StringArray::from(vec!["a"; 4]))),
            ("z", Arc::new(StringArray::from(vec!["one"; 4]))),
        ];
        common::write_batch(&pq, &RecordBatch::try_from_iter(cols).unwrap());
    }
    expect_user_error(
        &["vectors", "import", s(&w), "--collection", "raw", s(&pq)],
        &["v.parquet", "'z'", "integers"],
    );
    // Raw vectors never join a model's collection (they would answer its queries).
    let w64 = dir.path().join("v64.npy");
    write_npy(&w64, &common::clustered(10, 64, 2, 3));
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&w),
            "--collection",
            "vortex-tiny-phantom:3d",
            s(&w64),
        ],
        &["vortex-tiny-phantom", "raw vectors cannot be imported"],
    );
    // A quantization that differs from the collection's is refused, not ignored.
    expect_ok(&["vectors", "import", s(&w), "--collection", "raw", s(&npy)]);
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&w),
            "--collection",
            "raw",
            "--quantization",
            "int8",
            s(&npy),
        ],
        &["quantization", "f32"],
    );
    // A sample filter on a collection without sample tags is an error, not all -1.
    let q = dir.path().join("q.npy");
    write_npy(&q, &common::clustered(2, 8, 1, 4));
    for filter in [&["--exclude-sample", "ph"][..], &["--sample", ""][..]] {
        let mut args = vec![
            "vectors",
            "search",
            s(&w),
            "--collection",
            "raw",
            "--queries",
            s(&q),
            "--out",
        ];
        let ids = dir.path().join("ids.npy");
        args.push(s(&ids));
        args.extend_from_slice(filter);
        expect_user_error(&args, &["sample"]);
        assert!(!ids.exists());
    }
}

#[test]
fn an_ingest_that_finds_no_tissue_is_an_error_not_complete() {
    let (_d, w) = private_store();
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("blank.npy");
    vortexdb::write_u8_array_npy(&vol, &[16, 96, 96], &vec![0u8; 16 * 96 * 96]).unwrap();
    for _ in 0..2 {
        expect_user_error(
            &["ingest", "volume", s(&w), "--sample", "blank", s(&vol)],
            &["no patch of sample 'blank'", "nothing was stored"],
        );
    }
    let info = expect_ok(&["info", s(&w)]);
    assert!(info.contains("empty"), "{info}");
    assert!(!info.contains("blank           3d") || !info.contains("complete  model"));
}

/// Error text names what the user gave: a network input of the wrong width is the
/// caller's error (exit 1, not an internal 2); a bad section spacing is blamed on
/// `--spacing-um`, not on `--um-per-voxel`.
#[test]
fn errors_name_what_the_user_gave() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    // The predictor takes the 3D encoder's tokens; a 2D array of width 3 fits no input.
    write_npy(&x, &common::clustered(4, 3, 1, 5));
    let out = dir.path().join("y.npy");
    expect_user_error(
        &[
            "models",
            "embed",
            common::MODEL,
            "--network",
            "predictor",
            "--input",
            s(&x),
            "--out",
            s(&out),
            "--output",
            "expression",
        ],
        &["does not fit the network"],
    );
    assert!(!out.exists());
    // Sections: the spacing is named as the flag the user typed.
    let sh = shared();
    let planes = sh.ph.join("planes");
    let mut imgs: Vec<String> = std::fs::read_dir(&planes)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    imgs.sort();
    let (_d, w) = private_store();
    let mut args = vec![
        "ingest",
        "sections",
        s(&w),
        "--sample",
        "secs",
        "--spacing-um",
        "1e9",
        "--um-per-px",
        "4",
    ];
    args.extend(imgs.iter().map(String::as_str));
    let err = expect_user_error(&args, &["--spacing-um"]);
    assert!(!err.contains("um-per-voxel"), "{err}");
}
