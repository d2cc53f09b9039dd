//! Per-slice texture primitives: the fat Voronoi's membranes, and the glands and
//! nuclei splatted into a slice.

use super::ctx::{Ctx, FAT_CELL, NUC_CELL};
use super::noise::{S_FAT, S_NUCLEUS, key, key_last, key_prefix, mix, unit};

/// Jittered seeds of the fat Voronoi around one slice (3 cell layers).
pub(super) struct FatSeeds {
    cz0: i64,
    ny: usize,
    nx: usize,
    pos: Vec<[f32; 3]>,
}

impl FatSeeds {
    pub(super) fn new(seed: u64, shape: [usize; 3], z: usize) -> FatSeeds {
        let cz0 = (z as f32 / FAT_CELL).floor() as i64;
        let ny = (shape[1] as f32 / FAT_CELL) as usize + 3;
        let nx = (shape[2] as f32 / FAT_CELL) as usize + 3;
        let mut pos = Vec::with_capacity(3 * ny * nx);
        for cz in cz0 - 1..=cz0 + 1 {
            for cy in -1..ny as i64 - 1 {
                for cx in -1..nx as i64 - 1 {
                    let h = key(seed, S_FAT, cz, cy, cx);
                    let j = |h: u64, c: i64| (c as f32 + 0.15 + 0.7 * unit(h)) * FAT_CELL;
                    pos.push([j(h, cz), j(mix(h), cy), j(mix(mix(h)), cx)]);
                }
            }
        }
        FatSeeds { cz0, ny, nx, pos }
    }

    /// The candidate seeds of row `y` of slice `z`: for each cell column, the nine seeds
    /// of the 3 x 3 cells around it in z and y, as (squared distance in z and y, seed x,
    /// seed index).
    pub(super) fn row_table(&self, z: usize, y: usize, table: &mut Vec<[(f32, f32, u32); 9]>) {
        let (zf, yf) = (z as f32, y as f32);
        debug_assert_eq!((zf / FAT_CELL).floor() as i64, self.cz0);
        let cy = (yf / FAT_CELL) as usize; // table row cy is cell cy - 1
        table.clear();
        table.extend((0..self.nx).map(|lx| {
            std::array::from_fn(|j| {
                let (lz, ly) = (j / 3, cy + j % 3);
                let idx = (lz * self.ny + ly) * self.nx + lx;
                let s = self.pos[idx];
                ((s[0] - zf).powi(2) + (s[1] - yf).powi(2), s[2], idx as u32)
            })
        }));
    }

    /// Membrane strength in [0, 1] at a voxel of the row whose table is given: 1 on a
    /// Voronoi face, 0 beyond ~1.3 voxels.
    pub(super) fn membrane(&self, table: &[[(f32, f32, u32); 9]], x: usize) -> f32 {
        let xf = x as f32;
        let cx = (xf / FAT_CELL) as usize;
        let cands = &table[cx..cx + 3];
        // Distances to the 27 candidates, then the two smallest without branches.
        let mut d = [0f32; 27];
        for (dk, c) in d.iter_mut().zip(cands.iter().flatten()) {
            *dk = c.0 + (c.1 - xf) * (c.1 - xf);
        }
        let (mut d1, mut d2) = (f32::MAX, f32::MAX);
        for &v in &d {
            d2 = fmin(d2, fmax(v, d1));
            d1 = fmin(d1, v);
        }
        let k1 = d.iter().position(|&v| v == d1).expect("minimum is present");
        let k2 = (0..27)
            .find(|&k| k != k1 && d[k] == d2)
            .expect("second minimum is present");
        let idx = |k: usize| cands[k / 9][k % 9].2 as usize;
        let (a, b) = (self.pos[idx(k1)], self.pos[idx(k2)]);
        let sep = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        let dist = (d2 - d1) / (2.0 * sep.max(1e-3));
        (1.0 - dist / 1.3).max(0.0)
    }
}

