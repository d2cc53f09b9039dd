//! Ingest of serial sections (2.5D) and single images (2D) as one call each: the files
//! checked, stacked (registered when transforms are given) and streamed through
//! [`super::ingest_volume`] with the right sample kind, encoder, voxel size and tissue
//! side.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::{Encoder, IngestOptions, IngestReport, Progress, ingest_located};
use crate::catalog::{SampleImages, SampleKind};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::model::{MANIFEST_FILE, Model};
use crate::register::{Registered, Transforms};
use crate::volume::grid::Polarity;
use crate::volume::{ImageStack, IntensityRange, LevelChoice, PyramidTiff, VolumeSource};

/// Serial sections of one block, in order.
#[derive(Debug, Clone)]
pub struct Sections {
    /// The section images (PNG/JPEG/TIFF), top to bottom.
    pub images: Vec<PathBuf>,
    /// Distance between consecutive sections, micrometres.
    pub spacing_um: f64,
    /// In-plane pixel size, micrometres, of the images (of a pyramidal TIFF's
    /// full-resolution level; `None`: the pixel size the TIFFs record, required for
    /// PNG / JPEG and TIFFs that record none).
    pub um_per_px: Option<f64>,
    /// Pyramidal TIFFs: the level read (0 = full resolution; `None`: the level whose
    /// pixel size is nearest the model's). Every section must end at one pixel size.
    pub level: Option<usize>,
    /// Affines registering each image (in pixels of the level read) into a common
    /// frame (JSON, see docs/FORMATS.md); `None`: the images are registered already
    /// (same size).
    pub transforms: Option<PathBuf>,
    /// Raw values mapped to [0, 1] (`None`: the dtype's range).
    pub intensity: IntensityRange,
}

/// Open the volume at `path` for ingest through `model`: an OME-Zarr image at `level`,
/// or by default at the level whose voxel size is nearest the model's; any other
/// format as [`crate::volume::open`] does (`level` must then be `None` or 0).
/// `voxel_um` is the full-resolution voxel size (z, y, x) in micrometres when the user
/// gives it (`--um-per-voxel`): it replaces the file's and chooses the level. An
/// OME-Zarr image whose axes name no unit needs it (its scales are not micrometres).
pub fn open_volume_for(
    path: &Path,
    range: IntensityRange,
    model: &Model,
    level: Option<usize>,
    voxel_um: Option<[f64; 3]>,
) -> Result<Box<dyn VolumeSource>> {
    if let Some(v) = voxel_um {
        for x in v {
            crate::limits::um_arg("um_per_voxel", x)?;
        }
    }
    if !crate::volume::is_zarr(path) {
        if level.is_some_and(|l| l != 0) {
            return Err(Error::arg(
                "level",
                format!(
                    "{}: only OME-Zarr images have resolution levels",
                    path.display()
                ),
            ));
        }
        return crate::volume::open(path, range);
    }
    let p = &model.manifest.patch;
    let want = [p.slice_um(), p.um_per_px, p.um_per_px];
    let choice = match (level, voxel_um) {
        (Some(i), _) => LevelChoice::Index(i),
        (None, Some(full_um)) => LevelChoice::NearestFrom { full_um, want },
        (None, None) => LevelChoice::Nearest(want),
    };
    let z = crate::volume::ZarrVolume::open(path, choice, range)?;
    if voxel_um.is_none() && !z.units_known() {
        return Err(Error::bad_file(
            path,
            "the multiscales axes name no unit, so the scales are not a voxel size: give \
             the full-resolution voxel size with --um-per-voxel Z,Y,X",
        ));
    }
    Ok(Box::new(z))
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

/// `f` made absolute against the working directory (symbolic links kept), as text for
/// the [`SampleImages`] record.
fn absolute(f: &Path) -> Result<String> {
    std::path::absolute(f)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| Error::io(f, e))
}

/// Where the image files of a sample are, for its record (the sample id is filled in
/// by [`ingest_located`]).
fn located(
    files: &[PathBuf],
    transforms: Option<&Path>,
    levels: Vec<Option<usize>>,
    um_per_px: f64,
) -> Result<SampleImages> {
    Ok(SampleImages {
        sample: String::new(),
        images: files.iter().map(|f| absolute(f)).collect::<Result<_>>()?,
        transforms: transforms.map(absolute).transpose()?,
        levels,
        um_per_px,
    })
}

