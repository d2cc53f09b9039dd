//! Queries, predictions, domains and the evaluation.

use std::path::PathBuf;

use pyo3::prelude::*;
use vortexdb as vx;

use crate::PyStore;
use crate::convert::{OrRaise, array, err, serialised};
use crate::results::{PyQueryResult, predictions_dict};

/// The prediction method of the keyword arguments: the predictor head, `knn`
/// nearest reference spots, or the `ridge` readout fitted on the reference spots
/// (`alpha` its penalty and `context_um` its context scales, `[]` for none; None:
/// chosen by cross-validation).
fn method(
    knn: Option<usize>,
    reference: Vec<String>,
    ridge: bool,
    alpha: Option<f64>,
    context_um: Option<Vec<f64>>,
    readout: Option<String>,
) -> PyResult<vx::Method> {
    if let Some(name) = readout {
        if knn.is_some() || ridge || !reference.is_empty() {
            return Err(err(vx::Error::arg(
                "readout",
                "a stored readout carries its own reference: give readout alone, not with \
                 knn, ridge or reference",
            )));
        }
        return Ok(vx::Method::Readout {
            name,
            reference: Vec::new(),
        });
    }
    if alpha.is_some() && !ridge {
        return Err(err(vx::Error::arg(
            "alpha",
            "alpha is the penalty of ridge=True",
        )));
    }
    if context_um.is_some() && !ridge {
        return Err(err(vx::Error::arg(
            "context_um",
            "context_um are the context scales of ridge=True",
        )));
    }
    Ok(match (knn, ridge) {
        (Some(_), true) => {
            return Err(err(vx::Error::arg(
                "knn",
                "knn and ridge are two methods: give one",
            )));
        }
        (Some(k), false) => vx::Method::Knn { k, reference },
        (None, true) => vx::Method::Ridge {
            reference,
            alpha,
            context_um,
        },
        (None, false) => vx::Method::Predictor,
    })
}

/// A stored readout without its weights.
fn readout_summary(r: &vx::ReadoutRecord) -> serde_json::Value {
    serde_json::json!({"name": r.name, "model": r.model, "sample": r.sample,
        "reference": r.reference, "genes": r.genes, "alpha": r.alpha,
        "context_um": r.context_um, "cv_pcc": r.cv_pcc, "spots": r.spots,
        "features": r.features, "per_sample": r.per_sample, "anchored": r.anchored,
        "sha256": r.sha256})
}

#[pymethods]
impl PyStore {
    /// A molecular query: genes -> spots high in them -> similarity of every patch.
    #[pyo3(signature = (genes, spots_from=None, min_pcc=0.5, percentile=75.0, min_fraction=0.5, samples=vec![], exclude=vec![], model=None, threshold_percentile=90.0, target="3d"))]
    #[allow(clippy::too_many_arguments)]
    fn query_genes(
        &self,
        py: Python<'_>,
        genes: Vec<String>,
        spots_from: Option<Vec<String>>,
        min_pcc: f64,
        percentile: f64,
        min_fraction: f64,
        samples: Vec<String>,
        exclude: Vec<String>,
        model: Option<String>,
        threshold_percentile: f64,
        target: &str,
    ) -> PyResult<PyQueryResult> {
        let s = self.get()?;
        let q = vx::GeneQuery {
            genes,
            spot_samples: spots_from,
            min_pcc,
            percentile,
            min_fraction,
        };
        let opts = vx::ScoreOptions {
            samples,
            exclude,
            model,
            threshold_percentile,
            target: vx::Modality::retrieval_target(target).map_err(err)?,
        };
        let r = py.detach(|| vx::query_genes(&s, &q, &opts)).or_raise()?;
        Ok(PyQueryResult::new(r))
    }

