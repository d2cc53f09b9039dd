//! Non-rigid refinement of serial sections against a known deformation: a phantom
//! section deformed by a smooth field (as a section stretches on the slide) is brought
//! back closer than the affine alone can, and an undeformed pair is left as good as
//! the affine had it. The field travels through the transforms file into the ingest.

mod common;

use std::path::Path;

use common::phantom;
use vortexdb::{
    Affine, ImageStack, Registered, SectionOptions, Transforms, VolumeSource, register_sections,
    write_registration,
};

/// `img` sampled through `map` (output pixel centre -> source continuous coordinates)
/// onto a white canvas of `w x h`.
fn warp_with(
    img: &image::RgbImage,
    map: impl Fn([f64; 2]) -> [f64; 2],
    w: u32,
    h: u32,
) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let p = map([x as f64 + 0.5, y as f64 + 0.5]);
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

fn plane(ph: &Path, z: usize) -> image::RgbImage {
    image::open(ph.join(format!("planes/plane_{z:03}.png")))
        .unwrap()
        .to_rgb8()
}

const SIDE: u32 = 480;

/// Register the fixed and the deformed moving section (with and without the
/// non-rigid step) and return the median and 90th-percentile error in pixels over the
/// fixed section's tissue: a fixed pixel r should be shown, in the frame, by the
/// moving pixel q with `truth(q) = r`.
fn errors(
    dir: &Path,
    fixed: &image::RgbImage,
    moving: &image::RgbImage,
    truth: &dyn Fn([f64; 2]) -> [f64; 2],
    nonrigid: bool,
) -> (f64, f64, Transforms) {
    let (fp, mp) = (dir.join("fixed.png"), dir.join("moving.png"));
    fixed.save(&fp).unwrap();
    moving.save(&mp).unwrap();
    let opts = SectionOptions {
        reference: Some(0),
        nonrigid,
        ..Default::default()
    };
    let reg = register_sections(&[fp, mp], &opts).unwrap();
    let t = reg.file;
    let to_frame = Affine(t.sections[0]);
    let mut e = Vec::new();
    for y in (8..SIDE).step_by(6) {
        for x in (8..SIDE).step_by(6) {
            let px = fixed.get_pixel(x, y);
            if px.0.iter().all(|&c| c > 200) {
                continue;
            }
            let r = [x as f64 + 0.5, y as f64 + 0.5];
            let q = t.frame_to_image(1, to_frame.apply(r));
            let back = truth(q);
            e.push((back[0] - r[0]).hypot(back[1] - r[1]));
        }
    }
    e.sort_by(f64::total_cmp);
    (e[e.len() / 2], e[e.len() * 9 / 10], t)
}

/// The phantom's H&E plane `z` on a larger white canvas.
fn padded(ph: &Path, z: usize) -> image::RgbImage {
    warp_with(&plane(ph, z), |p| [p[0] - 40.0, p[1] - 40.0], SIDE, SIDE)
}

/// Moving pixel q shows the fixed frame at: a rotation and shift, then a smooth
/// stretch of up to 9 px (36 um) that no affine map can express.
fn deformation(q: [f64; 2]) -> [f64; 2] {
    let b = Affine::similarity(7.0, 1.0, [240.0, 240.0], [6.0, -5.0]).apply(q);
    let (sx, sy) = (b[0] / SIDE as f64, b[1] / SIDE as f64);
    let pi = std::f64::consts::PI;
    [
        b[0] + 9.0 * (pi * sy).sin() * (2.0 * pi * sx).sin(),
        b[1] + 7.0 * (2.0 * pi * sy).sin() * (pi * sx).cos(),
    ]
}