/// Stack serial sections into a 2.5D volume and ingest it (sample kind
/// [`SampleKind::Sections`]; `opts.polarity` as given, see [`default_polarity`]).
/// Where the images are (absolute paths, transforms file, levels read, pixel size) is
/// recorded with the sample ([`Store::sample_images`]).
pub fn ingest_sections(
    store: &Store,
    model: &Model,
    s: &Sections,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    crate::volume::check_range(s.intensity)?;
    positive("spacing_um", s.spacing_um)?;
    if let Some(u) = s.um_per_px {
        positive("um_per_px", u)?;
    }
    for f in &s.images {
        existing(f)?;
    }
    let want = Encoder::Image3d.patch(&model.manifest)?.um_per_px;
    let (pyramids, um_per_px) = section_levels(s, want)?;
    let levels = pyramids
        .iter()
        .map(|p| p.as_ref().map(|p| p.level()))
        .collect();
    let images = located(&s.images, s.transforms.as_deref(), levels, um_per_px)?;
    let name = format!("{} sections", s.images.len());
    let (files, range) = (s.images.clone(), s.intensity);
    let src: Box<dyn VolumeSource + '_> = match &s.transforms {
        None => Box::new(ImageStack::open_levels(files, name, range, true, pyramids)?),
        Some(path) => {
            let t = Transforms::read(path, s.images.len())?;
            let stack = ImageStack::open_levels(files, name, range, false, pyramids)?;
            Box::new(Registered::new(stack, &t, path))
        }
    };
    section_stack(
        store,
        model,
        src,
        [s.spacing_um, um_per_px],
        opts,
        Some(images),
        on_progress,
    )
}

/// The pyramid level each section is read at (`None`: the file's one image: PNG, JPEG,
/// a single-level TIFF given a pixel size) and the pixel size they share; a pyramidal
/// TIFF is read at `s.level` or the level nearest `want` um/px.
fn section_levels(s: &Sections, want: f64) -> Result<(Vec<Option<PyramidTiff>>, f64)> {
    let choice = match s.level {
        Some(i) => LevelChoice::Index(i),
        None => LevelChoice::Nearest([want, want, want]),
    };
    let mut out = Vec::with_capacity(s.images.len());
    let mut shared: Option<(f64, &Path)> = None;
    for f in &s.images {
        let p = if crate::volume::is_tiff(f) {
            match (
                PyramidTiff::open(f, s.um_per_px, choice, s.intensity),
                s.um_per_px,
            ) {
                // A single-level TIFF given a pixel size reads as before (any TIFF the
                // image decoder takes).
                (Ok(p), Some(_)) if p.levels().len() == 1 => None,
                (Ok(p), _) => Some(p),
                (Err(_), Some(_)) if s.level.is_none_or(|l| l == 0) => None,
                (Err(e), _) => return Err(e),
            }
        } else {
            None
        };
        if p.is_none() && s.level.is_some_and(|l| l > 0) {
            return Err(Error::arg(
                "level",
                format!(
                    "{}: only pyramidal TIFFs have resolution levels",
                    f.display()
                ),
            ));
        }
        let um = match (&p, s.um_per_px) {
            (Some(p), _) => p.um_per_px(),
            (None, Some(u)) => u,
            (None, None) => {
                return Err(Error::arg(
                    "um_per_px",
                    format!(
                        "{}: PNG and JPEG images record no pixel size; give it with --um-per-px",
                        f.display()
                    ),
                ));
            }
        };
        match shared {
            None => shared = Some((um, f)),
            Some((u0, f0)) if (um / u0 - 1.0).abs() > 1e-3 => {
                return Err(Error::bad_file(
                    f,
                    format!(
                        "read at {um} um/px, but {} at {u0} um/px: sections must share one \
                         pixel size (choose one with --level, or give --um-per-px)",
                        f0.display()
                    ),
                ));
            }
            _ => {}
        }
        out.push(p);
    }
    let um = shared
        .map(|s| s.0)
        .ok_or_else(|| Error::arg("images", "no section images"))?;
    Ok((out, um))
}

