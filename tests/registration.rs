//! Registration computed from the images: each transform kind against a closed form,
//! and bad input refused with an error naming the file, nothing written.

mod common;

use std::path::{Path, PathBuf};

use common::{phantom, s, vortexdb};
use vortexdb::{
    Affine, Error, Motion, PlaneFile, PlaneOptions, SectionOptions, Transforms, open_volume,
    register_section_to_volume, register_sections,
};

/// `img` warped by `m` (output pixel -> source pixel, continuous coordinates) onto a
/// white canvas of `w x h`.
fn warp_png(img: &image::RgbImage, m: &Affine, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let p = m.apply([x as f64 + 0.5, y as f64 + 0.5]);
        let (u, v) = (p[0] - 0.5, p[1] - 0.5);
        if u < 0.0 || v < 0.0 || u > (img.width() - 1) as f64 || v > (img.height() - 1) as f64 {
            return image::Rgb([246, 246, 246]);
        }
        let (x0, y0) = (u.floor() as u32, v.floor() as u32);
        let (x1, y1) = (
            (x0 + 1).min(img.width() - 1),
            (y0 + 1).min(img.height() - 1),
        );
        let (tx, ty) = (u - x0 as f64, v - y0 as f64);
        let px = |a: u32, b: u32, c: usize| img.get_pixel(a, b)[c] as f64;
        image::Rgb(std::array::from_fn(|c| {
            let top = px(x0, y0, c) * (1.0 - tx) + px(x1, y0, c) * tx;
            let bot = px(x0, y1, c) * (1.0 - tx) + px(x1, y1, c) * tx;
            (top * (1.0 - ty) + bot * ty).round() as u8
        }))
    })
}

/// The phantom plane image `z` of `ph`, with its tissue shrunk into a white margin so
/// that a rotated copy keeps all of it.
fn plane(ph: &Path, z: usize) -> image::RgbImage {
    image::open(ph.join(format!("planes/plane_{z:03}.png")))
        .unwrap()
        .to_rgb8()
}

/// Largest distance over the image's corners between two maps.
fn corner_error(a: &Affine, b: &Affine, w: f64, h: f64) -> f64 {
    [[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]]
        .iter()
        .map(|&p| {
            let (u, v) = (a.apply(p), b.apply(p));
            ((u[0] - v[0]).powi(2) + (u[1] - v[1]).powi(2)).sqrt()
        })
        .fold(0.0, f64::max)
}

/// A section warped by a known rotation, scale, shear and shift is registered back
/// within one pixel, for each motion model that can express the map.
#[test]
fn known_maps_are_recovered_within_a_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 3, [24, 320, 320], 16);
    let a = plane(&ph, 8);
    // The fixed image: the plane on a larger white canvas (its pixel p shows plane p - 40).
    let pad = Affine([1.0, 0.0, -40.0, 0.0, 1.0, -40.0]);
    let fixed = warp_png(&a, &pad, 400, 400);
    let fixed_path = dir.path().join("fixed.png");
    fixed.save(&fixed_path).unwrap();
    let cases = [
        (
            Motion::Rigid,
            Affine::similarity(23.0, 1.0, [200.0, 200.0], [12.0, -7.0]),
        ),
        (
            Motion::Similarity,
            Affine::similarity(-35.0, 1.06, [200.0, 200.0], [-9.0, 15.0]),
        ),
        (
            Motion::Affine,
            Affine::similarity(12.0, 1.0, [200.0, 200.0], [5.0, 4.0])
                .then_after(&Affine([1.04, 0.05, -10.0, -0.02, 0.97, 6.0])),
        ),
    ];
    for (motion, truth) in cases {
        // moving pixel q shows fixed pixel truth(q): the moving image's map into the
        // fixed frame is `truth`.
        let moving = warp_png(&fixed, &truth, 400, 400);
        let moving_path = dir.path().join("moving.png");
        moving.save(&moving_path).unwrap();
        let opts = SectionOptions {
            reference: Some(0),
            motion,
            ..Default::default()
        };
        let reg = register_sections(&[fixed_path.clone(), moving_path.clone()], &opts).unwrap();
        let t = &reg.file;
        let to_frame = |i: usize| Affine(t.sections[i]);
        // moving -> fixed = frame->fixed o moving->frame.
        let got = to_frame(0).inverse().unwrap().then_after(&to_frame(1));
        let err = corner_error(&got, &truth, 400.0, 400.0);
        assert!(
            err < 1.0,
            "{motion:?}: corner error {err:.3} px; got {got:?}, truth {truth:?}"
        );
        assert!(t.pairs[0].score > 0.5, "{:?}", t.pairs[0]);
        // A wrong map would be off by far more than a pixel.
        assert!(corner_error(&Affine::IDENTITY, &truth, 400.0, 400.0) > 20.0);
    }
}

fn phantom_options() -> PlaneOptions {
    PlaneOptions::new(4.0, 4.0)
}

