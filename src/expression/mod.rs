//! Spot expression preprocessing, as in the VORTEX method: quality control, library-size
//! normalisation with log1p, highly variable genes (scanpy's `seurat` flavour), the
//! most-expressed-genes panel, smoothing over each spot's nearest spots, and
//! case-insensitive gene panels.
//!
//! Counts are a sparse spots x genes matrix ([`CountMatrix`], CSR). Every function is
//! deterministic; arithmetic is in f64 and results are stored as f32.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A spots x genes count matrix in compressed sparse row form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountMatrix {
    /// Gene symbols, one per column, as given by the source.
    pub genes: Vec<String>,
    /// Row pointers: the counts of spot `i` are `indptr[i]..indptr[i + 1]`.
    pub indptr: Vec<usize>,
    /// Column (gene) of every stored count, increasing within a row.
    pub indices: Vec<u32>,
    /// The counts (non-negative integers, stored as f32; zeros are not stored).
    pub data: Vec<f32>,
}

impl CountMatrix {
    /// An empty matrix over `genes`.
    pub fn new(genes: Vec<String>) -> Self {
        CountMatrix {
            genes,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Append one spot given as (gene column, count) pairs in any order; zeros are
    /// dropped and repeated columns summed.
    pub fn push_row(&mut self, mut entries: Vec<(u32, f32)>) {
        entries.sort_unstable_by_key(|e| e.0);
        let mut last: Option<u32> = None;
        for (g, c) in entries {
            if c == 0.0 {
                continue;
            }
            if last == Some(g) {
                *self.data.last_mut().expect("row has an entry") += c;
            } else {
                self.indices.push(g);
                self.data.push(c);
                last = Some(g);
            }
        }
        self.indptr.push(self.indices.len());
    }

    /// Number of spots.
    pub fn n_spots(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// The (gene column, count) pairs of spot `i`.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let r = self.indptr[i]..self.indptr[i + 1];
        self.indices[r.clone()]
            .iter()
            .zip(&self.data[r])
            .map(|(&g, &c)| (g as usize, c))
    }

    /// The rows `keep` (in that order) as a new matrix over the same genes.
    pub fn select_rows(&self, keep: &[usize]) -> CountMatrix {
        let mut m = CountMatrix::new(self.genes.clone());
        for &i in keep {
            let r = self.indptr[i]..self.indptr[i + 1];
            m.indices.extend_from_slice(&self.indices[r.clone()]);
            m.data.extend_from_slice(&self.data[r]);
            m.indptr.push(m.indices.len());
        }
        m
    }

    /// Total counts of every spot.
    pub fn totals(&self) -> Vec<f64> {
        (0..self.n_spots())
            .map(|i| self.row(i).map(|(_, c)| c as f64).sum())
            .collect()
    }
}

/// Quality-control thresholds (the method's defaults: >= 25 genes, < 20% mitochondrial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcSettings {
    /// Minimum number of genes with a non-zero count.
    pub min_genes: usize,
    /// Maximum fraction of counts in mitochondrial genes (exclusive).
    pub max_mito_fraction: f64,
    /// Prefix of mitochondrial gene symbols (matched case-insensitively).
    pub mito_prefix: String,
}

impl Default for QcSettings {
    fn default() -> Self {
        QcSettings {
            min_genes: 25,
            max_mito_fraction: 0.2,
            mito_prefix: "MT-".into(),
        }
    }
}

/// Per-spot quality metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpotQc {
    /// Genes with a non-zero count.
    pub n_genes: u32,
    /// Total counts.
    pub total_counts: f64,
    /// Fraction of counts in mitochondrial genes (0 for an empty spot).
    pub mito_fraction: f64,
    /// True when the spot passes both rules.
    pub kept: bool,
}

/// How many spots each QC rule removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QcSummary {
    /// Spots read.
    pub spots_in: usize,
    /// Spots kept.
    pub kept: usize,
    /// Spots failing the minimum-genes rule (whatever the other rule says).
    pub removed_min_genes: usize,
    /// Spots failing the mitochondrial rule (whatever the other rule says).
    pub removed_mito: usize,
    /// Spots failing both rules.
    pub removed_both: usize,
}

