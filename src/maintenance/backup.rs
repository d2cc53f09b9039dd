//! Online, salvaging backup: a consistent copy of a store taken from one read
//! transaction (a snapshot of redb at one generation), while a writer may keep writing.
//!
//! Every record and vector is checksum-verified as it is copied, and what fails is left
//! out and listed, never copied silently: a record that fails its CRC is skipped; a
//! table that cannot be read to its end (a damaged page, even one that panics redb)
//! keeps the entries read before the damage; a vector that fails its CRC is replaced by
//! a placeholder and deleted (tombstoned) in the copy; a collection whose vectors cannot
//! be read at all, and a model whose files are damaged, are left out. The result is
//! always a valid store, built in `.DEST.partial-<pid>` and renamed to `DEST` only when
//! written and synced; [`BackupReport::skipped`] says what is missing (empty: a
//! complete copy). HNSW snapshots are not copied: the copy rebuilds them from its
//! vectors on first use. Restoring is opening the copy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};

use crate::catalog::tables::{EXPRESSION, MODELS, PREDICTIONS, SPOTS};
use crate::catalog::{MODELS_DIR, ModelRecord};
use crate::codec;
use crate::engine::tables::*;
use crate::engine::{DB_FILE, INDEX_DIR, Store, create_database, db_err, decode_or_corrupt, guard};
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
    /// Everything was copied (`skipped` is empty).
    pub complete: bool,
    /// What could not be read and was left out of the copy, one line each.
    pub skipped: Vec<String>,
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
        )?;
        if !self.complete {
            write!(
                f,
                "\nPARTIAL: {} thing(s) could not be read and were left out:",
                self.skipped.len()
            )?;
            for s in &self.skipped {
                write!(f, "\n  {s}")?;
            }
        }
        Ok(())
    }
}

/// Copy every entry of one table from `src` to `dst` whose value `ok` accepts (given
/// the key and the value bytes); a rejected value, and a table that cannot be read to
/// its end (or panics redb on a damaged page), are listed in `skipped`.
fn copy_table<K: redb::Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<'static, K, &'static [u8]>,
    path: &Path,
    skipped: &mut Vec<String>,
    ok: impl Fn(&redb::AccessGuard<'_, K>, &[u8]) -> bool,
) -> Result<u64> {
    let name = redb::TableHandle::name(&def).to_string();
    let mut to = dst.open_table(def).map_err(|e| db_err(path, e))?;
    let (mut n, mut bad) = (0u64, 0u64);
    let read = guard(path, &format!("reading table '{name}'"), || {
        let from = match src.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(db_err(path, e)),
        };
        for kv in from.iter().map_err(|e| db_err(path, e))? {
            let (k, v) = kv.map_err(|e| db_err(path, e))?;
            if !ok(&k, v.value()) {
                bad += 1;
                continue;
            }
            to.insert(k.value(), v.value())
                .map_err(|e| db_err(path, e))?;
            n += 1;
        }
        Ok(())
    });
    if bad > 0 {
        skipped.push(format!(
            "table '{name}': {bad} record(s) fail their checksum, left out"
        ));
    }
    if let Err(e) = read {
        skipped.push(format!(
            "table '{name}': unreadable after {n} record(s), the rest left out ({e})"
        ));
    }
    Ok(n)
}

