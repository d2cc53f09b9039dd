//! Vectors in a collection: insert (with its provenance record and import mark, in
//! one durable transaction), get, delete (leaving tombstones until compaction), the
//! checks every stored or queried vector passes, and scans of a sample's records.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

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
        let vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
        let Some(bytes) = vectors.get((info.id, id)).map_err(|e| db_err(&path, e))? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        if !codec::decode_vector((info.id, id), bytes.value(), info.dim, &mut v) {
            return Err(Error::Corrupted {
                path,
                message: format!("vector {id} of collection '{collection}' fails its checksum"),
            });
        }
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
            let mut vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
            let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
            let mut tomb = txn.open_table(TOMBSTONES).map_err(|e| db_err(&path, e))?;
            for &id in ids {
                if vectors
                    .remove((info.id, id))
                    .map_err(|e| db_err(&path, e))?
                    .is_some()
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
    let mut vectors = txn.open_table(VECTORS).map_err(|e| db_err(&path, e))?;
    let mut records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
    let mut buf = Vec::new();
    for (i, nv) in batch.iter().enumerate() {
        let id = start + i as u64;
        codec::encode_vector((info.id, id), nv.vector, &mut buf);
        vectors
            .insert((info.id, id), buf.as_slice())
            .map_err(|e| db_err(&path, e))?;
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
