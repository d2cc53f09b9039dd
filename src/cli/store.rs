//! `vortexdb init|info|check|backup` and `vortexdb spots export`: the store itself.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{emit, emit_text, flush_warnings, out, out_json};
use vortexdb::{Result, Store, write_spots};

/// A store directory.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct StoreArg {
    /// Store directory.
    pub store: PathBuf,
}

/// Arguments of `backup`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Store directory.
    pub store: PathBuf,
    /// New directory for the copy (must not exist).
    pub dest: PathBuf,
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

/// Run `check`.
pub fn check(a: &StoreArg, json: bool) -> Result<()> {
    let mut s = Store::open_for_check(&a.store)?;
    let n = s.check()?;
    flush_warnings(&s);
    emit_text(json, json!({"vectors_checked": n}), || {
        format!("ok: {n} vectors verified")
    });
    Ok(())
}

/// Run `backup`.
pub fn backup(a: &BackupArgs, json: bool) -> Result<()> {
    let s = Store::open_read_only(&a.store)?;
    let r = s.backup(&a.dest)?;
    flush_warnings(&s);
    emit(json, &r);
    Ok(())
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
