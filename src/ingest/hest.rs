//! A HEST-1k sample in one call: `wsis/<id>.tif` (the whole-slide image, a pyramidal
//! TIFF) through the 2D encoder at the pixel size of `metadata/<id>.json`, and
//! `st/<id>.h5ad` (the spots, positions in full-resolution slide pixels) into the same
//! sample, placed on the image's patches by the scale between the slide's pixels and
//! the model's.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::spots::{SpotOptions, SpotReport, ingest_spots};
use super::{Encoder, IngestOptions, IngestReport, Progress, ingest_image};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::spots::{SpotFormat, SpotPaths, read_spots};

/// Where a HEST-1k sample's files are (`root/wsis/<id>.tif`, `root/st/<id>.h5ad`,
/// `root/metadata/<id>.json`) and what its metadata says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HestSample {
    /// Sample id in HEST (`TENX95`, `MEND139`, ...).
    pub id: String,
    /// The whole-slide image.
    pub wsi: PathBuf,
    /// The spots.
    pub st: PathBuf,
    /// The metadata JSON.
    pub metadata: PathBuf,
    /// Full-resolution pixel size in micrometres (`pixel_size_um_estimated`, else
    /// `pixel_size_um_embedded`).
    pub um_per_px: f64,
    /// Spot diameter in micrometres (`spot_diameter`), when given.
    pub spot_diameter_um: Option<f64>,
}

/// What [`ingest_hest`] did: the image's ingest and the spots'.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HestReport {
    /// The sample's files and metadata.
    pub hest: HestSample,
    /// The whole-slide image's ingest.
    pub image: IngestReport,
    /// The spots' ingest.
    pub spots: SpotReport,
}

impl HestSample {
    /// Find sample `id` under `root` and read its metadata; a missing file or a
    /// metadata JSON without a pixel size is an error naming the file.
    pub fn open(root: &Path, id: &str) -> Result<HestSample> {
        crate::names::valid_id(id, "id")?;
        let file = |dir: &str, ext: &str| root.join(dir).join(format!("{id}.{ext}"));
        let (wsi, st, metadata) = (
            file("wsis", "tif"),
            file("st", "h5ad"),
            file("metadata", "json"),
        );
        for f in [&wsi, &st, &metadata] {
            if !f.is_file() {
                return Err(Error::bad_file(
                    f,
                    format!(
                        "no such file: a HEST sample '{id}' has wsis/{id}.tif, st/{id}.h5ad and metadata/{id}.json"
                    ),
                ));
            }
        }
        let text = std::fs::read_to_string(&metadata).map_err(|e| Error::io(&metadata, e))?;
        let meta: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&metadata, format!("not JSON: {e}")))?;
        let num = |k: &str| meta.get(k).and_then(serde_json::Value::as_f64);
        let um = num("pixel_size_um_estimated")
            .or_else(|| num("pixel_size_um_embedded"))
            .filter(|u| u.is_finite() && *u > 0.0)
            .ok_or_else(|| {
                Error::bad_file(
                    &metadata,
                    "no positive pixel_size_um_estimated or pixel_size_um_embedded",
                )
            })?;
        Ok(HestSample {
            id: id.into(),
            wsi,
            st,
            metadata,
            um_per_px: um,
            spot_diameter_um: num("spot_diameter").filter(|d| d.is_finite() && *d > 0.0),
        })
    }
}

/// Ingest a HEST sample as sample `opts.sample`: the slide at the level nearest the
/// model's pixel size (`level` to choose another), then its spots (read from `X`, or as
/// `spots.h5ad` says) with positions scaled from slide pixels to the image's model
/// pixels. `spots.sample` is replaced by the image's sample id. If the spots fail
/// (QC, genes), the slide's sample stays complete and a re-run resumes at the spots.
#[allow(clippy::too_many_arguments)]
pub fn ingest_hest(
    store: &Store,
    model: &Model,
    hest: &HestSample,
    level: Option<usize>,
    opts: &IngestOptions,
    spots: &SpotOptions,
    spot_paths: &SpotPaths,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<HestReport> {
    // Both inputs are read and checked before anything is written.
    let mut table = read_spots(&hest.st, SpotFormat::H5ad, spot_paths)?;
    if table.spot_diameter_px.is_none() {
        table.spot_diameter_px = hest.spot_diameter_um.map(|d| d / hest.um_per_px);
    }
    let image = ingest_image(
        store,
        model,
        &hest.wsi,
        Some(hest.um_per_px),
        level,
        None,
        opts,
        on_progress,
    )?;
    let model_um = Encoder::Image2d.patch(&model.manifest)?.um_per_px;
    let s = hest.um_per_px / model_um;
    let spot_opts = SpotOptions {
        sample: opts.sample.clone(),
        affine: [s, 0.0, 0.0, 0.0, s, 0.0],
        ..spots.clone()
    };
    let spots = ingest_spots(store, model, table, &spot_opts)?;
    Ok(HestReport {
        hest: hest.clone(),
        image,
        spots,
    })
}

impl std::fmt::Display for HestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "HEST sample {} ({} um/px from {}):",
            self.hest.id,
            self.hest.um_per_px,
            self.hest.metadata.display()
        )?;
        writeln!(f, "{}", self.image)?;
        write!(f, "{}", self.spots)
    }
}
