//! The vector engine: a store directory holding `vortex.redb` (the source of truth)
//! and `index/` (HNSW snapshots derived from it), and everything about the vectors in
//! it: collections, insert/get/delete, tombstones, import marks, the HNSW life cycle
//! and search. It knows nothing of models, samples or spots: the catalog is built on
//! its transaction helpers ([`Store::write`]), and the layers above name their own
//! tables and the schema-1 migration when a store is created or opened ([`Schema`]).
//!
//! Guarantees:
//! * every write is one redb transaction committed with `Durability::Immediate`: once a
//!   call returns, its batch survives a crash; a batch interrupted before that is absent;
//! * the HNSW graph is derived: on first use of a collection the snapshot named in redb
//!   is checksummed and loaded, anything newer is caught up from redb, and a missing,
//!   stale or damaged snapshot is rebuilt (with a warning); each collection's graph has
//!   its own lock, and a search never writes (snapshots are written at close);
//! * every search result is re-checked against redb's tombstones and the caller's
//!   filter, and an HNSW search that cannot fill `k` falls back to exact search;
//! * one writer process at a time (an OS lock on `LOCK`), any number of readers.
//!
//! The files: `open` (create, open, locking, the format marker), `txn` (the read and
//! write transaction helpers, the global generation), `collections` (create, look up,
//! list, import progress, [`Store::info`]), `vectors` (insert, get, delete, the vector
//! checks), `snapshots` (the graph kept in step with redb, snapshots and their
//! self-healing, compaction), `search` (exact and HNSW search, filters, similarities),
//! `tables` (the table definitions and their records).

mod collections;
mod open;
pub(crate) mod packed;
mod search;
mod snapshots;
pub(crate) mod tables;
mod txn;
mod vectors;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase};

pub use collections::{CollectionDisk, SnapshotState, StoreInfo};
pub(crate) use open::{PrivateCopy, Schema, create_database};
pub use packed::VECTORS_DIR;
pub use search::{Filter, Hit, Region, Scored, ScoredPatch, SearchOptions};
pub use tables::{CollectionInfo, CollectionSpec, ImportProgress, PatchRecord};
pub(crate) use vectors::{insert_in, live_records_of, validate_vector};

use crate::codec;
use crate::error::{Error, Result};

/// File name of the redb database inside a store directory.
pub const DB_FILE: &str = "vortex.redb";
/// File name of the writer lock inside a store directory.
pub const LOCK_FILE: &str = "LOCK";
/// Directory of HNSW snapshots inside a store directory.
pub const INDEX_DIR: &str = "index";

enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Write(d) => d.begin_read(),
            Db::Read(d) => d.begin_read(),
        }
    }
}

/// One vector to insert, with optional provenance.
#[derive(Debug, Clone)]
pub struct NewVector<'a> {
    /// The embedding (length = collection dimension, finite values).
    pub vector: &'a [f32],
    /// Sample and patch geometry, when known.
    pub record: Option<PatchRecord>,
}

/// A resumable-import marker committed with a batch.
#[derive(Debug, Clone)]
pub struct ImportMark<'a> {
    /// Fingerprint of the source (e.g. file length and checksum).
    pub source: &'a str,
    /// Progress after this batch.
    pub progress: ImportProgress,
}

/// An open store. Cheap to share across threads (`&Store` is `Sync`).
pub struct Store {
    dir: PathBuf,
    /// Where the packed vectors and index snapshots are: `dir`, or the private
    /// migrated copy a read-only open of an older store reads.
    files: PathBuf,
    db: Db,
    _lock: Option<File>,
    /// A private recovered copy of the database a read-only open reads (kept on disk
    /// while the store is open); `None` for the store's own file.
    _scratch: Option<Box<dyn std::any::Any + Send + Sync>>,
    write_guard: Mutex<()>,
    /// Each collection's graph in a slot of its own: catching up or rebuilding one
    /// holds only its slot, never the map (searches of other collections go on).
    live: RwLock<HashMap<u32, snapshots::Slot>>,
    /// Collections whose graph was caught up or rebuilt by a search and whose snapshot
    /// is not yet written (written by [`Store::save_snapshots`] and when a writable
    /// store closes: never on a search's path).
    snapshot_due: Mutex<std::collections::BTreeSet<String>>,
    packed: RwLock<HashMap<u32, std::sync::Arc<packed::Packed>>>,
    /// Each collection's provenance for filters, at a generation.
    meta: RwLock<HashMap<u32, (u64, std::sync::Arc<search::Meta>)>>,
    warnings: Mutex<Vec<String>>,
}

/// An I/O error on the store's own file: a read past the end or bytes that cannot be
/// parsed are damage to the store ([`Error::Corrupted`]), anything else a failing disk.
pub(crate) fn io_err(path: &Path, io: std::io::Error, doing: &str) -> Error {
    match io.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => Error::Corrupted {
            path: path.to_path_buf(),
            message: format!("{doing}: {io}"),
        },
        _ => Error::io(path, io),
    }
}

/// A redb error on the database at `path` as an [`Error`].
pub(crate) fn db_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Corrupted(message) => Error::Corrupted {
            path: path.to_path_buf(),
            message,
        },
        redb::Error::Io(io) => io_err(path, io, "cannot read the database"),
        other => Error::Database {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Run `f`, turning a panic inside redb or hnsw_rs on damaged data into an error.
pub(crate) fn guard<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Error::Corrupted {
                path: path.to_path_buf(),
                message: format!("{what} failed on damaged data ({msg})"),
            })
        }
    }
}

/// Decode the patch record stored under `key` (its CRC-32 covers the key too).
pub(crate) fn decode_record_at(path: &Path, key: codec::Key, bytes: &[u8]) -> Result<PatchRecord> {
    codec::decode_at(key, bytes).ok_or_else(|| Error::Corrupted {
        path: path.to_path_buf(),
        message: format!(
            "the patch record of vector {} in collection {} fails its checksum",
            key.1, key.0
        ),
    })
}

/// Decode a CRC-checked record of any table; `what` names it in the error.
pub(crate) fn decode_or_corrupt<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    codec::decode(bytes).ok_or_else(|| Error::Corrupted {
        path: path.to_path_buf(),
        message: format!(
            "a {} record fails its checksum or cannot be decoded",
            what.strip_suffix(" record").unwrap_or(what)
        ),
    })
}
