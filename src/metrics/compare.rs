//! The comparison `eval` runs: predictions of a sample read out at the measured spots
//! of a spot sample, the metrics of [`super::eval`], and optionally the adjusted Rand
//! index of the stored domains against a segmentation.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::eval::{EvalInput, EvalReport, evaluate};
use crate::catalog::{ExpressionRecord, SpotRecord};
use crate::domains;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::predict::{Predictions, gene_columns};

/// Predicted against measured expression at the spots: the report, the genes, the
/// predicted and measured values and the spot positions.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The metrics.
    pub report: EvalReport,
    /// Genes compared.
    pub genes: Vec<String>,
    /// Predicted, spots x genes.
    pub predicted: Vec<f32>,
    /// Measured, spots x genes.
    pub measured: Vec<f32>,
    /// Spot positions (z, y, x) in source voxels.
    pub positions: Vec<[f64; 3]>,
}

/// Compare `pred` with the measured expression of spot sample `spots`.
pub fn compare(
    store: &Store,
    pred: &Predictions,
    spots: &str,
    genes: &[String],
    markers: &[String],
    smoothed: bool,
) -> Result<Comparison> {
    let set = store.require_spot_set("spots", spots)?;
    let wanted: Vec<String> = if genes.is_empty() {
        pred.genes
            .iter()
            .filter(|g| set.panel.iter().any(|p| p.eq_ignore_ascii_case(g)))
            .filter(|g| {
                !set.predicted_missing
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(g))
            })
            .cloned()
            .collect()
    } else {
        // A gene the spots' file lacks is in their panel (its column filled at ingest)
        // but was never measured: scoring it would score zeros.
        let lacking: Vec<&String> = genes
            .iter()
            .filter(|g| {
                set.predicted_missing
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(g))
            })
            .collect();
        if !lacking.is_empty() {
            return Err(Error::arg(
                "genes",
                format!(
                    "{} not measured in the spots of '{spots}' (absent from the file they \
                     were ingested from); leave them out, or omit --genes to score every \
                     predicted gene the spots measure",
                    lacking
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        genes.to_vec()
    };
    let pcols = gene_columns(
        &pred.genes,
        &wanted,
        &format!("among the genes model '{}' predicts", pred.sample.model),
    )?;
    let mcols = gene_columns(
        &set.panel,
        &wanted,
        &format!(
            "in the panel of the spots of '{spots}' ({} genes)",
            set.panel.len()
        ),
    )?;
    if wanted.is_empty() {
        return Err(Error::arg(
            "genes",
            "no predicted gene is measured in these spots",
        ));
    }
    let rows = store.spots(spots)?;
    let kept: Vec<(&SpotRecord, &ExpressionRecord)> = rows
        .iter()
        .filter_map(|(s, e)| e.as_ref().map(|e| (s, e)))
        .collect();
    let spot_refs: Vec<&SpotRecord> = kept.iter().map(|x| x.0).collect();
    let at = pred.at_spots(&spot_refs);
    let g_all = pred.genes.len();
    let mut predicted = Vec::with_capacity(kept.len() * wanted.len());
    let mut measured = Vec::with_capacity(kept.len() * wanted.len());
    for (i, (_, e)) in kept.iter().enumerate() {
        let src = if smoothed { &e.smoothed } else { &e.normalized };
        for (&pc, &mc) in pcols.iter().zip(&mcols) {
            predicted.push(at[i * g_all + pc]);
            measured.push(src[mc]);
        }
    }
    let positions: Vec<[f64; 3]> = kept.iter().map(|x| x.0.position).collect();
    // Array (row, column) coordinates grid the spots exactly, whatever the registration.
    let grid: Option<Vec<[f64; 2]>> = kept
        .iter()
        .map(|x| x.0.array.map(|a| [a[1], a[0]]))
        .collect();
    let report = evaluate(&EvalInput {
        genes: &wanted,
        predicted: &predicted,
        measured: &measured,
        positions: &positions,
        grid: grid.as_deref(),
        markers,
    })?;
    Ok(Comparison {
        report,
        genes: wanted,
        predicted,
        measured,
        positions,
    })
}

/// What [`evaluate_sample`] compares.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Spot sample holding the measured expression (`None`: the sample's own id).
    pub spots: Option<String>,
    /// Genes to evaluate (empty: every predicted gene measured in the spots).
    pub genes: Vec<String>,
    /// Marker genes reported separately.
    pub markers: Vec<String>,
    /// Compare with the smoothed (k nearest spots) measured values.
    pub smoothed: bool,
    /// A segmentation (NPY of the source volume's shape) to score the stored domains
    /// against.
    pub segmentation: Option<PathBuf>,
    /// Score spots that are also the readout's reference (`--knn` / `--ridge` with the
    /// scored spot sample among `reference`): refused unless set, and then marked
    /// `in_sample` in the report. Such a figure is a fit, not a held-out prediction.
    pub allow_in_sample: bool,
}

/// The result of [`evaluate_sample`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Sample evaluated.
    pub sample: String,
    /// Spot sample compared with.
    pub spots: String,
    /// How the predictions were made.
    pub method: crate::predict::Method,
    /// How the ridge readout was fitted (ridge only).
    pub ridge: Option<crate::predict::RidgeFit>,
    /// Smoothed or raw normalised measured values.
    pub smoothed: bool,
    /// The comparison (report, values, positions).
    pub comparison: Comparison,
    /// ARI of the stored domains against the segmentation, and the patches scored.
    pub ari: Option<(f64, usize)>,
    /// The scored spots are also the readout's reference (allowed by
    /// [`EvalOptions::allow_in_sample`]): the figures are in-sample, not held out.
    pub in_sample: bool,
}

