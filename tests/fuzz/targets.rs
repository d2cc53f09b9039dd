//! The fuzz targets: which files make up each input set, how each file is mutated, and
//! which public vortexdb API reads it. A runner returns an outcome key (`ok`, or the
//! error's kind and message with paths and numbers masked); it panics only when
//! vortexdb does, or when a result breaks an invariant its documentation promises.

use std::path::Path;

use vortexdb::Error;
use vortexdb::VectorReader;
use vortexdb::{ImageStack, NpyVolume, TiffVolume, VolumeSource};
use vortexdb::{Metric, SnapshotFile, SnapshotInfo, VectorIndex};
use vortexdb::{Registered, Transforms};
use vortexdb::{SpotFormat, SpotPaths, SpotTable, read_spots};

use crate::structured::Fmt;

/// One file of a target's input set.
#[derive(Debug)]
pub struct Role {
    /// Seeds of this role are named `<label>.<name>`.
    pub name: &'static str,
    /// Where the file goes in the target's work directory.
    pub path: &'static str,
    /// How it is mutated.
    pub fmt: Fmt,
    /// Always present (written from the seed `seed.<name>`, restored after each run).
    pub base: bool,
    /// Fuzzed; false for a fixed companion file.
    pub fuzz: bool,
    /// A base file removed while this one is fuzzed (a `.gz` hides the plain file).
    pub hides: Option<&'static str>,
}

/// A fuzz target.
pub struct Target {
    /// Name on the command line and under `corpus/` and `target/fuzz/`.
    pub name: &'static str,
    /// What it covers, for `--list`.
    pub about: &'static str,
    /// The files of one input set.
    pub roles: &'static [Role],
    /// Read the set in `work` after the file of role `role` was replaced.
    pub run: fn(work: &Path, role: &str) -> String,
}

const fn one(name: &'static str, path: &'static str, fmt: Fmt) -> Role {
    Role {
        name,
        path,
        fmt,
        base: false,
        fuzz: true,
        hides: None,
    }
}

const fn base(name: &'static str, path: &'static str, fmt: Fmt) -> Role {
    Role {
        name,
        path,
        fmt,
        base: true,
        fuzz: true,
        hides: None,
    }
}

const fn gz(name: &'static str, path: &'static str, fmt: Fmt, hides: &'static str) -> Role {
    Role {
        name,
        path,
        fmt,
        base: false,
        fuzz: true,
        hides: Some(hides),
    }
}

const TAB: u8 = b'\t';

