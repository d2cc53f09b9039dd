//! `vortexdb ingest volume|sections|spots`: stream a 3D volume or a 2.5D stack of
//! serial sections through the model's 3D encoder into the store, or ingest a
//! sample's spot expression through its gene encoder (see [`vortexdb::ingest`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{flush_warnings, out};
use vortexdb::error::{Error, Result};
use vortexdb::ingest::{
    Encoder, IngestOptions, IngestReport, Progress, SpotOptions, ingest_spots, ingest_volume,
};
use vortexdb::model::{Device, Model, RunOptions};
use vortexdb::spots::{SpotFormat, SpotPaths, read_spots};
use vortexdb::store::Store;
use vortexdb::volume::grid::Polarity;
use vortexdb::volume::register::{Registered, Transforms};
use vortexdb::volume::{self, ImageStack, IntensityRange, VolumeSource};

/// Subcommands of `ingest`.
#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Embed a 3D volume (.npy, multi-page .tif, or a directory of slice images).
    Volume(VolumeArgs),
    /// Embed serial H&E sections stacked into a 2.5D volume.
    Sections(SectionsArgs),
    /// Embed one 2D H&E image with the model's 2D encoder (collection `<model>:2d`), the
    /// target of 3D -> 2D retrieval (`query patch --target 2d`).
    Image(ImageArgs),
    /// Read spot expression (her2st, Visium MTX/.h5, Parquet), QC, normalise, and embed
    /// the kept spots with the model's gene encoder.
    Spots(SpotsArgs),
}

