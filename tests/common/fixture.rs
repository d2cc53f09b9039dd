//! A small phantom (seed 5, never seen by the default model) with its volume and spots
//! ingested once per test binary, shared by the tests that only read it, and private
//! copies for the tests whose commands open it for writing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::expect_ok;
use vortexdb::PhantomParams;

const MODEL: &str = "models/default";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
        let ph = dir.path().join("ph");
        vortexdb::generate_phantom(
            &PhantomParams {
                seed: 5,
                shape: [16, 160, 160],
                plane_step: 16,
                overwrite: false,
            },
            &ph,
        )
        .unwrap();
        let store = dir.path().join("db");
        expect_ok(&["init", s(&store)]);
        expect_ok(&["models", "add", s(&store), MODEL]);
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
