//! From a source at its own voxel size to model-resolution patches: separable
//! resampling (area-weighted when shrinking, linear when enlarging), channel conversion,
//! an Otsu tissue mask, and the overlapping patch grid.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Slice, VolumeSource};
use crate::error::{Error, Result};

/// Per output index, the input indices and weights (summing to 1) that make it.
type Weights = Vec<Vec<(usize, f32)>>;

/// Output length of an axis of `n` voxels resampled by `scale` (output voxels per input
/// voxel).
pub fn resampled_len(n: usize, scale: f64) -> usize {
    if (scale - 1.0).abs() < 1e-9 {
        n
    } else {
        ((n as f64) * scale).floor().max(0.0) as usize
    }
}

fn weights(n_in: usize, scale: f64) -> Weights {
    let n_out = resampled_len(n_in, scale);
    if (scale - 1.0).abs() < 1e-9 {
        return (0..n_in).map(|i| vec![(i, 1.0)]).collect();
    }
    (0..n_out)
        .map(|o| {
            if scale < 1.0 {
                // Area overlap of output cell [o/s, (o+1)/s) with input cells [i, i+1).
                let (a, b) = (o as f64 / scale, (o + 1) as f64 / scale);
                let mut w = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n_in {
                    let ov = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                    if ov > 0.0 {
                        w.push((i, ov as f32));
                    }
                    i += 1;
                }
                let s: f32 = w.iter().map(|x| x.1).sum();
                w.iter_mut().for_each(|x| x.1 /= s);
                w
            } else {
                let c = ((o as f64 + 0.5) / scale - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i0 = c.floor() as usize;
                let f = (c - i0 as f64) as f32;
                if i0 + 1 < n_in && f > 0.0 {
                    vec![(i0, 1.0 - f), (i0 + 1, f)]
                } else {
                    vec![(i0, 1.0)]
                }
            }
        })
        .collect()
}

fn resample_plane(src: &[f32], h: usize, w: usize, wy: &Weights, wx: &Weights) -> Vec<f32> {
    let (ho, wo) = (wy.len(), wx.len());
    let mut tmp = vec![0f32; h * wo];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (xo, ws) in wx.iter().enumerate() {
            tmp[y * wo + xo] = ws.iter().map(|&(i, k)| row[i] * k).sum();
        }
    }
    let mut out = vec![0f32; ho * wo];
    for (yo, ws) in wy.iter().enumerate() {
        let dst = &mut out[yo * wo..(yo + 1) * wo];
        for &(i, k) in ws {
            let r = &tmp[i * wo..(i + 1) * wo];
            dst.iter_mut().zip(r).for_each(|(d, s)| *d += s * k);
        }
    }
    out
}

/// A source resampled to the model's voxel size and channel count, read slice by slice
/// with a small cache (memory: a few input slices plus the caller's window).
pub struct Resampled<'a> {
    src: Box<dyn VolumeSource + 'a>,
    shape: [usize; 3],
    channels: usize,
    wz: Weights,
    wy: Weights,
    wx: Weights,
    cache: BTreeMap<usize, Arc<Vec<f32>>>,
}

