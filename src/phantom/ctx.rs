//! The generator's fixed state: compartment, warp, shade and fibre-orientation
//! fields, the tissue outline, the glands, and the per-z compartment balance.

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::noise::{Noise, S_COMP, S_GLAND, S_OUTLINE, S_SHADE, S_STRIPES, S_WARP, rng};
use super::{PhantomParams, TARGETS};

/// A gland: a capsule (segment a-b, radius r); a sphere when a == b.
pub(super) struct Gland {
    pub(super) a: [f32; 3],
    pub(super) b: [f32; 3],
    pub(super) r: f32,
    pub(super) zlo: f32,
    pub(super) zhi: f32,
}

const GLAND_CELL: f32 = 28.0;
pub(super) const GLAND_RIM: f32 = 4.0;
pub(super) const NUC_CELL: f32 = 4.0;
pub(super) const FAT_CELL: f32 = 24.0;
pub(super) const STRIPE_PERIOD: f32 = 7.0;

pub(super) struct Ctx {
    pub(super) seed: u64,
    pub(super) shape: [usize; 3],
    pub(super) comp: [Noise; 4],
    pub(super) warp: Noise,
    pub(super) shade: Noise,
    /// Fibre orientation field: picks one of three stripe directions (blending near
    /// the borders between them).
    pub(super) orient: Noise,
    pub(super) stripe_dirs: [[f32; 3]; 3],
    /// Per (y, x): superellipse radius of the pixel, and the outline's radius there at
    /// mid-depth and its change with depth.
    pub(super) rho: Vec<f32>,
    pub(super) rad_a: Vec<f32>,
    pub(super) rad_b: Vec<f32>,
    pub(super) bias: Vec<[f32; 4]>,
    pub(super) glands: Vec<Gland>,
    pub(super) planes: Vec<usize>,
}

impl Ctx {
    pub(super) fn new(p: &PhantomParams) -> Ctx {
        let (seed, shape) = (p.seed, p.shape);
        let [_, ny, nx] = shape;
        let comp = std::array::from_fn(|k| {
            Noise::new(seed, S_COMP, k as i64, &[(112.0, 1.0), (46.0, 0.45)], shape)
        });
        let warp = Noise::new(seed, S_WARP, 0, &[(90.0, 20.0), (38.0, 5.0)], shape);
        let shade = Noise::new(seed, S_SHADE, 0, &[(70.0, 1.0)], shape);
        let orient = Noise::new(seed, S_STRIPES, 0, &[(130.0, 1.0), (55.0, 0.35)], shape);
        let mut r = rng(seed, S_STRIPES, 0, 0, 0);
        let phi0: f32 = r.random_range(0.0..std::f32::consts::TAU);
        let stripe_dirs = std::array::from_fn(|j| {
            let phi = phi0 + j as f32 * std::f32::consts::FRAC_PI_3 + r.random_range(-0.2..0.2);
            let tilt: f32 = r.random_range(-0.3..0.3);
            let norm = (1.0 + tilt * tilt).sqrt();
            [tilt / norm, phi.cos() / norm, phi.sin() / norm]
        });

        // Outline: a superellipse (exponent 2.6, radii 0.47 of the field) whose radius
        // is modulated by a few harmonics of the angle, varying a little with depth.
        let mut r = rng(seed, S_OUTLINE, 0, 0, 0);
        // (order, amplitude, phase) per harmonic; drawn in the same order as before.
        let mut harmonics = |orders: std::ops::RangeInclusive<u32>, amp: std::ops::Range<f32>| {
            orders
                .map(|m| {
                    let a = r.random_range(amp.clone());
                    (m as f32, a, r.random_range(0.0..std::f32::consts::TAU))
                })
                .collect::<Vec<(f32, f32, f32)>>()
        };
        let harm_a = harmonics(2..=5, 0.01..0.035);
        let harm_b = harmonics(1..=3, 0.02..0.06);
        let (cy, cx) = ((ny as f32 - 1.0) / 2.0, (nx as f32 - 1.0) / 2.0);
        let (ry, rx) = (0.47 * ny as f32, 0.47 * nx as f32);
        let cells: Vec<(f32, f32, f32)> = (0..ny * nx)
            .into_par_iter()
            .map(|i| {
                let u = (i / nx) as f32 - cy;
                let v = (i % nx) as f32 - cx;
                let (u, v) = (u / ry, v / rx);
                let rho = (u.abs().powf(2.6) + v.abs().powf(2.6)).powf(1.0 / 2.6);
                let th = u.atan2(v);
                let a = 0.93
                    + harm_a
                        .iter()
                        .map(|(m, a, ph)| a * (m * th + ph).cos())
                        .sum::<f32>();
                let b = harm_b
                    .iter()
                    .map(|(m, b, ph)| b * (m * th + ph).cos())
                    .sum::<f32>();
                (rho, a, b)
            })
            .collect();
        let mut ctx = Ctx {
            seed,
            shape,
            comp,
            warp,
            shade,
            orient,
            stripe_dirs,
            rho: cells.iter().map(|c| c.0).collect(),
            rad_a: cells.iter().map(|c| c.1).collect(),
            rad_b: cells.iter().map(|c| c.2).collect(),
            bias: Vec::new(),
            glands: glands(seed, shape),
            planes: p.planes_z(),
        };
        ctx.bias = calibrate(&ctx);
        ctx
    }

