//! Ingest of serial sections (2.5D) and single images (2D) as one call each: the files
//! checked, stacked (registered when transforms are given) and streamed through
//! [`super::ingest_volume`] with the right sample kind, encoder, voxel size and tissue
//! side.

use std::path::{Path, PathBuf};

use super::{Encoder, IngestOptions, IngestReport, Progress, ingest_volume};
use crate::catalog::SampleKind;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::model::{MANIFEST_FILE, Model};
use crate::volume::grid::Polarity;
use crate::volume::register::{Registered, Transforms};
use crate::volume::{ImageStack, IntensityRange, VolumeSource};

/// Serial sections of one block, in order.
#[derive(Debug, Clone)]
pub struct Sections {
    /// The section images (PNG/JPEG/TIFF), top to bottom.
    pub images: Vec<PathBuf>,
    /// Distance between consecutive sections, micrometres.
    pub spacing_um: f64,
    /// In-plane pixel size, micrometres (of the frame when `transforms` is given).
    pub um_per_px: f64,
    /// Affines registering each image into a common frame (JSON, see docs/FORMATS.md);
    /// `None`: the images are registered already (same size).
    pub transforms: Option<PathBuf>,
    /// Raw values mapped to [0, 1] (`None`: the dtype's range).
    pub intensity: IntensityRange,
}

fn positive(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::arg(name, format!("{v} must be positive")));
    }
    Ok(())
}

fn existing(f: &Path) -> Result<()> {
    if !f.is_file() {
        return Err(Error::bad_file(f, "no such image file"));
    }
    Ok(())
}

/// Stack serial sections into a 2.5D volume and ingest it (sample kind
/// [`SampleKind::Sections`]; `opts.polarity` as given, see [`default_polarity`]).
pub fn ingest_sections(
    store: &Store,
    model: &Model,
    s: &Sections,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<IngestReport> {
    crate::volume::check_range(s.intensity)?;
    positive("spacing_um", s.spacing_um)?;
    positive("um_per_px", s.um_per_px)?;
    for f in &s.images {
        existing(f)?;
    }
    let name = format!("{} sections", s.images.len());
    let src: Box<dyn VolumeSource> = match &s.transforms {
        None => Box::new(ImageStack::open_files(s.images.clone(), name, s.intensity)?),
        Some(path) => {
            let t = Transforms::read(path, s.images.len())?;
            let stack = ImageStack::open_files_any_size(s.images.clone(), name, s.intensity)?;
            Box::new(Registered::new(stack, &t, path))
        }
    };
    let opts = IngestOptions {
        kind: SampleKind::Sections,
        encoder: Encoder::Image3d,
        voxel_um: Some([s.spacing_um, s.um_per_px, s.um_per_px]),
        ..opts.clone()
    };
    ingest_volume(store, model, src, &opts, on_progress)
}

/// Ingest one H&E image through the 2D encoder (sample kind [`SampleKind::Image`],
/// collection `<model>:2d`).
pub fn ingest_image(
    store: &Store,
    model: &Model,
    image: &Path,
    um_per_px: f64,
    intensity: IntensityRange,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<IngestReport> {
    crate::volume::check_range(intensity)?;
    positive("um_per_px", um_per_px)?;
    existing(image)?;
    let src = ImageStack::open_files(
        vec![image.to_path_buf()],
        image.display().to_string(),
        intensity,
    )?;
    // One image: its z size is the model's, so nothing is resampled along z.
    let z = Encoder::Image2d.patch(&model.manifest)?.slice_um();
    let opts = IngestOptions {
        kind: SampleKind::Image,
        encoder: Encoder::Image2d,
        voxel_um: Some([z, um_per_px, um_per_px]),
        ..opts.clone()
    };
    ingest_volume(store, model, Box::new(src), &opts, on_progress)
}

/// The tissue side a source kind defaults to: bright in microCT volumes, dark in H&E.
pub fn default_polarity(kind: SampleKind) -> Polarity {
    match kind {
        SampleKind::Volume => Polarity::Bright,
        _ => Polarity::Dark,
    }
}

/// The model to ingest with: a registered model by name, a model directory (registered
/// first when it holds a manifest), or the store's only model when `None`.
pub fn resolve_model(store: &Store, model: Option<&str>) -> Result<Model> {
    match model {
        Some(m) if Path::new(m).join(MANIFEST_FILE).is_file() => {
            let rec = store.add_model(Path::new(m))?;
            store.load_model(Some(&rec.name))
        }
        other => store.load_model(other),
    }
}
