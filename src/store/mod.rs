//! The store: a directory holding `vortex.redb` (the source of truth) and `index/`
//! (HNSW snapshots derived from it).
//!
//! Guarantees:
//! * every write is one redb transaction committed with `Durability::Immediate`: once a
//!   call returns, its batch survives a crash; a batch interrupted before that is absent;
//! * the HNSW graph is derived: on first use of a collection the snapshot named in redb
//!   is checksummed and loaded, anything newer is caught up from redb, and a missing,
//!   stale or damaged snapshot is rebuilt (with a warning);
//! * every search result is re-checked against redb's tombstones and the caller's
//!   filter, and an HNSW search that cannot fill `k` falls back to exact search;
//! * one writer process at a time (an OS lock on `LOCK`), any number of readers;
//! * [`Store::backup`] copies the store from one read snapshot beside an active writer.

mod backup;
mod catalog;
mod check;
mod kinds;
mod migrate;
mod predictions;
mod search;
mod spots;
mod summary;
mod tables;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable};

pub use backup::BackupReport;
pub use catalog::{MODELS_DIR, ModelRecord, SampleRecord};
pub use kinds::{IngestStatus, Modality, SampleKind, collection_name};
pub use predictions::{DomainRecord, SamplePredictions};
pub use search::{Filter, Hit, Region, Scored, ScoredPatch, SearchOptions};
pub use spots::{ExpressionRecord, SpotBatch, SpotRecord, SpotSetRecord};
pub use summary::StoreSummary;
pub use tables::{CollectionInfo, CollectionSpec, ImportProgress, PatchRecord};

use crate::codec;
use crate::error::{Error, Result};
use crate::index::{self, VectorIndex};
use tables::*;

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

/// State of a collection's on-disk snapshot, as reported by [`Store::info`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotState {
    /// Generation of the snapshot, if there is one.
    pub generation: Option<u64>,
    /// True when the snapshot reflects the collection's current generation and epoch.
    pub fresh: bool,
}

/// Summary of a store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreInfo {
    /// Store directory.
    pub path: PathBuf,
    /// On-disk schema version.
    pub schema_version: u32,
    /// Global generation.
    pub generation: u64,
    /// Size of `vortex.redb` in bytes.
    pub db_bytes: u64,
    /// Collections with their snapshot state.
    pub collections: Vec<(CollectionInfo, SnapshotState)>,
}

