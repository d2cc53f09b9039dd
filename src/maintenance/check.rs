//! `check`: verify a store without changing a byte of it.
//!
//! The check never opens the store for writing and takes no lock: it copies
//! `vortex.redb` to a private scratch file (retrying until no commit landed during the
//! copy, so the copy is one consistent generation), runs redb's page-checksum check and
//! any crash recovery on that copy, then reads everything from the copy in one read
//! transaction: every record's CRC-32, every packed vector up to the length that
//! generation committed (packed files are append-only), every HNSW snapshot, every
//! registered model's files and manifest. A writer may keep writing meanwhile; what it
//! commits after the copy is simply not part of this check. Damage is collected, not
//! stopped at: the report lists every finding.

use std::io::Read;
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableTable};

use crate::catalog::tables::{
    DOMAINS, EXPRESSION, MODELS, PREDICTIONS, READOUTS, SAMPLE_IMAGES, SAMPLES, SPOT_SETS, SPOTS,
};
use crate::codec;
use crate::engine::tables::{BLOCKS, COLLECTIONS, IMPORTS, META, RECORDS, SNAPSHOTS};
use crate::engine::{DB_FILE, Store, db_err, guard};
use crate::error::{Error, Result};

/// How many times a copy is retried while a writer keeps committing.
const COPY_TRIES: usize = 8;

/// What [`check_store`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The store checked.
    pub store: PathBuf,
    /// Generation of the store the check read (one consistent snapshot).
    pub generation: u64,
    /// Packed vectors verified.
    pub vectors: u64,
    /// redb records verified (all tables).
    pub records: u64,
    /// Records verified per redb table.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Registered models whose files and manifest were verified.
    pub models: usize,
    /// redb's page checksums on the copy: `passed`, or what they found.
    pub pages: String,
    /// Damage found, one line each (where, and what is wrong). Empty: the store is intact.
    pub damage: Vec<String>,
    /// Things that are not damage but worth knowing (a derived index snapshot that a
    /// writer will rebuild, a writer that committed during the check).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// True when no damage was found.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_clean() {
            write!(
                f,
                "ok: {} vectors verified, {} records, {} models; pages {} (generation {}, \
                 nothing written)",
                self.vectors, self.records, self.models, self.pages, self.generation
            )?;
        } else {
            write!(
                f,
                "DAMAGED: the store is damaged, {} finding(s) in {} (nothing was written; \
                 `vortexdb backup` or `vortexdb repair` copy what is readable)",
                self.damage.len(),
                self.store.display()
            )?;
            for d in &self.damage {
                write!(f, "\n  {d}")?;
            }
        }
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

/// A private, consistent copy of a store's database file; removed when dropped.
pub(crate) struct DbCopy {
    dir: tempfile::TempDir,
    /// The copy.
    pub(crate) path: PathBuf,
    /// Writers committed during this many earlier attempts.
    pub(crate) retries: usize,
}

impl DbCopy {
    /// Copy `dir`'s database into a scratch directory under `scratch` (default: the
    /// system's temporary directory), retrying until the source's length, mtime and
    /// header are the same before and after the copy (no commit landed during it).
    pub(crate) fn make(dir: &Path, scratch: Option<&Path>) -> Result<DbCopy> {
        let src = dir.join(DB_FILE);
        let tmp = match scratch {
            Some(s) => tempfile::Builder::new()
                .prefix(".vortexdb-check-")
                .tempdir_in(s),
            None => tempfile::Builder::new().prefix("vortexdb-check-").tempdir(),
        }
        .map_err(|e| Error::io(scratch.unwrap_or(Path::new("temporary directory")), e))?;
        let path = tmp.path().join(DB_FILE);
        for attempt in 0..COPY_TRIES {
            let before = stamp(&src)?;
            std::fs::copy(&src, &path).map_err(|e| Error::io(&src, e))?;
            if stamp(&src)? == before {
                return Ok(DbCopy {
                    dir: tmp,
                    path,
                    retries: attempt,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20 << attempt.min(5)));
        }
        Err(Error::io(
            &src,
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "a writer committed during each of {COPY_TRIES} copies; run the check \
                     when writes pause"
                ),
            ),
        ))
    }

    /// The scratch directory holding the copy.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Length, modification time and the first 4 KiB (redb's header) of a file.
