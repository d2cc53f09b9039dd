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
//! use vortexdb::{generate_phantom as generate, PhantomParams};
//! let summary = generate(&PhantomParams { seed: 7, ..Default::default() }, "phantom-out").unwrap();
//! println!("{} spots on planes {:?}", summary.n_spots, summary.planes_z);
//! ```

mod ctx;
mod files;
mod noise;
mod oblique;
mod render;
mod spots;
mod summary;
#[cfg(test)]
mod tests;
mod texture;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use ctx::Ctx;
use files::{prepare_dir, write};
pub use oblique::ObliqueTruth;
use render::render_slice;
use spots::{Spot, express, measure_plane, programs};

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
    /// H&E sections on random oblique planes (`oblique/section_NN.png` with
    /// `oblique/spots_NN.parquet`; each plane recorded in `phantom.json`), for scoring a
    /// section-to-volume registration (default 0).
    pub oblique: usize,
}

impl PhantomParams {
    /// The phantom of `seed` and `shape` (planes every 16 slices, into an empty
    /// directory).
    pub fn new(seed: u64, shape: [usize; 3]) -> Self {
        PhantomParams {
            seed,
            shape,
            ..Default::default()
        }
    }
}

impl Default for PhantomParams {
    fn default() -> Self {
        PhantomParams {
            seed: 0,
            shape: [96, 640, 640],
            plane_step: 16,
            overwrite: false,
            oblique: 0,
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
            return Err(Error::arg(
                "shape",
                format!("every dimension must be at least 1 (got {z},{y},{x})"),
            ));
        }
        if y < SPOT_DIAM || x < SPOT_DIAM {
            return Err(Error::arg(
                "shape",
                format!(
                    "Y and X must be at least {SPOT_DIAM} voxels to hold one {SPOT_DIAMETER_UM}-um spot \
                     at {VOXEL_UM} um per voxel (got {z},{y},{x})"
                ),
            ));
        }
        if z.saturating_mul(y).saturating_mul(x) > MAX_VOXELS {
            return Err(Error::arg(
                "shape",
                format!("{z}x{y}x{x} is too large (at most 2^31 voxels)"),
            ));
        }
        if self.plane_step == 0 {
            return Err(Error::arg("plane_step", "must be at least 1"));
        }
        if self.oblique > 100 {
            return Err(Error::arg(
                "oblique",
                format!("at most 100 oblique sections (got {})", self.oblique),
            ));
        }
        if self.plane_step / 2 >= z {
            return Err(Error::arg(
                "plane_step",
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
    /// `labels.npy`: uint8 (Z, Y, X) compartment labels (0 background, 1 gland, 2 tumour, 3 stroma, 4 fat).
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
    /// Wall time of [`generate`].
    pub seconds: f64,
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
    let t = std::time::Instant::now();
    let out_dir = out_dir.as_ref();
    params.validate()?;
    prepare_dir(out_dir, params.overwrite)?;
    let ph = build(params)?;
    let mut summary = write(&ph, out_dir)?;
    summary.seconds = t.elapsed().as_secs_f64();
    Ok(summary)
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
    /// The oblique sections.
    pub oblique: Vec<oblique::Oblique>,
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
    let side = oblique::side(params.shape);
    let oblique: Vec<oblique::Oblique> = (0..params.oblique)
        .into_par_iter()
        .map(|i| {
            oblique::render(
                params.seed,
                i,
                params.shape,
                side,
                &volume,
                &labels,
                &boxsum,
                &programs,
            )
        })
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
        oblique,
    })
}
