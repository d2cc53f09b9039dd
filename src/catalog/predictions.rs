//! Per-patch predictor output (predicted expression, then the hidden representation
//! used for spatial domains), written with the patch's embedding in one transaction
//! ([`Store::insert_predicted`]), and the spatial domains computed from it.

use std::ops::Range;
use std::path::Path;

use redb::TableError;
use serde::{Deserialize, Serialize};

use super::tables::{DOMAINS, PREDICTIONS};
use crate::codec;
use crate::engine::{ImportMark, NewVector, PatchRecord, Store, db_err, live_records_of};
use crate::error::{Error, Result};

/// Write the predictor output of ids `first_id..` of `collection` (one row per id).
fn put_in(
    txn: &redb::WriteTransaction,
    path: &Path,
    collection: u32,
    first_id: u64,
    predicted: &[&[f32]],
) -> Result<()> {
    let mut t = txn.open_table(PREDICTIONS).map_err(|e| db_err(path, e))?;
    let mut buf = Vec::new();
    for (i, v) in predicted.iter().enumerate() {
        codec::encode_vector((collection, first_id + i as u64), v, &mut buf);
        t.insert((collection, first_id + i as u64), buf.as_slice())
            .map_err(|e| db_err(path, e))?;
    }
    Ok(())
}

/// Every live patch of a sample with its predictor output, in id order.
#[derive(Debug, Clone)]
pub struct SamplePredictions {
    /// Patch ids.
    pub ids: Vec<u64>,
    /// Patch records, one per id.
    pub records: Vec<PatchRecord>,
    /// Values per patch (`width` each, row-major).
    pub values: Vec<f32>,
    /// Values per patch: predicted genes + hidden size.
    pub width: usize,
}

impl SamplePredictions {
    /// The values of patch `i` (index into `ids`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// Spatial domains of a sample: k-means labels of its patches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// Sample id.
    pub sample: String,
    /// Number of domains.
    pub k: usize,
    /// k-means seed.
    pub seed: u64,
    /// k-means restarts.
    pub restarts: usize,
    /// Inertia of the kept clustering.
    pub inertia: f64,
    /// Patch ids, in the order of `labels`.
    pub ids: Vec<u64>,
    /// Domain of each patch (0-based).
    pub labels: Vec<u32>,
}

impl Store {
    /// [`Store::insert`] with the predictor's output for each vector (`predicted[i]`
    /// belongs to `batch[i]`; empty = none) written in the same transaction, to the
    /// `predictions` table.
    pub fn insert_predicted(
        &self,
        collection: &str,
        batch: &[NewVector<'_>],
        predicted: &[&[f32]],
        mark: Option<ImportMark<'_>>,
    ) -> Result<Range<u64>> {
        if !predicted.is_empty() && predicted.len() != batch.len() {
            return Err(Error::Inference(format!(
                "{} predictions for {} vectors",
                predicted.len(),
                batch.len()
            )));
        }
        let path = self.db_path();
        self.insert_with(collection, batch, mark, |txn, info, range| {
            if predicted.is_empty() {
                return Ok(());
            }
            put_in(txn, &path, info.id, range.start, predicted)
        })
    }

    /// The predictor output of every live patch of `sample` in `collection`. A sample
    /// whose patches have none (its model has no predictor) is an error that says so.
    pub fn sample_predictions(&self, collection: &str, sample: &str) -> Result<SamplePredictions> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let preds = match txn.open_table(PREDICTIONS) {
            Ok(t) => Some(t),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err(&path, e)),
        };
        let mut out = SamplePredictions {
            ids: Vec::new(),
            records: Vec::new(),
            values: Vec::new(),
            width: 0,
        };
        let mut v = Vec::new();
        live_records_of(&txn, &path, info.id, sample, |id, r| {
            let bytes = match &preds {
                Some(t) => t.get((info.id, id)).map_err(|e| db_err(&path, e))?,
                None => None,
            };
            let Some(bytes) = bytes else {
                return Err(Error::arg(
                    "sample",
                    format!(
                        "sample '{sample}' has no predicted expression: its model has no \
                         predictor network, or it was ingested by an older vortexdb; \
                         re-ingest it into a new store with a model that has one"
                    ),
                ));
            };
            let width = (bytes.value().len().saturating_sub(4)) / 4;
            if out.width == 0 {
                out.width = width;
            }
            if width != out.width
                || !codec::decode_vector((info.id, id), bytes.value(), width, &mut v)
            {
                return Err(Error::Corrupted {
                    path: path.clone(),
                    message: format!("prediction of patch {id} fails its checksum"),
                });
            }
            out.ids.push(id);
            out.records.push(r);
            out.values.extend_from_slice(&v);
            Ok(())
        })?;
        Ok(out)
    }

    /// Store a sample's domains (replacing earlier ones) in one durable transaction.
    pub fn put_domains(&self, rec: &DomainRecord) -> Result<()> {
        self.put(DOMAINS, &rec.sample, &codec::encode(rec))
    }

    /// The stored domains of a sample, if any.
    pub fn domains(&self, sample: &str) -> Result<Option<DomainRecord>> {
        self.get_raw(DOMAINS, sample, "domain record")
    }
}
