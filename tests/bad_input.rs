//! Bad input through the CLI: each case exits with code 1 and a message naming the
//! file or argument and what is wrong, never a panic, and never a half-written store.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::{clustered, expect_ok, expect_user_error, new_store, s, write_npy};
use vortexdb::Store;

fn live(store: &Path, c: &str) -> Option<u64> {
    Store::open_read_only(store)
        .unwrap()
        .collection(c)
        .ok()
        .map(|c| c.live)
}

#[test]
fn wrong_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    let a = dir.path().join("a.npy");
    let b = dir.path().join("b.npy");
    write_npy(&a, &clustered(100, 8, 3, 1));
    write_npy(&b, &clustered(100, 12, 3, 2));
    expect_ok(&["vectors", "import", s(&store), "--collection", "c", s(&a)]);
    expect_user_error(
        &["vectors", "import", s(&store), "--collection", "c", s(&b)],
        &["b.npy", "dimension 12", "dimension 8"],
    );
    assert_eq!(live(&store, "c"), Some(100));
    let out = dir.path().join("o.npy");
    expect_user_error(
        &[
            "vectors",
            "search",
            s(&store),
            "--collection",
            "c",
            "--queries",
            s(&b),
            "--out",
            s(&out),
        ],
        &["b.npy", "dimension 12"],
    );
}

#[test]
fn nan_and_inf_values_rejected_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    for (name, bad) in [("nan.npy", f32::NAN), ("inf.npy", f32::INFINITY)] {
        let mut rows = clustered(30_000, 8, 3, 3);
        rows[25_001][3] = bad;
        let f = dir.path().join(name);
        write_npy(&f, &rows);
        expect_user_error(
            &[
                "vectors",
                "import",
                s(&store),
                "--collection",
                "c",
                "--batch-size",
                "1000",
                s(&f),
            ],
            &[name, "row 25001", "column 3", "not finite"],
        );
        assert_eq!(
            live(&store, "c"),
            None,
            "{name}: store written despite bad row"
        );
    }
}

#[test]
fn empty_truncated_and_wrong_dtype_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    let empty = dir.path().join("empty.npy");
    std::fs::write(&empty, b"").unwrap();
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "c",
            s(&empty),
        ],
        &["empty.npy", "empty"],
    );
    let zero = dir.path().join("zero.npy");
    vortexdb::write_f32_npy(&zero, &[], 8).unwrap();
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "c",
            s(&zero),
        ],
        &["zero.npy", "no vectors"],
    );
    let trunc = dir.path().join("trunc.npy");
    write_npy(&trunc, &clustered(100, 8, 3, 4));
    let bytes = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 50]).unwrap();
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "c",
            s(&trunc),
        ],
        &["trunc.npy", "truncated"],
    );
    let f64file = dir.path().join("f64.npy");
    npyz::to_file_1d(&f64file, vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "c",
            s(&f64file),
        ],
        &["f64.npy", "dtype"],
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "c",
            s(&text),
        ],
        &["notes.txt", "not an NPY or Parquet"],
    );
    assert_eq!(live(&store, "c"), None);
}

#[test]
fn unknown_collection_and_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    let q = dir.path().join("q.npy");
    write_npy(&q, &clustered(3, 8, 2, 5));
    let out = dir.path().join("o.npy");
    expect_user_error(
        &[
            "vectors",
            "search",
            s(&store),
            "--collection",
            "nope",
            "--queries",
            s(&q),
            "--out",
            s(&out),
        ],
        &["unknown collection 'nope'"],
    );
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    expect_user_error(
        &["info", s(&plain)],
        &["plain", "not a vortexdb store", "vortexdb init"],
    );
    expect_user_error(
        &["info", s(&dir.path().join("missing"))],
        &["missing", "no such directory"],
    );
    // a file that is not a redb database where vortex.redb should be
    std::fs::write(plain.join("vortex.redb"), vec![7u8; 10_000]).unwrap();
    expect_user_error(&["info", s(&plain)], &["vortex.redb"]);
    expect_user_error(&["init", s(&store)], &["already holds a vortexdb store"]);
}

#[test]
fn second_writer_gets_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    let f = dir.path().join("a.npy");
    write_npy(&f, &clustered(50, 8, 3, 6));
    let holder = Store::open(&store).unwrap();
    expect_user_error(
        &["vectors", "import", s(&store), "--collection", "c", s(&f)],
        &["locked by another writer", &std::process::id().to_string()],
    );
    // readers are still welcome
    expect_ok(&["info", s(&store)]);
    drop(holder);
    expect_ok(&["vectors", "import", s(&store), "--collection", "c", s(&f)]);
}

