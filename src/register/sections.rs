//! Serial sections registered to each other from their images alone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::affine::Affine;
use super::field::{Field, FieldFit, GridField, fit_field, warp_through};
use super::gray::{Gray, read_density};
use super::pair::{Level, Motion, ncc, register_pair, threshold_of, warp};
use super::transforms::{FORMAT, Transforms};
use crate::error::{Error, Result};

/// Settings of [`register_sections`].
#[derive(Debug, Clone)]
pub struct SectionOptions {
    /// Index of the section whose pixels are the common frame (default: the middle one).
    pub reference: Option<usize>,
    /// The degrees of freedom of each pair's map (default: similarity, fitted after
    /// rigid; affine adds shear and two scales, fitted last).
    pub motion: Motion,
    /// Longest side, in pixels, of the finest working image (default 1024): the images
    /// are block-averaged by one integer factor so that the largest fits.
    pub max_side: usize,
    /// Register each section to its neighbour towards the reference and chain the maps
    /// (default), or each directly to the reference.
    pub chain: bool,
    /// A pair whose correlation after registration is below this fails (default 0.3:
    /// her2st's serial sections score 0.41-0.58, two unrelated phantom tissues 0.27).
    pub min_score: f64,
    /// A pair whose tissue overlap after registration is below this fails (default 0.8:
    /// her2st 0.97-0.98, two unrelated phantom tissues 0.73).
    pub min_overlap: f64,
    /// Refine each section non-rigidly after the affine maps (default off): a smooth
    /// displacement field per section, kept only where it raises the pair's score.
    pub nonrigid: bool,
}

impl Default for SectionOptions {
    fn default() -> Self {
        SectionOptions {
            reference: None,
            motion: Motion::Similarity,
            max_side: 1024,
            chain: true,
            min_score: 0.3,
            min_overlap: 0.8,
            nonrigid: false,
        }
    }
}

/// One registered pair: its quality and what the map does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairReport {
    /// Index of the section registered.
    pub moving: usize,
    /// Index of the section it was registered to.
    pub fixed: usize,
    /// Pearson correlation of the two (smoothed) optical-density images inside the
    /// tissue of both, after registration (1 = identical).
    pub score: f64,
    /// Share of the smaller tissue area lying on the other's tissue, after registration.
    pub overlap: f64,
    /// Rotation of the map in degrees.
    pub rotation_deg: f64,
    /// Scale of the map (geometric mean of its singular values).
    pub scale: f64,
    /// File name of the QC overlay (fixed in magenta, moving in green, both grey).
    pub qc: String,
    /// Wall seconds of the pair's registration.
    pub seconds: f64,
    /// With non-rigid refinement: the score after it (the field is kept only if this
    /// beats the affine's score on the same grid, `score_affine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_nonrigid: Option<f64>,
    /// With non-rigid refinement: the affine's score on the same grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_affine: Option<f64>,
    /// With non-rigid refinement: the largest displacement of the kept field, in
    /// frame pixels (0 when none was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_max_px: Option<f64>,
}

/// The result of [`register_sections`]: the transforms file's content and the QC images.
#[derive(Debug, Clone)]
pub struct SectionRegistration {
    /// What [`write_registration`] writes as the transforms file.
    pub file: Transforms,
    /// One RGB overlay (width, height, bytes) per pair, named by `PairReport::qc`.
    pub overlays: Vec<(u32, u32, Vec<u8>)>,
}

/// Gaussian smoothing (level pixels) of the finest, middle and coarsest levels: serial
/// sections 16-64 um apart share tissue architecture, not cells, so the fit compares
/// structures of a few working pixels (on her2st, 5/3/2 gave the lowest error against
/// the study's alignment among 1/1/1 to 16/8/4: docs/REGISTRATION.md).
const SMOOTHING: [f64; 3] = [5.0, 3.0, 2.0];