/// Every target, in the order the short pass runs them.
pub static TARGETS: &[Target] = &[
    Target {
        name: "npy_vectors",
        about: "vecio::VectorReader::open + skip + every batch; vecio::read_f32_nd",
        roles: &[one("npy", "input.npy", Fmt::Npy)],
        run: run_npy_vectors,
    },
    Target {
        name: "npy_volume",
        about: "volume::NpyVolume::open + read_slice (<= 64 slices); volume::open with a range",
        roles: &[one("npy", "input.npy", Fmt::Npy)],
        run: run_npy_volume,
    },
    Target {
        name: "tiff_volume",
        about: "volume::TiffVolume::open + read_slice (<= 64 pages)",
        roles: &[one("tif", "input.tif", Fmt::Tiff)],
        run: run_tiff_volume,
    },
    Target {
        name: "image",
        about: "volume::decode_image; ImageStack::open_files + read_slice (PNG, JPEG, TIFF)",
        roles: &[
            one("png", "input.png", Fmt::Png),
            one("jpg", "input.jpg", Fmt::Jpeg),
            one("tif", "input.tif", Fmt::Tiff),
        ],
        run: run_image,
    },
    Target {
        name: "her2st_tsv",
        about: "spots::read_spots(Her2st): counts TSV (plain / .gz) + selection TSV; QC, normalisation",
        roles: &[
            base("counts.tsv", "her2st/counts/S1.tsv", Fmt::Table(TAB)),
            gz(
                "counts.tsv.gz",
                "her2st/counts/S1.tsv.gz",
                Fmt::Gz(TAB),
                "her2st/counts/S1.tsv",
            ),
            base(
                "selection.tsv",
                "her2st/spots/S1_selection.tsv",
                Fmt::Table(TAB),
            ),
        ],
        run: run_her2st,
    },
    Target {
        name: "visium_mtx",
        about: "spots::read_spots(Visium) on an MTX directory: matrix.mtx(.gz), barcodes, features, tissue positions, scale factors",
        roles: &[
            base(
                "matrix.mtx",
                "vis/filtered_feature_bc_matrix/matrix.mtx",
                Fmt::Table(b' '),
            ),
            gz(
                "matrix.mtx.gz",
                "vis/filtered_feature_bc_matrix/matrix.mtx.gz",
                Fmt::Gz(b' '),
                "vis/filtered_feature_bc_matrix/matrix.mtx",
            ),
            base(
                "barcodes.tsv",
                "vis/filtered_feature_bc_matrix/barcodes.tsv",
                Fmt::Table(TAB),
            ),
            gz(
                "barcodes.tsv.gz",
                "vis/filtered_feature_bc_matrix/barcodes.tsv.gz",
                Fmt::Gz(TAB),
                "vis/filtered_feature_bc_matrix/barcodes.tsv",
            ),
            base(
                "features.tsv",
                "vis/filtered_feature_bc_matrix/features.tsv",
                Fmt::Table(TAB),
            ),
            gz(
                "features.tsv.gz",
                "vis/filtered_feature_bc_matrix/features.tsv.gz",
                Fmt::Gz(TAB),
                "vis/filtered_feature_bc_matrix/features.tsv",
            ),
            base(
                "tissue_positions.csv",
                "vis/spatial/tissue_positions.csv",
                Fmt::Table(b','),
            ),
            base(
                "scalefactors_json.json",
                "vis/spatial/scalefactors_json.json",
                Fmt::Json,
            ),
        ],
        run: run_visium_mtx,
    },
    Target {
        name: "visium_h5",
        about: "spots::read_spots(Visium) on filtered_feature_bc_matrix.h5 + tissue_positions_list.csv",
        roles: &[
            base("h5", "vis/filtered_feature_bc_matrix.h5", Fmt::Hdf5),
            base(
                "tissue_positions_list.csv",
                "vis/spatial/tissue_positions_list.csv",
                Fmt::Table(b','),
            ),
        ],
        run: run_visium_h5,
    },
    Target {
        name: "parquet_spots",
        about: "spots::read_spots(Parquet): wide and long tables; QC, normalisation",
        roles: &[one("parquet", "spots.parquet", Fmt::Parquet)],
        run: run_parquet_spots,
    },
    Target {
        name: "parquet_vectors",
        about: "vecio::VectorReader::open on Parquet + every batch; vecio::read_all",
        roles: &[one("parquet", "vectors.parquet", Fmt::Parquet)],
        run: run_parquet_vectors,
    },
    Target {
        name: "manifest",
        about: "model::Manifest::parse; model::Model::load (checksums of the listed files)",
        roles: &[
            base("manifest.json", "model/manifest.json", Fmt::Json),
            Role {
                name: "image_3d.onnx",
                path: "model/image_3d.onnx",
                fmt: Fmt::Table(b' '),
                base: true,
                fuzz: false,
                hides: None,
            },
        ],
        run: run_manifest,
    },
    Target {
        name: "transforms",
        about: "volume::register::Transforms::read; Registered::read_slice over PNG sections",
        roles: &[
            base("transforms.json", "reg/transforms.json", Fmt::Json),
            base("section.png", "reg/section.png", Fmt::Png),
        ],
        run: run_transforms,
    },
    Target {
        name: "damaged_store",
        about: "check_store, Store::backup and repair_store on a store whose vortex.redb or \
                packed vectors are damaged: check writes nothing, every copy passes check",
        roles: &[
            base("vortex.redb", "db/vortex.redb", Fmt::Pages),
            base("c0-e0.vec", "db/vectors/c0-e0.vec", Fmt::Pages),
        ],
        run: run_damaged_store,
    },
    Target {
        name: "snapshot",
        about: "index::VectorIndex::load (CRC repaired), then search, points and insert",
        roles: &[one("vxh", "snap/graph.vxh", Fmt::Snapshot)],
        run: run_snapshot,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// An outcome key: `ok`, or the error kind and message with the work directory,
/// numbers, bracketed lists and the tail masked (so outcomes count kinds of failure).
pub fn key<T>(work: &Path, r: &vortexdb::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => {
            let kind = match e {
                Error::BadInput { .. } => "bad-input",
                Error::Io { .. } => "io",
                Error::Corrupted { .. } => "corrupted",
                Error::Index(_) => "index",
                _ => "other",
            };
            let msg = e.to_string().replace(&work.display().to_string(), "");
            let mut out = String::with_capacity(64);
            let mut last_digit = false;
            let mut depth = 0;
            for c in msg.chars().take(72) {
                // Shapes and lists in messages: one outcome whatever they hold.
                match c {
                    '[' | '(' => {
                        depth += 1;
                        if depth == 1 {
                            out.push(c);
                            out.push_str("..");
                        }
                        continue;
                    }
                    ']' | ')' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            out.push(c);
                        }
                        continue;
                    }
                    _ if depth > 0 => continue,
                    _ => {}
                }
                if c.is_ascii_digit() {
                    if !last_digit {
                        out.push('#');
                    }
                    last_digit = true;
                } else {
                    out.push(c);
                    last_digit = false;
                }
            }
            format!("{kind}:{out}")
        }
    }
}

