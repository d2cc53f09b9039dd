//! Regression tests of issue 17's defects: inputs that once destroyed or silently lost
//! data, aborted the process from a size in a tiny file or an argument, ended in an
//! internal error, or were accepted and then gave wrong answers. Each now ends in a
//! clear exit 1 naming the file or argument, with nothing deleted or lost; every CLI
//! run here is under an address-space limit (`common::expect_user_error`), so an
//! attempted huge allocation fails the test instead of passing by luck.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use common::{expect_ok, expect_user_error, vortexdb};
use vortexdb::{PhantomParams, Store};

const MODEL: &str = "models/default";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small phantom (seed 5, never seen by the default model) with its volume and
/// spots ingested once, shared by the tests that only read it.
struct Shared {
    _dir: tempfile::TempDir,
    ph: PathBuf,
    store: PathBuf,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ph = dir.path().join("ph");
        vortexdb::phantom::generate(
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
fn private_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    copy_dir(&shared().store, &store);
    (dir, store)
}

fn copy_dir(from: &Path, to: &Path) {
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

fn write_spot_parquet(path: &Path, x: f64, y: f64) {
    let ids: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
    let mut xs = vec![10.0, 20.0, 30.0, 40.0];
    xs[0] = x;
    let mut ys = vec![10.0, 10.0, 10.0, 10.0];
    ys[1] = y;
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("spot", Arc::new(StringArray::from(ids))),
        ("x", Arc::new(Float64Array::from(xs))),
        ("y", Arc::new(Float64Array::from(ys))),
        ("GLD01", Arc::new(Float64Array::from(vec![5.0; 4]))),
    ];
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn non_finite_or_absurd_spot_positions_are_refused() {
    let sh = shared();
    let (_priv, store) = private_store();
    let dir = tempfile::tempdir().unwrap();
    for (name, x, y) in [
        ("nan", f64::NAN, 1.0),
        ("inf", 1.0, f64::INFINITY),
        ("far", 1e9, 1.0),
    ] {
        let f = dir.path().join(format!("{name}.parquet"));
        write_spot_parquet(&f, x, y);
        expect_user_error(
            &[
                "ingest",
                "spots",
                s(&store),
                "--sample",
                "n",
                "--format",
                "parquet",
                s(&f),
            ],
            &[&format!("{name}.parquet"), "finite coordinate"],
        );
    }
    let spots = sh.ph.join("spots.parquet");
    expect_user_error(
        &[
            "ingest",
            "spots",
            s(&store),
            "--sample",
            "n",
            "--format",
            "parquet",
            "--affine",
            "nan,0,0,0,1,0",
            s(&spots),
        ],
        &["--affine", "finite"],
    );
    assert!(
        Store::open_read_only(&store)
            .unwrap()
            .spot_set("n")
            .unwrap()
            .is_none()
    );
}

#[test]
fn absurd_arguments_are_refused_before_any_work() {
    let sh = shared();
    let (_priv, store) = private_store();
    let st = s(&store);
    let vol_path = sh.ph.join("volume.npy");
    let vol = s(&vol_path);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "query",
                "patch",
                st,
                "--sample",
                "ph",
                "--at",
                "0,0,0",
                "--top",
                "4000000000",
            ],
            vec!["--top"],
        ),
        (
            vec![
                "query",
                "patch",
                st,
                "--sample",
                "ph",
                "--at",
                "0,0,0",
                "--top",
                "18446744073709551615",
            ],
            vec!["--top"],
        ),
        (
            vec![
                "query",
                "genes",
                st,
                "--genes",
                "TUM01",
                "--threshold-percentile",
                "200",
            ],
            vec!["--threshold-percentile"],
        ),
        (
            vec![
                "query",
                "genes",
                st,
                "--genes",
                "TUM01",
                "--threshold-percentile",
                "nan",
            ],
            vec!["--threshold-percentile"],
        ),
        (
            vec!["query", "genes", st, "--genes", "TUM01", "--min-pcc", "nan"],
            vec!["--min-pcc"],
        ),
        (
            vec![
                "query",
                "genes",
                st,
                "--genes",
                "TUM01",
                "--percentile",
                "nan",
            ],
            vec!["--threshold-percentile"],
        ),
        (
            vec!["query", "genes", st, "--genes", "💥"],
            vec!["--genes", "unknown gene"],
        ),
        (
            vec!["query", "genes", st, "--genes", "TUMé💥"],
            vec!["--genes", "unknown gene"],
        ),
        (
            vec!["query", "profile", st, "--markers", "💥"],
            vec!["💥", "encoder panel"],
        ),
        (
            vec![
                "predict",
                st,
                "--sample",
                "ph",
                "--out",
                "/dev/null",
                "--genes",
                "💥",
            ],
            vec!["💥"],
        ),
        (
            vec!["domains", st, "--sample", "ph", "--k", "300"],
            vec!["--k"],
        ),
        (
            vec![
                "domains",
                st,
                "--sample",
                "ph",
                "--k",
                "3",
                "--restarts",
                "1000000000",
            ],
            vec!["--restarts"],
        ),
        (
            vec![
                "ingest",
                "volume",
                st,
                "--sample",
                "t",
                "--threads",
                "100000",
                vol,
            ],
            vec!["--threads"],
        ),
        (
            vec![
                "ingest",
                "volume",
                st,
                "--sample",
                "t",
                "--threads",
                "1000",
                vol,
            ],
            vec!["--threads"],
        ),
        (
            vec![
                "ingest",
                "volume",
                st,
                "--sample",
                "t",
                "--um-per-voxel",
                "4,4000,4000",
                vol,
            ],
            vec!["--um-per-voxel"],
        ),
        (
            vec![
                "ingest",
                "volume",
                st,
                "--sample",
                "t",
                "--um-per-voxel",
                "1e30,4,4",
                vol,
            ],
            vec!["--um-per-voxel"],
        ),
        (
            vec![
                "ingest",
                "volume",
                st,
                "--sample",
                "t",
                "--um-per-voxel",
                "nan,4,4",
                vol,
            ],
            vec!["--um-per-voxel"],
        ),
        (
            vec!["ingest", "volume", st, "--sample", "", vol],
            vec!["--sample"],
        ),
    ];
    for (args, needles) in &cases {
        expect_user_error(args, needles);
    }
    let planes = sh.ph.join("planes");
    let plane = std::fs::read_dir(&planes)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let p = s(&plane);
    expect_user_error(
        &[
            "ingest",
            "sections",
            st,
            "--sample",
            "t",
            "--spacing-um",
            "1e9",
            "--um-per-px",
            "4",
            p,
            p,
        ],
        &["--um-per-voxel"],
    );
    let info = Store::open_read_only(&store).unwrap();
    assert!(
        info.sample("t").unwrap().is_none(),
        "a refused ingest left a sample"
    );
    assert_eq!(info.samples().unwrap().len(), 1);
}

