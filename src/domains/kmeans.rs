//! k-means (Lloyd) with greedy k-means++ seeding and restarts, parallel over points with
//! rayon and deterministic for a seed whatever the thread count: work is cut into
//! fixed chunks whose partial sums are reduced in chunk order.
//!
//! It follows scikit-learn's `KMeans(algorithm="lloyd")` closely enough that the same
//! settings converge to the same kind of solution: greedy k-means++ with
//! `2 + ln k` local trials, convergence when the labels stop changing or the total
//! squared centre shift falls to `tol x mean feature variance`, a last assignment after
//! the final centres, and an empty cluster moved to the point farthest from its centre.
//! `benches/kmeans.py` compares the two on 1M x 512 (time and inertia).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Points per parallel work unit (fixed, so results do not depend on the pool size).
const CHUNK: usize = 2048;

/// Settings of [`kmeans`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansOptions {
    /// Number of clusters.
    pub k: usize,
    /// Independent seedings; the run with the lowest inertia is kept.
    pub restarts: usize,
    /// Lloyd iterations at most per restart.
    pub max_iter: usize,
    /// Relative tolerance on the squared centre shift (scikit-learn's `tol`).
    pub tol: f64,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        KMeansOptions {
            k: 5,
            restarts: 10,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
        }
    }
}

impl KMeansOptions {
    /// `k` clusters, the other settings at their defaults (10 restarts, seed 0).
    pub fn new(k: usize) -> Self {
        KMeansOptions {
            k,
            ..Default::default()
        }
    }
}

/// A clustering.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// Cluster centres, row-major `k x d`.
    pub centroids: Vec<f32>,
    /// Feature dimension.
    pub dim: usize,
    /// Cluster of every point.
    pub labels: Vec<u32>,
    /// Sum of squared distances of the points to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the kept restart.
    pub iterations: usize,
    /// Index of the kept restart.
    pub restart: usize,
}

fn sq_dist_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..8 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Squared distances of `x` to each `d`-wide row of `cents`, into `out`: 8 lanes,
    /// four centres at a time so four FMA chains run side by side.
    #[target_feature(enable = "avx2,fma")]
    pub fn dists(x: &[f32], cents: &[f32], d: usize, out: &mut [f32]) {
        let k = cents.len() / d;
        let d8 = d / 8 * 8;
        let xp = x.as_ptr();
        let mut j = 0;
        while j + 4 <= k {
            let c: [*const f32; 4] = std::array::from_fn(|i| cents[(j + i) * d..].as_ptr());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i < d8 {
                // SAFETY: i + 8 <= d8 <= d, within x and each centre row.
                unsafe {
                    let xv = _mm256_loadu_ps(xp.add(i));
                    for (a, cp) in acc.iter_mut().zip(c) {
                        let t = _mm256_sub_ps(xv, _mm256_loadu_ps(cp.add(i)));
                        *a = _mm256_fmadd_ps(t, t, *a);
                    }
                }
                i += 8;
            }
            for (q, a) in acc.iter().enumerate() {
                let row = &cents[(j + q) * d..(j + q + 1) * d];
                let tail: f32 = x[d8..]
                    .iter()
                    .zip(&row[d8..])
                    .map(|(p, r)| (p - r) * (p - r))
                    .sum();
                out[j + q] = hsum(*a) + tail;
            }
            j += 4;
        }
        while j < k {
            let cp = cents[j * d..].as_ptr();
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 16 <= d8 {
                // SAFETY: i + 16 <= d8 <= d.
                unsafe {
                    let t0 = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(cp.add(i)));
                    let t1 = _mm256_sub_ps(
                        _mm256_loadu_ps(xp.add(i + 8)),
                        _mm256_loadu_ps(cp.add(i + 8)),
                    );
                    a0 = _mm256_fmadd_ps(t0, t0, a0);
                    a1 = _mm256_fmadd_ps(t1, t1, a1);
                }
                i += 16;
            }
            let row = &cents[j * d..(j + 1) * d];
            let tail: f32 = x[i..]
                .iter()
                .zip(&row[i..])
                .map(|(p, r)| (p - r) * (p - r))
                .sum();
            out[j] = hsum(_mm256_add_ps(a0, a1)) + tail;
            j += 1;
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Squared Euclidean distances of `x` to every `d`-wide row of `cents`, into `out`
/// (AVX2 + FMA where the CPU has them).
#[inline]
pub fn sq_dists(x: &[f32], cents: &[f32], d: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { avx2::dists(x, cents, d, out) };
        return;
    }
    for (o, c) in out.iter_mut().zip(cents.chunks_exact(d)) {
        *o = sq_dist_portable(x, c);
    }
}

/// Squared Euclidean distance of two equally long vectors.
#[inline]
pub fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut o = [0f32];
    sq_dists(a, b, a.len(), &mut o);
    o[0]
}

