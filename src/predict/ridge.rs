//! The ridge readout: predicted expression as a linear map of what the store holds for
//! each patch (its embedding and the predictor's hidden representation) and around it
//! (the mean embedding of its neighbourhood at one or more scales, `context.rs`),
//! fitted on reference spots measured on the same sample. The map is fitted on exactly
//! the features the store serves (every overlapping patch averaged over a spot), which
//! the predictor head, trained on one spot-centred patch per spot, never saw; the
//! penalty and context are chosen by leave-one-reference-sample-out cross-validation.
//! It is the store's twin of the HEST-style linear probe, over every predicted gene.
//!
//! The solve is a Cholesky factorisation of the (features x features) normal equations,
//! written here: features are a few hundred, and the crate takes no LAPACK dependency.

use rayon::prelude::*;

use super::features::Rows;
use super::{Method, Predictions};
use crate::catalog::SpotRecord;
use crate::engine::Store;
use crate::error::{Error, Result};

/// Penalties tried by cross-validation (on standardised features).
pub const RIDGE_ALPHAS: [f64; 9] = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0];

/// Penalty used when there is a single reference sample (no fold to choose on).
pub const RIDGE_DEFAULT_ALPHA: f64 = 100.0;

/// Context scales (cell sides, micrometres) whose prefixes cross-validation chooses
/// among: cells of 200 and 400 um average the patches within roughly 300 and 600 um.
pub const RIDGE_CONTEXT_UM: [f64; 2] = [200.0, 400.0];

/// Most context scales a readout takes.
const MAX_SCALES: usize = 4;

/// Fewest reference spots inside the sample's patches that a fit accepts.
const MIN_SPOTS: usize = 10;

/// How a ridge readout was fitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RidgeFit {
    /// The penalty used.
    pub alpha: f64,
    /// The context scales used (cell sides in micrometres; empty: none).
    pub context_um: Vec<f64>,
    /// Mean held-out PCC of the chosen penalty and context over the reference folds
    /// (None when both were given or there is one reference sample).
    pub cv_pcc: Option<f64>,
    /// Reference spots fitted on (those inside the sample's patches).
    pub spots: usize,
    /// Features per patch (embedding + hidden representation + context).
    pub features: usize,
    /// Cross-validation chose the largest context the grid offers: a wider context
    /// might have scored higher (the grid's edge, not the data, set the choice).
    pub context_at_edge: bool,
    /// Cross-validation chose the smallest or largest penalty of [`RIDGE_ALPHAS`].
    pub alpha_at_edge: bool,
}

impl RidgeFit {
    /// A one-line account of the fit for people, naming a choice at its grid's edge.
    pub fn describe(&self) -> String {
        let ctx = if self.context_um.is_empty() {
            "none".to_string()
        } else {
            let v: Vec<String> = self.context_um.iter().map(|c| format!("{c}")).collect();
            format!("{} um", v.join("+"))
        };
        let mut s = format!(
            "ridge readout: alpha {}, context {ctx}, {} reference spots, {} features",
            self.alpha, self.spots, self.features
        );
        if let Some(c) = self.cv_pcc {
            s.push_str(&format!(", cross-validated PCC {c:.3}"));
        }
        if self.context_at_edge {
            s.push_str("; the context chosen is the largest of the grid (at its edge)");
        }
        if self.alpha_at_edge {
            s.push_str("; the penalty chosen is at the edge of the grid");
        }
        s
    }
}

/// A fitted linear map: centred, scaled features -> centred expression.
pub(super) struct Fit {
    mu_x: Vec<f64>,
    mu_y: Vec<f64>,
    /// features x genes, row-major.
    w: Vec<f64>,
}

impl Fit {
    /// The prediction for the features `x` (its first `mu_x.len()` values) into `out`.
    pub(super) fn predict(&self, x: &[f64], out: &mut [f64]) {
        out.copy_from_slice(&self.mu_y);
        let g = out.len();
        for (j, (&v, &m)) in x.iter().zip(&self.mu_x).enumerate() {
            let d = v - m;
            for (o, w) in out.iter_mut().zip(&self.w[j * g..(j + 1) * g]) {
                *o += d * w;
            }
        }
    }
}

