//! Results that carry arrays: a query result (its ranked patches as columns, heatmaps
//! on request), predictions and spots as dictionaries of NumPy arrays.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use vortexdb as vx;

use crate::PyStore;
use crate::convert::{OrRaise, array, serialised};

/// The result of a molecular or profile query.
#[pyclass(frozen, module = "vortexdb._native", name = "QueryResult")]
pub struct PyQueryResult {
    inner: Arc<vx::QueryResult>,
}

impl PyQueryResult {
    pub fn new(r: vx::QueryResult) -> Self {
        PyQueryResult { inner: Arc::new(r) }
    }

    /// The result itself.
    pub fn shared(&self) -> Arc<vx::QueryResult> {
        self.inner.clone()
    }
}

#[pymethods]
impl PyQueryResult {
    /// What `vortexdb query --json` prints, with the best `top` patches.
    #[pyo3(signature = (top=10))]
    fn summary(&self, py: Python<'_>, top: usize) -> PyResult<Py<PyAny>> {
        vx::check_count("top", top).or_raise()?;
        let r = &self.inner;
        let top = &r.ranked[..top.min(r.ranked.len())];
        let v = serde_json::json!({"query": r.summary, "patches": r.ranked.len(),
            "threshold": r.threshold, "threshold_percentile": r.threshold_percentile,
            "top": top, "triage": r.triage, "collection": r.collection});
        crate::convert::to_py(py, &v)
    }

    /// Every scored patch, best first, as columns: sample, id, z, y, x, score, percentile.
    fn ranked(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let r = &self.inner.ranked;
        let n = r.len();
        let d = PyDict::new(py);
        d.set_item("sample", r.iter().map(|p| &*p.sample).collect::<Vec<_>>())?;
        d.set_item("id", array(py, r.iter().map(|p| p.id).collect(), &[n])?)?;
        for (a, name) in ["z", "y", "x"].iter().enumerate() {
            d.set_item(
                *name,
                array(py, r.iter().map(|p| p.origin[a]).collect(), &[n])?,
            )?;
        }
        d.set_item(
            "score",
            array(py, r.iter().map(|p| p.score).collect(), &[n])?,
        )?;
        d.set_item(
            "percentile",
            array(py, r.iter().map(|p| p.percentile).collect(), &[n])?,
        )?;
        Ok(d.into_any().unbind())
    }

    /// The 3D heatmap of `sample` (float32, overlap-averaged, NaN outside the patches):
    /// what `vortexdb query --out` writes as `heatmap_<sample>.npy`.
    #[pyo3(signature = (store, sample, downsample=None))]
    fn heatmap(
        &self,
        py: Python<'_>,
        store: &PyStore,
        sample: String,
        downsample: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let s = store.get()?;
        let r = self.inner.clone();
        let h = py
            .detach(move || r.heatmap(&s, &sample, downsample))
            .or_raise()?;
        array(py, h.data, &h.shape)
    }

    /// The query embedding.
    fn embedding(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let e = self.inner.embedding.clone();
        let n = e.len();
        array(py, e, &[n])
    }

    /// The spots a molecular query averaged, as (sample, spot id) pairs.
    fn spots(&self) -> Vec<(String, String)> {
        self.inner
            .profile
            .as_ref()
            .map_or_else(Vec::new, |p| p.spots.clone())
    }

    /// Write the files `vortexdb query --out DIR` writes; returns their paths.
    #[pyo3(signature = (dir, store, top=10, downsample=None, slices=3, ome_zarr=false))]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        dir: std::path::PathBuf,
        store: &PyStore,
        top: usize,
        downsample: Option<usize>,
        slices: usize,
        ome_zarr: bool,
    ) -> PyResult<Vec<String>> {
        let s = store.get()?;
        let r = self.inner.clone();
        let opts = vx::QueryExport {
            top,
            downsample,
            slices,
            ome_zarr,
        };
        py.detach(move || vx::write_query(&dir, &s, &r, &opts))
            .or_raise()
    }

    /// The query and its results in a few lines (the CLI's text).
    fn __repr__(&self) -> String {
        let mut s = self.inner.headline().unwrap_or_default();
        if !s.is_empty() {
            s.push('\n');
        }
        s + &self.inner.table(10)
    }
}

