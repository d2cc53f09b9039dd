//! 3D similarity heatmaps: every voxel gets the mean similarity of the patches that
//! cover it (patches overlap by 75% in the method), written as NPY / TIFF volumes and as
//! PNG overlays of chosen slices (coolwarm, alpha 0.35, 10th-90th percentile range).
//!
//! The average is exact and cheap: along each axis the patch boundaries cut the volume
//! into cells that every patch covers entirely or not at all, so sums and counts are
//! accumulated per cell (a few per patch) and expanded to voxels at the end.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::grid::Grid;

/// A similarity volume at the model's resolution divided by `downsample`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Output shape (z, y, x).
    pub shape: [usize; 3],
    /// Model voxels per output voxel along each axis.
    pub downsample: usize,
    /// Mean similarity per voxel, NaN where no stored patch covers it.
    pub data: Vec<f32>,
}

impl Heatmap {
    /// Value at (z, y, x).
    pub fn at(&self, z: usize, y: usize, x: usize) -> f32 {
        self.data[(z * self.shape[1] + y) * self.shape[2] + x]
    }

    /// The `p`th percentile of the covered voxels (numpy linear), or None if empty.
    pub fn percentile(&self, p: f64) -> Option<f32> {
        let mut v: Vec<f64> = self
            .data
            .iter()
            .filter(|x| !x.is_nan())
            .map(|&x| x as f64)
            .collect();
        if v.is_empty() {
            return None;
        }
        Some(super::percentile(&mut v, p) as f32)
    }
}

/// Cell boundaries along one axis and the cell of every voxel.
fn cells(len: usize, origins: &[usize], size: usize) -> (Vec<usize>, Vec<usize>) {
    let mut cuts: Vec<usize> = origins
        .iter()
        .flat_map(|&o| [o.min(len), (o + size).min(len)])
        .chain([0, len])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut of = vec![0usize; len];
    for c in 0..cuts.len() - 1 {
        for v in of.iter_mut().take(cuts[c + 1]).skip(cuts[c]) {
            *v = c;
        }
    }
    (cuts, of)
}

/// The heatmap of `patches` (origin in model voxels, score) over `grid`, at the model's
/// resolution divided by `downsample` (each output voxel takes the value at its centre).
pub fn heatmap(grid: &Grid, patches: &[([i64; 3], f32)], downsample: usize) -> Heatmap {
    let d = downsample.max(1);
    let axes = [&grid.z, &grid.y, &grid.x];
    let cut: Vec<(Vec<usize>, Vec<usize>)> = (0..3)
        .map(|a| cells(grid.shape[a], axes[a], grid.patch[a]))
        .collect();
    let nc: Vec<usize> = cut.iter().map(|c| c.0.len() - 1).collect();
    let mut sum = vec![0.0f64; nc[0] * nc[1] * nc[2]];
    let mut cnt = vec![0u32; sum.len()];
    for &(o, s) in patches {
        let mut r = [(0usize, 0usize); 3];
        for a in 0..3 {
            let lo = (o[a].max(0) as usize).min(grid.shape[a].saturating_sub(1));
            let hi = ((o[a].max(0) as usize) + grid.patch[a]).min(grid.shape[a]);
            r[a] = (cut[a].1[lo], cut[a].1[hi.max(lo + 1) - 1] + 1);
        }
        for cz in r[0].0..r[0].1 {
            for cy in r[1].0..r[1].1 {
                let row = (cz * nc[1] + cy) * nc[2];
                for cx in r[2].0..r[2].1 {
                    sum[row + cx] += s as f64;
                    cnt[row + cx] += 1;
                }
            }
        }
    }
    let shape = [
        grid.shape[0].div_ceil(d),
        grid.shape[1].div_ceil(d),
        grid.shape[2].div_ceil(d),
    ];
    // Cell of every output voxel's centre, per axis.
    let centres: Vec<Vec<usize>> = (0..3)
        .map(|a| {
            (0..shape[a])
                .map(|i| cut[a].1[(i * d + d / 2).min(grid.shape[a] - 1)])
                .collect()
        })
        .collect();
    let mean: Vec<f32> = sum
        .iter()
        .zip(&cnt)
        .map(|(&s, &c)| {
            if c > 0 {
                (s / c as f64) as f32
            } else {
                f32::NAN
            }
        })
        .collect();
    let mut data = vec![f32::NAN; shape[0] * shape[1] * shape[2]];
    let page = shape[1] * shape[2];
    data.par_chunks_mut(page).enumerate().for_each(|(z, out)| {
        let cz = centres[0][z];
        for (y, row) in out.chunks_mut(shape[2]).enumerate() {
            let base = (cz * nc[1] + centres[1][y]) * nc[2];
            for (v, &cx) in row.iter_mut().zip(&centres[2]) {
                *v = mean[base + cx];
            }
        }
    });
    Heatmap {
        shape,
        downsample: d,
        data,
    }
}