impl Store {
    /// Write a consistent copy of this store to `dest` (which must not exist, nor lie
    /// inside the store) from one read snapshot, verified as it is copied; what cannot
    /// be read is left out and listed in the report (see the module doc). Works beside
    /// an active writer.
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
        let inside = match (parent.canonicalize(), self.path().canonicalize()) {
            (Ok(p), Ok(s)) => p.starts_with(&s),
            _ => false,
        };
        if inside {
            return Err(Error::bad_file(
                &dest,
                format!(
                    "lies inside the store {}; write the backup outside it",
                    self.path().display()
                ),
            ));
        }
        let partial = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        let mut skipped = Vec::new();
        // Every table and file is guarded where it is read; this is the last resort
        // for a panic on damaged data anywhere else (the partial copy is removed).
        let result = guard(&self.db_path(), "the backup", || {
            self.backup_into(&partial, &mut skipped)
        });
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
            complete: skipped.is_empty(),
            skipped,
        })
    }

    fn backup_into(&self, partial: &Path, skipped: &mut Vec<String>) -> Result<(u64, u64, usize)> {
        let src_path = self.db_path();
        let dst_path = partial.join(DB_FILE);
        std::fs::create_dir_all(partial.join(INDEX_DIR)).map_err(|e| Error::io(partial, e))?;
        let db = create_database(&dst_path)?;
        // One read transaction: everything below is the source at one generation.
        let src = self.read()?;
        let mut dst = db.begin_write().map_err(|e| db_err(&dst_path, e))?;
        dst.set_durability(redb::Durability::Immediate)
            .map_err(|e| db_err(&dst_path, e))?;
        let crc = |_: &redb::AccessGuard<'_, &str>, v: &[u8]| codec::strip_crc(v).is_some();
        let mut n = 0;
        n += copy_table(&src, &dst, META, &src_path, skipped, |_, _| true)?;
        for def in super::CRC_STR_TABLES {
            n += copy_table(&src, &dst, def, &src_path, skipped, crc)?;
        }
        for def in [PREDICTIONS, RECORDS] {
            n += copy_table(&src, &dst, def, &src_path, skipped, |k, v| {
                codec::keyed_crc_ok(k.value(), v)
            })?;
        }
        n += copy_table(&src, &dst, BLOCKS, &src_path, skipped, |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        n += copy_table(&src, &dst, IMPORTS, &src_path, skipped, |_, v| {
            codec::strip_crc(v).is_some()
        })?;
        for def in [SPOTS, EXPRESSION] {
            n += copy_table(&src, &dst, def, &src_path, skipped, |_, v| {
                codec::strip_crc(v).is_some()
            })?;
        }
        n += self.copy_tombstones(&src, &dst, skipped)?;
        n += self.copy_vectors(&src, &dst, partial, skipped)?;
        // No snapshot rows: the copy rebuilds its HNSW graphs from redb on first use.
        dst.open_table(SNAPSHOTS)
            .map_err(|e| db_err(&dst_path, e))?;
        let generation = guard(&src_path, "reading the generation", || {
            let meta = src.open_table(META).map_err(|e| db_err(&src_path, e))?;
            Ok(meta
                .get(META_GENERATION)
                .map_err(|e| db_err(&src_path, e))?
                .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0))
        })
        .unwrap_or(0);
        let model_files = self.copy_models(&dst, partial, skipped)?;
        drop(src);
        dst.commit().map_err(|e| db_err(&dst_path, e))?;
        drop(db);
        crate::index::sync_dir(partial)?;
        Ok((generation, n, model_files))
    }

    fn copy_tombstones(
        &self,
        src: &ReadTransaction,
        dst: &WriteTransaction,
        skipped: &mut Vec<String>,
    ) -> Result<u64> {
        let (src_path, mut n) = (self.db_path(), 0);
        let mut to = dst
            .open_table(TOMBSTONES)
            .map_err(|e| db_err(&src_path, e))?;
        let read = guard(&src_path, "reading table 'tombstones'", || {
            let from = src
                .open_table(TOMBSTONES)
                .map_err(|e| db_err(&src_path, e))?;
            for kv in from.iter().map_err(|e| db_err(&src_path, e))? {
                let (k, _) = kv.map_err(|e| db_err(&src_path, e))?;
                to.insert(k.value(), ()).map_err(|e| db_err(&src_path, e))?;
                n += 1;
            }
            Ok(())
        });
        if let Err(e) = read {
            skipped.push(format!(
                "table 'tombstones': unreadable after {n} record(s), the rest left out ({e})"
            ));
        }
        Ok(n)
    }

    /// The packed vectors of every collection the copy holds, each row verified: a row
    /// that fails is written as a placeholder (the first unit vector, valid for every
    /// metric) and deleted in the copy; a collection whose vectors cannot be read is
    /// removed from the copy.
    fn copy_vectors(
        &self,
        src: &ReadTransaction,
        dst: &WriteTransaction,
        partial: &Path,
        skipped: &mut Vec<String>,
    ) -> Result<u64> {
        let src_path = self.db_path();
        let vectors_dir = partial.join(crate::engine::packed::VECTORS_DIR);
        std::fs::create_dir_all(&vectors_dir).map_err(|e| Error::io(&vectors_dir, e))?;
        let infos: Vec<CollectionInfo> = {
            let cols = dst
                .open_table(COLLECTIONS)
                .map_err(|e| db_err(&src_path, e))?;
            let mut v = Vec::new();
            for kv in cols.iter().map_err(|e| db_err(&src_path, e))? {
                let (_, b) = kv.map_err(|e| db_err(&src_path, e))?;
                v.push(decode_or_corrupt(&src_path, b.value(), "collection")?);
            }
            v
        };
        let mut n = 0;
        for mut info in infos {
            let to = vectors_dir.join(crate::engine::packed::file_name(info.id, info.epoch));
            let copied = guard(&src_path, "reading the packed vectors", || {
                self.copy_rows(src, &info, &to)
            });
            match copied {
                Ok((rows, bad)) => {
                    n += rows;
                    if bad.is_empty() {
                        continue;
                    }
                    let mut tomb = dst
                        .open_table(TOMBSTONES)
                        .map_err(|e| db_err(&src_path, e))?;
                    for &id in &bad {
                        let was = tomb
                            .insert((info.id, id), ())
                            .map_err(|e| db_err(&src_path, e))?
                            .is_some();
                        if !was {
                            info.live = info.live.saturating_sub(1);
                            info.tombstones += 1;
                        }
                    }
                    drop(tomb);
                    let mut cols = dst
                        .open_table(COLLECTIONS)
                        .map_err(|e| db_err(&src_path, e))?;
                    cols.insert(info.name.as_str(), &codec::encode(&info)[..])
                        .map_err(|e| db_err(&src_path, e))?;
                    let shown: Vec<String> = bad.iter().take(10).map(u64::to_string).collect();
                    skipped.push(format!(
                        "collection '{}': {} vector(s) fail their checksum (ids {}{}),                          deleted in the copy",
                        info.name,
                        bad.len(),
                        shown.join(", "),
                        if bad.len() > 10 { ", ..." } else { "" }
                    ));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&to);
                    let mut cols = dst
                        .open_table(COLLECTIONS)
                        .map_err(|e| db_err(&src_path, e))?;
                    cols.remove(info.name.as_str())
                        .map_err(|e| db_err(&src_path, e))?;
                    skipped.push(format!(
                        "collection '{}': its vectors cannot be read, left out ({e})",
                        info.name
                    ));
                }
            }
        }
        crate::index::sync_dir(&vectors_dir)?;
        Ok(n)
    }

    /// Copy one collection's committed rows to `to`; returns the rows written and the
    /// ids of those that failed their checksum (written as placeholders).
    fn copy_rows(
        &self,
        src: &ReadTransaction,
        info: &CollectionInfo,
        to: &Path,
    ) -> Result<(u64, Vec<u64>)> {
        let packed = self.packed_for(src, info)?;
        let file = std::fs::File::create(to).map_err(|e| Error::io(to, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut placeholder = vec![0.0f32; info.dim];
        if let Some(x) = placeholder.first_mut() {
            *x = 1.0;
        }
        let (mut bad, mut row_buf) = (Vec::new(), Vec::new());
        for row in 0..packed.rows() {
            let bytes = if packed.vector_at(row).is_ok() {
                packed.row_bytes(row)
            } else {
                let id = packed.id_of(row);
                bad.push(id);
                codec::encode_vector((info.id, id), &placeholder, &mut row_buf);
                &row_buf[..]
            };
            std::io::Write::write_all(&mut w, bytes).map_err(|e| Error::io(to, e))?;
        }
        let file = w.into_inner().map_err(|e| Error::io(to, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(to, e))?;
        Ok((packed.rows(), bad))
    }

    /// Every model the copy holds whose files match their checksums and whose manifest
    /// loads; a damaged one is removed from the copy (re-add it with `models add`).
    fn copy_models(
        &self,
        dst: &WriteTransaction,
        partial: &Path,
        skipped: &mut Vec<String>,
    ) -> Result<usize> {
        let src_path = self.db_path();
        let recs: Vec<ModelRecord> = {
            let t = dst.open_table(MODELS).map_err(|e| db_err(&src_path, e))?;
            let mut v = Vec::new();
            for kv in t.iter().map_err(|e| db_err(&src_path, e))? {
                let (_, b) = kv.map_err(|e| db_err(&src_path, e))?;
                v.push(decode_or_corrupt(&src_path, b.value(), "model")?);
            }
            v
        };
        let mut model_files = 0;
        for rec in recs {
            let from = self.model_dir(&rec.name);
            let intact = self.model_files_intact(&rec).unwrap_or(false)
                && crate::model::Model::load(&from).is_ok();
            if !intact {
                dst.open_table(MODELS)
                    .map_err(|e| db_err(&src_path, e))?
                    .remove(rec.name.as_str())
                    .map_err(|e| db_err(&src_path, e))?;
                skipped.push(format!(
                    "model '{}': its files or manifest are damaged, left out (re-add it \
                     with `vortexdb models add`)",
                    rec.name
                ));
                continue;
            }
            let to = partial.join(MODELS_DIR).join(&rec.name);
            std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
            let mut names: Vec<&str> = rec.files.iter().map(|f| f.0.as_str()).collect();
            names.push(crate::model::MANIFEST_FILE);
            for f in names {
                std::fs::copy(from.join(f), to.join(f)).map_err(|e| Error::io(from.join(f), e))?;
                model_files += 1;
            }
        }
        Ok(model_files)
    }
}