/// Cluster the `n x d` row-major `data` (`n = data.len() / d`).
pub fn kmeans(data: &[f32], d: usize, opts: &KMeansOptions) -> Result<KMeans> {
    if d == 0 || !data.len().is_multiple_of(d) {
        return Err(Error::bad_input(
            "data",
            format!("{} values are not rows of {d}", data.len()),
        ));
    }
    let n = data.len() / d;
    if opts.k == 0 {
        return Err(Error::arg("k", "must be at least 1"));
    }
    if opts.k > n {
        return Err(Error::arg(
            "k",
            format!("k = {} is larger than the number of points ({n})", opts.k),
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::bad_input(
            "data",
            format!("row {} holds a non-finite value", i / d),
        ));
    }
    if opts.restarts == 0 || opts.max_iter == 0 {
        return Err(Error::arg(
            "restarts",
            "restarts and iterations must be at least 1",
        ));
    }
    // Absolute tolerance: tol x mean per-feature variance (as scikit-learn).
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for row in data.chunks_exact(d) {
        for ((m, s), &v) in mean.iter_mut().zip(sq.iter_mut()).zip(row) {
            *m += v as f64;
            *s += v as f64 * v as f64;
        }
    }
    let var_mean = mean
        .iter()
        .zip(&sq)
        .map(|(m, s)| s / n as f64 - (m / n as f64).powi(2))
        .sum::<f64>()
        / d as f64;
    let tol = opts.tol * var_mean;
    let mut best: Option<KMeans> = None;
    for r in 0..opts.restarts {
        let mut rng =
            ChaCha8Rng::seed_from_u64(opts.seed.wrapping_mul(0x9E37_79B9).wrapping_add(r as u64));
        let init = plus_plus(data, d, opts.k, &mut rng);
        let mut run = lloyd(data, d, init, opts.max_iter, tol);
        run.restart = r;
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    Ok(best.expect("at least one restart"))
}

/// Greedy k-means++ seeding.
fn plus_plus(data: &[f32], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = data.len() / d;
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(&data[first * d..(first + 1) * d]);
    // Squared distance of every point to each of `cands` (row-major), in one pass.
    let dist_to = |cands: &[f32]| -> Vec<f32> {
        let m = cands.len() / d;
        data.par_chunks(CHUNK * d)
            .flat_map_iter(|ch| {
                let mut out = vec![0f32; ch.len() / d * m];
                for (x, o) in ch.chunks_exact(d).zip(out.chunks_exact_mut(m)) {
                    sq_dists(x, cands, d, o);
                }
                out
            })
            .collect()
    };
    let mut closest = dist_to(&data[first * d..(first + 1) * d]);
    let mut current: f64 = closest.iter().map(|&x| x as f64).sum();
    for _ in 1..k {
        // Candidates drawn with probability proportional to the squared distance; the
        // one that lowers the potential most is kept.
        let mut cum = Vec::with_capacity(n);
        let mut s = 0f64;
        for &c in &closest {
            s += c as f64;
            cum.push(s);
        }
        let idx: Vec<usize> = (0..trials)
            .map(|_| {
                let u = rng.random::<f64>() * current;
                cum.partition_point(|&c| c <= u).min(n - 1)
            })
            .collect();
        let cands: Vec<f32> = idx
            .iter()
            .flat_map(|&i| data[i * d..(i + 1) * d].iter().copied())
            .collect();
        let dc = dist_to(&cands);
        let pots: Vec<f64> = (0..trials)
            .map(|t| {
                closest
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| c.min(dc[i * trials + t]) as f64)
                    .sum()
            })
            .collect();
        let t = (0..trials)
            .min_by(|&a, &b| pots[a].total_cmp(&pots[b]).then(a.cmp(&b)))
            .expect("trials >= 2");
        centres.extend_from_slice(&data[idx[t] * d..(idx[t] + 1) * d]);
        for (i, c) in closest.iter_mut().enumerate() {
            *c = c.min(dc[i * trials + t]);
        }
        current = pots[t];
    }
    centres
}

/// One pass over the data: nearest centre of every point (labels, squared distances),
/// how many labels changed, and per-cluster sums (f64) and counts, reduced in chunk
/// order (f32 within a chunk of 2048 points, f64 across chunks). Assignment and
/// accumulation share the pass so the data is read once.
fn pass(
    data: &[f32],
    d: usize,
    centroids: &[f32],
    labels: &mut [u32],
    dists: &mut [f32],
) -> (usize, Vec<f64>, Vec<u64>) {
    let k = centroids.len() / d;
    let partial: Vec<(usize, Vec<f32>, Vec<u64>)> = data
        .par_chunks(CHUNK * d)
        .zip(labels.par_chunks_mut(CHUNK))
        .zip(dists.par_chunks_mut(CHUNK))
        .map(|((ch, l), dd)| {
            // f32 sums within a chunk (vectorised), f64 across chunks.
            let mut sums = vec![0f32; k * d];
            let mut counts = vec![0u64; k];
            let mut changed = 0usize;
            let mut dk = vec![0f32; k];
            for ((x, lab), dist) in ch.chunks_exact(d).zip(l.iter_mut()).zip(dd.iter_mut()) {
                sq_dists(x, centroids, d, &mut dk);
                let mut best = (f32::INFINITY, 0u32);
                for (j, &s) in dk.iter().enumerate() {
                    if s < best.0 {
                        best = (s, j as u32);
                    }
                }
                if *lab != best.1 {
                    changed += 1;
                    *lab = best.1;
                }
                *dist = best.0;
                let j = best.1 as usize;
                counts[j] += 1;
                for (s, &v) in sums[j * d..(j + 1) * d].iter_mut().zip(x) {
                    *s += v;
                }
            }
            (changed, sums, counts)
        })
        .collect();
    let mut sums = vec![0f64; k * d];
    let mut counts = vec![0u64; k];
    let mut changed = 0;
    for (c, s, n) in partial {
        changed += c;
        for (a, b) in sums.iter_mut().zip(s) {
            *a += b as f64;
        }
        for (a, b) in counts.iter_mut().zip(n) {
            *a += b;
        }
    }
    (changed, sums, counts)
}

/// Lloyd iterations from `centroids` until the labels stop changing, the squared centre
/// shift is at most `tol`, or `max_iter`.
fn lloyd(data: &[f32], d: usize, mut centroids: Vec<f32>, max_iter: usize, tol: f64) -> KMeans {
    let n = data.len() / d;
    let k = centroids.len() / d;
    let mut labels = vec![u32::MAX; n];
    let mut dists = vec![0f32; n];
    let mut iterations = 0;
    for _ in 0..max_iter {
        let (changed, sums, counts) = pass(data, d, &centroids, &mut labels, &mut dists);
        iterations += 1;
        if changed == 0 {
            // Same labels as the previous pass: the centres cannot move.
            break;
        }
        let mut next = vec![0f32; k * d];
        for j in 0..k {
            if counts[j] == 0 {
                // Empty cluster: move it to the point farthest from its centre.
                let far = dists
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                    .map(|x| x.0)
                    .unwrap_or(0);
                next[j * d..(j + 1) * d].copy_from_slice(&data[far * d..(far + 1) * d]);
                dists[far] = 0.0;
            } else {
                for (o, s) in next[j * d..(j + 1) * d]
                    .iter_mut()
                    .zip(&sums[j * d..(j + 1) * d])
                {
                    *o = (s / counts[j] as f64) as f32;
                }
            }
        }
        let shift: f64 = centroids
            .chunks_exact(d)
            .zip(next.chunks_exact(d))
            .map(|(a, b)| sq_dist(a, b) as f64)
            .sum();
        centroids = next;
        if shift <= tol {
            break;
        }
    }
    // Labels and inertia for the final centres.
    pass(data, d, &centroids, &mut labels, &mut dists);
    let inertia = dists
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&x| x as f64).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum();
    KMeans {
        centroids,
        dim: d,
        labels,
        inertia,
        iterations,
        restart: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [[0.0f32, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]];
        let mut data = Vec::new();
        let mut truth = Vec::new();
        for i in 0..n {
            let c = i % 3;
            for v in centres[c] {
                data.push(v + rng.random::<f32>() - 0.5);
            }
            truth.push(c as u32);
        }
        (data, truth)
    }

    #[test]
    fn recovers_separated_blobs_and_is_deterministic() {
        let (data, truth) = blobs(5000, 1);
        let o = KMeansOptions {
            k: 3,
            restarts: 3,
            seed: 4,
            ..Default::default()
        };
        let a = kmeans(&data, 3, &o).unwrap();
        let ari = crate::stats::adjusted_rand_index(&a.labels, &truth).unwrap();
        assert_eq!(ari, 1.0);
        let b = kmeans(&data, 3, &o).unwrap();
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.inertia, b.inertia);
        // Inertia is the sum of squared distances to the centres.
        let direct: f64 = data
            .chunks_exact(3)
            .zip(&a.labels)
            .map(|(x, &l)| sq_dist(x, &a.centroids[l as usize * 3..l as usize * 3 + 3]) as f64)
            .sum();
        assert!((direct - a.inertia).abs() < 1e-6 * direct);
    }

    #[test]
    fn rejects_bad_k() {
        let (data, _) = blobs(4, 1);
        let e = kmeans(
            &data,
            3,
            &KMeansOptions {
                k: 5,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("larger than the number of points (4)"),
            "{e}"
        );
        assert!(
            kmeans(
                &data,
                3,
                &KMeansOptions {
                    k: 0,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn avx_and_portable_distances_agree() {
        let a: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum();
        assert!((sq_dist(&a, &b) as f64 - exact).abs() < 1e-4);
        assert!((sq_dist_portable(&a, &b) as f64 - exact).abs() < 1e-4);
        // Several centres at once (the 4-wide and the single-centre paths).
        let cents: Vec<f32> = (0..6 * 77).map(|i| (i as f32 * 0.07).cos()).collect();
        let mut out = [0f32; 6];
        sq_dists(&a, &cents, 77, &mut out);
        for (j, o) in out.iter().enumerate() {
            let c = &cents[j * 77..(j + 1) * 77];
            let e: f64 = a.iter().zip(c).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            assert!((*o as f64 - e).abs() < 1e-4, "{j}: {o} vs {e}");
        }
    }
}