/// Splat the glands' signed distance (negative inside) into a slice.
pub(super) fn splat_glands(ctx: &Ctx, z: usize, sd: &mut [f32]) {
    let [_, ny, nx] = ctx.shape;
    let zf = z as f32;
    for g in ctx.glands.iter().filter(|g| g.zlo <= zf && zf <= g.zhi) {
        let lo = |a: f32, b: f32| ((a.min(b) - g.r - 1.0).floor().max(0.0)) as usize;
        let hi =
            |a: f32, b: f32, n: usize| ((a.max(b) + g.r + 1.0).ceil().max(0.0) as usize).min(n);
        let ab = [g.b[0] - g.a[0], g.b[1] - g.a[1], g.b[2] - g.a[2]];
        let ab2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
        for y in lo(g.a[1], g.b[1])..hi(g.a[1], g.b[1], ny) {
            for x in lo(g.a[2], g.b[2])..hi(g.a[2], g.b[2], nx) {
                let ap = [zf - g.a[0], y as f32 - g.a[1], x as f32 - g.a[2]];
                let t = if ab2 > 0.0 {
                    ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / ab2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = ((ap[0] - t * ab[0]).powi(2)
                    + (ap[1] - t * ab[1]).powi(2)
                    + (ap[2] - t * ab[2]).powi(2))
                .sqrt();
                let v = &mut sd[y * nx + x];
                *v = fmin(*v, d - g.r);
            }
        }
    }
}

/// Splat nuclei (a jittered grid of small spheres) into a slice; `he` also gets their
/// projection through the few voxels of a thin section, for the H&E rendering.
pub(super) fn splat_nuclei(ctx: &Ctx, z: usize, nuc: &mut [f32], mut he: Option<&mut [f32]>) {
    let [_, ny, nx] = ctx.shape;
    let zf = z as f32;
    let czs = ((zf - 3.5) / NUC_CELL).floor() as i64..=((zf + 3.5) / NUC_CELL).floor() as i64;
    for cz in czs {
        for cy in -1..=(ny as f32 / NUC_CELL) as i64 {
            let prefix = key_prefix(ctx.seed, S_NUCLEUS, cz, cy);
            for cx in -1..=(nx as f32 / NUC_CELL) as i64 {
                let h = key_last(prefix, cx);
                let zc = (cz as f32 + 0.125 + 0.75 * unit(h)) * NUC_CELL;
                let r = 1.1 + 0.6 * unit(h << 24);
                let dz = (zf - zc).abs();
                let in_vol = dz < r;
                let in_he = he.is_some() && dz < r + 1.0;
                if !in_vol && !in_he {
                    continue;
                }
                let h2 = mix(h);
                let c = [
                    zc,
                    (cy as f32 + 0.125 + 0.75 * unit(h2)) * NUC_CELL,
                    (cx as f32 + 0.125 + 0.75 * unit(h2 << 24)) * NUC_CELL,
                ];
                let rr_vol = r * r - dz * dz;
                let reach = r.ceil() as i64;
                let (iy, ix) = (c[1].round() as i64, c[2].round() as i64);
                for y in (iy - reach).max(0)..=(iy + reach).min(ny as i64 - 1) {
                    for x in (ix - reach).max(0)..=(ix + reach).min(nx as i64 - 1) {
                        let d2 = (y as f32 - c[1]).powi(2) + (x as f32 - c[2]).powi(2);
                        let pix = y as usize * nx + x as usize;
                        if in_vol && d2 <= rr_vol {
                            let v = 1.0 - 0.5 * d2 / rr_vol.max(1e-3);
                            nuc[pix] = nuc[pix].max(v);
                        }
                        if in_he && d2 <= r * r {
                            let he = he.as_deref_mut().expect("checked");
                            he[pix] = he[pix].max(1.0 - 0.4 * d2 / (r * r));
                        }
                    }
                }
            }
        }
    }
}

/// Minimum of two numbers that are never NaN (one `minss`, unlike `f32::min`).
fn fmin(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// Maximum of two numbers that are never NaN.
fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}