fn write_parquet(path: &Path, rows: &[Vec<f32>], with_meta: bool) {
    let mut lb = ListBuilder::new(Float32Builder::new());
    for r in rows {
        lb.values().append_slice(r);
        lb.append(true);
    }
    let list = Arc::new(lb.finish());
    let mut fields = vec![Field::new("vector", list.data_type().clone(), true)];
    let mut cols: Vec<arrow_array::ArrayRef> = vec![list];
    if with_meta {
        fields.push(Field::new("sample", DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from_iter_values(
            (0..rows.len()).map(|i| if i % 2 == 0 { "even" } else { "odd" }),
        )));
        for axis in ["z", "y", "x"] {
            fields.push(Field::new(axis, DataType::Int64, false));
            cols.push(Arc::new(Int64Array::from_iter_values(
                (0..rows.len() as i64).map(|i| i % 50),
            )));
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    common::write_batch(path, &batch);
}

#[test]
fn parquet_import_with_provenance_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    let rows = clustered(2000, 8, 5, 7);
    let f = dir.path().join("v.parquet");
    write_parquet(&f, &rows, true);
    expect_ok(&[
        "vectors",
        "import",
        s(&store),
        "--collection",
        "p",
        s(&f),
        "--batch-size",
        "300",
    ]);
    assert_eq!(live(&store, "p"), Some(2000));
    let q = dir.path().join("q.npy");
    write_npy(&q, &rows[..5]);
    let out = dir.path().join("o.npy");
    expect_ok(&[
        "vectors",
        "search",
        s(&store),
        "--collection",
        "p",
        "--queries",
        s(&q),
        "--out",
        s(&out),
        "--sample",
        "odd",
        "--region",
        "0:25,0:50,0:50",
    ]);
    let ids: Vec<i64> = npyz::NpyFile::new(&std::fs::read(&out).unwrap()[..])
        .unwrap()
        .into_vec()
        .unwrap();
    assert_eq!(ids.len(), 50);
    assert!(
        ids.iter().all(|&i| i >= 0 && i % 2 == 1 && i % 50 < 25),
        "filter violated: {ids:?}"
    );
    // A Parquet file whose vector column is not a list of floats.
    let bad = dir.path().join("bad.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "vector",
            DataType::Utf8,
            false,
        )])),
        vec![Arc::new(StringArray::from(vec!["a", "b"]))],
    )
    .unwrap();
    common::write_batch(&bad, &batch);
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "p2",
            s(&bad),
        ],
        &["bad.parquet", "list<float32>"],
    );
    expect_user_error(
        &[
            "vectors",
            "import",
            s(&store),
            "--collection",
            "p2",
            "--column",
            "emb",
            s(&f),
        ],
        &["v.parquet", "no column 'emb'"],
    );
    expect_user_error(
        &[
            "vectors",
            "search",
            s(&store),
            "--collection",
            "p",
            "--queries",
            s(&q),
            "--out",
            s(&out),
            "--region",
            "5:1,0:1,0:1",
        ],
        &["--region"],
    );
}

/// Retrieval against patches that were never ingested says what to ingest; a bad image
/// for `ingest image` names the file and leaves no sample behind.
#[test]
fn retrieval_target_missing_and_bad_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    expect_ok(&["models", "add", s(&store), "default"]);
    let img = dir.path().join("q.png");
    image::RgbImage::from_pixel(40, 40, image::Rgb([200, 120, 180]))
        .save(&img)
        .unwrap();
    expect_user_error(
        &[
            "query",
            "patch",
            s(&store),
            "--image",
            s(&img),
            "--target",
            "2d",
        ],
        &["--target", "no 2d patches", "vortexdb ingest image"],
    );
    expect_user_error(
        &["query", "patch", s(&store), "--image", s(&img)],
        &["--target", "no 3d patches"],
    );
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n not really").unwrap();
    expect_user_error(
        &[
            "ingest",
            "image",
            s(&store),
            "--sample",
            "b",
            "--um-per-px",
            "4",
            s(&bad),
        ],
        &["broken.png"],
    );
    expect_user_error(
        &[
            "ingest",
            "image",
            s(&store),
            "--sample",
            "b",
            "--um-per-px",
            "0",
            s(&img),
        ],
        &["--um-per-px", "must be positive"],
    );
    let st = Store::open_read_only(&store).unwrap();
    assert!(st.sample("b").unwrap().is_none(), "no half-written sample");
}

/// `ingest sections --transforms`: a file that does not fit the images is refused before
/// anything is written, naming the file.
#[test]
fn sections_transforms_must_fit_the_images() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path(), "db");
    expect_ok(&["models", "add", s(&store), "default"]);
    let imgs: Vec<std::path::PathBuf> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("s{i}.png"));
            image::RgbImage::from_pixel(40 + i * 10, 40, image::Rgb([200, 120, 180]))
                .save(&p)
                .unwrap();
            p
        })
        .collect();
    let tf = dir.path().join("t.json");
    std::fs::write(&tf, r#"{"frame": [40, 40], "sections": [[1,0,0,0,1,0]]}"#).unwrap();
    let mut args = vec![
        "ingest",
        "sections",
        s(&store),
        "--sample",
        "x",
        "--spacing-um",
        "64",
        "--um-per-px",
        "4",
        "--transforms",
        s(&tf),
    ];
    args.extend(imgs.iter().map(|p| s(p)));
    expect_user_error(&args, &["t.json", "1 transforms for 2 section images"]);
    // Without transforms, images of different sizes are refused as unregistered.
    let mut plain = vec![
        "ingest",
        "sections",
        s(&store),
        "--sample",
        "x",
        "--spacing-um",
        "64",
        "--um-per-px",
        "4",
    ];
    plain.extend(imgs.iter().map(|p| s(p)));
    expect_user_error(&plain, &["s1.png", "different sizes"]);
    let st = Store::open_read_only(&store).unwrap();
    assert!(st.sample("x").unwrap().is_none(), "no half-written sample");
}