/// Tissue of an optical-density level: above Otsu's threshold of the coarsest level.
fn levels_of(path: &Path, g: Gray, k: usize, n_levels: usize) -> Result<Vec<Level>> {
    let mut imgs = vec![g];
    while imgs.len() < n_levels && imgs.last().is_some_and(|g| g.w >= 64 && g.h >= 64) {
        let next = imgs.last().expect("one level").block_mean(2);
        imgs.push(next);
    }
    let coarse = imgs.last().expect("one level").blur(1.0);
    let t = coarse.otsu();
    let (mut n_in, mut s_in, mut s_out) = (0usize, 0f64, 0f64);
    for &v in &coarse.data {
        if v > t {
            n_in += 1;
            s_in += v as f64;
        } else {
            s_out += v as f64;
        }
    }
    let n = coarse.data.len();
    let frac = n_in as f64 / n as f64;
    let contrast = if n_in > 0 && n_in < n {
        s_in / n_in as f64 - s_out / (n - n_in) as f64
    } else {
        0.0
    };
    // White glass is ~0.05 optical density, stained tissue 0.2 to 1.5.
    if contrast < 0.08 || !(0.005..=0.995).contains(&frac) {
        return Err(Error::bad_file(
            path,
            format!(
                "no tissue found: the darker {:.1}% of the image is only {contrast:.3} optical \
                 density above the rest (tissue needs at least 0.08)",
                100.0 * frac
            ),
        ));
    }
    Ok(imgs
        .into_iter()
        .enumerate()
        .map(|(l, img)| {
            let b = img.blur(SMOOTHING[l.min(SMOOTHING.len() - 1)]);
            let mask = b.data.iter().map(|&v| v > t).collect();
            Level {
                img: b,
                mask,
                k: k << l,
            }
        })
        .collect())
}

/// Register serial section images (in stacking order) to one another from the images
/// alone and return, for each, the map from its pixels into the reference section's
/// frame (see [`SectionOptions`]), with a score and a QC overlay per pair. A pair
/// whose score or overlap falls below the options' minimum is an
/// [`Error::RegistrationFailed`] naming both files, never a silent bad transform.
pub fn register_sections(images: &[PathBuf], opts: &SectionOptions) -> Result<SectionRegistration> {
    let n = images.len();
    if n < 2 {
        return Err(Error::arg(
            "images",
            format!("need at least two section images, got {n}"),
        ));
    }
    let reference = opts.reference.unwrap_or(n / 2);
    if reference >= n {
        return Err(Error::arg(
            "reference",
            format!("section {reference} of {n} (counted from 0)"),
        ));
    }
    crate::limits::int_arg("max_side", opts.max_side, 64, 8192)?;
    crate::limits::float_arg("min_score", opts.min_score, -1.0, 1.0)?;
    crate::limits::float_arg("min_overlap", opts.min_overlap, 0.0, 1.0)?;
    let mut longest = 0usize;
    for p in images {
        let (w, h, _, _) = crate::volume::image_header(p)?;
        longest = longest.max(w.max(h) as usize);
    }
    let k = longest.div_ceil(opts.max_side).max(1);
    let mut pyramids = Vec::with_capacity(n);
    for p in images {
        let (g, _) = read_density(p, k)?;
        pyramids.push(levels_of(p, g, k, 3)?);
    }
    let depth = pyramids.iter().map(|l| l.len()).min().unwrap_or(1);
    pyramids.iter_mut().for_each(|l| l.truncate(depth));
    // Full-resolution continuous coordinates <-> finest-level index coordinates.
    let kf = k as f64;
    let to_full = Affine([kf, 0.0, kf / 2.0, 0.0, kf, kf / 2.0]);
    let to_level = to_full.inverse().expect("scaling");
    // Pairs: each section to its neighbour towards the reference, or to the reference.
    let mut to_ref: Vec<Option<Affine>> = vec![None; n];
    to_ref[reference] = Some(Affine::IDENTITY);
    let mut order: Vec<usize> = (0..reference).rev().chain(reference + 1..n).collect();
    order.sort_by_key(|&i| i.abs_diff(reference));
    let (mut pairs, mut overlays) = (Vec::new(), Vec::new());
    for i in order {
        let j = if !opts.chain {
            reference
        } else if i < reference {
            i + 1
        } else {
            i - 1
        };
        let t = std::time::Instant::now();
        let fit = register_pair(&pyramids[j], &pyramids[i], opts.motion);
        // fit.map: j's level pixel -> i's level pixel; full: j px -> i px.
        let full = to_full.then_after(&fit.map).then_after(&to_level);
        let fail = |what: String| Error::RegistrationFailed {
            moving: images[i].clone(),
            fixed: images[j].clone(),
            score: fit.score,
            overlap: fit.overlap,
            message: what,
        };
        let Some(i_to_j) = full.inverse().filter(|m| m.is_regular()) else {
            return Err(fail(format!("the map is degenerate: {:?}", full.0)));
        };
        if fit.score < opts.min_score {
            return Err(fail(format!(
                "score {:.3} is below the minimum {}",
                fit.score, opts.min_score
            )));
        }
        if fit.overlap < opts.min_overlap {
            return Err(fail(format!(
                "tissue overlap {:.3} is below the minimum {}",
                fit.overlap, opts.min_overlap
            )));
        }
        let [s1, s2] = full.singular_values();
        if s1 / s2 > 1.5 || !(0.5..2.0).contains(&(s1 * s2).sqrt()) {
            return Err(fail(format!(
                "the map is implausible for serial sections (scales {:.3} and {:.3})",
                1.0 / s1,
                1.0 / s2
            )));
        }
        let mine = to_ref[j]
            .expect("fixed registered first")
            .then_after(&i_to_j);
        to_ref[i] = Some(mine);
        let qc = format!("qc_{:02}_{:02}.png", i, j);
        overlays.push(overlay(&pyramids[j], &pyramids[i], &fit.map));
        pairs.push(PairReport {
            moving: i,
            fixed: j,
            score: fit.score,
            overlap: fit.overlap,
            rotation_deg: i_to_j.rotation_deg(),
            scale: (s1 * s2).sqrt().recip(),
            qc,
            seconds: t.elapsed().as_secs_f64(),
            score_nonrigid: None,
            score_affine: None,
            field_max_px: None,
        });
    }
    let to_ref: Vec<Affine> = to_ref
        .into_iter()
        .map(|m| m.expect("every section"))
        .collect();
    // The frame: the reference's pixels, shifted and grown to hold every section's tissue.
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for (m, l) in to_ref.iter().zip(&pyramids) {
        let c = &l[depth - 1];
        let (w, kc) = (c.img.w, c.k as f64);
        for (idx, _) in c.mask.iter().enumerate().filter(|(_, m)| **m) {
            let (x, y) = ((idx % w) as f64, (idx / w) as f64);
            for corner in [[x, y], [x + 1.0, y + 1.0]] {
                let p = m.apply([corner[0] * kc, corner[1] * kc]);
                for a in 0..2 {
                    lo[a] = lo[a].min(p[a]);
                    hi[a] = hi[a].max(p[a]);
                }
            }
        }
    }
    let margin = 0.02 * (hi[0] - lo[0]).max(hi[1] - lo[1]);
    let origin = [(lo[0] - margin).floor(), (lo[1] - margin).floor()];
    let frame = [
        (hi[1] + margin - origin[1]).ceil() as usize,
        (hi[0] + margin - origin[0]).ceil() as usize,
    ];
    let shift = Affine([1.0, 0.0, -origin[0], 0.0, 1.0, -origin[1]]);
    let sections: Vec<[f64; 6]> = to_ref.iter().map(|m| shift.then_after(m).0).collect();
    let fields = if opts.nonrigid {
        // Working grid pixel g <-> frame point k g + k / 2; -> each section's level pixels.
        let unshift = shift.inverse().expect("a shift");
        let maps: Vec<Affine> = to_ref
            .iter()
            .map(|m| {
                to_level
                    .then_after(&m.inverse().expect("regular"))
                    .then_after(&unshift)
                    .then_after(&to_full)
            })
            .collect();
        let grid = [frame[1].div_ceil(k), frame[0].div_ceil(k)];
        refine_nonrigid(&pyramids, &maps, grid, kf, &mut pairs, &mut overlays)
    } else {
        Vec::new()
    };
    Ok(SectionRegistration {
        file: Transforms {
            format: Some(FORMAT.into()),
            frame,
            sections,
            reference: Some(reference),
            images: images.to_vec(),
            motion: Some(opts.motion),
            pairs,
            fields,
        },
        overlays,
    })
}