impl<'a> Resampled<'a> {
    /// Resample `src` with voxel size `voxel_um` (z, y, x) to `target_um` (z, y, x) and
    /// `channels` channels (RGB -> gray by luminance, gray -> RGB by repetition).
    pub fn new(
        src: Box<dyn VolumeSource + 'a>,
        voxel_um: [f64; 3],
        target_um: [f64; 3],
        channels: usize,
        names: [&'static str; 3],
    ) -> Result<Resampled<'a>> {
        let info = src.info().clone();
        for ((v, what), name) in voxel_um.iter().zip(["z", "y", "x"]).zip(names) {
            if !(v.is_finite() && *v > 0.0) {
                return Err(Error::arg(
                    name,
                    format!("voxel size along {what} must be positive, got {v}"),
                ));
            }
        }
        if channels != 1 && channels != 3 {
            return Err(Error::bad_file(
                "manifest.json",
                format!("models with {channels} channels are not supported"),
            ));
        }
        let s: Vec<f64> = (0..3).map(|a| voxel_um[a] / target_um[a]).collect();
        // The resampled size is bounded before any weight table or slice is allocated:
        // ingest holds a patch depth of resampled slices (~200 bytes per slice pixel).
        let out: Vec<f64> = (0..3).map(|a| info.shape[a] as f64 * s[a]).collect();
        if let Some(a) = out.iter().position(|n| !n.is_finite() || *n > 1e9) {
            return Err(Error::arg(
                names[a],
                format!(
                    "{} at {voxel_um:?} um per voxel resamples to {:.3e} x {:.3e} x {:.3e} voxels at the model's {target_um:?} um; the voxel size is wrong",
                    info.source, out[0], out[1], out[2]
                ),
            ));
        }
        crate::limits::alloc_bytes(
            &info.source,
            &[out[1].ceil() as u64, out[2].ceil() as u64],
            200,
            &format!(
                "resampling its slices from {voxel_um:?} um voxels to the model's {target_um:?} um"
            ),
        )
        .map_err(|e| Error::arg(names[1], e.to_string()))?;
        let wz = weights(info.shape[0], s[0]);
        let wy = weights(info.shape[1], s[1]);
        let wx = weights(info.shape[2], s[2]);
        Ok(Resampled {
            shape: [wz.len(), wy.len(), wx.len()],
            src,
            channels,
            wz,
            wy,
            wx,
            cache: BTreeMap::new(),
        })
    }

    /// Shape (z, y, x) at the model's resolution.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn input_plane(&mut self, z: usize) -> Result<Arc<Vec<f32>>> {
        if let Some(p) = self.cache.get(&z) {
            return Ok(p.clone());
        }
        let Slice {
            channels: c,
            h,
            w,
            data,
        } = self.src.read_slice(z)?;
        let plane = |k: usize| &data[k * h * w..(k + 1) * h * w];
        let converted: Vec<Vec<f32>> = match (c, self.channels) {
            (a, b) if a == b => (0..c).map(|k| plane(k).to_vec()).collect(),
            (3, 1) => {
                let (r, g, b) = (plane(0), plane(1), plane(2));
                vec![
                    (0..h * w)
                        .map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i])
                        .collect(),
                ]
            }
            (1, 3) => vec![plane(0).to_vec(); 3],
            (a, b) => {
                return Err(Error::bad_input(
                    &self.src.info().source,
                    format!("cannot convert {a} channel(s) to the model's {b}"),
                ));
            }
        };
        let mut out = Vec::with_capacity(self.channels * self.shape[1] * self.shape[2]);
        for p in converted {
            out.extend(resample_plane(&p, h, w, &self.wy, &self.wx));
        }
        let out = Arc::new(out);
        self.cache.insert(z, out.clone());
        Ok(out)
    }

    /// Output slice `k` (planar C, Y, X). Slices should be requested in increasing
    /// order; input slices no longer needed are dropped from the cache.
    pub fn slice(&mut self, k: usize) -> Result<Vec<f32>> {
        let ws = self.wz[k].clone();
        let lowest = ws.iter().map(|x| x.0).min().unwrap_or(0);
        self.cache.retain(|&z, _| z >= lowest);
        let n = self.channels * self.shape[1] * self.shape[2];
        let mut out = vec![0f32; n];
        for (z, wgt) in ws {
            let p = self.input_plane(z)?;
            out.iter_mut()
                .zip(p.iter())
                .for_each(|(o, v)| *o += v * wgt);
        }
        Ok(out)
    }
}

/// Which side of the Otsu threshold is tissue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Polarity {
    /// Tissue is brighter than background (microCT: tissue denser than air).
    Bright,
    /// Tissue is darker than background (H&E on a white slide).
    Dark,
    /// Every voxel counts as tissue (no mask).
    All,
}

impl std::str::FromStr for Polarity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Polarity> {
        match s {
            "bright" => Ok(Polarity::Bright),
            "dark" => Ok(Polarity::Dark),
            "all" | "none" => Ok(Polarity::All),
            _ => Err(Error::arg(
                "tissue",
                format!("'{s}' is not one of bright, dark, all"),
            )),
        }
    }
}