fn stamp(p: &Path) -> Result<(u64, Option<std::time::SystemTime>, Vec<u8>)> {
    let m = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(p)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| Error::io(p, e))?;
    Ok((m.len(), m.modified().ok(), head))
}

/// Run redb's recovery and page-checksum check on the copy at `path` (it may rewrite
/// the copy: never the store). `Ok(None)`: passed.
pub(crate) fn pages_of_copy(path: &Path, named: &Path) -> Result<Option<String>> {
    guard(named, "the page check", || {
        let mut db = redb::Database::builder()
            .open(path)
            .map_err(|e| Error::Corrupted {
                path: named.to_path_buf(),
                message: format!("redb cannot open it: {e}"),
            })?;
        match db.check_integrity() {
            Ok(true) => Ok(None),
            Ok(false) => Ok(Some(
                "redb found a page that fails its checksum or an unclean shutdown, and could \
                 roll it back (on the private copy)"
                    .into(),
            )),
            Err(e) => Ok(Some(format!("redb's integrity check failed: {e}"))),
        }
    })
}

/// Verify the store in `dir` without writing to it (see the module doc); `scratch`
/// holds the private copy of its database (default: the system's temporary directory).
/// Damage is reported in [`CheckReport::damage`]; an `Err` means the check itself could
/// not run (no such store, no space for the copy, a writer that never pauses).
pub fn check_store(dir: impl AsRef<Path>, scratch: Option<&Path>) -> Result<CheckReport> {
    let dir = dir.as_ref();
    let named = dir.join(DB_FILE);
    Store::require_store_dir(dir)?;
    let copy = DbCopy::make(dir, scratch)?;
    let mut r = CheckReport {
        store: dir.to_path_buf(),
        generation: 0,
        vectors: 0,
        records: 0,
        tables: Default::default(),
        models: 0,
        pages: "passed".into(),
        damage: Vec::new(),
        notes: Vec::new(),
    };
    if copy.retries > 0 {
        r.notes.push(format!(
            "a writer committed during {} copy attempt(s); the check read the generation \
             copied after that",
            copy.retries
        ));
    }
    // redb's recovery may fail where a read-only open still works (the commands that
    // worked before the check must still be checkable): read a fresh copy as it is.
    let mut fresh = None;
    match pages_of_copy(&copy.path, &named) {
        Ok(None) => {}
        Ok(Some(m)) => {
            r.pages = "failed".into();
            r.damage.push(format!("{}: {m}", named.display()));
        }
        Err(e) => {
            r.pages = "unreadable".into();
            r.damage.push(e.to_string());
            fresh = Some(DbCopy::make(dir, scratch)?);
        }
    }
    let read_from = fresh.as_ref().map_or(&copy.path, |c| &c.path);
    let store = match Store::open_copy(dir, read_from) {
        Ok(s) => s,
        Err(e) => {
            r.damage.push(e.to_string());
            return Ok(r);
        }
    };
    // The copy changes no more: every read below sees the same generation.
    let txn = match store.read() {
        Ok(t) => t,
        Err(e) => {
            r.damage.push(e.to_string());
            return Ok(r);
        }
    };
    // redb can panic on a damaged page it reaches: each part is guarded, and a panic
    // is damage found there, not a crash of the check.
    r.generation = guard(&named, "reading the generation", || {
        store.info().map(|i| i.generation)
    })
    .unwrap_or(0);
    let parts: [(&str, &Part); 3] = [
        ("the records", &|r| verify_records(&txn, &named, r)),
        ("the vectors", &|r| verify_vectors(&store, &txn, r)),
        ("the models", &|r| verify_models(&store, r)),
    ];
    for (what, part) in parts {
        if let Err(e) = guard(&named, &format!("checking {what}"), || {
            part(&mut r);
            Ok(())
        }) {
            r.damage.push(e.to_string());
        }
    }
    Ok(r)
}

