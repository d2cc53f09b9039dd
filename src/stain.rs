//! Stain normalisation of H&E images (Macenko et al. 2009), applied at ingest.
//!
//! Two labs, or two days of one lab, stain and scan the same tissue differently: more
//! haematoxylin, less eosin, another scanner's white balance. A model trained on one
//! lab's slides then sees colours it never saw. Normalisation maps every section to a
//! reference slide's stain before it is embedded:
//!
//! 1. pixels become optical densities (OD = -ln I, brightfield), and tissue is the
//!    pixels whose OD exceeds 0.15 on every channel;
//! 2. the two stain vectors span the plane of the tissue ODs' two largest principal
//!    axes; within it they are the directions at the 1st and 99th percentile of the
//!    angle (haematoxylin the one absorbing more red);
//! 3. each pixel's stain amounts are its OD unmixed on those vectors; amounts are
//!    scaled so that their 99th percentiles over the tissue equal the reference's, and
//!    the pixel is mixed again with the reference's vectors.
//!
//! The estimate is made per section (per slice of a source), so each slide of a stack
//! is normalised on its own. A slice with too little tissue to estimate passes through
//! unchanged. What lies off the two-stain plane (DAB, pen marks, residue) is dropped, as
//! in the method.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::volume::{ImageStack, Slice, VolumeInfo, VolumeSource};

/// Optical density above which, on every channel, a pixel counts as tissue.
const TISSUE_OD: f64 = 0.15;
/// At most this many tissue pixels are used for an estimate (an even subsample).
const MAX_SAMPLES: usize = 400_000;
/// Fewer tissue pixels than this and a slice has no estimate.
const MIN_TISSUE_PIXELS: usize = 500;

/// A slide's stain: the unit OD vectors of haematoxylin and eosin (RGB) and the 99th
/// percentile of each stain's amount over the tissue.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StainBasis {
    /// Haematoxylin's and eosin's optical-density directions (unit, RGB).
    pub vectors: [[f64; 3]; 2],
    /// 99th percentile of the haematoxylin and eosin amounts over the tissue.
    pub max_amount: [f64; 2],
}

fn od(v: f32) -> f64 {
    // 8-bit brightfield: 0 -> 1/256 transmission, so OD stays finite.
    -((f64::from(v.clamp(0.0, 1.0)) * 255.0 + 1.0) / 256.0).ln()
}

