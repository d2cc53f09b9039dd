//! Online backup: a consistent copy of a store taken from one read transaction (a
//! snapshot of redb at one generation), while a writer may keep writing.
//!
//! Every record and vector is checksum-verified as it is copied (a backup never
//! carries damage silently; the packed vector files are copied row by row up to the
//! length the snapshot commits), the copy is built in `DEST.partial-<pid>` and renamed to
//! `DEST` only when complete and synced, and registered models are copied with their
//! checksums verified. HNSW snapshots are not copied: they are derived from redb and
//! the copy rebuilds them on first use. Restoring is opening the copy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::catalog::tables::{DOMAINS, EXPRESSION, MODELS, PREDICTIONS, SAMPLES, SPOT_SETS, SPOTS};
use crate::catalog::{MODELS_DIR, ModelRecord};
use crate::codec;
use crate::engine::tables::*;
use crate::engine::{DB_FILE, INDEX_DIR, Store, create_database, db_err, decode_or_corrupt};
use crate::error::{Error, Result};

/// What a backup copied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    /// The store copied (not in the JSON report, which names the copy).
    #[serde(skip)]
    pub source: PathBuf,
    /// The new store.
    pub dest: PathBuf,
    /// Generation of the source the copy reflects.
    pub generation: u64,
    /// Records and vectors copied (all tables).
    pub entries: u64,
    /// Model files copied.
    pub model_files: usize,
    /// Size of the copy's `vortex.redb`.
    pub db_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl std::fmt::Display for BackupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backup of {} at generation {} written to {} ({} entries, {} model files, {} \
             bytes) in {:.1} s",
            self.source.display(),
            self.generation,
            self.dest.display(),
            self.entries,
            self.model_files,
            self.db_bytes,
            self.seconds
        )
    }
}

