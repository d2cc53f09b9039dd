//! Stored readouts: a linear map from a model's patch features to expression, fitted
//! once on reference spots and applied to any sample embedded with the same model, in
//! `readouts` (name -> [`ReadoutRecord`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tables::READOUTS;
use crate::codec;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::names::valid_id;

/// Value of [`ReadoutRecord::format`] this version writes and reads.
pub const READOUT_FORMAT: &str = "vortexdb-readout/1";

/// A fitted readout and how it was fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadoutRecord {
    /// [`READOUT_FORMAT`].
    pub format: String,
    /// Its name in the store.
    pub name: String,
    /// The model whose features it reads.
    pub model: String,
    /// The sample whose patches it was fitted on.
    pub sample: String,
    /// The reference spot samples it was fitted on.
    pub reference: Vec<String>,
    /// Predicted genes, in output order.
    pub genes: Vec<String>,
    /// The ridge penalty.
    pub alpha: f64,
    /// Spatial context scales, cell sides in micrometres (empty: none).
    pub context_um: Vec<f64>,
    /// Cross-validated PCC of the chosen penalty and context over the reference
    /// samples, when there was a choice.
    pub cv_pcc: Option<f64>,
    /// Reference spots fitted on.
    pub spots: usize,
    /// Features per patch: embedding, hidden representation, context.
    pub features: usize,
    /// Embedding width of the model.
    pub embedding_dim: usize,
    /// Hidden representation width of the model.
    pub hidden_dim: usize,
    /// Each feature standardised over the patches of its own sample first (the fit
    /// sample's at fitting, the target's when applied), so a shift of the whole slide
    /// (stain, scanner) cancels.
    pub per_sample: bool,
    /// Fitted to what the predictor head leaves: its output per patch is added to the
    /// map's (with few reference spots the readout stays near the head).
    pub anchored: bool,
    /// Feature means over the reference spots (after the per-sample step).
    pub mu: Vec<f64>,
    /// Feature spreads over the reference spots.
    pub sd: Vec<f64>,
    /// Mean expression of the reference spots, per gene.
    pub mu_y: Vec<f64>,
    /// Weights, features x genes, row-major (on standardised features).
    pub weights: Vec<f64>,
    /// SHA-256 of the numbers above (`mu`, `sd`, `mu_y`, `weights`, little-endian f64).
    pub sha256: String,
}

impl ReadoutRecord {
    /// SHA-256 of the fitted numbers.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for v in [&self.mu, &self.sd, &self.mu_y, &self.weights] {
            for x in v.iter() {
                h.update(x.to_le_bytes());
            }
        }
        format!("{:x}", h.finalize())
    }

    /// Why the record cannot be applied, if it cannot: another format, sizes that
    /// disagree, or a checksum that does not match its numbers.
    pub fn problem(&self) -> Option<String> {
        if self.format != READOUT_FORMAT {
            return Some(format!(
                "readout of format {:?}; this version reads {READOUT_FORMAT:?}",
                self.format
            ));
        }
        let (f, g) = (self.features, self.genes.len());
        if self.mu.len() != f
            || self.sd.len() != f
            || self.mu_y.len() != g
            || Some(self.weights.len()) != f.checked_mul(g)
            || f != self.embedding_dim
                + self.hidden_dim
                + self.context_um.len() * self.embedding_dim
        {
            return Some(format!(
                "sizes disagree ({f} features, {g} genes, {} weights)",
                self.weights.len()
            ));
        }
        if self.sha256 != self.digest() {
            return Some("its numbers do not match their checksum".into());
        }
        None
    }
}

impl Store {
    /// Store a readout under its name; an existing one is replaced only with `replace`.
    pub fn put_readout(&self, rec: &ReadoutRecord, replace: bool) -> Result<()> {
        valid_id(&rec.name, "readout")?;
        if !replace && let Some(old) = self.readout(&rec.name)? {
            return Err(Error::arg(
                "name",
                format!(
                    "a readout named '{}' exists (model {}, fitted on {}); choose another \
                     name or replace it",
                    old.name,
                    old.model,
                    old.reference.join(", ")
                ),
            ));
        }
        self.put(READOUTS, &rec.name, &codec::encode(rec))
    }

    /// A stored readout, if any.
    pub fn readout(&self, name: &str) -> Result<Option<ReadoutRecord>> {
        self.get_raw(READOUTS, name, "readout record")
    }

    /// Every stored readout, by name.
    pub fn readouts(&self) -> Result<Vec<ReadoutRecord>> {
        self.all_raw(READOUTS, "readout record")
    }

    /// A stored readout, or a clear error listing the stored ones; a record that
    /// cannot be applied (format, sizes, checksum) is an error naming it.
    pub fn require_readout(&self, name: &str) -> Result<ReadoutRecord> {
        let Some(rec) = self.readout(name)? else {
            let known: Vec<String> = self.readouts()?.into_iter().map(|r| r.name).collect();
            return Err(Error::arg(
                "readout",
                format!(
                    "no readout named '{name}' in the store ({})",
                    if known.is_empty() {
                        "none is stored: fit one first".to_string()
                    } else {
                        format!("stored: {}", known.join(", "))
                    }
                ),
            ));
        };
        if let Some(p) = rec.problem() {
            return Err(Error::Corrupted {
                path: self.db_path(),
                message: format!("readout '{name}': {p}"),
            });
        }
        Ok(rec)
    }
}
