//! Regression tests of issue 17's defects that destroyed or silently lost data, or
//! gave wrong answers from a damaged store: each now ends in a clear exit 1 naming the
//! file or argument, with nothing deleted or lost (the size and argument defects are in
//! `tests/hardening_sizes.rs`). Every CLI run that is expected to fail is under an
//! address-space limit (`common::expect_user_error`).
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{answers_as_recorded, copy_dir, private_store, shared, store_from_fixture};
use common::{MODEL, expect_ok, expect_user_error, files, s, vortexdb};
use vortexdb::Store;

/// A copy of the default model with its manifest edited by `edit`.
fn edited_model(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let m = dir.join(name);
    copy_dir(Path::new(MODEL), &m);
    let p = m.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    m
}

fn store_is_intact(store: &Path) {
    for f in ["vortex.redb", "LOCK", "index", "models"] {
        assert!(store.join(f).exists(), "{f} of the store is gone");
    }
    let out = expect_ok(&["check", s(store)]);
    assert!(out.starts_with("ok:"), "{out}");
}

#[test]
fn model_named_dot_dot_or_dot_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    expect_ok(&["models", "add", s(&store), MODEL]);
    let before: Vec<_> = std::fs::read_dir(store.join("models/vortex-tiny-phantom"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for name in ["..", ".", "../x", ".hidden", ""] {
        let bad = edited_model(dir.path(), &format!("m{}", name.len()), |v| {
            v["name"] = name.into()
        });
        expect_user_error(
            &["models", "add", s(&store), s(&bad)],
            &["manifest.json", "not a valid name"],
        );
        std::fs::remove_dir_all(&bad).unwrap();
        store_is_intact(&store);
        let now: Vec<_> = std::fs::read_dir(store.join("models/vortex-tiny-phantom"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(now, before, "model files changed by a model named {name:?}");
    }
    // A registered model whose files were removed behind the store's back: `check`
    // says so, and adding the same model again restores them.
    std::fs::remove_dir_all(store.join("models/vortex-tiny-phantom")).unwrap();
    expect_user_error(&["check", s(&store)], &["vortex-tiny-phantom", "missing"]);
    expect_ok(&["models", "add", s(&store), MODEL]);
    store_is_intact(&store);
}

#[test]
fn manifest_without_networks_or_with_bad_fields_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "none",
            Box::new(|v| v["networks"] = serde_json::json!({})),
            "no image encoder",
        ),
        (
            "dup",
            Box::new(|v| v["predicted_genes"][1] = v["predicted_genes"][0].clone()),
            "listed twice",
        ),
        (
            "huge",
            Box::new(|v| v["patch"]["size_px"] = serde_json::json!([100000, 32])),
            "out of range",
        ),
        (
            "um",
            Box::new(|v| v["patch"]["um_per_px"] = serde_json::json!(1e30)),
            "pixel sizes",
        ),
    ];
    for (name, edit, needle) in cases {
        let m = edited_model(dir.path(), name, edit);
        expect_user_error(
            &["models", "add", s(&store), s(&m)],
            &["manifest.json", needle],
        );
    }
    let out = expect_ok(&["models", "list", s(&store)]);
    assert!(out.contains("no models"), "{out}");
}

#[test]
fn gene_names_never_leave_the_output_directory() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let model = edited_model(dir.path(), "evil", |v| {
        v["name"] = "evil-genes".into();
        v["predicted_genes"][0] = "../../x".into();
        v["predicted_genes"][1] = "/abs/path/x".into();
    });
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    expect_ok(&["models", "add", s(&store), s(&model)]);
    let vol = sh.ph.join("volume.npy");
    expect_ok(&["ingest", "volume", s(&store), "--sample", "ph", s(&vol)]);
    let nest = dir.path().join("a/b");
    let vols = nest.join("vols");
    let pred = nest.join("pred.parquet");
    expect_ok(&[
        "predict",
        s(&store),
        "--sample",
        "ph",
        "--out",
        s(&pred),
        "--genes",
        "../../x,/abs/path/x",
        "--volumes",
        s(&vols),
    ]);
    let names: Vec<String> = std::fs::read_dir(&vols)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "_.._.._x.npy"), "{names:?}");
    assert!(names.iter().any(|n| n == "_abs_path_x.npy"), "{names:?}");
    // Nothing was written beside or above the output directory.
    assert!(!dir.path().join("a/x.npy").exists() && !dir.path().join("x.npy").exists());
    assert!(!Path::new("/abs").exists());
    let above: Vec<_> = std::fs::read_dir(&nest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(above.len(), 2, "{above:?}");
}

