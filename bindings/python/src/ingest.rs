//! Ingest: volumes, serial sections and images (paths or NumPy arrays read in place)
//! and spots (files or the arrays of an AnnData object).

use std::ops::ControlFlow;
use std::path::PathBuf;

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArray};
use pyo3::prelude::*;
use vortexdb as vx;

use crate::PyStore;
use crate::convert::{OrRaise, array_bytes, err, serialised};

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
    quantization: Option<String>,
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
            quantization: self
                .quantization
                .as_deref()
                .map(vx::Quantization::from_name)
                .transpose()
                .or_raise()?,
            ..vx::IngestOptions::default()
        })
    }
}

pub(crate) fn run_options(device: &str, threads: usize) -> PyResult<vx::RunOptions> {
    Ok(vx::RunOptions {
        device: device.parse().or_raise()?,
        threads,
    })
}

/// Run an ingest with the GIL released; between durable batches the progress callback
/// (if any) is called and Ctrl-C is honoured (the ingest stops there, resumable).
fn run_ingest<R: serde::Serialize + Send>(
    py: Python<'_>,
    progress: &Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(vx::Progress) -> ControlFlow<()>) -> vx::Result<R> + Send,
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
    plane: Option<PathBuf>,
    transforms: Option<PathBuf>,
    section: Option<usize>,
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
        o.batch = self.batch;
        if let Some(a) = self.affine {
            o.affine = a;
        }
        if let Some(p) = &self.plane {
            o.plane = Some(vx::PlaneFile::read(p).or_raise()?.matrix);
        }
        match (&self.transforms, self.section) {
            (Some(p), Some(i)) => o.section = Some((vx::Transforms::read_any(p).or_raise()?, i)),
            (None, None) => {}
            _ => {
                return Err::<vx::SpotOptions, _>(vx::Error::arg(
                    "section",
                    "transforms and section go together (the section's index in the transforms file)",
                ))
                .or_raise();
            }
        }
        o.run = run_options(&self.device, self.threads)?;
        Ok(o)
    }
}

#[pymethods]
impl PyStore {
    /// Ingest a volume from a path (NPY, TIFF, OME-Zarr at `level` or the level nearest
    /// the model's voxel size, a slice directory) or a NumPy array.
    #[pyo3(signature = (args, path=None, data=None, um_per_voxel=None, level=None))]
    fn ingest_volume(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        path: Option<PathBuf>,
        data: Option<Bound<'_, PyUntypedArray>>,
        um_per_voxel: Option<[f64; 3]>,
        level: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = args.options(vx::SampleKind::Volume)?;
        opts.voxel_um = um_per_voxel;
        let arr = data
            .as_ref()
            .map(|a| array_bytes(a, "volume"))
            .transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (path, arr) {
            (Some(p), None) => run_ingest(py, &args.progress, |cb| {
                let src = vx::open_volume_for(&p, range, &model, level, um_per_voxel)?;
                vx::ingest_volume(&s, &model, src, &opts, cb)
            }),
            (None, Some((bytes, shape, dtype))) => run_ingest(py, &args.progress, |cb| {
                let src = vx::ArrayVolume::new(bytes, &shape, dtype, "<array>", range)?;
                vx::ingest_volume(&s, &model, Box::new(src), &opts, cb)
            }),
            _ => Err(err(vx::Error::arg(
                "volume",
                "give a path or an array (exactly one)",
            ))),
        }
    }