/// The same section deformed: the field brings it back within a pixel where the
/// affine leaves several, and the field goes through the transforms file into the
/// ingest's registered sections.
#[test]
fn a_deformed_section_is_brought_back_within_a_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 4, [48, 400, 400], 8);
    let fixed = padded(&ph, 20);
    let moving = warp_with(&fixed, deformation, SIDE, SIDE);
    let (a50, a90, _) = errors(dir.path(), &fixed, &moving, &deformation, false);
    let (n50, n90, t) = errors(dir.path(), &fixed, &moving, &deformation, true);
    assert!(
        a50 > 3.0,
        "the deformation must be beyond an affine map (median {a50:.2} px)"
    );
    assert!(
        n50 < 1.0 && n90 < 3.0,
        "non-rigid {n50:.2} / {n90:.2} px against affine {a50:.2} / {a90:.2} px"
    );
    assert!(t.field(1).is_some() && t.field(0).is_none());
    let pair = &t.pairs[0];
    assert!(pair.score_nonrigid.unwrap() > pair.score_affine.unwrap());
    assert!(pair.field_max_px.unwrap() > 3.0);

    let tf = dir.path().join("reg/transforms.json");
    let files = vec![dir.path().join("fixed.png"), dir.path().join("moving.png")];
    let reg = register_sections(
        &files,
        &SectionOptions {
            reference: Some(0),
            nonrigid: true,
            ..Default::default()
        },
    )
    .unwrap();
    write_registration(&reg, &tf).unwrap();
    let read = Transforms::read(&tf, 2).unwrap();
    assert_eq!(read.fields, reg.file.fields);
    let mut affine_only = read.clone();
    affine_only.fields.clear();
    let diff = |t: &Transforms| {
        let stack = ImageStack::open_files_any_size(files.clone(), "s".into(), None).unwrap();
        let mut r = Registered::new(stack, t, &tf);
        let (a, b) = (r.read_slice(0).unwrap(), r.read_slice(1).unwrap());
        let n = a.h * a.w;
        (0..n).map(|i| (a.data[i] - b.data[i]).abs()).sum::<f32>() / n as f32
    };
    let (with, without) = (diff(&read), diff(&affine_only));
    assert!(
        with < 0.7 * without,
        "ingested sections differ by {with} with the field, {without} without"
    );
    // Spots of the moving section land where the fixed section shows their tissue.
    let q = [200.5, 260.5];
    let p = read.image_to_frame(1, q);
    let r = Affine(read.sections[0]).inverse().unwrap().apply(p);
    let want = deformation(q);
    assert!(
        (r[0] - want[0]).hypot(r[1] - want[1]) < 1.5,
        "{r:?} vs {want:?}"
    );
}

/// Serial neighbours 32 um apart (as her2st's), the moving one deformed: the field
/// takes at least 15% off the affine's median error, and on an undeformed pair it
/// costs at most half a pixel.
#[test]
fn a_deformed_serial_neighbour_is_brought_closer() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 4, [48, 400, 400], 8);
    let (fixed, next) = (padded(&ph, 20), padded(&ph, 28));
    let moving = warp_with(&next, deformation, SIDE, SIDE);
    let (a50, a90, _) = errors(dir.path(), &fixed, &moving, &deformation, false);
    let (n50, n90, _) = errors(dir.path(), &fixed, &moving, &deformation, true);
    eprintln!(
        "serial neighbour, deformed: affine {a50:.2} / {a90:.2} px, non-rigid {n50:.2} / {n90:.2} px"
    );
    assert!(
        n50 < 0.85 * a50,
        "deformed: non-rigid {n50:.2} / {n90:.2} px against affine {a50:.2} / {a90:.2} px"
    );
    let rigid = Affine::similarity(-11.0, 1.0, [240.0, 240.0], [-4.0, 7.0]);
    let truth = move |q: [f64; 2]| rigid.apply(q);
    let moving = warp_with(&next, truth, SIDE, SIDE);
    let (a50, a90, _) = errors(dir.path(), &fixed, &moving, &truth, false);
    let (n50, n90, _) = errors(dir.path(), &fixed, &moving, &truth, true);
    eprintln!(
        "serial neighbour, undeformed: affine {a50:.2} / {a90:.2} px, non-rigid {n50:.2} / {n90:.2} px"
    );
    assert!(
        n50 < a50 + 0.5 && n90 < a90 + 1.0,
        "undeformed: non-rigid {n50:.2} / {n90:.2} px against affine {a50:.2} / {a90:.2} px"
    );
}
