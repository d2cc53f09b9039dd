//! Creating and opening a store: the directory layout, the writer lock (`LOCK`), the
//! format marker and schema version in `meta`, recovery after a crashed writer, and
//! the hooks ([`Schema`]) through which the layers above the engine add their tables
//! to a new store and migrate an old one. The public constructors
//! (`Store::create`, `Store::open`, `Store::open_read_only`) pass the whole store's
//! schema to the functions here.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use redb::{Database, WriteTransaction};

use super::tables::*;
use super::{DB_FILE, Db, INDEX_DIR, LOCK_FILE, Store, db_err, guard};
use crate::codec;
use crate::error::{Error, Result};
use crate::index;

/// What the layers above the engine add to a store's schema.
pub(crate) struct Schema {
    /// Make their tables in a new store, inside the transaction that creates it.
    pub create_tables: fn(&WriteTransaction, &Path) -> Result<()>,
    /// Migrate a schema-1 store (every table, engine and others, in one write
    /// transaction) to schema 2; returns the number of records rewritten.
    pub migrate_v1: fn(&Store) -> Result<u64>,
    /// Migrate a schema-2 store to schema 3 (vectors into packed files); returns the
    /// number of vectors moved.
    pub migrate_v2: fn(&Store) -> Result<u64>,
    /// A private copy of the store in this directory for a read-only open that must
    /// not write to it: its database recovered there (redb's repair after a writer
    /// that stopped without closing), or with `snapshots` its database and index
    /// snapshots as they are (an older store, migrated in the copy).
    pub private_copy: fn(&Path, bool) -> Result<PrivateCopy>,
}

/// A private copy of a store ([`Schema::private_copy`]).
pub(crate) struct PrivateCopy {
    /// The copy's store directory (its database is `DB_FILE` in it).
    pub path: PathBuf,
    /// What keeps the copy on disk while the store is open (removed when dropped).
    pub keep: Box<dyn std::any::Any + Send + Sync>,
    /// What recovery found, for the warning.
    pub note: Option<String>,
}

fn map_open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
            path: path.to_path_buf(),
            pid: "unknown".into(),
        },
        // redb reports a file that is not (or no longer) a redb database as invalid
        // data: that is damage to the store, not a failing disk.
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            super::io_err(path, io, "cannot open database")
        }
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

/// Create a new, empty redb file at `path` with the store's settings (used by backup
/// for the copy's database).
pub(crate) fn create_database(path: &Path) -> Result<Database> {
    builder().create(path).map_err(|e| map_open_error(path, e))
}