/// An open store. Cheap to share across threads (`&Store` is `Sync`).
pub struct Store {
    dir: PathBuf,
    db: Db,
    _lock: Option<File>,
    write_guard: Mutex<()>,
    live: RwLock<HashMap<u32, search::Live>>,
    warnings: Mutex<Vec<String>>,
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::Corrupted(message) => Error::Corrupted {
            path: path.to_path_buf(),
            message,
        },
        redb::Error::Io(io) => Error::io(path, io),
        other => Error::Database {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Run `f`, turning a panic inside redb or hnsw_rs on damaged data into an error.
fn guard<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
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

fn map_open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
            path: path.to_path_buf(),
            pid: "unknown".into(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::io(path, io),
        other => Error::Corrupted {
            path: path.to_path_buf(),
            message: format!("cannot open database: {other}"),
        },
    }
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    b
}

impl Store {
    /// Create a new, empty store in `dir` (created if missing; must not already hold a
    /// store) and open it for writing.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(Error::bad_file(dir, "already holds a vortexdb store"));
        }
        std::fs::create_dir_all(dir.join(INDEX_DIR)).map_err(|e| Error::io(&dir, e))?;
        let lock = acquire_lock(&dir)?;
        let db = builder()
            .create(&db_path)
            .map_err(|e| map_open_error(&db_path, e))?;
        let txn = db.begin_write().map_err(|e| db_err(&db_path, e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_FORMAT, FORMAT_NAME)
                .map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_SCHEMA, &codec::FORMAT_VERSION.to_le_bytes()[..])
                .map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_GENERATION, &0u64.to_le_bytes()[..])
                .map_err(|e| db_err(&db_path, e))?;
            for t in [VECTORS, RECORDS] {
                txn.open_table(t).map_err(|e| db_err(&db_path, e))?;
            }
            txn.open_table(COLLECTIONS)
                .map_err(|e| db_err(&db_path, e))?;
            txn.open_table(TOMBSTONES)
                .map_err(|e| db_err(&db_path, e))?;
            txn.open_table(IMPORTS).map_err(|e| db_err(&db_path, e))?;
            txn.open_table(SNAPSHOTS).map_err(|e| db_err(&db_path, e))?;
            catalog::create_tables(&txn, &db_path)?;
        }
        txn.commit().map_err(|e| db_err(&db_path, e))?;
        index::sync_dir(&dir)?;
        Ok(Store::assemble(dir, Db::Write(db), Some(lock)))
    }

    /// Open an existing store for writing. Fails with [`Error::Locked`] while another
    /// process writes to it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let db_path = check_store_dir(&dir)?;
        let lock = acquire_lock(&dir)?;
        let db = guard(&db_path, "opening the database", || {
            builder()
                .open(&db_path)
                .map_err(|e| map_open_error(&db_path, e))
        })?;
        let store = Store::assemble(dir, Db::Write(db), Some(lock));
        store.check_meta()?;
        Ok(store)
    }

    /// Open an existing store read-only. Any number of readers may run beside one
    /// writer. A store left unclean by a crashed writer is repaired first when no
    /// writer holds it.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let db_path = check_store_dir(&dir)?;
        let first = guard(&db_path, "opening the database", || {
            builder()
                .open_read_only(&db_path)
                .map_err(|e| map_open_error(&db_path, e))
        });
        let db = match first {
            Ok(db) => db,
            Err(Error::Corrupted { .. }) if lock_is_free(&dir) => {
                // Likely a crashed writer: a writable open runs redb's recovery.
                drop(Store::open(&dir)?);
                guard(&db_path, "opening the database", || {
                    builder()
                        .open_read_only(&db_path)
                        .map_err(|e| map_open_error(&db_path, e))
                })?
            }
            Err(e) => return Err(e),
        };
        let store = Store::assemble(dir.clone(), Db::Read(db), None);
        match store.check_meta() {
            Err(Error::Version { found, .. })
                if found == codec::SCHEMA_V1 && lock_is_free(&dir) =>
            {
                drop(store);
                let w = Store::open(&dir)?;
                let warnings = w.take_warnings();
                drop(w);
                let s = Store::open_read_only(&dir)?;
                s.warnings.lock().expect("warnings lock").extend(warnings);
                Ok(s)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(store),
        }
    }

    fn assemble(dir: PathBuf, db: Db, lock: Option<File>) -> Store {
        Store {
            dir,
            db,
            _lock: lock,
            write_guard: Mutex::new(()),
            live: RwLock::new(HashMap::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// True when opened for writing.
    pub fn is_writable(&self) -> bool {
        matches!(self.db, Db::Write(_))
    }

    /// Warnings raised since the last call (e.g. a damaged snapshot that was rebuilt).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    pub(crate) fn warn(&self, msg: String) {
        log::warn!("{msg}");
        self.warnings.lock().expect("warnings lock").push(msg);
    }

    fn writer(&self) -> Result<&Database> {
        match &self.db {
            Db::Write(d) => Ok(d),
            Db::Read(_) => Err(Error::ReadOnly("write")),
        }
    }

    pub(crate) fn read(&self) -> Result<ReadTransaction> {
        self.db.begin_read().map_err(|e| db_err(&self.db_path(), e))
    }

    fn check_meta(&self) -> Result<()> {
        let path = self.db_path();
        guard(&path, "reading store metadata", || {
            let txn = self.read()?;
            let meta = txn.open_table(META).map_err(|_| Error::Corrupted {
                path: path.clone(),
                message: "no vortexdb metadata table (the file is damaged, or was not written by \
                          vortexdb)"
                    .into(),
            })?;
            let format = meta
                .get(META_FORMAT)
                .map_err(|e| db_err(&path, e))?
                .map(|v| v.value().to_vec());
            if format.as_deref() != Some(FORMAT_NAME) {
                return Err(Error::Corrupted {
                    path: path.clone(),
                    message:
                        "the vortexdb format marker is missing or wrong (the file is damaged, \
                              or was not written by vortexdb)"
                            .into(),
                });
            }
            let version = meta
                .get(META_SCHEMA)
                .map_err(|e| db_err(&path, e))?
                .and_then(|v| v.value().try_into().ok().map(u32::from_le_bytes))
                .ok_or_else(|| Error::Corrupted {
                    path: path.clone(),
                    message: "schema version missing".into(),
                })?;
            if version == codec::SCHEMA_V1
                && let Db::Write(db) = &self.db
            {
                let n = migrate::v1_to_v2(db, &path)?;
                self.warn(format!(
                    "{}: migrated from schema 1 to schema {} (a CRC-32 on each of {n} records)",
                    path.display(),
                    codec::FORMAT_VERSION
                ));
                return Ok(());
            }
            if version != codec::FORMAT_VERSION {
                return Err(Error::Version {
                    path: path.clone(),
                    found: version,
                    oldest: codec::OLDEST_SUPPORTED,
                    supported: codec::FORMAT_VERSION,
                });
            }
            Ok(())
        })
    }

    /// Create a collection. Fails if the name exists or the spec is invalid.
    pub fn create_collection(&self, spec: &CollectionSpec) -> Result<CollectionInfo> {
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(Error::arg(
                "collection",
                format!(
                    "invalid collection name '{}' (use letters, digits, - _ . :)",
                    spec.name
                ),
            ));
        }
        if spec.dim == 0 || spec.dim > 65_536 {
            return Err(Error::arg(
                "collection",
                format!("invalid dimension {}", spec.dim),
            ));
        }
        let (lo, hi) = crate::limits::M_RANGE;
        crate::limits::int_arg("m", spec.hnsw.m, lo, hi)?;
        crate::limits::int_arg("ef_construction", spec.hnsw.ef_construction, 1, 100_000)?;
        let db = self.writer()?;
        let path = self.db_path();
        let _w = self.write_guard.lock().expect("write lock");
        let txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        let info = {
            let mut cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
            if cols
                .get(spec.name.as_str())
                .map_err(|e| db_err(&path, e))?
                .is_some()
            {
                return Err(Error::arg(
                    "collection",
                    format!("collection '{}' already exists", spec.name),
                ));
            }
            let mut max_id = 0u32;
            for entry in cols.iter().map_err(|e| db_err(&path, e))? {
                let (_, v) = entry.map_err(|e| db_err(&path, e))?;
                let c: CollectionInfo = decode_or_corrupt(&path, v.value(), "collection")?;
                max_id = max_id.max(c.id + 1);
                if spec.model != "raw" && c.model == spec.model && c.modality == spec.modality {
                    return Err(Error::arg(
                        "collection",
                        format!(
                            "model '{}' already has a {} collection ('{}'); embeddings of one model and modality share one collection",
                            spec.model, spec.modality, c.name
                        ),
                    ));
                }
            }
            let info = CollectionInfo {
                id: max_id,
                name: spec.name.clone(),
                model: spec.model.clone(),
                modality: spec.modality.clone(),
                dim: spec.dim,
                metric: spec.metric,
                hnsw: spec.hnsw,
                next_id: 0,
                live: 0,
                tombstones: 0,
                generation: 0,
                epoch: 0,
            };
            cols.insert(spec.name.as_str(), codec::encode(&info).as_slice())
                .map_err(|e| db_err(&path, e))?;
            info
        };
        bump_generation(&txn, &path)?;
        txn.commit().map_err(|e| db_err(&path, e))?;
        Ok(info)
    }

    /// Look up a collection by name.
    pub fn collection(&self, name: &str) -> Result<CollectionInfo> {
        let txn = self.read()?;
        self.collection_in(&txn, name)
    }

    fn collection_in(&self, txn: &ReadTransaction, name: &str) -> Result<CollectionInfo> {
        let path = self.db_path();
        let cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
        match cols.get(name).map_err(|e| db_err(&path, e))? {
            Some(v) => decode_or_corrupt(&path, v.value(), "collection"),
            None => {
                drop(cols);
                let known: Vec<String> = self.collections()?.into_iter().map(|c| c.name).collect();
                Err(Error::UnknownCollection {
                    name: name.to_string(),
                    known,
                })
            }
        }
    }

    /// All collections, by name.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let path = self.db_path();
        let txn = self.read()?;
        let cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
        let mut out = Vec::new();
        for entry in cols.iter().map_err(|e| db_err(&path, e))? {
            let (_, v) = entry.map_err(|e| db_err(&path, e))?;
            out.push(decode_or_corrupt(&path, v.value(), "collection")?);
        }
        Ok(out)
    }

    /// Progress of an earlier import of `source` into `collection`, if any.
    pub fn import_progress(
        &self,
        collection: &str,
        source: &str,
    ) -> Result<Option<ImportProgress>> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let t = txn.open_table(IMPORTS).map_err(|e| db_err(&path, e))?;
        match t.get((info.id, source)).map_err(|e| db_err(&path, e))? {
            Some(v) => Ok(Some(decode_or_corrupt(
                &path,
                v.value(),
                "import progress",
            )?)),
            None => Ok(None),
        }
    }

    /// Insert a batch in one durable transaction and return the ids assigned (a
    /// contiguous range). Every vector is validated first; on error nothing is written.
    pub fn insert(
        &self,
        collection: &str,
        batch: &[NewVector<'_>],
        mark: Option<ImportMark<'_>>,
    ) -> Result<Range<u64>> {
        self.insert_predicted(collection, batch, &[], mark)
    }

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
        let db = self.writer()?;
        let path = self.db_path();
        let before = self.collection(collection)?;
        for (i, nv) in batch.iter().enumerate() {
            validate_vector(nv.vector, before.dim, before.metric, i)?;
        }
        let _w = self.write_guard.lock().expect("write lock");
        let mut txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&path, e))?;
        let (info, range) = insert_in(&txn, &path, collection, batch, mark.as_ref())?;
        if !predicted.is_empty() {
            predictions::put_in(&txn, &path, info.id, range.start, predicted)?;
        }
        bump_generation(&txn, &path)?;
        txn.commit().map_err(|e| db_err(&path, e))?;
        // Keep a loaded graph in step; otherwise it catches up when next used.
        let prepared: Vec<(u64, Vec<f32>)> = batch
            .iter()
            .enumerate()
            .map(|(i, nv)| {
                (
                    range.start + i as u64,
                    index::prepare(nv.vector, info.metric).expect("validated"),
                )
            })
            .collect();
        self.after_insert(&info, &prepared);
        Ok(range)
    }

    /// The stored vector and record of `id`, or `None` if absent or deleted.
    pub fn get(
        &self,
        collection: &str,
        id: u64,
    ) -> Result<Option<(Vec<f32>, Option<PatchRecord>)>> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
        let Some(bytes) = vectors.get((info.id, id)).map_err(|e| db_err(&path, e))? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        if !codec::decode_vector((info.id, id), bytes.value(), info.dim, &mut v) {
            return Err(Error::Corrupted {
                path,
                message: format!("vector {id} of collection '{collection}' fails its checksum"),
            });
        }
        let records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
        let rec = match records.get((info.id, id)).map_err(|e| db_err(&path, e))? {
            Some(r) => Some(decode_record_at(&path, (info.id, id), r.value())?),
            None => None,
        };
        Ok(Some((v, rec)))
    }

    /// Delete ids (absent ids are ignored) in one durable transaction; returns how many
    /// were deleted. Deleted ids stay in the graph as tombstones until [`Store::compact`].
    pub fn delete(&self, collection: &str, ids: &[u64]) -> Result<u64> {
        let db = self.writer()?;
        let path = self.db_path();
        let _w = self.write_guard.lock().expect("write lock");
        let mut txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&path, e))?;
        let mut removed = Vec::new();
        let info = {
            let mut cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
            let mut info: CollectionInfo =
                match cols.get(collection).map_err(|e| db_err(&path, e))? {
                    Some(v) => decode_or_corrupt(&path, v.value(), "collection")?,
                    None => {
                        return Err(Error::UnknownCollection {
                            name: collection.into(),
                            known: Vec::new(),
                        });
                    }
                };
            let mut vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
            let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
            let mut tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(&path, e))?;
            for &id in ids {
                if vectors
                    .remove((info.id, id))
                    .map_err(|e| db_err(&path, e))?
                    .is_some()
                {
                    records
                        .remove((info.id, id))
                        .map_err(|e| db_err(&path, e))?;
                    tomb.insert((info.id, id), ())
                        .map_err(|e| db_err(&path, e))?;
                    removed.push(id);
                }
            }
            info.live -= removed.len() as u64;
            info.tombstones += removed.len() as u64;
            info.generation += 1;
            cols.insert(collection, codec::encode(&info).as_slice())
                .map_err(|e| db_err(&path, e))?;
            info
        };
        bump_generation(&txn, &path)?;
        txn.commit().map_err(|e| db_err(&path, e))?;
        self.after_delete(&info, &removed);
        Ok(removed.len() as u64)
    }

    /// Summary of the store and its collections.
    pub fn info(&self) -> Result<StoreInfo> {
        let path = self.db_path();
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| db_err(&path, e))?;
        let generation = meta
            .get(META_GENERATION)
            .map_err(|e| db_err(&path, e))?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        let snaps = txn.open_table(SNAPSHOTS).map_err(|e| db_err(&path, e))?;
        let mut collections = Vec::new();
        for c in self.collections()? {
            let rec: Option<SnapshotRecord> = match snaps.get(c.id).map_err(|e| db_err(&path, e))? {
                Some(v) => codec::decode(v.value()),
                None => None,
            };
            let state = SnapshotState {
                generation: rec.as_ref().map(|r| r.generation),
                fresh: rec
                    .as_ref()
                    .is_some_and(|r| r.generation == c.generation && r.epoch == c.epoch),
            };
            collections.push((c, state));
        }
        Ok(StoreInfo {
            path: self.dir.clone(),
            schema_version: codec::FORMAT_VERSION,
            generation,
            db_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            collections,
        })
    }
}

