//! The transcriptomic side of the molecular query: the pool of stored spots (one
//! store's, or merged from the shards of an archive), the genes correlated with the
//! genes of interest, the spots high in them and their mean embedding.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{close_matches, percentile};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::expression::GeneIndex;

/// Settings of a molecular (genes -> morphology) query.
#[derive(Debug, Clone)]
pub struct GeneQuery {
    /// Genes of interest (matched case-insensitively).
    pub genes: Vec<String>,
    /// Samples whose spots define the profile (default: every sample with spots of the
    /// model).
    pub spot_samples: Option<Vec<String>>,
    /// Genes whose Pearson correlation with any gene of interest exceeds this join the
    /// filter (method: 0.5).
    pub min_pcc: f64,
    /// Percentile a filter gene must exceed in a spot (method: 75).
    pub percentile: f64,
    /// Fraction of filter genes a spot must have above their percentile (method: 0.5).
    pub min_fraction: f64,
}

impl GeneQuery {
    /// The method's settings for `genes`.
    pub fn new(genes: Vec<String>) -> Self {
        GeneQuery {
            genes,
            spot_samples: None,
            min_pcc: 0.5,
            percentile: 75.0,
            min_fraction: 0.5,
        }
    }
}

/// The transcriptomic side of a molecular query.
#[derive(Debug, Clone, Serialize)]
pub struct GeneProfile {
    /// Genes of interest as found in the data.
    pub genes: Vec<String>,
    /// Genes added by correlation, with their best PCC to a gene of interest.
    pub correlated: Vec<(String, f64)>,
    /// Percentile threshold of every filter gene (genes of interest first).
    pub thresholds: Vec<(String, f64)>,
    /// Spots considered.
    pub spots_total: usize,
    /// Spots passing the filter, as (sample, spot id).
    pub spots: Vec<(String, String)>,
    /// Mean transcriptomic embedding of those spots (unit length).
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// One kept spot of a [`PoolSample`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSpot {
    /// Its spot id.
    pub id: String,
    /// (index into the sample's `genes`, log1p-normalised value), zeros omitted.
    pub values: Vec<(u32, f32)>,
    /// Its transcriptomic embedding (as stored).
    pub embedding: Vec<f32>,
}

/// The kept spots of one spot sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolSample {
    /// Sample id.
    pub sample: String,
    /// Its gene panel.
    pub genes: Vec<String>,
    /// Its kept spots, in spot order.
    pub spots: Vec<PoolSpot>,
}

/// Every kept spot of a set of spot samples of one model: what the molecular query's
/// transcriptomic side reads. Pools of stores that hold disjoint samples
/// [`merge`](SpotPool::merge) into the pool one store holding them all reads, so an
/// archive of shards builds the same query embedding as one store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpotPool {
    /// The samples, by id.
    pub samples: Vec<PoolSample>,
}

impl SpotPool {
    /// The pool of `store`'s spot samples of `model` (`samples`: only these; each must
    /// have spots of the model).
    pub fn read(store: &Store, model: &str, samples: Option<&[String]>) -> Result<SpotPool> {
        let sets: Vec<_> = store
            .spot_sets()?
            .into_iter()
            .filter(|s| s.model == model)
            .collect();
        if let Some(want) = samples {
            for w in want {
                if !sets.iter().any(|s| &s.sample == w) {
                    return Err(Error::UnknownSample {
                        name: "spot_samples".into(),
                        sample: w.clone(),
                        purpose: format!("has no spots of model '{model}' in this store"),
                        known: sets.iter().map(|s| s.sample.clone()).collect(),
                    });
                }
            }
        }
        let mut out = Vec::new();
        for set in sets
            .iter()
            .filter(|s| samples.is_none_or(|w| w.contains(&s.sample)))
        {
            let mut spots = Vec::new();
            for (spot, _) in store.spots(&set.sample)? {
                let Some(vector) = spot.vector_id else {
                    continue;
                };
                let total: f64 = spot.counts.iter().map(|c| c.1 as f64).sum();
                let scale = if total > 0.0 {
                    set.normalize_total / total
                } else {
                    0.0
                };
                let values = spot
                    .counts
                    .iter()
                    .map(|&(g, c)| (g, (c as f64 * scale).ln_1p() as f32))
                    .collect();
                let (embedding, _) =
                    store
                        .get(&set.collection, vector)?
                        .ok_or_else(|| Error::Corrupted {
                            path: store.path().to_path_buf(),
                            message: format!(
                                "spot {} of {} has no embedding {vector}",
                                spot.id, set.sample
                            ),
                        })?;
                spots.push(PoolSpot {
                    id: spot.id,
                    values,
                    embedding,
                });
            }
            out.push(PoolSample {
                sample: set.sample.clone(),
                genes: set.genes.clone(),
                spots,
            });
        }
        SpotPool::merge(vec![SpotPool { samples: out }])
    }

