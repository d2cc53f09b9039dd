//! `vortexdb ingest volume|sections|image|spots|hest`: a 3D volume, a 2.5D stack of
//! serial sections or one image through the model's image encoder, a sample's spot
//! expression through its gene encoder, or a HEST-1k sample's slide and spots (see the
//! library's `ingest_*` calls).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{RunArgs, floats};
use super::{emit, flush_warnings};
use vortexdb::{
    H5adOptions, HestSample, IngestOptions, IntensityRange, Progress, Result, SampleKind, Sections,
    SpotFormat, SpotOptions, SpotPaths, Store, default_polarity, ingest_hest, ingest_image,
    ingest_sections, ingest_spots, ingest_volume, is_zarr, open_volume, open_volume_for,
    read_spots, resolve_model,
};

/// Subcommands of `ingest`.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Embed a 3D volume (.npy, multi-page .tif, or a directory of slice images).
    Volume(VolumeArgs),
    /// Embed serial H&E sections stacked into a 2.5D volume.
    Sections(SectionsArgs),
    /// Embed one 2D H&E image with the model's 2D encoder (collection `<model>:2d`), the
    /// target of 3D -> 2D retrieval (`query patch --target 2d`).
    Image(ImageArgs),
    /// Read spot expression (her2st, Visium MTX/.h5, AnnData .h5ad, Parquet), QC, normalise, and embed
    /// the kept spots with the model's gene encoder.
    Spots(SpotsArgs),
    /// A HEST-1k sample in one command: its whole-slide image (wsis/ID.tif) at the
    /// metadata's pixel size through the 2D encoder, and its spots (st/ID.h5ad) into
    /// the same sample.
    Hest(HestArgs),
}

/// Arguments of `ingest hest`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct HestArgs {
    #[command(flatten)] common: CommonArgs,
    /// The HEST directory (holding wsis/, st/, metadata/).
    pub root: PathBuf,
    /// The HEST sample id (default: the --sample id).
    #[arg(long)] pub id: Option<String>,
    /// The slide's pyramid level to read (default: the level nearest the model's
    /// pixel size).
    #[arg(long)] pub level: Option<usize>,
    /// Raw counts in this layer of the .h5ad (`layers/NAME`) instead of X.
    #[arg(long)] pub layer: Option<String>,
    /// Raw counts in `raw/X` of the .h5ad instead of X.
    #[arg(long)] pub raw: bool,
    /// Spot QC: minimum number of detected genes per spot.
    #[arg(long, default_value_t = 25)] pub min_genes: usize,
    /// Spot QC: spots with this fraction of mitochondrial (MT-) counts or more are removed.
    #[arg(long, default_value_t = 0.2)] pub max_mito: f64,
}

fn run_hest(a: &HestArgs, json: bool) -> Result<()> {
    let c = &a.common;
    let hest = HestSample::open(&a.root, a.id.as_deref().unwrap_or(&c.sample))?;
    let store = Store::open(&c.store)?;
    let model = resolve_model(&store, c.model.as_deref())?;
    let opts = c.options(SampleKind::Image)?;
    let mut spots = SpotOptions::new(&c.sample);
    spots.qc.min_genes = a.min_genes;
    spots.qc.max_mito_fraction = a.max_mito;
    spots.run = opts.run.clone();
    let paths = SpotPaths {
        positions: None,
        h5ad: H5adOptions {
            layer: a.layer.clone(),
            raw: a.raw,
            spatial_key: None,
            library_id: None,
        },
    };
    let (bar, mut on_progress) = progress();
    let r = ingest_hest(
        &store,
        &model,
        &hest,
        a.level,
        &opts,
        &spots,
        &paths,
        &mut on_progress,
    );
    bar.finish_and_clear();
    flush_warnings(&store);
    emit(json, &r?);
    Ok(())
}

