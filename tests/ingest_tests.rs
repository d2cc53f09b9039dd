//! Model runtime and volume ingest through the CLI and the library: embeddings equal a
//! direct computation, 2.5D sections, resume after `kill -9` without duplicates or
//! gaps, and every kind of bad input refused with a clear error and an untouched store.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{MODEL, bin, expect_ok, expect_user_error, new_model_store, phantom, s, vortexdb};
use vortexdb::Store;
use vortexdb::{Model, RunOptions};

const COLLECTION: &str = "vortex-tiny-phantom:3d";

/// The seed-2 phantom (the one the default model was tuned on; these tests check
/// ingest mechanics, not model quality).
fn phantom2(dir: &Path, shape: [usize; 3]) -> PathBuf {
    phantom(dir, 2, shape, 16)
}

/// Every stored (origin -> vector) of a sample.
fn stored(db: &Path, sample: &str) -> Vec<([i64; 3], Vec<f32>)> {
    common::stored_patches(db, COLLECTION, sample)
}

fn read_u8_volume(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<u8>().unwrap())
}

#[test]
fn ingest_embeddings_equal_direct_computation_and_rerun_is_a_noop() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom2(dir.path(), [24, 96, 96]);
    let db = new_model_store(dir.path(), "db");
    let vol = ph.join("volume.npy");
    let o = expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "ph2",
        s(&vol),
        "--json",
        "--batch",
        "7",
    ]);
    let rep: serde_json::Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    // 24 slices: z origins 0, 4, 8 (stride 4) ; 96 px: 0..64 by 8 -> 9 per axis.
    assert_eq!(rep["grid_positions"], 3 * 9 * 9);
    let got = stored(&db, "ph2");
    assert_eq!(got.len() as u64, rep["patches_total"].as_u64().unwrap());
    assert!(got.len() > 100, "{} patches", got.len());

    // Recompute a spread of patches straight from the NPY file.
    let (shape, data) = read_u8_volume(&vol);
    let (ny, nx) = (shape[1], shape[2]);
    let model = Model::load(MODEL).unwrap();
    let mut net = model.network("image_3d", &RunOptions::default()).unwrap();
    let picks: Vec<&([i64; 3], Vec<f32>)> = got.iter().step_by(got.len() / 9).collect();
    let mut input = Vec::new();
    for (o, _) in &picks {
        let [z, y, x] = o.map(|v| v as usize);
        for d in 0..16 {
            for r in 0..32 {
                for c in 0..32 {
                    let v = data[((z + d) * ny + y + r) * nx + x + c] as f32 / 255.0;
                    input.push((v - 0.5) / 0.25);
                }
            }
        }
    }
    let arr = ndarray::ArrayViewD::from_shape(vec![picks.len(), 16, 1, 32, 32], &input).unwrap();
    let emb = net.embed(arr).unwrap();
    for (i, (o, v)) in picks.iter().enumerate() {
        let diff = emb
            .row(i)
            .iter()
            .zip(v)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "patch {o:?}: max abs diff {diff}");
    }

    // A second run of the same ingest adds nothing.
    let o = expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "ph2",
        s(&vol),
        "--json",
    ]);
    let rep2: serde_json::Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    assert_eq!(rep2["patches_new"], 0);
    assert_eq!(stored(&db, "ph2").len(), got.len());
    // The same id for other data is refused.
    let other = dir.path().join("other.npy");
    vortexdb::write_u8_npy(&other, &[20, 64, 64], &vec![200u8; 20 * 64 * 64]).unwrap();
    expect_user_error(
        &["ingest", "volume", s(&db), "--sample", "ph2", s(&other)],
        &["already holds other data"],
    );
}