/// Ingest serial sections already stacked (and registered) into one source, e.g. an
/// in-memory [`crate::volume::ArrayVolume`] of shape (sections, Y, X, C): sample kind
/// [`SampleKind::Sections`], 3D encoder, voxel `spacing_um` x `um_per_px`^2.
pub fn ingest_section_stack(
    store: &Store,
    model: &Model,
    stack: Box<dyn VolumeSource + '_>,
    spacing_um: f64,
    um_per_px: f64,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    let voxel = [spacing_um, um_per_px];
    section_stack(store, model, stack, voxel, opts, None, on_progress)
}

/// [`ingest_section_stack`] with `[spacing_um, um_per_px]` and, for sections read from
/// files, where they are.
fn section_stack(
    store: &Store,
    model: &Model,
    stack: Box<dyn VolumeSource + '_>,
    [spacing_um, um_per_px]: [f64; 2],
    opts: &IngestOptions,
    images: Option<SampleImages>,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    positive("spacing_um", spacing_um)?;
    positive("um_per_px", um_per_px)?;
    let opts = IngestOptions {
        kind: SampleKind::Sections,
        encoder: Encoder::Image3d,
        voxel_um: Some([spacing_um, um_per_px, um_per_px]),
        ..opts.clone()
    };
    ingest_located(store, model, stack, &opts, images, on_progress)
}

/// Ingest one H&E image through the 2D encoder (sample kind [`SampleKind::Image`],
/// collection `<model>:2d`). A TIFF (single-level, or a pyramidal whole-slide OME-TIFF /
/// SVS / tiled pyramid) is read at `level`, by default the level whose pixel size is
/// nearest the model's, with its pixel size from the file when `um_per_px` is `None`;
/// PNG and JPEG images record none, so `um_per_px` is required for them. Where the
/// image is (absolute path, level read, pixel size) is recorded with the sample
/// ([`Store::sample_images`]).
#[allow(clippy::too_many_arguments)]
pub fn ingest_image(
    store: &Store,
    model: &Model,
    image: &Path,
    um_per_px: Option<f64>,
    level: Option<usize>,
    intensity: IntensityRange,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    crate::volume::check_range(intensity)?;
    if let Some(u) = um_per_px {
        positive("um_per_px", u)?;
    }
    existing(image)?;
    if crate::volume::is_tiff(image) {
        let want = Encoder::Image2d.patch(&model.manifest)?.um_per_px;
        let choice = match level {
            Some(i) => LevelChoice::Index(i),
            None => LevelChoice::Nearest([want, want, want]),
        };
        let src = PyramidTiff::open(image, um_per_px, choice, intensity)?;
        let um = src.um_per_px();
        let at = located(&[image.to_path_buf()], None, vec![Some(src.level())], um)?;
        return image_source(store, model, Box::new(src), um, opts, Some(at), on_progress);
    }
    if level.is_some_and(|l| l > 0) {
        return Err(Error::arg(
            "level",
            format!(
                "{}: only TIFF images have resolution levels",
                image.display()
            ),
        ));
    }
    let Some(um_per_px) = um_per_px else {
        return Err(Error::arg(
            "um_per_px",
            format!(
                "{}: PNG and JPEG images record no pixel size; give it with --um-per-px",
                image.display()
            ),
        ));
    };
    let file = vec![image.to_path_buf()];
    let at = located(&file, None, vec![None], um_per_px)?;
    let src = ImageStack::open_files(file, image.display().to_string(), intensity)?;
    let src = Box::new(src);
    image_source(store, model, src, um_per_px, opts, Some(at), on_progress)
}

/// Ingest one image given as a source of one slice (an in-memory
/// [`crate::volume::ArrayVolume`] of shape (1, Y, X, C)) through the 2D encoder.
pub fn ingest_image_source(
    store: &Store,
    model: &Model,
    image: Box<dyn VolumeSource + '_>,
    um_per_px: f64,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    image_source(store, model, image, um_per_px, opts, None, on_progress)
}