/// Arguments of `ingest spots`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct SpotsArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample id the spots belong to (the volume or section stack they were measured on).
    #[arg(long)] pub sample: String,
    /// her2st counts (.tsv.gz), a Visium output directory / matrix directory / .h5, an
    /// AnnData .h5ad file, or a Parquet table.
    pub path: PathBuf,
    /// her2st, visium, h5ad or parquet (default: guessed from PATH).
    #[arg(long)] pub format: Option<String>,
    /// Positions table when not in the standard place (her2st selection TSV, Visium
    /// tissue_positions CSV).
    #[arg(long)] pub positions: Option<PathBuf>,
    /// .h5ad: raw counts in this layer (`layers/NAME`) instead of X.
    #[arg(long)] pub layer: Option<String>,
    /// .h5ad: raw counts in `raw/X` (genes from `raw/var`) instead of X.
    #[arg(long)] pub raw: bool,
    /// .h5ad: the obsm entry holding spot positions in image pixels.
    #[arg(long, default_value = "spatial")] pub spatial_key: String,
    /// .h5ad: the uns["spatial"] library whose scale factors give the spot diameter
    /// (default: the only one).
    #[arg(long)] pub library_id: Option<String>,
    /// Registered model name, or a model directory (registered on the way). Default:
    /// the store's only model.
    #[arg(long)] pub model: Option<String>,
    /// QC: minimum number of detected genes per spot.
    #[arg(long, default_value_t = 25)] pub min_genes: usize,
    /// QC: spots with this fraction of mitochondrial (MT-) counts or more are removed.
    #[arg(long, default_value_t = 0.2)] pub max_mito: f64,
    /// Nearest spots averaged into the stored smoothed expression (1 = none).
    #[arg(long, default_value_t = 10)] pub smooth_k: usize,
    /// Highly variable genes to record for the sample (scanpy seurat flavour).
    #[arg(long, default_value_t = 1200)] pub hvg: usize,
    /// Most expressed genes to record for the sample.
    #[arg(long, default_value_t = 250)] pub top: usize,
    /// Affine a,b,c,d,e,f from image pixels (x, y) to the sample's voxels:
    /// x' = a x + b y + c, y' = d x + e y + f (default identity).
    #[arg(long)] pub affine: Option<String>,
    /// Section (z voxel) of the spots when the source gives none.
    #[arg(long, default_value_t = 0.0)] pub z: f64,
    /// Plane file (`register section-to-volume`): the section's pixels -> the volume's
    /// voxels, so spots of a tilted section get their 3D positions (replaces --affine, --z).
    #[arg(long, value_name = "JSON", conflicts_with_all = ["affine", "z"])] pub plane: Option<PathBuf>,
    /// Transforms file (`register sections`) of the stack these spots' section belongs
    /// to: their pixels go through that section's map (field included) into the frame
    /// (needs --section; replaces --affine, --z).
    #[arg(long, value_name = "JSON", requires = "section", conflicts_with_all = ["affine", "z", "plane"])] pub transforms: Option<PathBuf>,
    /// The section of --transforms the spots are on (0-based, the stacking order).
    #[arg(long, requires = "transforms")] pub section: Option<usize>,
    /// Spots per gene-encoder batch.
    #[arg(long, default_value_t = 256)] pub batch: usize,
    /// Execution provider and threads.
    #[command(flatten)] pub run: RunArgs,
}

fn run_spots(a: &SpotsArgs, json: bool) -> Result<()> {
    let format = SpotFormat::named_or_detected(a.format.as_deref(), &a.path)?;
    let mut opts = SpotOptions::new(&a.sample);
    opts.qc.min_genes = a.min_genes;
    opts.qc.max_mito_fraction = a.max_mito;
    opts.smooth_k = a.smooth_k;
    opts.n_hvg = a.hvg;
    opts.n_top = a.top;
    opts.z = a.z;
    opts.batch = a.batch;
    if let Some(s) = &a.affine {
        opts.affine = floats::<6>(s, "affine")?;
    }
    if let Some(p) = &a.plane {
        opts.plane = Some(vortexdb::PlaneFile::read(p)?.matrix);
    }
    if let (Some(p), Some(i)) = (&a.transforms, a.section) {
        opts.section = Some((vortexdb::Transforms::read_any(p)?, i));
    }
    opts.run = a.run.options()?;
    let store = Store::open(&a.store)?;
    let model = resolve_model(&store, a.model.as_deref())?;
    let paths = SpotPaths {
        positions: a.positions.clone(),
        h5ad: H5adOptions {
            layer: a.layer.clone(),
            raw: a.raw,
            spatial_key: Some(a.spatial_key.clone()),
            library_id: a.library_id.clone(),
        },
    };
    let table = read_spots(&a.path, format, &paths)?;
    let r = ingest_spots(&store, &model, table, &opts)?;
    flush_warnings(&store);
    emit(json, &r);
    Ok(())
}

