//! Collections: creating one (name, dimension, metric, HNSW parameters; one per model
//! and modality), looking them up and listing them, the progress of resumable imports
//! into them, and [`Store::info`], the engine's summary of a store.

use std::path::PathBuf;

use redb::{ReadTransaction, ReadableTable};

use super::tables::*;
use super::{Store, db_err, decode_or_corrupt};
use crate::codec;
use crate::error::{Error, Result};

/// State of a collection's on-disk snapshot, as reported by [`Store::info`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotState {
    /// Generation of the snapshot, if there is one.
    pub generation: Option<u64>,
    /// True when the snapshot reflects the collection's current generation and epoch.
    pub fresh: bool,
}

/// Bytes a collection takes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CollectionDisk {
    /// Its vectors as raw f32 (`rows x dim x 4`), for comparison.
    pub raw_bytes: u64,
    /// Its packed vector file (the rows redb committed: vectors and their CRC-32s).
    pub packed_bytes: u64,
    /// Its HNSW snapshot (derived; rebuilt when missing).
    pub index_bytes: u64,
}

/// Summary of a store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreInfo {
    /// Store directory.
    pub path: PathBuf,
    /// On-disk schema version.
    pub schema_version: u32,
    /// Global generation.
    pub generation: u64,
    /// Size of `vortex.redb` in bytes.
    pub db_bytes: u64,
    /// Collections with their snapshot state.
    pub collections: Vec<(CollectionInfo, SnapshotState)>,
    /// Bytes on disk of each collection, in the order of `collections`.
    pub disk: Vec<CollectionDisk>,
}

impl StoreInfo {
    /// Everything the store takes on disk: `vortex.redb`, packed vectors, snapshots.
    pub fn disk_bytes(&self) -> u64 {
        self.db_bytes
            + self
                .disk
                .iter()
                .map(|d| d.packed_bytes + d.index_bytes)
                .sum::<u64>()
    }
}

impl Store {
    /// Create a collection. Fails if the name exists or the spec is invalid.
    pub fn create_collection(&self, spec: &CollectionSpec) -> Result<CollectionInfo> {
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(Error::arg(
                "collection",
                format!(
                    "invalid collection name '{}' (use letters, digits, - _ . :)",
                    spec.name
                ),
            ));
        }
        if spec.dim == 0 || spec.dim > 65_536 {
            return Err(Error::arg(
                "collection",
                format!("invalid dimension {}", spec.dim),
            ));
        }