    /// Depth term of the outline at slice `z`: (t, -0.15 t^2) with t in [-0.5, 0.5].
    pub(super) fn depth(&self, z: usize) -> (f32, f32) {
        let t = (z as f32 + 0.5) / self.shape[0] as f32 - 0.5;
        (t, -0.15 * t * t)
    }

    pub(super) fn tissue(&self, (t, c): (f32, f32), pix: usize) -> bool {
        self.rho[pix] < self.rad_a[pix] + self.rad_b[pix] * t + c
    }
}

fn glands(seed: u64, shape: [usize; 3]) -> Vec<Gland> {
    let cells = |n: usize| (n as f32 / GLAND_CELL).ceil() as i64;
    let mut out = Vec::new();
    for cz in 0..cells(shape[0]) {
        for cy in 0..cells(shape[1]) {
            for cx in 0..cells(shape[2]) {
                let mut r = rng(seed, S_GLAND, cz, cy, cx);
                let c: [f32; 3] = [cz, cy, cx]
                    .map(|i| (i as f32 + 0.5 + r.random_range(-0.15..0.15)) * GLAND_CELL);
                let radius: f32 = r.random_range(8.0..13.0);
                let (a, b) = if r.random_bool(0.5) {
                    (c, c)
                } else {
                    let d: [f32; 3] = std::array::from_fn(|_| r.sample::<f32, _>(StandardNormal));
                    let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-3);
                    let half: f32 = r.random_range(6.0..18.0);
                    let d = d.map(|v| v / len * half);
                    (
                        [c[0] - d[0], c[1] - d[1], c[2] - d[2]],
                        [c[0] + d[0], c[1] + d[1], c[2] + d[2]],
                    )
                };
                out.push(Gland {
                    zlo: a[0].min(b[0]) - radius,
                    zhi: a[0].max(b[0]) + radius,
                    a,
                    b,
                    r: radius,
                });
            }
        }
    }
    out
}

/// Per-z biases added to the compartment fields so that, at every z, each compartment
/// takes about its target share of the tissue: balanced on a sample of every 6th pixel
/// at control slices 8 apart, linearly interpolated between them.
fn calibrate(ctx: &Ctx) -> Vec<[f32; 4]> {
    let [nz, ny, nx] = ctx.shape;
    let mut ctrl: Vec<usize> = (0..nz).step_by(8).collect();
    if *ctrl.last().expect("nz >= 1") != nz - 1 {
        ctrl.push(nz - 1);
    }
    let biases: Vec<[f32; 4]> = ctrl
        .par_iter()
        .map(|&z| {
            let planes: Vec<_> = ctx.comp.iter().map(|n| n.planes(z)).collect();
            let mut rows = vec![vec![0f32; nx]; 4];
            let mut scratch = Vec::new();
            let mut samples = Vec::new();
            for y in (0..ny).step_by(6) {
                for k in 0..4 {
                    ctx.comp[k].row(&planes[k], y, &mut rows[k], &mut scratch);
                }
                for x in (0..nx).step_by(6) {
                    if ctx.tissue(ctx.depth(z), y * nx + x) {
                        samples.push([rows[0][x], rows[1][x], rows[2][x], rows[3][x]]);
                    }
                }
            }
            balance(&samples)
        })
        .collect();
    (0..nz)
        .map(|z| {
            let j = ctrl.partition_point(|&c| c <= z) - 1;
            if j + 1 == ctrl.len() {
                return biases[j];
            }
            let w = (z - ctrl[j]) as f32 / (ctrl[j + 1] - ctrl[j]) as f32;
            std::array::from_fn(|k| biases[j][k] + (biases[j + 1][k] - biases[j][k]) * w)
        })
        .collect()
}

pub(super) fn argmax4(v: [f32; 4]) -> usize {
    let mut best = 0;
    for k in 1..4 {
        if v[k] > v[best] {
            best = k;
        }
    }
    best
}

fn balance(samples: &[[f32; 4]]) -> [f32; 4] {
    let mut b = [0f32; 4];
    if samples.is_empty() {
        return b;
    }
    for it in 0..150 {
        let mut counts = [0usize; 4];
        for s in samples {
            counts[argmax4(std::array::from_fn(|k| s[k] + b[k]))] += 1;
        }
        let step = 0.6 / (1.0 + it as f32 / 30.0);
        for k in 0..4 {
            b[k] += step * (TARGETS[k] - counts[k] as f32 / samples.len() as f32);
        }
    }
    b
}