/// Quality metrics of every spot and the summary of what the rules remove.
pub fn quality_control(m: &CountMatrix, s: &QcSettings) -> (Vec<SpotQc>, QcSummary) {
    let prefix = s.mito_prefix.to_uppercase();
    let mito: Vec<bool> = m
        .genes
        .iter()
        .map(|g| !prefix.is_empty() && g.to_uppercase().starts_with(&prefix))
        .collect();
    let mut sum = QcSummary {
        spots_in: m.n_spots(),
        ..Default::default()
    };
    let qc = (0..m.n_spots())
        .map(|i| {
            let (mut n, mut tot, mut mt) = (0u32, 0.0f64, 0.0f64);
            for (g, c) in m.row(i) {
                n += 1;
                tot += c as f64;
                if mito[g] {
                    mt += c as f64;
                }
            }
            let frac = if tot > 0.0 { mt / tot } else { 0.0 };
            let few = (n as usize) < s.min_genes;
            let high_mt = frac >= s.max_mito_fraction;
            sum.removed_min_genes += few as usize;
            sum.removed_mito += high_mt as usize;
            sum.removed_both += (few && high_mt) as usize;
            let kept = !few && !high_mt;
            sum.kept += kept as usize;
            SpotQc {
                n_genes: n,
                total_counts: tot,
                mito_fraction: frac,
                kept,
            }
        })
        .collect();
    (qc, sum)
}

/// Library-size normalisation to `target` counts per spot, then log1p (scanpy's
/// `normalize_total(target_sum=target)` + `log1p`), returned sparse like the input.
/// A spot with no counts stays all zero.
pub fn normalize_log1p(m: &CountMatrix, target: f64) -> CountMatrix {
    let totals = m.totals();
    let mut out = m.clone();
    for (i, &tot) in totals.iter().enumerate() {
        let scale = if tot > 0.0 { target / tot } else { 0.0 };
        for v in &mut out.data[m.indptr[i]..m.indptr[i + 1]] {
            *v = (*v as f64 * scale).ln_1p() as f32;
        }
    }
    out
}

