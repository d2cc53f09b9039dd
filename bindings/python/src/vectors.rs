//! Raw vectors: NumPy arrays imported and searched without copies.

use std::path::PathBuf;

use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use vortexdb as vx;

use crate::PyStore;
use crate::convert::{OrRaise, array, contiguous, serialised};

fn import_options(
    collection: String,
    metric: &str,
    batch_size: usize,
    sample: Option<String>,
    m: Option<usize>,
    ef_construction: Option<usize>,
    quantization: Option<&str>,
) -> PyResult<vx::ImportOptions> {
    let mut o = vx::ImportOptions::new(&collection);
    o.quantization = quantization
        .map(vx::Quantization::from_name)
        .transpose()
        .or_raise()?;
    o.metric = vx::Metric::from_name(metric).or_raise()?;
    o.batch_size = batch_size;
    o.sample = sample;
    if let Some(m) = m {
        o.hnsw.m = m;
    }
    if let Some(ef) = ef_construction {
        o.hnsw.ef_construction = ef;
    }
    Ok(o)
}

#[pymethods]
impl PyStore {
    /// Import a float32 array (N x D, C-contiguous; borrowed, not copied) into a raw
    /// collection (created when missing).
    #[pyo3(signature = (collection, vectors, metric="l2", batch_size=10_000, sample=None, m=None, ef_construction=None, quantization=None))]
    #[allow(clippy::too_many_arguments)]
    fn import_vectors(
        &self,
        py: Python<'_>,
        collection: String,
        vectors: PyReadonlyArray2<'_, f32>,
        metric: &str,
        batch_size: usize,
        sample: Option<String>,
        m: Option<usize>,
        ef_construction: Option<usize>,
        quantization: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = import_options(
            collection,
            metric,
            batch_size,
            sample,
            m,
            ef_construction,
            quantization,
        )?;
        let dim = vectors.shape()[1];
        let values = contiguous(&vectors, "vectors")?;
        let r = py
            .detach(|| vx::import_array(&s, &values, dim, &opts, &mut |_| {}))
            .or_raise()?;
        serialised(py, &r)
    }

    /// Import an NPY or Parquet vector file (resumable, like `vortexdb vectors import`).
    #[pyo3(signature = (collection, path, metric="l2", batch_size=10_000, sample=None, m=None, ef_construction=None, column="vector", quantization=None))]
    #[allow(clippy::too_many_arguments)]
    fn import_vectors_file(
        &self,
        py: Python<'_>,
        collection: String,
        path: PathBuf,
        metric: &str,
        batch_size: usize,
        sample: Option<String>,
        m: Option<usize>,
        ef_construction: Option<usize>,
        column: &str,
        quantization: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = import_options(
            collection,
            metric,
            batch_size,
            sample,
            m,
            ef_construction,
            quantization,
        )?;
        opts.column = column.into();
        let r = py
            .detach(|| vx::import_vectors(&s, &path, &opts, &mut |_| {}))
            .or_raise()?;
        serialised(py, &r)
    }

    /// k nearest neighbours of every row of `queries` (float32 N x D, borrowed; `ef`
    /// defaults to the library's, as the CLI's `--ef`):
    /// (ids int64 N x k, -1 padded; distances float32 N x k, NaN padded).
    #[pyo3(signature = (collection, queries, k=10, ef=None, exact=false, samples=None, exclude=vec![], region=None, rescore=0))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        collection: String,
        queries: PyReadonlyArray2<'_, f32>,
        k: usize,
        ef: Option<usize>,
        exact: bool,
        samples: Option<Vec<String>>,
        exclude: Vec<String>,
        region: Option<String>,
        rescore: usize,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let s = self.get()?;
        let region = region
            .map(|r| r.parse::<vx::Region>())
            .transpose()
            .or_raise()?;
        let opts = vx::SearchOptions {
            k,
            ef: ef.unwrap_or(vx::SearchOptions::default().ef),
            exact,
            filter: vx::Filter {
                samples,
                exclude_samples: exclude,
                region,
            },
            rescore,
        };
        let (n, dim) = (queries.shape()[0], queries.shape()[1]);
        let values = contiguous(&queries, "queries")?;
        let found = py
            .detach(|| vx::search_array(&s, &collection, &values, dim, &opts))
            .or_raise()?;
        let (ids, dist) = found.padded();
        Ok((array(py, ids, &[n, k])?, array(py, dist, &[n, k])?))
    }
}
