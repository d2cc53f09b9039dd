//! The molecular and profile queries as one call each: a gene list or an expression
//! profile becomes an embedding, scored against every 3D patch of the chosen samples;
//! the result holds the ranked patches, the triage table, the spots used and, on
//! request, each sample's 3D heatmap.

use std::path::Path;

use serde::Serialize;

use super::heatmap::{Heatmap, auto_downsample, heatmap};
use super::{
    GeneProfile, GeneQuery, RankedPatch, TriageRow, gene_profile, profile_embedding, rank_patches,
    score_percentile, triage,
};
use crate::catalog::SampleRecord;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::limits;
use crate::model::{Model, RunOptions};

/// Where a molecular or profile query scores, shared by [`query_genes`] and
/// [`query_profile`].
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Samples whose 3D patches are scored (empty: all).
    pub samples: Vec<String>,
    /// Samples never scored.
    pub exclude: Vec<String>,
    /// Registered model (`None`: the store's only model).
    pub model: Option<String>,
    /// Triage: a patch counts as similar above this percentile of all scores.
    pub threshold_percentile: f64,
    /// Which patches are scored: 3D (volumes, section stacks; the default) or 2D
    /// (images and whole slides from `ingest image`, in the same embedding space).
    pub target: crate::catalog::Modality,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            samples: Vec::new(),
            exclude: Vec::new(),
            model: None,
            threshold_percentile: 90.0,
            target: crate::catalog::Modality::Image3d,
        }
    }
}

/// An expression profile for [`query_profile`].
#[derive(Debug, Clone)]
pub enum Profile {
    /// `(gene, value)` pairs: log1p-normalised values, or raw counts when `counts`.
    Values {
        /// The profile.
        genes: Vec<(String, f64)>,
        /// The values are raw counts (normalised and log1p-transformed here).
        counts: bool,
    },
    /// A marker list: each gene set to a high expression value.
    Markers(Vec<String>),
}

/// What a query started from, for reports.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum QuerySummary {
    /// A molecular query.
    Genes {
        /// Genes of interest.
        genes: Vec<String>,
        /// Genes correlated with them (PCC above the threshold).
        correlated: Vec<(String, f64)>,
        /// Per filter gene, its percentile threshold.
        thresholds: Vec<(String, f64)>,
        /// Spots considered.
        spots_total: usize,
        /// Spots selected.
        spots_selected: usize,
    },
    /// A query embedding given whole ([`query_embedding`]: an archive's molecular
    /// query over its shards, or one made elsewhere).
    Embedding {
        /// Its dimension.
        dim: usize,
    },
    /// A profile query.
    Profile {
        /// Genes in the profile.
        profile_genes: usize,
        /// Profile genes not in the encoder panel (ignored).
        unused_genes: Vec<String>,
    },
}

/// The result of a molecular or profile query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The 3D collection scored.
    pub collection: String,
    /// The query embedding.
    pub embedding: Vec<f32>,
    /// The spot side of a molecular query (spots used, correlated genes); `None` for a
    /// profile query.
    pub profile: Option<GeneProfile>,
    /// What the query started from.
    pub summary: QuerySummary,
    /// The molecular query's settings (`None` for a profile query).
    pub gene_query: Option<GeneQuery>,
    /// Every scored patch, best first.
    pub ranked: Vec<RankedPatch>,
    /// Triage threshold: this percentile of all scores ...
    pub threshold_percentile: f64,
    /// ... which is this score.
    pub threshold: f32,
    /// Per-sample triage rows.
    pub triage: Vec<TriageRow>,
}