/// How a stored readout's fit departs from `predict --ridge` (all off there).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FitFlags {
    /// Standardise every feature over the sample's own patches first.
    pub per_sample: bool,
    /// Fit what the predictor head leaves.
    pub anchored: bool,
    /// One reference sample: choose penalty and context leaving one section out.
    pub section_folds: bool,
}

/// A fitted ridge map as it is stored: expression = `mu_y + sum_j (x_j - mu_j) / sd_j *
/// weights[j]` over the features of [`Rows`] at `context_um`.
pub(super) struct RidgeMap {
    pub mu: Vec<f64>,
    pub sd: Vec<f64>,
    pub mu_y: Vec<f64>,
    /// features x genes, row-major.
    pub weights: Vec<f64>,
    pub context_um: Vec<f64>,
    pub per_sample: bool,
    pub anchored: bool,
}

/// Mean of the rows `idx` of `rows`.
fn mean_rows(rows: &[Vec<f64>], idx: &[usize], width: usize) -> Vec<f64> {
    let mut m = vec![0.0; width];
    for &i in idx {
        for (a, b) in m.iter_mut().zip(&rows[i]) {
            *a += b;
        }
    }
    m.iter_mut().for_each(|a| *a /= idx.len().max(1) as f64);
    m
}

/// Centred Gram matrix and cross-products of some rows: X'X, X'Y and the means.
struct Normal {
    xtx: Vec<f64>,
    xty: Vec<f64>,
    mu_x: Vec<f64>,
    mu_y: Vec<f64>,
}

/// Raw sums of some rows (count, sum x, sum y, sum x x', sum x y'), which add across
/// groups of rows: a cross-validation fold's normal equations are the sum of the
/// other groups' sums, centred once, so each row is read once, not once per fold.
#[derive(Clone)]
struct Sums {
    n: f64,
    sx: Vec<f64>,
    sy: Vec<f64>,
    /// features x features, row-major.
    sxx: Vec<f64>,
    /// features x genes, row-major.
    sxy: Vec<f64>,
}

impl Sums {
    /// The sums over the rows `idx` of `x` and `y`.
    fn of(x: &[Vec<f64>], y: &[Vec<f64>], idx: &[usize]) -> Sums {
        let (f, g) = (x[0].len(), y[0].len());
        let outer = |z: &[Vec<f64>], w: usize| -> Vec<f64> {
            (0..f)
                .into_par_iter()
                .flat_map_iter(|a| {
                    let mut row = vec![0.0; w];
                    for &i in idx {
                        let v = x[i][a];
                        for (r, b) in row.iter_mut().zip(&z[i]) {
                            *r += v * b;
                        }
                    }
                    row
                })
                .collect()
        };
        let total = |z: &[Vec<f64>], w: usize| -> Vec<f64> {
            let mut t = vec![0.0; w];
            for &i in idx {
                t.iter_mut().zip(&z[i]).for_each(|(a, b)| *a += b);
            }
            t
        };
        Sums {
            n: idx.len() as f64,
            sx: total(x, f),
            sy: total(y, g),
            sxx: outer(x, f),
            sxy: outer(y, g),
        }
    }

    /// The sums of several groups together (`parts` not empty).
    fn add(parts: &[&Sums]) -> Sums {
        let mut s = parts[0].clone();
        for p in &parts[1..] {
            s.n += p.n;
            let pairs = [
                (&mut s.sx, &p.sx),
                (&mut s.sy, &p.sy),
                (&mut s.sxx, &p.sxx),
                (&mut s.sxy, &p.sxy),
            ];
            for (a, b) in pairs {
                a.iter_mut().zip(b).for_each(|(u, v)| *u += v);
            }
        }
        s
    }

    /// The centred normal equations of the first `w` features.
    fn normal(&self, w: usize) -> Normal {
        let (f, g) = (self.sx.len(), self.sy.len());
        let n = self.n.max(1.0);
        let mu_x: Vec<f64> = self.sx[..w].iter().map(|v| v / n).collect();
        let mu_y: Vec<f64> = self.sy.iter().map(|v| v / n).collect();
        let mut xtx = Vec::with_capacity(w * w);
        let mut xty = Vec::with_capacity(w * g);
        for a in 0..w {
            let c = n * mu_x[a];
            xtx.extend((0..w).map(|b| self.sxx[a * f + b] - c * mu_x[b]));
            xty.extend((0..g).map(|t| self.sxy[a * g + t] - c * mu_y[t]));
        }
        Normal {
            xtx,
            xty,
            mu_x,
            mu_y,
        }
    }
}

