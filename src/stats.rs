//! Pure statistics: correlations, ranks, SSIM, ARI, ROC AUC and spatial
//! autocorrelation, with no knowledge of stores, samples or predictions. The lowest
//! analysis layer: `predict` (ridge cross-validation), `domains` (ARI) and `metrics`
//! (the eval report) all use it. Written to match the reference implementations the field
//! reports with (checked within 1e-6 against them in `tests/metrics_tests.rs`):
//!
//! | here | reference |
//! |---|---|
//! | [`pearson`] | `scipy.stats.pearsonr` |
//! | [`spearman`] | `scipy.stats.spearmanr` (average ranks for ties) |
//! | [`ssim`] | `skimage.metrics.structural_similarity` (7x7 uniform window, sample covariance, K1 0.01, K2 0.03) |
//! | [`adjusted_rand_index`] | `sklearn.metrics.adjusted_rand_score` |
//! | [`morans_i`], [`gearys_c`] | `esda.Moran` / `esda.Geary` with row-standardised `libpysal` weights |
//!
//! Everything computes in f64. A metric that is undefined for its input (a constant
//! vector for a correlation) is NaN, as in scipy, and callers skip NaNs when averaging.

use crate::error::{Error, Result};

/// Pearson correlation of two equally long vectors; NaN when either is constant or
/// they are shorter than 2.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: lengths differ");
    let n = a.len();
    if n < 2 {
        return f64::NAN;
    }
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Ranks from 1, ties given the average of the ranks they span (`scipy.stats.rankdata`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && x[order[j]] == x[order[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0; // mean of ranks i+1 ..= j
        for &k in &order[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Spearman rank correlation (Pearson of average ranks); NaN when either is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Mean of the finite values (NaN when there are none).
pub fn nanmean(x: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = x
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Scale to [0, 1] by the minimum and maximum (all zeros when constant).
pub fn min_max(x: &[f64]) -> Vec<f64> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![0.0; x.len()];
    }
    x.iter().map(|v| (v - lo) / (hi - lo)).collect()
}

/// An image of spot values on their grid: `cells[i] = (row, col)` of value `i`, every
/// other pixel 0, values min-max scaled first (the method's SSIM input). Returns the
/// row-major image and its (height, width).
pub fn grid_spots(cells: &[(usize, usize)], values: &[f64]) -> (Vec<f64>, usize, usize) {
    let h = cells.iter().map(|c| c.0 + 1).max().unwrap_or(0);
    let w = cells.iter().map(|c| c.1 + 1).max().unwrap_or(0);
    let mut img = vec![0.0; h * w];
    for (&(r, c), v) in cells.iter().zip(min_max(values)) {
        img[r * w + c] = v;
    }
    (img, h, w)
}

/// `scipy.ndimage.uniform_filter1d(size=win, mode="reflect")` along rows or columns.
fn uniform_1d(img: &[f64], h: usize, w: usize, win: usize, along_rows: bool) -> Vec<f64> {
    let half = (win / 2) as isize;
    let reflect = |i: isize, n: isize| -> usize {
        // Half-sample symmetric: d c b a | a b c d | d c b a (n >= 4 here).
        let mut i = i;
        if i < 0 {
            i = -i - 1;
        }
        if i >= n {
            i = 2 * n - i - 1;
        }
        i as usize
    };
    let mut out = vec![0.0; h * w];
    for r in 0..h {
        for c in 0..w {
            let mut s = 0.0;
            for k in -half..=half {
                let (rr, cc) = if along_rows {
                    (r, reflect(c as isize + k, w as isize))
                } else {
                    (reflect(r as isize + k, h as isize), c)
                };
                s += img[rr * w + cc];
            }
            out[r * w + c] = s / win as f64;
        }
    }
    out
}

fn uniform_2d(img: &[f64], h: usize, w: usize, win: usize) -> Vec<f64> {
    // ndimage.uniform_filter filters axis 0 first, then axis 1.
    let a = uniform_1d(img, h, w, win, false);
    uniform_1d(&a, h, w, win, true)
}

/// The SSIM window for an `h` x `w` image: 7 (scikit-image's default) when both sides
/// allow it, else the largest odd size that fits (at least 3).
pub fn ssim_window(h: usize, w: usize) -> usize {
    let m = h.min(w).min(7);
    if m % 2 == 1 { m.max(3) } else { (m - 1).max(3) }
}

/// Mean structural similarity of two images (row-major, `h` x `w`), as
/// `skimage.metrics.structural_similarity(a, b, data_range=data_range, win_size=win)`:
/// `win` x `win` uniform window (odd; scikit-image's default is 7), sample covariance,
/// K1 = 0.01, K2 = 0.03, mean over the image less a `win / 2` border. Both sides must
/// be at least `win` pixels.
pub fn ssim(a: &[f64], b: &[f64], h: usize, w: usize, data_range: f64, win: usize) -> Result<f64> {
    if win < 3 || win.is_multiple_of(2) {
        return Err(Error::bad_input(
            "ssim",
            format!("window {win} is not an odd size >= 3"),
        ));
    }
    if h < win || w < win {
        return Err(Error::bad_input(
            "ssim",
            format!("images of {h} x {w} pixels are smaller than the {win} x {win} SSIM window"),
        ));
    }
    if a.len() != h * w || b.len() != h * w {
        return Err(Error::bad_input("ssim", "image sizes differ"));
    }
    let np = (win * win) as f64;
    let cov_norm = np / (np - 1.0);
    let sq = |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(p, q)| p * q).collect() };
    let ux = uniform_2d(a, h, w, win);
    let uy = uniform_2d(b, h, w, win);
    let uxx = uniform_2d(&sq(a, a), h, w, win);
    let uyy = uniform_2d(&sq(b, b), h, w, win);
    let uxy = uniform_2d(&sq(a, b), h, w, win);
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    let pad = (win - 1) / 2;
    let mut s = 0.0;
    let mut n = 0usize;
    for r in pad..h - pad {
        for c in pad..w - pad {
            let i = r * w + c;
            let vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
            let vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
            let vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
            let a1 = 2.0 * ux[i] * uy[i] + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
            let b2 = vx + vy + c2;
            s += (a1 * a2) / (b1 * b2);
            n += 1;
        }
    }
    Ok(s / n as f64)
}

/// Adjusted Rand index of two labelings of the same items
/// (`sklearn.metrics.adjusted_rand_score`; 1.0 for identical partitions, ~0 for
/// independent ones).
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::bad_input(
            "labels",
            format!("{} labels against {}", a.len(), b.len()),
        ));
    }
    let n = a.len() as f64;
    let mut table: std::collections::HashMap<(u32, u32), f64> = Default::default();
    let mut rows: std::collections::HashMap<u32, f64> = Default::default();
    let mut cols: std::collections::HashMap<u32, f64> = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    // Pair confusion matrix, as sklearn.
    let sum_sq: f64 = table.values().map(|v| v * v).sum();
    let tp = sum_sq - n;
    let fp = cols.values().map(|v| v * v).sum::<f64>() - sum_sq;
    let fn_ = rows.values().map(|v| v * v).sum::<f64>() - sum_sq;
    let tn = n * n - fp - fn_ - sum_sq;
    if fn_ == 0.0 && fp == 0.0 {
        return Ok(1.0);
    }
    Ok(2.0 * (tp * tn - fn_ * fp) / ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn)))
}