    /// A profile query: gene values (or marker genes) -> similarity of every patch.
    #[pyo3(signature = (values=None, markers=None, counts=false, samples=vec![], exclude=vec![], model=None, threshold_percentile=90.0, target="3d"))]
    #[allow(clippy::too_many_arguments)]
    fn query_profile(
        &self,
        py: Python<'_>,
        values: Option<Vec<(String, f64)>>,
        markers: Option<Vec<String>>,
        counts: bool,
        samples: Vec<String>,
        exclude: Vec<String>,
        model: Option<String>,
        threshold_percentile: f64,
        target: &str,
    ) -> PyResult<PyQueryResult> {
        let s = self.get()?;
        let profile = match (values, markers) {
            (Some(genes), None) => vx::Profile::Values { genes, counts },
            (None, Some(m)) => vx::Profile::Markers(m),
            _ => {
                return Err(err(vx::Error::arg(
                    "profile",
                    "give gene values or marker genes (exactly one)",
                )));
            }
        };
        let opts = vx::ScoreOptions {
            samples,
            exclude,
            model,
            threshold_percentile,
            target: vx::Modality::retrieval_target(target).map_err(err)?,
        };
        let r = py
            .detach(|| vx::query_profile(&s, &profile, &opts))
            .or_raise()?;
        Ok(PyQueryResult::new(r))
    }

    /// The patches most similar to a stored patch (`sample`, `at`) or to an image file.
    #[pyo3(signature = (sample=None, at=None, image=None, top=10, within=vec![], exclude_self=false, model=None, exact=false, target="3d", vector=None))]
    #[allow(clippy::too_many_arguments)]
    fn query_patch(
        &self,
        py: Python<'_>,
        sample: Option<String>,
        at: Option<[i64; 3]>,
        image: Option<PathBuf>,
        top: usize,
        within: Vec<String>,
        exclude_self: bool,
        model: Option<String>,
        exact: bool,
        target: &str,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let target = vx::Modality::retrieval_target(target).or_raise()?;
        let source = match (sample, at, image, vector) {
            (Some(sample), Some(at), None, None) => vx::PatchSource::Stored { sample, at },
            (None, None, Some(img), None) => vx::PatchSource::Image(img),
            (None, None, None, Some(v)) => vx::PatchSource::Vector(v),
            _ => {
                return Err(err(vx::Error::arg(
                    "sample",
                    "give a sample and a patch origin `at`, an image, or a vector",
                )));
            }
        };
        let q = vx::PatchQuery {
            source,
            top,
            within,
            exclude_self,
            model,
            exact,
            target,
        };
        let r = py.detach(|| vx::query_patch(&s, &q)).or_raise()?;
        let d = serialised(py, &r)?;
        let n = r.embedding.len();
        d.bind(py)
            .set_item("embedding", array(py, r.embedding, &[n])?)?;
        Ok(d)
    }

    /// Predicted expression of every patch of a sample (predictor head, `knn`
    /// nearest spots of the `reference` samples, or the `ridge` readout fitted on them).
    #[pyo3(signature = (sample, knn=None, reference=vec![], ridge=false, alpha=None, context_um=None, readout=None))]
    #[allow(clippy::too_many_arguments)]
    fn predict(
        &self,
        py: Python<'_>,
        sample: String,
        knn: Option<usize>,
        reference: Vec<String>,
        ridge: bool,
        alpha: Option<f64>,
        context_um: Option<Vec<f64>>,
        readout: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let method = method(knn, reference, ridge, alpha, context_um, readout)?;
        let p = py.detach(|| vx::predict(&s, &sample, &method)).or_raise()?;
        predictions_dict(py, &p)
    }

    /// Fit the ridge readout on `sample`'s `reference` spots and store it as `name`.
    #[pyo3(signature = (name, sample, reference, alpha=None, context_um=None, per_sample=true, anchored=false, replace=false))]
    #[allow(clippy::too_many_arguments)]
    fn fit_readout(
        &self,
        py: Python<'_>,
        name: String,
        sample: String,
        reference: Vec<String>,
        alpha: Option<f64>,
        context_um: Option<Vec<f64>>,
        per_sample: bool,
        anchored: bool,
        replace: bool,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = vx::ReadoutOptions::new(&name, &sample, &reference);
        opts.anchored = anchored;
        opts.alpha = alpha;
        opts.context_um = context_um;
        opts.per_sample = per_sample;
        opts.replace = replace;
        let rec = py.detach(|| vx::fit_readout(&s, &opts)).or_raise()?;
        serialised(py, &readout_summary(&rec))
    }

