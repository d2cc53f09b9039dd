//! `vortexdb._native`: the Python extension module, a thin face over the vortexdb
//! library. One method per library call; NumPy arrays are borrowed (not copied) where
//! the library takes slices and returned arrays own the library's vectors; the GIL is
//! released around every call that touches the store or runs a model; errors are
//! raised as the classes of `vortexdb.errors`. The Python layer (`python/vortexdb`)
//! turns what these return into AnnData and pandas objects.

mod analysis;
mod convert;
mod ingest;
mod register;
mod results;
mod shards;
mod vectors;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use pyo3::prelude::*;
use vortexdb as vx;

use convert::{OrRaise, serialised, to_py};
use results::PyQueryResult;

/// A vortexdb store (a directory), opened for reading and writing or read-only.
#[pyclass(frozen, module = "vortexdb._native", name = "Store")]
struct PyStore {
    inner: RwLock<Option<Arc<vx::Store>>>,
    path: PathBuf,
    read_only: bool,
}

impl PyStore {
    fn new(store: vx::Store, path: PathBuf, read_only: bool) -> PyStore {
        PyStore {
            inner: RwLock::new(Some(Arc::new(store))),
            path,
            read_only,
        }
    }

    /// The open store (a closed one raises `vortexdb.errors.StoreClosed`).
    fn get(&self) -> PyResult<Arc<vx::Store>> {
        if vx::loaded_runtime_library().is_none() {
            // Until ONNX Runtime is loaded, look for the wheel's library again: one
            // installed since the import (`pip install onnxruntime` in a running
            // notebook) is then used without a restart. Best effort: a failure here
            // shows later as the runtime's own "not found" error.
            Python::attach(|py| {
                let _ = py
                    .import("vortexdb._runtime")
                    .and_then(|m| m.call_method0("use_wheel_library"));
            });
        }
        match &*self.inner.read().expect("store lock") {
            Some(s) => Ok(s.clone()),
            None => Python::attach(|py| {
                let cls = py.import("vortexdb.errors")?.getattr("StoreClosed")?;
                Err(PyErr::from_value(cls.call1((format!(
                    "{}: the store is closed",
                    self.path.display()
                ),))?))
            }),
        }
    }
}

#[pymethods]
impl PyStore {
    /// The store directory.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// True when opened read-only.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// Release the store (and its lock); later calls raise StoreClosed.
    fn close(&self, py: Python<'_>) {
        let s = self.inner.write().expect("store lock").take();
        py.detach(move || drop(s));
    }

    /// What `vortexdb info` prints as JSON: collections, models, samples, spot sets.
    /// Each sample also says where its image files are when it was ingested from them
    /// (`images`, `transforms`, `levels`, `um_per_px`; null otherwise).
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let summary = py.detach(|| s.summary()).or_raise()?;
        to_py(py, &summary.to_json())
    }

    /// Slice `z` of the image files a sample was ingested from (sections stacked and
    /// registered as at ingest, or the one image), as uint8 (rows, columns, channels),
    /// averaged over `downsample` x `downsample` pixel blocks: what the viewer shows.
    #[pyo3(signature = (sample, z, downsample=1))]
    fn read_image_slice(
        &self,
        py: Python<'_>,
        sample: String,
        z: usize,
        downsample: usize,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let (data, shape) = py
            .detach(|| vortexdb::read_sample_image(&s, &sample, z, downsample))
            .or_raise()?;
        crate::convert::array(py, data, &shape)
    }

    /// What `vortexdb backup` does: a consistent, verified copy at `dest`, what could
    /// not be read left out and listed (`complete` false).
    fn backup(&self, py: Python<'_>, dest: PathBuf) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let r = py.detach(|| s.backup(&dest)).or_raise()?;
        serialised(py, &r)
    }

    /// Register a model directory, or the built-in model with `"default"`.
    fn add_model(&self, py: Python<'_>, dir: PathBuf) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let rec = py.detach(|| s.add_model_or_builtin(&dir)).or_raise()?;
        serialised(py, &model_json(&rec))
    }

    /// The registered models.
    fn models(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let recs = py.detach(|| s.models()).or_raise()?;
        serialised(py, &recs.iter().map(model_json).collect::<Vec<_>>())
    }

    /// The spots of a sample: per spot its id, positions and QC, and the normalised and
    /// smoothed panel expression of the kept spots (NaN rows for the others); with
    /// `image`, also `image_embedding`: the image sample's stored patch embeddings at
    /// every spot (`Predictions::embeddings_at_spots`).
    #[pyo3(signature = (sample, image=None))]
    fn spots(&self, py: Python<'_>, sample: String, image: Option<String>) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let (set, spots, emb) = py
            .detach(|| {
                let set = s.require_spot_set("sample", &sample)?;
                let spots = s.spots(&sample)?;
                let emb = match &image {
                    Some(i) => {
                        let refs: Vec<&vx::SpotRecord> = spots.iter().map(|x| &x.0).collect();
                        Some(vx::Predictions::load(&s, i)?.embeddings_at_spots(&s, &refs)?)
                    }
                    None => None,
                };
                Ok::<_, vx::Error>((set.clone(), spots, emb))
            })
            .or_raise()?;
        let d = results::spots_dict(py, &set, &spots)?;
        if let Some((v, dim)) = emb {
            let n = spots.len();
            d.bind(py)
                .set_item("image_embedding", convert::array(py, v, &[n, dim])?)?;
        }
        Ok(d)
    }
}

