//! The `vortexdb` command line: argument parsing (clap) kept apart from the work,
//! which is all done through the library API.
//!
//! Every command takes `--json` (one JSON object on stdout); otherwise output is for
//! people. Exit codes: 0 done, 1 bad input (the message names the file or argument),
//! 2 internal error.

mod analysis;
mod demo;
mod ingest;
mod models;
mod phantom;
mod query;
mod spots;
mod vectors;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use vortexdb::error::{Error, Result};
use vortexdb::store::Store;

/// vortexdb: an embedded morphology-transcriptome vector database (VORTEX method).
#[derive(Debug, Parser)]
#[command(name = "vortexdb", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object on stdout instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty store in a directory.
    Init {
        /// Store directory (created if missing).
        store: PathBuf,
    },
    /// Summarise a store: collections, sizes, index snapshot state.
    Info {
        /// Store directory.
        store: PathBuf,
    },
    /// Verify every page checksum of vortex.redb and every stored vector's CRC.
    Check {
        /// Store directory.
        store: PathBuf,
    },
    /// Online backup: a consistent copy of the store from one read snapshot (works while
    /// another process writes), every record verified; restore by opening the copy.
    Backup {
        /// Store directory.
        store: PathBuf,
        /// New directory for the copy (must not exist).
        dest: PathBuf,
    },
    /// Models: register a model directory in a store, list, run a network on an array.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Embed data into the store: a 3D volume, serial sections (2.5D), or spot expression.
    #[command(subcommand)]
    Ingest(ingest::IngestCommand),
    /// Queries: genes -> morphology heatmaps, expression profiles, similar patches.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// Predicted expression of every patch of a sample (Parquet), and 3D volumes of
    /// chosen genes; by the model's predictor head or the k-nearest-spots baseline.
    Predict(analysis::PredictArgs),
    /// Spatial domains: k-means on the predictor's hidden representation of every
    /// patch; a 3D label volume, per-domain summaries, ARI against a segmentation.
    Domains(analysis::DomainsArgs),
    /// Evaluate predictions against measured spots: PCC (all, top 50, markers), SSIM,
    /// Spearman of gene variances, Moran's I, Geary's C, domain ARI; JSON + Markdown.
    Eval(analysis::EvalArgs),
    /// Spots of a sample: export their positions, QC, expression and embeddings.
    #[command(subcommand)]
    Spots(spots::SpotsCommand),
    /// Raw vectors: import, search, delete, compact (used by benchmarks and tests).
    #[command(subcommand)]
    Vectors(vectors::VectorsCommand),
    /// Run the end-to-end demo on generated data and write its outputs.
    Demo(demo::DemoArgs),
    /// Generate a deterministic synthetic tissue phantom: a 3D volume, H&E planes and
    /// spatial-transcriptomics spots whose expression follows the morphology.
    Phantom(phantom::PhantomArgs),
}

/// Parse arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    // Keep panics (which should not happen) from printing a raw backtrace: report them
    // as internal errors with exit code 2.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        log::debug!("panic: {msg} at {:?}", info.location());
    }));
    let cli = Cli::parse();
    let json = cli.json;
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            report_error(json, &e.to_string(), if e.is_user_error() { 1 } else { 2 });
            ExitCode::from(if e.is_user_error() { 1 } else { 2 })
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            report_error(json, &format!("internal error: {msg}"), 2);
            ExitCode::from(2)
        }
    }
}

fn report_error(json: bool, msg: &str, code: u8) {
    if json {
        println!("{}", json!({"ok": false, "error": msg, "exit_code": code}));
    }
    eprintln!("error: {msg}");
}

/// Print warnings the store raised (e.g. a rebuilt snapshot) on stderr.
pub(crate) fn flush_warnings(store: &Store) {
    for w in store.take_warnings() {
        eprintln!("warning: {w}");
    }
}