/// Number of histogram bins of [`otsu`].
pub const OTSU_BINS: usize = 256;

/// Otsu's threshold of a histogram of values in [0, 1] (`OTSU_BINS` bins): the bin
/// edge maximising the between-class variance.
pub fn otsu(hist: &[u64]) -> f32 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.5;
    }
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0) = (0f64, 0f64);
    let (mut best, mut best_t) = (-1f64, 0usize);
    for (t, &c) in hist.iter().enumerate() {
        w0 += c as f64;
        sum0 += t as f64 * c as f64;
        let w1 = total as f64 - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    (best_t + 1) as f32 / hist.len() as f32
}

/// Add a slice's gray values (channel mean) to a histogram, every `step`-th pixel.
pub fn histogram_add(hist: &mut [u64], slice: &[f32], channels: usize, step: usize) {
    let n = slice.len() / channels;
    let bins = hist.len();
    for i in (0..n).step_by(step.max(1)) {
        let g: f32 = (0..channels).map(|c| slice[c * n + i]).sum::<f32>() / channels as f32;
        let b = ((g.clamp(0.0, 1.0) * bins as f32) as usize).min(bins - 1);
        hist[b] += 1;
    }
}

/// Tissue mask of a slice (1 = tissue) as a summed-area table of (h+1) x (w+1).
pub fn mask_integral(
    slice: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    threshold: f32,
    polarity: Polarity,
) -> Vec<u32> {
    let n = h * w;
    let mut sat = vec![0u32; (h + 1) * (w + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            let i = y * w + x;
            let g: f32 = (0..channels).map(|c| slice[c * n + i]).sum::<f32>() / channels as f32;
            let t = match polarity {
                Polarity::Bright => g >= threshold,
                Polarity::Dark => g < threshold,
                Polarity::All => true,
            };
            row += t as u32;
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    sat
}

/// Tissue voxels in rows [y, y+ph) x cols [x, x+pw) of a summed-area table.
pub fn box_count(sat: &[u32], w: usize, y: usize, x: usize, ph: usize, pw: usize) -> u32 {
    let s = w + 1;
    sat[(y + ph) * s + x + pw] + sat[y * s + x] - sat[y * s + x + pw] - sat[(y + ph) * s + x]
}

/// Start positions along an axis: every `stride`, plus a last patch flush with the end
/// so the whole axis is covered. Empty when the axis is shorter than a patch.
pub fn axis_starts(n: usize, size: usize, stride: usize) -> Vec<usize> {
    if n < size || size == 0 {
        return Vec::new();
    }
    let stride = stride.max(1);
    let mut v: Vec<usize> = (0..=(n - size)).step_by(stride).collect();
    if *v.last().expect("non-empty") != n - size {
        v.push(n - size);
    }
    v
}

/// The overlapping patch grid over a model-resolution volume. Patches are numbered in
/// (z, y, x) order; that ordinal is what an interrupted ingest resumes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Volume shape (z, y, x) at the model's resolution.
    pub shape: [usize; 3],
    /// Patch size (depth, height, width).
    pub patch: [usize; 3],
    /// Step between patch origins.
    pub stride: [usize; 3],
    /// Origins along z.
    pub z: Vec<usize>,
    /// Origins along y.
    pub y: Vec<usize>,
    /// Origins along x.
    pub x: Vec<usize>,
}

impl Grid {
    /// The grid with `overlap` (0 <= overlap < 1) between neighbouring patches on every
    /// axis. Fails when the volume is smaller than one patch.
    pub fn new(shape: [usize; 3], patch: [usize; 3], overlap: f64, source: &str) -> Result<Grid> {
        if !(0.0..1.0).contains(&overlap) {
            return Err(Error::arg(
                "overlap",
                format!("{overlap} must be in [0, 1)"),
            ));
        }
        if (0..3).any(|a| shape[a] < patch[a]) {
            return Err(Error::NothingSelected {
                stage: "patch_grid",
                message: format!(
                    "{source}: volume is smaller than one patch: {}x{}x{} voxels (z, y, x) at the model's resolution, a patch is {}x{}x{}",
                    shape[0], shape[1], shape[2], patch[0], patch[1], patch[2]
                ),
            });
        }
        let stride = patch.map(|p| (((p as f64) * (1.0 - overlap)).round() as usize).max(1));
        Ok(Grid {
            shape,
            patch,
            stride,
            z: axis_starts(shape[0], patch[0], stride[0]),
            y: axis_starts(shape[1], patch[1], stride[1]),
            x: axis_starts(shape[2], patch[2], stride[2]),
        })
    }

    /// Number of grid positions.
    pub fn len(&self) -> u64 {
        (self.z.len() * self.y.len() * self.x.len()) as u64
    }

    /// True when the grid has no positions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions per z layer.
    pub fn per_layer(&self) -> u64 {
        (self.y.len() * self.x.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        for (n, s) in [(10, 0.5), (10, 0.3), (7, 2.0), (9, 1.0), (100, 0.171)] {
            let w = weights(n, s);
            assert_eq!(w.len(), resampled_len(n, s));
            for ws in &w {
                let t: f32 = ws.iter().map(|x| x.1).sum();
                assert!((t - 1.0).abs() < 1e-5, "{n} {s} {ws:?}");
                assert!(ws.iter().all(|x| x.0 < n));
            }
        }
        assert_eq!(
            weights(3, 1.0),
            vec![vec![(0, 1.0)], vec![(1, 1.0)], vec![(2, 1.0)]]
        );
        // Halving averages pairs.
        let w = weights(4, 0.5);
        assert_eq!(w, vec![vec![(0, 0.5), (1, 0.5)], vec![(2, 0.5), (3, 0.5)]]);
    }

    #[test]
    fn resample_plane_preserves_constant_and_mean() {
        let (h, w) = (8, 6);
        let src: Vec<f32> = (0..h * w).map(|i| (i % 7) as f32).collect();
        let out = resample_plane(&src, h, w, &weights(h, 0.5), &weights(w, 0.5));
        assert_eq!(out.len(), 4 * 3);
        let m_in: f32 = src.iter().sum::<f32>() / src.len() as f32;
        let m_out: f32 = out.iter().sum::<f32>() / out.len() as f32;
        assert!((m_in - m_out).abs() < 1e-4);
        let ones = resample_plane(&[1.0; 35], 5, 7, &weights(5, 2.0), &weights(7, 0.4));
        assert!(ones.iter().all(|v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn otsu_splits_two_modes() {
        let mut h = vec![0u64; OTSU_BINS];
        h[20] = 500;
        h[30] = 300;
        h[200] = 400;
        h[220] = 100;
        let t = otsu(&h);
        assert!(t > 30.0 / 256.0 && t <= 200.0 / 256.0, "{t}");
    }

    #[test]
    fn box_counts_match_brute_force() {
        let (h, w) = (7, 9);
        let s: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let sat = mask_integral(&s, 1, h, w, 0.5, Polarity::Bright);
        for (y, x, ph, pw) in [(0, 0, 7, 9), (1, 2, 3, 4), (4, 5, 3, 4)] {
            let brute = (y..y + ph)
                .flat_map(|yy| (x..x + pw).map(move |xx| (yy, xx)))
                .filter(|&(yy, xx)| s[yy * w + xx] >= 0.5)
                .count() as u32;
            assert_eq!(box_count(&sat, w, y, x, ph, pw), brute);
        }
    }

    #[test]
    fn grid_covers_axis_and_rejects_small_volume() {
        assert_eq!(axis_starts(10, 4, 1), (0..=6).collect::<Vec<_>>());
        assert_eq!(axis_starts(10, 4, 3), vec![0, 3, 6]);
        assert_eq!(axis_starts(11, 4, 3), vec![0, 3, 6, 7]);
        assert!(axis_starts(3, 4, 1).is_empty());
        let g = Grid::new([16, 64, 64], [16, 32, 32], 0.75, "v").unwrap();
        assert_eq!(g.stride, [4, 8, 8]);
        assert_eq!(g.len(), 25);
        let e = Grid::new([8, 64, 64], [16, 32, 32], 0.75, "v.npy").unwrap_err();
        assert!(e.to_string().contains("smaller than one patch"), "{e}");
    }
}
