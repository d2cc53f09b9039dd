//! A small phantom (seed 5, never seen by the default model) with its volume and spots
//! ingested once per test binary, shared by the tests that only read it, and private
//! copies for the tests whose commands open it for writing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{expect_ok, s};

pub struct Shared {
    _dir: tempfile::TempDir,
    /// The phantom's directory.
    pub ph: PathBuf,
    /// The store holding sample `ph` (volume and spots).
    pub store: PathBuf,
}

pub fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ph = super::phantom(dir.path(), 5, [16, 160, 160], 16);
        let store = super::new_model_store(dir.path(), "db");
        let vol = ph.join("volume.npy");
        expect_ok(&["ingest", "volume", s(&store), "--sample", "ph", s(&vol)]);
        let spots = ph.join("spots.parquet");
        expect_ok(&[
            "ingest",
            "spots",
            s(&store),
            "--sample",
            "ph",
            "--format",
            "parquet",
            s(&spots),
        ]);
        Shared {
            _dir: dir,
            ph,
            store,
        }
    })
}

/// A private copy of the shared store, for tests whose commands open it for writing
/// (tests run in parallel, and a store has one writer at a time).
pub fn private_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    copy_dir(&shared().store, &store);
    (dir, store)
}

/// A writable copy of a store fixture (`tests/fixtures/store_v*`: its `vortex.redb`),
/// with the default model's files restored (the fixtures' model is the default one).
pub fn store_from_fixture(fx: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    std::fs::create_dir_all(store.join("index")).unwrap();
    std::fs::copy(fx.join("vortex.redb"), store.join("vortex.redb")).unwrap();
    copy_dir(
        Path::new(super::MODEL),
        &store.join("models/vortex-tiny-phantom"),
    );
    (dir, store)
}

/// The CLI's JSON answers on `store` equal the ones a store fixture recorded
/// (`query_patch.json`: an exact patch query on sample ph5; `query_genes.json`: a
/// molecular query for TUM01): every id, name and count equal, every float within
/// 1e-6 relative (scores are f32 sums whose order may change between releases).
pub fn answers_as_recorded(fx: &Path, store: &Path) {
    let st = s(store);
    for (args, file) in [
        (
            vec![
                "--json", "query", "patch", st, "--sample", "ph5", "--at", "8,48,48", "--top", "5",
                "--exact",
            ],
            "query_patch.json",
        ),
        (
            vec![
                "--json", "query", "genes", st, "--genes", "TUM01", "--top", "5",
            ],
            "query_genes.json",
        ),
    ] {
        let got: serde_json::Value = serde_json::from_str(&expect_ok(&args)).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fx.join(file)).unwrap()).unwrap();
        assert_json_close(&got, &want, file);
    }
}

/// `got` equals `want` but for floats, which may differ by 1e-6 relative.
pub fn assert_json_close(got: &serde_json::Value, want: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (got, want) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-3),
                "{at}: {a} != {b}"
            );
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_json_close(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            // Key order is not meaning (and serde_json's depends on its features).
            let sorted = |m: &serde_json::Map<String, Value>| {
                let mut k: Vec<String> = m.keys().cloned().collect();
                k.sort();
                k
            };
            assert_eq!(sorted(a), sorted(b), "{at}: keys");
            for (k, x) in a {
                assert_json_close(x, &b[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}