/// Settings shared by both ingest commands.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample id (letters, digits, - _ .). Re-running with the same id and data resumes.
    #[arg(long)] pub sample: String,
    /// Registered model name, or a model directory (registered on the way). Default:
    /// the store's only model.
    #[arg(long)] pub model: Option<String>,
    /// Overlap between neighbouring patches on every axis.
    #[arg(long, default_value_t = 0.75)] pub overlap: f64,
    /// Minimum fraction of tissue voxels for a patch to be embedded.
    #[arg(long, default_value_t = 0.25)] pub min_tissue: f32,
    /// Which side of the Otsu threshold is tissue: bright, dark or all (no mask).
    /// Default: bright for volumes, dark for H&E sections.
    #[arg(long)] pub tissue: Option<String>,
    /// Intensity window LO,HI mapped to [0, 1] (default: the dtype's full range;
    /// float32 data are taken as already in [0, 1]).
    #[arg(long)] pub intensity_range: Option<String>,
    /// Patches per inference batch and per store transaction.
    #[arg(long, default_value_t = 64)] pub batch: usize,
    /// What the model's collection holds in RAM when this ingest creates it: f32,
    /// int8 (4x smaller) or binary (32x smaller); searches rescore on the f32 vectors.
    /// Default f32; on an existing collection a different value is refused.
    #[arg(long)] pub quantization: Option<String>,
    /// Execution provider and threads (CUDA needs a build with `--features cuda`).
    #[command(flatten)] pub run: RunArgs,
}

/// Arguments of `ingest volume`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(flatten)] common: CommonArgs,
    /// The volume: .npy (uint8/uint16/float32, Z,Y,X[,C]), multi-page .tif/.tiff, an
    /// OME-Zarr image directory (NGFF 0.4 / 0.5), or a directory of slice images
    /// (sorted by name).
    pub path: PathBuf,
    /// Voxel size Z,Y,X in micrometres of the full-resolution data (default: the
    /// OME-Zarr metadata's, else the model's, i.e. no resampling). For an OME-Zarr
    /// pyramid it is level 0's and chooses the level read; OME-Zarr axes that name no
    /// unit need it.
    #[arg(long)] pub um_per_voxel: Option<String>,
    /// OME-Zarr: the resolution level to read (0 = full resolution; default: the level
    /// whose voxel size is nearest the model's).
    #[arg(long)] pub level: Option<usize>,
}

/// Arguments of `ingest sections`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct SectionsArgs {
    #[command(flatten)] common: CommonArgs,
    /// Distance between consecutive sections in micrometres.
    #[arg(long)] pub spacing_um: f64,
    /// Pixel size of the section images in micrometres (of a pyramid's full-resolution
    /// level). Default for TIFF: the file's (OME-XML PhysicalSizeX or Aperio MPP);
    /// required for PNG/JPEG and TIFFs that record none.
    #[arg(long)] pub um_per_px: Option<f64>,
    /// Pyramidal TIFF sections: the level to read (0 = full resolution; default: the
    /// level whose pixel size is nearest the model's). Every section must end at one
    /// pixel size; --transforms are in pixels of the level read.
    #[arg(long)] pub level: Option<usize>,
    /// Registration: a JSON file with the frame size and one affine per image (image
    /// pixel -> frame pixel), `{"frame": [h, w], "sections": [[a, b, c, d, e, f], ...]}`;
    /// the images may then differ in size and orientation. Without it the images must
    /// be registered already (all of one size).
    #[arg(long, value_name = "JSON")] pub transforms: Option<PathBuf>,
    /// Stain-normalise every section to the stain of this reference H&E image (PNG,
    /// JPEG or TIFF; e.g. a slide of the lab the model was trained on) before embedding:
    /// Macenko's method, estimated per section. Default: the images as read.
    #[arg(long, value_name = "IMAGE")] pub stain_reference: Option<PathBuf>,
    /// Section images (PNG/JPEG/TIFF, also pyramidal whole-slide OME-TIFF / SVS), in
    /// stacking order.
    #[arg(required = true)] pub images: Vec<PathBuf>,
}

/// Arguments of `ingest image`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)] common: CommonArgs,
    /// Pixel size of the image (of a pyramid's full-resolution level) in micrometres,
    /// resampled to the model's 2D patch pixels. Default for TIFF: the file's (OME-XML
    /// PhysicalSizeX or Aperio MPP); required for PNG/JPEG and TIFFs that record none.
    #[arg(long)] pub um_per_px: Option<f64>,
    /// Pyramidal TIFF: the level to read (0 = full resolution; default: the level whose
    /// pixel size is nearest the model's).
    #[arg(long)] pub level: Option<usize>,
    /// Stain-normalise the image to the stain of this reference H&E image (PNG,
    /// JPEG or TIFF; e.g. a slide of the lab the model was trained on) before embedding:
    /// Macenko's method, estimated on the image. Default: the images as read.
    #[arg(long, value_name = "IMAGE")] pub stain_reference: Option<PathBuf>,
    /// The image: PNG, JPEG or TIFF (also pyramidal whole-slide OME-TIFF, SVS, tiled
    /// pyramids; JPEG, LZW, deflate tiles).
    pub image: PathBuf,
}

