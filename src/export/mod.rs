//! Every file the library writes on request: query outputs (patch table, triage CSV,
//! heatmap NPY/TIFF, overlay PNGs, `query.json`), predictions (Parquet, per-gene
//! volumes), domains (label volume, CSV, JSON, PNG slices) and evaluations (JSON,
//! Markdown, PNG charts), the spots of a sample (CSV, NPY) and, on request, volumes as
//! OME-Zarr images (heatmaps, predicted genes, domains as NGFF labels), and a sample as
//! a SpatialData Zarr store. Library calls compute; these functions are the only ones
//! that write outside a store. Each returns the paths it wrote.

mod analysis;
mod anndata_zarr;
mod ome_zarr;
mod query;
mod spatialdata;
mod spots;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};

use crate::error::{Error, Result};

pub use crate::query::heatmap::write_tiff;
pub use crate::vecio::{write_f32_array_npy, write_u8_array_npy};
pub use analysis::{write_domains, write_eval, write_gene_volumes, write_predictions_parquet};
pub use ome_zarr::{write_ome_zarr, write_ome_zarr_labels};
pub use query::{QueryExport, write_query};
pub use spatialdata::{SpatialDataExport, SpatialDataOptions, write_spatialdata};
pub use spots::{SpotsExport, write_spots};

/// Write `img` as a PNG.
pub fn write_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path)
        .map_err(|e| Error::bad_file(path, e.to_string()))
}

/// Write `value` as pretty-printed JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::bad_file(path, e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Write named Arrow columns as one Parquet file (parent directories created).
pub(crate) fn write_parquet(path: &Path, cols: Vec<(String, ArrayRef)>) -> Result<()> {
    let err = |e: String| Error::bad_file(path, e);
    let batch = RecordBatch::try_from_iter(cols).map_err(|e| err(e.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None)
        .map_err(|e| err(e.to_string()))?;
    w.write(&batch).map_err(|e| err(e.to_string()))?;
    w.close().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// A column for [`write_parquet`].
pub(crate) fn col<A: arrow_array::Array + 'static>(name: &str, a: A) -> (String, ArrayRef) {
    (name.to_string(), Arc::new(a))
}
