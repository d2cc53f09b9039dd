//! Spots of a sample in the store: one [`SpotSetRecord`] per sample (`spot_sets`), a
//! [`SpotRecord`] per spot with its raw counts (`spots`), the normalised and smoothed
//! panel expression of every kept spot (`expression`), and the spot embeddings in the
//! model's `{model}:spots` collection. [`Store::put_spots`] writes all of it in one
//! durable transaction: a failed ingest leaves nothing behind.

use redb::{ReadableTable, TableError};
use serde::{Deserialize, Serialize};

use super::tables::{EXPRESSION, SPOT_SETS, SPOTS};
use crate::codec;
use crate::engine::{
    NewVector, PatchRecord, Store, db_err, decode_or_corrupt, insert_in, validate_vector,
};
use crate::error::{Error, Result};
use crate::expression::{QcSettings, QcSummary, SpotQc};

/// What was ingested for a sample's spots, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotSetRecord {
    /// Sample id.
    pub sample: String,
    /// Layout read (`her2st`, `visium`, `parquet`).
    pub format: String,
    /// Files read.
    pub files: Vec<String>,
    /// Fingerprint of the files and settings; a re-run must match it.
    pub fingerprint: String,
    /// Model whose gene encoder embedded the spots.
    pub model: String,
    /// Collection of the spot embeddings.
    pub collection: String,
    /// Every gene of the count matrix (column order of [`SpotRecord::counts`]).
    pub genes: Vec<String>,
    /// QC thresholds applied.
    pub qc: QcSettings,
    /// What each QC rule removed.
    pub qc_summary: QcSummary,
    /// Spots dropped because the positions table puts them outside the tissue.
    pub dropped_outside_tissue: usize,
    /// Library-size normalisation target.
    pub normalize_total: f64,
    /// Genes of [`ExpressionRecord`] values: the model's encoder genes, then its
    /// predicted genes not already listed.
    pub panel: Vec<String>,
    /// Encoder genes absent from the data (embedded as 0).
    pub encoder_missing: Vec<String>,
    /// Predicted genes absent from the data.
    pub predicted_missing: Vec<String>,
    /// Nearest spots averaged into [`ExpressionRecord::smoothed`].
    pub smooth_k: usize,
    /// Nearest spots averaged into the encoder input (from the model manifest).
    pub encoder_smooth_k: usize,
    /// Highly variable genes of this sample (scanpy `seurat` flavour), most variable first.
    pub hvg: Vec<String>,
    /// Most expressed genes (mean log1p expression; MT-, RPL, RPS excluded).
    pub top_expressed: Vec<String>,
    /// Spots stored (all read, kept or not).
    pub spots: usize,
    /// Spots kept by QC (embedded).
    pub kept: usize,
    /// Spot diameter in image pixels, when known.
    pub spot_diameter_px: Option<f64>,
    /// Affine from image pixels (x, y) to the sample's (x, y): [a, b, c, d, e, f] with
    /// x' = a x + b y + c, y' = d x + e y + f.
    pub affine: [f64; 6],
}

/// One spot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotRecord {
    /// Spot id (barcode, `XxY`, ...).
    pub id: String,
    /// Centre (x, y) in pixels of the sample's image.
    pub pixel: [f64; 2],
    /// Array (grid) coordinates (x, y), when known.
    pub array: Option<[f64; 2]>,
    /// Position (z, y, x) in the sample's frame (source voxels), via the affine.
    pub position: [f64; 3],
    /// Quality metrics and whether the spot was kept.
    pub qc: SpotQc,
    /// Id of the spot's embedding in the spots collection (kept spots).
    pub vector_id: Option<u64>,
    /// Raw counts as (gene column, count), zeros omitted.
    pub counts: Vec<(u32, f32)>,
}

/// Expression of a kept spot over the sample's panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpressionRecord {
    /// log1p of counts normalised to `normalize_total`.
    pub normalized: Vec<f32>,
    /// The same averaged over the spot's `smooth_k` nearest spots.
    pub smoothed: Vec<f32>,
}

/// Everything [`Store::put_spots`] writes for a sample.
#[derive(Debug, Clone)]
pub struct SpotBatch {
    /// The set's record (`collection` must exist).
    pub set: SpotSetRecord,
    /// Every spot, in order; `vector_id` is filled in by `put_spots`.
    pub spots: Vec<SpotRecord>,
    /// Expression of the kept spots, in spot order.
    pub expression: Vec<ExpressionRecord>,
    /// Embeddings of the kept spots, in spot order.
    pub embeddings: Vec<Vec<f32>>,
    /// Patch-style provenance of each embedding (sample and spot position).
    pub records: Vec<PatchRecord>,
}

