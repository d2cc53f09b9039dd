//! The VORTEX queries over a store.
//!
//! * Molecular query ([`gene_profile`]): genes of interest -> genes correlated with them
//!   across the stored spots (PCC above a threshold) -> spots where at least half of
//!   those filter genes exceed their 75th percentile -> the mean of those spots'
//!   transcriptomic embeddings.
//! * Profile query ([`profile_embedding`]): a user expression profile or a marker list
//!   through the model's gene encoder.
//! * Either embedding is scored against every 3D patch of the chosen samples
//!   ([`rank_patches`]): cosine similarity, per-sample percentile ranks, a triage table
//!   ([`triage`]) and 3D heatmaps ([`heatmap`]).

pub mod heatmap;
mod molecular;
mod profile;
mod retrieval;

pub use molecular::{
    Profile, QueryResult, QuerySummary, ScoreOptions, query_embedding, query_genes, query_profile,
    read_profile,
};
pub use profile::{
    GeneProfile, GeneQuery, PoolSample, PoolSpot, SpotPool, gene_profile, gene_profile_of,
};
pub use retrieval::{PatchHit, PatchQuery, PatchResult, PatchSource, query_patch};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use serde::Serialize;

use crate::engine::{Filter, Store};
use crate::error::{Error, Result};
use crate::model::{Model, RunOptions};

/// Genes of `known` closest to `gene` (case-insensitive edit distance <= 2, or sharing
/// its first 3 letters), best first, at most 3.
pub fn close_matches(gene: &str, known: &[String]) -> Vec<String> {
    let g = gene.to_uppercase();
    let mut c: Vec<(usize, &String)> = known
        .iter()
        .filter_map(|k| {
            let u = k.to_uppercase();
            let d = edit_distance(&g, &u);
            let prefix: String = g.chars().take(3).collect();
            (d <= 2 || (g.chars().count() >= 3 && u.starts_with(&prefix))).then_some((d, k))
        })
        .collect();
    c.sort();
    c.into_iter().take(3).map(|(_, k)| k.clone()).collect()
}

