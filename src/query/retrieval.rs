//! Morphology retrieval as one call: the patches most similar to a stored patch (found
//! by a position inside it) or to an H&E image embedded by the 2D encoder.

use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{Filter, SearchOptions, Store};
use crate::error::{Error, Result};
use crate::limits;

/// What the query patch is.
#[derive(Debug, Clone)]
pub enum PatchSource {
    /// The stored patch of `sample` whose centre is nearest to `at` (z, y, x, model
    /// voxels).
    Stored {
        /// Sample of the query patch.
        sample: String,
        /// A position inside the query patch.
        at: [i64; 3],
    },
    /// An H&E image (PNG/JPEG/TIFF) through the model's 2D encoder.
    Image(PathBuf),
    /// An embedding of the model's dimension (an archive passes the query patch's
    /// embedding, read in its own shard, to the other shards).
    Vector(Vec<f32>),
}

/// A morphology retrieval.
#[derive(Debug, Clone)]
pub struct PatchQuery {
    /// The query patch.
    pub source: PatchSource,
    /// Results to return.
    pub top: usize,
    /// Only these samples (empty: all).
    pub within: Vec<String>,
    /// Leave out the query's own sample.
    pub exclude_self: bool,
    /// Registered model (`None`: the store's only model).
    pub model: Option<String>,
    /// Exact search instead of HNSW.
    pub exact: bool,
    /// What to search: [`crate::Modality::Image3d`] (volume and section-stack patches)
    /// or [`crate::Modality::Image2d`] (images).
    pub target: crate::catalog::Modality,
}

impl PatchQuery {
    /// The 10 patches most similar to `source` among the 3D patches, by HNSW.
    pub fn new(source: PatchSource) -> Self {
        PatchQuery {
            source,
            top: 10,
            within: Vec::new(),
            exclude_self: false,
            model: None,
            exact: false,
            target: crate::catalog::Modality::Image3d,
        }
    }
}

/// One retrieved patch.
#[derive(Debug, Clone, Serialize)]
pub struct PatchHit {
    /// Vector id.
    pub id: u64,
    /// Its sample.
    pub sample: String,
    /// Its origin (z, y, x, model voxels).
    pub origin: [i64; 3],
    /// Cosine similarity to the query.
    pub similarity: f64,
}

/// The result of [`query_patch`].
#[derive(Debug, Clone, Serialize)]
pub struct PatchResult {
    /// The query, for people (`sample patch ID at [z, y, x]` or the image path).
    pub query: String,
    /// The most similar patches, best first.
    pub hits: Vec<PatchHit>,
    /// The query patch's embedding.
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

impl std::fmt::Display for PatchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} patches most similar to {}:",
            self.hits.len(),
            self.query
        )?;
        for (i, h) in self.hits.iter().enumerate() {
            let [z, y, x] = h.origin;
            write!(
                f,
                "\n  {:>3}  {:<14} origin [{z},{y},{x}]  similarity {:.4}",
                i + 1,
                h.sample,
                h.similarity
            )?;
        }
        Ok(())
    }
}

/// The patches most similar to a stored patch or an image.
pub fn query_patch(store: &Store, q: &PatchQuery) -> Result<PatchResult> {
    limits::count("top", q.top)?;
    let model = store.load_model(q.model.as_deref())?;
    let target = crate::catalog::collection_name(&model.manifest.name, q.target);
    if store.collection(&target).is_err() {
        return Err(Error::arg(
            "target",
            format!(
                "no {} patches of model '{}' in this store",
                q.target.name(),
                model.manifest.name
            ),
        ));
    }
    let (query, own_sample, source): (Vec<f32>, Option<String>, String) = match &q.source {
        PatchSource::Stored { sample: s, at: v } => {
            let rec = store.require_sample(s)?;
            let patch = rec.grid.patch;
            // The query patch lives in its sample's own collection (3D or 2D).
            let collection = rec.collection.clone();
            let scored = store.similarities(
                &collection,
                &vec![1.0; model.manifest.embedding_dim],
                &Filter {
                    samples: Some(vec![s.clone()]),
                    ..Default::default()
                },
            )?;
            let best = scored
                .items
                .iter()
                .min_by_key(|p| {
                    (0..3)
                        .map(|k| {
                            let c = p.origin[k] * 2 + patch[k] as i64;
                            (c - 2 * v[k]).pow(2)
                        })
                        .sum::<i64>()
                })
                .ok_or_else(|| {
                    Error::arg("sample", format!("sample '{s}' has no stored patches"))
                })?;
            let (vec, _) = store
                .get(&collection, best.id)?
                .ok_or_else(|| Error::Corrupted {
                    path: store.path().to_path_buf(),
                    message: format!("patch {} is in the index but not in redb", best.id),
                })?;
            (
                vec,
                Some(s.clone()),
                format!("{s} patch {} at {:?}", best.id, best.origin),
            )
        }
        PatchSource::Image(img) => (model.embed_image(img)?, None, img.display().to_string()),
        PatchSource::Vector(v) => {
            super::check_embedding(&model, v, "vector")?;
            let dim = v.len();
            (v.clone(), None, format!("a {dim}-d embedding"))
        }
    };
    let mut exclude = Vec::new();
    if q.exclude_self
        && let Some(s) = &own_sample
    {
        exclude.push(s.clone());
    }
    let opts = SearchOptions {
        k: q.top,
        ef: (q.top * 4).max(64),
        exact: q.exact,
        filter: Filter {
            samples: (!q.within.is_empty()).then(|| q.within.clone()),
            exclude_samples: exclude,
            region: None,
        },
        rescore: 0,
    };
    let hits = store.search(&target, std::slice::from_ref(&query), &opts)?;
    let mut rows = Vec::new();
    for h in &hits[0] {
        let (_, rec) = store.get(&target, h.id)?.unwrap_or_default();
        let (sample, origin) = rec.map(|r| (r.sample, r.origin)).unwrap_or_default();
        rows.push(PatchHit {
            id: h.id,
            sample,
            origin,
            similarity: (1.0 - h.distance) as f64,
        });
    }
    Ok(PatchResult {
        query: source,
        hits: rows,
        embedding: query,
    })
}
