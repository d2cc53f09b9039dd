//! One section registered to another: an intensity-based Gauss-Newton fit (forward
//! compositional, with a linear intensity model and Huber weights, so stain strength,
//! folds and torn edges cost little) of a rigid, similarity or affine map, coarse to fine
//! over a pyramid of optical-density images, started from the best of a rotation sweep
//! about the tissue centroids.

use serde::{Deserialize, Serialize};

use super::affine::Affine;
use super::gray::Gray;

/// The degrees of freedom of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Motion {
    /// Rotation and translation.
    Rigid,
    /// Rotation, translation and one scale.
    Similarity,
    /// Any invertible linear map and translation (after a similarity fit).
    Affine,
}

impl Motion {
    fn n_params(self) -> usize {
        match self {
            Motion::Rigid => 3,
            Motion::Similarity => 4,
            Motion::Affine => 6,
        }
    }

    /// Parse `rigid`, `similarity` or `affine`.
    pub fn parse(s: &str) -> Option<Motion> {
        match s {
            "rigid" => Some(Motion::Rigid),
            "similarity" => Some(Motion::Similarity),
            "affine" => Some(Motion::Affine),
            _ => None,
        }
    }
}

/// One pyramid level: the optical density and its tissue mask.
pub(crate) struct Level {
    pub img: Gray,
    pub mask: Vec<bool>,
    /// Full-resolution pixels per level pixel.
    pub k: usize,
}

/// The result of one pair at the finest level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairFit {
    /// Fixed level index coordinates -> moving level index coordinates (finest level).
    pub map: Affine,
    /// Pearson correlation of the two optical densities inside the tissue of both.
    pub score: f64,
    /// Share of the smaller tissue area that lies on the other's tissue.
    pub overlap: f64,
}

/// `moving` sampled through `map` on `fixed`'s grid (NaN outside `moving`).
pub(crate) fn warp(moving: &Gray, map: &Affine, w: usize, h: usize) -> Gray {
    let mut out = Gray::new(w, h);
    let m = &map.0;
    for y in 0..h {
        let (yf, row) = (y as f64, &mut out.data[y * w..(y + 1) * w]);
        for (x, v) in row.iter_mut().enumerate() {
            let xf = x as f64;
            *v = moving
                .sample(m[0] * xf + m[1] * yf + m[2], m[3] * xf + m[4] * yf + m[5])
                .unwrap_or(f32::NAN);
        }
    }
    out
}

/// Pearson correlation of `a` and `b` over pixels where both are finite and `keep`.
pub(crate) fn ncc(a: &Gray, b: &Gray, keep: impl Fn(usize) -> bool) -> (f64, usize) {
    let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0usize, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
        if x.is_finite() && y.is_finite() && keep(i) {
            let (x, y) = (x as f64, y as f64);
            n += 1;
            sa += x;
            sb += y;
            saa += x * x;
            sbb += y * y;
            sab += x * y;
        }
    }
    if n < 16 {
        return (f64::NAN, n);
    }
    let nf = n as f64;
    let (va, vb) = (saa - sa * sa / nf, sbb - sb * sb / nf);
    if va <= 1e-12 || vb <= 1e-12 {
        return (0.0, n);
    }
    ((sab - sa * sb / nf) / (va * vb).sqrt(), n)
}

