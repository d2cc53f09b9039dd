//! Stored readouts: the ridge readout fitted once on the reference spots of one sample
//! and kept in the catalog under a name ([`fit_readout`]), then applied to any sample
//! embedded with the same model, spots or not ([`Predictions::use_readout`]). The
//! target's spatial context comes from its own embeddings; with `per_sample`, each
//! feature is standardised over the patches of its own sample at both ends, so a shift
//! of a whole slide's features (stain, scanner, thickness) cancels.

use rayon::prelude::*;

use super::features::Rows;
use super::ridge::FitFlags;
use super::{Method, Predictions};
use crate::catalog::{READOUT_FORMAT, ReadoutRecord};
use crate::engine::Store;
use crate::error::{Error, Result};

/// What [`fit_readout`] fits and stores.
#[derive(Debug, Clone)]
pub struct ReadoutOptions {
    /// Name to store it under (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The sample whose patches carry the reference spots.
    pub sample: String,
    /// Reference spot samples measured on `sample`.
    pub reference: Vec<String>,
    /// The ridge penalty (None: by cross-validation over the references).
    pub alpha: Option<f64>,
    /// Context scales (None: by cross-validation; empty: none).
    pub context_um: Option<Vec<f64>>,
    /// Standardise every feature over its own sample's patches (default true).
    pub per_sample: bool,
    /// Fit what the predictor head leaves and add the head's output back (default
    /// false): the penalty then shrinks towards the head, not the reference mean. It
    /// helped on phantoms with ~60 reference spots and cost 0.003-0.014 PCC on her2st
    /// (docs/EVALUATION.md).
    pub anchored: bool,
    /// Replace a stored readout of the same name.
    pub replace: bool,
}

impl ReadoutOptions {
    /// Defaults for `name` fitted on `sample`'s `reference` spots: penalty and context
    /// by cross-validation, per-sample standardisation, not anchored, no replacing.
    pub fn new(name: &str, sample: &str, reference: &[String]) -> ReadoutOptions {
        ReadoutOptions {
            name: name.into(),
            sample: sample.into(),
            reference: reference.to_vec(),
            alpha: None,
            context_um: None,
            per_sample: true,
            anchored: false,
            replace: false,
        }
    }
}

/// Fit the ridge readout on `opts.sample`'s reference spots (as `predict --ridge`
/// does) and store it under `opts.name` next to the sample's model. An existing name is
/// refused unless `replace`. Returns the stored record.
pub fn fit_readout(store: &Store, opts: &ReadoutOptions) -> Result<ReadoutRecord> {
    crate::names::valid_id(&opts.name, "readout")?;
    if !opts.replace
        && let Some(old) = store.readout(&opts.name)?
    {
        return Err(Error::arg(
            "name",
            format!(
                "a readout named '{}' exists (model {}, fitted on {}); choose another name or \
                 replace it",
                old.name,
                old.model,
                old.reference.join(", ")
            ),
        ));
    }
    let mut p = Predictions::load(store, &opts.sample)?;
    let (fit, map) = p.fit_ridge(
        store,
        &opts.reference,
        opts.alpha,
        opts.context_um.as_deref(),
        FitFlags {
            per_sample: opts.per_sample,
            anchored: opts.anchored,
            section_folds: true,
        },
    )?;
    let mut rec = ReadoutRecord {
        format: READOUT_FORMAT.into(),
        name: opts.name.clone(),
        model: p.sample.model.clone(),
        sample: opts.sample.clone(),
        reference: opts.reference.clone(),
        genes: p.genes.clone(),
        alpha: fit.alpha,
        context_um: map.context_um,
        cv_pcc: fit.cv_pcc,
        spots: fit.spots,
        features: fit.features,
        embedding_dim: 0,
        hidden_dim: p.hidden_dim(),
        per_sample: map.per_sample,
        anchored: map.anchored,
        mu: map.mu,
        sd: map.sd,
        mu_y: map.mu_y,
        weights: map.weights,
        sha256: String::new(),
    };
    rec.embedding_dim = (rec.features - rec.hidden_dim) / (1 + rec.context_um.len());
    rec.sha256 = rec.digest();
    store.put_readout(&rec, opts.replace)?;
    Ok(rec)
}

impl Predictions {
    /// Predict every patch with the stored readout `rec`: the sample must be embedded
    /// with the readout's model. Its features are computed from its own patches (and
    /// standardised over them when the readout was fitted so).
    pub fn use_readout(&mut self, store: &Store, rec: &ReadoutRecord) -> Result<()> {
        if rec.model != self.sample.model {
            return Err(Error::arg(
                "readout",
                format!(
                    "readout '{}' reads the features of model '{}'; sample '{}' is embedded \
                     with model '{}'",
                    rec.name, rec.model, self.sample.id, self.sample.model
                ),
            ));
        }
        if let Some(p) = rec.problem() {
            return Err(Error::Corrupted {
                path: store.path().to_path_buf(),
                message: format!("readout '{}': {p}", rec.name),
            });
        }
        if rec.genes != self.genes {
            return Err(Error::arg(
                "readout",
                format!(
                    "readout '{}' predicts {} genes, the model of sample '{}' {}",
                    rec.name,
                    rec.genes.len(),
                    self.sample.id,
                    self.genes.len()
                ),
            ));
        }
        let rows = Rows::new(self, store, &rec.context_um, rec.per_sample)?;
        if rows.width() != rec.features {
            return Err(Error::arg(
                "readout",
                format!(
                    "readout '{}' reads {} features per patch; sample '{}' has {}",
                    rec.name,
                    rec.features,
                    self.sample.id,
                    rows.width()
                ),
            ));
        }
        let (f, g) = (rec.features, rec.genes.len());
        let expression: Vec<f32> = (0..self.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let mut x = vec![0.0; f];
                rows.write(i, &mut x);
                let mut out = rec.mu_y.clone();
                if rec.anchored {
                    let h = &self.patches.row(i)[..g];
                    out.iter_mut().zip(h).for_each(|(o, v)| *o += *v as f64);
                }
                for (j, v) in x.iter().enumerate() {
                    let z = (v - rec.mu[j]) / rec.sd[j];
                    for (o, w) in out.iter_mut().zip(&rec.weights[j * g..(j + 1) * g]) {
                        *o += z * w;
                    }
                }
                out.into_iter().map(|v| v as f32)
            })
            .collect();
        drop(rows);
        self.expression = expression;
        self.ridge = None;
        self.method = Method::Readout {
            name: rec.name.clone(),
            reference: rec.reference.clone(),
        };
        Ok(())
    }
}