#[test]
fn tissue_mask_skips_background_and_records_geometry() {
    let dir = tempfile::tempdir().unwrap();
    // Half the volume bright tissue, half dark background.
    let (z, y, x) = (16, 64, 128);
    let mut v = vec![5u8; z * y * x];
    for zz in 0..z {
        for yy in 0..y {
            for xx in 0..64 {
                v[(zz * y + yy) * x + xx] = 150 + ((xx * 7 + yy * 3) % 60) as u8;
            }
        }
    }
    let vol = dir.path().join("half.npy");
    vortexdb::write_u8_npy(&vol, &[z, y, x], &v).unwrap();
    let db = new_model_store(dir.path(), "db");
    expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "half",
        s(&vol),
        "--min-tissue",
        "0.5",
    ]);
    let store = Store::open_read_only(&db).unwrap();
    let info = store.collection(COLLECTION).unwrap();
    let mut n = 0;
    for id in 0..info.next_id {
        let (_, r) = store.get(COLLECTION, id).unwrap().unwrap();
        let r = r.unwrap();
        assert_eq!(r.size, [16, 32, 32]);
        // Tissue fills x < 64: a 32-wide patch at x > 48 is under half tissue.
        assert!(r.origin[2] <= 48, "background patch {:?}", r.origin);
        assert!(r.tissue_fraction >= 0.5);
        n += 1;
    }
    // x origins 0..=48 step 8 -> 7 kept of 13; y 5 positions; z 1.
    assert_eq!(n, 7 * 5);
    let sample = store.sample("half").unwrap().unwrap();
    assert_eq!(sample.status, "complete");
    assert_eq!(sample.patches, 35);
    assert_eq!(sample.grid.shape, [16, 64, 128]);
}

#[test]
fn sections_stack_into_a_2_5d_volume() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom2(dir.path(), [48, 128, 128]);
    let planes: Vec<PathBuf> = (0..3)
        .map(|i| {
            ph.join("planes")
                .join(format!("plane_{:03}.png", 8 + 16 * i))
        })
        .collect();
    let db = new_model_store(dir.path(), "db");
    let mut args = vec![
        "ingest",
        "sections",
        s(&db),
        "--sample",
        "sec",
        "--spacing-um",
        "32",
        "--um-per-px",
        "4",
        "--json",
    ];
    args.extend(planes.iter().map(|p| s(p)));
    let o = expect_ok(&args);
    let rep: serde_json::Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    // 3 sections 32 um apart resampled to 4-um slices: 24 slices.
    assert_eq!(rep["model_shape"], serde_json::json!([24, 128, 128]));
    assert!(rep["patches_total"].as_u64().unwrap() > 50, "{rep}");
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.sample("sec").unwrap().unwrap().kind, "2.5d");
}

#[test]
fn kill_9_during_ingest_then_rerun_completes_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom2(dir.path(), [32, 160, 160]);
    let vol = ph.join("volume.npy");
    // Reference: one uninterrupted run.
    let reference = new_model_store(dir.path(), "ref");
    expect_ok(&[
        "ingest",
        "volume",
        s(&reference),
        "--sample",
        "v",
        s(&vol),
        "--batch",
        "16",
    ]);
    let want = stored(&reference, "v");

    let db = new_model_store(dir.path(), "db");
    let mut child = Command::new(bin())
        .args([
            "ingest",
            "volume",
            s(&db),
            "--sample",
            "v",
            s(&vol),
            "--batch",
            "16",
        ])
        .args(["--threads", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut killed_at = 0u64;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line
            .split(", ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse::<u64>().ok())
            && n >= 200
        {
            child.kill().unwrap(); // SIGKILL on Unix
            killed_at = n;
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the ingest finished before it was killed"
    );
    assert!(killed_at >= 200);
    let partial = stored(&db, "v");
    assert!(
        partial.len() >= 200 && partial.len() < want.len(),
        "{}",
        partial.len()
    );

    let o = expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "v",
        s(&vol),
        "--json",
    ]);
    let rep: serde_json::Value = serde_json::from_str(o.lines().last().unwrap()).unwrap();
    assert!(rep["resumed_from"].as_u64().unwrap() > 0, "{rep}");
    let got = stored(&db, "v");
    assert_eq!(
        got.iter().map(|x| x.0).collect::<Vec<_>>(),
        want.iter().map(|x| x.0).collect::<Vec<_>>(),
        "patch origins differ from an uninterrupted ingest"
    );
    assert_eq!(rep["patches_total"].as_u64().unwrap() as usize, want.len());
    for ((o, a), (_, b)) in got.iter().zip(&want) {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-4, "{o:?}: {d}");
    }
    let store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.sample("v").unwrap().unwrap().status, "complete");
}

/// The store after a refused ingest: no sample, no vectors.
fn assert_untouched(db: &Path) {
    let store = Store::open_read_only(db).unwrap();
    assert!(store.samples().unwrap().is_empty(), "a sample was recorded");
    if let Ok(c) = store.collection(COLLECTION) {
        assert_eq!(c.live, 0);
    }
}

fn write_tiff_pages(path: &Path, pages: usize, h: u32, w: u32) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    for p in 0..pages {
        let data: Vec<u8> = (0..h * w).map(|i| ((i as usize + p) % 251) as u8).collect();
        enc.write_image::<tiff::encoder::colortype::Gray8>(w, h, &data)
            .unwrap();
    }
}