/// Solve the `n x n` system `a x = b` by Gaussian elimination with partial pivoting.
pub(crate) fn solve(n: usize, mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[p * n + c].abs() < 1e-300 {
            return None;
        }
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The small map `delta` of parameters `p` in coordinates centred on `c` and scaled by
/// `s` (so that every parameter moves a pixel about equally).
fn delta(motion: Motion, p: &[f64], c: [f64; 2], s: f64) -> Affine {
    let (l, t) = match motion {
        Motion::Rigid | Motion::Similarity => {
            let scale = if motion == Motion::Similarity {
                1.0 + p[3]
            } else {
                1.0
            };
            let (sn, cs) = p[0].sin_cos();
            (
                [scale * cs, -scale * sn, scale * sn, scale * cs],
                [p[1], p[2]],
            )
        }
        Motion::Affine => ([1.0 + p[0], p[1], p[3], 1.0 + p[4]], [p[2], p[5]]),
    };
    Affine([
        l[0],
        l[1],
        c[0] - l[0] * c[0] - l[1] * c[1] + s * t[0],
        l[2],
        l[3],
        c[1] - l[2] * c[0] - l[3] * c[1] + s * t[1],
    ])
}

/// d(delta)/dp at p = 0 for the point with centred, scaled coordinates `(u, v)`:
/// `(dx/dp, dy/dp)`, each `n_params` long (times `s`).
fn jacobian(motion: Motion, u: f64, v: f64, jx: &mut [f64; 6], jy: &mut [f64; 6]) {
    match motion {
        Motion::Rigid | Motion::Similarity => {
            *jx = [-v, 1.0, 0.0, u, 0.0, 0.0];
            *jy = [u, 0.0, 1.0, v, 0.0, 0.0];
        }
        Motion::Affine => {
            *jx = [u, v, 1.0, 0.0, 0.0, 0.0];
            *jy = [0.0, 0.0, 0.0, u, v, 1.0];
        }
    }
}

/// Gauss-Newton refinement of `map` (fixed -> moving, index coordinates of this level)
/// with `motion`'s parameters; returns the refined map and its correlation.
pub(crate) fn refine(
    fixed: &Gray,
    moving: &Gray,
    mut map: Affine,
    motion: Motion,
    iters: usize,
) -> (Affine, f64) {
    let (w, h) = (fixed.w, fixed.h);
    let n = motion.n_params();
    let c = [(w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0];
    let s = w.max(h) as f64 / 2.0;
    let mut mw = warp(moving, &map, w, h);
    let mut best = ncc(fixed, &mw, |_| true).0;
    for _ in 0..iters {
        let (gx, gy) = mw.gradients();
        // Intensity model: fixed ~ g * moving + o over the overlap.
        let (mut k, mut sm, mut sf, mut smm, mut smf) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&m, &f) in mw.data.iter().zip(&fixed.data) {
            if m.is_finite() {
                let (m, f) = (m as f64, f as f64);
                k += 1.0;
                sm += m;
                sf += f;
                smm += m * m;
                smf += m * f;
            }
        }
        if k < 64.0 || smm - sm * sm / k <= 1e-12 {
            break;
        }
        let g = (smf - sm * sf / k) / (smm - sm * sm / k);
        let o = (sf - g * sm) / k;
        // Robust scale of the residuals (mean absolute residual ~ 0.8 sigma).
        let mut abs_sum = 0.0;
        for (&m, &f) in mw.data.iter().zip(&fixed.data) {
            if m.is_finite() {
                abs_sum += (g * m as f64 + o - f as f64).abs();
            }
        }
        let huber = 1.345 * 1.25 * abs_sum / k + 1e-12;
        let mut hm = vec![0.0; n * n];
        let mut b = vec![0.0; n];
        let (mut jx, mut jy) = ([0.0; 6], [0.0; 6]);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (m, dx, dy) = (mw.data[i], gx.data[i], gy.data[i]);
                if !(m.is_finite() && dx.is_finite() && dy.is_finite()) {
                    continue;
                }
                let r = g * m as f64 + o - fixed.data[i] as f64;
                let wt = if r.abs() <= huber {
                    1.0
                } else {
                    huber / r.abs()
                };
                jacobian(
                    motion,
                    (x as f64 - c[0]) / s,
                    (y as f64 - c[1]) / s,
                    &mut jx,
                    &mut jy,
                );
                let mut j = [0.0; 6];
                for q in 0..n {
                    j[q] = g * s * (dx as f64 * jx[q] + dy as f64 * jy[q]);
                }
                for a in 0..n {
                    b[a] += wt * j[a] * r;
                    for bb in a..n {
                        hm[a * n + bb] += wt * j[a] * j[bb];
                    }
                }
            }
        }
        for a in 0..n {
            for bb in 0..a {
                hm[a * n + bb] = hm[bb * n + a];
            }
            hm[a * n + a] *= 1.0 + 1e-3;
        }
        let Some(step) = solve(n, hm, b.iter().map(|v| -v).collect()) else {
            break;
        };
        // Try the step, halving it while the correlation falls.
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..4 {
            let p: Vec<f64> = step.iter().map(|v| v * t).collect();
            let cand = map.then_after(&delta(motion, &p, c, s));
            let cw = warp(moving, &cand, w, h);
            let sc = ncc(fixed, &cw, |_| true).0;
            if sc.is_finite() && (sc >= best || !best.is_finite()) {
                let shift = corner_shift(&map, &cand, w, h);
                map = cand;
                mw = cw;
                best = sc;
                moved = shift > 0.02;
                break;
            }
            t *= 0.5;
        }
        if !moved {
            break;
        }
    }
    (map, best)
}

/// Largest displacement between two maps over the image's corners.
fn corner_shift(a: &Affine, b: &Affine, w: usize, h: usize) -> f64 {
    [
        [0.0, 0.0],
        [w as f64, 0.0],
        [0.0, h as f64],
        [w as f64, h as f64],
    ]
    .iter()
    .map(|&p| {
        let (u, v) = (a.apply(p), b.apply(p));
        ((u[0] - v[0]).powi(2) + (u[1] - v[1]).powi(2)).sqrt()
    })
    .fold(0.0, f64::max)
}