    /// One pool of `pools`, samples in id order as one store reads them; a sample in
    /// two pools is refused.
    pub fn merge(pools: Vec<SpotPool>) -> Result<SpotPool> {
        let mut samples: Vec<PoolSample> = pools.into_iter().flat_map(|p| p.samples).collect();
        samples.sort_by(|a, b| a.sample.cmp(&b.sample));
        if let Some(w) = samples.windows(2).find(|w| w[0].sample == w[1].sample) {
            return Err(Error::arg(
                "pools",
                format!("sample '{}' is in two spot pools", w[0].sample),
            ));
        }
        Ok(SpotPool { samples })
    }

    /// Spots over all samples.
    pub fn len(&self) -> usize {
        self.samples.iter().map(|s| s.spots.len()).sum()
    }

    /// No spot at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A spot of the pool with its values re-indexed into the union of the panels.
type FlatSpot<'a> = (&'a PoolSample, &'a PoolSpot, Vec<(u32, f32)>);

/// Run the transcriptomic side of the molecular query over the stored spots of
/// `model` and return the mean embedding of the spots it selects.
pub fn gene_profile(store: &Store, model: &str, q: &GeneQuery) -> Result<GeneProfile> {
    check_query(q)?;
    let pool = SpotPool::read(store, model, q.spot_samples.as_deref())?;
    gene_profile_of(&pool, model, q)
}

fn check_query(q: &GeneQuery) -> Result<()> {
    if q.genes.is_empty() {
        return Err(Error::arg("genes", "no gene given"));
    }
    crate::limits::number("min_pcc", "min_pcc", q.min_pcc)?;
    crate::limits::number("percentile", "percentile", q.percentile)?;
    crate::limits::number("min_fraction", "min_fraction", q.min_fraction)?;
    Ok(())
}

/// [`gene_profile`] over a pool already read (or merged from several stores'); the
/// query's `spot_samples` was applied when the pool was read. `model` names the
/// model in messages.
pub fn gene_profile_of(pool: &SpotPool, model: &str, q: &GeneQuery) -> Result<GeneProfile> {
    check_query(q)?;
    if pool.samples.is_empty() {
        return Err(Error::NothingSelected {
            stage: "spots",
            message: format!("no spots of model '{model}' in this store"),
        });
    }
    // The union of the panels, in first-seen order (case-insensitive), and every
    // spot's values re-indexed into it.
    let mut genes: Vec<String> = Vec::new();
    let mut by_upper: HashMap<String, u32> = HashMap::new();
    let mut flat: Vec<FlatSpot> = Vec::new();
    for s in &pool.samples {
        let map: Vec<u32> = s
            .genes
            .iter()
            .map(|g| {
                *by_upper.entry(g.to_uppercase()).or_insert_with(|| {
                    genes.push(g.clone());
                    (genes.len() - 1) as u32
                })
            })
            .collect();
        for sp in &s.spots {
            let mut values = Vec::with_capacity(sp.values.len());
            for &(g, v) in &sp.values {
                let g = *map.get(g as usize).ok_or_else(|| {
                    Error::arg(
                        "pools",
                        format!(
                            "spot {} of {} names gene {g} of {}",
                            sp.id,
                            s.sample,
                            map.len()
                        ),
                    )
                })?;
                values.push((g, v));
            }
            flat.push((s, sp, values));
        }
    }
    let index = GeneIndex::new(&genes);
    let mut cols = Vec::new();
    let mut unknown = Vec::new();
    for g in &q.genes {
        match index.get(g) {
            Some(c) => cols.push(c),
            None => unknown.push(g.clone()),
        }
    }
    if !unknown.is_empty() {
        let detail: Vec<crate::error::UnknownGene> = unknown
            .iter()
            .map(|g| crate::error::UnknownGene {
                gene: g.clone(),
                suggestions: close_matches(g, &genes),
            })
            .collect();
        return Err(Error::UnknownGenes {
            name: "genes".into(),
            genes: detail,
            within: format!("in the stored spots of model '{model}'"),
        });
    }
    let n = flat.len();
    let ng = genes.len();
    // Dense columns of the genes of interest; per-gene sums for every gene.
    let mut xq: Vec<Vec<f64>> = vec![vec![0.0; n]; cols.len()];
    let pos_q: HashMap<usize, Vec<usize>> =
        cols.iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (k, &c)| {
                m.entry(c).or_default().push(k);
                m
            });
    let (mut s1, mut s2) = (vec![0.0f64; ng], vec![0.0f64; ng]);
    for (i, (_, _, values)) in flat.iter().enumerate() {
        for &(g, v) in values {
            let v = v as f64;
            s1[g as usize] += v;
            s2[g as usize] += v * v;
            if let Some(ks) = pos_q.get(&(g as usize)) {
                for &k in ks {
                    xq[k][i] = v;
                }
            }
        }
    }
    // Cross products of every gene with each gene of interest.
    let mut cross = vec![vec![0.0f64; ng]; cols.len()];
    for (i, (_, _, values)) in flat.iter().enumerate() {
        for &(g, v) in values {
            for k in 0..cols.len() {
                cross[k][g as usize] += v as f64 * xq[k][i];
            }
        }
    }
    let nf = n as f64;
    let pcc = |k: usize, g: usize| -> f64 {
        let (a, b) = (cols[k], g);
        let cov = cross[k][b] - s1[a] * s1[b] / nf;
        let va = s2[a] - s1[a] * s1[a] / nf;
        let vb = s2[b] - s1[b] * s1[b] / nf;
        if va <= 0.0 || vb <= 0.0 {
            0.0
        } else {
            cov / (va * vb).sqrt()
        }
    };
    let in_query: HashSet<usize> = cols.iter().copied().collect();
    let mut correlated: Vec<(usize, f64)> = (0..ng)
        .filter(|g| !in_query.contains(g))
        .filter_map(|g| {
            let best = (0..cols.len()).map(|k| pcc(k, g)).fold(f64::MIN, f64::max);
            (best > q.min_pcc).then_some((g, best))
        })
        .collect();
    correlated.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut filter: Vec<usize> = Vec::new();
    for &c in cols.iter().chain(correlated.iter().map(|(g, _)| g)) {
        if !filter.contains(&c) {
            filter.push(c);
        }
    }
    // Dense filter-gene columns, their percentiles, and the spots above them.
    let fpos: HashMap<usize, usize> = filter.iter().enumerate().map(|(k, &g)| (g, k)).collect();
    let mut fx = vec![vec![0.0f64; n]; filter.len()];
    for (i, (_, _, values)) in flat.iter().enumerate() {
        for &(g, v) in values {
            if let Some(&k) = fpos.get(&(g as usize)) {
                fx[k][i] = v as f64;
            }
        }
    }
    let thresholds: Vec<f64> = fx
        .iter()
        .map(|col| percentile(&mut col.clone(), q.percentile))
        .collect();
    let need = (q.min_fraction * filter.len() as f64).ceil().max(1.0) as usize;
    let chosen: Vec<usize> = (0..n)
        .filter(|&i| {
            (0..filter.len())
                .filter(|&k| fx[k][i] > thresholds[k])
                .count()
                >= need
        })
        .collect();
    if chosen.is_empty() {
        return Err(Error::NothingSelected {
            stage: "gene_filter",
            message: format!(
                "no spot has at least {need} of the {} filter genes ({}) above their {}th percentile",
                filter.len(),
                filter
                    .iter()
                    .map(|&g| genes[g].as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                q.percentile
            ),
        });
    }
    // Mean of the chosen spots' embeddings, normalised.
    let mut mean: Vec<f64> = Vec::new();
    for &i in &chosen {
        let v = &flat[i].1.embedding;
        if mean.is_empty() {
            mean = vec![0.0; v.len()];
        }
        if v.len() != mean.len() {
            return Err(Error::arg(
                "pools",
                format!(
                    "spot {} of {} has a {}-d embedding, others {}-d",
                    flat[i].1.id,
                    flat[i].0.sample,
                    v.len(),
                    mean.len()
                ),
            ));
        }
        for (m, x) in mean.iter_mut().zip(v) {
            *m += *x as f64;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    Ok(GeneProfile {
        genes: cols.iter().map(|&c| genes[c].clone()).collect(),
        correlated: correlated
            .iter()
            .map(|&(g, r)| (genes[g].clone(), r))
            .collect(),
        thresholds: filter
            .iter()
            .zip(&thresholds)
            .map(|(&g, &t)| (genes[g].clone(), t))
            .collect(),
        spots_total: n,
        spots: chosen
            .iter()
            .map(|&i| (flat[i].0.sample.clone(), flat[i].1.id.clone()))
            .collect(),
        embedding: mean.iter().map(|x| (x / norm) as f32).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample of `n` spots over `genes`, gene `g` of spot `i` worth `(i * 7 + g * 3) % 5`.
    fn sample(name: &str, genes: &[&str], n: usize, dim: usize) -> PoolSample {
        PoolSample {
            sample: name.into(),
            genes: genes.iter().map(|g| g.to_string()).collect(),
            spots: (0..n)
                .map(|i| PoolSpot {
                    id: format!("{name}-{i}"),
                    values: (0..genes.len() as u32)
                        .map(|g| (g, ((i as u32 * 7 + g * 3) % 5) as f32))
                        .filter(|v| v.1 > 0.0)
                        .collect(),
                    embedding: (0..dim).map(|k| ((i + k) % 4) as f32 - 1.5).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn merged_pools_give_the_profile_of_one_pool_whatever_their_order() {
        let a = sample("a", &["G1", "G2", "G3"], 20, 4);
        let b = sample("b", &["g2", "G4", "G1"], 15, 4);
        let c = sample("c", &["G3", "G5"], 10, 4);
        let q = GeneQuery::new(vec!["G1".into()]);
        let one = SpotPool {
            samples: vec![a.clone(), b.clone(), c.clone()],
        };
        let want = gene_profile_of(&one, "m", &q).unwrap();
        let split = SpotPool::merge(vec![
            SpotPool { samples: vec![c] },
            SpotPool {
                samples: vec![b, a],
            },
        ])
        .unwrap();
        let got = gene_profile_of(&split, "m", &q).unwrap();
        assert_eq!(got.spots, want.spots);
        assert_eq!(got.embedding, want.embedding);
        assert_eq!(got.correlated, want.correlated);
        assert_eq!(got.thresholds, want.thresholds);
        // Case-insensitive union: "g2" of b is G2 of a.
        assert_eq!(want.spots_total, 45);
    }

    #[test]
    fn a_sample_in_two_pools_and_a_bad_gene_index_are_refused() {
        let a = sample("a", &["G1", "G2"], 5, 3);
        let e = SpotPool::merge(vec![
            SpotPool {
                samples: vec![a.clone()],
            },
            SpotPool {
                samples: vec![a.clone()],
            },
        ])
        .unwrap_err();
        assert!(e.to_string().contains("'a' is in two spot pools"), "{e}");
        let mut bad = a;
        bad.spots[0].values.push((9, 1.0));
        let e = gene_profile_of(
            &SpotPool { samples: vec![bad] },
            "m",
            &GeneQuery::new(vec!["G1".into()]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("names gene 9"), "{e}");
    }
}
