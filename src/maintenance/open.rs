//! The public constructors of [`Store`]: the engine's create and open, given the whole
//! store's [`Schema`] (the catalog's tables, made with the engine's in a new store,
//! and the migration of a schema-1 store, which rewrites every table).

use std::path::Path;

use super::check::{DbCopy, pages_of_copy};
use super::migrate;
use crate::catalog;
use crate::engine::{DB_FILE, INDEX_DIR, PrivateCopy, Schema, Store};
use crate::error::{Error, Result};

/// What the catalog and maintenance add to the engine's schema.
const SCHEMA: Schema = Schema {
    create_tables: catalog::create_tables,
    migrate_v1: migrate::v1_to_v2,
    migrate_v2: migrate::v2_to_v3,
    private_copy,
};

/// A private copy of the store in `dir` for a read-only open: its database copied
/// consistently and recovered by redb there (as `check` does), or with `snapshots`
/// its database and index snapshots as they are (an older store that the copy is
/// migrated in: the writable open that migrates it runs redb's recovery itself).
fn private_copy(dir: &Path, snapshots: bool) -> Result<PrivateCopy> {
    let copy = DbCopy::make(dir, None)?;
    let note = if snapshots {
        copy_tree(&dir.join(INDEX_DIR), &copy.dir().join(INDEX_DIR))?;
        None
    } else {
        pages_of_copy(&copy.path, &dir.join(DB_FILE))?
    };
    Ok(PrivateCopy {
        path: copy.dir().to_path_buf(),
        keep: Box::new(copy),
        note,
    })
}

/// Copy the directory tree `from` (absent: nothing) to `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().map_err(|e| Error::io(&src, e))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

impl Store {
    /// Create a new, empty store in `dir` (created if missing; must not already hold a
    /// store) and open it for writing.
    pub fn create(dir: impl AsRef<Path>) -> Result<Store> {
        Store::create_with(dir.as_ref(), &SCHEMA)
    }

    /// Open an existing store for writing (a schema-1 store is migrated in place, with
    /// a warning). Fails with [`crate::Error::Locked`] while another process writes to
    /// it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir.as_ref(), &SCHEMA)
    }

    /// Open an existing store read-only. Any number of readers may run beside one
    /// writer. A read-only open never writes to a store left unclean by a crashed
    /// writer: it reads a private copy of the database, recovered there (its last
    /// committed state), with a warning; a store of an older schema is migrated in a
    /// private copy (database and snapshots) that is read instead, with a warning. Both
    /// copies live in the system's temporary directory while the store is open.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_read_only_with(dir.as_ref(), &SCHEMA)
    }
}
