//! The engine's redb tables (meta, collections, vector blocks, records, tombstones,
//! imports, snapshots) and the records stored in them; the catalog's tables are
//! defined by the catalog. The vectors themselves are in packed files
//! ([`super::packed`]).
//!
//! Keys are `(collection id, vector id)` tuples so that one collection is one
//! contiguous key range; values are encoded by [`crate::codec`].

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::index::{HnswParams, Metric, Quantization, SnapshotInfo};

/// `meta`: schema version, format marker, global generation.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `collections`: name -> [`CollectionInfo`].
pub(crate) const COLLECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("collections");
/// `vector_blocks`: (collection, first id) -> a [`super::packed::Block`]: where a run
/// of vectors is in the collection's packed file.
pub(crate) const BLOCKS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("vector_blocks");
/// `vectors` (schema 1 and 2 only, moved to packed files by the migration to
/// schema 3): (collection, id) -> f32 LE bytes + CRC-32.
pub(crate) const VECTORS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("vectors");
/// `records`: (collection, id) -> [`PatchRecord`] (sample and patch geometry).
pub(crate) const RECORDS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("records");
/// `tombstones`: ids deleted since the last compaction, still in the HNSW graph.
pub(crate) const TOMBSTONES: TableDefinition<(u32, u64), ()> = TableDefinition::new("tombstones");
/// `imports`: (collection, source fingerprint) -> [`ImportProgress`], to resume imports.
pub(crate) const IMPORTS: TableDefinition<(u32, &str), &[u8]> = TableDefinition::new("imports");
/// `snapshots`: collection -> [`SnapshotRecord`] naming the valid on-disk HNSW snapshot.
pub(crate) const SNAPSHOTS: TableDefinition<u32, &[u8]> = TableDefinition::new("snapshots");

/// Meta key of the format marker.
pub(crate) const META_FORMAT: &str = "format";
/// Value of the format marker.
pub(crate) const FORMAT_NAME: &[u8] = b"vortexdb-store";
/// Meta key of the schema version (u32 LE).
pub(crate) const META_SCHEMA: &str = "schema_version";
/// Meta key of the global generation (u64 LE), bumped by every data write.
pub(crate) const META_GENERATION: &str = "generation";

/// A named set of embeddings of one model and modality, all of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// Numeric id used in keys.
    pub id: u32,
    /// Unique name.
    pub name: String,
    /// Model that produced the embeddings (`raw` for imported vectors).
    pub model: String,
    /// Modality: `3d`, `2.5d`, `2d`, `spots`, or `raw`.
    pub modality: String,
    /// Vector dimension.
    pub dim: usize,
    /// Distance used for search.
    pub metric: Metric,
    /// HNSW construction parameters.
    pub hnsw: HnswParams,
    /// Next id to assign (ids are never reused).
    pub next_id: u64,
    /// Number of live (not deleted) vectors.
    pub live: u64,
    /// Number of deleted vectors still in the graph (cleared by compaction).
    pub tombstones: u64,
    /// Bumped by every write to this collection.
    pub generation: u64,
    /// Bumped by every compaction; a snapshot of another epoch is never used.
    pub epoch: u64,
    /// The representation the graph holds in RAM.
    pub quantization: Quantization,
    /// Rows of the packed file of this epoch (deleted vectors included until
    /// compaction); committed with each batch, so rows past it are not yet written.
    pub rows: u64,
}

/// A schema-2 [`CollectionInfo`] (before packed vectors), read by the migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CollectionInfoV2 {
    pub id: u32,
    pub name: String,
    pub model: String,
    pub modality: String,
    pub dim: usize,
    pub metric: Metric,
    pub hnsw: HnswParams,
    pub next_id: u64,
    pub live: u64,
    pub tombstones: u64,
    pub generation: u64,
    pub epoch: u64,
}

/// What identifies a new collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    /// Unique name.
    pub name: String,
    /// Model name.
    pub model: String,
    /// Modality label.
    pub modality: String,
    /// Vector dimension.
    pub dim: usize,
    /// Distance.
    pub metric: Metric,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// The representation the graph holds in RAM (f32 unless chosen otherwise).
    pub quantization: Quantization,
}

impl CollectionSpec {
    /// The same spec with `quantization` held in RAM.
    pub fn with_quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }

    /// The collection of one model's embeddings of one modality, named
    /// `{model}:{modality}`; the store keeps at most one per (model, modality) pair so
    /// embeddings of different models never share an index.
    pub fn for_model(model: &str, modality: &str, dim: usize, metric: Metric) -> Self {
        CollectionSpec {
            name: format!("{model}:{modality}"),
            model: model.to_string(),
            modality: modality.to_string(),
            dim,
            metric,
            hnsw: HnswParams::default(),
            quantization: Quantization::F32,
        }
    }

    /// A raw-vector collection (model `raw`, modality `raw`) with default HNSW params.
    pub fn raw(name: &str, dim: usize, metric: Metric) -> Self {
        CollectionSpec {
            name: name.to_string(),
            model: "raw".into(),
            modality: "raw".into(),
            dim,
            metric,
            hnsw: HnswParams::default(),
            quantization: Quantization::F32,
        }
    }
}

/// Where an embedding came from: the sample and the patch geometry in voxels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRecord {
    /// Sample id.
    pub sample: String,
    /// Patch origin (z, y, x) in voxels of the sample.
    pub origin: [i64; 3],
    /// Patch size (z, y, x) in voxels.
    pub size: [u32; 3],
    /// Fraction of the patch covered by tissue.
    pub tissue_fraction: f32,
}

/// Progress of a resumable import, committed with every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProgress {
    /// Rows of the source already stored.
    pub rows_done: u64,
    /// Rows in the source.
    pub rows_total: u64,
}

/// The snapshot currently valid for a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Collection generation the snapshot reflects.
    pub generation: u64,
    /// Collection epoch the snapshot belongs to.
    pub epoch: u64,
    /// Directory under `index/`.
    pub dir: String,
    /// Files and contents.
    pub info: SnapshotInfo,
}