/// `GENE (did you mean A, B?)` when `known` has close matches.
fn did_you_mean(gene: &str, known: &[String]) -> Option<String> {
    let m = close_matches(gene, known);
    (!m.is_empty()).then(|| format!("{gene} (did you mean {}?)", m.join(", ")))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + (a[i - 1] != b[j - 1]) as usize;
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// numpy's default percentile (linear interpolation) of `v` (sorted in place).
pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = (v.len() - 1) as f64 * p / 100.0;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Check an embedding given whole (argument `name`): the model's dimension and finite
/// values ([`query_embedding`], [`PatchSource::Vector`]).
pub(crate) fn check_embedding(model: &Model, v: &[f32], name: &str) -> Result<()> {
    let dim = model.manifest.embedding_dim;
    if v.len() != dim {
        return Err(Error::arg(
            name,
            format!(
                "{} values; model '{}' embeds in {dim} dimensions",
                v.len(),
                model.manifest.name
            ),
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::arg(name, format!("value {i} is {}", v[i])));
    }
    Ok(())
}

/// Embed an expression profile (gene -> value) with the model's gene encoder. Values
/// are raw counts (`counts = true`: normalised to the manifest's target + log1p) or
/// already log1p-normalised. Unknown genes are reported; a profile that shares no gene
/// with the encoder panel is refused.
pub fn profile_embedding(
    model: &Model,
    profile: &[(String, f64)],
    counts: bool,
    run: &RunOptions,
) -> Result<(Vec<f32>, Vec<String>)> {
    let m = &model.manifest;
    let enc = m.encoder_genes.as_ref().ok_or_else(|| {
        Error::arg(
            "model",
            format!("model '{}' has no gene encoder panel", m.name),
        )
    })?;
    let total: f64 = profile.iter().map(|p| p.1).sum();
    if profile.iter().any(|p| !p.1.is_finite() || p.1 < 0.0) {
        return Err(Error::arg(
            "profile",
            "values must be finite and non-negative",
        ));
    }
    let by: HashMap<String, f64> = profile
        .iter()
        .map(|(g, v)| {
            let v = if counts && total > 0.0 {
                (v / total * m.expression.normalize_total).ln_1p()
            } else {
                *v
            };
            (g.to_uppercase(), v)
        })
        .collect();
    let panel: HashSet<String> = enc.names.iter().map(|g| g.to_uppercase()).collect();
    let unused: Vec<String> = profile
        .iter()
        .filter(|(g, _)| !panel.contains(&g.to_uppercase()))
        .map(|(g, _)| g.clone())
        .collect();
    if unused.len() == profile.len() {
        let known: Vec<String> = enc.names.clone();
        let hints: Vec<String> = profile
            .iter()
            .take(5)
            .map(|(g, _)| did_you_mean(g, &known).unwrap_or_else(|| g.clone()))
            .collect();
        return Err(Error::arg(
            "profile",
            format!(
                "none of the profile's genes is in model '{}''s encoder panel of {} genes: {}",
                m.name,
                enc.names.len(),
                hints.join("; ")
            ),
        ));
    }
    let x: Vec<f32> = enc
        .names
        .iter()
        .map(|g| by.get(&g.to_uppercase()).copied().unwrap_or(0.0) as f32)
        .collect();
    let mut net = model.network("genes", run)?;
    let a = ndarray::Array2::from_shape_vec((1, x.len()), x)
        .map_err(|e| Error::Inference(e.to_string()))?;
    let e = net.embed(a.view().into_dyn())?;
    Ok((e.row(0).to_vec(), unused))
}

/// A scored patch with its per-sample percentile rank.
#[derive(Debug, Clone, Serialize)]
pub struct RankedPatch {
    /// Sample id (shared between the patches of a sample).
    pub sample: Arc<str>,
    /// Vector id in the 3D collection.
    pub id: u64,
    /// Patch origin (z, y, x) in model voxels.
    pub origin: [i64; 3],
    /// Cosine similarity to the query.
    pub score: f32,
    /// Percentile rank of the score among the sample's patches (0-100).
    pub percentile: f32,
}

/// Score every patch of `samples` (all samples when `None`) in `collection` against
/// `embedding`; returns patches sorted by decreasing score with per-sample percentile
/// ranks.
pub fn rank_patches(
    store: &Store,
    collection: &str,
    embedding: &[f32],
    samples: Option<Vec<String>>,
    exclude: Vec<String>,
) -> Result<Vec<RankedPatch>> {
    if let Some(want) = &samples {
        let known: HashSet<String> = store.samples()?.into_iter().map(|s| s.id).collect();
        for w in want {
            if !known.contains(w) {
                let mut k: Vec<String> = known.iter().cloned().collect();
                k.sort();
                return Err(Error::unknown_sample("samples", w, k));
            }
        }
    }
    let scored = store.similarities(
        collection,
        embedding,
        &Filter {
            samples,
            exclude_samples: exclude,
            region: None,
        },
    )?;
    // One sort by (score, id) descending gives the output order and, walked per
    // sample, the percentile ranks.
    let mut items = scored.items;
    items.par_sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    let mut count: HashMap<u32, usize> = HashMap::new();
    for s in &items {
        *count.entry(s.sample).or_default() += 1;
    }
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let names: Vec<Arc<str>> = scored
        .samples
        .iter()
        .map(|s| Arc::from(s.as_str()))
        .collect();
    let empty: Arc<str> = Arc::from("");
    Ok(items
        .iter()
        .map(|s| {
            let n = count[&s.sample];
            let above = seen.entry(s.sample).or_default();
            // Rank from the bottom: the sample's patches not yet seen, minus this one.
            let r = n - 1 - *above;
            *above += 1;
            RankedPatch {
                sample: names
                    .get(s.sample as usize)
                    .cloned()
                    .unwrap_or_else(|| empty.clone()),
                id: s.id,
                origin: s.origin,
                score: s.score,
                percentile: if n > 1 {
                    100.0 * r as f32 / (n - 1) as f32
                } else {
                    100.0
                },
            }
        })
        .collect())
}

/// One row of the triage table: how much of a sample resembles the query.
#[derive(Debug, Clone, Serialize)]
pub struct TriageRow {
    /// Sample id.
    pub sample: String,
    /// Patches scored.
    pub patches: usize,
    /// Mean similarity.
    pub mean_score: f32,
    /// Highest similarity.
    pub max_score: f32,
    /// Fraction of the sample's patches above the threshold.
    pub fraction_above: f32,
    /// Origin (z, y, x) of the best patch.
    pub best_origin: [i64; 3],
}

/// Rank samples by the fraction of their patches scoring above `threshold` (ties by
/// maximum score): the triage table.
pub fn triage(ranked: &[RankedPatch], threshold: f32) -> Vec<TriageRow> {
    let mut rows: HashMap<&str, TriageRow> = HashMap::new();
    for p in ranked {
        let r = rows.entry(&p.sample).or_insert_with(|| TriageRow {
            sample: p.sample.to_string(),
            patches: 0,
            mean_score: 0.0,
            max_score: f32::MIN,
            fraction_above: 0.0,
            best_origin: p.origin,
        });
        r.patches += 1;
        r.mean_score += p.score;
        r.fraction_above += (p.score > threshold) as u8 as f32;
        if p.score > r.max_score {
            r.max_score = p.score;
            r.best_origin = p.origin;
        }
    }
    let mut out: Vec<TriageRow> = rows
        .into_values()
        .map(|mut r| {
            r.mean_score /= r.patches as f32;
            r.fraction_above /= r.patches as f32;
            r
        })
        .collect();
    out.sort_by(|a, b| {
        b.fraction_above
            .total_cmp(&a.fraction_above)
            .then(b.max_score.total_cmp(&a.max_score))
            .then(a.sample.cmp(&b.sample))
    });
    out
}

/// The `p`th percentile (numpy linear) of the scores.
pub fn score_percentile(ranked: &[RankedPatch], p: f64) -> f32 {
    if ranked.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = ranked.iter().map(|r| r.score as f64).collect();
    percentile(&mut v, p) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_matches_finds_typos_and_prefixes() {
        let known: Vec<String> = ["ERBB2", "ERBB3", "GRB7", "ESR1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            close_matches("erbb", &known),
            vec!["ERBB2", "ERBB3", "GRB7"]
        );
        assert_eq!(close_matches("GRB8", &known), vec!["GRB7"]);
        assert!(close_matches("XYZ", &known).is_empty());
        // Multi-byte characters are compared as characters, never sliced.
        assert!(close_matches("💥", &known).is_empty());
        assert_eq!(close_matches("ÉRBB💥", &known)[0], "ERBB2");
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], 75) == 3.25
        assert!((percentile(&mut [4.0, 1.0, 3.0, 2.0], 75.0) - 3.25).abs() < 1e-12);
        assert_eq!(percentile(&mut [0.0, 0.0, 0.0, 5.0], 75.0), 1.25);
    }
}
