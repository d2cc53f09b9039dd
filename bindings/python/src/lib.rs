//! `vortexdb._native`: the Python extension module, a thin face over the vortexdb
//! library. One method per library call; NumPy arrays are borrowed (not copied) where
//! the library takes slices and returned arrays own the library's vectors; the GIL is
//! released around every call that touches the store or runs a model; errors are
//! raised as the classes of `vortexdb.errors`. The Python layer (`python/vortexdb`)
//! turns what these return into AnnData and pandas objects.

mod convert;
mod results;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use vortexdb as vx;

use convert::{OrRaise, array, array_bytes, err, serialised, to_py};
use results::{PyQueryResult, predictions_dict};

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

/// Settings shared by the image ingests (volume, sections, image).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct IngestArgs {
    sample: String,
    model: Option<String>,
    overlap: f64,
    min_tissue: f32,
    tissue: Option<String>,
    intensity_range: Option<(f32, f32)>,
    batch: usize,
    device: String,
    threads: usize,
    progress: Option<Py<PyAny>>,
}

impl IngestArgs {
    fn options(&self, kind: vx::SampleKind) -> PyResult<vx::IngestOptions> {
        let polarity = match self.tissue.as_deref() {
            None => vx::default_polarity(kind),
            Some(t) => t.parse().or_raise()?,
        };
        Ok(vx::IngestOptions {
            sample: self.sample.clone(),
            kind,
            overlap: self.overlap,
            min_tissue: self.min_tissue,
            polarity,
            batch: self.batch,
            run: run_options(&self.device, self.threads)?,
            ..vx::IngestOptions::default()
        })
    }
}

fn run_options(device: &str, threads: usize) -> PyResult<vx::RunOptions> {
    Ok(vx::RunOptions {
        device: device.parse().or_raise()?,
        threads,
    })
}

