//! A section registered to the plane of a 3D volume it was cut from, across modalities
//! (H&E colour against microCT grey values): both are compared as normalised gradient
//! fields (Haber & Modersitzki), which ask only that edges lie in the same places and
//! directions, whatever their contrast or sign. A coarse exhaustive search (depth, tilt,
//! in-plane rotation; translation by FFT cross-correlation) finds the start, and a
//! Nelder-Mead fit of all seven parameters refines it at two finer levels.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::gray::{Gray, read_density};
use super::plane::{PLANE_FORMAT, Plane, PlaneFile};
use crate::error::{Error, Result};
use crate::volume::VolumeSource;

/// Settings of [`register_section_to_volume`].
#[derive(Debug, Clone)]
pub struct PlaneOptions {
    /// Section pixel size in micrometres.
    pub um_per_px: f64,
    /// Volume voxel edge in micrometres (isotropic).
    pub um_per_voxel: f64,
    /// Largest tilt searched, degrees (default 10).
    pub max_tilt_deg: f64,
    /// A fit scoring below this fails (default 0.3).
    pub min_score: f64,
}

impl PlaneOptions {
    /// Defaults for a section of `um_per_px` and a volume of `um_per_voxel`.
    pub fn new(um_per_px: f64, um_per_voxel: f64) -> PlaneOptions {
        PlaneOptions {
            um_per_px,
            um_per_voxel,
            max_tilt_deg: 10.0,
            min_score: 0.3,
        }
    }
}

/// A 3D grey volume in memory, index coordinates `(x, y, z)`.
pub(crate) struct Vol3 {
    pub n: [usize; 3], // x, y, z
    pub data: Vec<f32>,
}

impl Vol3 {
    /// Read every slice of `src` (channels averaged).
    pub fn read(src: &mut dyn VolumeSource) -> Result<Vol3> {
        let info = src.info().clone();
        let [nz, ny, nx] = info.shape;
        crate::limits::alloc_bytes(
            &info.source,
            &[nz as u64, ny as u64, nx as u64],
            4,
            "the volume in memory for registration",
        )?;
        let mut data = Vec::with_capacity(nz * ny * nx);
        for z in 0..nz {
            let s = src.read_slice(z)?;
            let plane = s.h * s.w;
            for i in 0..plane {
                let v: f32 = (0..s.channels).map(|c| s.data[c * plane + i]).sum();
                data.push(v / s.channels as f32);
            }
        }
        Ok(Vol3 {
            n: [nx, ny, nz],
            data,
        })
    }

    /// Mean over `k x k x k` blocks, then a light smoothing of each slice.
    pub fn block_mean(&self, k: usize) -> Vol3 {
        let [nx, ny, nz] = self.n;
        let m = [(nx / k).max(1), (ny / k).max(1), (nz / k).max(1)];
        let mut data = vec![0f32; m[0] * m[1] * m[2]];
        for z in 0..m[2] {
            for y in 0..m[1] {
                for x in 0..m[0] {
                    let mut s = 0.0;
                    let mut c = 0.0;
                    for zz in z * k..((z + 1) * k).min(nz) {
                        for yy in y * k..((y + 1) * k).min(ny) {
                            let row = (zz * ny + yy) * nx;
                            for xx in x * k..((x + 1) * k).min(nx) {
                                s += self.data[row + xx];
                                c += 1.0;
                            }
                        }
                    }
                    data[(z * m[1] + y) * m[0] + x] = s / c;
                }
            }
        }
        Vol3 { n: m, data }
    }

    /// Trilinear value at index coordinates; `None` outside.
    #[inline]
    pub fn sample(&self, p: [f64; 3]) -> Option<f32> {
        let [nx, ny, nz] = self.n;
        let inside = |v: f64, n: usize| v > -0.5 && v < n as f64 - 0.5;
        if !(inside(p[0], nx) && inside(p[1], ny) && inside(p[2], nz)) {
            return None;
        }
        let c = |v: f64, n: usize| {
            let v = v.clamp(0.0, (n - 1) as f64);
            let i = v.floor() as usize;
            (i, (i + 1).min(n - 1), (v - i as f64) as f32)
        };
        let (x0, x1, tx) = c(p[0], nx);
        let (y0, y1, ty) = c(p[1], ny);
        let (z0, z1, tz) = c(p[2], nz);
        let at = |x: usize, y: usize, z: usize| self.data[(z * ny + y) * nx + x];
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let plane = |z: usize| {
            lerp(
                lerp(at(x0, y0, z), at(x1, y0, z), tx),
                lerp(at(x0, y1, z), at(x1, y1, z), tx),
                ty,
            )
        };
        Some(lerp(plane(z0), plane(z1), tz))
    }
}

