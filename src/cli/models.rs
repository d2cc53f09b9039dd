//! `vortexdb models`: register a model in a store, list models, and run a model's
//! network on an NPY array (used for parity checks and benchmarks).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::json;

use super::out;
use vortexdb::error::{Error, Result};
use vortexdb::model::{Device, Model, RunOptions};
use vortexdb::store::Store;

/// Subcommands of `models`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Verify a model directory (manifest + ONNX checksums) and register a copy of it in
    /// the store.
    Add {
        /// Store directory.
        store: PathBuf,
        /// Model directory (manifest.json + .onnx files), e.g. models/default; the bare
        /// name `default` (with no such directory here) uses the copy built into vortexdb.
        model_dir: PathBuf,
    },
    /// List the store's models.
    List {
        /// Store directory.
        store: PathBuf,
    },
    /// Run one network of a model directory on a float32 NPY array and write the
    /// named output as NPY (rows = batch, further axes flattened).
    Embed(EmbedArgs),
}

/// Arguments of `models embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model directory.
    pub model_dir: PathBuf,
    /// Network role: image_3d, image_2d, genes or predictor.
    #[arg(long, default_value = "image_3d")]
    pub network: String,
    /// Input NPY (float32, already normalised, shape as the manifest says).
    #[arg(long)]
    pub input: PathBuf,
    /// Output NPY of the chosen output (float32, batch x dim).
    #[arg(long)]
    pub out: PathBuf,
    /// Output name (embedding, expression, hidden).
    #[arg(long, default_value = "embedding")]
    pub output: String,
    /// Rows per inference call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Intra-op threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run the whole input this many times and report the best patches/s.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// Run a `models` subcommand.
pub fn run(cmd: ModelsCommand, json_out: bool) -> Result<()> {
    match cmd {
        ModelsCommand::Add { store, model_dir } => {
            let s = Store::open(&store)?;
            let (dir, tmp) = vortexdb::model::embedded::resolve(&model_dir)?;
            let rec = s.add_model(&dir);
            if let Some(t) = tmp {
                let _ = std::fs::remove_dir_all(t);
            }
            let rec = rec?;
            if json_out {
                out(&json!({"ok": true, "model": rec.name, "files": rec.files}).to_string());
            } else {
                out(&format!(
                    "registered model '{}' ({} networks) in {}",
                    rec.name,
                    rec.files.len(),
                    store.display()
                ));
            }
            Ok(())
        }
        ModelsCommand::List { store } => {
            let s = Store::open_read_only(&store)?;
            let models = s.models()?;
            if json_out {
                let list: Vec<_> = models
                    .iter()
                    .map(|m| json!({"name": m.name, "files": m.files}))
                    .collect();
                out(&json!({"ok": true, "models": list}).to_string());
            } else if models.is_empty() {
                out("no models; add the built-in one with `vortexdb models add STORE default`");
            } else {
                for m in models {
                    let names: Vec<&str> = m.files.iter().map(|f| f.0.as_str()).collect();
                    out(&format!("{}  ({})", m.name, names.join(", ")));
                }
            }
            Ok(())
        }
        ModelsCommand::Embed(a) => embed(a, json_out),
    }
}

fn embed(a: EmbedArgs, json_out: bool) -> Result<()> {
    if a.batch == 0 || a.repeat == 0 {
        return Err(Error::bad_input("--batch/--repeat", "must be at least 1"));
    }
    let model = Model::load(&a.model_dir)?;
    let device: Device = a.device.parse()?;
    let opts = RunOptions {
        device,
        threads: a.threads,
    };
    let mut net = model.network(&a.network, &opts)?;
    let (shape, values) = vortexdb::vecio::read_f32_nd(&a.input)?;
    if shape.is_empty() || shape[0] == 0 {
        return Err(Error::bad_input(
            a.input.display().to_string(),
            "empty input",
        ));
    }
    let n = shape[0];
    let per: usize = shape[1..].iter().product();
    let mut best = f64::INFINITY;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut dim = 0;
    for _ in 0..a.repeat {
        rows.clear();
        let t = Instant::now();
        for start in (0..n).step_by(a.batch) {
            let end = (start + a.batch).min(n);
            let mut s = shape.clone();
            s[0] = end - start;
            let view = ndarray::ArrayViewD::from_shape(s, &values[start * per..end * per])
                .map_err(|e| Error::bad_input(a.input.display().to_string(), e.to_string()))?;
            let outs = net.run(view)?;
            let (_, o) = outs
                .into_iter()
                .find(|(k, _)| *k == a.output)
                .ok_or_else(|| {
                    Error::bad_input(
                        "--output",
                        format!("network {} has no output '{}'", a.network, a.output),
                    )
                })?;
            // Rows = batch; any further axes are flattened (e.g. tokens B,Q,E).
            let b = o.shape()[0];
            dim = o.len() / b.max(1);
            let flat = o.as_standard_layout();
            let flat = flat.as_slice().expect("standard layout");
            rows.extend(flat.chunks(dim.max(1)).map(|r| r.to_vec()));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    vortexdb::vecio::write_f32_npy(&a.out, &rows, dim)?;
    let rate = n as f64 / best;
    if json_out {
        out(&json!({"ok": true, "rows": n, "dim": dim, "seconds": best,
                    "rows_per_second": rate, "device": device.to_string(),
                    "library": vortexdb::model::runtime::loaded_library()})
        .to_string());
    } else {
        out(&format!(
            "{n} rows -> {} ({dim} values each) in {best:.3} s ({rate:.1} rows/s on {device})",
            a.out.display()
        ));
    }
    Ok(())
}
