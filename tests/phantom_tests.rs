//! `vortexdb phantom` as a person runs it: deterministic files, their formats, gene
//! expression that follows the morphology, and bad input refused with exit code 1.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt32Type};
use arrow_schema::DataType;
use common::{bin, expect_ok, expect_user_error};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const SMALL: &str = "32,256,256";

fn run_phantom(
    out: &Path,
    seed: u64,
    shape: &str,
    extra: &[&str],
    threads: Option<usize>,
) -> String {
    let mut cmd = Command::new(bin());
    cmd.args([
        "phantom",
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--shape",
        shape,
    ]);
    cmd.args(extra);
    if let Some(t) = threads {
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    let o = cmd.output().expect("spawn vortexdb");
    assert!(
        o.status.success(),
        "phantom failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn read_parquet(path: &Path) -> RecordBatch {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .with_batch_size(1 << 20)
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn column_f64(b: &RecordBatch, name: &str) -> Vec<f64> {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_primitive::<Float64Type>()
        .values()
        .to_vec()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn same_seed_gives_identical_files_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    run_phantom(&a, 3, SMALL, &[], Some(1));
    run_phantom(&b, 3, SMALL, &[], Some(3));
    run_phantom(&c, 4, SMALL, &[], None);
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    let names: Vec<_> = fa.keys().map(|p| p.to_string_lossy().to_string()).collect();
    assert_eq!(
        names,
        [
            "labels.npy",
            "phantom.json",
            "planes/plane_008.png",
            "planes/plane_024.png",
            "spots.parquet",
            "truth/spots_truth.parquet",
            "volume.npy"
        ]
    );
    for (name, bytes) in &fa {
        assert!(
            fb[name] == *bytes,
            "{} differs between 1 and 3 threads",
            name.display()
        );
    }
    assert_eq!(fa.keys().collect::<Vec<_>>(), fc.keys().collect::<Vec<_>>());
    for name in [
        "volume.npy",
        "labels.npy",
        "spots.parquet",
        "planes/plane_008.png",
    ] {
        assert!(
            fa[Path::new(name)] != fc[Path::new(name)],
            "{name}: seeds 3 and 4 gave the same bytes"
        );
    }
}

#[test]
fn json_summary_and_file_formats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    let stdout = run_phantom(
        &out,
        11,
        "24,300,280",
        &["--plane-step", "12", "--json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["shape"], serde_json::json!([24, 300, 280]));
    assert_eq!(v["planes_z"], serde_json::json!([6, 18]));
    assert_eq!(v["genes"].as_array().unwrap().len(), 60);
    let n_spots = v["n_spots"].as_u64().unwrap() as usize;
    assert!(n_spots > 10, "{v}");
    assert_eq!(v["files"]["planes"].as_array().unwrap().len(), 2);
    assert!(Path::new(v["files"]["volume"].as_str().unwrap()).is_file());

    // phantom.json
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("phantom.json")).unwrap()).unwrap();
    assert_eq!(meta["format"], "vortexdb-phantom/1");
    assert_eq!(meta["seed"], 11);
    assert_eq!(meta["voxel_um"], serde_json::json!([4.0, 4.0, 4.0]));
    assert_eq!(
        meta["compartments"],
        serde_json::json!(["background", "gland", "tumour", "stroma", "fat"])
    );
    assert_eq!(meta["planes_z"], serde_json::json!([6, 18]));
    assert_eq!(meta["spot"]["pitch_um"], 200.0);
    assert_eq!(meta["spot"]["diameter_um"], 100.0);
    assert_eq!(meta["spot"]["section_um"], 16.0);
    assert_eq!(
        meta["files"]["planes"],
        serde_json::json!(["planes/plane_006.png", "planes/plane_018.png"])
    );
    let genes: Vec<String> = meta["genes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    assert_eq!(genes[..3], ["GLD01", "GLD02", "GLD03"]);
    assert_eq!(genes[59], "HK10");
    for prog in ["gland", "tumour", "stroma", "fat", "immune"] {
        let p: Vec<f64> = meta["programs"][prog]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(p.len(), 60);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{prog}");
    }

    // NPY volumes.
    for name in ["volume.npy", "labels.npy"] {
        let bytes = std::fs::read(out.join(name)).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[24, 300, 280]);
        assert_eq!(npy.dtype().descr(), "'|u1'");
        assert_eq!(npy.order(), npyz::Order::C);
        let data: Vec<u8> = npy.into_vec().unwrap();
        if name == "labels.npy" {
            assert!(data.iter().all(|&l| l <= 4));
            for k in 0..=4 {
                assert!(data.contains(&k), "label {k} missing");
            }
        }
    }

    // PNG planes: RGB, Y rows x X columns.
    let f = File::open(out.join("planes/plane_006.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (280, 300));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    // A corner is background: near white.
    assert!(buf[..3].iter().all(|&c| c > 220), "{:?}", &buf[..3]);

    // spots.parquet
    let spots = read_parquet(&out.join("spots.parquet"));
    assert_eq!(spots.num_rows(), n_spots);
    let schema = spots.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names[..7], ["spot", "plane_z", "z", "y", "x", "row", "col"]);
    assert_eq!(
        names[7..],
        genes.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(1).data_type(), &DataType::Int32);
    assert_eq!(schema.field(2).data_type(), &DataType::Float64);
    assert_eq!(schema.field(5).data_type(), &DataType::Int32);
    assert!(
        schema.fields()[7..]
            .iter()
            .all(|f| f.data_type() == &DataType::UInt32)
    );
    let spot_names = spots.column(0).as_string::<i32>();
    assert_eq!(spot_names.value(0).len(), "z006_r00_c00".len());
    assert!(
        spot_names.value(0).starts_with("z006_r"),
        "{}",
        spot_names.value(0)
    );
    let (ys, xs) = (column_f64(&spots, "y"), column_f64(&spots, "x"));
    // The 6 x 6 grid (pitch 50) is centred: rows at 24.5 + 50 i, columns at 14.5 + 50 j.
    assert!(
        ys.iter()
            .all(|y| ((y - 24.5) / 50.0).fract().abs() < 1e-9 && *y >= 24.5 && *y <= 274.5)
    );
    assert!(
        xs.iter()
            .all(|x| ((x - 14.5) / 50.0).fract().abs() < 1e-9 && *x >= 14.5 && *x <= 264.5)
    );

    // truth/spots_truth.parquet
    let truth = read_parquet(&out.join("truth/spots_truth.parquet"));
    assert_eq!(truth.num_rows(), n_spots);
    let tschema = truth.schema();
    let tnames: Vec<&str> = tschema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        tnames[..6],
        [
            "spot",
            "frac_gland",
            "frac_tumour",
            "frac_stroma",
            "frac_fat",
            "immune"
        ]
    );
    assert_eq!(tnames.len(), 66);
    assert_eq!(tnames[6], "expected_GLD01");
    assert_eq!(tnames[65], "expected_HK10");
    let t_names = truth.column(0).as_string::<i32>();
    for i in 0..n_spots {
        assert_eq!(t_names.value(i), spot_names.value(i));
        let s: f64 = ["frac_gland", "frac_tumour", "frac_stroma", "frac_fat"]
            .iter()
            .map(|c| {
                truth
                    .column_by_name(c)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .value(i)
            })
            .sum();
        assert!((s - 1.0).abs() < 1e-9);
    }
}

#[test]
fn gene_programs_follow_the_morphology() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    run_phantom(&out, 21, "48,384,384", &["--plane-step", "8"], None);
    let spots = read_parquet(&out.join("spots.parquet"));
    let truth = read_parquet(&out.join("truth/spots_truth.parquet"));
    let n = spots.num_rows();
    assert!(n >= 150, "{n} spots");
    let schema = spots.schema();
    let gene_cols: Vec<(String, Vec<u32>)> = schema.fields()[7..]
        .iter()
        .map(|f| {
            let c = spots.column_by_name(f.name()).unwrap();
            (
                f.name().clone(),
                c.as_primitive::<UInt32Type>().values().to_vec(),
            )
        })
        .collect();
    let total: Vec<f64> = (0..n)
        .map(|i| gene_cols.iter().map(|(_, c)| c[i] as f64).sum())
        .collect();
    assert!(
        total.iter().all(|t| *t > 500.0),
        "library sizes {:?}",
        &total[..5]
    );
    let mut report = Vec::new();
    for (prefix, column) in [
        ("GLD", "frac_gland"),
        ("TUM", "frac_tumour"),
        ("STR", "frac_stroma"),
        ("FAT", "frac_fat"),
        ("IMM", "immune"),
    ] {
        let share: Vec<f64> = (0..n)
            .map(|i| {
                gene_cols
                    .iter()
                    .filter(|(g, _)| g.starts_with(prefix))
                    .map(|(_, c)| c[i] as f64)
                    .sum::<f64>()
                    / total[i]
            })
            .collect();
        let truth_col = column_f64(&truth, column);
        let r = pearson(&share, &truth_col);
        report.push(format!("{prefix}~{column}: r={r:.3}"));
        assert!(r > 0.8, "{prefix} share vs {column}: Pearson {r:.3}");
        // The truth column has spread (some spots high, some low).
        let max = truth_col.iter().cloned().fold(0.0, f64::max);
        assert!(max > 0.2, "{column} never exceeds {max}");
    }
    eprintln!("{n} spots; {}", report.join(", "));
    // Noise-free expected expression: log1p of a profile normalised to 1e4.
    let e: Vec<Vec<f64>> = truth.schema().fields()[6..]
        .iter()
        .map(|f| column_f64(&truth, f.name()))
        .collect();
    for i in 0..n {
        let s: f64 = e.iter().map(|c| c[i].exp_m1()).sum();
        assert!((s - 1e4).abs() < 1e-6);
    }
}

#[test]
fn human_output_and_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    let text = run_phantom(&out, 1, "16,128,128", &["--plane-step", "8"], None);
    assert!(text.contains("phantom (seed 1) written to"), "{text}");
    assert!(text.contains("2 H&E planes at z = 4, 12"), "{text}");
    assert!(text.contains("spots x 60 genes"), "{text}");
    // A second run into the same directory needs --force, and then replaces the files
    // (planes of the earlier run that this one does not write are removed).
    let o = out.to_str().unwrap();
    expect_user_error(
        &["phantom", "--out", o, "--shape", "16,128,128"],
        &[o, "not empty", "--force"],
    );
    run_phantom(
        &out,
        1,
        "16,128,128",
        &["--plane-step", "16", "--force"],
        None,
    );
    let names: Vec<_> = files(&out.join("planes")).into_keys().collect();
    assert_eq!(names, [PathBuf::from("plane_008.png")]);
}

