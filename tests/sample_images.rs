//! Where the image files of a sample ingested from them are, recorded with the sample
//! (table `sample_images`): read back through the library and `info --json`, counted by
//! `check`, carried by `backup`; and stores without the table (written by an earlier
//! release, or before the table existed) open and answer `info` as before.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::store_from_fixture;
use common::{bin, expect_ok, new_model_store, phantom, s};
use vortexdb::{SampleImages, Store};

/// Run the CLI in `cwd` (so relative paths are relative to it); expect success.
fn ok_in(cwd: &Path, args: &[&str]) -> String {
    let o = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn vortexdb");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?} failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `p` with symbolic links resolved (the recorded paths keep them; the temporary
/// directory may have some).
fn real(p: impl AsRef<Path>) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

fn info_samples(db: &Path) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(expect_ok(&["--json", "info", s(db)]).trim()).unwrap();
    v["samples"].clone()
}

fn sample<'a>(samples: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    samples
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("no sample {id} in {samples}"))
}

#[test]
fn section_and_image_files_are_recorded_with_their_sample() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    phantom(root, 2, [48, 128, 128], 16);
    let db = new_model_store(root, "db");
    let planes = [8, 24, 40].map(|z| format!("ph/planes/plane_{z:03}.png"));
    let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let t = serde_json::json!({"frame": [128, 128], "sections": [id, id, id]});
    std::fs::write(root.join("t.json"), t.to_string()).unwrap();
    // Relative paths, from the directory holding them.
    let mut args = vec![
        "--json",
        "ingest",
        "sections",
        "db",
        "--sample",
        "sec",
        "--spacing-um",
        "32",
        "--um-per-px",
        "4",
        "--transforms",
        "t.json",
    ];
    args.extend(planes.iter().map(|p| p.as_str()));
    ok_in(root, &args);
    ok_in(
        root,
        &[
            "ingest",
            "image",
            "db",
            "--sample",
            "he",
            "--um-per-px",
            "4",
            &planes[1],
        ],
    );

    // Library: absolute paths naming the files given, in order.
    let store = Store::open_read_only(&db).unwrap();
    let rec = store.sample_images("sec").unwrap().expect("images of sec");
    assert_eq!(rec.sample, "sec");
    assert_eq!(rec.images.len(), 3);
    for (got, given) in rec.images.iter().zip(&planes) {
        assert!(Path::new(got).is_absolute(), "{got}");
        assert_eq!(real(got), real(root.join(given)));
    }
    let tr = rec.transforms.as_deref().expect("transforms recorded");
    assert!(Path::new(tr).is_absolute());
    assert_eq!(real(tr), real(root.join("t.json")));
    assert_eq!(rec.levels, vec![None; 3], "PNGs have no levels");
    assert_eq!(rec.um_per_px, 4.0);
    let he = store.sample_images("he").unwrap().expect("images of he");
    assert_eq!(real(&he.images[0]), real(root.join(&planes[1])));
    assert_eq!(
        (he.transforms.as_deref(), &he.levels[..]),
        (None, &[None][..])
    );
    assert_eq!(store.sample_images("nope").unwrap(), None);
    let all: Vec<String> = store
        .all_sample_images()
        .unwrap()
        .into_iter()
        .map(|i| i.sample)
        .collect();
    assert_eq!(all, ["he", "sec"]);

    // Read back from the recorded files, as ingested: the PNG's pixels (identity
    // transforms), averaged over blocks when downsampled.
    let png = image::open(root.join(&planes[1])).unwrap().to_rgb8();
    for (id, z) in [("sec", 1), ("he", 0)] {
        let (px, shape) = vortexdb::read_sample_image(&store, id, z, 1).unwrap();
        assert_eq!(shape, [128, 128, 3], "{id}");
        let worst = px
            .iter()
            .zip(png.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "{id}: {worst} grey levels off the PNG");
        let (half, shape) = vortexdb::read_sample_image(&store, id, z, 2).unwrap();
        assert_eq!(shape, [64, 64, 3]);
        let (y, x, c) = (10, 20, 1);
        let mean: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|(dy, dx)| png.get_pixel(2 * x + dx, 2 * y + dy)[c] as f32)
            .sum::<f32>()
            / 4.0;
        let got = half[(y as usize * 64 + x as usize) * 3 + c] as f32;
        assert!((got - mean).abs() <= 1.0, "{got} vs {mean}");
    }
    let err = vortexdb::read_sample_image(&store, "sec", 3, 1).unwrap_err();
    assert!(err.to_string().contains("slice 3"), "{err}");
    assert!(matches!(
        vortexdb::read_sample_image(&store, "nope", 0, 1),
        Err(vortexdb::Error::UnknownSample { .. })
    ));
    drop(store);

    // info --json: the same, per sample.
    let samples = info_samples(&db);
    let sec = sample(&samples, "sec");
    assert_eq!(sec["images"], serde_json::json!(rec.images), "{sec}");
    assert_eq!(sec["transforms"], serde_json::json!(rec.transforms));
    assert_eq!(sec["levels"], serde_json::json!([null, null, null]));
    assert_eq!(sec["um_per_px"], 4.0);
    assert_eq!(
        sample(&samples, "he")["transforms"],
        serde_json::Value::Null
    );

    // check counts and verifies them; backup carries them.
    let check: serde_json::Value =
        serde_json::from_str(expect_ok(&["--json", "check", s(&db)]).trim()).unwrap();
    assert_eq!(check["tables"]["sample_images"], 2, "{check}");
    let copy = root.join("copy");
    expect_ok(&["backup", s(&db), s(&copy)]);
    let backed = Store::open_read_only(&copy).unwrap();
    assert_eq!(backed.sample_images("sec").unwrap(), Some(rec.clone()));
    assert_eq!(backed.sample_images("he").unwrap(), Some(he));
    drop(backed);

    // The same store as written before the table existed: no images, the rest as is.
    drop_table(&db, "sample_images");
    let samples = info_samples(&db);
    for id in ["sec", "he"] {
        let x = sample(&samples, id);
        for field in ["images", "transforms", "levels", "um_per_px"] {
            assert_eq!(x[field], serde_json::Value::Null, "{id}.{field}: {x}");
        }
        assert_eq!(x["status"], "complete");
    }
    assert!(expect_ok(&["check", s(&db)]).starts_with("ok:"));
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.sample_images("sec").unwrap(), None::<SampleImages>);
}

