//! `vortexdb init|info|check|backup|repair` and `vortexdb spots export`: the store
//! itself. `check` exits 1 when it finds damage; `backup` and `repair` exit 3 when
//! their copy is partial (the report lists what was left out).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{emit, emit_text, flush_warnings, out, out_json};
use vortexdb::{Result, Store, check_store, rebuild_indexes, repair_store, write_spots};

/// Exit code of a `backup` or `repair` whose copy left something out.
pub const EXIT_PARTIAL: u8 = 3;

/// A store directory.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct StoreArg {
    /// Store directory.
    pub store: PathBuf,
}

/// Arguments of `check`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Store directory (read only: nothing in it is written, no lock is taken).
    pub store: PathBuf,
    /// Directory for the private copy of vortex.redb the check reads (default: the
    /// system's temporary directory); it needs the database's size free.
    #[arg(long)] pub scratch: Option<PathBuf>,
}

/// Arguments of `backup`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Store directory.
    pub store: PathBuf,
    /// New directory for the copy (must not exist, nor lie inside the store).
    pub dest: PathBuf,
}

/// Arguments of `repair`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Store directory (read only: the repaired store is written to DEST).
    pub store: PathBuf,
    /// New directory for the repaired copy (must not exist, nor lie inside the store).
    #[arg(required_unless_present = "index_only")] pub dest: Option<PathBuf>,
    /// Instead of a copy, rebuild and rewrite the store's HNSW index snapshots in place
    /// (derived data: the vectors and records are read, not written); what `check`
    /// suggests when it notes a stale or damaged snapshot.
    #[arg(long, conflicts_with = "dest")] pub index_only: bool,
    /// Directory for the private copy of vortex.redb that is recovered (default: the
    /// system's temporary directory).
    #[arg(long)] pub scratch: Option<PathBuf>,
}

/// Subcommands of `spots`.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum SpotsCommand {
    /// Write a sample's spots to DIR: spots.csv (id, pixel and sample positions, QC,
    /// kept, vector id), panel.txt, expression.npy and smoothed.npy (kept spots x
    /// panel), embeddings.npy (kept spots x dim), export.json; with --image,
    /// image_embeddings.npy: the image sample's patch embeddings at each kept spot (the
    /// features of `python -m vortex_train probe --spots DIR...`).
    Export {
        /// Store directory.
        store: PathBuf,
        /// Sample id.
        #[arg(long)] sample: String,
        /// Output directory (created).
        #[arg(long)] out: PathBuf,
        /// Volume or section sample the spots lie in: also write its patch embeddings
        /// at the spots (mean over the patches containing each spot).
        #[arg(long)] image: Option<String>,
    },
}

/// Run `init`.
pub fn init(a: &StoreArg, json: bool) -> Result<()> {
    let s = Store::create(&a.store)?;
    emit_text(json, json!({"store": s.path()}), || {
        format!("created store {}", s.path().display())
    });
    Ok(())
}

/// Run `info`.
pub fn info(a: &StoreArg, json: bool) -> Result<()> {
    let s = Store::open_read_only(&a.store)?;
    let summary = s.summary()?;
    flush_warnings(&s);
    if json {
        out_json(&summary.to_json());
    } else {
        out(&summary.to_string());
    }
    Ok(())
}

/// Run `check`: the report, and exit code 1 when it found damage.
pub fn check(a: &CheckArgs, json: bool) -> Result<u8> {
    let r = check_store(&a.store, a.scratch.as_deref())?;
    if r.is_clean() || json {
        emit(json, &r);
    } else {
        // Damage is an error: the report goes where errors go.
        eprintln!("error: {r}");
    }
    Ok(if r.is_clean() { 0 } else { 1 })
}

/// Run `backup`: exit code 3 when the copy is partial.
pub fn backup(a: &BackupArgs, json: bool) -> Result<u8> {
    let s = Store::open_read_only(&a.store)?;
    let r = s.backup(&a.dest)?;
    flush_warnings(&s);
    emit(json, &r);
    Ok(if r.complete { 0 } else { EXIT_PARTIAL })
}

/// Run `repair`: exit code 3 when something could not be salvaged.
pub fn repair(a: &RepairArgs, json: bool) -> Result<u8> {
    let Some(dest) = &a.dest else {
        let done = rebuild_indexes(&a.store)?;
        emit_text(json, json!({"indexes_rebuilt": done}), || {
            format!("rebuilt the index snapshots of {}", done.join(", "))
        });
        return Ok(0);
    };
    let r = repair_store(&a.store, dest, a.scratch.as_deref())?;
    emit(json, &r);
    Ok(if r.complete { 0 } else { EXIT_PARTIAL })
}

/// Run a `spots` subcommand.
pub fn spots(cmd: SpotsCommand, json: bool) -> Result<()> {
    let SpotsCommand::Export {
        store,
        sample,
        out,
        image,
    } = cmd;
    let store = Store::open_read_only(&store)?;
    emit(json, &write_spots(&out, &store, &sample, image.as_deref())?);
    Ok(())
}
