//! A deterministic synthetic tissue phantom: a microCT-like 3D volume with four tissue
//! compartments of distinct texture, H&E-like RGB renderings of planes through it, and
//! legacy Spatial Transcriptomics spots on those planes whose gene counts follow the
//! morphology under each spot. It stands in for real VORTEX data in tests and demos.
//!
//! Geometry (4 um isotropic voxels, default 96 x 640 x 640): a rounded slab of tissue
//! fills most of the YX field at every z, air (intensity 0-10) around it. Inside, four
//! smooth 3D random fields (value noise at 184 and 448 um) compete by argmax, with
//! per-z weights balanced so each compartment keeps its share of the tissue (24, 24,
//! 30, 22%) at every z. Intensities get mild Gaussian noise (sd 6; air sd 1.5):
//!
//! | label | compartment | volume texture | H&E |
//! |---|---|---|---|
//! | 1 | gland | spherical/tubular lumens (radius 8-13 voxels, ~50% of them 12-36-voxel tubes): dark lumen, bright 4-voxel epithelial rim, loose matrix around | purple rim, white lumen |
//! | 2 | tumour | dense, bright, fine nuclear speckle (2-3 voxel blobs) | dark purple nuclei on pink |
//! | 3 | stroma | striations along a smoothly varying direction | eosin pink with fibre bands |
//! | 4 | fat | 3D Voronoi cells ~24 voxels across: dark interiors, thin bright membranes | white with pink membranes |
//!
//! Spots: square grid, pitch 200 um (50 voxels), diameter 100 um (25 voxels), centred
//! on the field; a spot is kept when its disc over the 16-um section (slices
//! `z-2 ..= z+1` around the plane `z`) is at least half tissue. Its compartment
//! fractions (over the tissue voxels of that disc and section) and an immune score (the
//! mean over the same voxels of a 25-voxel 3D box blur of the tumour indicator, zero on
//! tumour voxels: tissue near tumour, including tumour only above or below the plane)
//! weight five gene programs. Counts are negative binomial (gamma-Poisson, shape 10)
//! around `library * sum_k w_k p_k`, with library `3000 * lognormal(0, 0.25)`.
//!
//! Determinism: every random draw comes from the seed through a hash of what is drawn
//! (a lattice point, an object's cell, a slice, a spot), never from a generator shared
//! across threads, so the files are byte-identical for a given seed and parameters
//! whatever the thread count.
//!
//! ```no_run
//! use vortexdb::phantom::{generate, PhantomParams};
//! let summary = generate(&PhantomParams { seed: 7, ..Default::default() }, "phantom-out").unwrap();
//! println!("{} spots on planes {:?}", summary.n_spots, summary.planes_z);
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, UInt32Array};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::vecio;

/// Value of `format` in `phantom.json`.
pub const FORMAT: &str = "vortexdb-phantom/1";
/// Voxel edge in micrometres (isotropic).
pub const VOXEL_UM: f64 = 4.0;
/// Label names, indexed by label value (0 = background).
pub const COMPARTMENTS: [&str; 5] = ["background", "gland", "tumour", "stroma", "fat"];
/// Gene programs: the four compartments, then the immune program.
pub const PROGRAMS: [&str; 5] = ["gland", "tumour", "stroma", "fat", "immune"];
/// Gene name prefixes, one block of ten genes each, in gene order (the last block,
/// housekeeping, is expressed moderately by every program).
pub const GENE_PREFIXES: [&str; 6] = ["GLD", "TUM", "STR", "FAT", "IMM", "HK"];
/// Centre-to-centre spot distance in micrometres.
pub const SPOT_PITCH_UM: f64 = 200.0;
/// Spot diameter in micrometres.
pub const SPOT_DIAMETER_UM: f64 = 100.0;
/// Section thickness over which a spot is measured, in micrometres.
pub const SECTION_UM: f64 = 16.0;

const PITCH: usize = 50; // voxels
const SPOT_DIAM: usize = 25; // voxels
const SPOT_RADIUS: f64 = 12.5; // voxels
const SECTION: usize = 4; // voxels: slices z-2 ..= z+1
const IMMUNE_RADIUS: usize = 12; // voxels, box blur in z, y and x
const IMMUNE_WEIGHT: f64 = 2.0;
const LIBRARY_MEAN: f64 = 3000.0;
const LIBRARY_LOG_SD: f64 = 0.25;
const NB_SHAPE: f64 = 10.0;
const GENES_PER_PROGRAM: usize = 10;
const N_GENES: usize = GENE_PREFIXES.len() * GENES_PER_PROGRAM;
/// Target share of the tissue for gland, tumour, stroma, fat at every z.
const TARGETS: [f32; 4] = [0.24, 0.24, 0.30, 0.22];
const MAX_VOXELS: usize = 1 << 31;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhantomParams {
    /// Seed of every random draw: the same seed and parameters give identical files.
    pub seed: u64,
    /// Volume shape `[Z, Y, X]` in 4-um voxels (default 96 x 640 x 640).
    pub shape: [usize; 3],
    /// Distance in voxels between H&E planes; planes lie at `z = step/2 + i*step < Z`
    /// (default 16: z = 8, 24, ..., 88).
    pub plane_step: usize,
    /// Write into a non-empty output directory, replacing the files of the same names
    /// (and stale `planes/plane_*.png`); otherwise a non-empty directory is refused.
    pub overwrite: bool,
}

impl Default for PhantomParams {
    fn default() -> Self {
        PhantomParams {
            seed: 0,
            shape: [96, 640, 640],
            plane_step: 16,
            overwrite: false,
        }
    }
}

impl PhantomParams {
    /// The z of every H&E plane.
    pub fn planes_z(&self) -> Vec<usize> {
        if self.plane_step == 0 {
            return Vec::new();
        }
        (self.plane_step / 2..self.shape[0])
            .step_by(self.plane_step)
            .collect()
    }

