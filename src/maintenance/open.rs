//! The public constructors of [`Store`]: the engine's create and open, given the whole
//! store's [`Schema`] (the catalog's tables, made with the engine's in a new store,
//! and the migration of a schema-1 store, which rewrites every table).

use std::path::Path;

use super::check::{DbCopy, pages_of_copy};
use super::migrate;
use crate::catalog;
use crate::engine::{DB_FILE, RecoveredCopy, Schema, Store};
use crate::error::Result;

/// What the catalog and maintenance add to the engine's schema.
const SCHEMA: Schema = Schema {
    create_tables: catalog::create_tables,
    migrate_v1: migrate::v1_to_v2,
    migrate_v2: migrate::v2_to_v3,
    recovered_copy,
};

/// A private copy of `dir`'s database, recovered by redb there (as `check` does): what
/// a read-only open reads when the last writer did not close the store.
fn recovered_copy(dir: &Path) -> Result<RecoveredCopy> {
    let copy = DbCopy::make(dir, None)?;
    let note = pages_of_copy(&copy.path, &dir.join(DB_FILE))?;
    Ok(RecoveredCopy {
        path: copy.path.clone(),
        keep: Box::new(copy),
        note,
    })
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
    /// committed state), with a warning. (A store of an older schema is still
    /// migrated in place first when no writer holds it.)
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_read_only_with(dir.as_ref(), &SCHEMA)
    }
}
