//! The held-out seed-7 phantom with its volume, spots and one H&E plane ingested, made
//! once per test binary (the ingest is the slow part), for the query and analysis
//! tests.

use std::path::{Path, PathBuf};

use super::{expect_ok, new_model_store, phantom, s};
use vortexdb::{NpyVolume, VolumeSource};

/// Phantom seed 7 (held out: the default model was trained on seeds 1 and 3 and tuned on
/// seed 2), 48 x 256 x 256, with its volume and spots ingested, made once and
/// shared by every test of this file (the ingest is the slow part). Tests only read the
/// store, except `domains`, which writes its own table.
pub fn shared() -> &'static (PathBuf, PathBuf) {
    static SHARED: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        setup(&dir)
    })
}

pub fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let ph = phantom(dir, 7, [48, 256, 256], 16);
    let db = new_model_store(dir, "db");
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
    // The H&E plane at z = 24 as a 2D image sample (the 3D -> 2D retrieval target).
    expect_ok(&[
        "ingest",
        "image",
        s(&db),
        "--sample",
        "he24",
        "--um-per-px",
        "4",
        s(&ph.join("planes").join("plane_024.png")),
    ]);
    (ph, db)
}

/// Ground-truth labels (Z, Y, X) of the phantom.
pub fn labels(ph: &Path) -> (Vec<u8>, [usize; 3]) {
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
