//! `vortexdb readout`: fit a readout once and store it; list the stored ones.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::emit_text;
use vortexdb::{ReadoutOptions, ReadoutRecord, Result, Store, fit_readout};

/// `readout` subcommands.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum ReadoutCommand {
    /// Fit the ridge readout (features: embedding, hidden representation, spatial
    /// context) on the reference spots of a sample and store it under a name, next to
    /// the sample's model; `predict|eval|export --readout NAME` apply it to any sample
    /// embedded with that model, spots or not.
    Fit {
        /// Store directory.
        store: PathBuf,
        /// Name to store it under.
        #[arg(long)] name: String,
        /// The sample whose patches carry the reference spots.
        #[arg(long)] sample: String,
        /// Reference spot samples measured on --sample, comma-separated.
        #[arg(long, value_name = "S1,S2", value_delimiter = ',', required = true)] reference: Vec<String>,
        /// Ridge penalty (default: by leave-one-reference-out cross-validation).
        #[arg(long)] alpha: Option<f64>,
        /// Context scales, cell sides in micrometres, comma-separated; 0 for none
        /// (default: by cross-validation among none, 200, and 200,400).
        #[arg(long, value_name = "UM1,UM2", value_delimiter = ',')] context_um: Option<Vec<f64>>,
        /// Do not standardise features over each sample's own patches (by default
        /// they are, at fitting and when applied, so a whole-slide shift cancels).
        #[arg(long)] no_per_sample: bool,
        /// Fit what the predictor head leaves instead of expression itself: the head's
        /// output is the readout's starting point and the fit its correction (helps
        /// with few reference spots).
        #[arg(long)] anchored: bool,
        /// Replace a stored readout of the same name.
        #[arg(long)] replace: bool,
    },
    /// List the stored readouts: model, reference, genes, penalty, context, CV PCC.
    List {
        /// Store directory.
        store: PathBuf,
    },
}

/// A stored readout without its weights, for printing.
fn summary(r: &ReadoutRecord) -> serde_json::Value {
    json!({"name": r.name, "model": r.model, "sample": r.sample, "reference": r.reference,
           "genes": r.genes.len(), "alpha": r.alpha, "context_um": r.context_um,
           "cv_pcc": r.cv_pcc, "spots": r.spots, "features": r.features,
           "per_sample": r.per_sample, "anchored": r.anchored, "sha256": r.sha256})
}

fn line(r: &ReadoutRecord) -> String {
    let ctx = if r.context_um.is_empty() {
        "none".to_string()
    } else {
        let v: Vec<String> = r.context_um.iter().map(|c| c.to_string()).collect();
        format!("{} um", v.join("+"))
    };
    format!(
        "{}: model {}, fitted on {} (sample {}, {} spots), {} genes, alpha {}, context {ctx}, {}{}{}",
        r.name,
        r.model,
        r.reference.join(", "),
        r.sample,
        r.spots,
        r.genes.len(),
        r.alpha,
        if r.per_sample {
            "per-sample standardised"
        } else {
            "raw features"
        },
        if r.anchored {
            ", anchored on the predictor head"
        } else {
            ""
        },
        r.cv_pcc
            .map(|c| format!(", cross-validated PCC {c:.3}"))
            .unwrap_or_default()
    )
}

/// Run a `readout` subcommand.
pub fn run(c: ReadoutCommand, json: bool) -> Result<()> {
    match c {
        ReadoutCommand::Fit {
            store,
            name,
            sample,
            reference,
            alpha,
            context_um,
            no_per_sample,
            anchored,
            replace,
        } => {
            let store = Store::open(&store)?;
            let mut opts = ReadoutOptions::new(&name, &sample, &reference);
            opts.alpha = alpha;
            // `--context-um 0`: no context.
            opts.context_um = context_um.map(|c| c.into_iter().filter(|&v| v != 0.0).collect());
            opts.per_sample = !no_per_sample;
            opts.anchored = anchored;
            opts.replace = replace;
            let rec = fit_readout(&store, &opts)?;
            emit_text(json, summary(&rec), || {
                format!("stored readout {}", line(&rec))
            });
        }
        ReadoutCommand::List { store } => {
            let store = Store::open_read_only(&store)?;
            let all = store.readouts()?;
            let v: Vec<serde_json::Value> = all.iter().map(summary).collect();
            emit_text(json, json!({"readouts": v}), || {
                if all.is_empty() {
                    "no stored readouts (fit one with `vortexdb readout fit`)".to_string()
                } else {
                    all.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            });
        }
    }
    Ok(())
}