        crate::limits::count("m", spec.hnsw.m)?;
        crate::limits::count("ef_construction", spec.hnsw.ef_construction)?;
        let path = self.db_path();
        self.write_data(|txn| {
            let mut cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
            if cols
                .get(spec.name.as_str())
                .map_err(|e| db_err(&path, e))?
                .is_some()
            {
                return Err(Error::arg(
                    "collection",
                    format!("collection '{}' already exists", spec.name),
                ));
            }
            let mut max_id = 0u32;
            for entry in cols.iter().map_err(|e| db_err(&path, e))? {
                let (_, v) = entry.map_err(|e| db_err(&path, e))?;
                let c: CollectionInfo = decode_or_corrupt(&path, v.value(), "collection")?;
                max_id = max_id.max(c.id + 1);
                if spec.model != "raw" && c.model == spec.model && c.modality == spec.modality {
                    return Err(Error::arg(
                        "collection",
                        format!(
                            "model '{}' already has a {} collection ('{}'); embeddings of one model and modality share one collection",
                            spec.model, spec.modality, c.name
                        ),
                    ));
                }
            }
            let info = CollectionInfo {
                id: max_id,
                name: spec.name.clone(),
                model: spec.model.clone(),
                modality: spec.modality.clone(),
                dim: spec.dim,
                metric: spec.metric,
                hnsw: spec.hnsw,
                next_id: 0,
                live: 0,
                tombstones: 0,
                generation: 0,
                epoch: 0,
                quantization: spec.quantization,
                rows: 0,
            };
            cols.insert(spec.name.as_str(), codec::encode(&info).as_slice())
                .map_err(|e| db_err(&path, e))?;
            Ok(info)
        })
    }

    /// Look up a collection by name.
    pub fn collection(&self, name: &str) -> Result<CollectionInfo> {
        let txn = self.read()?;
        self.collection_in(&txn, name)
    }

    /// [`Store::collection`] inside the caller's read transaction.
    pub(crate) fn collection_in(
        &self,
        txn: &ReadTransaction,
        name: &str,
    ) -> Result<CollectionInfo> {
        let path = self.db_path();
        let cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
        match cols.get(name).map_err(|e| db_err(&path, e))? {
            Some(v) => decode_or_corrupt(&path, v.value(), "collection"),
            None => {
                drop(cols);
                let known: Vec<String> = self.collections()?.into_iter().map(|c| c.name).collect();
                Err(Error::UnknownCollection {
                    name: name.to_string(),
                    known,
                })
            }
        }
    }

    /// Refuse a quantization asked for an existing collection that holds another (it
    /// is chosen when the collection is created and cannot change).
    pub(crate) fn same_quantization(
        info: &CollectionInfo,
        asked: Option<crate::index::Quantization>,
    ) -> Result<()> {
        match asked {
            Some(q) if q != info.quantization => Err(Error::arg(
                "quantization",
                format!(
                    "collection '{}' already holds {} codes; quantization is chosen when a \
                     collection is created and cannot change (leave the option out, or use \
                     a new collection)",
                    info.name,
                    info.quantization.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// All collections, by name.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>> {
        let path = self.db_path();
        let txn = self.read()?;
        let cols = txn.open_table(COLLECTIONS).map_err(|e| db_err(&path, e))?;
        let mut out = Vec::new();
        for entry in cols.iter().map_err(|e| db_err(&path, e))? {
            let (_, v) = entry.map_err(|e| db_err(&path, e))?;
            out.push(decode_or_corrupt(&path, v.value(), "collection")?);
        }
        Ok(out)
    }

    /// Progress of an earlier import of `source` into `collection`, if any.
    pub fn import_progress(
        &self,
        collection: &str,
        source: &str,
    ) -> Result<Option<ImportProgress>> {
        let path = self.db_path();
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        let t = txn.open_table(IMPORTS).map_err(|e| db_err(&path, e))?;
        match t.get((info.id, source)).map_err(|e| db_err(&path, e))? {
            Some(v) => Ok(Some(decode_or_corrupt(
                &path,
                v.value(),
                "import progress",
            )?)),
            None => Ok(None),
        }
    }

    /// Summary of the store and its collections.
    pub fn info(&self) -> Result<StoreInfo> {
        let path = self.db_path();
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| db_err(&path, e))?;
        let generation = meta
            .get(META_GENERATION)
            .map_err(|e| db_err(&path, e))?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        let snaps = txn.open_table(SNAPSHOTS).map_err(|e| db_err(&path, e))?;
        let mut collections = Vec::new();
        let mut disk = Vec::new();
        for c in self.collections()? {
            let rec: Option<SnapshotRecord> = match snaps.get(c.id).map_err(|e| db_err(&path, e))? {
                Some(v) => codec::decode(v.value()),
                None => None,
            };
            let state = SnapshotState {
                generation: rec.as_ref().map(|r| r.generation),
                fresh: rec
                    .as_ref()
                    .is_some_and(|r| r.generation == c.generation && r.epoch == c.epoch),
            };
            let file_len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let index_bytes = rec.as_ref().map_or(0, |r| {
                r.info
                    .files
                    .iter()
                    .map(|f| file_len(self.files.join(super::INDEX_DIR).join(&r.dir).join(&f.name)))
                    .sum()
            });
            disk.push(CollectionDisk {
                raw_bytes: c.rows * c.dim as u64 * 4,
                packed_bytes: file_len(self.packed_path(c.id, c.epoch))
                    .min(c.rows * super::packed::stride(c.dim) as u64),
                index_bytes,
            });
            collections.push((c, state));
        }
        Ok(StoreInfo {
            path: self.dir.clone(),
            schema_version: codec::FORMAT_VERSION,
            generation,
            db_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            collections,
            disk,
        })
    }
}
