//! Stain normalisation at ingest (`--stain-reference`, Macenko): on a synthetic H&E slide
//! made from known stain vectors, the estimate finds them, normalising a stain-jittered
//! copy to the original's stain restores its pixels, and ingesting the jittered copy with
//! the original as reference stores embeddings close to the original's. Bad references
//! are refused with the file named and nothing written.
//!
//! The CLI tests need the ONNX Runtime library (`bash scripts/setup-ort.sh`).

mod common;

use std::path::Path;

use common::{expect_ok, expect_user_error, new_model_store, s};
use vortexdb::{Slice, StainBasis, Store, VolumeSource};

// Haematoxylin and eosin as measured on real slides (Macenko et al.'s reference).
const H: [f64; 3] = [0.5626, 0.7201, 0.4062];
const E: [f64; 3] = [0.2159, 0.8012, 0.5581];

fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    v.map(|x| x / n)
}

/// A 240 x 240 H&E-like slide: white glass on the left quarter, then tissue whose pixels
/// mix haematoxylin and eosin in smoothly varying amounts (nuclei-like blobs of
/// haematoxylin on eosin stroma), amounts scaled by `gain` (H, E).
fn slide(gain: [f64; 2]) -> Vec<u8> {
    let (h, e) = (unit(H), unit(E));
    let (n, mut out) = (240usize, Vec::new());
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f64, y as f64);
            let (ah, ae) = if x < n / 4 {
                (0.0, 0.0)
            } else {
                let blob = ((fx * 0.31).sin() * (fy * 0.27).cos()).max(0.0);
                let stroma = 0.8 + 0.4 * ((fx * 0.05 + fy * 0.07).sin());
                (1.3 * blob.powi(2), stroma * (1.0 - 0.7 * blob))
            };
            for c in 0..3 {
                let od = gain[0] * ah * h[c] + gain[1] * ae * e[c];
                out.push((255.0 * (-od).exp()).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn write_png(path: &Path, rgb: &[u8]) {
    image::RgbImage::from_raw(240, 240, rgb.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

fn as_slice(rgb: &[u8]) -> Slice {
    let n = rgb.len() / 3;
    let mut data = vec![0f32; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            data[c * n + i] = f32::from(rgb[3 * i + c]) / 255.0;
        }
    }
    Slice {
        channels: 3,
        h: 240,
        w: 240,
        data,
    }
}

fn mean_abs(a: &Slice, b: &Slice) -> f64 {
    let s: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum();
    s / a.data.len() as f64
}

#[test]
fn the_estimate_finds_the_stains_and_normalisation_undoes_a_stain_jitter() {
    let original = as_slice(&slide([1.0, 1.0]));
    let jittered = as_slice(&slide([1.3, 0.7]));
    let b0 = StainBasis::estimate(&original).expect("a stain estimate");
    for ((v, truth), min) in b0.vectors.iter().zip([unit(H), unit(E)]).zip([0.99, 0.99]) {
        let cos: f64 = v.iter().zip(truth).map(|(a, b)| a * b).sum();
        assert!(cos > min, "estimated {v:?} vs true {truth:?}: cos {cos}");
    }
    let b1 = StainBasis::estimate(&jittered).unwrap();
    // More haematoxylin: its 99th percentile says so.
    assert!(
        b1.max_amount[0] > 1.2 * b0.max_amount[0],
        "{b1:?} vs {b0:?}"
    );
    let before = mean_abs(&jittered, &original);
    let mut fixed = jittered.clone();
    b1.normalize(&mut fixed, &b0);
    let after = mean_abs(&fixed, &original);
    assert!(
        after < 0.01 && after * 4.0 < before,
        "mean |difference| to the original: {before:.4} before, {after:.4} after"
    );
    // Normalising a slide to its own stain changes almost nothing.
    let mut same = original.clone();
    b0.normalize(&mut same, &b0);
    assert!(mean_abs(&same, &original) < 0.005);
}

#[test]
fn bad_references_and_sources_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let white = dir.path().join("white.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([250, 250, 250]))
        .save(&white)
        .unwrap();
    let e = StainBasis::from_image(&white).unwrap_err().to_string();
    assert!(
        e.contains("white.png") && e.contains("too little stained tissue"),
        "{e}"
    );
    let grey = dir.path().join("grey.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([90]))
        .save(&grey)
        .unwrap();
    let e = StainBasis::from_image(&grey).unwrap_err().to_string();
    assert!(e.contains("grey.png") && e.contains("RGB"), "{e}");
    let missing = dir.path().join("missing.png");
    let e = StainBasis::from_image(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.png"), "{e}");
    // A grey source cannot be stain-normalised.
    let src = vortexdb::ImageStack::open_files(vec![grey.clone()], "grey".into(), None).unwrap();
    let ok = dir.path().join("ok.png");
    write_png(&ok, &slide([1.0, 1.0]));
    let e = vortexdb::StainNormalized::new(Box::new(src), &ok)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("RGB"), "{e}");
    // A slide with no tissue reads unchanged through the wrapper.
    let src = vortexdb::ImageStack::open_files(vec![white.clone()], "w".into(), None).unwrap();
    let mut n = vortexdb::StainNormalized::new(Box::new(src), &ok).unwrap();
    let s = n.read_slice(0).unwrap();
    assert!(s.data.iter().all(|&v| (v - 250.0 / 255.0).abs() < 1e-6));
    assert_eq!(n.normalized(), 0);
}

fn vectors(db: &Path, sample: &str) -> Vec<([i64; 3], Vec<f32>)> {
    common::stored_patches(db, "vortex-tiny-phantom:2d", sample)
}

/// Mean cosine over the patches at the origins both samples hold (the tissue mask
/// is per slide, so the sets may differ at the edges).
fn mean_cos(a: &[([i64; 3], Vec<f32>)], b: &[([i64; 3], Vec<f32>)]) -> f64 {
    let b: std::collections::HashMap<_, _> = b.iter().map(|(o, v)| (*o, v)).collect();
    let (mut s, mut n) = (0.0, 0usize);
    for (oa, va) in a {
        let Some(vb) = b.get(oa) else { continue };
        n += 1;
        let d: f32 = va.iter().zip(vb.iter()).map(|(x, y)| x * y).sum();
        let na: f32 = va.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = vb.iter().map(|x| x * x).sum::<f32>().sqrt();
        s += f64::from(d / (na * nb));
    }
    assert!(n >= 20, "only {n} patches in common");
    s / n as f64
}

#[test]
fn ingest_with_a_stain_reference_brings_a_jittered_slide_back_to_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (orig, jit) = (dir.path().join("orig.png"), dir.path().join("jit.png"));
    write_png(&orig, &slide([1.0, 1.0]));
    write_png(&jit, &slide([1.4, 0.6]));
    let db = new_model_store(dir.path(), "db");
    let ingest = |sample: &str, file: &Path, extra: &[&str]| {
        // Every patch (no tissue mask): the masks of differently stained copies differ.
        let mut a = vec![
            "ingest",
            "image",
            s(&db),
            "--sample",
            sample,
            "--um-per-px",
            "4",
            "--tissue",
            "all",
        ];
        a.push(s(file));
        a.extend_from_slice(extra);
        expect_ok(&a);
    };
    ingest("orig", &orig, &[]);
    ingest("jit", &jit, &[]);
    ingest("jit-norm", &jit, &["--stain-reference", s(&orig)]);
    let (o, j, n) = (
        vectors(&db, "orig"),
        vectors(&db, "jit"),
        vectors(&db, "jit-norm"),
    );
    assert!(!o.is_empty());
    let (raw, normed) = (mean_cos(&o, &j), mean_cos(&o, &n));
    assert!(
        normed > raw && 1.0 - normed < 0.5 * (1.0 - raw),
        "cosine to the original's embeddings: {raw:.4} as read, {normed:.4} normalised"
    );
    // The reference is part of the ingest's fingerprint: the same sample id without it
    // is other data, refused.
    expect_user_error(
        &[
            "ingest",
            "image",
            s(&db),
            "--sample",
            "jit-norm",
            "--um-per-px",
            "4",
            s(&jit),
        ],
        &["jit-norm"],
    );
    // A missing or unusable reference is refused before anything is written.
    let missing = dir.path().join("nope.png");
    expect_user_error(
        &[
            "ingest",
            "image",
            s(&db),
            "--sample",
            "x",
            "--um-per-px",
            "4",
            s(&jit),
            "--stain-reference",
            s(&missing),
        ],
        &["nope.png"],
    );
    let white = dir.path().join("white.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([250, 250, 250]))
        .save(&white)
        .unwrap();
    expect_user_error(
        &[
            "ingest",
            "sections",
            s(&db),
            "--sample",
            "y",
            "--spacing-um",
            "8",
            "--um-per-px",
            "4",
            s(&jit),
            s(&jit),
            "--stain-reference",
            s(&white),
        ],
        &["white.png", "too little stained tissue"],
    );
    let store = Store::open_read_only(&db).unwrap();
    assert!(store.sample("x").unwrap().is_none());
    assert!(store.sample("y").unwrap().is_none());
}
