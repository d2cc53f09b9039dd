//! Evaluation of predicted against measured spot expression with the method's metrics:
//! PCC per gene (all genes, the 50 best-predicted genes, marker genes), SSIM of spots
//! gridded to an image with min-max scaling, Spearman correlation of per-gene
//! variances, and Moran's I / Geary's C of the predicted and measured maps.
//!
//! Spots are grouped by section (their z); images and spatial weights are built per
//! section (SSIM window 7, or the largest odd size that fits a smaller grid) (8-neighbour distance band of 1.5 grid steps, row-standardised) and the
//! per-section values averaged.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::stats::{
    SpatialWeights, gearys_c, grid_spots, morans_i, nanmean, pearson, spearman, ssim, ssim_window,
};

/// What [`evaluate`] compares.
#[derive(Debug, Clone)]
pub struct EvalInput<'a> {
    /// Gene names, column order of `predicted` and `measured`.
    pub genes: &'a [String],
    /// Predicted values, `spots x genes`, row-major.
    pub predicted: &'a [f32],
    /// Measured values (log1p-normalised), same layout.
    pub measured: &'a [f32],
    /// Spot positions (z, y, x), any consistent unit.
    pub positions: &'a [[f64; 3]],
    /// Array (grid) coordinates (row, column) of every spot, when known: the spots'
    /// grid for SSIM and the spatial weights. Without them the grid is inferred from the
    /// (y, x) positions, which suits axis-aligned spot layouts; registered (rotated)
    /// positions need these.
    pub grid: Option<&'a [[f64; 2]]>,
    /// Marker genes to report separately (those absent from `genes` are listed).
    pub markers: &'a [String],
}

/// Metrics of one gene.
#[derive(Debug, Clone, Serialize)]
pub struct GeneEval {
    /// Gene.
    pub gene: String,
    /// Pearson correlation over all spots.
    pub pcc: f64,
    /// Mean SSIM over sections.
    pub ssim: f64,
    /// Moran's I of the predicted map (mean over sections).
    pub moran_predicted: f64,
    /// Moran's I of the measured map.
    pub moran_measured: f64,
    /// Geary's C of the predicted map.
    pub geary_predicted: f64,
    /// Geary's C of the measured map.
    pub geary_measured: f64,
    /// Mean measured expression.
    pub mean_measured: f64,
}

/// Summary of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Spots compared.
    pub spots: usize,
    /// Sections (distinct spot z).
    pub sections: usize,
    /// Genes compared.
    pub genes: usize,
    /// Mean PCC over all genes (NaN genes, constant in either map, left out).
    pub pcc_all: f64,
    /// Mean PCC of the 50 best-predicted genes.
    pub pcc_top50: f64,
    /// Mean PCC of the marker genes found.
    pub pcc_markers: Option<f64>,
    /// Marker genes found among the genes.
    pub markers_found: Vec<String>,
    /// Marker genes not among the genes.
    pub markers_missing: Vec<String>,
    /// Mean SSIM over genes.
    pub ssim: f64,
    /// Spearman correlation of per-gene variances (predicted vs measured).
    pub variance_spearman: f64,
    /// Mean Moran's I of the predicted maps.
    pub moran_predicted: f64,
    /// Mean Moran's I of the measured maps.
    pub moran_measured: f64,
    /// Mean Geary's C of the predicted maps.
    pub geary_predicted: f64,
    /// Mean Geary's C of the measured maps.
    pub geary_measured: f64,
    /// Per gene, best PCC first.
    pub per_gene: Vec<GeneEval>,
}

/// Grid cell (row, column) of every position within one section: coordinates divided
/// by the smallest spacing between distinct values along each axis. Spacings under a
/// third of the median nearest-neighbour distance (the pitch) are jitter, not grid steps,
/// and an axis without a clean step uses the pitch, so a rotated or noisy layout still
/// gets a grid about as large as its spot count (with neighbouring spots sharing a cell
/// now and then) instead of one cell per jitter.
pub fn grid_cells(pos: &[[f64; 2]]) -> Vec<(usize, usize)> {
    let mut nn: Vec<f64> = pos
        .iter()
        .enumerate()
        .map(|(i, p)| {
            pos.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
                .filter(|&d| d > 1e-6)
                .fold(f64::INFINITY, f64::min)
        })
        .filter(|d| d.is_finite())
        .collect();
    nn.sort_by(|a, b| a.total_cmp(b));
    let pitch = nn.get(nn.len() / 2).copied().unwrap_or(1.0).max(1e-6);
    let min_step = pitch / 3.0;
    let step = |a: usize| -> (f64, f64) {
        let mut v: Vec<f64> = pos.iter().map(|p| p[a]).collect();
        v.sort_by(|x, y| x.total_cmp(y));
        let lo = v.first().copied().unwrap_or(0.0);
        let d = v
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d >= min_step)
            .fold(f64::INFINITY, f64::min);
        // No clean gap along this axis (a rotated layout): one cell per spot pitch.
        (lo, if d.is_finite() { d } else { pitch })
    };
    let (y0, dy) = step(0);
    let (x0, dx) = step(1);
    pos.iter()
        .map(|p| {
            (
                ((p[0] - y0) / dy).round() as usize,
                ((p[1] - x0) / dx).round() as usize,
            )
        })
        .collect()
}

