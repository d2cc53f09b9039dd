//! Samples: one [`SampleRecord`] per volume, section stack or image ingested (source,
//! fingerprint, geometry, tissue threshold, ingest state), in `samples`.

use serde::{Deserialize, Serialize};

use super::tables::SAMPLES;
use super::{IngestStatus, SampleKind};
use crate::codec;
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::names::valid_id;

/// A sample (one volume or section stack) and the state of its ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Sample id.
    pub id: String,
    /// `3d` (a volume) or `2.5d` (serial sections).
    pub kind: String,
    /// Source path as given.
    pub source: String,
    /// Fingerprint of the source and ingest settings; a re-run must match it to resume.
    pub fingerprint: String,
    /// Model whose embeddings were stored.
    pub model: String,
    /// Collection holding the embeddings.
    pub collection: String,
    /// Source shape (z, y, x) in its own voxels.
    pub source_shape: [usize; 3],
    /// Source voxel size (z, y, x) in micrometres.
    pub voxel_um: [f64; 3],
    /// Model-resolution voxel size (z, y, x) in micrometres (patch origins are in these
    /// voxels).
    pub model_voxel_um: [f64; 3],
    /// The patch grid at the model's resolution.
    pub grid: crate::volume::grid::Grid,
    /// Tissue threshold (Otsu, on [0, 1] gray values).
    pub threshold: f32,
    /// Tissue side of the threshold.
    pub polarity: crate::volume::grid::Polarity,
    /// Minimum tissue fraction for a patch to be embedded.
    pub min_tissue: f32,
    /// `ingesting` until the last batch is durable, then `complete`.
    pub status: String,
    /// Patches stored so far.
    pub patches: u64,
}

impl SampleRecord {
    /// What the sample was ingested from (`None` for a kind this build does not know).
    pub fn sample_kind(&self) -> Option<SampleKind> {
        SampleKind::parse(&self.kind)
    }

    /// How far its ingest got.
    pub fn ingest_status(&self) -> IngestStatus {
        IngestStatus::parse(&self.status)
    }
}

impl Store {
    /// Record (create or replace) a sample.
    pub fn put_sample(&self, rec: &SampleRecord) -> Result<()> {
        valid_id(&rec.id, "sample")?;
        self.put(SAMPLES, &rec.id, &codec::encode(rec))
    }

    /// A sample's record.
    pub fn sample(&self, id: &str) -> Result<Option<SampleRecord>> {
        self.get_raw(SAMPLES, id, "sample record")
    }

    /// Every sample.
    pub fn samples(&self) -> Result<Vec<SampleRecord>> {
        self.all_raw(SAMPLES, "sample record")
    }

    /// A sample's record, or a clear error listing the known samples.
    pub fn require_sample(&self, sample: &str) -> Result<SampleRecord> {
        self.sample(sample)?.ok_or_else(|| {
            let known: Vec<String> = self
                .samples()
                .map(|v| v.into_iter().map(|s| s.id).collect())
                .unwrap_or_default();
            Error::unknown_sample("sample", sample, known)
        })
    }
}