impl QueryResult {
    /// One line for people on the query side: the genes, correlated genes and spots
    /// selected of a molecular query, or the profile genes outside the encoder panel.
    pub fn headline(&self) -> Option<String> {
        match (&self.summary, &self.gene_query) {
            (
                QuerySummary::Genes {
                    genes,
                    correlated,
                    thresholds,
                    spots_total,
                    spots_selected,
                },
                Some(q),
            ) => {
                let corr: Vec<String> = correlated
                    .iter()
                    .take(12)
                    .map(|(g, r)| format!("{g} {r:.2}"))
                    .collect();
                let corr = if corr.is_empty() {
                    "none".to_string()
                } else {
                    corr.join(", ")
                };
                Some(format!(
                    "genes {}; correlated (PCC > {}): {corr}; {spots_selected} of {spots_total} \
                     spots above the {}th percentile in at least {:.0}% of the {} filter genes",
                    genes.join(", "),
                    q.min_pcc,
                    q.percentile,
                    q.min_fraction * 100.0,
                    thresholds.len()
                ))
            }
            (
                QuerySummary::Profile {
                    unused_genes: u, ..
                },
                _,
            ) if !u.is_empty() => {
                let some: Vec<&str> = u.iter().take(10).map(|s| s.as_str()).collect();
                Some(format!(
                    "{} profile gene(s) not in the encoder panel, ignored: {}",
                    u.len(),
                    some.join(", ")
                ))
            }
            _ => None,
        }
    }

    /// The `top` best patches and the triage table, as text for people.
    pub fn table(&self, top: usize) -> String {
        let top = &self.ranked[..top.min(self.ranked.len())];
        let mut s = format!("top {} of {} patches:\n", top.len(), self.ranked.len());
        s.push_str("  rank  sample            z     y     x   similarity  percentile\n");
        for (i, p) in top.iter().enumerate() {
            let [z, y, x] = p.origin;
            s.push_str(&format!(
                "  {:>4}  {:<14} {z:>5} {y:>5} {x:>5}   {:>9.4}   {:>8.2}\n",
                i + 1,
                p.sample,
                p.score,
                p.percentile
            ));
        }
        s.push_str(&format!(
            "triage (share of patches above {:.4}, the {}th percentile):",
            self.threshold, self.threshold_percentile
        ));
        for t in &self.triage {
            s.push_str(&format!(
                "\n  {:<16} {:>7} patches  {:>5.1}% above  max {:.4}  mean {:.4}  best at {:?}",
                t.sample,
                t.patches,
                t.fraction_above * 100.0,
                t.max_score,
                t.mean_score,
                t.best_origin
            ));
        }
        s
    }

    /// The 3D heatmap of `sample` (overlap-averaged similarity on the sample's grid) at
    /// `downsample` model voxels per voxel (`None`: the smallest keeping it under 64M
    /// voxels).
    pub fn heatmap(
        &self,
        store: &Store,
        sample: &str,
        downsample: Option<usize>,
    ) -> Result<Heatmap> {
        self.heatmap_of(&store.require_sample(sample)?, downsample)
    }

    /// [`QueryResult::heatmap`] of the sample `rec` describes.
    pub fn heatmap_of(&self, rec: &SampleRecord, downsample: Option<usize>) -> Result<Heatmap> {
        let pts: Vec<([i64; 3], f32)> = self
            .ranked
            .iter()
            .filter(|p| *p.sample == *rec.id)
            .map(|p| (p.origin, p.score))
            .collect();
        let d = match downsample {
            Some(d) => limits::count("downsample", d)?,
            None => auto_downsample(rec.grid.shape, 64 << 20),
        };
        Ok(heatmap(&rec.grid, &pts, d))
    }
}

/// Molecular query: genes of interest -> correlated genes -> spots high in them ->
/// their mean transcriptomic embedding -> cosine similarity with every 3D patch.
pub fn query_genes(store: &Store, q: &GeneQuery, opts: &ScoreOptions) -> Result<QueryResult> {
    check(opts)?;
    let model = store.load_model(opts.model.as_deref())?;
    let p = gene_profile(store, &model.manifest.name, q)?;
    let summary = QuerySummary::Genes {
        genes: p.genes.clone(),
        correlated: p.correlated.clone(),
        thresholds: p.thresholds.clone(),
        spots_total: p.spots_total,
        spots_selected: p.spots.len(),
    };
    let emb = p.embedding.clone();
    let mut r = score(store, &model, emb, Some(p), summary, opts)?;
    r.gene_query = Some(q.clone());
    Ok(r)
}

