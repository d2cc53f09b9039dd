//! In-place migration of schema-1 stores (records without a CRC) to schema 2 (every
//! bincode record followed by a CRC-32; vectors, predictions and patch records by a
//! CRC-32 of their key and bytes): one write transaction rewrites every table and the
//! schema version, so a crash leaves either the old or the new store.

use std::path::Path;

use redb::{ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::catalog::tables::{DOMAINS, EXPRESSION, MODELS, PREDICTIONS, SAMPLES, SPOT_SETS, SPOTS};
use crate::codec;
use crate::engine::tables::{COLLECTIONS, IMPORTS, META, META_SCHEMA, RECORDS, SNAPSHOTS, VECTORS};
use crate::engine::{Store, db_err, guard};
use crate::error::{Error, Result};

/// Rewrite every value of one table with [`codec::add_crc`]. `owned` turns a borrowed
/// key into an owned one and `borrow` back, so the table can be rewritten after it was
/// read.
macro_rules! migrate_table {
    ($txn:expr, $path:expr, $def:expr, |$k:ident| $owned:expr, |$o:ident| $borrow:expr) => {{
        match $txn.open_table($def) {
            Ok(mut t) => {
                let mut rows = Vec::new();
                for kv in t.iter().map_err(|e| db_err($path, e))? {
                    let (key, v) = kv.map_err(|e| db_err($path, e))?;
                    let $k = key.value();
                    rows.push(($owned, codec::add_crc(v.value())));
                }
                for ($o, v) in &rows {
                    t.insert($borrow, v.as_slice())
                        .map_err(|e| db_err($path, e))?;
                }
                rows.len() as u64
            }
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(db_err($path, e)),
        }
    }};
}

fn str_table(
    txn: &WriteTransaction,
    path: &Path,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
) -> Result<u64> {
    Ok(migrate_table!(txn, path, def, |k| k.to_string(), |o| o.as_str()))
}

/// Rewrite a `(collection, id)`-keyed table with the keyed CRC-32 of schema 2. With
/// `had_crc` the schema-1 values end in a CRC-32 of their body (vectors, predictions),
/// which is verified and replaced; otherwise (patch records) they had none.
fn migrate_keyed(
    txn: &WriteTransaction,
    path: &Path,
    def: TableDefinition<'static, (u32, u64), &'static [u8]>,
    had_crc: bool,
) -> Result<u64> {
    let mut t = match txn.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(db_err(path, e)),
    };
    let mut rows = Vec::new();
    for kv in t.iter().map_err(|e| db_err(path, e))? {
        let (k, v) = kv.map_err(|e| db_err(path, e))?;
        let key = k.value();
        let body = if had_crc {
            codec::strip_crc(v.value()).ok_or_else(|| Error::Corrupted {
                path: path.to_path_buf(),
                message: format!(
                    "vector {} of collection {} fails its schema-1 checksum",
                    key.1, key.0
                ),
            })?
        } else {
            v.value()
        };
        rows.push((key, codec::add_keyed_crc(key, body)));
    }
    for (k, v) in &rows {
        t.insert(*k, v.as_slice()).map_err(|e| db_err(path, e))?;
    }
    Ok(rows.len() as u64)
}

/// Migrate a schema-1 store (opened for writing) to the current schema in one
/// transaction; returns the number of records rewritten.
pub(crate) fn v1_to_v2(store: &Store) -> Result<u64> {
    let path = &store.db_path();
    guard(path, "migrating the store to schema 2", || {
        store.write(|txn| migrate_all(txn, path))
    })
    .map_err(|e| match e {
        Error::Corrupted { path, message } => Error::Corrupted {
            path,
            message: format!("schema-1 store could not be migrated: {message}"),
        },
        other => other,
    })
}

/// Every table rewritten, and the schema version.
fn migrate_all(txn: &WriteTransaction, path: &Path) -> Result<u64> {
    let mut n = 0;
    for def in [COLLECTIONS, MODELS, SAMPLES, SPOT_SETS, DOMAINS] {
        n += str_table(txn, path, def)?;
    }
    n += migrate_keyed(txn, path, RECORDS, false)?;
    n += migrate_keyed(txn, path, VECTORS, true)?;
    n += migrate_keyed(txn, path, PREDICTIONS, true)?;
    n += migrate_table!(txn, path, SNAPSHOTS, |k| k, |o| *o);
    n += migrate_table!(txn, path, IMPORTS, |k| (k.0, k.1.to_string()), |o| (
        o.0,
        o.1.as_str()
    ));
    for def in [SPOTS, EXPRESSION] {
        n += migrate_table!(txn, path, def, |k| (k.0.to_string(), k.1), |o| (
            o.0.as_str(),
            o.1
        ));
    }
    {
        let mut meta = txn.open_table(META).map_err(|e| db_err(path, e))?;
        meta.insert(META_SCHEMA, &codec::FORMAT_VERSION.to_le_bytes()[..])
            .map_err(|e| db_err(path, e))?;
    }
    Ok(n)
}