    /// Check the parameters; errors name the CLI argument at fault.
    pub fn validate(&self) -> Result<()> {
        let [z, y, x] = self.shape;
        if z == 0 || y == 0 || x == 0 {
            return Err(Error::bad_input(
                "--shape",
                format!("every dimension must be at least 1 (got {z},{y},{x})"),
            ));
        }
        if y < SPOT_DIAM || x < SPOT_DIAM {
            return Err(Error::bad_input(
                "--shape",
                format!(
                    "Y and X must be at least {SPOT_DIAM} voxels to hold one {SPOT_DIAMETER_UM}-um spot \
                     at {VOXEL_UM} um per voxel (got {z},{y},{x})"
                ),
            ));
        }
        if z.saturating_mul(y).saturating_mul(x) > MAX_VOXELS {
            return Err(Error::bad_input(
                "--shape",
                format!("{z}x{y}x{x} is too large (at most 2^31 voxels)"),
            ));
        }
        if self.plane_step == 0 {
            return Err(Error::bad_input("--plane-step", "must be at least 1"));
        }
        if self.plane_step / 2 >= z {
            return Err(Error::bad_input(
                "--plane-step",
                format!(
                    "no plane fits: the first plane would be at z={} but the volume has Z={z}",
                    self.plane_step / 2
                ),
            ));
        }
        Ok(())
    }
}

/// The files one run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PhantomFiles {
    /// `volume.npy`: uint8 (Z, Y, X) intensities.
    pub volume: PathBuf,
    /// `labels.npy`: uint8 (Z, Y, X) compartment labels (see [`COMPARTMENTS`]).
    pub labels: PathBuf,
    /// `planes/plane_ZZZ.png`: one RGB H&E-like image per plane.
    pub planes: Vec<PathBuf>,
    /// `spots.parquet`: spot geometry and gene counts.
    pub spots: PathBuf,
    /// `truth/spots_truth.parquet`: per-spot compartment fractions, immune score and
    /// noise-free expected expression.
    pub truth: PathBuf,
    /// `phantom.json`: the description of everything above.
    pub meta: PathBuf,
}

/// What [`generate`] wrote and a few statistics of it.
#[derive(Debug, Clone, Serialize)]
pub struct PhantomSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// The seed used.
    pub seed: u64,
    /// Volume shape `[Z, Y, X]`.
    pub shape: [usize; 3],
    /// z of every plane.
    pub planes_z: Vec<usize>,
    /// Number of spots kept (over all planes).
    pub n_spots: usize,
    /// Gene names in column order.
    pub genes: Vec<String>,
    /// Fraction of the volume that is tissue.
    pub tissue_fraction: f64,
    /// Fraction of the tissue that is gland, tumour, stroma, fat.
    pub compartment_fractions: [f64; 4],
    /// The files written.
    pub files: PhantomFiles,
}

/// The 60 gene names, in column order: GLD01..GLD10, TUM.., STR.., FAT.., IMM.., HK...
pub fn gene_names() -> Vec<String> {
    GENE_PREFIXES
        .iter()
        .flat_map(|p| (1..=GENES_PER_PROGRAM).map(move |i| format!("{p}{i:02}")))
        .collect()
}

/// Generate the phantom for `params` and write it into `out_dir` (created).
pub fn generate(params: &PhantomParams, out_dir: impl AsRef<Path>) -> Result<PhantomSummary> {
    let out_dir = out_dir.as_ref();
    params.validate()?;
    prepare_dir(out_dir, params.overwrite)?;
    let ph = build(params)?;
    write(&ph, out_dir)
}

// ---------------------------------------------------------------------------------
// Randomness: a hash of (seed, stream, coordinates) for random access, ChaCha8 streams
// seeded from such a hash for sequences.

const S_COMP: u64 = 1;
const S_WARP: u64 = 2;
const S_SHADE: u64 = 3;
const S_OUTLINE: u64 = 4;
const S_GLAND: u64 = 5;
const S_NUCLEUS: u64 = 6;
const S_FAT: u64 = 7;
const S_NOISE: u64 = 8;
const S_HE_NOISE: u64 = 9;
const S_PROGRAMS: u64 = 10;
const S_COUNTS: u64 = 11;
const S_STRIPES: u64 = 12;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(seed: u64, stream: u64, a: i64, b: i64, c: i64) -> u64 {
    key_last(key_prefix(seed, stream, a, b), c)
}

/// The part of [`key`] that does not depend on `c` (for loops over `c`).
fn key_prefix(seed: u64, stream: u64, a: i64, b: i64) -> u64 {
    let h = mix(seed ^ mix(stream));
    let h = mix(h ^ a as u64);
    mix(h ^ (b as u64).rotate_left(21))
}

fn key_last(prefix: u64, c: i64) -> u64 {
    mix(prefix ^ (c as u64).rotate_left(42))
}

/// Uniform in [0, 1) from the top 24 bits of a hash.
fn unit(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

fn rng(seed: u64, stream: u64, a: i64, b: i64, c: i64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key(seed, stream, a, b, c))
}

// ---------------------------------------------------------------------------------
// Smooth random fields: value noise on a randomly offset lattice, smoothstep
// interpolation, evaluated separably (z for a slice, y for a row, x per voxel).

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

struct Lattice {
    spacing: f32,
    amp: f32,
    off: [f32; 3],
    n: [usize; 3],
    values: Vec<f32>,
    ytab: Vec<(u32, f32)>,
    /// x weights, and the runs of x sharing a lattice interval: (first x, interval).
    xw: Vec<f32>,
    xseg: Vec<(usize, usize)>,
}