/// The JSON body of an evaluation (`eval.json`, `vortexdb --json eval`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary<'a> {
    /// Sample evaluated.
    pub sample: &'a str,
    /// Spot sample compared with.
    pub spots: &'a str,
    /// Prediction method.
    pub method: &'a crate::predict::Method,
    /// How the ridge readout was fitted: penalty, context, cross-validated PCC over
    /// the reference samples, spots and features (ridge only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ridge: Option<&'a crate::predict::RidgeFit>,
    /// `smoothed` or `normalized`.
    pub measured: &'static str,
    /// The scored spots were also the readout's reference: an in-sample figure.
    pub in_sample: bool,
    /// The metrics.
    pub report: &'a EvalReport,
    /// Domain ARI against the segmentation.
    pub ari: Option<f64>,
    /// Patches the ARI was computed over.
    pub ari_patches: Option<usize>,
}

impl Evaluation {
    /// The JSON body of the evaluation.
    pub fn summary(&self) -> EvalSummary<'_> {
        EvalSummary {
            sample: &self.sample,
            spots: &self.spots,
            method: &self.method,
            ridge: self.ridge.as_ref(),
            measured: if self.smoothed {
                "smoothed"
            } else {
                "normalized"
            },
            in_sample: self.in_sample,
            report: &self.comparison.report,
            ari: self.ari.map(|x| x.0),
            ari_patches: self.ari.map(|x| x.1),
        }
    }
}

impl std::fmt::Display for Evaluation {
    /// The headline metrics, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.comparison.report;
        let markers = r.pcc_markers.map_or("-".into(), |v| format!("{v:.3}"));
        write!(
            f,
            "'{}' predicted vs measured at {} spots of '{}', {} genes, {} sections\n  \
             PCC all {:.3}, top 50 {:.3}, markers {markers}\n  \
             SSIM {:.3}, Spearman of gene variances {:.3}\n  \
             Moran's I predicted {:.3} / measured {:.3}; Geary's C {:.3} / {:.3}",
            self.sample,
            r.spots,
            self.spots,
            r.genes,
            r.sections,
            r.pcc_all,
            r.pcc_top50,
            r.ssim,
            r.variance_spearman,
            r.moran_predicted,
            r.moran_measured,
            r.geary_predicted,
            r.geary_measured
        )?;
        if let Some((v, n)) = self.ari {
            write!(
                f,
                "\n  domains ARI against the segmentation {v:.3} ({n} patches)"
            )?;
        }
        if let Some(fit) = &self.ridge {
            write!(f, "\n  {}", fit.describe())?;
        }
        if self.in_sample {
            write!(
                f,
                "\n  IN-SAMPLE: the scored spots of '{}' are also the readout's reference; \
                 these figures are a fit, not a held-out prediction",
                self.spots
            )?;
        }
        Ok(())
    }
}

/// Evaluate `pred` (of one sample) against measured spots, and the sample's stored
/// domains against a segmentation when one is given. Reads the store only.
pub fn evaluate_sample(
    store: &Store,
    pred: &Predictions,
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let sample = pred.sample.id.clone();
    let spots = opts.spots.clone().unwrap_or_else(|| sample.clone());
    let in_sample = pred.method.reference().contains(&spots);
    if in_sample && !opts.allow_in_sample {
        return Err(Error::arg(
            "reference",
            format!(
                "the scored spots '{spots}' are also the readout's reference: such a figure \
                 is a fit, not a held-out prediction; leave '{spots}' out of the reference \
                 (or allow an in-sample evaluation explicitly, marked as such)"
            ),
        ));
    }
    let comparison = compare(
        store,
        pred,
        &spots,
        &opts.genes,
        &opts.markers,
        opts.smoothed,
    )?;
    let ari = match &opts.segmentation {
        Some(p) => Some(stored_domains_ari(store, pred, p)?),
        None => None,
    };
    Ok(Evaluation {
        sample,
        spots,
        method: pred.method.clone(),
        ridge: pred.ridge.clone(),
        smoothed: opts.smoothed,
        comparison,
        ari,
        in_sample,
    })
}

fn stored_domains_ari(store: &Store, pred: &Predictions, seg: &Path) -> Result<(f64, usize)> {
    let (lab, shape) = domains::read_segmentation(seg)?;
    let rec = store
        .domains(&pred.sample.id)?
        .ok_or_else(|| Error::NothingSelected {
            stage: "domains",
            message: format!("sample '{}' has no domains yet", pred.sample.id),
        })?;
    if rec.ids != pred.patches.ids {
        return Err(Error::NothingSelected {
            stage: "domains",
            message: format!(
                "the stored domains of '{}' are of other patches",
                pred.sample.id
            ),
        });
    }
    domains::ari_against(pred, &rec.labels, &lab, shape, seg)
}
