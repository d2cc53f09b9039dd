//! The catalog, above the vector engine: what the vectors are of. Registered models
//! (manifest and checksums, files copied into `models/<name>/`), samples (source,
//! geometry, ingest state, where the image files of a sample ingested from them are),
//! a sample's spots with their raw counts and panel expression, the predictor's
//! output per patch, spatial domains, the typed names records carry ([`Modality`],
//! [`SampleKind`], [`IngestStatus`], [`collection_name`]) and [`StoreSummary`]. Its
//! tables live in the same `vortex.redb` as the engine's, and every write goes through
//! the engine's write helper ([`Store::write`]), so a catalog record and the vectors it
//! describes can be committed in one transaction.
//!
//! The files: `tables` (the catalog's table definitions), `models`, `samples`,
//! `spots`, `predictions` (predictions and domains), `readouts` (stored readouts),
//! `kinds`, `summary`.

mod kinds;
mod models;
mod predictions;
mod readouts;
mod samples;
mod spots;
mod summary;
pub(crate) mod tables;

use std::path::Path;

use redb::{ReadableTable, TableDefinition, TableError};

pub use kinds::{IngestStatus, Modality, SampleKind, collection_name};
pub use models::{MODELS_DIR, ModelRecord};
pub use predictions::{DomainRecord, SamplePredictions};
pub use readouts::{READOUT_FORMAT, ReadoutRecord};
pub use samples::{SampleImages, SampleRecord};
pub use spots::{ExpressionRecord, SpotBatch, SpotRecord, SpotSetRecord};
pub use summary::StoreSummary;

use crate::engine::{Store, db_err, decode_or_corrupt};
use crate::error::Result;
use tables::{MODELS, SAMPLES};

/// A `&str`-keyed catalog table of encoded records.
type StrTable = TableDefinition<'static, &'static str, &'static [u8]>;

fn open_read(
    txn: &redb::ReadTransaction,
    t: StrTable,
    path: &Path,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(t) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err(path, e)),
    }
}

impl Store {
    /// Write one value of a `&str`-keyed table in its own durable transaction.
    fn put(&self, t: StrTable, key: &str, value: &[u8]) -> Result<()> {
        let path = self.db_path();
        self.write(|txn| {
            let mut tab = txn.open_table(t).map_err(|e| db_err(&path, e))?;
            tab.insert(key, value).map_err(|e| db_err(&path, e))?;
            Ok(())
        })
    }

    /// The record under `key`, if any (`what` names it in a checksum error).
    fn get_raw<T: serde::de::DeserializeOwned>(
        &self,
        t: StrTable,
        key: &str,
        what: &str,
    ) -> Result<Option<T>> {
        let path = self.db_path();
        let txn = self.read()?;
        let Some(tab) = open_read(&txn, t, &path)? else {
            return Ok(None);
        };
        match tab.get(key).map_err(|e| db_err(&path, e))? {
            Some(v) => Ok(Some(decode_or_corrupt(&path, v.value(), what)?)),
            None => Ok(None),
        }
    }

    /// Every record of the table, in key order.
    fn all_raw<T: serde::de::DeserializeOwned>(&self, t: StrTable, what: &str) -> Result<Vec<T>> {
        let path = self.db_path();
        let txn = self.read()?;
        let Some(tab) = open_read(&txn, t, &path)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for kv in tab.iter().map_err(|e| db_err(&path, e))? {
            let (_, v) = kv.map_err(|e| db_err(&path, e))?;
            out.push(decode_or_corrupt(&path, v.value(), what)?);
        }
        Ok(out)
    }
}

/// Make the catalog tables of a new store (inside the transaction that creates it).
pub(crate) fn create_tables(txn: &redb::WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(MODELS).map_err(|e| db_err(path, e))?;
    txn.open_table(SAMPLES).map_err(|e| db_err(path, e))?;
    Ok(())
}