fn join(parts: &[String]) -> String {
    parts.join(" | ")
}

fn run_npy_vectors(work: &Path, _: &str) -> String {
    let p = work.join("input.npy");
    let streamed = (|| {
        let mut r = VectorReader::open(&p, None)?;
        let dim = r.dim();
        r.skip(1)?;
        while let Some(b) = r.next_batch(7)? {
            assert_eq!(b.values.len(), b.len() * dim, "batch size");
            assert!(b.values.iter().all(|v| v.is_finite()), "non-finite value");
        }
        Ok(())
    })();
    let nd = vortexdb::read_f32_nd(&p).map(|(shape, v)| {
        assert_eq!(shape.iter().product::<usize>(), v.len(), "nd shape");
    });
    join(&[key(work, &streamed), key(work, &nd)])
}

/// Read up to 64 slices of a source, checking their shape.
fn read_slices(src: &mut dyn VolumeSource, ranged: bool) -> vortexdb::Result<()> {
    let info = src.info().clone();
    let [nz, h, w] = info.shape;
    for z in 0..nz.min(64) {
        let s = src.read_slice(z)?;
        assert_eq!((s.channels, s.h, s.w), (info.channels, h, w), "slice shape");
        assert_eq!(s.data.len(), s.channels * h * w, "slice length");
        if ranged || info.dtype != vortexdb::Dtype::F32 {
            assert!(
                s.data.iter().all(|v| (0.0..=1.0).contains(v)),
                "intensity outside [0, 1]"
            );
        }
    }
    assert!(src.read_slice(nz).is_err(), "slice past the end");
    Ok(())
}

fn run_npy_volume(work: &Path, _: &str) -> String {
    let p = work.join("input.npy");
    let a = NpyVolume::open(&p, None).and_then(|mut v| read_slices(&mut v, false));
    let b = vortexdb::open_volume(&p, Some((0.0, 255.0))).and_then(|mut v| {
        let s = v.read_slice(0)?;
        assert!(s.data.iter().all(|v| (0.0..=1.0).contains(v)), "clamped");
        Ok(())
    });
    join(&[key(work, &a), key(work, &b)])
}

fn run_tiff_volume(work: &Path, _: &str) -> String {
    let p = work.join("input.tif");
    let a = TiffVolume::open(&p, None).and_then(|mut v| read_slices(&mut v, false));
    key(work, &a)
}

fn run_image(work: &Path, role: &str) -> String {
    let p = work.join(format!("input.{role}"));
    let d = vortexdb::decode_image(&p).map(|img| {
        assert!(img.width() > 0 && img.height() > 0, "empty image decoded");
    });
    let s = ImageStack::open_files(vec![p.clone(), p.clone()], "stack".into(), None)
        .and_then(|mut s| read_slices(&mut s, false));
    join(&[key(work, &d), key(work, &s)])
}