/// The smallest downsampling that keeps the heatmap within `max_voxels`.
pub fn auto_downsample(shape: [usize; 3], max_voxels: usize) -> usize {
    (1..)
        .find(|d| shape.iter().map(|s| s.div_ceil(*d)).product::<usize>() <= max_voxels)
        .expect("some factor fits")
}

/// Write the heatmap as a multi-page float32 TIFF (one page per z; NaN outside).
pub fn write_tiff(path: &Path, h: &Heatmap) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(f))
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    let page = h.shape[1] * h.shape[2];
    for z in 0..h.shape[0] {
        enc.write_image::<tiff::encoder::colortype::Gray32Float>(
            h.shape[2] as u32,
            h.shape[1] as u32,
            &h.data[z * page..(z + 1) * page],
        )
        .map_err(|e| Error::bad_file(path, format!("cannot write TIFF: {e}")))?;
    }
    Ok(())
}

/// matplotlib's coolwarm, by linear interpolation between five of its colours.
pub fn coolwarm(t: f32) -> [u8; 3] {
    const C: [[f32; 3]; 5] = [
        [59.0, 76.0, 192.0],
        [141.0, 176.0, 254.0],
        [221.0, 221.0, 221.0],
        [244.0, 154.0, 123.0],
        [180.0, 4.0, 38.0],
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let mut out = [0u8; 3];
    for (k, o) in out.iter_mut().enumerate() {
        *o = (C[i][k] + (C[i + 1][k] - C[i][k]) * f).round() as u8;
    }
    out
}

/// An RGB overlay of slice `z` of `h`: coolwarm over [lo, hi] blended with alpha 0.35
/// onto `under` (an RGB image of the same h x w, planar [0, 1]) or mid-gray.
pub fn overlay(h: &Heatmap, z: usize, lo: f32, hi: f32, under: Option<&[f32]>) -> image::RgbImage {
    let (hh, ww) = (h.shape[1], h.shape[2]);
    let page = hh * ww;
    let span = (hi - lo).max(1e-12);
    image::RgbImage::from_fn(ww as u32, hh as u32, |x, y| {
        let i = y as usize * ww + x as usize;
        let base: [f32; 3] = match under {
            Some(u) => [u[i], u[page + i], u[2 * page + i]],
            None => [0.5, 0.5, 0.5],
        };
        let v = h.data[z * page + i];
        let px: [f32; 3] = if v.is_nan() {
            base.map(|b| b * 255.0)
        } else {
            let c = coolwarm((v - lo) / span);
            [0, 1, 2].map(|k| 0.65 * base[k] * 255.0 + 0.35 * c[k] as f32)
        };
        image::Rgb(px.map(|p| p.round().clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(shape: [usize; 3], patch: [usize; 3], overlap: f64) -> Grid {
        Grid::new(shape, patch, overlap, "test").unwrap()
    }

    #[test]
    fn heatmap_averages_overlapping_patches_exactly() {
        let g = grid([4, 8, 8], [4, 4, 4], 0.5);
        // Patches at x = 0, 2, 4 (y = 0 only) with scores 1, 2, 3.
        let p = vec![([0, 0, 0], 1.0), ([0, 0, 2], 2.0), ([0, 0, 4], 3.0)];
        let h = heatmap(&g, &p, 1);
        assert_eq!(h.at(0, 0, 0), 1.0);
        assert_eq!(h.at(0, 0, 2), 1.5);
        assert_eq!(h.at(3, 3, 4), 2.5);
        assert_eq!(h.at(0, 0, 7), 3.0);
        assert!(h.at(0, 4, 0).is_nan());
        // Brute force over voxels agrees everywhere.
        for z in 0..4 {
            for y in 0..8 {
                for x in 0..8usize {
                    let cover: Vec<f32> = p
                        .iter()
                        .filter(|(o, _)| {
                            (0..3).all(|a| {
                                let v = [z, y, x][a] as i64;
                                v >= o[a] && v < o[a] + 4
                            })
                        })
                        .map(|(_, s)| *s)
                        .collect();
                    let want = if cover.is_empty() {
                        f32::NAN
                    } else {
                        cover.iter().sum::<f32>() / cover.len() as f32
                    };
                    let got = h.at(z, y, x);
                    assert!(
                        got == want || (got.is_nan() && want.is_nan()),
                        "{z} {y} {x}: {got} vs {want}"
                    );
                }
            }
        }
        let d = heatmap(&g, &p, 2);
        assert_eq!(d.shape, [2, 4, 4]);
        assert_eq!(d.at(0, 0, 0), h.at(1, 1, 1));
    }

    #[test]
    fn coolwarm_ends_are_blue_and_red() {
        assert_eq!(coolwarm(0.0), [59, 76, 192]);
        assert_eq!(coolwarm(1.0), [180, 4, 38]);
        assert_eq!(coolwarm(0.5), [221, 221, 221]);
    }
}