/// Tissue centroid of a level (index coordinates).
fn centroid(l: &Level) -> [f64; 2] {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
    for (i, &m) in l.mask.iter().enumerate() {
        if m {
            sx += (i % l.img.w) as f64;
            sy += (i / l.img.w) as f64;
            n += 1.0;
        }
    }
    if n == 0.0 {
        [l.img.w as f64 / 2.0, l.img.h as f64 / 2.0]
    } else {
        [sx / n, sy / n]
    }
}

/// Register `moving` to `fixed` (pyramids finest level first, one scale for both):
/// rotation sweep at the coarsest level, then `motion` refined level by level (rigid
/// first; similarity, then affine, at the two finest levels when asked for).
pub(crate) fn register_pair(fixed: &[Level], moving: &[Level], motion: Motion) -> PairFit {
    let top = fixed.len() - 1;
    let (fc, mc) = (&fixed[top], &moving[top]);
    let (fb, mb) = (fc.img.blur(1.5), mc.img.blur(1.5));
    let (cf, cm) = (centroid(fc), centroid(mc));
    // Rotation sweep: moving rotated about its centroid onto the fixed centroid.
    let mut sweep: Vec<(f64, f64)> = (0..120)
        .map(|i| {
            let deg = i as f64 * 3.0;
            let map = Affine::similarity(deg, 1.0, cf, [cm[0] - cf[0], cm[1] - cf[1]]);
            (ncc(&fb, &warp(&mb, &map, fb.w, fb.h), |_| true).0, deg)
        })
        .filter(|(s, _)| s.is_finite())
        .collect();
    sweep.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut starts: Vec<f64> = Vec::new();
    for &(_, deg) in &sweep {
        let far = |d: f64| {
            let diff = (deg - d).rem_euclid(360.0);
            diff.min(360.0 - diff) > 15.0
        };
        if starts.iter().all(|&d| far(d)) {
            starts.push(deg);
        }
        if starts.len() == 3 {
            break;
        }
    }
    let mut best: Option<(Affine, f64)> = None;
    for deg in starts {
        let map = Affine::similarity(deg, 1.0, cf, [cm[0] - cf[0], cm[1] - cf[1]]);
        let (m1, _) = refine(&fb, &mb, map, Motion::Rigid, 30);
        let (m2, sc) = refine(&fc.img, &mc.img, m1, Motion::Rigid, 30);
        if best.is_none_or(|(_, b)| sc > b) {
            best = Some((m2, sc));
        }
    }
    let mut map = best.map(|b| b.0).unwrap_or(Affine::IDENTITY);
    // Down the pyramid: the map between index coordinates of level l+1 to level l:
    // x_l = 2 x_{l+1} + 0.5 (block means of 2 x 2).
    for l in (0..top).rev() {
        let up = Affine([2.0, 0.0, 0.5, 0.0, 2.0, 0.5]);
        map = up
            .then_after(&map)
            .then_after(&up.inverse().expect("scaling"));
        let (f, m) = (&fixed[l].img, &moving[l].img);
        map = refine(f, m, map, Motion::Rigid, 20).0;
        if l <= 1 && motion != Motion::Rigid {
            map = refine(f, m, map, Motion::Similarity, 20).0;
            if motion == Motion::Affine {
                map = refine(f, m, map, Motion::Affine, 20).0;
            }
        }
    }
    let (f, m) = (&fixed[0], &moving[0]);
    let mw = warp(&m.img, &map, f.img.w, f.img.h);
    let mt = threshold_of(m);
    // Scored inside the tissue of both: the outline alone (which unrelated tissues of
    // similar shape share) does not count.
    let score = ncc(&f.img, &mw, |i| f.mask[i] && mw.data[i] > mt).0;
    let (mut both, mut nf, mut nm) = (0.0, 0.0, 0.0);
    for (i, &v) in mw.data.iter().enumerate() {
        let on_m = v.is_finite() && v > mt;
        nf += f.mask[i] as u8 as f64;
        nm += on_m as u8 as f64;
        both += (f.mask[i] && on_m) as u8 as f64;
    }
    PairFit {
        map,
        score: if score.is_finite() { score } else { 0.0 },
        overlap: if nf.min(nm) > 0.0 {
            both / nf.min(nm)
        } else {
            0.0
        },
    }
}

/// The level's tissue threshold: the smallest optical density inside its mask.
pub(crate) fn threshold_of(l: &Level) -> f32 {
    l.img
        .data
        .iter()
        .zip(&l.mask)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .fold(f32::MAX, f32::min)
}
