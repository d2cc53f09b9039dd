//! Expression prediction for every patch of a sample: the model's predictor head (its
//! output is stored at ingest, beside each embedding), the ridge readout of the stored
//! features fitted on reference spots of the sample (`ridge`), or, as a baseline, the
//! BLEEP-style similarity-weighted average of the k most similar reference spots'
//! expression; per gene 3D volumes; and predictions read out at spot positions for
//! evaluation.

mod context;
mod features;
mod readout;
mod ridge;

use std::collections::HashMap;

use rayon::prelude::*;

use crate::catalog::{SamplePredictions, SampleRecord, SpotRecord};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::query::close_matches;
use crate::query::heatmap::{Heatmap, heatmap};

/// How a prediction was made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Method {
    /// The model's predictor head.
    Predictor,
    /// Similarity-weighted mean of the `k` most similar reference spots (cosine over
    /// embeddings), from the named spot samples.
    Knn {
        /// Neighbours averaged.
        k: usize,
        /// Spot samples used as the reference.
        reference: Vec<String>,
    },
    /// Ridge regression from the stored patch features (embedding + hidden
    /// representation) to expression, fitted on reference spots measured on the
    /// sample ([`Predictions::use_ridge`]).
    Ridge {
        /// Spot samples fitted on.
        reference: Vec<String>,
        /// The penalty (None: chosen by cross-validation over the references).
        alpha: Option<f64>,
        /// Spatial context scales, cell sides in micrometres (None: chosen by
        /// cross-validation among the prefixes of [`RIDGE_CONTEXT_UM`]; empty: none).
        context_um: Option<Vec<f64>>,
    },
    /// A readout stored in the catalog ([`fit_readout`]), fitted once on reference
    /// spots (of this sample or another) and applied to this sample's features.
    Readout {
        /// Its name.
        name: String,
        /// The spot samples it was fitted on (filled in from the record when applied).
        reference: Vec<String>,
    },
}

impl Method {
    /// The reference spot samples the readout was fitted on or looks up (none for the
    /// predictor head).
    pub fn reference(&self) -> &[String] {
        match self {
            Method::Predictor => &[],
            Method::Knn { reference, .. }
            | Method::Ridge { reference, .. }
            | Method::Readout { reference, .. } => reference,
        }
    }
}

pub use readout::{ReadoutOptions, fit_readout};
pub use ridge::{RIDGE_ALPHAS, RIDGE_CONTEXT_UM, RIDGE_DEFAULT_ALPHA, RidgeFit};

/// Predicted expression of every patch of a sample.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// The sample.
    pub sample: SampleRecord,
    /// Predicted genes (the model's `predicted_genes`), column order of `expression`.
    pub genes: Vec<String>,
    /// Patch ids, origins (model voxels) and the predictor's stored output.
    pub patches: SamplePredictions,
    /// `patches.ids.len() x genes.len()`, row-major.
    pub expression: Vec<f32>,
    /// How `expression` was made.
    pub method: Method,
    /// How the ridge readout was fitted ([`Method::Ridge`] only).
    pub ridge: Option<RidgeFit>,
}

impl std::fmt::Display for Predictions {
    /// What was predicted and how, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.method {
            Method::Knn { k, reference } => {
                format!("{k} nearest spots of {}", reference.join(", "))
            }
            Method::Ridge {
                reference,
                alpha,
                context_um,
            } => format!(
                "ridge readout{}{} fitted on {}",
                alpha.map(|a| format!(" (alpha {a})")).unwrap_or_default(),
                context_um
                    .as_ref()
                    .filter(|c| !c.is_empty())
                    .map(|c| format!(
                        " with context at {} um",
                        c.iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .unwrap_or_default(),
                reference.join(", ")
            ),
            Method::Predictor => "predictor head".to_string(),
            Method::Readout { name, reference } => {
                format!(
                    "stored readout '{name}', fitted on {}",
                    reference.join(", ")
                )
            }
        };
        write!(
            f,
            "predicted {} genes for {} patches of '{}' ({how})",
            self.genes.len(),
            self.len(),
            self.sample.id
        )
    }
}

