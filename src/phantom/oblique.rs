//! H&E sections cut on oblique planes through the phantom volume, with their spots: the
//! truth against which a section-to-volume registration is scored.
//!
//! Section `i` is a square of `side` pixels at 4 um per pixel whose plane (drawn from
//! the seed) has a random centre, a tilt of up to 10 degrees in a random direction, a
//! random in-plane rotation and a scale of 0.92-1.08 (tissue shrinkage or swelling).
//! Each pixel averages four samples across the 16-um section thickness; a sample's
//! colour is a function of the compartment label and the microCT intensity there
//! (nuclei bright in microCT are dark purple in H&E, fat membranes pink, lumens white),
//! so the two modalities share edges but not intensities. A per-section stain strength
//! (+-5% per channel) and pixel noise (sd 5) are added. Spots lie on the section's own
//! 200-um grid and are measured over their disc and the section thickness as the
//! axis-aligned planes' spots are.

use rand::Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use super::noise::{S_OBLIQUE, rng};
use super::spots::{Spot, express, spot_axis};
use super::{IMMUNE_RADIUS, SPOT_RADIUS, VOXEL_UM};
use crate::register::Plane;

/// Largest tilt of an oblique section, degrees.
pub const MAX_TILT_DEG: f64 = 10.0;

/// One oblique section: its plane (the truth), image and spots.
pub(crate) struct Oblique {
    pub plane: Plane,
    pub side: usize,
    pub rgb: Vec<u8>,
    pub spots: Vec<Spot>,
}

/// The truth of one oblique section as recorded in `phantom.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ObliqueTruth {
    /// The section image (relative to the phantom directory).
    pub image: String,
    /// Its spots (wide Parquet as `spots.parquet`, x / y in section pixels).
    pub spots: String,
    /// The plane the section was cut on.
    pub plane: Plane,
    /// Section pixel `(u, v, 1)` -> voxel `(x, y, z)`.
    pub matrix: [[f64; 3]; 3],
    /// Depth of the section's centre, micrometres.
    pub depth_um: f64,
    /// Angle of the section's normal to the z axis, degrees.
    pub tilt_total_deg: f64,
}

/// The plane of oblique section `i` in a volume of `shape` (z, y, x).
pub(crate) fn draw_plane(seed: u64, i: usize, shape: [usize; 3], side: usize) -> Plane {
    let [nz, ny, nx] = shape;
    let mut r = rng(seed, S_OBLIQUE, i as i64, 0, 0);
    let tilt = MAX_TILT_DEG * r.random::<f64>();
    let dir = std::f64::consts::TAU * r.random::<f64>();
    let rotation_deg = 360.0 * r.random::<f64>();
    let scale = 0.92 + 0.16 * r.random::<f64>();
    let half = side as f64 * scale * std::f64::consts::FRAC_1_SQRT_2;
    let span = |n: usize, lo: f64, u: f64| {
        let (a, b) = (lo, n as f64 - 1.0 - lo);
        if b > a {
            a + (b - a) * u
        } else {
            (n as f64 - 1.0) / 2.0
        }
    };
    let rise = half * tilt.to_radians().sin() + 2.0;
    Plane {
        origin: [
            span(nx, half + 2.0, r.random()),
            span(ny, half + 2.0, r.random()),
            span(nz, rise, r.random()),
        ],
        tilt_deg: [tilt * dir.cos(), tilt * dir.sin()],
        rotation_deg,
        scale,
        centre: [(side as f64 - 1.0) / 2.0; 2],
        um_per_px: VOXEL_UM,
        voxel_um: [VOXEL_UM; 3],
    }
}

/// H&E colour of a sample of compartment `label` and microCT intensity `v`.
fn he_colour(label: u8, v: f32) -> [f32; 3] {
    let lerp = |a: [f32; 3], b: [f32; 3], t: f32| -> [f32; 3] {
        let t = t.clamp(0.0, 1.0);
        std::array::from_fn(|i| a[i] + (b[i] - a[i]) * t)
    };
    match label {
        0 => [245.0, 245.0, 246.0],
        1 if v < 80.0 => [248.0, 246.0, 248.0],
        1 if v < 120.0 => [238.0, 196.0, 218.0],
        1 => lerp(
            [150.0, 95.0, 172.0],
            [90.0, 60.0, 140.0],
            (v - 172.0) / 35.0,
        ),
        2 => lerp(
            [205.0, 128.0, 182.0],
            [90.0, 60.0, 140.0],
            (v - 150.0) / 70.0,
        ),
        3 => lerp(
            [238.0, 168.0, 200.0],
            [218.0, 124.0, 176.0],
            (v - 106.0) / 48.0,
        ),
        _ => lerp(
            [250.0, 244.0, 247.0],
            [222.0, 140.0, 182.0],
            (v - 82.0) / 100.0,
        ),
    }
}

/// Side in pixels of the oblique sections of a volume of `shape`: two fifths of the
/// smaller of Y and X (at least 32).
pub(crate) fn side(shape: [usize; 3]) -> usize {
    (shape[1].min(shape[2]) * 2 / 5).max(32)
}

