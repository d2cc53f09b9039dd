//! Spots and expression: the spot grid, the morphology measured under each spot,
//! the gene programs and the sampled counts.

use rand::Rng;
use rand_distr::{Distribution, Gamma, Poisson, StandardNormal};

use super::noise::{S_COUNTS, S_PROGRAMS, rng};
use super::{
    GENE_PREFIXES, GENES_PER_PROGRAM, IMMUNE_RADIUS, IMMUNE_WEIGHT, LIBRARY_LOG_SD, LIBRARY_MEAN,
    N_GENES, NB_SHAPE, PITCH, PROGRAMS, SECTION, SPOT_DIAM, SPOT_RADIUS,
};

/// One spot: geometry, morphology under it, and its expression.
#[derive(Debug, Clone)]
pub(crate) struct Spot {
    pub name: String,
    pub plane_z: usize,
    pub row: usize,
    pub col: usize,
    pub y: f64,
    pub x: f64,
    /// Fractions of the disc's tissue voxels (over the section) that are gland,
    /// tumour, stroma, fat.
    pub frac: [f64; 4],
    pub immune: f64,
    pub counts: Vec<u32>,
    /// Noise-free log1p(expected expression normalised to 1e4 per spot).
    pub expected: Vec<f64>,
}

/// Spot centres along one axis of `n` voxels: centred grid of pitch [`PITCH`].
pub(super) fn spot_axis(n: usize) -> Vec<f64> {
    let k = (n - SPOT_DIAM) / PITCH + 1;
    (0..k)
        .map(|i| (n as f64 - 1.0) / 2.0 + (i as f64 - (k as f64 - 1.0) / 2.0) * PITCH as f64)
        .collect()
}

/// Measure every spot of plane `pz`: compartment fractions and immune score over the
/// disc and the section, keeping spots that are at least half tissue.
pub(super) fn measure_plane(
    shape: [usize; 3],
    labels: &[u8],
    boxsum: &[u16],
    pz: usize,
) -> Vec<Spot> {
    let [nz, ny, nx] = shape;
    let yx = ny * nx;
    let r = IMMUNE_RADIUS;
    let slab: Vec<usize> = (pz.saturating_sub(SECTION / 2)..(pz + SECTION / 2).min(nz)).collect();
    // 3D box sums of the tumour indicator at the section's slices.
    let sums: Vec<(Vec<u32>, usize)> = slab
        .iter()
        .map(|&zs| {
            let (lo, hi) = (zs.saturating_sub(r), (zs + r).min(nz - 1));
            let mut s = vec![0u32; yx];
            for z in lo..=hi {
                s.iter_mut()
                    .zip(&boxsum[z * yx..(z + 1) * yx])
                    .for_each(|(a, v)| *a += *v as u32);
            }
            (s, hi - lo + 1)
        })
        .collect();
    let width = |c: usize, n: usize| ((c + r).min(n - 1) - c.saturating_sub(r) + 1) as f64;
    let (ys, xs) = (spot_axis(ny), spot_axis(nx));
    let mut spots = Vec::new();
    for (row, &cy) in ys.iter().enumerate() {
        for (col, &cx) in xs.iter().enumerate() {
            let (mut total, mut tissue, mut counts, mut immune) =
                (0usize, 0usize, [0usize; 4], 0f64);
            let y0 = (cy - SPOT_RADIUS).ceil().max(0.0) as usize;
            let y1 = ((cy + SPOT_RADIUS).floor() as usize).min(ny - 1);
            let x0 = (cx - SPOT_RADIUS).ceil().max(0.0) as usize;
            let x1 = ((cx + SPOT_RADIUS).floor() as usize).min(nx - 1);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    if (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) > SPOT_RADIUS * SPOT_RADIUS
                    {
                        continue;
                    }
                    let pix = y * nx + x;
                    for (zs, (sum, depth)) in slab.iter().zip(&sums) {
                        total += 1;
                        let l = labels[zs * yx + pix];
                        if l == 0 {
                            continue;
                        }
                        tissue += 1;
                        counts[l as usize - 1] += 1;
                        if l != 2 {
                            immune +=
                                sum[pix] as f64 / (*depth as f64 * width(y, ny) * width(x, nx));
                        }
                    }
                }
            }
            if total == 0 || tissue * 2 < total {
                continue;
            }
            spots.push(Spot {
                name: format!("z{pz:03}_r{row:02}_c{col:02}"),
                plane_z: pz,
                row,
                col,
                y: cy,
                x: cx,
                frac: counts.map(|c| c as f64 / tissue as f64),
                immune: immune / tissue as f64,
                counts: Vec::new(),
                expected: Vec::new(),
            });
        }
    }
    spots
}

/// Per-program gene profiles (each sums to 1): own ten genes log-mean ~ N(2, 0.5),
/// housekeeping ~ N(1, 0.3), the others ~ N(-1.5, 0.5).
pub(super) fn programs(seed: u64) -> Vec<Vec<f64>> {
    let mut r = rng(seed, S_PROGRAMS, 0, 0, 0);
    (0..PROGRAMS.len())
        .map(|k| {
            let logs: Vec<f64> = (0..N_GENES)
                .map(|g| {
                    let block = g / GENES_PER_PROGRAM;
                    let (mu, sd) = if block == k {
                        (2.0, 0.5)
                    } else if block == GENE_PREFIXES.len() - 1 {
                        (1.0, 0.3)
                    } else {
                        (-1.5, 0.5)
                    };
                    let e: f64 = r.sample(StandardNormal);
                    (mu + sd * e).exp()
                })
                .collect();
            let total: f64 = logs.iter().sum();
            logs.into_iter().map(|v| v / total).collect()
        })
        .collect()
}

/// Fill a spot's expected expression and its sampled counts.
pub(super) fn express(seed: u64, spot: &mut Spot, programs: &[Vec<f64>]) {
    let imm = IMMUNE_WEIGHT * spot.immune;
    let total = spot.frac.iter().sum::<f64>() + imm;
    let w: Vec<f64> = spot
        .frac
        .iter()
        .copied()
        .chain([imm])
        .map(|v| v / total)
        .collect();
    let mix: Vec<f64> = (0..N_GENES)
        .map(|g| w.iter().zip(programs).map(|(w, p)| w * p[g]).sum())
        .collect();
    spot.expected = mix.iter().map(|m| (1e4 * m).ln_1p()).collect();
    let mut r = rng(
        seed,
        S_COUNTS,
        spot.plane_z as i64,
        spot.row as i64,
        spot.col as i64,
    );
    let e: f64 = r.sample(StandardNormal);
    let library = LIBRARY_MEAN * (LIBRARY_LOG_SD * e).exp();
    spot.counts = mix
        .iter()
        .map(|m| {
            let mu = library * m;
            let Ok(gamma) = Gamma::new(NB_SHAPE, mu / NB_SHAPE) else {
                return 0;
            };
            let lambda: f64 = gamma.sample(&mut r);
            match Poisson::new(lambda) {
                Ok(p) => p.sample(&mut r) as u32,
                Err(_) => 0,
            }
        })
        .collect();
}