/// The body of [`Store::insert`] inside a caller's write transaction (vectors already
/// validated): vectors, records, the collection's counters and the import mark.
pub(crate) fn insert_in(
    txn: &redb::WriteTransaction,
    path: &Path,
    collection: &str,
    batch: &[NewVector<'_>],
    mark: Option<&ImportMark<'_>>,
) -> Result<(CollectionInfo, Range<u64>)> {
    let path = path.to_path_buf();
    let mut cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
    let mut info: CollectionInfo = match cols.get(collection).map_err(|e| db_err(&path, e))? {
        Some(v) => decode_or_corrupt(&path, v.value(), "collection")?,
        None => {
            return Err(Error::UnknownCollection {
                name: collection.into(),
                known: Vec::new(),
            });
        }
    };
    let start = info.next_id;
    let mut vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
    let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
    let mut buf = Vec::new();
    for (i, nv) in batch.iter().enumerate() {
        let id = start + i as u64;
        codec::encode_vector((info.id, id), nv.vector, &mut buf);
        vectors
            .insert((info.id, id), buf.as_slice())
            .map_err(|e| db_err(&path, e))?;
        if let Some(r) = &nv.record {
            records
                .insert((info.id, id), codec::encode_at((info.id, id), r).as_slice())
                .map_err(|e| db_err(&path, e))?;
        }
    }
    info.next_id = start + batch.len() as u64;
    info.live += batch.len() as u64;
    info.generation += 1;
    cols.insert(collection, codec::encode(&info).as_slice())
        .map_err(|e| db_err(&path, e))?;
    if let Some(m) = mark {
        let mut imports = txn.open_table(IMPORTS).map_err(|e| db_err(&path, e))?;
        imports
            .insert((info.id, m.source), codec::encode(&m.progress).as_slice())
            .map_err(|e| db_err(&path, e))?;
    }
    Ok((info, start..start + batch.len() as u64))
}

fn bump_generation(txn: &redb::WriteTransaction, path: &Path) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(|e| db_err(path, e))?;
    let g = meta
        .get(META_GENERATION)
        .map_err(|e| db_err(path, e))?
        .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
        .unwrap_or(0);
    meta.insert(META_GENERATION, &(g + 1).to_le_bytes()[..])
        .map_err(|e| db_err(path, e))?;
    Ok(())
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

pub(crate) fn decode_or_corrupt<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    codec::decode(bytes).ok_or_else(|| Error::Corrupted {
        path: path.to_path_buf(),
        message: format!("a {what} record fails its checksum or cannot be decoded"),
    })
}

