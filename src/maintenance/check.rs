//! `Store::check`: every page of `vortex.redb` (redb's integrity check), every packed
//! vector, every record's CRC-32 and every registered model file, verified.

use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use crate::catalog::tables::{DOMAINS, EXPRESSION, MODELS, PREDICTIONS, SAMPLES, SPOT_SETS, SPOTS};
use crate::codec;
use crate::engine::tables::{BLOCKS, COLLECTIONS, IMPORTS, RECORDS, SNAPSHOTS};
use crate::engine::{Store, db_err};
use crate::error::{Error, Result};

impl Store {
    /// Verify the whole store: redb's page checksums (writers only), the CRC of every
    /// stored vector and record, every HNSW snapshot, and every registered model's
    /// files. Returns the number of vectors checked.
    pub fn check(&mut self) -> Result<u64> {
        let path = self.db_path();
        self.check_pages()?;
        let mut checked = 0u64;
        for c in self.collections()? {
            let txn = self.read()?;
            let packed = self.packed_for(&txn, &c)?;
            for row in 0..packed.rows() {
                packed.vector_at(row)?;
                checked += 1;
            }
            drop(packed);
            drop(txn);
            // Loading the graph verifies its snapshot; a writer rebuilds a bad one.
            self.sync_index(&c.name)?;
        }
        // Every structured record carries a CRC-32 (schema 2): verify them all.
        let txn = self.read()?;
        let str_tables = [
            (COLLECTIONS, "collection"),
            (MODELS, "model"),
            (SAMPLES, "sample"),
            (SPOT_SETS, "spot set"),
            (DOMAINS, "domains"),
        ];
        for (def, what) in str_tables {
            check_table(&txn, def, &path, what, |_, v| codec::strip_crc(v).is_some())?;
        }
        let keyed =
            |k: &redb::AccessGuard<'_, (u32, u64)>, v: &[u8]| codec::keyed_crc_ok(k.value(), v);
        check_table(&txn, RECORDS, &path, "patch record", keyed)?;
        check_table(&txn, PREDICTIONS, &path, "prediction", keyed)?;
        check_table(&txn, BLOCKS, &path, "vector block", |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        check_table(&txn, SNAPSHOTS, &path, "snapshot", |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        check_table(&txn, IMPORTS, &path, "import progress", |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        check_table(&txn, SPOTS, &path, "spot", |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        check_table(&txn, EXPRESSION, &path, "expression", |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        drop(txn);
        for m in self.models()? {
            if !self.model_files_intact(&m)? {
                return Err(Error::Corrupted {
                    path: self.model_dir(&m.name),
                    message: format!(
                        "model '{}': a file is missing or differs from the checksum recorded when it was added (re-add the model to restore it)",
                        m.name
                    ),
                });
            }
        }
        Ok(checked)
    }
}

/// Verify every value of one table with `ok` (given the key and the value bytes);
/// `what` names the record in the error.
fn check_table<K: redb::Key + 'static>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<'static, K, &'static [u8]>,
    path: &Path,
    what: &str,
    ok: impl Fn(&redb::AccessGuard<'_, K>, &[u8]) -> bool,
) -> Result<u64> {
    let t = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(db_err(path, e)),
    };
    let mut n = 0;
    for kv in t.iter().map_err(|e| db_err(path, e))? {
        let (k, v) = kv.map_err(|e| db_err(path, e))?;
        if !ok(&k, v.value()) {
            return Err(Error::Corrupted {
                path: path.to_path_buf(),
                message: format!("a {what} record fails its checksum"),
            });
        }
        n += 1;
    }
    Ok(n)
}