/// Remove a table from a store's `vortex.redb` (the store must not be open).
fn drop_table(db: &Path, name: &str) {
    let mut b = redb::Database::builder();
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    let d = b.open(db.join(vortexdb::DB_FILE)).unwrap();
    let w = d.begin_write().unwrap();
    let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(name);
    assert!(w.delete_table(def).unwrap(), "no table {name}");
    w.commit().unwrap();
}

#[test]
fn a_store_of_the_previous_release_has_no_images_and_answers_info() {
    let fx = Path::new("tests/fixtures/store_v2");
    let (_dir, store) = store_from_fixture(fx);
    let db = Store::open(&store).unwrap();
    assert!(db.all_sample_images().unwrap().is_empty());
    assert_eq!(db.sample_images("ph5").unwrap(), None);
    let summary = db.summary().unwrap();
    assert!(summary.sample_images.is_empty());
    let json = summary.to_json();
    let ph5 = sample(&json["samples"], "ph5");
    assert_eq!(ph5["images"], serde_json::Value::Null);
    assert_eq!(ph5["transforms"], serde_json::Value::Null);
    assert_eq!(ph5["kind"], "3d");
    drop(db);
    // Through the CLI, read-only: the same.
    let samples = info_samples(&store);
    assert_eq!(sample(&samples, "ph5")["images"], serde_json::Value::Null);
    assert!(expect_ok(&["check", s(&store)]).starts_with("ok:"));
}