/// Run an ingest with the GIL released; between durable batches the progress callback
/// (if any) is called and Ctrl-C is honoured (the ingest stops there, resumable).
fn run_ingest(
    py: Python<'_>,
    progress: &Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(vx::Progress) -> ControlFlow<()>) -> vx::Result<vx::IngestReport>
    + Send,
) -> PyResult<Py<PyAny>> {
    let mut pending: Option<PyErr> = None;
    let report = py.detach(|| {
        let mut on_progress = |p: vx::Progress| {
            Python::attach(|py| {
                let call = progress.as_ref().map_or(Ok(()), |cb| {
                    cb.call1(py, (p.positions_done, p.positions_total, p.patches_stored))
                        .map(|_| ())
                });
                match call.and_then(|_| py.check_signals()) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        pending = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })
        };
        f(&mut on_progress)
    });
    match report {
        Ok(r) => serialised(py, &r),
        // Ctrl-C raises `vortexdb.errors.Interrupted` (a KeyboardInterrupt); an error
        // raised by the callback itself is re-raised as it was.
        Err(e @ vx::Error::Interrupted { .. }) => match pending {
            Some(p) if !p.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => Err(p),
            _ => Err(err(e)),
        },
        Err(e) => Err(err(e)),
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
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let summary = py.detach(|| s.summary()).or_raise()?;
        to_py(py, &summary.to_json())
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

    /// Ingest a volume from a path (NPY, TIFF, a slice directory) or a NumPy array.
    #[pyo3(signature = (args, path=None, data=None, um_per_voxel=None))]
    fn ingest_volume(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        path: Option<PathBuf>,
        data: Option<Bound<'_, PyUntypedArray>>,
        um_per_voxel: Option<[f64; 3]>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = args.options(vx::SampleKind::Volume)?;
        opts.voxel_um = um_per_voxel;
        let arr = data.as_ref().map(|a| array_bytes(a, "volume")).transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (path, arr) {
            (Some(p), None) => run_ingest(py, &args.progress, |cb| {
                let src = vx::open_volume(&p, range)?;
                vx::ingest_volume(&s, &model, src, &opts, cb)
            }),
            (None, Some((bytes, shape, dtype))) => {
                run_ingest(py, &args.progress, |cb| {
                    let src = vx::ArrayVolume::new(bytes, &shape, dtype, "<array>", range)?;
                    vx::ingest_volume(&s, &model, Box::new(src), &opts, cb)
                })
            }
            _ => Err(err(vx::Error::arg(
                "volume",
                "give a path or an array (exactly one)",
            ))),
        }
    }

    /// Ingest serial sections: image paths (optionally with a transforms file) or a
    /// NumPy stack (sections, Y, X[, C]) already registered.
    #[pyo3(signature = (args, spacing_um, um_per_px, images=None, stack=None, transforms=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_sections(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        spacing_um: f64,
        um_per_px: f64,
        images: Option<Vec<PathBuf>>,
        stack: Option<Bound<'_, PyUntypedArray>>,
        transforms: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = args.options(vx::SampleKind::Sections)?;
        let arr = stack.as_ref().map(|a| array_bytes(a, "sections")).transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (images, arr) {
            (Some(images), None) => {
                let sec = vx::Sections {
                    images,
                    spacing_um,
                    um_per_px,
                    transforms,
                    intensity: range,
                };
                run_ingest(py, &args.progress, |cb| {
                    vx::ingest_sections(&s, &model, &sec, &opts, cb)
                })
            }
            (None, Some((bytes, shape, dtype))) => {
                if transforms.is_some() {
                    return Err(err(vx::Error::arg(
                        "transforms",
                        "registration transforms apply to image files; register an array stack before passing it",
                    )));
                }
                run_ingest(py, &args.progress, |cb| {
                    let src = vx::ArrayVolume::new(bytes, &shape, dtype, "<array>", range)?;
                    vx::ingest_section_stack(&s, &model, Box::new(src), spacing_um, um_per_px, &opts, cb)
                })
            }
            _ => Err(err(vx::Error::arg(
                "images",
                "give image paths or an array stack (exactly one)",
            ))),
        }
    }

    /// Ingest one H&E image (a path or a NumPy array (Y, X[, C])) through the 2D encoder.
    #[pyo3(signature = (args, um_per_px, path=None, data=None))]
    fn ingest_image(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        um_per_px: f64,
        path: Option<PathBuf>,
        data: Option<Bound<'_, PyUntypedArray>>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = args.options(vx::SampleKind::Image)?;
        let arr = data.as_ref().map(|a| array_bytes(a, "image")).transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (path, arr) {
            (Some(p), None) => run_ingest(py, &args.progress, |cb| {
                vx::ingest_image(&s, &model, &p, um_per_px, range, &opts, cb)
            }),
            (None, Some((bytes, mut shape, dtype))) => {
                if !(2..=3).contains(&shape.len()) {
                    return Err(err(vx::Error::bad_input(
                        "image",
                        format!("shape {shape:?} is not an image (Y, X) or (Y, X, C)"),
                    )));
                }
                shape.insert(0, 1);
                run_ingest(py, &args.progress, |cb| {
                    let src = vx::ArrayVolume::new(bytes, &shape, dtype, "<array>", range)?;
                    vx::ingest_image_source(&s, &model, Box::new(src), um_per_px, &opts, cb)
                })
            }
            _ => Err(err(vx::Error::arg(
                "image",
                "give a path or an array (exactly one)",
            ))),
        }
    }

    /// Ingest spots from files (her2st, Visium, Parquet).
    #[pyo3(signature = (options, path, format=None, positions=None))]
    fn ingest_spots_file(
        &self,
        py: Python<'_>,
        options: SpotArgs,
        path: PathBuf,
        format: Option<String>,
        positions: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = options.options()?;
        let model = self.model(py, &options.model)?;
        let report = py
            .detach(|| {
                let format = match &format {
                    Some(f) => vx::SpotFormat::parse(f)?,
                    None => vx::SpotFormat::detect(&path)?,
                };
                let table = vx::read_spots(&path, format, &vx::SpotPaths { positions })?;
                vx::ingest_spots(&s, &model, table, &opts)
            })
            .or_raise()?;
        serialised(py, &report)
    }

    /// Ingest spots given as arrays (the Python layer's AnnData conversion): spot ids,
    /// gene names, raw counts as CSR (indptr, indices, data), pixel positions (n x 2),
    /// optional array positions (n x 2), section indices and spot diameter.
    #[pyo3(signature = (options, name, ids, genes, indptr, indices, data, pixel, array_xy=None, z=None, spot_diameter_px=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_spots_arrays(
        &self,
        py: Python<'_>,
        options: SpotArgs,
        name: String,
        ids: Vec<String>,
        genes: Vec<String>,
        indptr: PyReadonlyArray1<'_, i64>,
        indices: PyReadonlyArray1<'_, i64>,
        data: PyReadonlyArray1<'_, f64>,
        pixel: PyReadonlyArray2<'_, f64>,
        array_xy: Option<PyReadonlyArray2<'_, f64>>,
        z: Option<PyReadonlyArray1<'_, f64>>,
        spot_diameter_px: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = options.options()?;
        let model = self.model(py, &options.model)?;
        let bad = |m: String| err(vx::Error::bad_input(&name, m));
        let pairs = |a: &PyReadonlyArray2<'_, f64>, what: &str| -> PyResult<Vec<[f64; 2]>> {
            let v = a.as_array();
            if v.ncols() != 2 {
                return Err(bad(format!("{what} must have 2 columns (x, y), not {}", v.ncols())));
            }
            Ok(v.rows().into_iter().map(|r| [r[0], r[1]]).collect())
        };
        let to_usize = |v: i64, what: &str| -> PyResult<usize> {
            usize::try_from(v).map_err(|_| bad(format!("negative {what} {v}")))
        };
        let counts = vx::CountMatrix {
            genes,
            indptr: indptr
                .as_array()
                .iter()
                .map(|&p| to_usize(p, "row pointer"))
                .collect::<PyResult<_>>()?,
            indices: indices
                .as_array()
                .iter()
                .map(|&j| {
                    u32::try_from(j).map_err(|_| bad(format!("gene column {j} is out of range")))
                })
                .collect::<PyResult<_>>()?,
            data: data.as_array().iter().map(|&v| v as f32).collect(),
        };
        if counts.indptr.is_empty() {
            return Err(bad("the count matrix has no row pointers".into()));
        }
        let positions = vx::SpotPositions {
            pixel: pairs(&pixel, "spatial positions")?,
            array: array_xy.as_ref().map(|a| pairs(a, "array positions")).transpose()?,
            z: z.map(|z| z.as_array().to_vec()),
            spot_diameter_px,
        };
        let report = py
            .detach(|| {
                let table = vx::SpotTable::from_arrays(&name, ids, positions, counts)?;
                vx::ingest_spots(&s, &model, table, &opts)
            })
            .or_raise()?;
        serialised(py, &report)
    }

    /// A molecular query: genes -> spots high in them -> similarity of every patch.
    #[pyo3(signature = (genes, spots_from=None, min_pcc=0.5, percentile=75.0, min_fraction=0.5, samples=vec![], exclude=vec![], model=None, threshold_percentile=90.0))]
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
        };
        let r = py.detach(|| vx::query_genes(&s, &q, &opts)).or_raise()?;
        Ok(PyQueryResult::new(r))
    }

    /// A profile query: gene values (or marker genes) -> similarity of every patch.
    #[pyo3(signature = (values=None, markers=None, counts=false, samples=vec![], exclude=vec![], model=None, threshold_percentile=90.0))]
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
        };
        let r = py
            .detach(|| vx::query_profile(&s, &profile, &opts))
            .or_raise()?;
        Ok(PyQueryResult::new(r))
    }

    /// The patches most similar to a stored patch (`sample`, `at`) or to an image file.
    #[pyo3(signature = (sample=None, at=None, image=None, top=10, within=vec![], exclude_self=false, model=None, exact=false, target="3d"))]
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
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let target = match target {
            "3d" => vx::Modality::Image3d,
            "2d" => vx::Modality::Image2d,
            t => return Err(err(vx::Error::arg("target", format!("'{t}' is not 3d or 2d")))),
        };
        let source = match (sample, at, image) {
            (Some(sample), Some(at), None) => vx::PatchSource::Stored { sample, at },
            (None, None, Some(img)) => vx::PatchSource::Image(img),
            _ => {
                return Err(err(vx::Error::arg(
                    "sample",
                    "give a sample and a patch origin `at`, or an image",
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
        serialised(py, &r)
    }

    /// Predicted expression of every patch of a sample (predictor head, or `knn`
    /// nearest spots of the `reference` samples).
    #[pyo3(signature = (sample, knn=None, reference=vec![]))]
    fn predict(
        &self,
        py: Python<'_>,
        sample: String,
        knn: Option<usize>,
        reference: Vec<String>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let method = method(knn, reference);
        let p = py.detach(|| vx::predict(&s, &sample, &method)).or_raise()?;
        predictions_dict(py, &p)
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
        let (vol, shape) = py.detach(|| d.label_volume(downsample.max(1)));
        let out = pyo3::types::PyDict::new(py);
        out.set_item("sample", &sample)?;
        out.set_item("k", d.record.k)?;
        out.set_item("inertia", d.record.inertia)?;
        out.set_item("seconds", d.seconds)?;
        out.set_item("ids", array(py, d.record.ids.clone(), &[d.record.ids.len()])?)?;
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
    #[pyo3(signature = (sample, spots=None, genes=vec![], markers=vec![], smoothed=false, segmentation=None, knn=None, reference=vec![]))]
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
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let method = method(knn, reference);
        let opts = vx::EvalOptions {
            spots,
            genes,
            markers,
            smoothed,
            segmentation,
        };
        let ev = py
            .detach(|| {
                let pred = vx::predict(&s, &sample, &method)?;
                vx::evaluate_sample(&s, &pred, &opts)
            })
            .or_raise()?;
        serialised(py, &ev.summary())
    }

    /// Import a float32 array (N x D, C-contiguous; borrowed, not copied) into a raw
    /// collection (created when missing).
    #[pyo3(signature = (collection, vectors, metric="l2", batch_size=10_000, sample=None, m=None, ef_construction=None))]
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
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = import_options(collection, metric, batch_size, sample, m, ef_construction)?;
        let dim = vectors.shape()[1];
        let values = vectors.as_slice().map_err(|_| {
            err(vx::Error::bad_input(
                "vectors",
                "the array is not C-contiguous; pass numpy.ascontiguousarray(a)",
            ))
        })?;
        let r = py
            .detach(|| vx::import_array(&s, values, dim, &opts, &mut |_| {}))
            .or_raise()?;
        serialised(py, &r)
    }

    /// Import an NPY or Parquet vector file (resumable, like `vortexdb vectors import`).
    #[pyo3(signature = (collection, path, metric="l2", batch_size=10_000, sample=None, m=None, ef_construction=None, column="vector"))]
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
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = import_options(collection, metric, batch_size, sample, m, ef_construction)?;
        opts.column = column.into();
        let r = py
            .detach(|| vx::import_vectors(&s, &path, &opts, &mut |_| {}))
            .or_raise()?;
        serialised(py, &r)
    }

    /// k nearest neighbours of every row of `queries` (float32 N x D, borrowed; `ef`
    /// defaults to the library's, as the CLI's `--ef`):
    /// (ids int64 N x k, -1 padded; distances float32 N x k, NaN padded).
    #[pyo3(signature = (collection, queries, k=10, ef=None, exact=false, samples=None, exclude=vec![], region=None))]
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
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let s = self.get()?;
        let region = region.map(|r| r.parse::<vx::Region>()).transpose().or_raise()?;
        let opts = vx::SearchOptions {
            k,
            ef: ef.unwrap_or(vx::SearchOptions::default().ef),
            exact,
            filter: vx::Filter {
                samples,
                exclude_samples: exclude,
                region,
            },
        };
        let dim = queries.shape()[1];
        let values = queries.as_slice().map_err(|_| {
            err(vx::Error::bad_input(
                "queries",
                "the array is not C-contiguous; pass numpy.ascontiguousarray(a)",
            ))
        })?;
        let n = queries.shape()[0];
        let (ids, dist) = py
            .detach(|| {
                let info = s.collection(&collection)?;
                if dim != info.dim {
                    return Err(vx::Error::DimensionMismatch {
                        path: "queries".into(),
                        what: "queries".into(),
                        found: dim,
                        against: format!("collection '{}'", info.name),
                        expected: info.dim,
                    });
                }
                let rows: Vec<&[f32]> = if dim == 0 {
                    vec![&[][..]; n]
                } else {
                    values.chunks_exact(dim).collect()
                };
                let hits = s.search(&collection, &rows, &opts)?;
                let mut ids = vec![-1i64; n * k];
                let mut dist = vec![f32::NAN; n * k];
                for (i, h) in hits.iter().enumerate() {
                    for (j, x) in h.iter().enumerate().take(k) {
                        ids[i * k + j] = x.id as i64;
                        dist[i * k + j] = x.distance;
                    }
                }
                Ok::<_, vx::Error>((ids, dist))
            })
            .or_raise()?;
        Ok((array(py, ids, &[n, k])?, array(py, dist, &[n, k])?))
    }

    /// The spots of a sample: per spot its id, positions and QC, and the normalised and
    /// smoothed panel expression of the kept spots (NaN rows for the others).
    fn spots(&self, py: Python<'_>, sample: String) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let (set, spots) = py
            .detach(|| {
                let set = s.require_spot_set("sample", &sample)?;
                Ok::<_, vx::Error>((set.clone(), s.spots(&sample)?))
            })
            .or_raise()?;
        results::spots_dict(py, &set, &spots)
    }
}