impl PyStore {
    fn model(&self, py: Python<'_>, name: &Option<String>) -> PyResult<vx::Model> {
        let s = self.get()?;
        py.detach(|| vx::resolve_model(&s, name.as_deref()))
            .or_raise()
    }
}

/// A model record for people: its manifest parsed, not as a JSON string.
fn model_json(rec: &vx::ModelRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        let manifest = m
            .remove("manifest_json")
            .and_then(|s| s.as_str().and_then(|s| serde_json::from_str(s).ok()))
            .unwrap_or_default();
        m.insert("manifest".into(), manifest);
    }
    v
}

/// Create a store at `path` (a new directory).
#[pyfunction]
fn create(py: Python<'_>, path: PathBuf) -> PyResult<PyStore> {
    let s = py.detach(|| vx::Store::create(&path)).or_raise()?;
    Ok(PyStore::new(s, path, false))
}

/// Open the store at `path`; `read_only` takes no lock and refuses writes.
#[pyfunction]
#[pyo3(signature = (path, read_only=false))]
fn open(py: Python<'_>, path: PathBuf, read_only: bool) -> PyResult<PyStore> {
    let s = py
        .detach(|| {
            if read_only {
                vx::Store::open_read_only(&path)
            } else {
                vx::Store::open(&path)
            }
        })
        .or_raise()?;
    Ok(PyStore::new(s, path, read_only))
}

/// Use the ONNX Runtime library at `path` unless ORT_DYLIB_PATH is set (called by the
/// package with the `onnxruntime` wheel's library); false when it is too late.
#[pyfunction]
fn prefer_runtime_library(path: PathBuf) -> bool {
    vx::prefer_runtime_library(path)
}

/// What `vortexdb check` reports for the store at `path`, writing nothing to it.
#[pyfunction]
#[pyo3(signature = (path, scratch=None))]
fn check(py: Python<'_>, path: PathBuf, scratch: Option<PathBuf>) -> PyResult<Py<PyAny>> {
    let r = py
        .detach(|| vx::check_store(&path, scratch.as_deref()))
        .or_raise()?;
    serialised(py, &r)
}

/// What `vortexdb repair` does: a repaired copy of the store at `path` in `dest`.
#[pyfunction]
#[pyo3(signature = (path, dest, scratch=None))]
fn repair(
    py: Python<'_>,
    path: PathBuf,
    dest: PathBuf,
    scratch: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let r = py
        .detach(|| vx::repair_store(&path, &dest, scratch.as_deref()))
        .or_raise()?;
    serialised(py, &r)
}

/// The range of every numeric argument (the library's one table, `ARG_RULES`): what
/// every command, library call and this package accept.
#[pyfunction]
fn arg_rules(py: Python<'_>) -> PyResult<Py<PyAny>> {
    crate::convert::serialised(py, &vx::ARG_RULES)
}

/// The ONNX Runtime library loaded by this process, once a model has run.
#[pyfunction]
fn loaded_runtime_library() -> Option<String> {
    vx::loaded_runtime_library().map(|p| p.display().to_string())
}

/// Generate the synthetic phantom (volume, H&E planes, spots, labels) in `out`.
#[pyfunction]
#[pyo3(signature = (out, seed=7, shape=(32, 160, 160), oblique=0))]
fn phantom(
    py: Python<'_>,
    out: PathBuf,
    seed: u64,
    shape: (usize, usize, usize),
    oblique: usize,
) -> PyResult<Py<PyAny>> {
    let params = vx::PhantomParams {
        oblique,
        ..vx::PhantomParams::new(seed, [shape.0, shape.1, shape.2])
    };
    let ph = py
        .detach(|| vx::generate_phantom(&params, &out))
        .or_raise()?;
    serialised(py, &ph.files)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStore>()?;
    m.add_class::<PyQueryResult>()?;
    m.add_function(wrap_pyfunction!(create, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(prefer_runtime_library, m)?)?;
    m.add_function(wrap_pyfunction!(arg_rules, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(repair, m)?)?;
    m.add_function(wrap_pyfunction!(loaded_runtime_library, m)?)?;
    m.add_function(wrap_pyfunction!(phantom, m)?)?;
    m.add_function(wrap_pyfunction!(register::register_sections, m)?)?;
    m.add_function(wrap_pyfunction!(shards::gene_profile, m)?)?;
    m.add_function(wrap_pyfunction!(register::register_section_to_volume, m)?)?;
    m.add("ORT_VERSION", vx::ORT_VERSION)?;
    m.add("FORMAT_VERSION", vx::FORMAT_VERSION)?;
    Ok(())
}