/// The recovered plane of an axis-aligned section is that slice: the phantom's own
/// H&E plane at z = 24 (rendered with the volume, not by the oblique renderer).
#[test]
fn an_axis_aligned_section_is_its_slice() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 4, [48, 256, 256], 16);
    let vol = ph.join("volume.npy");
    let img = ph.join("planes/plane_024.png");
    let mut src = open_volume(&vol, None).unwrap();
    let fit = register_section_to_volume(src.as_mut(), &vol, &img, &phantom_options()).unwrap();
    let p = fit.plane;
    assert!((p.origin[2] - 24.0).abs() < 1.0, "{p:?}");
    assert!(fit.tilt_total_deg < 1.0, "{p:?}");
    let rot = (p.rotation_deg + 180.0).rem_euclid(360.0) - 180.0;
    assert!(rot.abs() < 1.0 && (p.scale - 1.0).abs() < 0.01, "{p:?}");
    // Section pixel (u, v) is voxel (u, v, 24).
    for (u, v) in [(10.0, 20.0), (200.0, 130.0)] {
        let q = fit.to_voxel(u, v);
        assert!(
            (q[0] - u).abs() < 1.0 && (q[1] - v).abs() < 1.0 && (q[2] - 24.0).abs() < 1.0,
            "{q:?}"
        );
    }
}

/// Oblique sections rendered by the phantom are placed within 8 um and 1 degree (the
/// phantom of the default shape; scripts/plane-eval.sh scores 20 such sections).
#[test]
fn oblique_phantom_sections_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph");
    let params = vortexdb::PhantomParams {
        seed: 5,
        oblique: 2,
        ..Default::default()
    };
    vortexdb::generate_phantom(&params, &out).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("phantom.json")).unwrap()).unwrap();
    let vol = out.join("volume.npy");
    for (i, o) in meta["oblique"].as_array().unwrap().iter().enumerate() {
        let truth: vortexdb::Plane = serde_json::from_value(o["plane"].clone()).unwrap();
        let img = out.join(o["image"].as_str().unwrap());
        let mut src = open_volume(&vol, None).unwrap();
        let fit = register_section_to_volume(src.as_mut(), &vol, &img, &phantom_options()).unwrap();
        let c = truth.centre;
        let dz = (fit.to_voxel(c[0], c[1])[2] - truth.to_voxel(c[0], c[1])[2]) * 4.0;
        let tilt = fit.plane.angle_to(&truth);
        assert!(
            dz.abs() < 8.0 && tilt < 1.0,
            "section {i}: depth error {dz} um, tilt error {tilt} deg"
        );
    }
}

fn white(path: &Path) -> PathBuf {
    image::RgbImage::from_pixel(200, 200, image::Rgb([247, 247, 247]))
        .save(path)
        .unwrap();
    path.to_path_buf()
}

#[test]
fn an_image_without_tissue_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 3, [24, 256, 256], 16);
    let blank = white(&dir.path().join("blank.png"));
    let sec = ph.join("planes/plane_008.png");
    let out = dir.path().join("t.json");
    let o = vortexdb(&["register", "sections", s(&sec), s(&blank), "--out", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("blank.png") && err.contains("no tissue found"),
        "{err}"
    );
    assert!(!out.exists() && !dir.path().join("qc_01_00.png").exists());
    // Section to volume: the same image as the section.
    let vol = ph.join("volume.npy");
    let mut src = open_volume(&vol, None).unwrap();
    let e = register_section_to_volume(src.as_mut(), &vol, &blank, &phantom_options()).unwrap_err();
    assert!(
        e.to_string().contains("blank.png") && e.to_string().contains("no tissue"),
        "{e}"
    );
}

