//! The calls an archive of shards makes in each shard and once over all of them: a
//! shard's spot pool (bytes, so it travels through Ray's object store), the molecular
//! query's profile over the merged pools, a query embedding scored in one shard, and
//! the triage of a shard's result at the archive's threshold.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use vortexdb as vx;

use crate::PyStore;
use crate::convert::{OrRaise, array, err, serialised};
use crate::results::PyQueryResult;

#[pymethods]
impl PyStore {
    /// The stored spots of `model` (`samples`: only these) as the molecular query reads
    /// them, encoded as bytes for [`gene_profile`].
    #[pyo3(signature = (model=None, samples=None))]
    fn spot_pool(
        &self,
        py: Python<'_>,
        model: Option<String>,
        samples: Option<Vec<String>>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let bytes = py
            .detach(|| -> vx::Result<Vec<u8>> {
                let m = s.load_model(model.as_deref())?;
                let pool = vx::SpotPool::read(&s, &m.manifest.name, samples.as_deref())?;
                serde_json::to_vec(&pool).map_err(|e| vx::Error::arg("pool", e.to_string()))
            })
            .or_raise()?;
        Ok(PyBytes::new(py, &bytes).into_any().unbind())
    }

    /// Score `embedding` against every patch, as a molecular query scores its spots'
    /// mean embedding.
    #[pyo3(signature = (embedding, samples=vec![], exclude=vec![], model=None, threshold_percentile=90.0, target="3d"))]
    #[allow(clippy::too_many_arguments)]
    fn query_embedding(
        &self,
        py: Python<'_>,
        embedding: Vec<f32>,
        samples: Vec<String>,
        exclude: Vec<String>,
        model: Option<String>,
        threshold_percentile: f64,
        target: &str,
    ) -> PyResult<PyQueryResult> {
        let s = self.get()?;
        let opts = vx::ScoreOptions {
            samples,
            exclude,
            model,
            threshold_percentile,
            target: vx::Modality::retrieval_target(target).map_err(err)?,
        };
        let r = py
            .detach(|| vx::query_embedding(&s, embedding, &opts))
            .or_raise()?;
        Ok(PyQueryResult::new(r))
    }
}

#[pymethods]
impl PyQueryResult {
    /// The triage table of this result's patches at `threshold` (an archive's, over
    /// all its shards' scores).
    fn triage_at(&self, py: Python<'_>, threshold: f32) -> PyResult<Py<PyAny>> {
        let r = self.shared();
        serialised(py, &vx::triage(&r.ranked, threshold))
    }

    /// Every patch's score, best first (float32): the ranked scores alone.
    fn scores(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let r = self.shared();
        let v: Vec<f32> = r.ranked.iter().map(|p| p.score).collect();
        let n = v.len();
        array(py, v, &[n])
    }
}

/// The molecular query's transcriptomic side over spot pools read from several
/// stores holding disjoint samples (`Store.spot_pool`): correlated genes, thresholds,
/// the spots chosen and their mean embedding, as one store holding them all.
#[pyfunction]
#[pyo3(signature = (pools, model, genes, min_pcc=0.5, percentile=75.0, min_fraction=0.5))]
pub fn gene_profile(
    py: Python<'_>,
    pools: Vec<Vec<u8>>,
    model: String,
    genes: Vec<String>,
    min_pcc: f64,
    percentile: f64,
    min_fraction: f64,
) -> PyResult<Py<PyAny>> {
    let q = vx::GeneQuery {
        genes,
        spot_samples: None,
        min_pcc,
        percentile,
        min_fraction,
    };
    let p = py
        .detach(|| -> vx::Result<vx::GeneProfile> {
            let mut parts = Vec::with_capacity(pools.len());
            for (i, b) in pools.iter().enumerate() {
                parts.push(serde_json::from_slice::<vx::SpotPool>(b).map_err(|e| {
                    vx::Error::arg("pools", format!("pool {i} is not a spot pool: {e}"))
                })?);
            }
            let pool = vx::SpotPool::merge(parts)?;
            vx::gene_profile_of(&pool, &model, &q)
        })
        .or_raise()?;
    let d = serialised(py, &p)?;
    let n = p.embedding.len();
    d.bind(py)
        .set_item("embedding", array(py, p.embedding, &[n])?)?;
    Ok(d)
}