#[test]
fn bad_volumes_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = new_model_store(d, "db");
    let ingest = |path: &Path, needles: &[&str]| {
        expect_user_error(
            &["ingest", "volume", s(&db), "--sample", "bad", s(path)],
            needles,
        );
        assert_untouched(&db);
    };
    // A multi-page TIFF cut short.
    let tif = d.join("stack.tif");
    write_tiff_pages(&tif, 20, 64, 64);
    let bytes = std::fs::read(&tif).unwrap();
    let cut = d.join("cut.tif");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    ingest(&cut, &["cut.tif", "truncated"]);
    // The intact TIFF works (proves the cut is what failed).
    expect_ok(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "tif",
        s(&tif),
        "--tissue",
        "all",
    ]);

    let db = new_model_store(d, "db2");
    let ingest = |path: &Path, needles: &[&str]| {
        expect_user_error(
            &["ingest", "volume", s(&db), "--sample", "bad", s(path)],
            needles,
        );
        assert_untouched(&db);
    };
    // Slices of different sizes in a directory.
    let slices = d.join("slices");
    std::fs::create_dir(&slices).unwrap();
    image::GrayImage::new(64, 64)
        .save(slices.join("s01.png"))
        .unwrap();
    image::GrayImage::new(64, 60)
        .save(slices.join("s02.png"))
        .unwrap();
    ingest(&slices, &["s02.png", "different sizes", "64x64", "64x60"]);
    // A dtype the readers do not take (int64).
    let i64npy = d.join("int64.npy");
    {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(&i64npy).unwrap();
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[20, 40, 40])
            .writer(f)
            .begin_nd()
            .unwrap();
        for i in 0..20 * 40 * 40 {
            w.push(&(i as i64)).unwrap();
        }
        w.finish().unwrap();
    }
    ingest(
        &i64npy,
        &[
            "int64.npy",
            "dtype '<i8' is not supported",
            "uint8, uint16 or float32",
        ],
    );
    // Smaller than one patch (16 x 32 x 32 at 4 um).
    let small = d.join("small.npy");
    vortexdb::write_u8_npy(&small, &[8, 64, 64], &vec![100; 8 * 64 * 64]).unwrap();
    ingest(&small, &["small.npy", "smaller than one patch"]);
    // Truncated NPY.
    let full = d.join("full.npy");
    vortexdb::write_u8_npy(&full, &[20, 64, 64], &vec![100; 20 * 64 * 64]).unwrap();
    let b = std::fs::read(&full).unwrap();
    let tnpy = d.join("trunc.npy");
    std::fs::write(&tnpy, &b[..b.len() - 1000]).unwrap();
    ingest(&tnpy, &["trunc.npy", "truncated"]);
    // Resampling can make a volume too small: 20 slices of 1 um are 5 model slices.
    expect_user_error(
        &[
            "ingest",
            "volume",
            s(&db),
            "--sample",
            "bad",
            s(&full),
            "--um-per-voxel",
            "1,4,4",
        ],
        &["smaller than one patch"],
    );
    assert_untouched(&db);
}

fn copy_model(to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(MODEL).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    to.to_path_buf()
}

