//! Vectors in a collection: insert (rows appended to the packed file, then its block,
//! provenance record and import mark in one durable transaction), get, delete
//! (leaving tombstones until compaction), the mapped packed file of a collection,
//! the checks every stored or queried vector passes, and scans of a sample's records.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::packed::{self, Block, Packed};
use super::tables::*;
use super::{ImportMark, NewVector, Store, db_err, decode_or_corrupt, decode_record_at};
use crate::codec;
use crate::error::{Error, Result};
use crate::index;

impl Store {
    /// Insert a batch in one durable transaction and return the ids assigned (a
    /// contiguous range). Every vector is validated first; on error nothing is written.
    pub fn insert(
        &self,
        collection: &str,
        batch: &[NewVector<'_>],
        mark: Option<ImportMark<'_>>,
    ) -> Result<Range<u64>> {
        self.insert_with(collection, batch, mark, |_, _, _| Ok(()))
    }

    /// [`Store::insert`] with `extra` writing more (of a layer above the engine) in the
    /// same transaction, given the collection after the insert and the ids assigned.
    pub(crate) fn insert_with(
        &self,
        collection: &str,
        batch: &[NewVector<'_>],
        mark: Option<ImportMark<'_>>,
        extra: impl FnOnce(&WriteTransaction, &CollectionInfo, &Range<u64>) -> Result<()>,
    ) -> Result<Range<u64>> {
        self.ensure_writable()?;
        let path = self.db_path();
        let before = self.collection(collection)?;
        for (i, nv) in batch.iter().enumerate() {
            validate_vector(nv.vector, before.dim, before.metric, i)?;
        }
        let (info, range) = self.write_data(|txn| {
            let (info, range) = insert_in(txn, &path, collection, batch, mark.as_ref())?;
            extra(txn, &info, &range)?;
            Ok((info, range))
        })?;
        self.keep_graph_in_step(&info, range.start, batch.iter().map(|nv| nv.vector));
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
        let tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(&path, e))?;
        if tomb
            .get((info.id, id))
            .map_err(|e| db_err(&path, e))?
            .is_some()
        {
            return Ok(None);
        }
        let packed = self.packed_for(&txn, &info)?;
        let Some(row) = packed.row_of(id) else {
            return Ok(None);
        };
        let v = packed.vector(row, id)?.to_vec();
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
        let path = self.db_path();
        let mut removed = Vec::new();
        let info = self.write_data(|txn| {
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
            let blocks = txn.open_table(BLOCKS).map_err(|e| db_err(&path, e))?;
            let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
            let mut tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(&path, e))?;
            for &id in ids {
                let stored = block_of(&blocks, &path, info.id, id)?.is_some();
                if stored
                    && tomb
                        .get((info.id, id))
                        .map_err(|e| db_err(&path, e))?
                        .is_none()
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
            Ok(info)
        })?;
        self.after_delete(&info, &removed);
        Ok(removed.len() as u64)
    }

    /// Live patches of `collection` whose record names `sample` (a scan; used when
    /// resuming an ingest and by `info`).
    pub fn count_sample_patches(&self, collection: &str, sample: &str) -> Result<u64> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let mut n = 0u64;
        live_records_of(&txn, &path, info.id, sample, |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// The packed file of `info` (read in `txn`), mapped: cached while the collection
    /// has the same epoch and rows, remapped when it grew.
    pub(crate) fn packed_for(
        &self,
        txn: &ReadTransaction,
        info: &CollectionInfo,
    ) -> Result<Arc<Packed>> {
        let previous = {
            let cache = self.packed.read().expect("packed lock");
            match cache.get(&info.id) {
                Some(p) if p.epoch == info.epoch && p.rows() == info.rows => return Ok(p.clone()),
                other => other.cloned(),
            }
        };
        let path = self.db_path();
        let table = txn.open_table(BLOCKS).map_err(|e| db_err(&path, e))?;
        let mut blocks = Vec::new();
        for kv in table
            .range((info.id, 0)..=(info.id, u64::MAX))
            .map_err(|e| db_err(&path, e))?
        {
            let (k, v) = kv.map_err(|e| db_err(&path, e))?;
            let b: Block = decode_or_corrupt(&path, v.value(), "vector block")?;
            blocks.push((k.value().1, b));
        }
        let file = self.packed_path(info.id, info.epoch);
        let p = Arc::new(Packed::open(
            file,
            info.id,
            &info.name,
            info.epoch,
            info.dim,
            info.rows,
            blocks,
            previous.as_deref(),
        )?);
        self.packed
            .write()
            .expect("packed lock")
            .insert(info.id, p.clone());
        Ok(p)
    }

    /// After a crash: cut each packed file to the rows redb committed (a crashed
    /// batch's tail) and remove files no collection names (an interrupted compaction
    /// or migration). Writers only, when opening.
    pub(crate) fn tidy_packed(&self) -> Result<()> {
        let dir = self.files.join(packed::VECTORS_DIR);
        let mut named = HashSet::new();
        for c in self.collections()? {
            let path = self.packed_path(c.id, c.epoch);
            let want = c.rows * packed::stride(c.dim) as u64;
            if let Ok(m) = std::fs::metadata(&path)
                && m.len() > want
            {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                f.set_len(want).map_err(|e| Error::io(&path, e))?;
                f.sync_all().map_err(|e| Error::io(&path, e))?;
            }
            named.insert(packed::file_name(c.id, c.epoch));
        }
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if !named.contains(&n) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Err(_) => std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?,
        }
        Ok(())
    }

    /// Path of the packed file of collection `cid` in `epoch`.
    pub(crate) fn packed_path(&self, cid: u32, epoch: u64) -> std::path::PathBuf {
        self.files
            .join(packed::VECTORS_DIR)
            .join(packed::file_name(cid, epoch))
    }
}

/// The block of collection `cid` holding `id`, if any: (first id, block).
pub(crate) fn block_of(
    blocks: &impl ReadableTable<(u32, u64), &'static [u8]>,
    path: &Path,
    cid: u32,
    id: u64,
) -> Result<Option<(u64, Block)>> {
    let Some(kv) = blocks
        .range((cid, 0)..=(cid, id))
        .map_err(|e| db_err(path, e))?
        .next_back()
    else {
        return Ok(None);
    };
    let (k, v) = kv.map_err(|e| db_err(path, e))?;
    let b: Block = decode_or_corrupt(path, v.value(), "vector block")?;
    let first = k.value().1;
    Ok(b.row_of(first, id).is_some().then_some((first, b)))
}

/// The body of [`Store::insert`] inside a caller's write transaction (vectors already
/// validated): vectors, records, the collection's counters and the import mark.
pub(crate) fn insert_in(
    txn: &WriteTransaction,
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
    if !batch.is_empty() {
        // The rows first, durably, at the committed end of the file; then redb names
        // them in this transaction.
        let store_dir = path.parent().unwrap_or(Path::new("."));
        let file = store_dir
            .join(packed::VECTORS_DIR)
            .join(packed::file_name(info.id, info.epoch));
        let mut rows = Vec::new();
        packed::encode_rows(info.id, start, batch.iter().map(|nv| nv.vector), &mut rows);
        packed::write_rows(&file, packed::stride(info.dim), info.rows, &rows)?;
        let mut blocks = txn.open_table(BLOCKS).map_err(|e| db_err(&path, e))?;
        let block = Block {
            first_row: info.rows,
            count: batch.len() as u64,
            ids: Vec::new(),
        };
        blocks
            .insert((info.id, start), codec::encode(&block).as_slice())
            .map_err(|e| db_err(&path, e))?;
        info.rows += batch.len() as u64;
    }
    let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
    for (i, nv) in batch.iter().enumerate() {
        let id = start + i as u64;
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

/// Call `f` with the id and record of every live (not tombstoned) vector of collection
/// `cid` whose record names `sample`, in id order. Every record of the collection is
/// decoded, and so checksum-verified, on the way.
pub(crate) fn live_records_of(
    txn: &ReadTransaction,
    path: &Path,
    cid: u32,
    sample: &str,
    mut f: impl FnMut(u64, PatchRecord) -> Result<()>,
) -> Result<()> {
    let records = txn.open_table(RECORDS).map_err(|e| db_err(path, e))?;
    let tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(path, e))?;
    for kv in records
        .range((cid, 0)..=(cid, u64::MAX))
        .map_err(|e| db_err(path, e))?
    {
        let (k, v) = kv.map_err(|e| db_err(path, e))?;
        let r = decode_record_at(path, k.value(), v.value())?;
        if r.sample != sample || tomb.get(k.value()).map_err(|e| db_err(path, e))?.is_some() {
            continue;
        }
        f(k.value().1, r)?;
    }
    Ok(())
}

/// Check one vector against a collection's dimension and metric.
pub(crate) fn validate_vector(
    v: &[f32],
    dim: usize,
    metric: index::Metric,
    row: usize,
) -> Result<()> {
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