/// Arguments of `ingest spots`.
#[derive(Debug, Args)]
pub struct SpotsArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample id the spots belong to (the volume or section stack they were measured on).
    #[arg(long)]
    pub sample: String,
    /// her2st counts (.tsv.gz), a Visium output directory / matrix directory / .h5, or a
    /// Parquet table.
    pub path: PathBuf,
    /// her2st, visium or parquet (default: guessed from PATH).
    #[arg(long)]
    pub format: Option<String>,
    /// Positions table when not in the standard place (her2st selection TSV, Visium
    /// tissue_positions CSV).
    #[arg(long)]
    pub positions: Option<PathBuf>,
    /// Registered model name, or a model directory (registered on the way). Default:
    /// the store's only model.
    #[arg(long)]
    pub model: Option<String>,
    /// QC: minimum number of detected genes per spot.
    #[arg(long, default_value_t = 25)]
    pub min_genes: usize,
    /// QC: spots with this fraction of mitochondrial (MT-) counts or more are removed.
    #[arg(long, default_value_t = 0.2)]
    pub max_mito: f64,
    /// Nearest spots averaged into the stored smoothed expression (1 = none).
    #[arg(long, default_value_t = 10)]
    pub smooth_k: usize,
    /// Highly variable genes to record for the sample (scanpy seurat flavour).
    #[arg(long, default_value_t = 1200)]
    pub hvg: usize,
    /// Most expressed genes to record for the sample.
    #[arg(long, default_value_t = 250)]
    pub top: usize,
    /// Affine a,b,c,d,e,f from image pixels (x, y) to the sample's voxels:
    /// x' = a x + b y + c, y' = d x + e y + f (default identity).
    #[arg(long)]
    pub affine: Option<String>,
    /// Section (z voxel) of the spots when the source gives none.
    #[arg(long, default_value_t = 0.0)]
    pub z: f64,
    /// Spots per gene-encoder batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// ONNX Runtime intra-op threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn run_spots(a: &SpotsArgs, json_out: bool) -> Result<()> {
    let format = match &a.format {
        Some(f) => SpotFormat::parse(f)?,
        None => SpotFormat::detect(&a.path)?,
    };
    if !(a.max_mito > 0.0 && a.max_mito <= 1.0) {
        return Err(Error::bad_input(
            "--max-mito",
            format!("{} is not a fraction in (0, 1]", a.max_mito),
        ));
    }
    let mut opts = SpotOptions::new(&a.sample);
    opts.qc.min_genes = a.min_genes;
    opts.qc.max_mito_fraction = a.max_mito;
    opts.smooth_k = a.smooth_k;
    opts.n_hvg = a.hvg;
    opts.n_top = a.top;
    opts.z = a.z;
    opts.batch = a.batch.max(1);
    if let Some(s) = &a.affine {
        opts.affine = parse_floats::<6>(s, "--affine")?;
    }
    opts.run = RunOptions {
        device: a.device.parse()?,
        threads: a.threads,
    };
    let store = Store::open(&a.store)?;
    let model = resolve_model(&store, a.model.as_deref())?;
    let table = read_spots(
        &a.path,
        format,
        &SpotPaths {
            positions: a.positions.clone(),
        },
    )?;
    let r = ingest_spots(&store, &model, table, &opts)?;
    flush_warnings(&store);
    if json_out {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        v["ok"] = json!(true);
        out(&v.to_string());
    } else if r.already_present {
        out(&format!(
            "sample {} already has these spots ({} kept of {}); nothing to do",
            r.sample, r.qc.kept, r.qc.spots_in
        ));
    } else {
        out(&format!(
            "sample {}: {} spots read ({} format, {} genes), {} kept by QC ({} with < {} genes, {} with >= {}% MT), \
             {} embedded into {} in {:.1} s ({:.0} spots/s); encoder genes found {}/{}, predicted genes found {}/{}",
            r.sample,
            r.qc.spots_in,
            r.format,
            r.genes,
            r.qc.kept,
            r.qc.removed_min_genes,
            opts.qc.min_genes,
            r.qc.removed_mito,
            opts.qc.max_mito_fraction * 100.0,
            r.embedded,
            r.collection,
            r.seconds,
            r.spots_per_second,
            r.encoder_genes_found,
            r.encoder_genes,
            r.predicted_genes_found,
            r.predicted_genes,
        ));
        if !r.encoder_missing.is_empty() || !r.predicted_missing.is_empty() {
            let list = |v: &[String]| {
                let mut s: Vec<&str> = v.iter().take(10).map(|s| s.as_str()).collect();
                if v.len() > 10 {
                    s.push("...");
                }
                s.join(", ")
            };
            out(&format!(
                "  missing from the data: encoder genes [{}], predicted genes [{}] (embedded / predicted as 0)",
                list(&r.encoder_missing),
                list(&r.predicted_missing)
            ));
        }
    }
    Ok(())
}

/// Settings shared by both ingest commands.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample id (letters, digits, - _ .). Re-running with the same id and data resumes.
    #[arg(long)]
    pub sample: String,
    /// Registered model name, or a model directory (registered on the way). Default:
    /// the store's only model.
    #[arg(long)]
    pub model: Option<String>,
    /// Overlap between neighbouring patches on every axis.
    #[arg(long, default_value_t = 0.75)]
    pub overlap: f64,
    /// Minimum fraction of tissue voxels for a patch to be embedded.
    #[arg(long, default_value_t = 0.25)]
    pub min_tissue: f32,
    /// Which side of the Otsu threshold is tissue: bright, dark or all (no mask).
    /// Default: bright for volumes, dark for H&E sections.
    #[arg(long)]
    pub tissue: Option<String>,
    /// Intensity window LO,HI mapped to [0, 1] (default: the dtype's full range;
    /// float32 data are taken as already in [0, 1]).
    #[arg(long)]
    pub intensity_range: Option<String>,
    /// Patches per inference batch and per store transaction.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// ONNX Runtime intra-op threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Arguments of `ingest volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The volume: .npy (uint8/uint16/float32, Z,Y,X[,C]), multi-page .tif/.tiff, or a
    /// directory of slice images (sorted by name).
    pub path: PathBuf,
    /// Voxel size Z,Y,X in micrometres (default: the model's, i.e. no resampling).
    #[arg(long)]
    pub um_per_voxel: Option<String>,
}

