//! Each collection's HNSW graph kept in step with redb: loaded from the snapshot redb
//! names (checked, and rebuilt with a warning when missing, stale or damaged), caught
//! up from the packed file's newer rows, updated in place by this process's writes,
//! written back as a durable snapshot, and rebuilt without tombstones by compaction,
//! which also rewrites the packed file without the deleted rows.
//!
//! Node `i` of a graph is row `i` of the packed file of its epoch: rows and nodes are
//! both appended in id order, and the graph is only ever extended from the rows after
//! its last node, so a quantized graph's candidates are rescored from their rows.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use redb::ReadTransaction;

use super::packed::FileWriter;
use super::tables::*;
use super::vectors::read_tombstones;
use super::{DB_FILE, INDEX_DIR, Store, db_err};
use crate::codec;
use crate::error::{Error, Result};
use crate::index::{self, VectorIndex};

/// Rows read from redb per rebuild step (bounds memory while rebuilding).
const REBUILD_CHUNK: usize = 20_000;

/// A collection's graph and what it reflects.
pub(crate) struct Live {
    pub(super) index: VectorIndex,
    pub(super) tombstones: HashSet<u64>,
    generation: u64,
    epoch: u64,
}

/// One collection's graph behind its own lock (`None` until it is first needed, or
/// after a write it could not follow).
pub(crate) type Slot = Arc<RwLock<Option<Live>>>;

impl Live {
    fn reflects(&self, info: &CollectionInfo) -> bool {
        self.generation == info.generation && self.epoch == info.epoch
    }
}

impl Store {
    /// The slot of collection `id`, made on first use. The map's lock is held only to
    /// look the slot up or add it.
    pub(super) fn slot(&self, id: u32) -> Slot {
        if let Some(s) = self.live.read().expect("live lock").get(&id) {
            return s.clone();
        }
        self.live
            .write()
            .expect("live lock")
            .entry(id)
            .or_default()
            .clone()
    }

    /// The slot of collection `id` when one was made.
    fn existing_slot(&self, id: u32) -> Option<Slot> {
        self.live.read().expect("live lock").get(&id).cloned()
    }

    /// After a committed write of generation `info.generation`: a loaded graph one
    /// generation behind is brought in step by `apply`; any other is dropped, to catch
    /// up when next used.
    fn follow_write(&self, info: &CollectionInfo, apply: impl FnOnce(&mut Live)) {
        let Some(slot) = self.existing_slot(info.id) else {
            return;
        };
        let mut g = slot.write().expect("slot lock");
        if let Some(l) = g.as_mut() {
            if l.generation + 1 == info.generation && l.epoch == info.epoch {
                apply(l);
                l.generation = info.generation;
            } else {
                *g = None;
            }
        }
    }

    /// After a committed insert of `prepared` (ids and normalised vectors): a loaded
    /// graph one generation behind takes them; any other is dropped, to catch up later.
    pub(super) fn after_insert(&self, info: &CollectionInfo, prepared: &[(u64, Vec<f32>)]) {
        self.follow_write(info, |l| l.index.insert(prepared));
    }

    /// After a committed delete of `removed`: a loaded graph one generation behind
    /// records them as tombstones; any other is dropped, to catch up later.
    pub(super) fn after_delete(&self, info: &CollectionInfo, removed: &[u64]) {
        self.follow_write(info, |l| l.tombstones.extend(removed));
    }