#[test]
fn vector_arguments_and_sizes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    expect_ok(&["init", s(&store)]);
    let v = dir.path().join("v.npy");
    common::write_npy(&v, &common::clustered(200, 8, 3, 1));
    for m in ["0", "1", "100000"] {
        expect_user_error(
            &[
                "vectors",
                "import",
                s(&store),
                "--collection",
                "c",
                "--m",
                m,
                s(&v),
            ],
            &["--m"],
        );
    }
    assert!(
        Store::open_read_only(&store)
            .unwrap()
            .collection("c")
            .is_err()
    );
    expect_ok(&["vectors", "import", s(&store), "--collection", "c", s(&v)]);
    let out = dir.path().join("o.npy");
    for (flag, val) in [
        ("--k", "1000000000000"),
        ("--k", "18446744073709551615"),
        ("--ef", "4000000000"),
    ] {
        expect_user_error(
            &[
                "vectors",
                "search",
                s(&store),
                "--collection",
                "c",
                "--queries",
                s(&v),
                "--out",
                s(&out),
                flag,
                val,
            ],
            &[flag],
        );
    }
    // NPY headers whose shape product wraps 64 bits, as vectors and as a volume.
    for (name, shape) in [
        ("wrap.npy", "(4611686018427387904, 8)"),
        ("wrap2.npy", "(4611686018427387904, 1)"),
        ("wrap3.npy", "(18446744073709551615, 18446744073709551615)"),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, npy_header("<f4", shape, 64)).unwrap();
        expect_user_error(
            &["vectors", "import", s(&store), "--collection", "d", s(&f)],
            &[name],
        );
        expect_user_error(
            &[
                "vectors",
                "search",
                s(&store),
                "--collection",
                "c",
                "--queries",
                s(&f),
                "--out",
                s(&out),
            ],
            &[name],
        );
    }
    let f = dir.path().join("vol.npy");
    std::fs::write(&f, npy_header("|u1", "(2097152, 2097152, 4194304)", 1024)).unwrap();
    expect_user_error(
        &["ingest", "volume", s(&store), "--sample", "w", s(&f)],
        &["vol.npy"],
    );
    let f = dir.path().join("vol2.npy");
    std::fs::write(&f, npy_header("|u1", "(1, 4294967296, 4294967296)", 128)).unwrap();
    expect_user_error(
        &["ingest", "volume", s(&store), "--sample", "w", s(&f)],
        &["vol2.npy"],
    );
    assert_eq!(
        Store::open_read_only(&store)
            .unwrap()
            .collection("c")
            .unwrap()
            .live,
        200
    );
}

