//! Transactions: the read helper, the one write helper every write of the store goes
//! through (engine, catalog and maintenance alike: read-only refusal, the in-process
//! write guard, `Durability::Immediate`, commit, redb errors mapped to [`Error`]), and
//! the global generation in `meta` that data writes bump.

use std::path::Path;
use std::sync::MutexGuard;

use redb::{Database, ReadTransaction, ReadableTable, WriteTransaction};

use super::tables::{META, META_GENERATION};
use super::{Db, Store, db_err};
use crate::error::{Error, Result};

impl Store {
    pub(super) fn writer(&self) -> Result<&Database> {
        match &self.db {
            Db::Write(d) => Ok(d),
            Db::Read(_) => Err(Error::ReadOnly("write")),
        }
    }

    /// Refuse early on a read-only store (before a write's inputs are looked up or
    /// validated), with the same error [`Store::write`] gives.
    pub(crate) fn ensure_writable(&self) -> Result<()> {
        self.writer().map(|_| ())
    }

    /// A read transaction: one consistent snapshot of the whole database.
    pub(crate) fn read(&self) -> Result<ReadTransaction> {
        self.db.begin_read().map_err(|e| db_err(&self.db_path(), e))
    }

    /// Run `f` in one durable write transaction and commit it; nothing is committed
    /// when `f` fails. Refused on a read-only store ([`Error::ReadOnly`]); writes of
    /// this process are serialised by the write guard (other processes are kept out
    /// by the `LOCK` file). For writes that leave the global generation alone:
    /// catalog records, snapshot names, a new store's tables.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let db = self.writer()?;
        let w = self.lock_writes();
        self.commit_locked(db, &w, false, f)
    }

    /// [`Store::write`] for data writes (collections, vectors, spots): the global
    /// generation is bumped after `f`'s changes, in the same transaction.
    pub(crate) fn write_data<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let db = self.writer()?;
        let w = self.lock_writes();
        self.commit_locked(db, &w, true, f)
    }

    /// Take the write guard (held across a read and the write that depends on it, as
    /// compaction does).
    pub(super) fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.write_guard.lock().expect("write lock")
    }

    /// The body of [`Store::write`] / [`Store::write_data`] (`bump`) for a caller that
    /// already holds the write guard.
    pub(super) fn commit_locked<T>(
        &self,
        db: &Database,
        _guard: &MutexGuard<'_, ()>,
        bump: bool,
        f: impl FnOnce(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let path = self.db_path();
        let mut txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&path, e))?;
        let out = f(&txn)?;
        if bump {
            bump_generation(&txn, &path)?;
        }
        txn.commit().map_err(|e| db_err(&path, e))?;
        Ok(out)
    }
}

/// Add one to the global generation inside `txn`.
fn bump_generation(txn: &WriteTransaction, path: &Path) -> Result<()> {
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