/// Profile query: an expression profile or a marker list through the model's gene
/// encoder -> cosine similarity with every 3D patch.
pub fn query_profile(store: &Store, profile: &Profile, opts: &ScoreOptions) -> Result<QueryResult> {
    check(opts)?;
    let model = store.load_model(opts.model.as_deref())?;
    let (values, counts) = match profile {
        Profile::Values { genes, counts } => (genes.clone(), *counts),
        Profile::Markers(m) => {
            let high = marker_value(&model);
            let v: Vec<(String, f64)> = m
                .iter()
                .map(|g| (g.trim().to_string(), high))
                .filter(|g| !g.0.is_empty())
                .collect();
            (v, false)
        }
    };
    let (emb, unused) = profile_embedding(&model, &values, counts, &RunOptions::default())?;
    let summary = QuerySummary::Profile {
        profile_genes: values.len(),
        unused_genes: unused,
    };
    score(store, &model, emb, None, summary, opts)
}

/// Score a query embedding made elsewhere against every patch, as [`query_genes`]
/// scores the mean embedding of its spots: an archive builds the molecular query's
/// embedding once from the spots of all its shards ([`crate::gene_profile_of`] over
/// merged [`crate::SpotPool`]s) and scores it in each shard with this call. The
/// embedding must have the model's dimension and finite values.
pub fn query_embedding(
    store: &Store,
    embedding: Vec<f32>,
    opts: &ScoreOptions,
) -> Result<QueryResult> {
    check(opts)?;
    let model = store.load_model(opts.model.as_deref())?;
    super::check_embedding(&model, &embedding, "embedding")?;
    let dim = embedding.len();
    let summary = QuerySummary::Embedding { dim };
    score(store, &model, embedding, None, summary, opts)
}

fn check(opts: &ScoreOptions) -> Result<()> {
    limits::float_arg(
        "threshold_percentile",
        opts.threshold_percentile,
        0.0,
        100.0,
    )?;
    Ok(())
}

fn score(
    store: &Store,
    model: &Model,
    embedding: Vec<f32>,
    profile: Option<GeneProfile>,
    summary: QuerySummary,
    opts: &ScoreOptions,
) -> Result<QueryResult> {
    let collection = crate::catalog::collection_name(&model.manifest.name, opts.target);
    let ranked = rank_patches(
        store,
        &collection,
        &embedding,
        (!opts.samples.is_empty()).then(|| opts.samples.clone()),
        opts.exclude.clone(),
    )?;
    if ranked.is_empty() {
        return Err(Error::NothingSelected {
            stage: "patches",
            message: format!(
                "no {} patches of model '{}' to score",
                opts.target.name(),
                model.manifest.name
            ),
        });
    }
    let threshold = score_percentile(&ranked, opts.threshold_percentile);
    let triage = triage(&ranked, threshold);
    Ok(QueryResult {
        collection,
        embedding,
        profile,
        summary,
        gene_query: None,
        ranked,
        threshold_percentile: opts.threshold_percentile,
        threshold,
        triage,
    })
}

/// A "high" log1p value for marker genes: the model's top value-bin edge, else
/// log1p(100) (1% of a spot's counts).
fn marker_value(model: &Model) -> f64 {
    let m: serde_json::Value = serde_json::from_str(&model.manifest_json).unwrap_or_default();
    m["encoder_genes"]["bin_edges"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(|v| v.as_f64())
        .map(|v| v + 0.1)
        .unwrap_or(100f64.ln_1p())
}

/// Read a `gene,value` profile (CSV or TSV; `#` comments and a header line allowed).
pub fn read_profile(path: &Path) -> Result<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split([',', '\t']).map(|s| s.trim()).collect();
        if f.len() < 2 {
            return Err(Error::bad_file(
                path,
                format!("line {}: expected 'gene,value'", i + 1),
            ));
        }
        match f[1].parse::<f64>() {
            Ok(v) => out.push((f[0].to_string(), v)),
            Err(_) if i == 0 => continue, // header
            Err(_) => {
                return Err(Error::bad_file(
                    path,
                    format!("line {}: '{}' is not a number", i + 1, f[1]),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "no gene,value rows"));
    }
    Ok(out)
}