/// Predicted expression of every patch of `sample` by `method`: the predictor head's
/// stored output ([`Method::Predictor`]), the ridge readout ([`Method::Ridge`]) or the
/// k-nearest-spots baseline ([`Method::Knn`]). Reads the store only.
pub fn predict(store: &Store, sample: &str, method: &Method) -> Result<Predictions> {
    let mut p = Predictions::load(store, sample)?;
    match method {
        Method::Predictor => {}
        Method::Knn { k, reference } => {
            if reference.is_empty() {
                return Err(Error::arg(
                    "reference",
                    "the k-nearest-spots method needs at least one reference spot sample",
                ));
            }
            p.use_knn(store, reference, *k)?;
        }
        Method::Ridge {
            reference,
            alpha,
            context_um,
        } => {
            p.use_ridge(store, reference, *alpha, context_um.as_deref())?;
        }
        Method::Readout { name, .. } => {
            let rec = store.require_readout(name)?;
            p.use_readout(store, &rec)?;
        }
    }
    Ok(p)
}

impl Predictions {
    /// The predictor head's output for every patch of `sample`.
    pub fn load(store: &Store, sample: &str) -> Result<Predictions> {
        let rec = store.require_sample(sample)?;
        if rec.sample_kind() == Some(crate::catalog::SampleKind::Image) {
            return Err(Error::arg(
                "sample",
                format!(
                    "sample '{sample}' is a 2D image (`ingest image`): prediction and domains \
                     need a 3D volume or a 2.5D section stack"
                ),
            ));
        }
        let model = store.load_model(Some(&rec.model))?;
        let genes = model.manifest.predicted_genes.clone();
        let patches = store.sample_predictions(&rec.collection, sample)?;
        if patches.ids.is_empty() {
            return Err(Error::arg(
                "sample",
                format!("sample '{sample}' has no patches"),
            ));
        }
        let g = genes.len();
        if patches.width <= g {
            return Err(Error::Corrupted {
                path: store.path().to_path_buf(),
                message: format!(
                    "predictions of '{sample}' hold {} values, fewer than the model's {g} genes",
                    patches.width
                ),
            });
        }
        let expression = (0..patches.ids.len())
            .flat_map(|i| patches.row(i)[..g].to_vec())
            .collect();
        Ok(Predictions {
            sample: rec,
            genes,
            patches,
            expression,
            method: Method::Predictor,
            ridge: None,
        })
    }

    /// Number of patches.
    pub fn len(&self) -> usize {
        self.patches.ids.len()
    }

    /// Whether there are no patches.
    pub fn is_empty(&self) -> bool {
        self.patches.ids.is_empty()
    }

    /// Width of the hidden representation.
    pub fn hidden_dim(&self) -> usize {
        self.patches.width - self.genes.len()
    }

    /// The hidden representation of every patch, row-major.
    pub fn hidden(&self) -> Vec<f32> {
        let g = self.genes.len();
        (0..self.len())
            .flat_map(|i| self.patches.row(i)[g..].to_vec())
            .collect()
    }

    /// Column of each requested gene (case-insensitive); genes the model does not
    /// predict are listed in the error with close matches.
    pub fn gene_columns(&self, genes: &[String]) -> Result<Vec<usize>> {
        gene_columns(
            &self.genes,
            genes,
            &format!("among the genes model '{}' predicts", self.sample.model),
        )
    }

    /// Predicted values of column `g` for every patch.
    pub fn column(&self, g: usize) -> Vec<f32> {
        let n = self.genes.len();
        (0..self.len())
            .map(|i| self.expression[i * n + g])
            .collect()
    }

    /// Column in `panel` (a reference spot sample's) of each predicted gene
    /// (case-insensitive); a missing gene is an error naming the sample.
    fn reference_columns(&self, panel: &[String], sample: &str) -> Result<Vec<usize>> {
        let cols: HashMap<String, usize> = panel
            .iter()
            .enumerate()
            .map(|(i, g)| (g.to_uppercase(), i))
            .collect();
        self.genes
            .iter()
            .map(|g| {
                cols.get(&g.to_uppercase()).copied().ok_or_else(|| {
                    Error::arg(
                        "reference",
                        format!("gene {g} is not in the panel of spot sample '{sample}'"),
                    )
                })
            })
            .collect()
    }