/// Highly variable genes, scanpy's `highly_variable_genes(flavor="seurat",
/// n_top_genes=n)` (its default flavour) on `normalize_total(target_sum=target)` +
/// `log1p` data: dispersions of the de-logged data, z-scored within 20 equal-width bins
/// of log mean, the `n` highest (genes tied at the cut-off are all kept, as scanpy
/// does). Computed in f64 from the counts. Returns gene columns in decreasing order of
/// normalised dispersion (ties by column).
pub fn highly_variable_genes(counts: &CountMatrix, target: f64, n: usize) -> Vec<usize> {
    let totals = counts.totals();
    let g = counts.n_genes();
    let ns = counts.n_spots() as f64;
    let (mut s1, mut s2) = (vec![0.0f64; g], vec![0.0f64; g]);
    for (i, &tot) in totals.iter().enumerate() {
        let scale = if tot > 0.0 { target / tot } else { 0.0 };
        for (j, c) in counts.row(i) {
            // log1p then expm1, as scanpy does on log1p data.
            let x = (c as f64 * scale).ln_1p().exp_m1();
            s1[j] += x;
            s2[j] += x * x;
        }
    }
    // log dispersion (NaN where the dispersion is 0) and log1p mean.
    let mut disp = vec![f64::NAN; g];
    let mut lmean = vec![0.0f64; g];
    for j in 0..g {
        let mean = s1[j] / ns;
        let mut var = s2[j] / ns - mean * mean;
        if ns > 1.0 {
            var *= ns / (ns - 1.0);
        }
        let mu = if mean == 0.0 { 1e-12 } else { mean };
        let d = var / mu;
        disp[j] = if d == 0.0 { f64::NAN } else { d.ln() };
        lmean[j] = mu.ln_1p();
    }
    let nb = 20;
    let bins = cut_equal_width(&lmean, nb);
    // Per-bin mean and std (ddof 1) of the non-NaN dispersions (pandas skips NaN).
    let (mut cnt, mut b1) = (vec![0usize; nb], vec![0.0f64; nb]);
    for j in 0..g {
        if !disp[j].is_nan() {
            cnt[bins[j]] += 1;
            b1[bins[j]] += disp[j];
        }
    }
    let mut bmean: Vec<f64> = (0..nb).map(|b| b1[b] / cnt[b] as f64).collect();
    let mut ss = vec![0.0f64; nb];
    for j in 0..g {
        if !disp[j].is_nan() {
            let d = disp[j] - bmean[bins[j]];
            ss[bins[j]] += d * d;
        }
    }
    let mut bstd: Vec<f64> = (0..nb)
        .map(|b| {
            if cnt[b] > 1 {
                (ss[b] / (cnt[b] - 1) as f64).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    // scanpy: a bin whose std is undefined gets mean 0 and std = its mean.
    for b in 0..nb {
        if bstd[b].is_nan() {
            bstd[b] = bmean[b];
            bmean[b] = 0.0;
        }
    }
    let norm: Vec<f64> = (0..g)
        .map(|j| (disp[j] - bmean[bins[j]]) / bstd[bins[j]])
        .collect();
    let mut finite: Vec<f64> = norm.iter().copied().filter(|v| !v.is_nan()).collect();
    if finite.is_empty() || n == 0 {
        return Vec::new();
    }
    finite.sort_by(|a, b| b.total_cmp(a));
    let cutoff = finite[n.min(finite.len()) - 1];
    // scanpy keeps every gene with nan_to_num(norm, nan=-inf) >= cutoff.
    let mut sel: Vec<usize> = (0..g)
        .filter(|&j| !norm[j].is_nan() && norm[j] >= cutoff)
        .collect();
    sel.sort_by(|&a, &b| norm[b].total_cmp(&norm[a]).then(a.cmp(&b)));
    sel
}

/// pandas `cut(x, bins=n)`: n equal-width bins over [min, max], right-closed, the first
/// edge moved down by 0.1% of the range so the minimum falls in bin 0.
fn cut_equal_width(x: &[f64], n: usize) -> Vec<usize> {
    let mn = x.iter().copied().fold(f64::INFINITY, f64::min);
    let mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if mx <= mn {
        return vec![n / 2; x.len()];
    }
    // numpy.linspace: i * step + start, the last edge exactly `max`.
    let step = (mx - mn) / n as f64;
    let mut edges: Vec<f64> = (0..=n).map(|i| i as f64 * step + mn).collect();
    edges[n] = mx;
    edges[0] -= (mx - mn) * 0.001;
    x.iter()
        .map(|&v| {
            // first edge >= v, minus one: v in (edges[b], edges[b + 1]].
            let b = edges.partition_point(|&e| e < v);
            b.clamp(1, n) - 1
        })
        .collect()
}

/// The `n` genes of highest mean log1p-normalised expression (`lognorm` from
/// [`normalize_log1p`]), skipping symbols that start with any of `exclude_prefixes`
/// (case-insensitive); decreasing mean, ties by column.
pub fn top_expressed(lognorm: &CountMatrix, n: usize, exclude_prefixes: &[&str]) -> Vec<usize> {
    let mut mean = vec![0.0f64; lognorm.n_genes()];
    for (&g, &v) in lognorm.indices.iter().zip(&lognorm.data) {
        mean[g as usize] += v as f64;
    }
    let mut cols: Vec<usize> = (0..lognorm.n_genes())
        .filter(|&j| {
            let g = lognorm.genes[j].to_uppercase();
            !exclude_prefixes
                .iter()
                .any(|p| g.starts_with(&p.to_uppercase()))
        })
        .collect();
    cols.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]).then(a.cmp(&b)));
    cols.truncate(n);
    cols
}

/// Case-insensitive lookup of gene symbols in a matrix's columns.
#[derive(Debug, Clone)]
pub struct GeneIndex {
    by_upper: HashMap<String, usize>,
}

impl GeneIndex {
    /// Index `genes`; when two symbols differ only by case the first column wins.
    pub fn new(genes: &[String]) -> Self {
        let mut by_upper = HashMap::with_capacity(genes.len());
        for (j, g) in genes.iter().enumerate() {
            by_upper.entry(g.to_uppercase()).or_insert(j);
        }
        GeneIndex { by_upper }
    }

    /// Column of `gene`, matched case-insensitively.
    pub fn get(&self, gene: &str) -> Option<usize> {
        self.by_upper.get(&gene.to_uppercase()).copied()
    }

    /// Columns of a panel (None where a gene is absent) and the absent genes.
    pub fn panel(&self, genes: &[String]) -> (Vec<Option<usize>>, Vec<String>) {
        let cols: Vec<Option<usize>> = genes.iter().map(|g| self.get(g)).collect();
        let missing = genes
            .iter()
            .zip(&cols)
            .filter(|(_, c)| c.is_none())
            .map(|(g, _)| g.clone())
            .collect();
        (cols, missing)
    }
}