/// The centred normal equations of the rows `idx` over all features.
#[cfg(test)]
fn normal(x: &[Vec<f64>], y: &[Vec<f64>], idx: &[usize]) -> Normal {
    Sums::of(x, y, idx).normal(x[0].len())
}

/// Solve (X'X + alpha I) W = X'Y by Cholesky; None if not positive definite.
fn solve(n: &Normal, alpha: f64) -> Option<Fit> {
    let f = n.mu_x.len();
    let g = n.mu_y.len();
    let mut l = n.xtx.clone();
    for i in 0..f {
        l[i * f + i] += alpha;
    }
    for j in 0..f {
        let mut d = l[j * f + j];
        for k in 0..j {
            d -= l[j * f + k] * l[j * f + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        l[j * f + j] = d;
        for i in j + 1..f {
            let mut v = l[i * f + j];
            for k in 0..j {
                v -= l[i * f + k] * l[j * f + k];
            }
            l[i * f + j] = v / d;
        }
    }
    // Forward then backward substitution, for every gene at once.
    let mut w = n.xty.clone();
    for i in 0..f {
        for k in 0..i {
            let c = l[i * f + k];
            for t in 0..g {
                w[i * g + t] -= c * w[k * g + t];
            }
        }
        let d = l[i * f + i];
        w[i * g..(i + 1) * g].iter_mut().for_each(|v| *v /= d);
    }
    for i in (0..f).rev() {
        for k in i + 1..f {
            let c = l[k * f + i];
            for t in 0..g {
                w[i * g + t] -= c * w[k * g + t];
            }
        }
        let d = l[i * f + i];
        w[i * g..(i + 1) * g].iter_mut().for_each(|v| *v /= d);
    }
    Some(Fit {
        mu_x: n.mu_x.clone(),
        mu_y: n.mu_y.clone(),
        w,
    })
}

/// Mean over genes of the PCC between predictions and measurements on rows `idx`.
/// With `offset` (an anchored readout: the fit is of `y - offset`), both the
/// predictions and the targets get the offset back before scoring.
fn mean_pcc(
    fit: &Fit,
    x: &[Vec<f64>],
    y: &[Vec<f64>],
    idx: &[usize],
    offset: Option<&[Vec<f64>]>,
) -> f64 {
    let g = y[0].len();
    let mut pred = vec![vec![0.0; g]; idx.len()];
    for (p, &i) in pred.iter_mut().zip(idx) {
        fit.predict(&x[i], p);
    }
    let off = |i: usize, t: usize| offset.map_or(0.0, |o| o[i][t]);
    let pccs: Vec<f64> = (0..g)
        .map(|t| {
            let a: Vec<f64> = pred
                .iter()
                .zip(idx)
                .map(|(p, &i)| p[t] + off(i, t))
                .collect();
            let b: Vec<f64> = idx.iter().map(|&i| y[i][t] + off(i, t)).collect();
            crate::stats::pearson(&a, &b)
        })
        .filter(|v| v.is_finite())
        .collect();
    pccs.iter().sum::<f64>() / pccs.len().max(1) as f64
}

/// The scores of a cross-validation: `(width index, alpha, mean held-out PCC)` per
/// candidate (None where a fold's system was singular), and the best candidate.
struct CrossValidation {
    scores: Vec<(usize, f64, Option<f64>)>,
    best: Option<(usize, f64, f64)>,
}

/// Leave-one-group-out cross-validation of the ridge fit over the candidate feature
/// widths (the first `widths[i]` columns of `x`) and penalties: each group of rows
/// (`group[i]`, one per reference sample, with its sums in `sums`) is held out in turn,
/// the map fitted on the others, and scored by the mean per-gene PCC on the held-out
/// rows; a candidate's score is the mean over folds. Folds with fewer than 2 held-out
/// rows or [`MIN_SPOTS`] training rows are left out. Ties keep the earlier candidate
/// (smaller width, then smaller penalty).
fn cross_validate(
    x: &[Vec<f64>],
    y: &[Vec<f64>],
    group: &[usize],
    sums: &[Sums],
    widths: &[usize],
    alphas: &[f64],
    offset: Option<&[Vec<f64>]>,
) -> CrossValidation {
    let folds: Vec<(Sums, Vec<usize>)> = (0..sums.len())
        .filter_map(|gi| {
            let test: Vec<usize> = (0..x.len()).filter(|&i| group[i] == gi).collect();
            let train: Vec<&Sums> = (0..sums.len())
                .filter(|&o| o != gi)
                .map(|o| &sums[o])
                .collect();
            let n_train = x.len() - test.len();
            (test.len() >= 2 && n_train >= MIN_SPOTS && !train.is_empty())
                .then(|| (Sums::add(&train), test))
        })
        .collect();
    let cands: Vec<(usize, f64)> = (0..widths.len())
        .flat_map(|wi| alphas.iter().map(move |&a| (wi, a)))
        .collect();
    let scores: Vec<(usize, f64, Option<f64>)> = cands
        .par_iter()
        .map(|&(wi, a)| {
            let s: Vec<f64> = folds
                .iter()
                .filter_map(|(sums, test)| {
                    solve(&sums.normal(widths[wi]), a).map(|fit| mean_pcc(&fit, x, y, test, offset))
                })
                .collect();
            let mean = (s.len() == folds.len() && !s.is_empty())
                .then(|| s.iter().sum::<f64>() / s.len() as f64);
            (wi, a, mean)
        })
        .collect();
    let mut best: Option<(usize, f64, f64)> = None;
    for &(wi, a, s) in &scores {
        if let Some(s) = s
            && s.is_finite()
            && best.is_none_or(|b| s > b.2)
        {
            best = Some((wi, a, s));
        }
    }
    CrossValidation { scores, best }
}

impl Predictions {
    /// Replace the predictor's values by the ridge readout fitted on the kept spots of
    /// the `reference` spot samples, which must be measured on this sample (their
    /// centres inside its patches; spots outside every patch are left out, and a
    /// reference with fewer than half its spots inside is an error). Features per
    /// patch: the stored embedding and the predictor's hidden representation, and the
    /// mean embedding of the patches around it at each `context_um` scale (cell side in
    /// micrometres, the 3 x 3 cells around the patch in its slab; see `context.rs`),
    /// standardised over the reference spots (each spot: the mean over the patches
    /// containing it, as at prediction time). `alpha`: the penalty, or None to choose
    /// it among [`RIDGE_ALPHAS`]; `context_um`: the scales, or None to choose among the
    /// prefixes of [`RIDGE_CONTEXT_UM`] (none, the first, both). Choices are made by
    /// leave-one-reference-sample-out CV (mean per-gene PCC); with one reference
    /// sample, [`RIDGE_DEFAULT_ALPHA`] and all of [`RIDGE_CONTEXT_UM`]. The fit is also
    /// kept in `self.ridge`.
    pub fn use_ridge(
        &mut self,
        store: &Store,
        reference: &[String],
        alpha: Option<f64>,
        context_um: Option<&[f64]>,
    ) -> Result<RidgeFit> {
        Ok(self
            .fit_ridge(store, reference, alpha, context_um, FitFlags::default())?
            .0)
    }

    /// [`Predictions::use_ridge`] with [`FitFlags`]: the features standardised over the
    /// sample's own patches first when `per_sample`, and, when `anchored`, fitted to what the
    /// predictor head leaves (expression minus the head's output), so that the
    /// penalty shrinks towards the head instead of the reference mean, and, with
    /// `section_folds`, choosing the penalty and context for one reference sample by
    /// leaving one section out; also returns the fitted map.
    pub(super) fn fit_ridge(
        &mut self,
        store: &Store,
        reference: &[String],
        alpha: Option<f64>,
        context_um: Option<&[f64]>,
        flags: FitFlags,
    ) -> Result<(RidgeFit, RidgeMap)> {
        let FitFlags {
            per_sample,
            anchored,
            section_folds,
        } = flags;
        if reference.is_empty() {
            return Err(Error::arg(
                "reference",
                "the ridge readout needs at least one reference spot sample",
            ));
        }
        if let Some(a) = alpha
            && !(a.is_finite() && a > 0.0 && a <= 1e12)
        {
            return Err(Error::arg(
                "alpha",
                format!("{a} is not a penalty in (0, 1e12]"),
            ));
        }
        if let Some(c) = context_um {
            if c.len() > MAX_SCALES {
                return Err(Error::arg(
                    "context_um",
                    format!("{} context scales given; at most {MAX_SCALES}", c.len()),
                ));
            }
            if let Some(v) = c
                .iter()
                .find(|v| !(v.is_finite() && **v > 0.0 && **v <= 1e6))
            {
                return Err(Error::arg(
                    "context_um",
                    format!("{v} is not a cell side in (0, 1e6] micrometres"),
                ));
            }
        }
        let scales: Vec<f64> = context_um.unwrap_or(&RIDGE_CONTEXT_UM).to_vec();
        let rows = Rows::new(self, store, &scales, per_sample)?;
        let (dim, base, f) = (rows.dim(), rows.base(), rows.width());
        let g = self.genes.len();
        let row = |i: usize, out: &mut [f64]| rows.write(i, out);
        let (mut x, mut y, mut group) = (Vec::new(), Vec::new(), Vec::new());
        let mut head: Vec<Vec<f64>> = Vec::new();
        // Sections (spot z) of the one reference sample, for a stored readout's
        // leave-one-section-out choice of penalty and context.
        let mut section_z: Vec<f64> = Vec::new();
        for (gi, s) in reference.iter().enumerate() {
            let set = store.require_spot_set("reference", s)?;
            let cols = self.reference_columns(&set.panel, s)?;
            let rows = store.spots(s)?;
            let kept: Vec<(&SpotRecord, &Vec<f32>)> = rows
                .iter()
                .filter_map(|(sp, e)| e.as_ref().map(|e| (sp, &e.normalized)))
                .collect();
            let refs: Vec<&SpotRecord> = kept.iter().map(|k| k.0).collect();
            let inside = self.containing(&refs);
            let n_in = inside.iter().filter(|v| !v.is_empty()).count();
            if n_in * 2 < kept.len() || n_in == 0 {
                return Err(Error::arg(
                    "reference",
                    format!(
                        "only {n_in} of the {} kept spots of '{s}' lie inside the patches of \
                         sample '{}': the ridge readout needs reference spots measured on \
                         this sample",
                        kept.len(),
                        self.sample.id
                    ),
                ));
            }
            let mut buf = vec![0.0; f];
            for ((sp, expr), idx) in kept.iter().zip(&inside) {
                if idx.is_empty() {
                    continue;
                }
                section_z.push(sp.position[0]);
                let mut r = vec![0.0; f];
                let mut hd = vec![0.0; g];
                for &i in idx {
                    row(i, &mut buf);
                    r.iter_mut().zip(&buf).for_each(|(a, b)| *a += b);
                    let out = &self.patches.row(i)[..g];
                    hd.iter_mut().zip(out).for_each(|(a, b)| *a += *b as f64);
                }
                r.iter_mut().for_each(|a| *a /= idx.len() as f64);
                hd.iter_mut().for_each(|a| *a /= idx.len() as f64);
                x.push(r);
                let target = cols
                    .iter()
                    .zip(&hd)
                    .map(|(&c, h)| expr[c] as f64 - if anchored { *h } else { 0.0 });
                y.push(target.collect::<Vec<f64>>());
                head.push(hd);
                group.push(gi);
            }
        }
        if x.len() < MIN_SPOTS {
            return Err(Error::arg(
                "reference",
                format!(
                    "{} reference spots lie inside the patches of '{}'; the ridge readout \
                     needs at least {MIN_SPOTS}",
                    x.len(),
                    self.sample.id
                ),
            ));
        }
        // Standardise the features by the reference spots' spread (constant ones keep 1).
        let all: Vec<usize> = (0..x.len()).collect();
        let mu = mean_rows(&x, &all, f);
        let sd: Vec<f64> = (0..f)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mu[j]).powi(2)).sum::<f64>() / x.len() as f64;
                if v > 1e-12 { v.sqrt() } else { 1.0 }
            })
            .collect();
        for r in x.iter_mut() {
            for ((v, m), s) in r.iter_mut().zip(&mu).zip(&sd) {
                *v = (*v - m) / s;
            }
        }
        // Candidate feature sets: the own features and the first k context scales.
        let width = |k: usize| base + k * dim;
        let ks: Vec<usize> = match context_um {
            Some(c) => vec![c.len()],
            None => (0..=scales.len()).collect(),
        };
        // One reference sample with spots on several sections: with `section_folds` (a
        // stored readout, meant to transfer), cross-validate leaving one section out,
        // where the spots of each section are folds of at least MIN_SPOTS.
        let mut n_groups = reference.len();
        if section_folds && reference.len() == 1 {
            let mut zs: Vec<f64> = section_z.iter().map(|z| z.round()).collect();
            zs.sort_by(f64::total_cmp);
            zs.dedup();
            let count = |z: f64| section_z.iter().filter(|v| v.round() == z).count();
            if zs.len() >= 2 && zs.iter().all(|&z| count(z) >= MIN_SPOTS) {
                for (g, z) in group.iter_mut().zip(&section_z) {
                    *g = zs.iter().position(|v| *v == z.round()).unwrap_or(0);
                }
                n_groups = zs.len();
            }
        }
        let groups: Vec<Sums> = (0..n_groups)
            .map(|gi| {
                let idx: Vec<usize> = all.iter().copied().filter(|&i| group[i] == gi).collect();
                Sums::of(&x, &y, &idx)
            })
            .collect();
        let total = Sums::add(&groups.iter().collect::<Vec<_>>());
        let alphas: Vec<f64> = alpha.map_or(RIDGE_ALPHAS.to_vec(), |a| vec![a]);
        let choose = ks.len() > 1 || alphas.len() > 1;
        let (k, alpha, cv_pcc) = if !choose {
            (ks[0], alphas[0], None)
        } else if n_groups < 2 {
            (
                *ks.last().unwrap_or(&0),
                alpha.unwrap_or(RIDGE_DEFAULT_ALPHA),
                None,
            )
        } else {
            let widths: Vec<usize> = ks.iter().map(|&k| width(k)).collect();
            let offset = anchored.then_some(head.as_slice());
            let cv = cross_validate(&x, &y, &group, &groups, &widths, &alphas, offset);
            for c in &cv.scores {
                log::debug!(
                    "ridge cv: context scales {} alpha {} mean PCC {:?}",
                    ks[c.0],
                    c.1,
                    c.2
                );
            }
            match cv.best {
                Some((wi, a, s)) => (ks[wi], a, Some(s)),
                None => (*ks.last().unwrap_or(&0), RIDGE_DEFAULT_ALPHA, None),
            }
        };
        // A choice at the end of its grid may be limited by the grid, not the data.
        let context_at_edge = cv_pcc.is_some() && context_um.is_none() && k == scales.len();
        let alpha_at_edge = cv_pcc.is_some()
            && alphas.len() > 1
            && (alpha == alphas[0] || alpha == alphas[alphas.len() - 1]);
        let w = width(k);
        let weights = solve(&total.normal(w), alpha).ok_or_else(|| {
            Error::arg(
                "alpha",
                format!("the ridge system is singular at alpha = {alpha}"),
            )
        })?;
        let expression = (0..self.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let mut z = vec![0.0; f];
                row(i, &mut z);
                for ((v, m), s) in z.iter_mut().zip(&mu).zip(&sd) {
                    *v = (*v - m) / s;
                }
                let mut out = vec![0.0; g];
                weights.predict(&z[..w], &mut out);
                if anchored {
                    let h = &self.patches.row(i)[..g];
                    out.iter_mut().zip(h).for_each(|(o, v)| *o += *v as f64);
                }
                out.into_iter().map(|v| v as f32)
            })
            .collect();
        drop(rows);
        self.expression = expression;
        let context = scales[..k].to_vec();
        self.method = Method::Ridge {
            reference: reference.to_vec(),
            alpha: Some(alpha),
            context_um: Some(context.clone()),
        };
        let fit = RidgeFit {
            alpha,
            context_um: context,
            cv_pcc,
            spots: x.len(),
            features: w,
            context_at_edge,
            alpha_at_edge,
        };
        self.ridge = Some(fit.clone());
        // The map on raw (per-sample standardised) features: (x - mu') / sd with the
        // fit's own centring folded into mu'.
        let map = RidgeMap {
            mu: (0..w).map(|j| mu[j] + sd[j] * weights.mu_x[j]).collect(),
            sd: sd[..w].to_vec(),
            mu_y: weights.mu_y.clone(),
            weights: weights.w,
            context_um: fit.context_um.clone(),
            per_sample,
            anchored,
        };
        Ok((fit, map))
    }
}

#[cfg(test)]
#[path = "ridge_tests.rs"]
mod tests;
