//! The `vortexdb` command line: clap arguments, one library call per command, output
//! for people or `--json`, next-step hints on errors, exit codes (0 done, 1 bad input,
//! 2 internal error). No work is done here that the library does not expose.

mod analysis;
mod archive;
mod args;
mod demo;
mod hints;
mod ingest;
mod models;
mod python;
mod query;
mod readout;
mod register;
mod store;
mod vectors;
mod view;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use vortexdb::{Result, Store};

/// vortexdb: an embedded morphology-transcriptome vector database (VORTEX method).
#[rustfmt::skip]
#[derive(Debug, Parser)]
#[command(name = "vortexdb", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object on stdout instead of text for people.
    #[arg(long, global = true)] pub json: bool,
    /// The command to run.
    #[command(subcommand)] pub command: Command,
}

/// Top-level commands.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty store in a directory.
    Init(store::StoreArg),
    /// Summarise a store: collections, sizes, index snapshot state.
    Info(store::StoreArg),
    /// Verify the store without writing to it (no lock, not a byte changed; works beside
    /// a writer): redb's page checksums on a private copy, every record and vector CRC,
    /// index snapshots, model files and manifests. Exit 1 when damage is found.
    Check(store::CheckArgs),
    /// Online backup: a consistent copy of the store from one read snapshot (works while
    /// another process writes), every record verified; what cannot be read is left out
    /// and listed (exit 3: partial). Restore by opening the copy.
    Backup(store::BackupArgs),
    /// Write a repaired copy of a damaged store to DEST (the store is not written):
    /// its database recovered on a private copy, then everything readable copied as
    /// `backup` does (exit 3 when something was lost).
    Repair(store::RepairArgs),
    /// Models: register a model directory in a store, list, run a network on an array.
    #[command(subcommand)] Models(models::ModelsCommand),
    /// Embed data into the store: a 3D volume, serial sections (2.5D), or spot expression.
    #[command(subcommand)] Ingest(ingest::IngestCommand),
    /// Queries: genes -> morphology heatmaps, expression profiles, similar patches.
    #[command(subcommand)] Query(query::QueryCommand),
    /// Predicted expression of every patch of a sample (Parquet), and 3D volumes of
    /// chosen genes; by one of three readouts: the model's predictor head (default),
    /// --knn (k nearest reference spots) or --ridge (fitted on reference spots).
    Predict(analysis::PredictArgs),
    /// Spatial domains: k-means on the predictor's hidden representation of every
    /// patch; a 3D label volume, per-domain summaries, ARI against a segmentation.
    Domains(analysis::DomainsArgs),
    /// Evaluate predictions (predictor head, --knn or --ridge readout) against measured
    /// spots: PCC (all, top 50, markers), SSIM, Spearman of gene variances, Moran's I,
    /// Geary's C, domain ARI; JSON + Markdown. Spots that are also the readout's
    /// reference are refused (or, with --allow-in-sample, marked in-sample).
    Eval(analysis::EvalArgs),
    /// A sample as a SpatialData Zarr store (`spatialdata.read_zarr`): its volume,
    /// heatmap and predicted genes as images, domains as labels, patches and spots as
    /// points, predictions and spot expression as AnnData tables.
    Export(analysis::ExportArgs),
    /// Spots of a sample: export their positions, QC, expression and embeddings.
    #[command(subcommand)] Spots(store::SpotsCommand),
    /// Raw vectors: import, search, delete, compact (used by benchmarks and tests).
    #[command(subcommand)] Vectors(vectors::VectorsCommand),
    /// Registration computed from the images: serial sections to one another, a section
    /// to the plane of its 3D volume.
    #[command(subcommand)] Register(register::RegisterCommand),
    /// Stored readouts: fit the ridge readout once on reference spots and keep it under
    /// a name, to apply to any sample of the same model (`predict|eval|export --readout`).
    #[command(subcommand)] Readout(readout::ReadoutCommand),
    /// Open a store in the browser viewer (127.0.0.1 only; Ctrl-C stops it): runs the
    /// Python package's `python -m vortexdb view` with the interpreter VORTEX_PYTHON
    /// names (default python3), which needs `pip install "./bindings/python[view]"`.
    View(view::ViewArgs),
    /// Archives of many stores (shards) under one catalog, ingested and queried on Ray:
    /// create, ingest, list, check, add-shard, query. Runs the Python package's
    /// `python -m vortexdb archive` (VORTEX_PYTHON, default python3), which needs
    /// `pip install "./bindings/python[ray]"`.
    Archive(archive::ArchiveArgs),
    /// Run the end-to-end demo on generated data and write its outputs.
    Demo(demo::DemoArgs),
    /// Generate a deterministic synthetic tissue phantom: a 3D volume, H&E planes and
    /// spatial-transcriptomics spots whose expression follows the morphology.
    Phantom(demo::PhantomArgs),
}