impl Store {
    /// Write a sample's spots, expression and embeddings in one durable transaction.
    /// Refused if the sample already has spots.
    pub fn put_spots(&self, mut b: SpotBatch) -> Result<()> {
        self.ensure_writable()?;
        let path = self.db_path();
        let info = self.collection(&b.set.collection)?;
        for (i, v) in b.embeddings.iter().enumerate() {
            validate_vector(v, info.dim, info.metric, i)?;
        }
        let kept: Vec<usize> = (0..b.spots.len()).filter(|&i| b.spots[i].qc.kept).collect();
        if kept.len() != b.embeddings.len() || kept.len() != b.expression.len() {
            return Err(Error::Inference(format!(
                "spot batch of {}: {} kept spots, {} embeddings, {} expression rows",
                b.set.sample,
                kept.len(),
                b.embeddings.len(),
                b.expression.len()
            )));
        }
        let (cinfo, range) = self.write_data(|txn| {
            let mut sets = txn.open_table(SPOT_SETS).map_err(|e| db_err(&path, e))?;
            if sets
                .get(b.set.sample.as_str())
                .map_err(|e| db_err(&path, e))?
                .is_some()
            {
                return Err(Error::arg(
                    "sample",
                    format!("sample '{}' already has spots in this store", b.set.sample),
                ));
            }
            let batch: Vec<NewVector> = b
                .embeddings
                .iter()
                .zip(&b.records)
                .map(|(v, r)| NewVector {
                    vector: v,
                    record: Some(r.clone()),
                })
                .collect();
            let (cinfo, range) = insert_in(txn, &path, &b.set.collection, &batch, None)?;
            for (k, &i) in kept.iter().enumerate() {
                b.spots[i].vector_id = Some(range.start + k as u64);
            }
            let mut spots = txn.open_table(SPOTS).map_err(|e| db_err(&path, e))?;
            for (i, s) in b.spots.iter().enumerate() {
                spots
                    .insert(
                        (b.set.sample.as_str(), i as u32),
                        codec::encode(s).as_slice(),
                    )
                    .map_err(|e| db_err(&path, e))?;
            }
            let mut expr = txn.open_table(EXPRESSION).map_err(|e| db_err(&path, e))?;
            for (e, &i) in b.expression.iter().zip(&kept) {
                expr.insert(
                    (b.set.sample.as_str(), i as u32),
                    codec::encode(e).as_slice(),
                )
                .map_err(|e| db_err(&path, e))?;
            }
            sets.insert(b.set.sample.as_str(), codec::encode(&b.set).as_slice())
                .map_err(|e| db_err(&path, e))?;
            Ok((cinfo, range))
        })?;
        self.keep_graph_in_step(
            &cinfo,
            range.start,
            b.embeddings.iter().map(|v| v.as_slice()),
        );
        Ok(())
    }

    /// The spot set of a sample, if its spots were ingested.
    pub fn spot_set(&self, sample: &str) -> Result<Option<SpotSetRecord>> {
        self.get_raw(SPOT_SETS, sample, "spot set")
    }

    /// The spot set of `sample`, or [`Error::UnknownSample`] listing the samples that
    /// have spots (`name`: the parameter that named the sample).
    pub fn require_spot_set(&self, name: &str, sample: &str) -> Result<SpotSetRecord> {
        self.spot_set(sample)?.ok_or_else(|| Error::UnknownSample {
            name: name.into(),
            sample: sample.into(),
            purpose: "has no spots in this store".into(),
            known: self
                .spot_sets()
                .map(|v| v.into_iter().map(|x| x.sample).collect())
                .unwrap_or_default(),
        })
    }

    /// Every spot set in the store.
    pub fn spot_sets(&self) -> Result<Vec<SpotSetRecord>> {
        self.all_raw(SPOT_SETS, "spot set")
    }

    /// The spots of a sample, in order, with the expression of the kept ones.
    pub fn spots(&self, sample: &str) -> Result<Vec<(SpotRecord, Option<ExpressionRecord>)>> {
        let path = self.db_path();
        let txn = self.read()?;
        let spots = match txn.open_table(SPOTS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(&path, e)),
        };
        let expr = txn.open_table(EXPRESSION).map_err(|e| db_err(&path, e))?;
        let mut out = Vec::new();
        for kv in spots
            .range((sample, 0u32)..=(sample, u32::MAX))
            .map_err(|e| db_err(&path, e))?
        {
            let (k, v) = kv.map_err(|e| db_err(&path, e))?;
            let s: SpotRecord = decode_or_corrupt(&path, v.value(), "spot")?;
            let e = match expr.get(k.value()).map_err(|e| db_err(&path, e))? {
                Some(v) => Some(decode_or_corrupt(&path, v.value(), "expression")?),
                None => None,
            };
            out.push((s, e));
        }
        Ok(out)
    }
}