/// Invariants of a spot table, then the expression steps that follow reading.
fn check_spots(t: &SpotTable) {
    let n = t.ids.len();
    assert_eq!(t.pixel.len(), n, "positions per spot");
    assert_eq!(t.counts.n_spots(), n, "count rows per spot");
    if let Some(a) = &t.array {
        assert_eq!(a.len(), n, "array coordinates per spot");
    }
    assert!(
        t.counts.data.iter().all(|c| c.is_finite() && *c >= 0.0),
        "a count is negative or not finite (f32 overflow?)"
    );
    assert!(
        t.counts
            .indices
            .iter()
            .all(|&g| (g as usize) < t.counts.n_genes()),
        "gene index out of range"
    );
    let qc = vortexdb::quality_control(&t.counts, &Default::default());
    assert_eq!(qc.0.len(), n);
    let norm = vortexdb::normalize_log1p(&t.counts, 1e4);
    assert!(
        norm.data.iter().all(|v| v.is_finite()),
        "normalised value not finite"
    );
    let hvg = vortexdb::highly_variable_genes(&t.counts, 1e4, 5);
    assert!(hvg.iter().all(|&g| g < t.counts.n_genes()));
    if n <= 2000 {
        let cols: Vec<Option<usize>> = (0..t.counts.n_genes().min(8)).map(Some).collect();
        let dense = vortexdb::dense_panel(&norm, &cols);
        let sm = vortexdb::smooth_knn(&dense, &t.pixel, 3);
        assert_eq!(sm.len(), n);
    }
}

fn spots(work: &Path, path: &Path, format: SpotFormat) -> String {
    let r = read_spots(path, format, &SpotPaths::default()).map(|t| check_spots(&t));
    key(work, &r)
}

fn run_her2st(work: &Path, role: &str) -> String {
    let name = if role == "counts.tsv.gz" {
        "her2st/counts/S1.tsv.gz"
    } else {
        "her2st/counts/S1.tsv"
    };
    spots(work, &work.join(name), SpotFormat::Her2st)
}

fn run_visium_mtx(work: &Path, _: &str) -> String {
    spots(work, &work.join("vis"), SpotFormat::Visium)
}

fn run_visium_h5(work: &Path, _: &str) -> String {
    spots(work, &work.join("vis"), SpotFormat::Visium)
}

fn run_parquet_spots(work: &Path, _: &str) -> String {
    spots(work, &work.join("spots.parquet"), SpotFormat::Parquet)
}

fn run_parquet_vectors(work: &Path, _: &str) -> String {
    let p = work.join("vectors.parquet");
    let streamed = (|| {
        let mut r = VectorReader::open(&p, None)?;
        let dim = r.dim();
        while let Some(b) = r.next_batch(5)? {
            assert_eq!(b.values.len(), b.len() * dim, "batch size");
        }
        Ok(())
    })();
    let all = vortexdb::read_vectors(&p, None).map(|(rows, dim)| {
        assert!(rows.iter().all(|r| r.len() == dim), "row length");
    });
    join(&[key(work, &streamed), key(work, &all)])
}

fn run_manifest(work: &Path, _: &str) -> String {
    let p = work.join("model/manifest.json");
    let bytes = std::fs::read(&p).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let parsed = vortexdb::Manifest::parse(&text, "manifest.json");
    let loaded = vortexdb::Model::load(work.join("model"));
    join(&[key(work, &parsed), key(work, &loaded)])
}

fn run_transforms(work: &Path, _: &str) -> String {
    let p = work.join("reg/transforms.json");
    let png = work.join("reg/section.png");
    // As many sections as the file lists (when it parses), so that the count matches.
    let n = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("sections")?.as_array().map(|a| a.len()))
        .unwrap_or(1);
    let r = Transforms::read(&p, n).and_then(|t| {
        if n == 0 || n > 8 {
            return Ok(());
        }
        let stack = ImageStack::open_files_any_size(vec![png.clone(); n], "reg".into(), None)?;
        let mut reg = Registered::new(stack, &t, &p);
        assert_eq!(
            reg.info().shape,
            [n, t.frame[0], t.frame[1]],
            "registered shape"
        );
        for z in 0..n {
            let s = reg.read_slice(z)?;
            assert_eq!(s.data.len(), s.channels * t.frame[0] * t.frame[1]);
        }
        Ok(())
    });
    key(work, &r)
}