impl Store {
    /// Create a new, empty store in `dir` (created if missing; must not already hold a
    /// store) and open it for writing; `schema` makes the other layers' tables in the
    /// same transaction as the engine's.
    pub(crate) fn create_with(dir: &Path, schema: &Schema) -> Result<Store> {
        let dir = dir.to_path_buf();
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(Error::bad_file(dir, "already holds a vortexdb store"));
        }
        std::fs::create_dir_all(dir.join(INDEX_DIR)).map_err(|e| Error::io(&dir, e))?;
        std::fs::create_dir_all(dir.join(super::packed::VECTORS_DIR))
            .map_err(|e| Error::io(&dir, e))?;
        let lock = acquire_lock(&dir)?;
        let db = create_database(&db_path)?;
        let store = Store::assemble(dir, Db::Write(db), Some(lock));
        store.write(|txn| {
            let mut meta = txn.open_table(META).map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_FORMAT, FORMAT_NAME)
                .map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_SCHEMA, &codec::FORMAT_VERSION.to_le_bytes()[..])
                .map_err(|e| db_err(&db_path, e))?;
            meta.insert(META_GENERATION, &0u64.to_le_bytes()[..])
                .map_err(|e| db_err(&db_path, e))?;
            for t in [BLOCKS, RECORDS] {
                txn.open_table(t).map_err(|e| db_err(&db_path, e))?;
            }
            txn.open_table(COLLECTIONS)
                .map_err(|e| db_err(&db_path, e))?;
            txn.open_table(TOMBSTONES)
                .map_err(|e| db_err(&db_path, e))?;
            txn.open_table(IMPORTS).map_err(|e| db_err(&db_path, e))?;
            txn.open_table(SNAPSHOTS).map_err(|e| db_err(&db_path, e))?;
            (schema.create_tables)(txn, &db_path)
        })?;
        index::sync_dir(&store.dir)?;
        Ok(store)
    }

    /// Open an existing store for writing (a schema-1 store is migrated by `schema`).
    /// Fails with [`Error::Locked`] while another process writes to it.
    pub(crate) fn open_with(dir: &Path, schema: &Schema) -> Result<Store> {
        let dir = dir.to_path_buf();
        let db_path = check_store_dir(&dir)?;
        let lock = acquire_lock(&dir)?;
        let db = guard(&db_path, "opening the database", || {
            builder()
                .open(&db_path)
                .map_err(|e| map_open_error(&db_path, e))
        })?;
        let store = Store::assemble(dir, Db::Write(db), Some(lock));
        store.check_meta(schema)?;
        store.tidy_packed()?;
        Ok(store)
    }

    /// Open an existing store read-only. Any number of readers may run beside one
    /// writer. A store left unclean by a crashed writer, or of schema 1, is repaired
    /// (or migrated) by a writable open first when no writer holds it.
    pub(crate) fn open_read_only_with(dir: &Path, schema: &Schema) -> Result<Store> {
        let dir = dir.to_path_buf();
        let db_path = check_store_dir(&dir)?;
        let first = guard(&db_path, "opening the database", || {
            builder()
                .open_read_only(&db_path)
                .map_err(|e| map_open_error(&db_path, e))
        });
        let store = match first {
            Ok(db) => Store::assemble(dir.clone(), Db::Read(db), None),
            Err(Error::Corrupted { .. }) if lock_is_free(&dir) => {
                // Likely a writer that stopped without closing (a crash, a kill): redb
                // must run its recovery, which writes. A reader never writes to the
                // store, so it reads a private copy of the database recovered there
                // (the store's last committed state); the next writable open recovers
                // the store itself.
                let copy = (schema.private_copy)(&dir, false)?;
                let mut store = Store::open_copy(&dir, &copy.path.join(DB_FILE))?;
                let mut w = format!(
                    "{}: its last writer did not close it; read-only, it is served from a \
                     recovered private copy of its database (the store is not written; a \
                     writable open recovers it in place)",
                    db_path.display()
                );
                if let Some(n) = &copy.note {
                    w.push_str(&format!(": {n}"));
                }
                store.warnings.lock().expect("warnings lock").push(w);
                store._scratch = Some(copy.keep);
                store
            }
            Err(e) => return Err(e),
        };
        match store.check_meta(schema) {
            Err(Error::Version { found, .. })
                if (codec::OLDEST_SUPPORTED..codec::FORMAT_VERSION).contains(&found) =>
            {
                // A store of an older schema: a reader never migrates it in place; it
                // migrates a private copy (database and snapshots) and reads that.
                drop(store);
                let copy = (schema.private_copy)(&dir, true)?;
                let w = Store::open_with(&copy.path, schema)?;
                let mut warnings = w.take_warnings();
                drop(w);
                let mut s = Store::open_read_only_with(&copy.path, schema)?;
                warnings.extend(s.take_warnings());
                warnings.push(format!(
                    "{}: a store of schema {found} read-only: served from a private copy \
                     migrated to schema {} (the store is not written; a writable open \
                     migrates it in place)",
                    db_path.display(),
                    codec::FORMAT_VERSION
                ));
                s.dir = dir;
                s._scratch = Some(copy.keep);
                s.warnings.lock().expect("warnings lock").extend(warnings);
                Ok(s)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(store),
        }
    }

    /// A store view over `dir` whose database is the redb file at `db_file` (a private
    /// copy of `dir`'s, made by `check` or `repair`), opened read-only without a lock:
    /// nothing is ever written to `dir`. Errors name `dir`'s own database file.
    pub(crate) fn open_copy(dir: &Path, db_file: &Path) -> Result<Store> {
        let named = check_store_dir(dir)?;
        let db = guard(&named, "opening the database", || {
            builder()
                .open_read_only(db_file)
                .map_err(|e| map_open_error(&named, e))
        })?;
        Ok(Store::assemble(dir.to_path_buf(), Db::Read(db), None))
    }

    /// Fail with [`Error::NotAStore`] unless `dir` holds a store.
    pub(crate) fn require_store_dir(dir: &Path) -> Result<()> {
        check_store_dir(dir).map(|_| ())
    }

    fn assemble(dir: PathBuf, db: Db, lock: Option<File>) -> Store {
        Store {
            files: dir.clone(),
            dir,
            db,
            _lock: lock,
            _scratch: None,
            write_guard: Mutex::new(()),
            live: RwLock::new(std::collections::HashMap::new()),
            snapshot_due: Mutex::new(std::collections::BTreeSet::new()),
            packed: RwLock::new(std::collections::HashMap::new()),
            meta: RwLock::new(std::collections::HashMap::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path of `vortex.redb` (named in every database error).
    pub(crate) fn db_path(&self) -> PathBuf {
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

    fn check_meta(&self, schema: &Schema) -> Result<()> {
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
            let mut version = meta
                .get(META_SCHEMA)
                .map_err(|e| db_err(&path, e))?
                .and_then(|v| v.value().try_into().ok().map(u32::from_le_bytes))
                .ok_or_else(|| Error::Corrupted {
                    path: path.clone(),
                    message: "schema version missing".into(),
                })?;
            drop(meta);
            drop(txn);
            if version == codec::SCHEMA_V1 && self.is_writable() {
                let n = (schema.migrate_v1)(self)?;
                self.warn(format!(
                    "{}: migrated from schema 1 to schema 2 (a CRC-32 on each of {n} records)",
                    path.display(),
                ));
                version = codec::SCHEMA_V2;
            }
            if version == codec::SCHEMA_V2 && self.is_writable() {
                let n = (schema.migrate_v2)(self)?;
                self.warn(format!(
                    "{}: migrated from schema 2 to schema 3 ({n} vectors moved into packed files)",
                    path.display(),
                ));
                version = codec::FORMAT_VERSION;
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
    // A lock that names this very process and that no handle of ours holds is a copy
    // of our descriptor inherited by a child between its fork and exec (flock locks
    // follow the open file, and CLOEXEC closes it only at exec): it goes away within
    // moments, so such a lock is retried briefly before it is reported.
    let mut tries = 0;
    let locked = loop {
        match f.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                let mut pid = String::new();
                let _ = f.rewind().and_then(|_| f.read_to_string(&mut pid));
                if pid.trim() != std::process::id().to_string() {
                    break Err(std::fs::TryLockError::WouldBlock);
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    let _ = f.rewind();
    match locked {
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