/// Evaluate predicted against measured expression.
pub fn evaluate(inp: &EvalInput<'_>) -> Result<EvalReport> {
    let g = inp.genes.len();
    let n = inp.positions.len();
    if inp.predicted.len() != n * g || inp.measured.len() != n * g {
        return Err(Error::bad_input(
            "eval",
            "predicted and measured values do not match spots x genes",
        ));
    }
    if inp.grid.is_some_and(|g| g.len() != n) {
        return Err(Error::bad_input(
            "eval",
            "grid coordinates do not match the spots",
        ));
    }
    if n < 3 {
        return Err(Error::bad_input(
            "eval",
            format!("{n} spots are too few to evaluate"),
        ));
    }
    let col = |m: &[f32], j: usize| -> Vec<f64> { (0..n).map(|i| m[i * g + j] as f64).collect() };
    // Sections by z.
    let mut sections: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, p) in inp.positions.iter().enumerate() {
        sections.entry(p[0].round() as i64).or_default().push(i);
    }
    struct Section {
        idx: Vec<usize>,
        cells: Vec<(usize, usize)>,
        weights: SpatialWeights,
    }
    let secs: Vec<Section> = sections
        .into_values()
        .filter(|idx| idx.len() >= 3)
        .map(|idx| {
            let yx: Vec<[f64; 2]> = idx
                .iter()
                .map(|&i| match inp.grid {
                    Some(g) => g[i],
                    None => [inp.positions[i][1], inp.positions[i][2]],
                })
                .collect();
            let cells = grid_cells(&yx);
            // The SSIM image is sized from the cells: one far-off spot must not make it
            // enormous. A real section's grid has a few cells per spot.
            let h = cells.iter().map(|c| c.0 as u64 + 1).max().unwrap_or(0);
            let w = cells.iter().map(|c| c.1 as u64 + 1).max().unwrap_or(0);
            let limit = (idx.len() as u64 * 64).max(1 << 16);
            if h.saturating_mul(w) > limit {
                return Err(Error::bad_input(
                    "spots",
                    format!(
                        "the {} spots of one section span a {h} x {w} grid: some spot's coordinates lie far outside the others",
                        idx.len()
                    ),
                ));
            }
            let cf: Vec<[f64; 2]> = cells.iter().map(|&(r, c)| [r as f64, c as f64]).collect();
            let weights = SpatialWeights::distance_band(&cf, 1.5);
            Ok(Section {
                idx,
                cells,
                weights,
            })
        })
        .collect::<Result<_>>()?;
    let per_section = |x: &[f64], f: &dyn Fn(&[f64], &Section) -> f64| -> f64 {
        nanmean(secs.iter().map(|s| {
            let v: Vec<f64> = s.idx.iter().map(|&i| x[i]).collect();
            f(&v, s)
        }))
    };
    let mut per_gene = Vec::with_capacity(g);
    let mut var_p = Vec::with_capacity(g);
    let mut var_m = Vec::with_capacity(g);
    for j in 0..g {
        let p = col(inp.predicted, j);
        let m = col(inp.measured, j);
        let var = |v: &[f64]| {
            let mu = v.iter().sum::<f64>() / n as f64;
            v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / n as f64
        };
        var_p.push(var(&p));
        var_m.push(var(&m));
        let ssim_g = nanmean(secs.iter().map(|s| {
            let pv: Vec<f64> = s.idx.iter().map(|&i| p[i]).collect();
            let mv: Vec<f64> = s.idx.iter().map(|&i| m[i]).collect();
            let (a, h, w) = grid_spots(&s.cells, &pv);
            let (b, _, _) = grid_spots(&s.cells, &mv);
            ssim(&a, &b, h, w, 1.0, ssim_window(h, w)).unwrap_or(f64::NAN)
        }));
        per_gene.push(GeneEval {
            gene: inp.genes[j].clone(),
            pcc: pearson(&p, &m),
            ssim: ssim_g,
            moran_predicted: per_section(&p, &|v, s| morans_i(v, &s.weights)),
            moran_measured: per_section(&m, &|v, s| morans_i(v, &s.weights)),
            geary_predicted: per_section(&p, &|v, s| gearys_c(v, &s.weights)),
            geary_measured: per_section(&m, &|v, s| gearys_c(v, &s.weights)),
            mean_measured: m.iter().sum::<f64>() / n as f64,
        });
    }
    per_gene.sort_by(|a, b| {
        let k = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
        k(b.pcc).total_cmp(&k(a.pcc))
    });
    let pcc_top50 = nanmean(
        per_gene
            .iter()
            .filter(|e| !e.pcc.is_nan())
            .take(50)
            .map(|e| e.pcc),
    );
    let upper: Vec<String> = inp.genes.iter().map(|x| x.to_uppercase()).collect();
    let (found, missing): (Vec<String>, Vec<String>) = inp
        .markers
        .iter()
        .cloned()
        .partition(|mk| upper.contains(&mk.to_uppercase()));
    let pcc_markers = (!found.is_empty()).then(|| {
        nanmean(
            per_gene
                .iter()
                .filter(|e| found.iter().any(|f| f.eq_ignore_ascii_case(&e.gene)))
                .map(|e| e.pcc),
        )
    });
    Ok(EvalReport {
        spots: n,
        sections: secs.len(),
        genes: g,
        pcc_all: nanmean(per_gene.iter().map(|e| e.pcc)),
        pcc_top50,
        pcc_markers,
        markers_found: found,
        markers_missing: missing,
        ssim: nanmean(per_gene.iter().map(|e| e.ssim)),
        variance_spearman: spearman(&var_p, &var_m),
        moran_predicted: nanmean(per_gene.iter().map(|e| e.moran_predicted)),
        moran_measured: nanmean(per_gene.iter().map(|e| e.moran_measured)),
        geary_predicted: nanmean(per_gene.iter().map(|e| e.geary_predicted)),
        geary_measured: nanmean(per_gene.iter().map(|e| e.geary_measured)),
        per_gene,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_prediction_scores_one() {
        let genes: Vec<String> = (0..3).map(|i| format!("G{i}")).collect();
        let mut pos = Vec::new();
        let mut vals = Vec::new();
        for y in 0..8 {
            for x in 0..9 {
                pos.push([4.0, y as f64 * 50.0, x as f64 * 50.0]);
                for j in 0..3 {
                    vals.push(((y * (j + 1) + x) as f32 * 0.3).sin());
                }
            }
        }
        let r = evaluate(&EvalInput {
            genes: &genes,
            predicted: &vals,
            measured: &vals,
            positions: &pos,
            grid: None,
            markers: &["G1".into(), "NOPE".into()],
        })
        .unwrap();
        assert!((r.pcc_all - 1.0).abs() < 1e-9);
        assert!((r.ssim - 1.0).abs() < 1e-9, "{}", r.ssim);
        assert!((r.variance_spearman - 1.0).abs() < 1e-9);
        assert_eq!(r.moran_predicted, r.moran_measured);
        assert_eq!(r.markers_found, vec!["G1".to_string()]);
        assert_eq!(r.markers_missing, vec!["NOPE".to_string()]);
        assert_eq!(
            grid_cells(&[[0.0, 0.0], [50.0, 100.0]]),
            vec![(0, 0), (1, 1)]
        );
    }

    /// Registered sections have rotated, non-integer spot positions: with the array
    /// coordinates the scores equal the axis-aligned layout's, and without them the
    /// inferred grid stays small (it once had one cell per jitter step).
    #[test]
    fn rotated_positions_use_the_array_grid() {
        let genes: Vec<String> = (0..2).map(|i| format!("G{i}")).collect();
        let (mut straight, mut rotated, mut grid, mut pred, mut meas) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (c, s) = (0.2f64.cos(), 0.2f64.sin());
        for y in 0..9 {
            for x in 0..10 {
                let (py, px) = (y as f64 * 255.6, x as f64 * 255.6);
                straight.push([2.0, py, px]);
                rotated.push([2.0, c * py - s * px + 900.0, s * py + c * px + 17.3]);
                grid.push([y as f64, x as f64]);
                for j in 0..2 {
                    meas.push(((y * (j + 2) + x) as f32 * 0.4).sin());
                    pred.push(((y * (j + 2) + x) as f32 * 0.4 + 0.3).sin());
                }
            }
        }
        let run = |pos: &[[f64; 3]], grid: Option<&[[f64; 2]]>| {
            evaluate(&EvalInput {
                genes: &genes,
                predicted: &pred,
                measured: &meas,
                positions: pos,
                grid,
                markers: &[],
            })
            .unwrap()
        };
        let a = run(&straight, None);
        let b = run(&rotated, Some(&grid));
        assert!(
            (a.ssim - b.ssim).abs() < 1e-12
                && (a.moran_predicted - b.moran_predicted).abs() < 1e-12
        );
        let yx: Vec<[f64; 2]> = rotated.iter().map(|p| [p[1], p[2]]).collect();
        let cells = grid_cells(&yx);
        let (h, w) = cells
            .iter()
            .fold((0, 0), |m, c| (m.0.max(c.0), m.1.max(c.1)));
        assert!(h * w < 90 * 16, "inferred grid {h}x{w} for 90 spots");
        assert!(run(&rotated, None).ssim.is_finite());
        let bad = [[0.0, 0.0]];
        let err = evaluate(&EvalInput {
            genes: &genes,
            predicted: &pred,
            measured: &meas,
            positions: &rotated,
            grid: Some(&bad),
            markers: &[],
        })
        .unwrap_err();
        assert!(err.to_string().contains("grid coordinates"), "{err}");
    }
}