/// The repair tools on a damaged store. Invariants (a panic here is a crash): `check`
/// never changes a byte of the store; a backup or repair that succeeds yields a store
/// that `check` finds intact.
fn run_damaged_store(work: &Path, _: &str) -> String {
    let db = work.join("db");
    let scratch = work.join("scratch");
    let _ = std::fs::create_dir_all(db.join("index"));
    let _ = std::fs::create_dir_all(&scratch);
    let files = |d: &Path| -> Vec<Option<Vec<u8>>> {
        ["vortex.redb", "vectors/c0-e0.vec"]
            .iter()
            .map(|f| std::fs::read(d.join(f)).ok())
            .collect()
    };
    let before = files(&db);
    let checked = vortexdb::check_store(&db, Some(&scratch));
    assert!(files(&db) == before, "check changed the store");
    let intact = |dest: &Path| {
        let c = vortexdb::check_store(dest, Some(&scratch)).expect("check of a copy runs");
        assert!(c.is_clean(), "a copy fails check: {c}");
    };
    let copy = work.join("copy");
    let _ = std::fs::remove_dir_all(&copy);
    let repaired = work.join("repaired");
    let _ = std::fs::remove_dir_all(&repaired);
    let fixed = vortexdb::repair_store(&db, &repaired, Some(&scratch));
    assert!(files(&db) == before, "repair changed the store");
    if fixed.is_ok() {
        intact(&repaired);
    }
    let backup = vortexdb::Store::open_read_only(&db).and_then(|s| s.backup(&copy));
    if backup.is_ok() {
        intact(&copy);
    }
    let c = checked.map(|r| if r.is_clean() { "clean" } else { "damage" });
    let f = fixed.map(|r| r.complete);
    let b = backup.map(|r| r.complete);
    join(&[key(work, &c), key(work, &f), key(work, &b)])
}

fn run_snapshot(work: &Path, _: &str) -> String {
    let dir = work.join("snap");
    let bytes = std::fs::read(dir.join("graph.vxh")).unwrap_or_default();
    let u = |at: usize, w: usize| -> u64 {
        let mut b = [0u8; 8];
        if let Some(s) = bytes.get(at..at + w) {
            b[..w].copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    };
    // What the store would have recorded for this file: its length and CRC, and the
    // collection's dimension and point count (taken from the header, so the loader's
    // structural checks are what is tested, not just the record comparison).
    let dim = (u(8, 4) as usize).clamp(1, 4096);
    let footer = if bytes.len() >= 4 {
        u(bytes.len() - 4, 4) as u32
    } else {
        0
    };
    let info = SnapshotInfo {
        files: vec![SnapshotFile {
            name: "graph.vxh".into(),
            len: bytes.len() as u64,
            crc32: footer,
        }],
        len: u(24, 8).min(u32::MAX as u64) as usize,
        max_id: None,
    };
    let r = VectorIndex::load(&dir, &info, dim, Metric::L2).map(|mut ix| {
        let d = ix.dim();
        let q: Vec<f32> = (0..d).map(|i| (i % 7) as f32 * 0.1).collect();
        let hits = ix.search(&q, 5, 16, None);
        assert!(hits.len() <= 5.min(ix.len()), "too many hits");
        let even = |id: u64| id.is_multiple_of(2);
        let hits = ix.search(&q, 3, 8, Some(&even));
        assert!(hits.iter().all(|h| h.0.is_multiple_of(2)), "filter ignored");
        assert!(ix.ids().len() == ix.len(), "ids");
        let next = ix.max_id().map_or(0, |m| m.saturating_add(1));
        let new: Vec<(u64, Vec<f32>)> = (0..2u64)
            .map(|k| (next.saturating_add(k), vec![k as f32 + 0.5; d]))
            .collect();
        ix.insert(&new);
        let _ = ix.search(&q, 5, 16, None);
    });
    key(work, &r)
}
