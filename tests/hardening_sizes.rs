//! Regression tests of issue 17's defects that aborted the process from a size in a
//! tiny file or an argument, ended in an internal error, or were accepted and then
//! gave wrong answers: wrapping NPY / TIFF / PNG / JPEG sizes, a truncated JPEG, absurd
//! arguments, non-finite spot positions. Each now ends in a clear exit 1 naming the
//! file or argument, under an address-space limit (`common::expect_user_error`), and
//! nothing is written.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use common::fixture::{private_store, shared};
use common::{expect_ok, expect_user_error, s};
use vortexdb::Store;

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
    common::write_batch(path, &batch);
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
            vec!["--percentile"],
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
        // Named as the user gave it (it used to be blamed on --um-per-voxel).
        &["--spacing-um"],
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