/// Predictions as a dictionary: sample, method, the ridge fit (None unless ridge),
/// genes, patch ids and origins, tissue fractions, the expression matrix and the
/// hidden representation.
pub fn predictions_dict(py: Python<'_>, p: &vx::Predictions) -> PyResult<Py<PyAny>> {
    let n = p.len();
    let d = PyDict::new(py);
    d.set_item("sample", &p.sample.id)?;
    d.set_item("method", serialised(py, &p.method)?)?;
    d.set_item("ridge", serialised(py, &p.ridge)?)?;
    d.set_item("genes", p.genes.clone())?;
    d.set_item("ids", array(py, p.patches.ids.clone(), &[n])?)?;
    let origins: Vec<i64> = p.patches.records.iter().flat_map(|r| r.origin).collect();
    d.set_item("origins", array(py, origins, &[n, 3])?)?;
    let tissue: Vec<f32> = p
        .patches
        .records
        .iter()
        .map(|r| r.tissue_fraction)
        .collect();
    d.set_item("tissue", array(py, tissue, &[n])?)?;
    d.set_item(
        "expression",
        array(py, p.expression.clone(), &[n, p.genes.len()])?,
    )?;
    let h = p.hidden_dim();
    d.set_item("hidden", array(py, p.hidden(), &[n, h])?)?;
    Ok(d.into_any().unbind())
}

/// The spots of a sample as columns plus the panel expression matrices.
pub fn spots_dict(
    py: Python<'_>,
    set: &vx::SpotSetRecord,
    spots: &[(vx::SpotRecord, Option<vx::ExpressionRecord>)],
) -> PyResult<Py<PyAny>> {
    let n = spots.len();
    let g = set.panel.len();
    let d = PyDict::new(py);
    d.set_item("set", serialised(py, set)?)?;
    d.set_item(
        "id",
        spots.iter().map(|(s, _)| s.id.clone()).collect::<Vec<_>>(),
    )?;
    let col = |f: &dyn Fn(&vx::SpotRecord) -> f64| -> Vec<f64> {
        spots.iter().map(|(s, _)| f(s)).collect()
    };
    let cols: [(&str, Vec<f64>); 10] = [
        ("pixel_x", col(&|s| s.pixel[0])),
        ("pixel_y", col(&|s| s.pixel[1])),
        ("array_x", col(&|s| s.array.map_or(f64::NAN, |a| a[0]))),
        ("array_y", col(&|s| s.array.map_or(f64::NAN, |a| a[1]))),
        ("z", col(&|s| s.position[0])),
        ("y", col(&|s| s.position[1])),
        ("x", col(&|s| s.position[2])),
        ("n_genes", col(&|s| s.qc.n_genes as f64)),
        ("total_counts", col(&|s| s.qc.total_counts)),
        ("mito_fraction", col(&|s| s.qc.mito_fraction)),
    ];
    for (name, v) in cols {
        d.set_item(name, array(py, v, &[n])?)?;
    }
    d.set_item(
        "kept",
        array(py, spots.iter().map(|(s, _)| s.qc.kept).collect(), &[n])?,
    )?;
    let mut normalized = vec![f32::NAN; n * g];
    let mut smoothed = vec![f32::NAN; n * g];
    for (i, (_, e)) in spots.iter().enumerate() {
        if let Some(e) = e {
            normalized[i * g..(i + 1) * g].copy_from_slice(&e.normalized);
            smoothed[i * g..(i + 1) * g].copy_from_slice(&e.smoothed);
        }
    }
    d.set_item("panel", set.panel.clone())?;
    d.set_item("normalized", array(py, normalized, &[n, g])?)?;
    d.set_item("smoothed", array(py, smoothed, &[n, g])?)?;
    Ok(d.into_any().unbind())
}