/// Area under the ROC curve of `scores` for the `positive` items (ties counted half,
/// as `sklearn.metrics.roc_auc_score`); NaN when either class is empty.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> f64 {
    let x: Vec<f64> = scores.iter().map(|&v| v as f64).collect();
    let ranks = average_ranks(&x);
    let np = positive.iter().filter(|&&p| p).count() as f64;
    let nn = positive.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Sparse spatial weights, row-standardised (each row sums to 1), as libpysal's
/// `W` after `transform = "r"`.
#[derive(Debug, Clone)]
pub struct SpatialWeights {
    /// `neighbours[i]` = (j, w_ij), sorted by j.
    pub neighbours: Vec<Vec<(usize, f64)>>,
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

impl SpatialWeights {
    /// The `k` nearest other points of each point (`libpysal.weights.KNN`), row-standardised.
    pub fn knn(coords: &[[f64; 2]], k: usize) -> Result<SpatialWeights> {
        if k == 0 || k >= coords.len() {
            return Err(Error::bad_input(
                "k",
                format!("{k} neighbours for {} points", coords.len()),
            ));
        }
        let neighbours = coords
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let mut d: Vec<(f64, usize)> = coords
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(j, &q)| (dist2(p, q), j))
                    .collect();
                d.select_nth_unstable_by(k - 1, |x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                let mut js: Vec<(usize, f64)> =
                    d[..k].iter().map(|&(_, j)| (j, 1.0 / k as f64)).collect();
                js.sort_by_key(|x| x.0);
                js
            })
            .collect();
        Ok(SpatialWeights { neighbours })
    }

    /// Every other point within `threshold` (`libpysal.weights.DistanceBand`, binary),
    /// row-standardised. A point with no neighbour is an island (a zero row).
    pub fn distance_band(coords: &[[f64; 2]], threshold: f64) -> SpatialWeights {
        let t2 = threshold * threshold;
        let neighbours = coords
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let js: Vec<usize> = coords
                    .iter()
                    .enumerate()
                    .filter(|&(j, &q)| j != i && dist2(p, q) <= t2)
                    .map(|(j, _)| j)
                    .collect();
                let w = 1.0 / js.len().max(1) as f64;
                js.into_iter().map(|j| (j, w)).collect()
            })
            .collect();
        SpatialWeights { neighbours }
    }

    /// Sum of all weights (S0).
    pub fn s0(&self) -> f64 {
        self.neighbours.iter().flatten().map(|x| x.1).sum()
    }
}