    /// Replace the predictor's values by the BLEEP-style baseline: for every patch, the
    /// mean expression of the `k` reference spots whose embeddings are most similar to
    /// the patch's (weights = cosine similarity, floored at 0), over the reference
    /// samples' kept spots. Genes missing from a reference panel are an error.
    pub fn use_knn(&mut self, store: &Store, reference: &[String], k: usize) -> Result<()> {
        crate::limits::count("knn", k)?;
        let mut ref_emb: Vec<Vec<f32>> = Vec::new();
        let mut ref_expr: Vec<Vec<f32>> = Vec::new();
        for s in reference {
            let set = store.require_spot_set("reference", s)?;
            let idx = self.reference_columns(&set.panel, s)?;
            for (spot, expr) in store.spots(s)? {
                let (Some(vid), Some(expr)) = (spot.vector_id, expr) else {
                    continue;
                };
                let Some((v, _)) = store.get(&set.collection, vid)? else {
                    continue;
                };
                ref_emb.push(v);
                ref_expr.push(idx.iter().map(|&i| expr.normalized[i]).collect());
            }
        }
        if ref_emb.len() < k {
            return Err(Error::arg(
                "knn",
                format!(
                    "k = {k} is larger than the {} reference spots",
                    ref_emb.len()
                ),
            ));
        }
        let norm = |v: &[f32]| -> Vec<f32> {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|x| x / n).collect()
        };
        let ref_emb: Vec<Vec<f32>> = ref_emb.iter().map(|v| norm(v)).collect();
        let (emb, dim) = self.embeddings(store)?;
        let patch_emb: Vec<Vec<f32>> = emb.chunks_exact(dim.max(1)).map(norm).collect();
        let g = self.genes.len();
        self.expression = patch_emb
            .par_iter()
            .flat_map_iter(|q| {
                let mut sims: Vec<(f32, usize)> = ref_emb
                    .iter()
                    .enumerate()
                    .map(|(j, r)| (q.iter().zip(r).map(|(a, b)| a * b).sum::<f32>(), j))
                    .collect();
                sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                let top = &sims[..k];
                let wsum: f32 = top.iter().map(|t| t.0.max(0.0)).sum();
                let mut out = vec![0f32; g];
                for &(s, j) in top {
                    let w = if wsum > 0.0 {
                        s.max(0.0) / wsum
                    } else {
                        1.0 / k as f32
                    };
                    for (o, e) in out.iter_mut().zip(&ref_expr[j]) {
                        *o += w * e;
                    }
                }
                out
            })
            .collect();
        self.ridge = None;
        self.method = Method::Knn {
            k,
            reference: reference.to_vec(),
        };
        Ok(())
    }

    /// The overlap-averaged 3D volume of predicted column `g` (model resolution divided
    /// by `downsample`; NaN where no patch covers).
    pub fn gene_volume(&self, g: usize, downsample: usize) -> Heatmap {
        let pts: Vec<([i64; 3], f32)> = self
            .patches
            .records
            .iter()
            .zip(self.column(g))
            .map(|(r, v)| (r.origin, v))
            .collect();
        heatmap(&self.sample.grid, &pts, downsample)
    }

    /// Predicted expression at each spot: the mean over the patches that contain the
    /// spot's centre (converted from source voxels to model voxels); a spot inside no
    /// patch takes the patch whose centre is nearest. Row-major `spots.len() x genes`.
    pub fn at_spots(&self, spots: &[&SpotRecord]) -> Vec<f32> {
        self.mean_at_spots(&self.expression, self.genes.len(), spots)
    }

    /// The stored embedding of every patch, row-major `len() x dim`, and `dim`.
    pub fn embeddings(&self, store: &Store) -> Result<(Vec<f32>, usize)> {
        let dim = store.collection(&self.sample.collection)?.dim;
        let mut out = Vec::with_capacity(self.len() * dim);
        for &id in &self.patches.ids {
            let (v, _) =
                store
                    .get(&self.sample.collection, id)?
                    .ok_or_else(|| Error::Corrupted {
                        path: store.path().to_path_buf(),
                        message: format!("patch {id} has a prediction but no embedding"),
                    })?;
            out.extend_from_slice(&v);
        }
        Ok((out, dim))
    }

    /// The image embedding at each spot, by the rule of [`Predictions::at_spots`]: the
    /// mean of the stored embeddings of the patches containing the spot's centre (the
    /// nearest patch when none does). Row-major `spots.len() x dim`, and `dim`. These
    /// are the frozen features a linear probe reads (`vortexdb spots export --image`).
    pub fn embeddings_at_spots(
        &self,
        store: &Store,
        spots: &[&SpotRecord],
    ) -> Result<(Vec<f32>, usize)> {
        let (emb, dim) = self.embeddings(store)?;
        Ok((self.mean_at_spots(&emb, dim, spots), dim))
    }

    /// Per spot, the mean of the `width`-wide rows of `values` (one per patch) over
    /// the patches containing the spot (the nearest patch when none does).
    fn mean_at_spots(&self, values: &[f32], g: usize, spots: &[&SpotRecord]) -> Vec<f32> {
        let centres: Vec<[f64; 3]> = self
            .patches
            .records
            .iter()
            .map(|p| std::array::from_fn(|a| p.origin[a] as f64 + p.size[a] as f64 / 2.0))
            .collect();
        let inside = self.containing(spots);
        spots
            .par_iter()
            .zip(inside.par_iter())
            .flat_map_iter(|(s, idx)| {
                let mut out = vec![0f32; g];
                if idx.is_empty() {
                    let pos = self.model_position(s);
                    let i = centres
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (i, (0..3).map(|a| (c[a] - pos[a]).powi(2)).sum::<f64>()))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|x| x.0)
                        .unwrap_or(0);
                    out.copy_from_slice(&values[i * g..(i + 1) * g]);
                } else {
                    for &i in idx {
                        for (o, v) in out.iter_mut().zip(&values[i * g..(i + 1) * g]) {
                            *o += v;
                        }
                    }
                    out.iter_mut().for_each(|o| *o /= idx.len() as f32);
                }
                out
            })
            .collect()
    }

    /// A spot's centre in model voxels of this sample.
    fn model_position(&self, s: &SpotRecord) -> [f64; 3] {
        let r = &self.sample;
        std::array::from_fn(|a| s.position[a] * r.voxel_um[a] / r.model_voxel_um[a])
    }

    /// Per spot, the patches (indices, ascending) that contain its centre.
    fn containing(&self, spots: &[&SpotRecord]) -> Vec<Vec<usize>> {
        // Patches bucketed by origin in cells of the largest patch size: the patches
        // containing a point have their origin in at most 2 x 2 x 2 cells around it, so
        // matching is O(spots x patches per cell), not O(spots x patches).
        let cell: [i64; 3] = std::array::from_fn(|a| {
            self.patches
                .records
                .iter()
                .map(|p| p.size[a] as i64)
                .max()
                .unwrap_or(1)
                .max(1)
        });
        let mut buckets: HashMap<[i64; 3], Vec<usize>> = HashMap::new();
        for (i, p) in self.patches.records.iter().enumerate() {
            let k: [i64; 3] = std::array::from_fn(|a| p.origin[a].div_euclid(cell[a]));
            buckets.entry(k).or_default().push(i);
        }
        spots
            .par_iter()
            .map(|s| {
                let pos = self.model_position(s);
                let lo: [i64; 3] = std::array::from_fn(|a| {
                    ((pos[a] - cell[a] as f64).floor() as i64).div_euclid(cell[a])
                });
                let hi: [i64; 3] =
                    std::array::from_fn(|a| (pos[a].floor() as i64).div_euclid(cell[a]));
                let near = (lo[0]..=hi[0]).flat_map(|z| {
                    (lo[1]..=hi[1]).flat_map(move |y| (lo[2]..=hi[2]).map(move |x| [z, y, x]))
                });
                let mut idx: Vec<usize> = near
                    .filter_map(|k| buckets.get(&k))
                    .flatten()
                    .copied()
                    .filter(|&i| {
                        let p = &self.patches.records[i];
                        (0..3).all(|a| {
                            pos[a] >= p.origin[a] as f64
                                && pos[a] < (p.origin[a] + p.size[a] as i64) as f64
                        })
                    })
                    .collect();
                idx.sort_unstable();
                idx
            })
            .collect()
    }
}

/// Columns of `wanted` in `genes` (case-insensitive); unknown genes are listed with
/// close matches in the error.
pub fn gene_columns(genes: &[String], wanted: &[String], within: &str) -> Result<Vec<usize>> {
    let by: HashMap<String, usize> = genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.to_uppercase(), i))
        .collect();
    let mut missing = Vec::new();
    let mut cols = Vec::new();
    for w in wanted {
        match by.get(&w.to_uppercase()) {
            Some(&i) => cols.push(i),
            None => missing.push(crate::error::UnknownGene {
                gene: w.clone(),
                suggestions: close_matches(w, genes),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(Error::UnknownGenes {
            name: "genes".into(),
            genes: missing,
            within: within.to_string(),
        });
    }
    Ok(cols)
}
