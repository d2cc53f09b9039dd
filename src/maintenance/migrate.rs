//! In-place migrations, each ending in one write transaction so that a crash leaves
//! either the old or the new store:
//! * schema 1 (records without a CRC) to schema 2 (every bincode record followed by a
//!   CRC-32; vectors, predictions and patch records by a CRC-32 of their key and
//!   bytes): one write transaction rewrites every table and the schema version;
//! * schema 2 to schema 3 (vectors moved from redb into packed files).

use std::path::Path;

use redb::{ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::catalog::tables::{EXPRESSION, PREDICTIONS, SPOTS};
use crate::codec;
use crate::engine::packed::{Block, FileWriter};
use crate::engine::tables::{
    BLOCKS, COLLECTIONS, CollectionInfo, CollectionInfoV2, IMPORTS, META, META_SCHEMA, RECORDS,
    SNAPSHOTS, TOMBSTONES, VECTORS,
};
use crate::engine::{Store, db_err, guard};
use crate::error::{Error, Result};
use crate::index::Quantization;

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
    for def in super::CRC_STR_TABLES {
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
        meta.insert(META_SCHEMA, &codec::SCHEMA_V2.to_le_bytes()[..])
            .map_err(|e| db_err(path, e))?;
    }
    Ok(n)
}

/// Migrate a schema-2 store (opened for writing) to schema 3: every collection's
/// vectors move from redb's `vectors` table into a packed file of the next epoch
/// (written and made durable first), then one write transaction names the files
/// (blocks, row counts), drops the `vectors` table, the tombstones of vectors it no
/// longer held and the snapshots, and writes the schema version. A crash before that
/// commit leaves the schema-2 store as it was (and orphan files, removed later).
/// Returns the number of vectors moved.
pub(crate) fn v2_to_v3(store: &Store) -> Result<u64> {
    let path = &store.db_path();
    guard(path, "migrating the store to schema 3", || {
        migrate_v2(store, path)
    })
    .map_err(|e| match e {
        Error::Corrupted { path, message } => Error::Corrupted {
            path,
            message: format!("schema-2 store could not be migrated: {message}"),
        },
        other => other,
    })
}

fn migrate_v2(store: &Store, path: &Path) -> Result<u64> {
    let txn = store.read()?;
    let cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(path, e))?;
    let mut old: Vec<CollectionInfoV2> = Vec::new();
    for kv in cols.iter().map_err(|e| db_err(path, e))? {
        let (_, v) = kv.map_err(|e| db_err(path, e))?;
        old.push(codec::decode(v.value()).ok_or_else(|| Error::Corrupted {
            path: path.to_path_buf(),
            message: "a schema-2 collection record fails its checksum".into(),
        })?);
    }
    drop(cols);
    let mut moved = 0u64;
    let mut new: Vec<(CollectionInfo, Vec<(u64, Block)>)> = Vec::new();
    for c in old {
        let file = store.packed_path(c.id, c.epoch + 1);
        let mut out = FileWriter::create(file, c.dim)?;
        match txn.open_table(VECTORS) {
            Ok(t) => {
                let mut v = Vec::new();
                for kv in t
                    .range((c.id, 0)..=(c.id, u64::MAX))
                    .map_err(|e| db_err(path, e))?
                {
                    let (k, bytes) = kv.map_err(|e| db_err(path, e))?;
                    if !codec::decode_vector(k.value(), bytes.value(), c.dim, &mut v) {
                        return Err(Error::Corrupted {
                            path: path.to_path_buf(),
                            message: format!(
                                "vector {} of '{}' fails its checksum",
                                k.value().1,
                                c.name
                            ),
                        });
                    }
                    out.push(k.value().1, bytes.value())?;
                    moved += 1;
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(db_err(path, e)),
        }
        let (rows, blocks) = out.finish()?;
        let info = CollectionInfo {
            id: c.id,
            name: c.name,
            model: c.model,
            modality: c.modality,
            dim: c.dim,
            metric: c.metric,
            hnsw: c.hnsw,
            next_id: c.next_id,
            live: rows,
            tombstones: 0,
            generation: c.generation + 1,
            epoch: c.epoch + 1,
            quantization: Quantization::F32,
            rows,
        };
        new.push((info, blocks));
    }
    drop(txn);
    store.write(|txn| {
        {
            let mut cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(path, e))?;
            let mut bt = txn.open_table(BLOCKS).map_err(|e| db_err(path, e))?;
            for (info, blocks) in &new {
                cols.insert(info.name.as_str(), codec::encode(info).as_slice())
                    .map_err(|e| db_err(path, e))?;
                for (first, b) in blocks {
                    bt.insert((info.id, *first), codec::encode(b).as_slice())
                        .map_err(|e| db_err(path, e))?;
                }
            }
            let mut tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(path, e))?;
            tomb.retain(|_, _| false).map_err(|e| db_err(path, e))?;
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(|e| db_err(path, e))?;
            snaps.retain(|_, _| false).map_err(|e| db_err(path, e))?;
            let mut meta = txn.open_table(META).map_err(|e| db_err(path, e))?;
            meta.insert(META_SCHEMA, &codec::FORMAT_VERSION.to_le_bytes()[..])
                .map_err(|e| db_err(path, e))?;
        }
        match txn.delete_table(VECTORS) {
            Ok(_) => Ok(()),
            Err(e) => Err(db_err(path, e)),
        }
    })?;
    // The old epochs' snapshot directories are no longer named by redb.
    if let Ok(rd) = std::fs::read_dir(store.path().join(crate::engine::INDEX_DIR)) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(moved)
}