#[test]
fn bad_models_and_missing_runtime_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vol = d.join("v.npy");
    vortexdb::write_u8_npy(&vol, &[16, 64, 64], &vec![120; 16 * 64 * 64]).unwrap();
    let db = d.join("db");
    expect_ok(&["init", s(&db)]);

    // A manifest that disagrees with the ONNX graph's inputs (patch size 48, graph 32).
    let m = copy_model(&d.join("m48"));
    let text = std::fs::read_to_string(m.join("manifest.json")).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["patch"]["size_px"] = serde_json::json!([48, 48]);
    j["name"] = serde_json::json!("m48");
    std::fs::write(m.join("manifest.json"), j.to_string()).unwrap();
    expect_user_error(
        &[
            "ingest",
            "volume",
            s(&db),
            "--sample",
            "x",
            "--model",
            s(&m),
            s(&vol),
        ],
        &[
            "image_3d.onnx",
            "disagrees with manifest.json",
            "axis H is 32 in the graph, 48 in the manifest",
        ],
    );
    assert_untouched(&db);
    // An input name the graph does not have.
    let m = copy_model(&d.join("mname"));
    j["patch"]["size_px"] = serde_json::json!([32, 32]);
    j["name"] = serde_json::json!("mname");
    j["networks"]["image_3d"]["inputs"] = serde_json::json!({"volume": "B,D,C,H,W"});
    std::fs::write(m.join("manifest.json"), j.to_string()).unwrap();
    expect_user_error(
        &[
            "ingest",
            "volume",
            s(&db),
            "--sample",
            "x",
            "--model",
            s(&m),
            s(&vol),
        ],
        &["manifest inputs [volume], graph inputs [patches]"],
    );
    assert_untouched(&db);
    // A modified ONNX file fails its checksum.
    let m = copy_model(&d.join("mbits"));
    let mut b = std::fs::read(m.join("image_3d.onnx")).unwrap();
    let n = b.len();
    b[n - 10] ^= 0xff;
    std::fs::write(m.join("image_3d.onnx"), b).unwrap();
    expect_user_error(
        &["models", "add", s(&db), s(&m)],
        &["image_3d.onnx", "checksum mismatch"],
    );
    // No model registered.
    expect_user_error(
        &["ingest", "volume", s(&db), "--sample", "x", s(&vol)],
        &["this store has no model", "vortexdb models add"],
    );

    // Missing ONNX Runtime library: the message says how to provision it.
    expect_ok(&["models", "add", s(&db), MODEL]);
    for lib in [d.join("nowhere/libonnxruntime.so"), vol.clone()] {
        let o = Command::new(bin())
            .args(["ingest", "volume", s(&db), "--sample", "x", s(&vol)])
            .env("ORT_DYLIB_PATH", &lib)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("ONNX Runtime unavailable"), "{err}");
        assert!(err.contains("scripts/setup-ort.sh"), "{err}");
        assert_untouched(&db);
    }
    // CUDA asked for on a build or machine without it: an error, not a CPU fallback.
    let o = vortexdb(&[
        "ingest",
        "volume",
        s(&db),
        "--sample",
        "x",
        s(&vol),
        "--device",
        "cuda",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("execution provider") && err.contains("cuda"),
        "{err}"
    );
    assert_untouched(&db);
}

/// A model's external data files (`networks.<role>.data`, for ONNX graphs over 2 GiB)
/// are checked like its graphs: present, matching their checksums, plain file names,
/// each listed once; a good one is copied into the store with the graphs.
#[test]
fn external_data_files_are_checked_and_copied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db");
    expect_ok(&["init", s(&db)]);
    let edit = |name: &str, data: serde_json::Value, write: Option<&[u8]>| {
        let m = copy_model(&d.join(name));
        let text = std::fs::read_to_string(m.join("manifest.json")).unwrap();
        let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
        j["name"] = serde_json::json!(name);
        j["networks"]["image_3d"]["data"] = data;
        std::fs::write(m.join("manifest.json"), j.to_string()).unwrap();
        if let Some(bytes) = write {
            std::fs::write(m.join("image_3d.onnx.data"), bytes).unwrap();
        }
        m
    };
    let sum = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(b"weights"))
    };
    let entry = |file: &str, sha: &str| serde_json::json!([{"file": file, "sha256": sha}]);
    // Listed but missing.
    let m = edit("mmiss", entry("image_3d.onnx.data", &sum), None);
    expect_user_error(
        &["models", "add", s(&db), s(&m)],
        &["image_3d.onnx.data", "listed in manifest.json but missing"],
    );
    // Present, but not the bytes the manifest's checksum names.
    let m = edit("mbits", entry("image_3d.onnx.data", &sum), Some(b"weightz"));
    expect_user_error(
        &["models", "add", s(&db), s(&m)],
        &["image_3d.onnx.data", "checksum mismatch"],
    );
    // A path instead of a plain file name, and a file listed twice.
    let m = edit("mpath", entry("../image_3d.onnx.data", &sum), None);
    expect_user_error(
        &["models", "add", s(&db), s(&m)],
        &["network image_3d", "must be a plain file name"],
    );
    let m = edit("mtwice", entry("genes.onnx", &sum), None);
    expect_user_error(
        &["models", "add", s(&db), s(&m)],
        &["network", "'genes.onnx' is listed twice"],
    );
    assert!(!db.join("models").join("mtwice").exists());
    // A good entry: registered, and the data file is copied with its graph.
    let m = edit("mgood", entry("image_3d.onnx.data", &sum), Some(b"weights"));
    expect_ok(&["models", "add", s(&db), s(&m)]);
    let copy = db.join("models").join("mgood").join("image_3d.onnx.data");
    assert_eq!(std::fs::read(copy).unwrap(), b"weights");
}
