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

impl Store {
    /// After a committed insert of `prepared` (ids and normalised vectors): a loaded
    /// graph one generation behind takes them; any other is dropped, to catch up later.
    pub(super) fn after_insert(&self, info: &CollectionInfo, prepared: &[(u64, Vec<f32>)]) {
        let mut live = self.live.write().expect("live lock");
        if let Some(l) = live.get_mut(&info.id) {
            if l.generation + 1 == info.generation && l.epoch == info.epoch {
                l.index.insert(prepared);
                l.generation = info.generation;
            } else {
                live.remove(&info.id);
            }
        }
    }

    /// After a committed delete of `removed`: a loaded graph one generation behind
    /// records them as tombstones; any other is dropped, to catch up later.
    pub(super) fn after_delete(&self, info: &CollectionInfo, removed: &[u64]) {
        let mut live = self.live.write().expect("live lock");
        if let Some(l) = live.get_mut(&info.id) {
            if l.generation + 1 == info.generation && l.epoch == info.epoch {
                l.tombstones.extend(removed);
                l.generation = info.generation;
            } else {
                live.remove(&info.id);
            }
        }
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
    /// returns the collection. Writes a fresh snapshot when it had to rebuild or catch
    /// up and the store is writable.
    pub fn sync_index(&self, collection: &str) -> Result<CollectionInfo> {
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let changed = {
            let live = self.live.read().expect("live lock");
            !matches!(live.get(&info.id), Some(l) if l.generation == info.generation && l.epoch == info.epoch)
        };
        if changed {
            let mut live = self.live.write().expect("live lock");
            let existing = live.remove(&info.id);
            let (l, work) = self.bring_up_to_date(&txn, &info, existing)?;
            live.insert(info.id, l);
            drop(live);
            if work > 0 && self.is_writable() {
                self.save_snapshot(collection)?;
            }
        }
        Ok(info)
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
        let path = self.db_path();
        let info = self.collection(collection)?;
        let index_root = self.dir.join(INDEX_DIR);
        let name = format!("c{}-e{}-g{}", info.id, info.epoch, info.generation);
        let tmp = index_root.join(format!("tmp-{name}-{}", std::process::id()));
        let final_dir = index_root.join(&name);
        let snapshot_info = {
            let live = self.live.read().expect("live lock");
            let Some(l) = live.get(&info.id) else {
                return Ok(());
            };
            if l.generation != info.generation || l.epoch != info.epoch {
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
        self.live
            .write()
            .expect("live lock")
            .insert(info.id, rebuilt);
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
    let dir = store.dir.join(INDEX_DIR).join(&rec.dir);
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