impl CommonArgs {
    fn options(&self, kind: SampleKind) -> Result<IngestOptions> {
        Ok(IngestOptions {
            sample: self.sample.clone(),
            kind,
            overlap: self.overlap,
            min_tissue: self.min_tissue,
            polarity: match &self.tissue {
                Some(t) => t.parse()?,
                None => default_polarity(kind),
            },
            batch: self.batch,
            run: self.run.options()?,
            quantization: self
                .quantization
                .as_deref()
                .map(vortexdb::Quantization::from_name)
                .transpose()?,
            ..Default::default()
        })
    }

    fn range(&self) -> Result<IntensityRange> {
        let r = self.intensity_range.as_deref();
        Ok(r.map(|s| floats::<2>(s, "intensity_range"))
            .transpose()?
            .map(|[lo, hi]| (lo as f32, hi as f32)))
    }
}

/// A progress bar on a terminal, one line per durable batch otherwise.
fn progress() -> (
    ProgressBar,
    impl FnMut(Progress) -> std::ops::ControlFlow<()>,
) {
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    if tty {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} grid positions, {msg} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
    }
    let (b, t0) = (bar.clone(), std::time::Instant::now());
    let f = move |p: Progress| {
        if tty {
            b.set_length(p.positions_total);
            b.set_position(p.positions_done);
            let rate = p.patches_stored as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{} patches ({rate:.0}/s)", p.patches_stored));
        } else {
            eprintln!(
                "ingest: {}/{} grid positions, {} patches stored",
                p.positions_done, p.positions_total, p.patches_stored
            );
        }
        std::ops::ControlFlow::Continue(())
    };
    (bar, f)
}

/// Run an `ingest` subcommand.
pub fn run(cmd: IngestCommand, json: bool) -> Result<()> {
    let c = match &cmd {
        IngestCommand::Spots(a) => return run_spots(a, json),
        IngestCommand::Hest(a) => return run_hest(a, json),
        IngestCommand::Volume(a) => &a.common,
        IngestCommand::Sections(a) => &a.common,
        IngestCommand::Image(a) => &a.common,
    };
    let range = c.range()?;
    // A volume is opened (and checked) before the store, as its errors come first.
    let volume = match &cmd {
        IngestCommand::Volume(a) => Some(open_volume(&a.path, range)?),
        _ => None,
    };
    let store = Store::open(&c.store)?;
    let model = resolve_model(&store, c.model.as_deref())?;
    let (bar, mut on_progress) = progress();
    let report = match (&cmd, volume) {
        (IngestCommand::Volume(a), Some(src)) => {
            let mut opts = c.options(SampleKind::Volume)?;
            // An OME-Zarr image is read at the level nearest the model's voxel size
            // (or the one asked for), now that the model is known.
            if let Some(s) = &a.um_per_voxel {
                opts.voxel_um = Some(floats::<3>(s, "um_per_voxel")?);
            }
            let src = if is_zarr(&a.path) || a.level.is_some() {
                open_volume_for(&a.path, range, &model, a.level, opts.voxel_um)?
            } else {
                src
            };
            ingest_volume(&store, &model, src, &opts, &mut on_progress)
        }
        (IngestCommand::Sections(a), _) => {
            let s = Sections {
                images: a.images.clone(),
                spacing_um: a.spacing_um,
                um_per_px: a.um_per_px,
                level: a.level,
                transforms: a.transforms.clone(),
                intensity: range,
            };
            let mut opts = c.options(SampleKind::Sections)?;
            opts.stain_reference = a.stain_reference.clone();
            ingest_sections(&store, &model, &s, &opts, &mut on_progress)
        }
        (IngestCommand::Image(a), _) => {
            let mut opts = c.options(SampleKind::Image)?;
            opts.stain_reference = a.stain_reference.clone();
            ingest_image(
                &store,
                &model,
                &a.image,
                a.um_per_px,
                a.level,
                range,
                &opts,
                &mut on_progress,
            )
        }
        // Spots returned above; a volume is always opened.
        (IngestCommand::Spots(_) | IngestCommand::Hest(_) | IngestCommand::Volume(_), _) => {
            unreachable!()
        }
    };
    bar.finish_and_clear();
    flush_warnings(&store);
    emit(json, &report?);
    Ok(())
}