impl Lattice {
    fn new(seed: u64, stream: u64, id: i64, spacing: f32, amp: f32, shape: [usize; 3]) -> Self {
        let o = key(seed, stream, id, -1, -1);
        let off = [
            unit(o) * spacing,
            unit(mix(o)) * spacing,
            unit(mix(mix(o))) * spacing,
        ];
        let n: [usize; 3] =
            std::array::from_fn(|a| ((shape[a] as f32 + off[a]) / spacing) as usize + 2);
        let mut values = Vec::with_capacity(n[0] * n[1] * n[2]);
        for iz in 0..n[0] {
            for iy in 0..n[1] {
                for ix in 0..n[2] {
                    let h = key(
                        seed,
                        stream ^ ((id as u64) << 32),
                        iz as i64,
                        iy as i64,
                        ix as i64,
                    );
                    values.push(unit(h) * 2.0 - 1.0);
                }
            }
        }
        let tab = |axis: usize| -> Vec<(u32, f32)> {
            (0..shape[axis])
                .map(|p| {
                    let t = (p as f32 + off[axis]) / spacing;
                    let i = t.floor();
                    (i as u32, smooth(t - i))
                })
                .collect()
        };
        let xtab = tab(2);
        let mut xseg: Vec<(usize, usize)> = Vec::new();
        for (x, &(i, _)) in xtab.iter().enumerate() {
            if xseg.last().is_none_or(|s| s.1 != i as usize) {
                xseg.push((x, i as usize));
            }
        }
        Lattice {
            spacing,
            amp,
            off,
            n,
            ytab: tab(1),
            xw: xtab.iter().map(|t| t.1).collect(),
            xseg,
            values,
        }
    }

    /// The lattice interpolated to slice `z`: an `n[1] x n[2]` plane.
    fn plane(&self, z: usize) -> Vec<f32> {
        let t = (z as f32 + self.off[0]) / self.spacing;
        let i = t.floor() as usize;
        let w = smooth(t - i as f32);
        let s = self.n[1] * self.n[2];
        let (a, b) = (
            &self.values[i * s..(i + 1) * s],
            &self.values[(i + 1) * s..(i + 2) * s],
        );
        a.iter().zip(b).map(|(a, b)| a + (b - a) * w).collect()
    }

    /// Add `amp * field` along row `y` of the slice whose plane is given.
    fn add_row(&self, plane: &[f32], y: usize, out: &mut [f32], row: &mut Vec<f32>) {
        let (iy, wy) = self.ytab[y];
        let nx = self.n[2];
        let r0 = &plane[iy as usize * nx..][..nx];
        let r1 = &plane[(iy as usize + 1) * nx..][..nx];
        row.clear();
        row.extend(
            r0.iter()
                .zip(r1)
                .map(|(a, b)| (a + (b - a) * wy) * self.amp),
        );
        for (s, &(x0, i)) in self.xseg.iter().enumerate() {
            let x1 = self.xseg.get(s + 1).map_or(out.len(), |n| n.0);
            let (a, d) = (row[i], row[i + 1] - row[i]);
            for (o, w) in out[x0..x1].iter_mut().zip(&self.xw[x0..x1]) {
                *o += a + d * w;
            }
        }
    }
}

/// A sum of lattices (octaves).
struct Noise(Vec<Lattice>);

impl Noise {
    fn new(seed: u64, stream: u64, id: i64, octaves: &[(f32, f32)], shape: [usize; 3]) -> Self {
        Noise(
            octaves
                .iter()
                .enumerate()
                .map(|(o, &(sp, amp))| {
                    Lattice::new(seed, stream, id * 16 + o as i64, sp, amp, shape)
                })
                .collect(),
        )
    }

    fn planes(&self, z: usize) -> Vec<Vec<f32>> {
        self.0.iter().map(|l| l.plane(z)).collect()
    }

    fn row(&self, planes: &[Vec<f32>], y: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        out.fill(0.0);
        for (l, p) in self.0.iter().zip(planes) {
            l.add_row(p, y, out, scratch);
        }
    }
}

// ---------------------------------------------------------------------------------
// The generator's fixed state.

/// A gland: a capsule (segment a-b, radius r); a sphere when a == b.
struct Gland {
    a: [f32; 3],
    b: [f32; 3],
    r: f32,
    zlo: f32,
    zhi: f32,
}

const GLAND_CELL: f32 = 28.0;
const GLAND_RIM: f32 = 4.0;
const NUC_CELL: f32 = 4.0;
const FAT_CELL: f32 = 24.0;
const STRIPE_PERIOD: f32 = 7.0;

struct Ctx {
    seed: u64,
    shape: [usize; 3],
    comp: [Noise; 4],
    warp: Noise,
    shade: Noise,
    /// Fibre orientation field: picks one of three stripe directions (blending near
    /// the borders between them).
    orient: Noise,
    stripe_dirs: [[f32; 3]; 3],
    /// Per (y, x): superellipse radius of the pixel, and the outline's radius there at
    /// mid-depth and its change with depth.
    rho: Vec<f32>,
    rad_a: Vec<f32>,
    rad_b: Vec<f32>,
    bias: Vec<[f32; 4]>,
    glands: Vec<Gland>,
    planes: Vec<usize>,
}