#[test]
fn a_second_sample_from_the_same_file_is_ingested_not_skipped() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    copy_dir(&sh.store, &store);
    let vol = sh.ph.join("volume.npy");
    let copy = dir.path().join("copy.npy");
    std::fs::copy(&vol, &copy).unwrap();
    let first = Store::open_read_only(&store)
        .unwrap()
        .sample("ph")
        .unwrap()
        .unwrap()
        .patches;
    assert!(first > 50, "{first}");
    let out = expect_ok(&["ingest", "volume", s(&store), "--sample", "ph-b", s(&vol)]);
    assert!(!out.contains("nothing to do"), "{out}");
    let out = expect_ok(&["ingest", "volume", s(&store), "--sample", "ph-c", s(&copy)]);
    assert!(!out.contains("nothing to do"), "{out}");
    let st = Store::open_read_only(&store).unwrap();
    for id in ["ph", "ph-b", "ph-c"] {
        let rec = st.sample(id).unwrap().unwrap();
        assert_eq!(rec.patches, first, "{id}");
        assert_eq!(
            st.count_sample_patches("vortex-tiny-phantom:3d", id)
                .unwrap(),
            first,
            "{id}"
        );
    }
}

#[test]
fn another_intensity_range_is_other_settings_not_a_resume() {
    let sh = shared();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    expect_ok(&["models", "add", s(&store), MODEL]);
    let vol = sh.ph.join("volume.npy");
    // Kill an ingest after its first durable batch, then resume with another range.
    let mut child = std::process::Command::new(common::bin())
        .args([
            "ingest",
            "volume",
            s(&store),
            "--sample",
            "r",
            "--batch",
            "4",
        ])
        .args(["--intensity-range", "0,255", s(&vol)])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stored_before = Store::open_read_only(&store)
        .unwrap()
        .count_sample_patches("vortex-tiny-phantom:3d", "r")
        .unwrap();
    expect_user_error(
        &[
            "ingest",
            "volume",
            s(&store),
            "--sample",
            "r",
            "--intensity-range",
            "0,100",
            s(&vol),
        ],
        &["--sample", "other data or settings"],
    );
    let st = Store::open_read_only(&store).unwrap();
    assert_eq!(
        st.count_sample_patches("vortex-tiny-phantom:3d", "r")
            .unwrap(),
        stored_before,
        "the refused run wrote patches"
    );
    drop(st);
    // The same range resumes and completes.
    expect_ok(&[
        "ingest",
        "volume",
        s(&store),
        "--sample",
        "r",
        "--intensity-range",
        "0,255",
        s(&vol),
    ]);
    let rec = Store::open_read_only(&store)
        .unwrap()
        .sample("r")
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, "complete");
    for bad in ["nan,1", "0,inf", "5,5"] {
        expect_user_error(
            &[
                "ingest",
                "volume",
                s(&store),
                "--sample",
                "r2",
                "--intensity-range",
                bad,
                s(&vol),
            ],
            &["--intensity-range"],
        );
    }
    assert!(
        Store::open_read_only(&store)
            .unwrap()
            .sample("r2")
            .unwrap()
            .is_none()
    );
}

#[test]
fn spot_sample_ids_are_validated() {
    let sh = shared();
    let (_priv, store) = private_store();
    let spots = sh.ph.join("spots.parquet");
    for id in ["a/b", "../../x", "", "a\nb", ".", "💥"] {
        expect_user_error(
            &[
                "ingest",
                "spots",
                s(&store),
                "--sample",
                id,
                "--format",
                "parquet",
                s(&spots),
            ],
            &["--sample", "not a valid name"],
        );
    }
    let n = Store::open_read_only(&store)
        .unwrap()
        .spot_sets()
        .unwrap()
        .len();
    assert_eq!(n, 1);
}

/// Flip one byte of every occurrence of `needle` in `file`; returns the count.
fn damage_all(file: &Path, needle: &[u8]) -> usize {
    let mut b = std::fs::read(file).unwrap();
    let hits: Vec<usize> = b
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    for &i in &hits {
        b[i + needle.len() / 2] ^= 0x20;
    }
    std::fs::write(file, b).unwrap();
    hits.len()
}