/// Copy every entry of one table from `src` to `dst`, each value verified by `ok`
/// (given the key and the value bytes) first.
fn copy_table<K: redb::Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<'static, K, &'static [u8]>,
    path: &Path,
    ok: impl Fn(&redb::AccessGuard<'_, K>, &[u8]) -> bool,
) -> Result<u64> {
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(db_err(path, e)),
    };
    let mut to = dst.open_table(def).map_err(|e| db_err(path, e))?;
    let mut n = 0;
    for kv in from.iter().map_err(|e| db_err(path, e))? {
        let (k, v) = kv.map_err(|e| db_err(path, e))?;
        if !ok(&k, v.value()) {
            return Err(Error::Corrupted {
                path: path.to_path_buf(),
                message: format!(
                    "a value of table '{}' fails its checksum; the backup was not written",
                    redb::TableHandle::name(&def)
                ),
            });
        }
        to.insert(k.value(), v.value())
            .map_err(|e| db_err(path, e))?;
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// Write a consistent copy of this store to `dest` (which must not exist) from one
    /// read snapshot, verified as it is copied. Works beside an active writer.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let t0 = Instant::now();
        let dest = dest.as_ref().to_path_buf();
        if dest.exists() {
            return Err(Error::bad_file(
                dest,
                "already exists; a backup is written to a new directory",
            ));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| Error::bad_file(&dest, "not a directory name"))?;
        let partial = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        let result = self.backup_into(&partial);
        let (generation, entries, model_files) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, &dest).map_err(|e| Error::io(&dest, e))?;
        crate::index::sync_dir(&parent)?;
        let db_bytes = std::fs::metadata(dest.join(DB_FILE))
            .map_err(|e| Error::io(dest.join(DB_FILE), e))?
            .len();
        Ok(BackupReport {
            source: self.path().to_path_buf(),
            dest,
            generation,
            entries,
            model_files,
            db_bytes,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    fn backup_into(&self, partial: &Path) -> Result<(u64, u64, usize)> {
        let src_path = self.db_path();
        let dst_path = partial.join(DB_FILE);
        std::fs::create_dir_all(partial.join(INDEX_DIR)).map_err(|e| Error::io(partial, e))?;
        let db = create_database(&dst_path)?;
        // One read transaction: everything below is the source at one generation.
        let src = self.read()?;
        let mut dst = db.begin_write().map_err(|e| db_err(&dst_path, e))?;
        dst.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&dst_path, e))?;
        let mut n = 0;
        n += copy_table(&src, &dst, META, &src_path, |_, _| true)?;
        for def in [COLLECTIONS, MODELS, SAMPLES, SPOT_SETS, DOMAINS] {
            n += copy_table(&src, &dst, def, &src_path, |_, v| {
                codec::strip_crc(v).is_some()
            })?;
        }
        for def in [PREDICTIONS, RECORDS] {
            n += copy_table(&src, &dst, def, &src_path, |k, v| {
                codec::keyed_crc_ok(k.value(), v)
            })?;
        }
        n += copy_table(&src, &dst, BLOCKS, &src_path, |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        // The packed vectors of every collection, each row verified.
        let cols = src
            .open_table(COLLECTIONS)
            .map_err(|e| db_err(&src_path, e))?;
        let vectors_dir = partial.join(crate::engine::packed::VECTORS_DIR);
        std::fs::create_dir_all(&vectors_dir).map_err(|e| Error::io(&vectors_dir, e))?;
        for kv in cols.iter().map_err(|e| db_err(&src_path, e))? {
            let (_, v) = kv.map_err(|e| db_err(&src_path, e))?;
            let info: CollectionInfo = decode_or_corrupt(&src_path, v.value(), "collection")?;
            let packed = self.packed_for(&src, &info)?;
            let to = vectors_dir.join(crate::engine::packed::file_name(info.id, info.epoch));
            let file = std::fs::File::create(&to).map_err(|e| Error::io(&to, e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            for row in 0..packed.rows() {
                packed.vector_at(row)?;
                std::io::Write::write_all(&mut w, packed.row_bytes(row))
                    .map_err(|e| Error::io(&to, e))?;
                n += 1;
            }
            let file = w.into_inner().map_err(|e| Error::io(&to, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&to, e))?;
        }
        drop(cols);
        crate::index::sync_dir(&vectors_dir)?;
        n += copy_table(&src, &dst, IMPORTS, &src_path, |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        for def in [SPOTS, EXPRESSION] {
            n += copy_table(&src, &dst, def, &src_path, |_, v| {
                codec::strip_crc(v).is_some()
            })?;
        }
        {
            let from = src
                .open_table(TOMBSTONES)
                .map_err(|e| db_err(&src_path, e))?;
            let mut to = dst
                .open_table(TOMBSTONES)
                .map_err(|e| db_err(&dst_path, e))?;
            for kv in from.iter().map_err(|e| db_err(&src_path, e))? {
                let (k, _) = kv.map_err(|e| db_err(&src_path, e))?;
                to.insert(k.value(), ()).map_err(|e| db_err(&dst_path, e))?;
                n += 1;
            }
        }
        // No snapshot rows: the copy rebuilds its HNSW graphs from redb on first use.
        dst.open_table(SNAPSHOTS)
            .map_err(|e| db_err(&dst_path, e))?;
        let generation = {
            let meta = src.open_table(META).map_err(|e| db_err(&src_path, e))?;
            meta.get(META_GENERATION)
                .map_err(|e| db_err(&src_path, e))?
                .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0)
        };
        // Models: their files, checked against the checksums in the snapshot.
        let mut model_files = 0;
        let models = src.open_table(MODELS).map_err(|e| db_err(&src_path, e))?;
        for kv in models.iter().map_err(|e| db_err(&src_path, e))? {
            let (_, v) = kv.map_err(|e| db_err(&src_path, e))?;
            let rec: ModelRecord = decode_or_corrupt(&src_path, v.value(), "model")?;
            if !self.model_files_intact(&rec)? {
                return Err(Error::Corrupted {
                    path: self.model_dir(&rec.name),
                    message: format!(
                        "model '{}' files differ from their recorded checksums; the backup was not written",
                        rec.name
                    ),
                });
            }
            let to = partial.join(MODELS_DIR).join(&rec.name);
            std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
            let from = self.model_dir(&rec.name);
            let mut names: Vec<&str> = rec.files.iter().map(|f| f.0.as_str()).collect();
            names.push(crate::model::MANIFEST_FILE);
            for f in names {
                std::fs::copy(from.join(f), to.join(f)).map_err(|e| Error::io(from.join(f), e))?;
                model_files += 1;
            }
        }
        drop(models);
        drop(src);
        dst.commit().map_err(|e| db_err(&dst_path, e))?;
        drop(db);
        crate::index::sync_dir(partial)?;
        Ok((generation, n, model_files))
    }
}