/// Non-rigid refinement after the affine maps, section by section outwards from the
/// reference (the order of `pairs`): each section's finest level, mapped onto the
/// working grid (`grid` = width, height; `maps[i]`: grid pixel -> section i's level
/// pixel), is matched to its fixed neighbour as that one was finally registered. A
/// field is kept where it raises the pair's score on the grid and does not fold; the
/// pair's report and QC overlay then show the result with the field.
fn refine_nonrigid(
    pyramids: &[Vec<Level>],
    maps: &[Affine],
    grid: [usize; 2],
    k: f64,
    pairs: &mut [PairReport],
    overlays: &mut [(u32, u32, Vec<u8>)],
) -> Vec<Option<Field>> {
    let [w, h] = grid;
    let mut fields: Vec<Option<GridField>> = (0..pyramids.len()).map(|_| None).collect();
    let zero = GridField::zero(w, h, FieldFit::default().spacing);
    for (pair, qc) in pairs.iter_mut().zip(overlays.iter_mut()) {
        let (i, j) = (pair.moving, pair.fixed);
        let (li, lj) = (&pyramids[i][0], &pyramids[j][0]);
        let (mj, mi) = (maps[j], maps[i]);
        let fixed_sample = |x: f64, y: f64| {
            let p = mj.apply([x, y]);
            lj.img.sample(p[0], p[1]).unwrap_or(f32::NAN)
        };
        let moving_sample = |x: f64, y: f64| {
            let p = mi.apply([x, y]);
            li.img.sample(p[0], p[1]).unwrap_or(f32::NAN)
        };
        let fixed = warp_through(w, h, fields[j].as_ref().unwrap_or(&zero), &fixed_sample);
        let (tf, tm) = (threshold_of(lj), threshold_of(li));
        let mask: Vec<bool> = fixed
            .data
            .iter()
            .map(|v| v.is_finite() && *v > tf)
            .collect();
        let field = fit_field(&fixed, &mask, &moving_sample, &FieldFit::default());
        let score_of = |moved: &Gray| {
            let s = ncc(&fixed, moved, |p| mask[p] && moved.data[p] > tm).0;
            if s.is_finite() { s } else { 0.0 }
        };
        let before = score_of(&warp_through(w, h, &zero, &moving_sample));
        let moved = warp_through(w, h, &field, &moving_sample);
        let after = score_of(&moved);
        let frame_field = field.to_frame(k);
        let keep = after > before && frame_field.problem().is_none();
        pair.score_affine = Some(before);
        pair.score_nonrigid = Some(after);
        pair.field_max_px = Some(if keep {
            frame_field.max_displacement()
        } else {
            0.0
        });
        if keep {
            *qc = overlay_grid(&fixed, &moved);
            fields[i] = Some(field);
        }
    }
    if fields.iter().all(Option::is_none) {
        return Vec::new();
    }
    fields
        .into_iter()
        .map(|f| f.map(|f| f.to_frame(k)))
        .collect()
}