/// Write one line to stdout, treating a closed pipe as success.
pub(crate) fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { store } => {
            let s = Store::create(&store)?;
            if cli.json {
                out(&json!({"ok": true, "store": s.path()}).to_string());
            } else {
                out(&format!("created store {}", s.path().display()));
            }
            Ok(())
        }
        Command::Info { store } => {
            let s = Store::open_read_only(&store)?;
            let info = s.info()?;
            flush_warnings(&s);
            if cli.json {
                let cols: Vec<_> = info
                    .collections
                    .iter()
                    .map(|(c, snap)| {
                        json!({"name": c.name, "model": c.model, "modality": c.modality,
                               "dim": c.dim, "metric": c.metric.name(), "live": c.live,
                               "tombstones": c.tombstones, "generation": c.generation,
                               "epoch": c.epoch, "snapshot_generation": snap.generation,
                               "snapshot_fresh": snap.fresh})
                    })
                    .collect();
                let models: Vec<_> = s.models()?.into_iter().map(|m| m.name).collect();
                let samples: Vec<_> = s
                    .samples()?
                    .into_iter()
                    .map(|x| {
                        json!({"id": x.id, "kind": x.kind, "source": x.source, "model": x.model,
                               "status": x.status, "patches": x.patches,
                               "voxel_um": x.voxel_um, "source_shape": x.source_shape})
                    })
                    .collect();
                let spot_sets: Vec<_> = s
                    .spot_sets()?
                    .into_iter()
                    .map(|x| {
                        json!({"sample": x.sample, "format": x.format, "files": x.files,
                               "model": x.model, "spots": x.spots, "kept": x.kept,
                               "genes": x.genes.len(), "qc": x.qc_summary})
                    })
                    .collect();
                out(
                    &json!({"ok": true, "store": info.path, "schema_version": info.schema_version,
                            "generation": info.generation, "db_bytes": info.db_bytes,
                            "collections": cols, "models": models, "samples": samples,
                            "spot_sets": spot_sets})
                    .to_string(),
                );
            } else {
                out(&format!(
                    "store {} (schema v{}, generation {}, {} bytes)",
                    info.path.display(),
                    info.schema_version,
                    info.generation,
                    info.db_bytes
                ));
                if info.collections.is_empty() {
                    out("  no collections");
                }
                for (c, snap) in &info.collections {
                    out(&format!(
                        "  {:<24} {:>10} vectors  dim {:<5} {:<6} model {} / {}  deleted {}  index {}",
                        c.name,
                        c.live,
                        c.dim,
                        c.metric.name(),
                        c.model,
                        c.modality,
                        c.tombstones,
                        if snap.fresh {
                            "fresh".to_string()
                        } else {
                            match snap.generation {
                                Some(g) => format!("stale (gen {g} of {})", c.generation),
                                None => "none".into(),
                            }
                        }
                    ));
                }
                for m in s.models()? {
                    out(&format!("  model {}", m.name));
                }
                for x in s.samples()? {
                    out(&format!(
                        "  sample {:<16} {:<4} {:>9} patches  {:<9} model {}  from {}",
                        x.id, x.kind, x.patches, x.status, x.model, x.source
                    ));
                }
                for x in s.spot_sets()? {
                    out(&format!(
                        "  spots  {:<16} {:<7} {:>6} spots ({} kept)  {} genes  model {}  from {}",
                        x.sample,
                        x.format,
                        x.spots,
                        x.kept,
                        x.genes.len(),
                        x.model,
                        x.files.first().map(|f| f.as_str()).unwrap_or("")
                    ));
                }
            }
            Ok(())
        }
        Command::Check { store } => {
            let mut s = match Store::open(&store) {
                Ok(s) => s,
                Err(Error::Locked { .. }) => Store::open_read_only(&store)?,
                Err(e) => return Err(e),
            };
            let n = s.check()?;
            flush_warnings(&s);
            if cli.json {
                out(&json!({"ok": true, "vectors_checked": n}).to_string());
            } else {
                out(&format!("ok: {n} vectors verified"));
            }
            Ok(())
        }
        Command::Backup { store, dest } => {
            let s = Store::open_read_only(&store)?;
            let r = s.backup(&dest)?;
            flush_warnings(&s);
            if cli.json {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["ok"] = json!(true);
                out(&v.to_string());
            } else {
                out(&format!(
                    "backup of {} at generation {} written to {} ({} entries, {} model files, {} bytes) in {:.1} s",
                    store.display(),
                    r.generation,
                    r.dest.display(),
                    r.entries,
                    r.model_files,
                    r.db_bytes,
                    r.seconds
                ));
            }
            Ok(())
        }
        Command::Models(cmd) => models::run(cmd, cli.json),
        Command::Ingest(cmd) => ingest::run(cmd, cli.json),
        Command::Vectors(cmd) => vectors::run(cmd, cli.json),
        Command::Spots(cmd) => spots::run(cmd, cli.json),
        Command::Query(cmd) => query::run(cmd, cli.json),
        Command::Predict(a) => analysis::run_predict(&a, cli.json),
        Command::Domains(a) => analysis::run_domains(&a, cli.json),
        Command::Eval(a) => analysis::run_eval(&a, cli.json),
        Command::Demo(a) => demo::run(a, cli.json),
        Command::Phantom(a) => phantom::run(a, cli.json),
    }
}