/// [`ingest_image_source`] and, for an image read from a file, where it is.
fn image_source(
    store: &Store,
    model: &Model,
    image: Box<dyn VolumeSource + '_>,
    um_per_px: f64,
    opts: &IngestOptions,
    images: Option<SampleImages>,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    positive("um_per_px", um_per_px)?;
    if image.info().shape[0] != 1 {
        return Err(Error::bad_input(
            &image.info().source,
            format!(
                "an image has one plane; this source has {} (ingest it as sections)",
                image.info().shape[0]
            ),
        ));
    }
    // One image: its z size is the model's, so nothing is resampled along z.
    let z = Encoder::Image2d.patch(&model.manifest)?.slice_um();
    let opts = IngestOptions {
        kind: SampleKind::Image,
        encoder: Encoder::Image2d,
        voxel_um: Some([z, um_per_px, um_per_px]),
        ..opts.clone()
    };
    ingest_located(store, model, image, &opts, images, on_progress)
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

/// The image data a sample was ingested from, opened from where it was recorded
/// ([`Store::sample_images`]) as the ingest opened it: serial sections stacked in
/// their order (warped into one frame when a transforms file was given) or the one
/// image, each file at the level it was read. No intensity window and no stain
/// normalisation are applied (RGB H&E reads as its 8-bit values over 255). Fails
/// with [`Error::UnknownSample`] for an unknown sample and [`Error::NothingSelected`]
/// when the sample records no image files (volumes: their `source` path; arrays).
pub fn open_sample_images(store: &Store, sample: &str) -> Result<Box<dyn VolumeSource>> {
    let rec = store.require_sample(sample)?;
    let Some(at) = store.sample_images(sample)? else {
        return Err(Error::NothingSelected {
            stage: "sample_images",
            message: format!(
                "sample '{sample}' records no image files (ingested from {}); only sections \
                 and images ingested from files do",
                rec.source
            ),
        });
    };
    let files: Vec<PathBuf> = at.images.iter().map(PathBuf::from).collect();
    for f in &files {
        existing(f)?;
    }
    let mut pyramids = Vec::with_capacity(files.len());
    for (f, level) in files.iter().zip(&at.levels) {
        pyramids.push(match level {
            Some(l) => Some(PyramidTiff::open(f, None, LevelChoice::Index(*l), None)?),
            None => None,
        });
    }
    let name = format!("{} recorded images of '{sample}'", files.len());
    match &at.transforms {
        None => Ok(Box::new(ImageStack::open_levels(
            files, name, None, true, pyramids,
        )?)),
        Some(path) => {
            let path = PathBuf::from(path);
            let t = Transforms::read(&path, files.len())?;
            let stack = ImageStack::open_levels(files, name, None, false, pyramids)?;
            Ok(Box::new(Registered::new(stack, &t, &path)))
        }
    }
}

/// Slice `z` of [`open_sample_images`] as 8-bit values (rows, columns, channels),
/// averaged over `downsample` x `downsample` pixel blocks (1: full resolution), the
/// way a viewer shows a large section without holding it whole.
pub fn read_sample_image(
    store: &Store,
    sample: &str,
    z: usize,
    downsample: usize,
) -> Result<(Vec<u8>, [usize; 3])> {
    let f = downsample.max(1);
    let mut src = open_sample_images(store, sample)?;
    let depth = src.info().shape[0];
    if z >= depth {
        return Err(Error::arg(
            "z",
            format!("slice {z} of sample '{sample}', which has {depth}"),
        ));
    }
    let s = src.read_slice(z)?;
    let (h, w, c) = (s.h.div_ceil(f), s.w.div_ceil(f), s.channels);
    let mut out = vec![0u8; h * w * c];
    for ch in 0..c {
        let plane = &s.data[ch * s.h * s.w..(ch + 1) * s.h * s.w];
        for y in 0..h {
            for x in 0..w {
                let (mut sum, mut n) = (0f32, 0f32);
                for yy in y * f..((y + 1) * f).min(s.h) {
                    for xx in x * f..((x + 1) * f).min(s.w) {
                        sum += plane[yy * s.w + xx];
                        n += 1.0;
                    }
                }
                out[(y * w + x) * c + ch] = (sum / n * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok((out, [h, w, c]))
}