/// The QC overlay of two images on one grid: fixed in magenta, moving in green.
fn overlay_grid(f: &Gray, m: &Gray) -> (u32, u32, Vec<u8>) {
    let scale = |g: &Gray| {
        let mut v: Vec<f32> = g.data.iter().copied().filter(|v| v.is_finite()).collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() * 99 / 100).copied().unwrap_or(1.0).max(1e-3)
    };
    let (sf, sm) = (scale(f), scale(m));
    let mut rgb = Vec::with_capacity(f.w * f.h * 3);
    for (a, b) in f.data.iter().zip(&m.data) {
        let a = if a.is_finite() {
            (a / sf).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let b = if b.is_finite() {
            (b / sm).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (ia, ib) = ((255.0 * (1.0 - a)) as u8, (255.0 * (1.0 - b)) as u8);
        rgb.extend_from_slice(&[ib, ia, ib]);
    }
    (f.w as u32, f.h as u32, rgb)
}

/// The QC overlay of a pair at the second-finest level: fixed in magenta, moving (warped
/// onto the fixed grid) in green, grey where both have tissue.
fn overlay(fixed: &[Level], moving: &[Level], map0: &Affine) -> (u32, u32, Vec<u8>) {
    let l = 1.min(fixed.len() - 1);
    let down = Affine([0.5, 0.0, -0.25, 0.0, 0.5, -0.25]);
    let up = Affine([2.0, 0.0, 0.5, 0.0, 2.0, 0.5]);
    let map = if l == 1 {
        down.then_after(map0).then_after(&up)
    } else {
        *map0
    };
    let (f, m) = (&fixed[l].img, &moving[l].img);
    let mw = warp(m, &map, f.w, f.h);
    let scale = |g: &Gray| {
        let mut v: Vec<f32> = g.data.iter().copied().filter(|v| v.is_finite()).collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() * 99 / 100).copied().unwrap_or(1.0).max(1e-3)
    };
    let (sf, sm) = (scale(f), scale(&mw));
    let mut rgb = Vec::with_capacity(f.w * f.h * 3);
    for (a, b) in f.data.iter().zip(&mw.data) {
        let a = (a / sf).clamp(0.0, 1.0);
        let b = if b.is_finite() {
            (b / sm).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (ia, ib) = ((255.0 * (1.0 - a)) as u8, (255.0 * (1.0 - b)) as u8);
        rgb.extend_from_slice(&[ib, ia, ib]);
    }
    (f.w as u32, f.h as u32, rgb)
}

/// Write the transforms file (`path`) and the QC overlays beside it.
pub fn write_registration(reg: &SectionRegistration, path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (pair, (w, h, rgb)) in reg.file.pairs.iter().zip(&reg.overlays) {
        let p = dir.join(&pair.qc);
        image::RgbImage::from_raw(*w, *h, rgb.clone())
            .expect("overlay size")
            .save(&p)
            .map_err(|e| Error::bad_file(&p, format!("cannot write the QC image: {e}")))?;
    }
    let text = serde_json::to_string_pretty(&reg.file).expect("serialisable");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