impl PyStore {
    fn model(&self, py: Python<'_>, name: &Option<String>) -> PyResult<vx::Model> {
        let s = self.get()?;
        py.detach(|| vx::resolve_model(&s, name.as_deref())).or_raise()
    }
}

/// Settings of a spot ingest.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SpotArgs {
    sample: String,
    model: Option<String>,
    min_genes: usize,
    max_mito: f64,
    smooth_k: usize,
    hvg: usize,
    top: usize,
    affine: Option<[f64; 6]>,
    z: f64,
    batch: usize,
    device: String,
    threads: usize,
}

impl SpotArgs {
    fn options(&self) -> PyResult<vx::SpotOptions> {
        let mut o = vx::SpotOptions::new(&self.sample);
        o.qc.min_genes = self.min_genes;
        o.qc.max_mito_fraction = self.max_mito;
        o.smooth_k = self.smooth_k;
        o.n_hvg = self.hvg;
        o.n_top = self.top;
        o.z = self.z;
        o.batch = self.batch.max(1);
        if let Some(a) = self.affine {
            o.affine = a;
        }
        o.run = run_options(&self.device, self.threads)?;
        Ok(o)
    }
}

fn method(knn: Option<usize>, reference: Vec<String>) -> vx::Method {
    match knn {
        None => vx::Method::Predictor,
        Some(k) => vx::Method::Knn { k, reference },
    }
}