/// Check one vector against a collection's dimension and metric.
pub fn validate_vector(v: &[f32], dim: usize, metric: index::Metric, row: usize) -> Result<()> {
    if v.len() != dim {
        return Err(Error::bad_input(
            format!("row {row}"),
            format!(
                "dimension {} does not match the collection's {dim}",
                v.len()
            ),
        ));
    }
    if let Some(col) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::bad_input(
            format!("row {row}"),
            format!("value {} at column {col} is not finite", v[col]),
        ));
    }
    if metric == index::Metric::Cosine && v.iter().all(|x| *x == 0.0) {
        return Err(Error::bad_input(
            format!("row {row}"),
            "zero vector cannot be compared by cosine",
        ));
    }
    Ok(())
}

fn check_store_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            reason: "no such directory".into(),
        });
    }
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            reason: format!("no {DB_FILE} in it"),
        });
    }
    Ok(db)
}

fn acquire_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0).map_err(|e| Error::io(&path, e))?;
            f.rewind().map_err(|e| Error::io(&path, e))?;
            write!(f, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Err(Error::Locked {
                path,
                pid: if pid.trim().is_empty() {
                    "unknown".into()
                } else {
                    pid.trim().to_string()
                },
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

fn lock_is_free(dir: &Path) -> bool {
    let path = dir.join(LOCK_FILE);
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(f) => f.try_lock_shared().is_ok(),
        Err(_) => true,
    }
}

/// Tombstoned ids of a collection, read from redb.
pub(crate) fn read_tombstones(
    txn: &ReadTransaction,
    path: &Path,
    cid: u32,
) -> Result<HashSet<u64>> {
    let t = txn.open_table(TOMBSTONES).map_err(|e| db_err(path, e))?;
    let mut out = HashSet::new();
    for entry in t
        .range((cid, 0)..=(cid, u64::MAX))
        .map_err(|e| db_err(path, e))?
    {
        let (k, _) = entry.map_err(|e| db_err(path, e))?;
        out.insert(k.value().1);
    }
    Ok(out)
}

/// Load the snapshot named by redb for `info`, if it is usable.
pub(crate) fn load_snapshot(
    store: &Store,
    txn: &ReadTransaction,
    info: &CollectionInfo,
) -> Result<Option<(VectorIndex, u64)>> {
    let path = store.db_path();
    let snaps = txn.open_table(SNAPSHOTS).map_err(|e| db_err(&path, e))?;
    let Some(v) = snaps.get(info.id).map_err(|e| db_err(&path, e))? else {
        return Ok(None);
    };
    let Some(rec) = codec::decode::<SnapshotRecord>(v.value()) else {
        store.warn(format!(
            "{}: snapshot record of '{}' unreadable; rebuilding the index",
            path.display(),
            info.name
        ));
        return Ok(None);
    };
    if rec.epoch != info.epoch
        || rec.generation > info.generation
        || rec.info.max_id.is_some_and(|m| m >= info.next_id)
    {
        return Ok(None);
    }
    let dir = store.dir.join(INDEX_DIR).join(&rec.dir);
    match VectorIndex::load(&dir, &rec.info, info.dim, info.metric) {
        Ok(idx) => Ok(Some((idx, rec.generation))),
        Err(e) => {
            store.warn(format!(
                "index snapshot of '{}' is damaged ({e}); rebuilding it from {DB_FILE}",
                info.name
            ));
            Ok(None)
        }
    }
}
