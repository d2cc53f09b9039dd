//! `vortexdb init|info|check|backup` and `vortexdb spots export`: the store itself.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{flush_warnings, out, out_json};
use vortexdb::{Error, Result, Store, write_spots};

/// A store directory.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// Store directory.
    pub store: PathBuf,
}

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Store directory.
    pub store: PathBuf,
    /// New directory for the copy (must not exist).
    pub dest: PathBuf,
}

/// Subcommands of `spots`.
#[derive(Debug, Subcommand)]
pub enum SpotsCommand {
    /// Write a sample's spots to DIR: spots.csv (id, pixel and sample positions, QC,
    /// kept, vector id), panel.txt, expression.npy and smoothed.npy (kept spots x
    /// panel), embeddings.npy (kept spots x dim).
    Export {
        /// Store directory.
        store: PathBuf,
        /// Sample id.
        #[arg(long)]
        sample: String,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Run `init`.
pub fn init(a: &StoreArg, json: bool) -> Result<()> {
    let s = Store::create(&a.store)?;
    if json {
        out_json(&json!({"store": s.path()}));
    } else {
        out(&format!("created store {}", s.path().display()));
    }
    Ok(())
}

/// Run `info`.
pub fn info(a: &StoreArg, json: bool) -> Result<()> {
    let s = Store::open_read_only(&a.store)?;
    let info = s.info()?;
    let (models, samples, sets) = (s.models()?, s.samples()?, s.spot_sets()?);
    flush_warnings(&s);
    if json {
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
        let samples: Vec<_> = samples
            .iter()
            .map(|x| {
                json!({"id": x.id, "kind": x.kind, "source": x.source, "model": x.model,
                       "status": x.status, "patches": x.patches,
                       "voxel_um": x.voxel_um, "source_shape": x.source_shape})
            })
            .collect();
        let sets: Vec<_> = sets
            .iter()
            .map(|x| {
                json!({"sample": x.sample, "format": x.format, "files": x.files,
                       "model": x.model, "spots": x.spots, "kept": x.kept,
                       "genes": x.genes.len(), "qc": x.qc_summary})
            })
            .collect();
        let models: Vec<_> = models.into_iter().map(|m| m.name).collect();
        out_json(
            &json!({"store": info.path, "schema_version": info.schema_version,
            "generation": info.generation, "db_bytes": info.db_bytes,
            "collections": cols, "models": models, "samples": samples, "spot_sets": sets}),
        );
        return Ok(());
    }
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
        let index = match (snap.fresh, snap.generation) {
            (true, _) => "fresh".to_string(),
            (false, Some(g)) => format!("stale (gen {g} of {})", c.generation),
            (false, None) => "none".into(),
        };
        out(&format!(
            "  {:<24} {:>10} vectors  dim {:<5} {:<6} model {} / {}  deleted {}  index {index}",
            c.name,
            c.live,
            c.dim,
            c.metric.name(),
            c.model,
            c.modality,
            c.tombstones,
        ));
    }
    for m in models {
        out(&format!("  model {}", m.name));
    }
    for x in samples {
        out(&format!(
            "  sample {:<16} {:<4} {:>9} patches  {:<9} model {}  from {}",
            x.id, x.kind, x.patches, x.status, x.model, x.source
        ));
    }
    for x in sets {
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
    Ok(())
}

/// Run `check`.
pub fn check(a: &StoreArg, json: bool) -> Result<()> {
    let mut s = match Store::open(&a.store) {
        Ok(s) => s,
        Err(Error::Locked { .. }) => Store::open_read_only(&a.store)?,
        Err(e) => return Err(e),
    };
    let n = s.check()?;
    flush_warnings(&s);
    if json {
        out_json(&json!({"vectors_checked": n}));
    } else {
        out(&format!("ok: {n} vectors verified"));
    }
    Ok(())
}

/// Run `backup`.
pub fn backup(a: &BackupArgs, json: bool) -> Result<()> {
    let s = Store::open_read_only(&a.store)?;
    let r = s.backup(&a.dest)?;
    flush_warnings(&s);
    if json {
        out_json(&r);
    } else {
        out(&format!(
            "backup of {} at generation {} written to {} ({} entries, {} model files, {} bytes) in {:.1} s",
            a.store.display(),
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

/// Run a `spots` subcommand.
pub fn spots(cmd: SpotsCommand, json: bool) -> Result<()> {
    let SpotsCommand::Export {
        store,
        sample,
        out: dir,
    } = cmd;
    let store = Store::open_read_only(&store)?;
    let r = write_spots(&dir, &store, &sample)?;
    if json {
        out_json(&json!({"sample": sample, "spots": r.spots, "kept": r.kept,
                         "panel": r.panel, "out": dir}));
    } else {
        out(&format!(
            "wrote {} spots ({} kept, panel of {} genes) to {}",
            r.spots,
            r.kept,
            r.panel,
            dir.display()
        ));
    }
    Ok(())
}