fn import_options(
    collection: String,
    metric: &str,
    batch_size: usize,
    sample: Option<String>,
    m: Option<usize>,
    ef_construction: Option<usize>,
) -> PyResult<vx::ImportOptions> {
    let mut o = vx::ImportOptions::new(&collection);
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

/// The ONNX Runtime library loaded by this process, once a model has run.
#[pyfunction]
fn loaded_runtime_library() -> Option<String> {
    vx::loaded_runtime_library().map(|p| p.display().to_string())
}

/// Generate the synthetic phantom (volume, H&E planes, spots, labels) in `out`.
#[pyfunction]
#[pyo3(signature = (out, seed=7, shape=(32, 160, 160)))]
fn phantom(py: Python<'_>, out: PathBuf, seed: u64, shape: (usize, usize, usize)) -> PyResult<Py<PyAny>> {
    let params = vx::PhantomParams::new(seed, [shape.0, shape.1, shape.2]);
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
    m.add_function(wrap_pyfunction!(loaded_runtime_library, m)?)?;
    m.add_function(wrap_pyfunction!(phantom, m)?)?;
    m.add("ORT_VERSION", vx::ORT_VERSION)?;
    m.add("FORMAT_VERSION", vx::FORMAT_VERSION)?;
    Ok(())
}