#[test]
fn damaged_records_are_reported_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    let rows = common::clustered(300, 8, 3, 4);
    let pq = dir.path().join("v.parquet");
    let samples: Vec<String> = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                "samplezzqq"
            } else {
                "otherqqzz"
            }
            .to_string()
        })
        .collect();
    common::write_vector_parquet(&pq, &rows, &samples);
    expect_ok(&["vectors", "import", s(&store), "--collection", "c", s(&pq)]);
    let q = dir.path().join("q.npy");
    common::write_npy(&q, &rows[..5]);
    let out = dir.path().join("o.npy");
    let search = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "vectors",
            "search",
            s(&store),
            "--collection",
            "c",
            "--queries",
            s(&q),
            "--out",
            s(&out),
            "--exact",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let args = search(&["--sample", "samplezzqq"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    expect_ok(&refs);
    // A row in the wrong place (two packed vectors swapped, as a misdirected write
    // would do) is detected: each row's CRC covers its collection and id.
    let swapped = dir.path().join("swapped");
    copy_dir(&store, &swapped);
    let packed = swapped.join(vortexdb::VECTORS_DIR).join("c0-e0.vec");
    {
        let mut b = std::fs::read(&packed).unwrap();
        let stride = b.len() / rows.len();
        let (r3, r4) = (
            b[3 * stride..4 * stride].to_vec(),
            b[4 * stride..5 * stride].to_vec(),
        );
        b[3 * stride..4 * stride].copy_from_slice(&r4);
        b[4 * stride..5 * stride].copy_from_slice(&r3);
        std::fs::write(&packed, b).unwrap();
    }
    let sargs: Vec<String> = refs
        .iter()
        .map(|a| a.replace(s(&store), s(&swapped)))
        .collect();
    let sargs: Vec<&str> = sargs.iter().map(String::as_str).collect();
    expect_user_error(
        &sargs[..sargs.len() - 2],
        &["c0-e0.vec", "damaged", "vector 3"],
    );
    expect_user_error(&["check", s(&swapped)], &["c0-e0.vec", "damaged"]);
    let n = damage_all(&store.join("vortex.redb"), b"samplezzqq");
    assert!(n >= 1, "sample name not found in vortex.redb");
    let err = expect_user_error(&refs, &["vortex.redb", "damaged", "checksum"]);
    assert!(!err.contains("init"), "{err}");
    expect_user_error(&["check", s(&store)], &["vortex.redb", "damaged"]);
    // A vortex.redb cut to half its length is damage, never "not a store ... init".
    let f = store.join("vortex.redb");
    let len = std::fs::metadata(&f).unwrap().len();
    let b = std::fs::read(&f).unwrap();
    std::fs::write(&f, &b[..(len / 2) as usize]).unwrap();
    for args in [vec!["info", s(&store)], vec!["check", s(&store)]] {
        let o = vortexdb(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("vortex.redb") && !err.contains("vortexdb init"),
            "{err}"
        );
    }
    let o = vortexdb(&["init", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        std::fs::metadata(&f).unwrap().len() == len / 2,
        "init touched the file"
    );
}

#[test]
fn a_schema_1_store_is_read_from_a_migrated_copy_and_migrated_by_a_writer() {
    let fx = Path::new("tests/fixtures/store_v1");
    let (_dir, store) = store_from_fixture(fx);
    // Read-only commands migrate a private copy and never write to the store.
    let before = files(&store);
    let o = vortexdb(&["info", s(&store)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("migrated from schema 1"), "{err}");
    assert!(err.contains("private copy migrated to schema 3"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("schema v3"));
    answers_as_recorded(fx, &store);
    assert!(
        files(&store) == before,
        "a read-only open wrote to the store"
    );
    // A writable open migrates it in place; afterwards nothing is migrated.
    drop(Store::open(&store).unwrap());
    assert!(files(&store) != before);
    let o = vortexdb(&["info", s(&store)]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("migrated"));
    store_is_intact(&store);
    answers_as_recorded(fx, &store);
}

#[test]
fn the_demo_replaces_only_a_store_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    expect_ok(&["init", s(&store)]);
    expect_user_error(
        &["demo", "--out", s(dir.path())],
        &["store", "not made by `vortexdb demo`"],
    );
    assert!(store.join("vortex.redb").is_file());
    assert!(expect_ok(&["check", s(&store)]).starts_with("ok:"));
    assert!(
        !dir.path().join("phantom").exists(),
        "the demo started work"
    );
}