/// An NPY v1 file: the header for `shape` and `data` zero bytes.
fn npy_header(descr: &str, shape: &str, data: usize) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (h.len() + 11) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data));
    out
}

/// A little-endian TIFF: one 8-bit gray IFD per `(width, height)`, every page's single
/// strip pointing at the same `strip` bytes with `compression` (1 none, 32773 PackBits).
fn tiff(pages: &[(u32, u32)], strip: &[u8], compression: u16) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    let first_ifd = 8 + strip.len() as u32;
    out.extend_from_slice(&first_ifd.to_le_bytes());
    out.extend_from_slice(strip);
    for (i, &(w, h)) in pages.iter().enumerate() {
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, 8),
            (259, 3, compression as u32),
            (262, 3, 1),
            (273, 4, 8),
            (277, 3, 1),
            (278, 4, h),
            (279, 4, strip.len() as u32),
        ];
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, ty, v) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            if ty == 3 {
                out.extend_from_slice(&(v as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let next = if i + 1 < pages.len() {
            out.len() as u32 + 4
        } else {
            0
        };
        out.extend_from_slice(&next.to_le_bytes());
    }
    out
}

#[test]
fn images_declaring_huge_sizes_are_refused() {
    let sh = shared();
    let (_priv, store) = private_store();
    let dir = tempfile::tempdir().unwrap();
    let st = s(&store);
    // TIFF volumes: huge and 2^32-1 dimensions, and 16 pages sharing one PackBits strip.
    let cases = [
        ("huge.tif", tiff(&[(4_000_000, 4_000_000)], &[0; 16], 1)),
        ("max.tif", tiff(&[(u32::MAX, u32::MAX)], &[0; 16], 1)),
        (
            "shared.tif",
            tiff(&[(40_000, 10_000); 16], &[0x81u8, 0].repeat(8), 32773),
        ),
    ];
    for (name, bytes) in &cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        expect_user_error(&["ingest", "volume", st, "--sample", "t", s(&f)], &[name]);
    }
    // A PNG whose IHDR declares 65535 x 65535 (valid CRC), and a JPEG whose SOF does.
    let small = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 150]));
    let png = dir.path().join("big.png");
    small.save(&png).unwrap();
    let mut b = std::fs::read(&png).unwrap();
    b[16..20].copy_from_slice(&65535u32.to_be_bytes());
    b[20..24].copy_from_slice(&65535u32.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&png, &b).unwrap();
    let jpg = dir.path().join("big.jpg");
    small.save(&jpg).unwrap();
    let mut b = std::fs::read(&jpg).unwrap();
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    b[sof + 5..sof + 7].copy_from_slice(&65535u16.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&65535u16.to_be_bytes());
    std::fs::write(&jpg, &b).unwrap();
    // A JPEG truncated at half its length.
    let half = dir.path().join("half.jpg");
    let big = image::RgbImage::from_fn(256, 256, |x, y| image::Rgb([x as u8, y as u8, 90]));
    big.save(&dir.path().join("whole.jpg")).unwrap();
    let whole = std::fs::read(dir.path().join("whole.jpg")).unwrap();
    std::fs::write(&half, &whole[..whole.len() / 2]).unwrap();
    for (f, name) in [(&png, "big.png"), (&jpg, "big.jpg"), (&half, "half.jpg")] {
        expect_user_error(
            &[
                "ingest",
                "image",
                st,
                "--sample",
                "t",
                "--um-per-px",
                "4",
                s(f),
            ],
            &[name],
        );
        expect_user_error(
            &[
                "ingest",
                "sections",
                st,
                "--sample",
                "t",
                "--spacing-um",
                "32",
                "--um-per-px",
                "4",
                s(f),
                s(f),
            ],
            &[name],
        );
        expect_user_error(&["query", "patch", st, "--image", s(f)], &[name]);
    }
    // A transforms frame whose pixel count wraps.
    let t = dir.path().join("t.json");
    std::fs::write(
        &t,
        r#"{"frame": [4294967296, 4294967296], "sections": [[1,0,0,0,1,0],[1,0,0,0,1,0]]}"#,
    )
    .unwrap();
    let plane = std::fs::read_dir(sh.ph.join("planes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    expect_user_error(
        &[
            "ingest",
            "sections",
            st,
            "--sample",
            "t",
            "--spacing-um",
            "32",
            "--um-per-px",
            "4",
            "--transforms",
            s(&t),
            s(&plane),
            s(&plane),
        ],
        &["t.json", "frame"],
    );
    assert!(
        Store::open_read_only(&store)
            .unwrap()
            .sample("t")
            .unwrap()
            .is_none()
    );
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
    // A value under the wrong key (two vectors swapped, as a damaged key or a
    // misdirected page would do) is detected: each CRC covers its key.
    let swapped = dir.path().join("swapped");
    copy_dir(&store, &swapped);
    {
        let db = redb::Database::open(swapped.join("vortex.redb")).unwrap();
        let t = redb::TableDefinition::<(u32, u64), &[u8]>::new("vectors");
        let txn = db.begin_write().unwrap();
        {
            use redb::ReadableTable;
            let mut tab = txn.open_table(t).unwrap();
            let a = tab.get((0, 3)).unwrap().unwrap().value().to_vec();
            let b = tab.get((0, 4)).unwrap().unwrap().value().to_vec();
            tab.insert((0, 3), b.as_slice()).unwrap();
            tab.insert((0, 4), a.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let sargs: Vec<String> = refs
        .iter()
        .map(|a| a.replace(s(&store), s(&swapped)))
        .collect();
    let sargs: Vec<&str> = sargs.iter().map(String::as_str).collect();
    expect_user_error(
        &sargs[..sargs.len() - 2],
        &["vortex.redb", "damaged", "vector"],
    );
    expect_user_error(&["check", s(&swapped)], &["vortex.redb", "damaged"]);
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
fn a_schema_1_store_is_migrated_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    let fx = Path::new("tests/fixtures/store_v1");
    std::fs::create_dir_all(store.join("index")).unwrap();
    std::fs::copy(fx.join("vortex.redb"), store.join("vortex.redb")).unwrap();
    // The fixture's model files are the default model's (same checksums).
    copy_dir(Path::new(MODEL), &store.join("models/vortex-tiny-phantom"));
    let o = vortexdb(&["info", s(&store)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("migrated from schema 1"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("schema v2"));
    store_is_intact(&store);
    for (args, file) in [
        (
            vec![
                "--json",
                "query",
                "patch",
                s(&store),
                "--sample",
                "ph5",
                "--at",
                "8,48,48",
                "--top",
                "5",
                "--exact",
            ],
            "query_patch.json",
        ),
        (
            vec![
                "--json",
                "query",
                "genes",
                s(&store),
                "--genes",
                "TUM01",
                "--top",
                "5",
            ],
            "query_genes.json",
        ),
    ] {
        let got: serde_json::Value = serde_json::from_str(&expect_ok(&args)).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fx.join(file)).unwrap()).unwrap();
        assert_eq!(got, want, "{file}");
    }
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