/// Arguments of `ingest sections`.
#[derive(Debug, Args)]
pub struct SectionsArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Distance between consecutive sections in micrometres.
    #[arg(long)]
    pub spacing_um: f64,
    /// Pixel size of the section images in micrometres.
    #[arg(long)]
    pub um_per_px: f64,
    /// Registration: a JSON file with the frame size and one affine per image (image
    /// pixel -> frame pixel), `{"frame": [h, w], "sections": [[a, b, c, d, e, f], ...]}`;
    /// the images may then differ in size and orientation. Without it the images must
    /// be registered already (all of one size).
    #[arg(long, value_name = "JSON")]
    pub transforms: Option<PathBuf>,
    /// Section images (PNG/JPEG/TIFF), in stacking order.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Arguments of `ingest image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Pixel size of the image in micrometres (resampled to the model's 2D patch pixels).
    #[arg(long)]
    pub um_per_px: f64,
    /// The image (PNG/JPEG/TIFF).
    pub image: PathBuf,
}

fn parse_floats<const N: usize>(s: &str, what: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::bad_input(what, format!("'{s}' is not {N} comma-separated numbers")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::bad_input(
            what,
            format!("'{s}': every number must be finite"),
        ));
    }
    v.try_into()
        .map_err(|_| Error::bad_input(what, format!("'{s}' must have exactly {N} numbers")))
}

fn resolve_model(store: &Store, model: Option<&str>) -> Result<Model> {
    match model {
        Some(m) if Path::new(m).join(vortexdb::model::MANIFEST_FILE).is_file() => {
            let rec = store.add_model(Path::new(m))?;
            store.load_model(Some(&rec.name))
        }
        other => store.load_model(other),
    }
}

fn run_ingest(
    c: &CommonArgs,
    kind: &str,
    encoder: Encoder,
    source: Box<dyn VolumeSource>,
    voxel_um: Option<[f64; 3]>,
    default_polarity: Polarity,
    json_out: bool,
) -> Result<()> {
    let store = Store::open(&c.store)?;
    let model = resolve_model(&store, c.model.as_deref())?;
    let mut voxel_um = voxel_um;
    if let (Encoder::Image2d, Some(v)) = (encoder, voxel_um.as_mut()) {
        // One image: its z size is the model's, so nothing is resampled along z.
        v[0] = encoder.patch(&model.manifest)?.slice_um();
    }
    let device: Device = c.device.parse()?;
    let opts = IngestOptions {
        sample: c.sample.clone(),
        kind: kind.into(),
        encoder,
        voxel_um,
        overlap: c.overlap,
        min_tissue: c.min_tissue,
        polarity: match &c.tissue {
            Some(t) => t.parse()?,
            None => default_polarity,
        },
        batch: c.batch,
        run: RunOptions {
            device,
            threads: c.threads,
        },
    };
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    if tty {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} grid positions, {msg} ETA {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
    }
    let t0 = std::time::Instant::now();
    let mut on_progress = |p: Progress| {
        if tty {
            bar.set_length(p.positions_total);
            bar.set_position(p.positions_done);
            let rate = p.patches_stored as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{} patches ({rate:.0}/s)", p.patches_stored));
        } else {
            // Plain lines for logs: one per durable batch.
            eprintln!(
                "ingest: {}/{} grid positions, {} patches stored",
                p.positions_done, p.positions_total, p.patches_stored
            );
        }
    };
    let report = ingest_volume(&store, &model, source, &opts, &mut on_progress)?;
    bar.finish_and_clear();
    flush_warnings(&store);
    print_report(&report, json_out);
    Ok(())
}