/// Dense spots x panel values of a (normalised) sparse matrix; absent genes are 0.
pub fn dense_panel(m: &CountMatrix, cols: &[Option<usize>]) -> Vec<Vec<f32>> {
    let mut pos: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, c) in cols.iter().enumerate() {
        if let Some(c) = c {
            pos.entry(*c).or_default().push(k);
        }
    }
    (0..m.n_spots())
        .map(|i| {
            let mut row = vec![0.0f32; cols.len()];
            for (g, v) in m.row(i) {
                if let Some(ks) = pos.get(&g) {
                    for &k in ks {
                        row[k] = v;
                    }
                }
            }
            row
        })
        .collect()
}

/// Average every spot's values with its `k` nearest spots by position (itself
/// included; equal distances are broken by spot order). `k <= 1` returns a copy.
pub fn smooth_knn(values: &[Vec<f32>], positions: &[[f64; 2]], k: usize) -> Vec<Vec<f32>> {
    let n = values.len();
    if k <= 1 || n == 0 {
        return values.to_vec();
    }
    let k = k.min(n);
    (0..n)
        .map(|i| {
            let mut d: Vec<(f64, usize)> = (0..n)
                .map(|j| {
                    let dy = positions[i][0] - positions[j][0];
                    let dx = positions[i][1] - positions[j][1];
                    (dy * dy + dx * dx, j)
                })
                .collect();
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut acc = vec![0.0f64; values[i].len()];
            for &(_, j) in &d[..k] {
                for (a, &v) in acc.iter_mut().zip(&values[j]) {
                    *a += v as f64;
                }
            }
            acc.iter().map(|a| (a / k as f64) as f32).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f32]], genes: &[&str]) -> CountMatrix {
        let mut m = CountMatrix::new(genes.iter().map(|g| g.to_string()).collect());
        for r in rows {
            m.push_row(r.iter().enumerate().map(|(j, &c)| (j as u32, c)).collect());
        }
        m
    }

    #[test]
    fn qc_counts_each_rule() {
        let m = matrix(
            &[&[5.0, 0.0, 1.0], &[1.0, 1.0, 8.0], &[0.0, 0.0, 3.0]],
            &["A", "B", "mt-Co1"],
        );
        let s = QcSettings {
            min_genes: 2,
            max_mito_fraction: 0.5,
            mito_prefix: "MT-".into(),
        };
        let (qc, sum) = quality_control(&m, &s);
        assert_eq!(qc[0].n_genes, 2);
        assert!((qc[1].mito_fraction - 0.8).abs() < 1e-12);
        assert_eq!(
            (
                sum.kept,
                sum.removed_min_genes,
                sum.removed_mito,
                sum.removed_both
            ),
            (1, 1, 2, 1)
        );
    }

    #[test]
    fn normalisation_is_log1p_of_fractions() {
        let m = matrix(&[&[1.0, 3.0], &[0.0, 0.0]], &["A", "B"]);
        let n = normalize_log1p(&m, 100.0);
        let r: Vec<(usize, f32)> = n.row(0).collect();
        assert!((r[0].1 as f64 - 25f64.ln_1p()).abs() < 1e-6);
        assert!((r[1].1 as f64 - 75f64.ln_1p()).abs() < 1e-6);
        assert_eq!(n.row(1).count(), 0);
    }

    #[test]
    fn pandas_cut_puts_min_in_first_bin_and_max_in_last() {
        let b = cut_equal_width(&[0.0, 0.5, 1.0, 0.05, 0.0500001], 20);
        assert_eq!(b, vec![0, 9, 19, 0, 1]);
    }

    #[test]
    fn gene_panel_is_case_insensitive_and_reports_missing() {
        let idx = GeneIndex::new(&["Erbb2".into(), "GRB7".into()]);
        let (cols, missing) = idx.panel(&["ERBB2".into(), "grb7".into(), "XYZ".into()]);
        assert_eq!(cols, vec![Some(0), Some(1), None]);
        assert_eq!(missing, vec!["XYZ".to_string()]);
    }

    #[test]
    fn smoothing_averages_nearest_spots() {
        let vals = vec![vec![0.0f32], vec![3.0], vec![6.0], vec![100.0]];
        let pos = [[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 50.0]];
        let s = smooth_knn(&vals, &pos, 3);
        assert!((s[1][0] - 3.0).abs() < 1e-6);
        assert!((s[0][0] - 3.0).abs() < 1e-6);
        assert!((s[3][0] - (100.0 + 6.0 + 3.0) / 3.0).abs() < 1e-4);
    }
}