/// One guarded part of the check.
type Part<'a> = dyn Fn(&mut CheckReport) + 'a;

/// Every record of every table, by its CRC-32; a table that cannot be read to its end
/// is damage too.
fn verify_records(txn: &ReadTransaction, path: &Path, r: &mut CheckReport) {
    let str_tables = [
        (COLLECTIONS, "collection"),
        (MODELS, "model"),
        (SAMPLES, "sample"),
        (SAMPLE_IMAGES, "sample images"),
        (SPOT_SETS, "spot set"),
        (DOMAINS, "domains"),
        (READOUTS, "readout"),
    ];
    for (def, what) in str_tables {
        table(txn, def, path, what, r, |_, v| {
            codec::strip_crc(v).is_some()
        });
    }
    table(txn, BLOCKS, path, "vector block", r, |_, v| {
        codec::strip_crc(v).is_some()
    });
    table(txn, SNAPSHOTS, path, "snapshot", r, |_, v| {
        codec::strip_crc(v).is_some()
    });
    table(txn, IMPORTS, path, "import progress", r, |_, v| {
        codec::strip_crc(v).is_some()
    });
    for (def, what) in [(SPOTS, "spot"), (EXPRESSION, "expression")] {
        table(txn, def, path, what, r, |_, v| {
            codec::strip_crc(v).is_some()
        });
    }
    table(txn, RECORDS, path, "patch record", r, |k, v| {
        codec::keyed_crc_ok(k.value(), v)
    });
    table(txn, PREDICTIONS, path, "prediction", r, |k, v| {
        codec::keyed_crc_ok(k.value(), v)
    });
    table(txn, META, path, "metadata", r, |_, _| true);
}

/// Verify one table's values with `ok`, recording each failure and a table that cannot
/// be read (or panics redb on a damaged page) as damage.
fn table<K: redb::Key + 'static>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<'static, K, &'static [u8]>,
    path: &Path,
    what: &str,
    r: &mut CheckReport,
    ok: impl Fn(&redb::AccessGuard<'_, K>, &[u8]) -> bool,
) {
    let name = redb::TableHandle::name(&def).to_string();
    let res = guard(path, &format!("reading table '{name}'"), || {
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(db_err(path, e)),
        };
        let (mut n, mut bad) = (0u64, 0u64);
        for kv in t.iter().map_err(|e| db_err(path, e))? {
            let (k, v) = kv.map_err(|e| db_err(path, e))?;
            if ok(&k, v.value()) {
                n += 1;
            } else {
                bad += 1;
            }
        }
        Ok((n, bad))
    });
    match res {
        Ok((n, bad)) => {
            r.records += n;
            r.tables.insert(name.clone(), n);
            if bad > 0 {
                r.damage.push(format!(
                    "{}: {bad} {what} record(s) of table '{name}' fail their checksum",
                    path.display()
                ));
            }
        }
        Err(e) => r
            .damage
            .push(format!("table '{name}' cannot be read to its end: {e}")),
    }
}

/// Every packed vector each collection committed, and each collection's snapshot.
fn verify_vectors(store: &Store, txn: &ReadTransaction, r: &mut CheckReport) {
    let cols = match store.collections() {
        Ok(c) => c,
        Err(e) => {
            r.damage
                .push(format!("the collections cannot be listed: {e}"));
            return;
        }
    };
    for c in cols {
        match store.packed_for(txn, &c) {
            Ok(p) => {
                let mut bad = Vec::new();
                for row in 0..p.rows() {
                    match p.vector_at(row) {
                        Ok(_) => r.vectors += 1,
                        Err(_) => bad.push(p.id_of(row)),
                    }
                }
                if !bad.is_empty() {
                    let shown: Vec<String> = bad
                        .iter()
                        .take(10)
                        .map(|id| format!("vector {id}"))
                        .collect();
                    r.damage.push(format!(
                        "{}: {} vector(s) of collection '{}' fail their checksum ({}{})",
                        p.path().display(),
                        bad.len(),
                        c.name,
                        shown.join(", "),
                        if bad.len() > 10 { ", ..." } else { "" }
                    ));
                }
            }
            Err(e) => r.damage.push(format!("collection '{}': {e}", c.name)),
        }
        match store.snapshot_note(txn, &c) {
            Ok(None) => {}
            Ok(Some(note)) => r.notes.push(note),
            Err(e) => r.notes.push(format!(
                "the index snapshot of '{}' is unusable ({e}); it is derived data: \
                 `vortexdb repair --index-only` rebuilds it",
                c.name
            )),
        }
    }
}