fn from_od(d: f64) -> f32 {
    ((256.0 * (-d).exp() - 1.0) / 255.0).clamp(0.0, 1.0) as f32
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = dot(&a, &a).sqrt().max(1e-12);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Eigenvalues and eigenvectors (columns of the returned rows' transpose: `vecs[k]` is
/// the k-th eigenvector) of a symmetric 3 x 3 matrix, by cyclic Jacobi rotations,
/// sorted by decreasing eigenvalue.
pub(crate) fn symmetric_eigen3(m: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..64 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        if off < 1e-30 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-300 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
            // a <- J^T a J, v <- v J with J the rotation in the (p, q) plane.
            for row in &mut a {
                let (akp, akq) = (row[p], row[q]);
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (rp, rq) = (a[p], a[q]);
            for k in 0..3 {
                a[p][k] = c * rp[k] - s * rq[k];
                a[q][k] = s * rp[k] + c * rq[k];
            }
            for row in &mut v {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    let mut order = [0usize, 1, 2];
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let vals = order.map(|i| a[i][i]);
    let vecs = order.map(|i| [v[0][i], v[1][i], v[2][i]]);
    (vals, vecs)
}

fn percentile(mut xs: Vec<f64>, q: f64) -> f64 {
    let k = ((xs.len() - 1) as f64 * q).round() as usize;
    *xs.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Unmixing: the least-squares stain amounts of an OD vector on two stain vectors.
struct Unmix {
    pinv: [[f64; 3]; 2],
}

impl Unmix {
    fn new(v: &[[f64; 3]; 2]) -> Unmix {
        let (a, b, c) = (dot(&v[0], &v[0]), dot(&v[0], &v[1]), dot(&v[1], &v[1]));
        let det = (a * c - b * b).max(1e-12);
        let (i00, i01, i11) = (c / det, -b / det, a / det);
        let row = |x: f64, y: f64| std::array::from_fn(|k| x * v[0][k] + y * v[1][k]);
        Unmix {
            pinv: [row(i00, i01), row(i01, i11)],
        }
    }

    fn amounts(&self, d: &[f64; 3]) -> [f64; 2] {
        [dot(&self.pinv[0], d), dot(&self.pinv[1], d)]
    }
}

impl StainBasis {
    /// Estimate the stain of one RGB slice; `None` when it holds fewer than a few
    /// hundred tissue pixels or its tissue shows a single colour (no second stain).
    pub fn estimate(slice: &Slice) -> Option<StainBasis> {
        if slice.channels != 3 {
            return None;
        }
        let n = slice.h * slice.w;
        let (r, g, b) = (
            &slice.data[..n],
            &slice.data[n..2 * n],
            &slice.data[2 * n..3 * n],
        );
        let tissue: Vec<usize> = (0..n)
            .filter(|&i| [r[i], g[i], b[i]].iter().all(|&v| od(v) > TISSUE_OD))
            .collect();
        if tissue.len() < MIN_TISSUE_PIXELS {
            return None;
        }
        let step = tissue.len().div_ceil(MAX_SAMPLES);
        let ods: Vec<[f64; 3]> = tissue
            .iter()
            .step_by(step)
            .map(|&i| [od(r[i]), od(g[i]), od(b[i])])
            .collect();
        let k = ods.len() as f64;
        let mean: [f64; 3] = std::array::from_fn(|c| ods.iter().map(|d| d[c]).sum::<f64>() / k);
        let mut cov = [[0.0; 3]; 3];
        for d in &ods {
            for (i, row) in cov.iter_mut().enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x += (d[i] - mean[i]) * (d[j] - mean[j]) / k;
                }
            }
        }
        let (vals, vecs) = symmetric_eigen3(cov);
        if vals[1].is_nan() || vals[1] <= 1e-9 {
            return None;
        }
        // Both axes pointing into positive OD.
        let orient = |e: [f64; 3]| {
            if e.iter().sum::<f64>() < 0.0 {
                e.map(|x| -x)
            } else {
                e
            }
        };
        let (e1, e2) = (orient(vecs[0]), orient(vecs[1]));
        let angles: Vec<f64> = ods.iter().map(|d| dot(d, &e2).atan2(dot(d, &e1))).collect();
        let lo = percentile(angles.clone(), 0.01);
        let hi = percentile(angles, 0.99);
        let dir = |phi: f64| {
            unit(std::array::from_fn(|c| {
                e1[c] * phi.cos() + e2[c] * phi.sin()
            }))
        };
        let (v_lo, v_hi) = (dir(lo), dir(hi));
        // Haematoxylin absorbs more red than eosin does.
        let vectors = if v_lo[0] > v_hi[0] {
            [v_lo, v_hi]
        } else {
            [v_hi, v_lo]
        };
        let unmix = Unmix::new(&vectors);
        let (mut h, mut e) = (Vec::with_capacity(ods.len()), Vec::with_capacity(ods.len()));
        for d in &ods {
            let a = unmix.amounts(d);
            h.push(a[0]);
            e.push(a[1]);
        }
        let max_amount = [percentile(h, 0.99), percentile(e, 0.99)];
        if max_amount.iter().any(|m| m.is_nan() || *m <= 1e-6) {
            return None;
        }
        Some(StainBasis {
            vectors,
            max_amount,
        })
    }

    /// The stain of a reference image (PNG, JPEG or TIFF, RGB, read whole): an error
    /// naming the file when it is not RGB or shows too little stained tissue.
    pub fn from_image(path: &Path) -> Result<StainBasis> {
        let mut src =
            ImageStack::open_files(vec![path.to_path_buf()], path.display().to_string(), None)?;
        if src.info().channels != 3 {
            return Err(Error::bad_file(
                path,
                format!(
                    "a stain reference must be an RGB H&E image; this one has {} channel(s)",
                    src.info().channels
                ),
            ));
        }
        let slice = src.read_slice(0)?;
        Self::estimate(&slice).ok_or_else(|| {
            Error::bad_file(
                path,
                format!(
                    "too little stained tissue to estimate a stain from (needs {MIN_TISSUE_PIXELS} \
                     pixels with optical density above {TISSUE_OD} on every channel, and two stains)"
                ),
            )
        })
    }

    /// Map `slice` (whose stain is `self`) onto the stain `to`, in place.
    pub fn normalize(&self, slice: &mut Slice, to: &StainBasis) {
        if slice.channels != 3 {
            return;
        }
        let unmix = Unmix::new(&self.vectors);
        let gain = [
            to.max_amount[0] / self.max_amount[0],
            to.max_amount[1] / self.max_amount[1],
        ];
        let n = slice.h * slice.w;
        for i in 0..n {
            let d = [
                od(slice.data[i]),
                od(slice.data[n + i]),
                od(slice.data[2 * n + i]),
            ];
            let a = unmix.amounts(&d);
            let (h, e) = ((a[0] * gain[0]).max(0.0), (a[1] * gain[1]).max(0.0));
            for c in 0..3 {
                slice.data[c * n + i] = from_od(h * to.vectors[0][c] + e * to.vectors[1][c]);
            }
        }
    }
}

/// A source whose slices are stain-normalised to a reference as they are read.
pub struct StainNormalized<'a> {
    inner: Box<dyn VolumeSource + 'a>,
    reference: StainBasis,
    info: VolumeInfo,
    normalized: usize,
}

impl<'a> StainNormalized<'a> {
    /// Normalise `inner` (RGB) to the stain of the image at `reference` (listed among the
    /// source files, so that another reference makes another ingest fingerprint).
    pub fn new(inner: Box<dyn VolumeSource + 'a>, reference: &Path) -> Result<Self> {
        if inner.info().channels != 3 {
            return Err(Error::bad_input(
                &inner.info().source,
                format!(
                    "stain normalisation needs RGB H&E images; this source has {} channel(s)",
                    inner.info().channels
                ),
            ));
        }
        let basis = StainBasis::from_image(reference)?;
        let mut info = inner.info().clone();
        info.files.push(PathBuf::from(reference));
        Ok(StainNormalized {
            inner,
            reference: basis,
            info,
            normalized: 0,
        })
    }

    /// Slices normalised so far (the others had too little tissue and passed unchanged).
    pub fn normalized(&self) -> usize {
        self.normalized
    }
}

impl VolumeSource for StainNormalized<'_> {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        let mut s = self.inner.read_slice(z)?;
        match StainBasis::estimate(&s) {
            Some(b) => {
                b.normalize(&mut s, &self.reference);
                self.normalized += 1;
            }
            None => log::info!(
                "{}: slice {z} has too little tissue to estimate its stain; read unchanged",
                self.info.source
            ),
        }
        Ok(s)
    }

    fn voxel_um(&self) -> Option<[f64; 3]> {
        self.inner.voxel_um()
    }

    fn level_factor(&self) -> [f64; 3] {
        self.inner.level_factor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_matches_a_known_decomposition() {
        // Eigenvalues 6, 3, 1 with known vectors.
        let q = [
            unit([1.0, 1.0, 0.0]),
            unit([1.0, -1.0, 1.0]),
            unit([-1.0, 1.0, 2.0]),
        ];
        let l = [6.0, 3.0, 1.0];
        let m: [[f64; 3]; 3] = std::array::from_fn(|i| {
            std::array::from_fn(|j| (0..3).map(|k| l[k] * q[k][i] * q[k][j]).sum())
        });
        let (vals, vecs) = symmetric_eigen3(m);
        for k in 0..3 {
            assert!((vals[k] - l[k]).abs() < 1e-9, "{vals:?}");
            assert!(dot(&vecs[k], &q[k]).abs() > 1.0 - 1e-9, "{vecs:?}");
        }
    }

    #[test]
    fn od_round_trips() {
        for v in [0.0f32, 0.1, 0.5, 0.93, 1.0] {
            assert!((from_od(od(v)) - v).abs() < 1e-6);
        }
    }
}