    /// After a committed insert of `vectors` as ids `first_id..`: keep a loaded graph
    /// in step (otherwise it catches up when next used).
    pub(crate) fn keep_graph_in_step<'a>(
        &self,
        info: &CollectionInfo,
        first_id: u64,
        vectors: impl IntoIterator<Item = &'a [f32]>,
    ) {
        let prepared: Vec<(u64, Vec<f32>)> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    first_id + i as u64,
                    index::prepare(v, info.metric).expect("validated"),
                )
            })
            .collect();
        self.after_insert(info, &prepared);
    }

    /// Make sure the collection's graph is loaded and reflects redb's current state;
    /// returns the collection. Only this collection's slot is held while its graph is
    /// loaded, caught up or rebuilt. Nothing is written: on a writable store a graph
    /// that had to catch up or be rebuilt is marked for [`Store::save_snapshots`].
    pub fn sync_index(&self, collection: &str) -> Result<CollectionInfo> {
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let slot = self.slot(info.id);
        let current = matches!(&*slot.read().expect("slot lock"), Some(l) if l.reflects(&info));
        if !current {
            let mut g = slot.write().expect("slot lock");
            // Another thread may have brought it up to date while this one waited.
            if !matches!(&*g, Some(l) if l.reflects(&info)) {
                let (l, work) = self.bring_up_to_date(&txn, &info, g.take())?;
                *g = Some(l);
                if work > 0 && self.is_writable() {
                    self.snapshot_due
                        .lock()
                        .expect("due lock")
                        .insert(info.name.clone());
                }
            }
        }
        Ok(info)
    }

    /// Write the snapshots of the graphs that searches caught up or rebuilt since they
    /// were last written (writable stores; a no-op otherwise). A writable store calls
    /// it when it closes; a long-running writer may call it when idle. A collection
    /// deleted meanwhile is skipped.
    pub fn save_snapshots(&self) -> Result<()> {
        if !self.is_writable() {
            return Ok(());
        }
        let due = std::mem::take(&mut *self.snapshot_due.lock().expect("due lock"));
        for name in due {
            match self.save_snapshot(&name) {
                Err(Error::UnknownCollection { .. }) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Whether the collection's recorded index snapshot loads (checksums included),
    /// without keeping or rebuilding anything: `Some(note)` when a snapshot is recorded
    /// but cannot be used (a writer rebuilds it from the vectors).
    pub(crate) fn snapshot_note(
        &self,
        txn: &ReadTransaction,
        info: &CollectionInfo,
    ) -> Result<Option<String>> {
        let path = self.db_path();
        let recorded = txn
            .open_table(SNAPSHOTS)
            .map_err(|e| db_err(&path, e))?
            .get(info.id)
            .map_err(|e| db_err(&path, e))?
            .is_some();
        if !recorded || load_snapshot(self, txn, info)?.is_some() {
            return Ok(None);
        }
        let why = self.take_warnings().join("; ");
        Ok(Some(format!(
            "the index snapshot of '{}' is stale or damaged{}; it is derived data, rebuilt \
             from the vectors in memory meanwhile: `vortexdb repair --index-only` rewrites it",
            info.name,
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            }
        )))
    }

    /// Returns the up-to-date graph and how many points had to be inserted.
    fn bring_up_to_date(
        &self,
        txn: &ReadTransaction,
        info: &CollectionInfo,
        existing: Option<Live>,
    ) -> Result<(Live, usize)> {
        let packed = self.packed_for(txn, info)?;
        let fresh = || {
            VectorIndex::with_quantization(
                info.dim,
                info.metric,
                info.hnsw,
                info.rows as usize,
                info.quantization,
            )
        };
        let (mut index, mut inserted) = match existing {
            Some(l) if l.epoch == info.epoch && l.generation <= info.generation => (l.index, 0),
            _ => match load_snapshot(self, txn, info)? {
                Some((idx, _)) => (idx, 0),
                None => (fresh(), 0),
            },
        };
        // Node i is row i: a graph whose last node is not the row's vector (it cannot
        // happen unless a file was replaced) is rebuilt rather than trusted.
        let n = index.len() as u64;
        if n > packed.rows() || (n > 0 && index.id_of((n - 1) as u32) != packed.id_of(n - 1)) {
            self.warn(format!(
                "the index of '{}' does not match its packed vectors; rebuilding it",
                info.name
            ));
            index = fresh();
        }
        // Catch up: the rows after the graph's last node.
        let start = index.len() as u64;
        let mut chunk: Vec<(u64, Vec<f32>)> = Vec::with_capacity(REBUILD_CHUNK);
        for row in start..packed.rows() {
            let (id, v) = packed.vector_at(row)?;
            let p = index::prepare(v, info.metric).ok_or_else(|| Error::Corrupted {
                path: packed.path().to_path_buf(),
                message: format!("vector {id} of '{}' is zero under cosine", info.name),
            })?;
            chunk.push((id, p));
            if chunk.len() == REBUILD_CHUNK {
                index.insert(&chunk);
                inserted += chunk.len();
                chunk.clear();
            }
        }
        index.insert(&chunk);
        inserted += chunk.len();
        let tombstones = read_tombstones(txn, &self.db_path(), info.id)?;
        Ok((
            Live {
                index,
                tombstones,
                generation: info.generation,
                epoch: info.epoch,
            },
            inserted,
        ))
    }

    /// Write the collection's graph as the current snapshot (writers only). The files
    /// are made durable before redb names them; older snapshots are then removed.
    pub fn save_snapshot(&self, collection: &str) -> Result<()> {
        self.ensure_writable()?;
        self.snapshot_due
            .lock()
            .expect("due lock")
            .remove(collection);
        let path = self.db_path();
        let info = self.collection(collection)?;
        let index_root = self.files.join(INDEX_DIR);
        let name = format!("c{}-e{}-g{}", info.id, info.epoch, info.generation);
        let tmp = index_root.join(format!("tmp-{name}-{}", std::process::id()));
        let final_dir = index_root.join(&name);
        let snapshot_info = {
            let Some(slot) = self.existing_slot(info.id) else {
                return Ok(());
            };
            let g = slot.read().expect("slot lock");
            let Some(l) = g.as_ref() else {
                return Ok(());
            };
            if !l.reflects(&info) {
                return Ok(()); // a newer write raced us; the next sync will snapshot
            }
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            l.index.save(&tmp)?
        };
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        index::sync_dir(&index_root)?;
        let rec = SnapshotRecord {
            generation: info.generation,
            epoch: info.epoch,
            dir: name.clone(),
            info: snapshot_info,
        };
        self.write(|txn| {
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(|e| db_err(&path, e))?;
            snaps
                .insert(info.id, codec::encode(&rec).as_slice())
                .map_err(|e| db_err(&path, e))?;
            Ok(())
        })?;
        // Remove other snapshots of this collection (and stale temporaries).
        if let Ok(rd) = std::fs::read_dir(&index_root) {
            let prefix = format!("c{}-", info.id);
            let tmp_prefix = format!("tmp-c{}-", info.id);
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n != name && (n.starts_with(&prefix) || n.starts_with(&tmp_prefix)) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Rebuild the collection's graph from its live vectors, dropping tombstones, and
    /// snapshot it. Returns the number of tombstones removed.
    pub fn compact(&self, collection: &str) -> Result<u64> {
        let db = self.writer()?;
        let path = self.db_path();
        // Held from the read to the write: no other write of this process in between.
        let w = self.lock_writes();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let old = self.packed_for(&txn, &info)?;
        let tombstones = read_tombstones(&txn, &path, info.id)?;
        let mut fresh = info.clone();
        fresh.epoch += 1;
        fresh.generation += 1;
        fresh.tombstones = 0;
        // The live rows, verified, into the next epoch's file (durable before redb
        // names it; a crash before the commit leaves an orphan file, removed later).
        let mut out = FileWriter::create(self.packed_path(info.id, fresh.epoch), info.dim)?;
        for row in 0..old.rows() {
            let (id, _) = old.vector_at(row)?;
            if !tombstones.contains(&id) {
                out.push(id, old.row_bytes(row))?;
            }
        }
        let (rows, blocks) = out.finish()?;
        fresh.rows = rows;
        drop(txn);
        let removed = info.tombstones;
        self.commit_locked(db, &w, true, |wtxn| {
            let mut cols = wtxn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
            cols.insert(collection, codec::encode(&fresh).as_slice())
                .map_err(|e| db_err(&path, e))?;
            let mut tomb = wtxn.open_table(TOMBSTONES).map_err(|e| db_err(&path, e))?;
            tomb.retain_in((info.id, 0)..=(info.id, u64::MAX), |_, _| false)
                .map_err(|e| db_err(&path, e))?;
            let mut bt = wtxn.open_table(BLOCKS).map_err(|e| db_err(&path, e))?;
            bt.retain_in((info.id, 0)..=(info.id, u64::MAX), |_, _| false)
                .map_err(|e| db_err(&path, e))?;
            for (first, b) in &blocks {
                bt.insert((info.id, *first), codec::encode(b).as_slice())
                    .map_err(|e| db_err(&path, e))?;
            }
            Ok(())
        })?;
        drop(old);
        self.packed.write().expect("packed lock").remove(&info.id);
        let _ = std::fs::remove_file(self.packed_path(info.id, info.epoch));
        // The graph of the new epoch, from its rows.
        let txn = self.read()?;
        let (rebuilt, _) = self.bring_up_to_date(&txn, &fresh, None)?;
        drop(txn);
        *self.slot(info.id).write().expect("slot lock") = Some(rebuilt);
        drop(w);
        self.save_snapshot(collection)?;
        Ok(removed)
    }
}

/// Load the snapshot named by redb for `info`, if it is usable (a damaged one is
/// reported as a warning and left to be rebuilt).
fn load_snapshot(
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
        || rec.info.len as u64 > info.rows
        || rec.info.max_id.is_some_and(|m| m >= info.next_id)
    {
        return Ok(None);
    }
    let dir = store.files.join(INDEX_DIR).join(&rec.dir);
    match VectorIndex::load_quantized(&dir, &rec.info, info.dim, info.metric, info.quantization) {
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

impl Drop for Store {
    /// A writable store writes the snapshots its searches left due (best effort: they
    /// are derived data, caught up or rebuilt at the next open when missing).
    fn drop(&mut self) {
        if let Err(e) = self.save_snapshots() {
            log::warn!(
                "{}: index snapshots not written at close: {e}",
                self.dir.display()
            );
        }
    }
}