/// Every registered model's files against their checksums, and its manifest parsed as
/// `query` and `ingest` parse it.
fn verify_models(store: &Store, r: &mut CheckReport) {
    let models = match store.models() {
        Ok(m) => m,
        Err(e) => {
            r.damage.push(format!("the models cannot be listed: {e}"));
            return;
        }
    };
    for m in models {
        let dir = store.model_dir(&m.name);
        match store.model_files_intact(&m) {
            Ok(true) => {}
            Ok(false) => r.damage.push(format!(
                "{}: model '{}': a file is missing or differs from the checksum recorded \
                 when it was added",
                dir.display(),
                m.name
            )),
            Err(e) => r.damage.push(e.to_string()),
        }
        match crate::model::Model::load(&dir) {
            Ok(_) => r.models += 1,
            Err(e) => r.damage.push(format!("model '{}': {e}", m.name)),
        }
    }
}

/// Write a repaired copy of the store in `dir` to `dest` (a new directory outside the
/// store), never writing to `dir`: its database is copied to `scratch` as `check` does,
/// recovered there by redb (a crashed writer's unfinished commit rolled back, a damaged
/// allocator state rebuilt), then everything readable is copied to `dest` by the
/// salvaging backup. [`crate::BackupReport::skipped`] lists what was lost, recovery included.
/// Replace the store with the copy yourself once you have looked at it.
pub fn repair_store(
    dir: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    scratch: Option<&Path>,
) -> Result<crate::maintenance::BackupReport> {
    let dir = dir.as_ref();
    let named = dir.join(DB_FILE);
    Store::require_store_dir(dir)?;
    let copy = DbCopy::make(dir, scratch)?;
    let mut fresh = None;
    let lost = match pages_of_copy(&copy.path, &named) {
        Ok(m) => m.map(|m| format!("{}: {m}; its last commit may be lost", named.display())),
        // Recovery cannot open it: salvage from the file as it is, as the read-only
        // commands read it.
        Err(e) => {
            fresh = Some(DbCopy::make(dir, scratch)?);
            Some(format!(
                "redb's recovery failed ({e}); what follows was salvaged from the file as it is"
            ))
        }
    };
    let read_from = fresh.as_ref().map_or(&copy.path, |c| &c.path);
    let store = Store::open_copy(dir, read_from).map_err(|e| Error::Corrupted {
        path: named.clone(),
        message: format!(
            "it cannot be opened, even read-only ({e}); nothing can be salvaged from this \
             file: restore the store from a backup"
        ),
    })?;
    let mut report = store.backup(dest)?;
    if let Some(m) = lost {
        report.skipped.insert(0, m);
        report.complete = false;
    }
    log::debug!("repair read a copy in {}", copy.dir().display());
    Ok(report)
}

/// Rebuild and write every collection's HNSW index snapshot in place (the only repair
/// made in the store itself: snapshots are derived from the vectors, which are read,
/// not written). Takes the writer lock. Returns the collections whose snapshot was
/// rebuilt.
pub fn rebuild_indexes(dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let store = Store::open(dir.as_ref())?;
    let mut done = Vec::new();
    for c in store.collections()? {
        store.sync_index(&c.name)?;
        store.save_snapshot(&c.name)?;
        done.push(c.name);
    }
    Ok(done)
}