/// The orientation field of `g`: its normalised gradient `n = grad / sqrt(|grad|^2 +
/// eps^2)` (`eps` half the mean gradient length) in the double-angle form
/// `(nx^2 - ny^2, 2 nx ny)`, which is the same for opposite gradients (contrast
/// inverted between modalities); NaN where `g` is. `(a . b)^2 - |a|^2 |b|^2 / 2` of two
/// normalised gradients is half the dot product of their double-angle forms, so a
/// correlation of these fields scores edges in the same places and directions, with
/// textured regions not favoured over smooth ones.
fn orientation(g: &Gray) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = (g.w, g.h);
    let (mut gx, mut gy) = (vec![f32::NAN; w * h], vec![f32::NAN; w * h]);
    let (mut sum, mut n) = (0f64, 0usize);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let i = y * w + x;
            let dx = 0.5 * (g.data[i + 1] - g.data[i - 1]);
            let dy = 0.5 * (g.data[i + w] - g.data[i - w]);
            if dx.is_finite() && dy.is_finite() {
                gx[i] = dx;
                gy[i] = dy;
                sum += ((dx * dx + dy * dy) as f64).sqrt();
                n += 1;
            }
        }
    }
    let eps2 = ((0.5 * sum / n.max(1) as f64) as f32 + 1e-12).powi(2);
    for (x, y) in gx.iter_mut().zip(gy.iter_mut()) {
        let d = *x * *x + *y * *y + eps2;
        let (a, b) = ((*x * *x - *y * *y) / d, 2.0 * *x * *y / d);
        *x = a;
        *y = b;
    }
    (gx, gy)
}

/// Weighted correlation of two orientation fields over the pixels where `weight > 0`
/// (`b` undefined there counts as no match): 1 for the same edges everywhere, about 0
/// for unrelated images.
fn orientation_similarity(
    a: &(Vec<f32>, Vec<f32>),
    b: &(Vec<f32>, Vec<f32>),
    weight: &[f32],
) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (i, &w) in weight.iter().enumerate() {
        if !(w > 0.0 && a.0[i].is_finite()) {
            continue;
        }
        // Section tissue off the volume counts against the fit.
        aa += (w * (a.0[i] * a.0[i] + a.1[i] * a.1[i])) as f64;
        if b.0[i].is_finite() {
            ab += (w * (a.0[i] * b.0[i] + a.1[i] * b.1[i])) as f64;
            bb += (w * (b.0[i] * b.0[i] + b.1[i] * b.1[i])) as f64;
        }
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// The section at one working level: optical density, its gradient field, tissue weight.
struct SectionLevel {
    img: Gray,
    field: (Vec<f32>, Vec<f32>),
    weight: Vec<f32>,
    /// Section pixels per level pixel.
    k: usize,
}

impl SectionLevel {
    fn new(full: &Gray, k0: usize, k: usize, threshold: f32) -> SectionLevel {
        let img = full.block_mean(k / k0).blur(1.0);
        let field = orientation(&img);
        let weight = img
            .data
            .iter()
            .map(|&v| (v > threshold) as u8 as f32)
            .collect();
        SectionLevel {
            img,
            field,
            weight,
            k,
        }
    }
}

/// The plane in the index coordinates of a level whose section pixels are `ks` full
/// pixels and whose voxels are `kv` full voxels.
fn at_level(p: &Plane, ks: f64, kv: f64) -> Plane {
    Plane {
        origin: p.origin.map(|o| (o + 0.5) / kv - 0.5),
        centre: p.centre.map(|c| (c + 0.5) / ks - 0.5),
        um_per_px: p.um_per_px * ks,
        voxel_um: p.voxel_um.map(|v| v * kv),
        ..*p
    }
}

/// The similarity of a section level and the volume level on `plane` (full-resolution
/// coordinates; `kv` full voxels per level voxel).
fn score_plane(sec: &SectionLevel, vol: &Vol3, plane: &Plane, kv: usize) -> f64 {
    let lp = at_level(plane, sec.k as f64, kv as f64);
    let m = lp.matrix();
    let (w, h) = (sec.img.w, sec.img.h);
    let mut v = Gray::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (u, vv) = (x as f64, y as f64);
            let p = std::array::from_fn(|i| m[i][0] * u + m[i][1] * vv + m[i][2]);
            v.data[y * w + x] = vol.sample(p).unwrap_or(f32::NAN);
        }
    }
    orientation_similarity(&sec.field, &orientation(&v), &sec.weight)
}