/// Parse arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    // Keep panics (which should not happen) from printing a raw backtrace: report them
    // as internal errors with exit code 2.
    std::panic::set_hook(Box::new(|i| log::debug!("panic at {:?}", i.location())));
    let cli = Cli::parse();
    let json = cli.json;
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(0)) => ExitCode::SUCCESS,
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            let code = hints::exit_code(&e);
            report_error(json, &hints::message(&e), code);
            ExitCode::from(code)
        }
        Err(p) => {
            let msg = format!("internal error: {}", panic_text(p.as_ref()));
            report_error(json, &msg, 2);
            ExitCode::from(2)
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
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

/// Print a serialisable result as one JSON object with `"ok": true` added.
pub(crate) fn out_json<T: serde::Serialize>(value: &T) {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    v["ok"] = json!(true);
    out(&v.to_string());
}

/// Print `value` as JSON (with `"ok": true`) or as text for people.
pub(crate) fn emit<T: serde::Serialize + std::fmt::Display>(json: bool, value: &T) {
    if json {
        out_json(value);
    } else {
        out(&value.to_string());
    }
}

/// Print `value` as JSON (with `"ok": true`) or `text` for people.
pub(crate) fn emit_text(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json { out_json(&value) } else { out(&text()) }
}

/// Print a result with the files written: as JSON (`value` plus `files`), or as `text`
/// and one line per file.
pub(crate) fn emit_files(
    json: bool,
    mut value: serde_json::Value,
    text: &dyn std::fmt::Display,
    files: &[String],
) {
    if json {
        value["files"] = serde_json::json!(files);
        return out_json(&value);
    }
    out(&text.to_string());
    for f in files {
        out(&format!("  {f}"));
    }
}

/// Run the command; the exit code (0, or what `check`, `backup`, `repair` and the
/// viewer report).
fn run(cli: Cli) -> Result<u8> {
    let j = cli.json;
    match cli.command {
        Command::Check(a) => return store::check(&a, j),
        Command::Backup(a) => return store::backup(&a, j),
        Command::Repair(a) => return store::repair(&a, j),
        Command::View(a) => return view::view(&a),
        Command::Archive(a) => return archive::archive(&a),
        Command::Init(a) => store::init(&a, j),
        Command::Info(a) => store::info(&a, j),
        Command::Spots(c) => store::spots(c, j),
        Command::Models(c) => models::run(c, j),
        Command::Ingest(c) => ingest::run(c, j),
        Command::Vectors(c) => vectors::run(c, j),
        Command::Query(c) => query::run(c, j),
        Command::Predict(a) => analysis::predict(&a, j),
        Command::Domains(a) => analysis::domains(&a, j),
        Command::Export(a) => analysis::export(&a, j),
        Command::Eval(a) => analysis::eval(&a, j),
        Command::Register(c) => register::run(c, j),
        Command::Readout(c) => readout::run(c, j),
        Command::Demo(a) => demo::demo(&a, j),
        Command::Phantom(a) => demo::phantom(&a, j),
    }
    .map(|()| 0)
}
