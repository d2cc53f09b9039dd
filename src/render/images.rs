//! Images the library draws: heatmap overlays on the source volume, domain label
//! slices, the PCC bar chart and predicted-vs-measured spot maps. Each returns an
//! in-memory `image::RgbImage`; [`crate::export`] writes them.

use crate::catalog::SampleRecord;
use crate::metrics::compare::Comparison;
use crate::metrics::eval::EvalReport;
use crate::query::heatmap::{Heatmap, coolwarm};
use crate::volume::VolumeSource;

/// Ten distinct colours (matplotlib's tab10) for domain labels 1..=10.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Source slice under heatmap slice `z`, resampled (nearest) to the heatmap's grid, as
/// planar RGB in [0, 1].
pub fn underlay(
    src: &mut dyn VolumeSource,
    rec: &SampleRecord,
    h: &Heatmap,
    z: usize,
) -> Option<Vec<f32>> {
    let d = h.downsample as f64;
    let f = |a: usize, i: usize| {
        ((i as f64 * d + d / 2.0) * rec.model_voxel_um[a] / rec.voxel_um[a]) as usize
    };
    let sz = f(0, z).min(src.info().shape[0].saturating_sub(1));
    let s = src.read_slice(sz).ok()?;
    let (hh, ww) = (h.shape[1], h.shape[2]);
    let page = hh * ww;
    let mut out = vec![0.0f32; 3 * page];
    for y in 0..hh {
        let sy = f(1, y).min(s.h - 1);
        for x in 0..ww {
            let sx = f(2, x).min(s.w - 1);
            for c in 0..3 {
                let sc = if s.channels == 3 { c } else { 0 };
                out[c * page + y * ww + x] = s.data[(sc * s.h + sy) * s.w + sx];
            }
        }
    }
    Some(out)
}

/// Slice `z` of a domain label volume (`shape`, labels domain + 1, 0 = none): domain
/// colours blended half and half onto `under` (planar RGB in [0, 1]) or mid-gray.
pub fn domain_slice(
    vol: &[u8],
    shape: [usize; 3],
    z: usize,
    under: Option<&[f32]>,
) -> image::RgbImage {
    let page = shape[1] * shape[2];
    image::RgbImage::from_fn(shape[2] as u32, shape[1] as u32, |x, y| {
        let i = y as usize * shape[2] + x as usize;
        let base: [f32; 3] = match under {
            Some(u) => [u[i], u[page + i], u[2 * page + i]].map(|v| v * 255.0),
            None => [128.0; 3],
        };
        let l = vol[z * page + i];
        let px = if l == 0 {
            base
        } else {
            let c = PALETTE[(l as usize - 1) % PALETTE.len()];
            [0, 1, 2].map(|j| 0.5 * base[j] + 0.5 * c[j] as f32)
        };
        image::Rgb(px.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

/// Bar chart of per-gene PCC (best first), zero line in gray, bars from -1 to 1.
pub fn pcc_chart(r: &EvalReport) -> image::RgbImage {
    let n = r.per_gene.len().max(1);
    let bw = (600 / n).clamp(2, 16) as u32;
    let (w, h) = (bw * n as u32 + 20, 220u32);
    let mid = 110i64;
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for x in 0..w {
        img.put_pixel(x, mid as u32, image::Rgb([160, 160, 160]));
    }
    for (i, e) in r.per_gene.iter().enumerate() {
        if e.pcc.is_nan() {
            continue;
        }
        let top = mid - (e.pcc * 100.0).round() as i64;
        let (a, b) = (top.min(mid), top.max(mid));
        let c = coolwarm(((e.pcc + 1.0) / 2.0) as f32);
        for y in a..=b {
            for dx in 0..bw.saturating_sub(1).max(1) {
                img.put_pixel(
                    10 + i as u32 * bw + dx,
                    y.clamp(0, h as i64 - 1) as u32,
                    image::Rgb(c),
                );
            }
        }
    }
    img
}

/// Predicted (left) and measured (right) values of gene `j` at the spots of the first
/// section, min-max scaled, coolwarm, each spot an 8 x 8 block.
pub fn spot_maps(c: &Comparison, j: usize) -> image::RgbImage {
    let g = c.genes.len();
    let z0 = c
        .positions
        .iter()
        .map(|p| p[0].round() as i64)
        .min()
        .unwrap_or(0);
    let idx: Vec<usize> = (0..c.positions.len())
        .filter(|&i| c.positions[i][0].round() as i64 == z0)
        .collect();
    let yx: Vec<[f64; 2]> = idx
        .iter()
        .map(|&i| [c.positions[i][1], c.positions[i][2]])
        .collect();
    let cells = crate::metrics::eval::grid_cells(&yx);
    let rows = cells.iter().map(|x| x.0 + 1).max().unwrap_or(1);
    let cols = cells.iter().map(|x| x.1 + 1).max().unwrap_or(1);
    let s = 8u32;
    let pw = cols as u32 * s;
    let mut img =
        image::RgbImage::from_pixel(2 * pw + s, rows as u32 * s, image::Rgb([255, 255, 255]));
    for (side, m) in [(0u32, &c.predicted), (pw + s, &c.measured)] {
        let v: Vec<f64> = idx.iter().map(|&i| m[i * g + j] as f64).collect();
        let scaled = crate::stats::min_max(&v);
        for (&(r, cc), t) in cells.iter().zip(scaled) {
            let col = coolwarm(t as f32);
            for dy in 0..s - 1 {
                for dx in 0..s - 1 {
                    img.put_pixel(
                        side + cc as u32 * s + dx,
                        r as u32 * s + dy,
                        image::Rgb(col),
                    );
                }
            }
        }
    }
    img
}