    /// The stored readouts (without their weights).
    fn readouts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let all = py.detach(|| s.readouts()).or_raise()?;
        let v: Vec<serde_json::Value> = all.iter().map(readout_summary).collect();
        serialised(py, &v)
    }

    /// k-means spatial domains over the predictor's hidden representation.
    #[pyo3(signature = (sample, k=5, seed=0, restarts=10, max_iter=300, segmentation=None, downsample=1))]
    #[allow(clippy::too_many_arguments)]
    fn domains(
        &self,
        py: Python<'_>,
        sample: String,
        k: usize,
        seed: u64,
        restarts: usize,
        max_iter: usize,
        segmentation: Option<PathBuf>,
        downsample: usize,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        vx::check_count("downsample", downsample).or_raise()?;
        let opts = vx::KMeansOptions {
            k,
            restarts,
            max_iter,
            seed,
            ..Default::default()
        };
        let d = py
            .detach(|| vx::find_domains(&s, &sample, &opts, segmentation.as_deref()))
            .or_raise()?;
        let (vol, shape) = py.detach(|| d.label_volume(downsample));
        let out = pyo3::types::PyDict::new(py);
        out.set_item("sample", &sample)?;
        out.set_item("k", d.record.k)?;
        out.set_item("inertia", d.record.inertia)?;
        out.set_item("seconds", d.seconds)?;
        out.set_item(
            "ids",
            array(py, d.record.ids.clone(), &[d.record.ids.len()])?,
        )?;
        out.set_item(
            "labels",
            array(py, d.record.labels.clone(), &[d.record.labels.len()])?,
        )?;
        out.set_item("label_volume", array(py, vol, &shape)?)?;
        out.set_item("domains", serialised(py, &d.summaries)?)?;
        out.set_item("ari", d.ari.map(|a| a.0))?;
        out.set_item("ari_patches", d.ari.map(|a| a.1))?;
        out.set_item("predictions", predictions_dict(py, &d.predictions)?)?;
        Ok(out.into_any().unbind())
    }

    /// Predicted against measured expression at the spots: the numbers of
    /// `vortexdb eval --json`.
    #[pyo3(signature = (sample, spots=None, genes=vec![], markers=vec![], smoothed=false, segmentation=None, knn=None, reference=vec![], ridge=false, alpha=None, context_um=None, allow_in_sample=false, readout=None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        py: Python<'_>,
        sample: String,
        spots: Option<String>,
        genes: Vec<String>,
        markers: Vec<String>,
        smoothed: bool,
        segmentation: Option<PathBuf>,
        knn: Option<usize>,
        reference: Vec<String>,
        ridge: bool,
        alpha: Option<f64>,
        context_um: Option<Vec<f64>>,
        allow_in_sample: bool,
        readout: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let method = method(knn, reference, ridge, alpha, context_um, readout)?;
        let opts = vx::EvalOptions {
            spots,
            genes,
            markers,
            smoothed,
            segmentation,
            allow_in_sample,
        };
        let ev = py
            .detach(|| {
                let pred = vx::predict(&s, &sample, &method)?;
                vx::evaluate_sample(&s, &pred, &opts)
            })
            .or_raise()?;
        serialised(py, &ev.summary())
    }

    /// The sample as a SpatialData Zarr store at `out` (what `vortexdb export` writes);
    /// returns what was written and what was left out.
    #[pyo3(signature = (sample, out, genes=vec![], query=None, downsample=None, knn=None, reference=vec![], ridge=false, alpha=None, context_um=None, readout=None))]
    #[allow(clippy::too_many_arguments)]
    fn export_spatialdata(
        &self,
        py: Python<'_>,
        sample: String,
        out: PathBuf,
        genes: Vec<String>,
        query: Option<PyRef<'_, PyQueryResult>>,
        downsample: Option<usize>,
        knn: Option<usize>,
        reference: Vec<String>,
        ridge: bool,
        alpha: Option<f64>,
        context_um: Option<Vec<f64>>,
        readout: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let method = method(knn, reference, ridge, alpha, context_um, readout)?;
        let q = query.map(|q| q.shared());
        let r = py
            .detach(|| {
                let pred = vx::predict(&s, &sample, &method)?;
                let opts = vx::SpatialDataOptions {
                    genes,
                    query: q.as_deref(),
                    downsample,
                };
                vx::write_spatialdata(&out, &s, &pred, &opts)
            })
            .or_raise()?;
        serialised(py, &r)
    }
}