impl Ctx {
    fn new(p: &PhantomParams) -> Ctx {
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
    fn depth(&self, z: usize) -> (f32, f32) {
        let t = (z as f32 + 0.5) / self.shape[0] as f32 - 0.5;
        (t, -0.15 * t * t)
    }

    fn tissue(&self, (t, c): (f32, f32), pix: usize) -> bool {
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

fn argmax4(v: [f32; 4]) -> usize {
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

// ---------------------------------------------------------------------------------
// One slice: labels, intensities, the 2D tumour box sums, and the H&E rendering when
// the slice is a plane.

/// Jittered seeds of the fat Voronoi around one slice (3 cell layers).
struct FatSeeds {
    cz0: i64,
    ny: usize,
    nx: usize,
    pos: Vec<[f32; 3]>,
}

impl FatSeeds {
    fn new(seed: u64, shape: [usize; 3], z: usize) -> FatSeeds {
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
    fn row_table(&self, z: usize, y: usize, table: &mut Vec<[(f32, f32, u32); 9]>) {
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
    fn membrane(&self, table: &[[(f32, f32, u32); 9]], x: usize) -> f32 {
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
fn splat_glands(ctx: &Ctx, z: usize, sd: &mut [f32]) {
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
fn splat_nuclei(ctx: &Ctx, z: usize, nuc: &mut [f32], mut he: Option<&mut [f32]>) {
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

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    std::array::from_fn(|i| a[i] + (b[i] - a[i]) * t)
}

const HE_BACKGROUND: [f32; 3] = [245.0, 245.0, 246.0];
const HE_FAT: [f32; 3] = [250.0, 244.0, 247.0];
const HE_MEMBRANE: [f32; 3] = [222.0, 140.0, 182.0];
const HE_STROMA: [f32; 3] = [230.0, 150.0, 190.0];
const HE_STROMA_BAND: [f32; 3] = [10.0, 26.0, 14.0];
const HE_CYTOPLASM: [f32; 3] = [205.0, 128.0, 182.0];
const HE_NUCLEUS: [f32; 3] = [90.0, 60.0, 140.0];
const HE_RIM: [f32; 3] = [150.0, 95.0, 172.0];
const HE_LUMEN: [f32; 3] = [248.0, 246.0, 248.0];
const HE_MATRIX: [f32; 3] = [238.0, 196.0, 218.0];

/// Render slice `z` into its volume, label and tumour-box-sum buffers; returns the RGB
/// H&E image when `z` is a plane.
fn render_slice(
    ctx: &Ctx,
    z: usize,
    vol: &mut [u8],
    lab: &mut [u8],
    boxsum: &mut [u16],
) -> Option<Vec<u8>> {
    let [_, ny, nx] = ctx.shape;
    let is_plane = ctx.planes.contains(&z);
    let mut gsd = vec![f32::MAX; ny * nx];
    splat_glands(ctx, z, &mut gsd);
    let mut nuc = vec![0f32; ny * nx];
    let mut nuc_he = if is_plane {
        vec![0f32; ny * nx]
    } else {
        Vec::new()
    };
    splat_nuclei(ctx, z, &mut nuc, is_plane.then_some(&mut nuc_he[..]));
    let fat = FatSeeds::new(ctx.seed, ctx.shape, z);
    let (mut fat_table, mut fat_row) = (Vec::new(), None);
    let mut rgb = if is_plane {
        vec![0u8; ny * nx * 3]
    } else {
        Vec::new()
    };

    let comp_planes: Vec<_> = ctx.comp.iter().map(|n| n.planes(z)).collect();
    let warp_planes = ctx.warp.planes(z);
    let orient_planes = ctx.orient.planes(z);
    let mut orient_row = vec![0f32; nx];
    let shade_planes = ctx.shade.planes(z);
    let mut comp_rows = vec![vec![0f32; nx]; 4];
    let mut warp_row = vec![0f32; nx];
    let mut shade_row = vec![0f32; nx];
    let mut scratch = Vec::new();
    let mut noise = rng(ctx.seed, S_NOISE, z as i64, 0, 0);
    let mut he_noise = rng(ctx.seed, S_HE_NOISE, z as i64, 0, 0);
    let bias = ctx.bias[z];
    let dirs = &ctx.stripe_dirs;
    let k_stripe = std::f32::consts::TAU / STRIPE_PERIOD;
    let depth = ctx.depth(z);

    for y in 0..ny {
        for k in 0..4 {
            ctx.comp[k].row(&comp_planes[k], y, &mut comp_rows[k], &mut scratch);
        }
        ctx.warp.row(&warp_planes, y, &mut warp_row, &mut scratch);
        ctx.orient
            .row(&orient_planes, y, &mut orient_row, &mut scratch);
        ctx.shade
            .row(&shade_planes, y, &mut shade_row, &mut scratch);
        let row_phase: [f32; 3] =
            std::array::from_fn(|j| dirs[j][0] * z as f32 + dirs[j][1] * y as f32);
        // Fibre striations: one of three directions by the orientation field, two
        // blended across the border between regions.
        let stripe = |x: usize| -> f32 {
            let wave =
                |j: usize| ((row_phase[j] + dirs[j][2] * x as f32 + warp_row[x]) * k_stripe).sin();
            const EDGE: f32 = 0.12;
            let o = ((orient_row[x] + 1.0) * 1.5).clamp(0.0, 2.999);
            let j = o as usize;
            let f = o - j as f32;
            if j > 0 && f < EDGE {
                let w = 0.5 - 0.5 * f / EDGE;
                (1.0 - w) * wave(j) + w * wave(j - 1)
            } else if j < 2 && f > 1.0 - EDGE {
                let w = 0.5 - 0.5 * (1.0 - f) / EDGE;
                (1.0 - w) * wave(j) + w * wave(j + 1)
            } else {
                wave(j)
            }
        };
        for x in 0..nx {
            let pix = y * nx + x;
            let n: f32 = noise.sample(StandardNormal);
            let label = if ctx.tissue(depth, pix) {
                1 + argmax4(std::array::from_fn(|k| comp_rows[k][x] + bias[k]))
            } else {
                0
            };
            lab[pix] = label as u8;
            // Volume intensity and H&E colour.
            let (v, colour) = match label {
                0 => (5.0 + 1.5 * n, HE_BACKGROUND),
                1 => {
                    let s = gsd[pix];
                    if s < -GLAND_RIM {
                        (72.0, HE_LUMEN)
                    } else if s < 0.0 {
                        let he = if is_plane { nuc_he[pix] } else { 0.0 };
                        (172.0 + 35.0 * nuc[pix], lerp3(HE_RIM, HE_NUCLEUS, he))
                    } else {
                        (88.0, HE_MATRIX)
                    }
                }
                2 => {
                    let he = if is_plane { nuc_he[pix] } else { 0.0 };
                    (148.0 + 80.0 * nuc[pix], lerp3(HE_CYTOPLASM, HE_NUCLEUS, he))
                }
                3 => {
                    let st = stripe(x);
                    let c = std::array::from_fn(|i| HE_STROMA[i] - st * HE_STROMA_BAND[i]);
                    (130.0 + 24.0 * st, c)
                }
                _ => {
                    if fat_row != Some(y) {
                        fat.row_table(z, y, &mut fat_table);
                        fat_row = Some(y);
                    }
                    let m = fat.membrane(&fat_table, x);
                    (82.0 + 100.0 * m, lerp3(HE_FAT, HE_MEMBRANE, m))
                }
            };
            let v = if label == 0 {
                v
            } else {
                v + 5.0 * shade_row[x] + 6.0 * n
            };
            vol[pix] = (v.clamp(0.0, 255.0) + 0.5) as u8;
            if is_plane {
                let tint = if label == 0 { 0.0 } else { 4.0 * shade_row[x] };
                for (c, col) in colour.iter().enumerate() {
                    let e: f32 = he_noise.sample(StandardNormal);
                    rgb[pix * 3 + c] = ((col + tint + 5.0 * e).clamp(0.0, 255.0) + 0.5) as u8;
                }
            }
        }
    }
    box_sum_2d(lab, ny, nx, boxsum);
    is_plane.then_some(rgb)
}

/// Box sums (radius [`IMMUNE_RADIUS`], clipped at the edges) of the tumour indicator.
fn box_sum_2d(lab: &[u8], ny: usize, nx: usize, out: &mut [u16]) {
    let r = IMMUNE_RADIUS;
    if !lab.contains(&2) {
        out.fill(0);
        return;
    }
    let mut h = vec![0u16; ny * nx];
    for (lrow, hrow) in lab.chunks_exact(nx).zip(h.chunks_exact_mut(nx)) {
        if !lrow.contains(&2) {
            continue;
        }
        let t = |x: usize| u16::from(lrow[x] == 2);
        let mut acc: u16 = (0..=r.min(nx - 1)).map(t).sum();
        for (x, hv) in hrow.iter_mut().enumerate() {
            *hv = acc;
            if x + r + 1 < nx {
                acc += t(x + r + 1);
            }
            if x >= r {
                acc -= t(x - r);
            }
        }
    }
    let mut acc = vec![0u16; nx];
    for row in h.chunks_exact(nx).take(r.min(ny - 1) + 1) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
    for y in 0..ny {
        out[y * nx..(y + 1) * nx].copy_from_slice(&acc);
        if y + r + 1 < ny {
            let add = &h[(y + r + 1) * nx..][..nx];
            acc.iter_mut().zip(add).for_each(|(a, v)| *a += v);
        }
        if y >= r {
            let sub = &h[(y - r) * nx..][..nx];
            acc.iter_mut().zip(sub).for_each(|(a, v)| *a -= v);
        }
    }
}

// ---------------------------------------------------------------------------------
// Spots and expression.

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
fn spot_axis(n: usize) -> Vec<f64> {
    let k = (n - SPOT_DIAM) / PITCH + 1;
    (0..k)
        .map(|i| (n as f64 - 1.0) / 2.0 + (i as f64 - (k as f64 - 1.0) / 2.0) * PITCH as f64)
        .collect()
}

/// Measure every spot of plane `pz`: compartment fractions and immune score over the
/// disc and the section, keeping spots that are at least half tissue.
fn measure_plane(shape: [usize; 3], labels: &[u8], boxsum: &[u16], pz: usize) -> Vec<Spot> {
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
fn programs(seed: u64) -> Vec<Vec<f64>> {
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
fn express(seed: u64, spot: &mut Spot, programs: &[Vec<f64>]) {
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

// ---------------------------------------------------------------------------------
// The whole phantom in memory.

/// Everything generated, before it is written.
pub(crate) struct Phantom {
    pub params: PhantomParams,
    pub volume: Vec<u8>,
    pub labels: Vec<u8>,
    /// (z, RGB bytes Y x X x 3) per plane.
    pub planes: Vec<(usize, Vec<u8>)>,
    pub spots: Vec<Spot>,
    pub programs: Vec<Vec<f64>>,
    /// Voxel counts per label 0..=4.
    pub label_counts: [u64; 5],
}

/// Generate the phantom in memory.
pub(crate) fn build(params: &PhantomParams) -> Result<Phantom> {
    params.validate()?;
    let ctx = Ctx::new(params);
    let [nz, ny, nx] = params.shape;
    let yx = ny * nx;
    let mut volume = vec![0u8; nz * yx];
    let mut labels = vec![0u8; nz * yx];
    let mut boxsum = vec![0u16; nz * yx];
    let rendered: Vec<Option<Vec<u8>>> = volume
        .par_chunks_mut(yx)
        .zip(labels.par_chunks_mut(yx))
        .zip(boxsum.par_chunks_mut(yx))
        .enumerate()
        .map(|(z, ((v, l), b))| render_slice(&ctx, z, v, l, b))
        .collect();
    let planes: Vec<(usize, Vec<u8>)> = rendered
        .into_iter()
        .enumerate()
        .filter_map(|(z, rgb)| rgb.map(|rgb| (z, rgb)))
        .collect();
    let label_counts = labels
        .par_chunks(yx)
        .map(|s| {
            let mut c = [0u64; 5];
            s.iter().for_each(|&l| c[l as usize] += 1);
            c
        })
        .reduce(|| [0u64; 5], |a, b| std::array::from_fn(|i| a[i] + b[i]));
    let programs = programs(params.seed);
    let mut spots: Vec<Spot> = ctx
        .planes
        .par_iter()
        .map(|&pz| measure_plane(params.shape, &labels, &boxsum, pz))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    drop(boxsum);
    spots
        .par_iter_mut()
        .for_each(|s| express(params.seed, s, &programs));
    Ok(Phantom {
        params: params.clone(),
        volume,
        labels,
        planes,
        spots,
        programs,
        label_counts,
    })
}

// ---------------------------------------------------------------------------------
// Writing.

fn prepare_dir(dir: &Path, overwrite: bool) -> Result<()> {
    let name = dir.display().to_string();
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::bad_input(name, "exists and is not a directory"));
        }
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.next().is_some() && !overwrite {
            return Err(Error::bad_input(
                name,
                "output directory exists and is not empty; choose another --out or pass --force",
            ));
        }
    }
    for d in [dir.to_path_buf(), dir.join("planes"), dir.join("truth")] {
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    Ok(())
}

fn other(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

fn write_png(path: &Path, rgb: &[u8], ny: usize, nx: usize) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), nx as u32, ny as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header().map_err(|e| other(path, e))?;
    w.write_image_data(rgb).map_err(|e| other(path, e))?;
    w.finish().map_err(|e| other(path, e))
}

fn write_parquet(path: &Path, columns: Vec<(String, ArrayRef)>) -> Result<()> {
    let batch = RecordBatch::try_from_iter(columns).map_err(|e| other(path, e))?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| other(path, e))?;
    w.write(&batch).map_err(|e| other(path, e))?;
    w.close().map_err(|e| other(path, e))?;
    Ok(())
}

/// `phantom.json`, fields in this order.
#[derive(Serialize)]
struct Meta<'a> {
    format: &'a str,
    seed: u64,
    shape: [usize; 3],
    voxel_um: [f64; 3],
    dtype: &'a str,
    compartments: [&'a str; 5],
    plane_step: usize,
    planes_z: &'a [usize],
    spot: serde_json::Value,
    n_spots: usize,
    genes: &'a [String],
    programs: Programs<'a>,
    expression: serde_json::Value,
    tissue_fraction: f64,
    compartment_fractions: [f64; 4],
    files: serde_json::Value,
}

/// Gene programs in [`PROGRAMS`] order.
#[derive(Serialize)]
struct Programs<'a> {
    gland: &'a [f64],
    tumour: &'a [f64],
    stroma: &'a [f64],
    fat: &'a [f64],
    immune: &'a [f64],
}

fn plane_file(z: usize) -> String {
    format!("planes/plane_{z:03}.png")
}

fn write(ph: &Phantom, dir: &Path) -> Result<PhantomSummary> {
    let p = &ph.params;
    let [_, ny, nx] = p.shape;
    let genes = gene_names();

    // Stale planes of an earlier run (with --force) would contradict phantom.json.
    let planes_dir = dir.join("planes");
    let keep: Vec<String> = ph
        .planes
        .iter()
        .map(|(z, _)| format!("plane_{z:03}.png"))
        .collect();
    for e in std::fs::read_dir(&planes_dir).map_err(|e| Error::io(&planes_dir, e))? {
        let e = e.map_err(|e| Error::io(&planes_dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("plane_") && name.ends_with(".png") && !keep.contains(&name) {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }

    let files = PhantomFiles {
        volume: dir.join("volume.npy"),
        labels: dir.join("labels.npy"),
        planes: ph
            .planes
            .iter()
            .map(|(z, _)| dir.join(plane_file(*z)))
            .collect(),
        spots: dir.join("spots.parquet"),
        truth: dir.join("truth/spots_truth.parquet"),
        meta: dir.join("phantom.json"),
    };
    vecio::write_u8_npy(&files.volume, &p.shape, &ph.volume)?;
    vecio::write_u8_npy(&files.labels, &p.shape, &ph.labels)?;
    ph.planes
        .par_iter()
        .zip(&files.planes)
        .try_for_each(|((_, rgb), path)| write_png(path, rgb, ny, nx))?;

    let s = &ph.spots;
    let mut cols: Vec<(String, ArrayRef)> = vec![
        (
            "spot".into(),
            Arc::new(StringArray::from_iter_values(s.iter().map(|s| &s.name))),
        ),
        (
            "plane_z".into(),
            Arc::new(Int32Array::from_iter_values(
                s.iter().map(|s| s.plane_z as i32),
            )),
        ),
        (
            "z".into(),
            Arc::new(Float64Array::from_iter_values(
                s.iter().map(|s| s.plane_z as f64),
            )),
        ),
        (
            "y".into(),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.y))),
        ),
        (
            "x".into(),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.x))),
        ),
        (
            "row".into(),
            Arc::new(Int32Array::from_iter_values(s.iter().map(|s| s.row as i32))),
        ),
        (
            "col".into(),
            Arc::new(Int32Array::from_iter_values(s.iter().map(|s| s.col as i32))),
        ),
    ];
    for (g, name) in genes.iter().enumerate() {
        cols.push((
            name.clone(),
            Arc::new(UInt32Array::from_iter_values(s.iter().map(|s| s.counts[g]))),
        ));
    }
    write_parquet(&files.spots, cols)?;

    let mut cols: Vec<(String, ArrayRef)> = vec![(
        "spot".into(),
        Arc::new(StringArray::from_iter_values(s.iter().map(|s| &s.name))),
    )];
    for (k, name) in PROGRAMS[..4].iter().enumerate() {
        cols.push((
            format!("frac_{name}"),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.frac[k]))),
        ));
    }
    cols.push((
        "immune".into(),
        Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.immune))),
    ));
    for (g, name) in genes.iter().enumerate() {
        cols.push((
            format!("expected_{name}"),
            Arc::new(Float64Array::from_iter_values(
                s.iter().map(|s| s.expected[g]),
            )),
        ));
    }
    write_parquet(&files.truth, cols)?;

    let tissue: u64 = ph.label_counts[1..].iter().sum();
    let total: u64 = ph.label_counts.iter().sum();
    let compartment_fractions: [f64; 4] =
        std::array::from_fn(|k| ph.label_counts[k + 1] as f64 / tissue.max(1) as f64);
    let planes_z: Vec<usize> = ph.planes.iter().map(|(z, _)| *z).collect();
    let pr = &ph.programs;
    let meta = Meta {
        format: FORMAT,
        seed: p.seed,
        shape: p.shape,
        voxel_um: [VOXEL_UM; 3],
        dtype: "uint8",
        compartments: COMPARTMENTS,
        plane_step: p.plane_step,
        planes_z: &planes_z,
        spot: json!({
            "pitch_um": SPOT_PITCH_UM, "diameter_um": SPOT_DIAMETER_UM, "section_um": SECTION_UM,
            "pitch_vox": PITCH, "diameter_vox": SPOT_DIAM,
            "section_slices": "plane_z-2 ..= plane_z+1", "min_tissue_fraction": 0.5,
            "rows": spot_axis(ny).len(), "cols": spot_axis(nx).len(),
        }),
        n_spots: s.len(),
        genes: &genes,
        programs: Programs {
            gland: &pr[0],
            tumour: &pr[1],
            stroma: &pr[2],
            fat: &pr[3],
            immune: &pr[4],
        },
        expression: json!({
            "library_mean": LIBRARY_MEAN, "library_log_sd": LIBRARY_LOG_SD,
            "nb_shape": NB_SHAPE, "immune_weight": IMMUNE_WEIGHT,
            "immune_blur_radius_vox": IMMUNE_RADIUS,
            "expected": "log1p(1e4 * sum_k w_k p_k), w = (fractions, immune_weight * immune) / sum",
        }),
        tissue_fraction: tissue as f64 / total.max(1) as f64,
        compartment_fractions,
        files: json!({
            "volume": "volume.npy", "labels": "labels.npy",
            "planes": ph.planes.iter().map(|(z, _)| plane_file(*z)).collect::<Vec<_>>(),
            "spots": "spots.parquet", "truth": "truth/spots_truth.parquet",
        }),
    };
    let text = serde_json::to_string_pretty(&meta).expect("json") + "\n";
    std::fs::write(&files.meta, text).map_err(|e| Error::io(&files.meta, e))?;

    Ok(PhantomSummary {
        out_dir: dir.to_path_buf(),
        seed: p.seed,
        shape: p.shape,
        planes_z,
        n_spots: s.len(),
        genes,
        tissue_fraction: tissue as f64 / total.max(1) as f64,
        compartment_fractions,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64, shape: [usize; 3], plane_step: usize) -> PhantomParams {
        PhantomParams {
            seed,
            shape,
            plane_step,
            overwrite: false,
        }
    }

    fn build_with_threads(p: &PhantomParams, threads: usize) -> Phantom {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| build(p).unwrap())
    }

    fn same(a: &Phantom, b: &Phantom) -> bool {
        a.volume == b.volume
            && a.labels == b.labels
            && a.planes == b.planes
            && a.programs == b.programs
            && a.spots.len() == b.spots.len()
            && a.spots.iter().zip(&b.spots).all(|(x, y)| {
                x.name == y.name
                    && x.counts == y.counts
                    && x.expected == y.expected
                    && x.frac == y.frac
                    && x.immune == y.immune
            })
    }

    #[test]
    fn deterministic_whatever_the_thread_count() {
        let p = params(5, [32, 256, 256], 16);
        let one = build_with_threads(&p, 1);
        let three = build_with_threads(&p, 3);
        assert!(
            same(&one, &three),
            "1 and 3 threads gave different phantoms"
        );
        let other = build_with_threads(&params(6, [32, 256, 256], 16), 2);
        assert_ne!(one.volume, other.volume);
        assert_ne!(one.labels, other.labels);
        assert_eq!(
            one.planes.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![8, 24]
        );
        assert!(!one.spots.is_empty());
    }

    /// Label fractions of the tissue in one slice.
    fn slice_fractions(ph: &Phantom, z: usize) -> [f64; 4] {
        let [_, ny, nx] = ph.params.shape;
        let s = &ph.labels[z * ny * nx..(z + 1) * ny * nx];
        let mut c = [0usize; 5];
        s.iter().for_each(|&l| c[l as usize] += 1);
        let tissue: usize = c[1..].iter().sum();
        std::array::from_fn(|k| c[k + 1] as f64 / tissue as f64)
    }

    #[test]
    fn every_compartment_in_every_plane_with_distinct_textures() {
        for seed in [1, 2] {
            let ph = build(&params(seed, [48, 512, 512], 8)).unwrap();
            let tissue: u64 = ph.label_counts[1..].iter().sum();
            let total: u64 = ph.label_counts.iter().sum();
            let tf = tissue as f64 / total as f64;
            assert!((0.5..0.8).contains(&tf), "tissue fraction {tf}");
            for (name, count) in COMPARTMENTS.iter().zip(ph.label_counts).skip(1) {
                let f = count as f64 / tissue as f64;
                assert!(
                    (0.05..=0.60).contains(&f),
                    "seed {seed}: {name} takes {f:.3} of the tissue"
                );
            }
            for (z, _) in &ph.planes {
                let f = slice_fractions(&ph, *z);
                assert!(
                    f.iter().all(|&v| v >= 0.03),
                    "seed {seed}, plane z={z}: fractions {f:?}"
                );
            }
            // Texture statistics per label.
            let mut sum = [0f64; 5];
            let mut sq = [0f64; 5];
            let mut n = [0f64; 5];
            for (&v, &l) in ph.volume.iter().zip(&ph.labels) {
                let (v, l) = (v as f64, l as usize);
                sum[l] += v;
                sq[l] += v * v;
                n[l] += 1.0;
            }
            let mean: [f64; 5] = std::array::from_fn(|k| sum[k] / n[k]);
            let sd: [f64; 5] = std::array::from_fn(|k| (sq[k] / n[k] - mean[k] * mean[k]).sqrt());
            assert!(
                mean[0] < 10.0 && sd[0] < 3.0,
                "background {} +- {}",
                mean[0],
                sd[0]
            );
            for a in 1..5 {
                assert!(mean[a] > 60.0, "{} mean {}", COMPARTMENTS[a], mean[a]);
                for b in a + 1..5 {
                    let (dm, ds) = ((mean[a] - mean[b]).abs(), (sd[a] - sd[b]).abs());
                    assert!(
                        dm >= 10.0 && (dm >= 20.0 || ds >= 5.0),
                        "{} ({:.1} +- {:.1}) and {} ({:.1} +- {:.1}) are too alike",
                        COMPARTMENTS[a],
                        mean[a],
                        sd[a],
                        COMPARTMENTS[b],
                        mean[b],
                        sd[b]
                    );
                }
            }
            // Otsu's threshold separates air from tissue.
            let mut hist = [0f64; 256];
            ph.volume.iter().for_each(|&v| hist[v as usize] += 1.0);
            let (mut best, mut t_best) = (0.0, 0);
            let (mut w0, mut s0) = (0.0, 0.0);
            let s_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
            for (t, h) in hist.iter().enumerate().take(255) {
                w0 += h;
                s0 += t as f64 * h;
                let w1 = total as f64 - w0;
                if w0 == 0.0 || w1 == 0.0 {
                    continue;
                }
                let d = s0 / w0 - (s_all - s0) / w1;
                let between = w0 * w1 * d * d;
                if between > best {
                    (best, t_best) = (between, t);
                }
            }
            let agree = ph
                .volume
                .iter()
                .zip(&ph.labels)
                .filter(|&(&v, &l)| (v as usize > t_best) == (l > 0))
                .count() as f64
                / total as f64;
            eprintln!(
                "seed {seed}: mean {mean:.1?} sd {sd:.1?} Otsu {t_best} agreement {agree:.4}"
            );
            assert!(
                agree > 0.98,
                "Otsu threshold {t_best} agrees with the tissue on {agree:.4}"
            );
        }
    }

    #[test]
    fn spots_are_centred_and_measured() {
        assert_eq!(
            spot_axis(640),
            (0..13).map(|i| 19.5 + 50.0 * i as f64).collect::<Vec<_>>()
        );
        assert_eq!(spot_axis(25), vec![12.0]);
        assert_eq!(spot_axis(74), vec![36.5]);
        let ph = build(&params(3, [32, 256, 256], 16)).unwrap();
        for s in &ph.spots {
            let total: f64 = s.frac.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{}: {:?}", s.name, s.frac);
            assert!((0.0..=1.0).contains(&s.immune));
            assert_eq!(s.counts.len(), N_GENES);
            assert_eq!(s.expected.len(), N_GENES);
            // Expected expression sums to 1e4 before log1p.
            let norm: f64 = s.expected.iter().map(|e| e.exp_m1()).sum();
            assert!((norm - 1e4).abs() < 1e-6, "{norm}");
        }
        for p in &ph.programs {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn box_sums_match_brute_force() {
        let (ny, nx) = (40, 57);
        let lab: Vec<u8> = (0..ny * nx).map(|i| (mix(i as u64) % 5) as u8).collect();
        let mut out = vec![0u16; ny * nx];
        box_sum_2d(&lab, ny, nx, &mut out);
        let r = IMMUNE_RADIUS as i64;
        for y in 0..ny as i64 {
            for x in 0..nx as i64 {
                let mut c = 0;
                for yy in (y - r).max(0)..=(y + r).min(ny as i64 - 1) {
                    for xx in (x - r).max(0)..=(x + r).min(nx as i64 - 1) {
                        c += u16::from(lab[(yy * nx as i64 + xx) as usize] == 2);
                    }
                }
                assert_eq!(out[(y * nx as i64 + x) as usize], c, "at {y},{x}");
            }
        }
    }

    #[test]
    fn parameters_are_checked() {
        let msg = |p: PhantomParams| p.validate().unwrap_err().to_string();
        assert!(msg(params(0, [8, 20, 256], 4)).contains("--shape"));
        assert!(msg(params(0, [0, 256, 256], 4)).contains("--shape"));
        assert!(msg(params(0, [8, 256, 256], 0)).contains("--plane-step"));
        assert!(msg(params(0, [4, 256, 256], 16)).contains("--plane-step"));
        assert!(msg(params(0, [4096, 4096, 4096], 16)).contains("too large"));
        assert!(PhantomParams::default().validate().is_ok());
        assert_eq!(
            PhantomParams::default().planes_z(),
            vec![8, 24, 40, 56, 72, 88]
        );
        assert_eq!(gene_names().len(), 60);
        assert_eq!(gene_names()[0], "GLD01");
        assert_eq!(gene_names()[59], "HK10");
    }

    #[test]
    fn u8_npy_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let data: Vec<u8> = (0..2 * 3 * 5).map(|i| i as u8).collect();
        vecio::write_u8_npy(&path, &[2, 3, 5], &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[2, 3, 5]);
        assert_eq!(npy.dtype().descr(), "'|u1'");
        let back: Vec<u8> = npy.into_vec().unwrap();
        assert_eq!(back, data);
        assert_eq!((bytes.len() - data.len()) % 64, 0);
    }
}