fn print_report(r: &IngestReport, json_out: bool) {
    if json_out {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["ok"] = json!(true);
        out(&v.to_string());
    } else if r.patches_new == 0 && r.resumed_from == r.grid_positions {
        out(&format!(
            "sample {} is already complete: {} patches in {}; nothing to do",
            r.sample, r.patches_total, r.collection
        ));
    } else {
        out(&format!(
            "sample {}: {} new patches ({} in total) from a {}x{}x{} source ({}x{}x{} at the model's \
             resolution, {} grid positions{}) into {} in {:.1} s ({:.1} patches/s, tissue threshold {:.3})",
            r.sample,
            r.patches_new,
            r.patches_total,
            r.source_shape[0],
            r.source_shape[1],
            r.source_shape[2],
            r.model_shape[0],
            r.model_shape[1],
            r.model_shape[2],
            r.grid_positions,
            if r.resumed_from > 0 {
                format!(", resumed at {}", r.resumed_from)
            } else {
                String::new()
            },
            r.collection,
            r.seconds,
            r.patches_per_second,
            r.threshold
        ));
    }
}

fn range(c: &CommonArgs) -> Result<IntensityRange> {
    match &c.intensity_range {
        None => Ok(None),
        Some(s) => {
            let [lo, hi] = parse_floats::<2>(s, "--intensity-range")?;
            if hi <= lo {
                return Err(Error::bad_input(
                    "--intensity-range",
                    format!("high {hi} must exceed low {lo}"),
                ));
            }
            Ok(Some((lo as f32, hi as f32)))
        }
    }
}

/// Run an `ingest` subcommand.
pub fn run(cmd: IngestCommand, json_out: bool) -> Result<()> {
    match cmd {
        IngestCommand::Spots(a) => run_spots(&a, json_out),
        IngestCommand::Volume(a) => {
            let voxel = match &a.um_per_voxel {
                Some(s) => Some(parse_floats::<3>(s, "--um-per-voxel")?),
                None => None,
            };
            let src = volume::open(&a.path, range(&a.common)?)?;
            run_ingest(
                &a.common,
                "3d",
                Encoder::Image3d,
                src,
                voxel,
                Polarity::Bright,
                json_out,
            )
        }
        IngestCommand::Image(a) => {
            if !(a.um_per_px.is_finite() && a.um_per_px > 0.0) {
                return Err(Error::bad_input(
                    "--um-per-px",
                    format!("{} must be positive", a.um_per_px),
                ));
            }
            if !a.image.is_file() {
                return Err(Error::bad_input(
                    a.image.display().to_string(),
                    "no such image file",
                ));
            }
            let src = ImageStack::open_files(
                vec![a.image.clone()],
                a.image.display().to_string(),
                range(&a.common)?,
            )?;
            run_ingest(
                &a.common,
                "2d",
                Encoder::Image2d,
                Box::new(src),
                Some([0.0, a.um_per_px, a.um_per_px]),
                Polarity::Dark,
                json_out,
            )
        }
        IngestCommand::Sections(a) => {
            for (v, what) in [(a.spacing_um, "--spacing-um"), (a.um_per_px, "--um-per-px")] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(Error::bad_input(what, format!("{v} must be positive")));
                }
            }
            for f in &a.images {
                if !f.is_file() {
                    return Err(Error::bad_input(
                        f.display().to_string(),
                        "no such image file",
                    ));
                }
            }
            let name = format!("{} sections", a.images.len());
            let src: Box<dyn VolumeSource> = match &a.transforms {
                None => Box::new(ImageStack::open_files(
                    a.images.clone(),
                    name,
                    range(&a.common)?,
                )?),
                Some(path) => {
                    let t = Transforms::read(path, a.images.len())?;
                    let stack =
                        ImageStack::open_files_any_size(a.images.clone(), name, range(&a.common)?)?;
                    Box::new(Registered::new(stack, &t, path))
                }
            };
            run_ingest(
                &a.common,
                "2.5d",
                Encoder::Image3d,
                src,
                Some([a.spacing_um, a.um_per_px, a.um_per_px]),
                Polarity::Dark,
                json_out,
            )
        }
    }
}