    /// Ingest serial sections: image paths (optionally with a transforms file; pyramidal
    /// TIFFs read at `level` or the level nearest the model) or a NumPy stack
    /// (sections, Y, X[, C]) already registered.
    #[pyo3(signature = (args, spacing_um, um_per_px=None, images=None, stack=None, transforms=None, level=None, stain_reference=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_sections(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        spacing_um: f64,
        um_per_px: Option<f64>,
        images: Option<Vec<PathBuf>>,
        stack: Option<Bound<'_, PyUntypedArray>>,
        transforms: Option<PathBuf>,
        level: Option<usize>,
        stain_reference: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = args.options(vx::SampleKind::Sections)?;
        opts.stain_reference = stain_reference;
        let arr = stack
            .as_ref()
            .map(|a| array_bytes(a, "sections"))
            .transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (images, arr) {
            (Some(images), None) => {
                let sec = vx::Sections {
                    images,
                    spacing_um,
                    um_per_px,
                    level,
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
                    let um_per_px = um_per_px.ok_or_else(|| {
                        vx::Error::arg(
                            "um_per_px",
                            "an array stack records no pixel size; give um_per_px",
                        )
                    })?;
                    vx::ingest_section_stack(
                        &s,
                        &model,
                        Box::new(src),
                        spacing_um,
                        um_per_px,
                        &opts,
                        cb,
                    )
                })
            }
            _ => Err(err(vx::Error::arg(
                "images",
                "give image paths or an array stack (exactly one)",
            ))),
        }
    }

    /// Ingest one H&E image (a path or a NumPy array (Y, X[, C])) through the 2D encoder.
    #[pyo3(signature = (args, um_per_px=None, path=None, data=None, level=None, stain_reference=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_image(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        um_per_px: Option<f64>,
        path: Option<PathBuf>,
        data: Option<Bound<'_, PyUntypedArray>>,
        level: Option<usize>,
        stain_reference: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let mut opts = args.options(vx::SampleKind::Image)?;
        opts.stain_reference = stain_reference;
        let arr = data.as_ref().map(|a| array_bytes(a, "image")).transpose()?;
        let model = self.model(py, &args.model)?;
        let range = args.intensity_range;
        match (path, arr) {
            (Some(p), None) => run_ingest(py, &args.progress, |cb| {
                vx::ingest_image(&s, &model, &p, um_per_px, level, range, &opts, cb)
            }),
            (None, Some((bytes, mut shape, dtype))) => {
                if !(2..=3).contains(&shape.len()) {
                    return Err(err(vx::Error::bad_input(
                        "image",
                        format!("shape {shape:?} is not an image (Y, X) or (Y, X, C)"),
                    )));
                }
                shape.insert(0, 1);
                let um_per_px = um_per_px.ok_or_else(|| {
                    err(vx::Error::arg(
                        "um_per_px",
                        "an array records no pixel size: give um_per_px",
                    ))
                })?;
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

    /// Ingest a HEST-1k sample (`root/wsis/<id>.tif`, `root/st/<id>.h5ad`,
    /// `root/metadata/<id>.json`; `id` defaults to the sample id) as `ingest hest` does.
    #[pyo3(signature = (args, root, id=None, level=None, layer=None, raw=false, min_genes=25, max_mito=0.2))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_hest(
        &self,
        py: Python<'_>,
        args: IngestArgs,
        root: PathBuf,
        id: Option<String>,
        level: Option<usize>,
        layer: Option<String>,
        raw: bool,
        min_genes: usize,
        max_mito: f64,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = args.options(vx::SampleKind::Image)?;
        let hest =
            vx::HestSample::open(&root, id.as_deref().unwrap_or(&opts.sample)).map_err(err)?;
        let model = self.model(py, &args.model)?;
        let mut spots = vx::SpotOptions::new(&opts.sample);
        spots.qc.min_genes = min_genes;
        spots.qc.max_mito_fraction = max_mito;
        spots.run = opts.run.clone();
        let paths = vx::SpotPaths {
            positions: None,
            h5ad: vx::H5adOptions {
                layer,
                raw,
                spatial_key: None,
                library_id: None,
            },
        };
        run_ingest(py, &args.progress, |cb| {
            vx::ingest_hest(&s, &model, &hest, level, &opts, &spots, &paths, cb)
        })
    }

    /// Ingest spots from files (her2st, Visium, AnnData `.h5ad`, Parquet); `layer`,
    /// `raw`, `spatial_key` and `library_id` choose the parts of an `.h5ad` file.
    #[pyo3(signature = (options, path, format=None, positions=None, layer=None, raw=false, spatial_key=None, library_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_spots_file(
        &self,
        py: Python<'_>,
        options: SpotArgs,
        path: PathBuf,
        format: Option<String>,
        positions: Option<PathBuf>,
        layer: Option<String>,
        raw: bool,
        spatial_key: Option<String>,
        library_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let s = self.get()?;
        let opts = options.options()?;
        let model = self.model(py, &options.model)?;
        let paths = vx::SpotPaths {
            positions,
            h5ad: vx::H5adOptions {
                layer,
                raw,
                spatial_key,
                library_id,
            },
        };
        let report = py
            .detach(|| {
                let format = vx::SpotFormat::named_or_detected(format.as_deref(), &path)?;
                let table = vx::read_spots(&path, format, &paths)?;
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
                return Err(bad(format!(
                    "{what} must have 2 columns (x, y), not {}",
                    v.ncols()
                )));
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
            array: array_xy
                .as_ref()
                .map(|a| pairs(a, "array positions"))
                .transpose()?,
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
}