/// Nelder-Mead minimisation of `f` from `x0` with initial steps `step`.
fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    x0: &[f64],
    step: &[f64],
    iters: usize,
) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut pts: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    pts.push((x0.to_vec(), f(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += step[i];
        let fx = f(&x);
        pts.push((x, fx));
    }
    for _ in 0..iters {
        pts.sort_by(|a, b| a.1.total_cmp(&b.1));
        let centroid: Vec<f64> = (0..n)
            .map(|j| pts[..n].iter().map(|p| p.0[j]).sum::<f64>() / n as f64)
            .collect();
        let worst = pts[n].clone();
        let along = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (worst.0[j] - centroid[j]))
                .collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        if fr < pts[0].1 {
            let xe = along(-2.0);
            let fe = f(&xe);
            pts[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < pts[n - 1].1 {
            pts[n] = (xr, fr);
        } else {
            let xc = along(if fr < worst.1 { -0.5 } else { 0.5 });
            let fc = f(&xc);
            if fc < worst.1.min(fr) {
                pts[n] = (xc, fc);
            } else {
                let best = pts[0].0.clone();
                for p in pts.iter_mut().skip(1) {
                    p.0 = (0..n).map(|j| best[j] + 0.5 * (p.0[j] - best[j])).collect();
                    p.1 = f(&p.0);
                }
            }
        }
    }
    pts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, fx) = pts.swap_remove(0);
    (x, fx)
}

/// 2D FFT helper on `n x n` complex buffers.
struct Fft2 {
    n: usize,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
}

impl Fft2 {
    fn new(n: usize) -> Fft2 {
        let mut p = FftPlanner::new();
        Fft2 {
            n,
            fwd: p.plan_fft_forward(n),
            inv: p.plan_fft_inverse(n),
        }
    }

    fn run(&self, buf: &mut [Complex32], inverse: bool) {
        let n = self.n;
        let f = if inverse { &self.inv } else { &self.fwd };
        f.process(buf); // rows
        let mut col = vec![Complex32::default(); n];
        for x in 0..n {
            for y in 0..n {
                col[y] = buf[y * n + x];
            }
            f.process(&mut col);
            for y in 0..n {
                buf[y * n + x] = col[y];
            }
        }
    }

    /// The two channels of an orientation field (times `weight`) and its energy
    /// `|field|^2` (times `weight`), or the weight itself (`energy = false`), on the
    /// `n x n` canvas, transformed.
    fn terms(
        &self,
        field: &(Vec<f32>, Vec<f32>),
        w: usize,
        h: usize,
        weight: Option<&[f32]>,
        energy: bool,
    ) -> [Vec<Complex32>; 3] {
        let n = self.n;
        std::array::from_fn(|t| {
            let mut buf = vec![Complex32::default(); n * n];
            for y in 0..h.min(n) {
                for x in 0..w.min(n) {
                    let i = y * w + x;
                    let (a, b) = (field.0[i], field.1[i]);
                    let wt = weight.map_or(1.0, |wv| wv[i]);
                    if a.is_finite() && b.is_finite() && wt > 0.0 {
                        let v = match t {
                            0 => a,
                            1 => b,
                            _ if energy => a * a + b * b,
                            _ => 1.0,
                        };
                        buf[y * n + x] = Complex32::new(wt * v, 0.0);
                    }
                }
            }
            self.run(&mut buf, false);
            buf
        })
    }
}

/// A rotated section's transformed terms and its orientation energy.
type Rotated = ([Vec<Complex32>; 3], f64);

/// One coarse candidate: score, depth (coarse voxel), tilts, rotation, shift.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f64,
    depth: f64,
    tilt: [f64; 2],
    rot: f64,
    shift: [isize; 2],
}