/// Render oblique section `i` and measure its spots.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render(
    seed: u64,
    i: usize,
    shape: [usize; 3],
    side: usize,
    volume: &[u8],
    labels: &[u8],
    boxsum: &[u16],
    programs: &[Vec<f64>],
) -> Oblique {
    let [nz, ny, nx] = shape;
    let plane = draw_plane(seed, i, shape, side);
    let m = plane.matrix();
    let n = plane.axes()[2];
    let at = |u: f64, v: f64, t: f64| -> [f64; 3] {
        std::array::from_fn(|a| m[a][0] * u + m[a][1] * v + m[a][2] + t * n[a])
    };
    let idx = |p: [f64; 3]| -> Option<usize> {
        let (x, y, z) = (p[0].round(), p[1].round(), p[2].round());
        let ok = x >= 0.0
            && y >= 0.0
            && z >= 0.0
            && (x as usize) < nx
            && (y as usize) < ny
            && (z as usize) < nz;
        ok.then(|| (z as usize * ny + y as usize) * nx + x as usize)
    };
    let intensity = |p: [f64; 3]| -> f32 {
        let c = |v: f64, n: usize| {
            let v = v.clamp(0.0, (n - 1) as f64);
            let i = v.floor() as usize;
            (i, (i + 1).min(n - 1), (v - i as f64) as f32)
        };
        let (x0, x1, tx) = c(p[0], nx);
        let (y0, y1, ty) = c(p[1], ny);
        let (z0, z1, tz) = c(p[2], nz);
        let g = |x: usize, y: usize, z: usize| volume[(z * ny + y) * nx + x] as f32;
        let l = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let pl = |z: usize| {
            l(
                l(g(x0, y0, z), g(x1, y0, z), tx),
                l(g(x0, y1, z), g(x1, y1, z), tx),
                ty,
            )
        };
        l(pl(z0), pl(z1), tz)
    };
    const DEPTHS: [f64; 4] = [-1.5, -0.5, 0.5, 1.5];
    let mut r = rng(seed, S_OBLIQUE, i as i64, 1, 0);
    let stain: [f32; 3] = std::array::from_fn(|_| 1.0 + 0.05 * (2.0 * r.random::<f32>() - 1.0));
    let mut rgb = vec![0u8; side * side * 3];
    for v in 0..side {
        let mut noise = rng(seed, S_OBLIQUE, i as i64, 2, v as i64);
        for u in 0..side {
            let mut acc = [0f32; 3];
            for t in DEPTHS {
                let p = at(u as f64, v as f64, t);
                let c = match idx(p) {
                    Some(k) => he_colour(labels[k], intensity(p)),
                    None => he_colour(0, 0.0),
                };
                (0..3).for_each(|ch| acc[ch] += c[ch] / DEPTHS.len() as f32);
            }
            for ch in 0..3 {
                let e: f32 = noise.sample(StandardNormal);
                let absorbed = (255.0 - acc[ch]) * stain[ch];
                rgb[(v * side + u) * 3 + ch] =
                    ((255.0 - absorbed + 5.0 * e).clamp(0.0, 255.0) + 0.5) as u8;
            }
        }
    }
    // Spots: the section's own grid; fractions and immune score over disc and thickness.
    let yx = ny * nx;
    let rad = IMMUNE_RADIUS;
    let immune_at = |k: usize| -> f64 {
        let (z, pix) = (k / yx, k % yx);
        let (y, x) = (pix / nx, pix % nx);
        let (lo, hi) = (z.saturating_sub(rad), (z + rad).min(nz - 1));
        let s: u32 = (lo..=hi).map(|zz| boxsum[zz * yx + pix] as u32).sum();
        let width = |c: usize, n: usize| ((c + rad).min(n - 1) - c.saturating_sub(rad) + 1) as f64;
        s as f64 / ((hi - lo + 1) as f64 * width(y, ny) * width(x, nx))
    };
    let mut spots = Vec::new();
    let axis = spot_axis(side);
    for (row, &cy) in axis.iter().enumerate() {
        for (col, &cx) in axis.iter().enumerate() {
            let (mut total, mut tissue, mut counts, mut immune) =
                (0usize, 0usize, [0usize; 4], 0f64);
            let (y0, y1) = (
                (cy - SPOT_RADIUS).ceil() as i64,
                (cy + SPOT_RADIUS).floor() as i64,
            );
            let (x0, x1) = (
                (cx - SPOT_RADIUS).ceil() as i64,
                (cx + SPOT_RADIUS).floor() as i64,
            );
            for y in y0..=y1 {
                for x in x0..=x1 {
                    if (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) > SPOT_RADIUS * SPOT_RADIUS
                    {
                        continue;
                    }
                    for t in DEPTHS {
                        total += 1;
                        let Some(k) = idx(at(x as f64, y as f64, t)) else {
                            continue;
                        };
                        let l = labels[k];
                        if l == 0 {
                            continue;
                        }
                        tissue += 1;
                        counts[l as usize - 1] += 1;
                        if l != 2 {
                            immune += immune_at(k);
                        }
                    }
                }
            }
            if total == 0 || tissue * 2 < total {
                continue;
            }
            let mut s = Spot {
                name: format!("o{i:02}_r{row:02}_c{col:02}"),
                plane_z: 10_000 + i,
                row,
                col,
                y: cy,
                x: cx,
                frac: counts.map(|c| c as f64 / tissue as f64),
                immune: immune / tissue as f64,
                counts: Vec::new(),
                expected: Vec::new(),
            };
            express(seed, &mut s, programs);
            spots.push(s);
        }
    }
    Oblique {
        plane,
        side,
        rgb,
        spots,
    }
}