/// Moran's I of `x` under weights `w` (`esda.Moran(x, w).I`); NaN when `x` is constant.
pub fn morans_i(x: &[f64], w: &SpatialWeights) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let z: Vec<f64> = x.iter().map(|v| v - m).collect();
    let den: f64 = z.iter().map(|v| v * v).sum();
    if den == 0.0 {
        return f64::NAN;
    }
    let num: f64 = w
        .neighbours
        .iter()
        .enumerate()
        .map(|(i, nb)| z[i] * nb.iter().map(|&(j, wij)| wij * z[j]).sum::<f64>())
        .sum();
    n / w.s0() * num / den
}

/// Geary's C of `x` under weights `w` (`esda.Geary(x, w).C`); NaN when `x` is constant.
pub fn gearys_c(x: &[f64], w: &SpatialWeights) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let den: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    if den == 0.0 {
        return f64::NAN;
    }
    let num: f64 = w
        .neighbours
        .iter()
        .enumerate()
        .map(|(i, nb)| {
            nb.iter()
                .map(|&(j, wij)| wij * (x[i] - x[j]).powi(2))
                .sum::<f64>()
        })
        .sum();
    (n - 1.0) * num / (2.0 * w.s0() * den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn ari_extremes() {
        assert_eq!(
            adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 2, 2]).unwrap(),
            1.0
        );
        let v = adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap();
        assert!(v < 0.0, "{v}");
        assert!(adjusted_rand_index(&[0, 1], &[0]).is_err());
    }

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(roc_auc(&[0.1, 0.9, 0.5], &[false, true, false]), 1.0);
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), 0.5);
        assert!(roc_auc(&[0.5], &[true]).is_nan());
    }

    #[test]
    fn constant_input_is_nan() {
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
        let w = SpatialWeights::distance_band(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], 1.0);
        assert!(morans_i(&[2.0, 2.0, 2.0], &w).is_nan());
    }
}