/// Register a section image to the plane of `volume` it was cut from: depth, tilt,
/// in-plane rotation, translation and scale. `volume_path` only names the volume in the
/// result. A fit scoring below `opts.min_score` is an [`Error::RegistrationFailed`].
pub fn register_section_to_volume(
    volume: &mut dyn VolumeSource,
    volume_path: &Path,
    image: &Path,
    opts: &PlaneOptions,
) -> Result<PlaneFile> {
    let t0 = std::time::Instant::now();
    crate::limits::um_arg("um_per_px", opts.um_per_px)?;
    crate::limits::um_arg("um_per_voxel", opts.um_per_voxel)?;
    crate::limits::float_arg("max_tilt_deg", opts.max_tilt_deg, 0.0, 45.0)?;
    crate::limits::float_arg("min_score", opts.min_score, 0.0, 1.0)?;
    let vol = Vol3::read(volume)?;
    let vu = opts.um_per_voxel;
    // The section at working resolution: about one voxel per pixel at the finest level.
    let k0 = ((vu / opts.um_per_px).round() as usize).max(1);
    let (sec, full_size) = read_density(image, k0)?;
    let threshold = sec.blur(2.0).otsu();
    let tissue = sec.data.iter().filter(|&&v| v > threshold).count();
    if tissue < 64 {
        return Err(Error::bad_file(
            image,
            "no tissue found in the section image",
        ));
    }
    let centre = [
        (full_size[0] as f64 - 1.0) / 2.0,
        (full_size[1] as f64 - 1.0) / 2.0,
    ];
    let base = Plane {
        origin: [0.0; 3],
        tilt_deg: [0.0, 0.0],
        rotation_deg: 0.0,
        scale: 1.0,
        centre,
        um_per_px: opts.um_per_px,
        voxel_um: [vu; 3],
    };
    // Coarse: 4 voxels per level voxel.
    let kc = 4usize.min(vol.n[2].max(1));
    let vc = vol.block_mean(kc);
    let sc = SectionLevel::new(&sec, k0, k0 * kc, threshold);
    let cands = coarse_search(&vc, &sc, opts);
    let to_plane = |c: &Candidate| -> Plane {
        // Slice pixel (i, j) of the coarse plane through the volume's centre column at
        // depth c.depth; the section's centre sits at canvas centre + shift.
        let [nx, ny, _] = vc.n;
        let (ci, cj) = ((nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0);
        let p = Plane {
            tilt_deg: c.tilt,
            rotation_deg: c.rot,
            ..base
        };
        let [e1, e2, _] = p.axes();
        let m = sc.img.w.max(sc.img.h);
        let cc = canvas_size(m) as f64 / 2.0;
        let (di, dj) = (cc + c.shift[0] as f64 - ci, cc + c.shift[1] as f64 - cj);
        let kcf = kc as f64;
        let centre_full = [
            (ci + 0.5) * kcf - 0.5,
            (cj + 0.5) * kcf - 0.5,
            (c.depth + 0.5) * kcf - 0.5,
        ];
        Plane {
            origin: std::array::from_fn(|a| centre_full[a] + (di * e1[a] + dj * e2[a]) * kcf),
            ..p
        }
    };
    // Fine: Nelder-Mead over (origin, tilts, rotation, log scale) at two levels.
    let v2 = vol.block_mean(2);
    let levels: [(SectionLevel, &Vol3, usize); 2] = [
        (SectionLevel::new(&sec, k0, k0 * 2, threshold), &v2, 2),
        (SectionLevel::new(&sec, k0, k0, threshold), &vol, 1),
    ];
    let params = |p: &Plane| {
        vec![
            p.origin[0],
            p.origin[1],
            p.origin[2],
            p.tilt_deg[0],
            p.tilt_deg[1],
            p.rotation_deg,
            p.scale.ln(),
        ]
    };
    let from = |x: &[f64]| Plane {
        origin: [x[0], x[1], x[2]],
        tilt_deg: [x[3], x[4]],
        rotation_deg: x[5],
        scale: x[6].exp(),
        ..base
    };
    let fits: Vec<(Plane, f64)> = cands
        .par_iter()
        .map(|c| {
            let mut p = to_plane(c);
            let mut s = 0.0;
            for (sl, vl, kv) in &levels {
                let f = |x: &[f64]| -score_plane(sl, vl, &from(x), *kv);
                let step = [
                    2.0 * *kv as f64,
                    2.0 * *kv as f64,
                    1.0 * *kv as f64,
                    1.0,
                    1.0,
                    2.0,
                    0.02,
                ];
                let (x, fx) = nelder_mead(&f, &params(&p), &step, 250);
                let (x, fx) = {
                    let (x2, f2) = nelder_mead(&f, &x, &step.map(|v| v * 0.3), 150);
                    if f2 < fx { (x2, f2) } else { (x, fx) }
                };
                p = from(&x);
                s = -fx;
            }
            (p, s)
        })
        .collect();
    let (plane, score) = fits
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one candidate");
    if score < opts.min_score || !plane.matrix().iter().flatten().all(|v| v.is_finite()) {
        return Err(Error::RegistrationFailed {
            moving: image.to_path_buf(),
            fixed: volume_path.to_path_buf(),
            score,
            overlap: 0.0,
            message: format!(
                "no plane of the volume matches the section: score {score:.3} is below the minimum {}",
                opts.min_score
            ),
        });
    }
    Ok(PlaneFile {
        format: PLANE_FORMAT.into(),
        volume: volume_path.to_path_buf(),
        image: image.to_path_buf(),
        matrix: plane.matrix(),
        depth_um: plane.depth_um(),
        tilt_total_deg: plane.tilt_total_deg(),
        plane,
        score,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// FFT canvas side for a section of side `m` (coarse pixels): the section's diagonal.
fn canvas_size(m: usize) -> usize {
    ((m as f64) * std::f64::consts::SQRT_2).ceil() as usize + 2
}

/// The coarse search: the section's gradient field rotated in 6-degree steps, matched by
/// FFT cross-correlation against oblique slices of the coarse volume, first untilted at
/// every depth, then over a tilt grid around the best few; best first.
fn coarse_search(vc: &Vol3, sc: &SectionLevel, opts: &PlaneOptions) -> Vec<Candidate> {
    let [nx, ny, nz] = vc.n;
    let m = sc.img.w.max(sc.img.h);
    let cs = canvas_size(m);
    let n = (nx.max(ny) + cs).next_power_of_two();
    let fft = Fft2::new(n);
    let (cu, cv) = ((sc.img.w as f64 - 1.0) / 2.0, (sc.img.h as f64 - 1.0) / 2.0);
    // Rotated sections on the canvas, section centre at the canvas centre.
    let rotated = |deg: f64| -> Rotated {
        let (s, c) = deg.to_radians().sin_cos();
        let mut g = Gray::new(cs, cs);
        let mut wt = vec![0f32; cs * cs];
        let cc = cs as f64 / 2.0;
        for y in 0..cs {
            for x in 0..cs {
                let (dx, dy) = (x as f64 - cc, y as f64 - cc);
                // canvas = R q  =>  q = R^T canvas.
                let (u, v) = (c * dx + s * dy + cu, -s * dx + c * dy + cv);
                let i = y * cs + x;
                match sc.img.sample(u, v) {
                    Some(val) => {
                        g.data[i] = val;
                        let (ui, vi) = (u.round() as usize, v.round() as usize);
                        wt[i] = sc.weight[vi.min(sc.img.h - 1) * sc.img.w + ui.min(sc.img.w - 1)];
                    }
                    None => g.data[i] = f32::NAN,
                }
            }
        }
        let field = orientation(&g);
        let energy: f64 = (0..cs * cs)
            .filter(|&i| field.0[i].is_finite() && wt[i] > 0.0)
            .map(|i| (wt[i] * (field.0[i] * field.0[i] + field.1[i] * field.1[i])) as f64)
            .sum();
        (
            fft.terms(&field, cs, cs, Some(&wt), false),
            energy.max(1e-12),
        )
    };
    let slice = |depth: f64, tilt: [f64; 2]| -> [Vec<Complex32>; 3] {
        let p = Plane {
            origin: [0.0; 3],
            tilt_deg: tilt,
            rotation_deg: 0.0,
            scale: 1.0,
            centre: [0.0; 2],
            um_per_px: 1.0,
            voxel_um: [1.0; 3],
        };
        let [e1, e2, _] = p.axes();
        let (ci, cj) = ((nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0);
        let mut g = Gray::new(nx, ny);
        for j in 0..ny {
            for i in 0..nx {
                let (di, dj) = (i as f64 - ci, j as f64 - cj);
                let q = [
                    ci + di * e1[0] + dj * e2[0],
                    cj + di * e1[1] + dj * e2[1],
                    depth + di * e1[2] + dj * e2[2],
                ];
                g.data[j * nx + i] = vc.sample(q).unwrap_or(f32::NAN);
            }
        }
        fft.terms(&orientation(&g), nx, ny, None, true)
    };
    // Section terms: (a1 w, a2 w, w); slice terms: (b1, b2, |b|^2). Per shift: the
    // correlation sum(w a.b) / sqrt(sum(w |a|^2) sum(w |b|^2)).
    let best_shift =
        |s: &[Vec<Complex32>; 3], s_energy: f64, v: &[Vec<Complex32>; 3]| -> (f64, [isize; 2]) {
            let mut num = vec![Complex32::default(); n * n];
            let mut den = vec![Complex32::default(); n * n];
            for i in 0..n * n {
                num[i] = s[0][i].conj() * v[0][i] + s[1][i].conj() * v[1][i];
                den[i] = s[2][i].conj() * v[2][i];
            }
            fft.run(&mut num, true);
            fft.run(&mut den, true);
            let (lo_x, hi_x) = (-(cs as isize) / 4, nx as isize - 3 * cs as isize / 4);
            let (lo_y, hi_y) = (-(cs as isize) / 4, ny as isize - 3 * cs as isize / 4);
            let mut best = (f64::MIN, [0isize; 2]);
            for sy in lo_y..=hi_y.max(lo_y) {
                for sx in lo_x..=hi_x.max(lo_x) {
                    let (ix, iy) = (
                        sx.rem_euclid(n as isize) as usize,
                        sy.rem_euclid(n as isize) as usize,
                    );
                    // The inverse transforms are unnormalised: both sums carry a factor n^2.
                    let scale = (n * n) as f64;
                    let e = den[iy * n + ix].re as f64 / scale;
                    if e <= 1e-6 {
                        continue;
                    }
                    let v = num[iy * n + ix].re as f64 / scale / (e * s_energy).sqrt();
                    if v > best.0 {
                        best = (v, [sx, sy]);
                    }
                }
            }
            (best.0, best.1)
        };
    let rots: Vec<f64> = (0..60).map(|i| i as f64 * 6.0).collect();
    let rot_terms: Vec<Rotated> = rots.iter().map(|&d| rotated(d)).collect();
    // Stage A: untilted, every coarse depth.
    let mut found: Vec<Candidate> = (0..nz)
        .into_par_iter()
        .flat_map_iter(|d| {
            let v = slice(d as f64, [0.0, 0.0]);
            rots.iter()
                .zip(&rot_terms)
                .map(|(r, st)| {
                    let (score, shift) = best_shift(&st.0, st.1, &v);
                    Candidate {
                        score,
                        depth: d as f64,
                        tilt: [0.0, 0.0],
                        rot: *r,
                        shift,
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut seeds: Vec<Candidate> = Vec::new();
    for c in &found {
        let near = seeds.iter().any(|s| {
            let dr = (s.rot - c.rot).rem_euclid(360.0);
            (s.depth - c.depth).abs() < 2.0 && dr.min(360.0 - dr) < 13.0
        });
        if !near {
            seeds.push(*c);
        }
        if seeds.len() == 4 {
            break;
        }
    }
    // Stage B: a tilt grid, neighbouring depths and rotations around each seed.
    let t = opts.max_tilt_deg;
    let tilts: Vec<f64> = [-1.0, -0.5, 0.0, 0.5, 1.0].iter().map(|f| f * t).collect();
    let mut out: Vec<Candidate> = seeds
        .par_iter()
        .map(|s| {
            let mut best = *s;
            let turns: Vec<(f64, Rotated)> = [-6.0, 0.0, 6.0]
                .iter()
                .map(|dr| (s.rot + dr, rotated(s.rot + dr)))
                .collect();
            for &a in &tilts {
                for &b in &tilts {
                    for dd in [-1.0, 0.0, 1.0] {
                        let depth = s.depth + dd;
                        if depth < 0.0 || depth > (nz - 1) as f64 {
                            continue;
                        }
                        let v = slice(depth, [a, b]);
                        for (rot, st) in &turns {
                            let rot = *rot;
                            let (score, shift) = best_shift(&st.0, st.1, &v);
                            if score > best.score {
                                best = Candidate {
                                    score,
                                    depth,
                                    tilt: [a, b],
                                    rot,
                                    shift,
                                };
                            }
                        }
                    }
                }
            }
            best
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    // The fine fit starts from the best tilted candidates and, as tilts near the
    // volume's faces can mislead the coarse score, from their untilted seeds too.
    out.truncate(3);
    let untilted: Vec<Candidate> = seeds.iter().take(3).copied().collect();
    out.extend(untilted);
    for c in &seeds {
        log::debug!("section-to-volume coarse seed {c:?}");
    }
    for c in &out {
        log::debug!("section-to-volume fine-fit start {c:?}");
    }
    out
}