#[test]
fn bad_input_is_refused_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    let o = out.to_str().unwrap();
    expect_user_error(
        &["phantom", "--out", o, "--shape", "32,20,256"],
        &["--shape", "25 voxels"],
    );
    expect_user_error(
        &["phantom", "--out", o, "--shape", "32,256"],
        &["--shape", "Z,Y,X"],
    );
    expect_user_error(&["phantom", "--out", o, "--shape", "a,b,c"], &["--shape"]);
    expect_user_error(
        &["phantom", "--out", o, "--shape", "0,256,256"],
        &["--shape"],
    );
    expect_user_error(
        &["phantom", "--out", o, "--plane-step", "0"],
        &["--plane-step", "at least 1"],
    );
    expect_user_error(
        &["phantom", "--out", o, "--shape", "4,256,256"],
        &["--plane-step", "no plane"],
    );
    assert!(!out.exists(), "nothing is written for bad arguments");
    // A non-empty directory, and a file in the way.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "keep me").unwrap();
    expect_user_error(
        &["phantom", "--out", o, "--shape", SMALL],
        &[o, "not empty"],
    );
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    expect_user_error(
        &["phantom", "--out", file.to_str().unwrap()],
        &["not a directory"],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("mine.txt")).unwrap(),
        "keep me"
    );
    let help = expect_ok(&["phantom", "--help"]);
    assert!(
        help.contains("--plane-step") && help.contains("--shape"),
        "{help}"
    );
}