/// Sections of two different tissues (phantoms of two seeds): the registration fails
/// with its score, naming both files, and writes nothing.
#[test]
fn sections_that_do_not_overlap_fail_with_their_score() {
    let dir = tempfile::tempdir().unwrap();
    let a = phantom(&dir.path().join("a"), 3, [24, 256, 256], 16);
    let b = phantom(&dir.path().join("b"), 9, [24, 256, 256], 16);
    let (pa, pb) = (
        a.join("planes/plane_008.png"),
        b.join("planes/plane_008.png"),
    );
    let e = register_sections(&[pa.clone(), pb.clone()], &SectionOptions::default()).unwrap_err();
    match &e {
        Error::RegistrationFailed {
            score,
            moving,
            fixed,
            ..
        } => {
            assert!(*score < 0.3, "{e}");
            assert!(moving == &pb || fixed == &pb, "{e}");
        }
        other => panic!("expected RegistrationFailed, got {other}"),
    }
    assert!(e.to_string().contains("score"), "{e}");
    // The same section registered to itself passes: the check can succeed.
    register_sections(&[pa.clone(), pa.clone()], &SectionOptions::default()).unwrap();
    // A volume that is another tissue: no plane matches.
    let vol = b.join("volume.npy");
    let mut src = open_volume(&vol, None).unwrap();
    let e = register_section_to_volume(src.as_mut(), &vol, &pa, &phantom_options()).unwrap_err();
    assert!(matches!(e, Error::RegistrationFailed { .. }), "{e}");
    let out = dir.path().join("plane.json");
    let o = vortexdb(&[
        "register",
        "section-to-volume",
        s(&vol),
        s(&pa),
        "--out",
        s(&out),
        "--um-per-px",
        "4",
        "--um-per-voxel",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("score"));
    assert!(!out.exists());
}

#[test]
fn transforms_and_plane_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let good = write(
        "good.json",
        serde_json::json!({"format": "vortexdb-transforms/2", "frame": [10, 10], "sections": [id, id]}),
    );
    Transforms::read(&good, 2).unwrap();
    let v1 = write(
        "v1.json",
        serde_json::json!({"frame": [10, 10], "sections": [id, id]}),
    );
    Transforms::read(&v1, 2).unwrap();
    let other = write(
        "v9.json",
        serde_json::json!({"format": "vortexdb-transforms/9", "frame": [10, 10], "sections": [id, id]}),
    );
    let e = Transforms::read(&other, 2).unwrap_err().to_string();
    assert!(
        e.contains("v9.json") && e.contains("vortexdb-transforms/9"),
        "{e}"
    );
    let e = Transforms::read(&good, 3).unwrap_err().to_string();
    assert!(
        e.contains("good.json") && e.contains("2 transforms for 3 section images"),
        "{e}"
    );
    let singular = write(
        "singular.json",
        serde_json::json!({"frame": [10, 10], "sections": [id, [1.0, 2.0, 0.0, 2.0, 4.0, 0.0]]}),
    );
    let e = Transforms::read(&singular, 2).unwrap_err().to_string();
    assert!(
        e.contains("singular.json") && e.contains("not an invertible affine"),
        "{e}"
    );
    // Fields: one per section or none, and none that folds.
    let field = |dx: Vec<f64>| serde_json::json!({"origin": [0.0, 0.0], "step": 5.0, "grid": [2, 2], "dx": dx, "dy": [0.0, 0.0, 0.0, 0.0]});
    let with_field = write(
        "field.json",
        serde_json::json!({"format": "vortexdb-transforms/2", "frame": [10, 10], "sections": [id, id],
            "fields": [null, field(vec![0.0, 1.0, 0.5, 1.5])]}),
    );
    let t = Transforms::read(&with_field, 2).unwrap();
    assert!(t.field(0).is_none() && t.field(1).is_some());
    let short = write(
        "short.json",
        serde_json::json!({"format": "vortexdb-transforms/2", "frame": [10, 10], "sections": [id, id],
            "fields": [null]}),
    );
    let e = Transforms::read(&short, 2).unwrap_err().to_string();
    assert!(
        e.contains("short.json") && e.contains("1 fields for 2 section images"),
        "{e}"
    );
    let folds = write(
        "folds.json",
        serde_json::json!({"format": "vortexdb-transforms/2", "frame": [10, 10], "sections": [id, id],
            "fields": [null, field(vec![0.0, 9.0, 0.0, 0.0])]}),
    );
    let e = Transforms::read(&folds, 2).unwrap_err().to_string();
    assert!(
        e.contains("folds.json") && e.contains("field 1 (section 2)") && e.contains("fold"),
        "{e}"
    );
    // Plane files: the format and a matrix that spans a plane.
    let plane = |m: serde_json::Value, f: &str| {
        serde_json::json!({"format": f, "volume": "v.npy", "image": "s.png", "matrix": m,
            "plane": {"origin": [0.0, 0.0, 0.0], "tilt_deg": [0.0, 0.0], "rotation_deg": 0.0, "scale": 1.0,
                      "centre": [0.0, 0.0], "um_per_px": 1.0, "voxel_um": [1.0, 1.0, 1.0]},
            "depth_um": 0.0, "tilt_total_deg": 0.0, "score": 1.0, "seconds": 0.0})
    };
    let ok = write(
        "p.json",
        plane(
            serde_json::json!([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]]),
            "vortexdb-plane/1",
        ),
    );
    assert_eq!(
        PlaneFile::read(&ok).unwrap().to_voxel(2.0, 3.0),
        [2.0, 3.0, 5.0]
    );
    let flat = write(
        "flat.json",
        plane(
            serde_json::json!([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 5.0]]),
            "vortexdb-plane/1",
        ),
    );
    let e = PlaneFile::read(&flat).unwrap_err().to_string();
    assert!(
        e.contains("flat.json") && e.contains("does not map the section onto a plane"),
        "{e}"
    );
    let old = write(
        "old.json",
        plane(
            serde_json::json!([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]]),
            "vortexdb-plane/0",
        ),
    );
    let e = PlaneFile::read(&old).unwrap_err().to_string();
    assert!(
        e.contains("old.json") && e.contains("vortexdb-plane/1"),
        "{e}"
    );
}
