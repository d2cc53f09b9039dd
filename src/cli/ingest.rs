//! `vortexdb ingest volume|sections`: stream a 3D volume or a 2.5D stack of serial
//! sections through the model's 3D encoder into the store (see [`crate::ingest`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{flush_warnings, out};
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, IngestReport, Progress, ingest_volume};
use crate::model::{Device, Model, RunOptions};
use crate::store::Store;
use crate::volume::grid::Polarity;
use crate::volume::{self, ImageStack, IntensityRange, VolumeSource};

/// Subcommands of `ingest`.
#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Embed a 3D volume (.npy, multi-page .tif, or a directory of slice images).
    Volume(VolumeArgs),
    /// Embed serial H&E sections stacked into a 2.5D volume.
    Sections(SectionsArgs),
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
    /// Section images (PNG/JPEG/TIFF), in stacking order, all of one size (registered).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

fn parse_floats<const N: usize>(s: &str, what: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::bad_input(what, format!("'{s}' is not {N} comma-separated numbers")))?;
    v.try_into()
        .map_err(|_| Error::bad_input(what, format!("'{s}' must have exactly {N} numbers")))
}

fn resolve_model(store: &Store, model: Option<&str>) -> Result<Model> {
    match model {
        Some(m) if Path::new(m).join(crate::model::MANIFEST_FILE).is_file() => {
            let rec = store.add_model(Path::new(m))?;
            store.load_model(Some(&rec.name))
        }
        other => store.load_model(other),
    }
}

fn run_ingest(
    c: &CommonArgs,
    kind: &str,
    source: Box<dyn VolumeSource>,
    voxel_um: Option<[f64; 3]>,
    default_polarity: Polarity,
    json_out: bool,
) -> Result<()> {
    let store = Store::open(&c.store)?;
    let model = resolve_model(&store, c.model.as_deref())?;
    let device: Device = c.device.parse()?;
    let opts = IngestOptions {
        sample: c.sample.clone(),
        kind: kind.into(),
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
        IngestCommand::Volume(a) => {
            let voxel = match &a.um_per_voxel {
                Some(s) => Some(parse_floats::<3>(s, "--um-per-voxel")?),
                None => None,
            };
            let src = volume::open(&a.path, range(&a.common)?)?;
            run_ingest(&a.common, "3d", src, voxel, Polarity::Bright, json_out)
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
            let src = ImageStack::open_files(
                a.images.clone(),
                format!("{} sections", a.images.len()),
                range(&a.common)?,
            )?;
            run_ingest(
                &a.common,
                "2.5d",
                Box::new(src),
                Some([a.spacing_um, a.um_per_px, a.um_per_px]),
                Polarity::Dark,
                json_out,
            )
        }
    }
}
