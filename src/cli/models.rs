//! `vortexdb models`: register a model in a store, list models, and run a model's
//! network on an NPY array (used for parity checks and benchmarks).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::args::RunArgs;
use super::{emit_text, out, out_json};
use vortexdb::{EmbedFileOptions, Model, Result, Store, loaded_runtime_library, write_f32_npy};

/// Subcommands of `models`.
#[rustfmt::skip]
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
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model directory.
    pub model_dir: PathBuf,
    /// Network role: image_3d, image_2d, genes or predictor.
    #[arg(long, default_value = "image_3d")] pub network: String,
    /// Input NPY (float32, already normalised, shape as the manifest says).
    #[arg(long)] pub input: PathBuf,
    /// Output NPY of the chosen output (float32, batch x dim).
    #[arg(long)] pub out: PathBuf,
    /// Output name (embedding, expression, hidden).
    #[arg(long, default_value = "embedding")] pub output: String,
    /// Rows per inference call.
    #[arg(long, default_value_t = 64)] pub batch: usize,
    /// Execution provider and threads.
    #[command(flatten)] pub run: RunArgs,
    /// Run the whole input this many times and report the best patches/s.
    #[arg(long, default_value_t = 1)] pub repeat: usize,
}

/// Run a `models` subcommand.
pub fn run(cmd: ModelsCommand, json: bool) -> Result<()> {
    match cmd {
        ModelsCommand::Add { store, model_dir } => {
            let rec = Store::open(&store)?.add_model_or_builtin(&model_dir)?;
            emit_text(json, json!({"model": rec.name, "files": rec.files}), || {
                format!(
                    "registered model '{}' ({} networks) in {}",
                    rec.name,
                    rec.files.len(),
                    store.display()
                )
            });
        }
        ModelsCommand::List { store } => {
            let models = Store::open_read_only(&store)?.models()?;
            if json {
                let list: Vec<_> = models
                    .iter()
                    .map(|m| json!({"name": m.name, "files": m.files}))
                    .collect();
                out_json(&json!({"models": list}));
            } else if models.is_empty() {
                out("no models; add the built-in one with `vortexdb models add STORE default`");
            }
            for m in models.iter().filter(|_| !json) {
                let names: Vec<&str> = m.files.iter().map(|f| f.0.as_str()).collect();
                out(&format!("{}  ({})", m.name, names.join(", ")));
            }
        }
        ModelsCommand::Embed(a) => {
            let model = Model::load(&a.model_dir)?;
            let run = a.run.options()?;
            let device = run.device;
            let opts = EmbedFileOptions {
                network: a.network.clone(),
                output: a.output.clone(),
                batch: a.batch,
                repeat: a.repeat,
                run,
            };
            let r = model.embed_file(&a.input, &opts)?;
            write_f32_npy(&a.out, &r.rows, r.dim)?;
            let (n, dim, best) = (r.rows.len(), r.dim, r.seconds);
            let rate = n as f64 / best;
            emit_text(
                json,
                json!({"rows": n, "dim": dim, "seconds": best,
                    "rows_per_second": rate, "device": device.to_string(),
                    "library": loaded_runtime_library()}),
                || {
                    format!(
                        "{n} rows -> {} ({dim} values each) in {best:.3} s ({rate:.1} rows/s on {device})",
                        a.out.display()
                    )
                },
            );
        }
    }
    Ok(())
}
