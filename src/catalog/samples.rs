//! Samples: one [`SampleRecord`] per volume, section stack or image ingested (source,
//! fingerprint, geometry, tissue threshold, ingest state), in `samples`; for a sample
//! ingested from image files, where those files are ([`SampleImages`]), in
//! `sample_images`.

use serde::{Deserialize, Serialize};

use super::tables::{SAMPLE_IMAGES, SAMPLES};
use super::{IngestStatus, SampleKind};
use crate::codec;
use crate::engine::{Store, db_err};
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

/// Where the image data of a sample ingested from image files is: its serial sections
/// ([`crate::ingest_sections`]) or its one image ([`crate::ingest_image`]), so that a
/// viewer can show the images without being given them again. Written with the sample
/// record, in the same transaction, when the ingest starts (and again when it
/// completes, so a resumed ingest records where the files are now).
///
/// Not recorded for a volume (its path is [`SampleRecord::source`]) nor for a sample
/// ingested from memory ([`crate::ingest_section_stack`], [`crate::ingest_image_source`]);
/// stores written before this record existed have none ([`Store::sample_images`] is
/// `None` for their samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleImages {
    /// Sample id.
    pub sample: String,
    /// The image files as given, made absolute (not resolving symbolic links), in
    /// section order (one for an image).
    pub images: Vec<String>,
    /// The transforms file registering the sections into one frame (absolute), when one
    /// was given; its affines are in pixels of the levels read.
    pub transforms: Option<String>,
    /// The pyramid level read of each image (0 = full resolution; `None`: the file's
    /// one image, as PNG, JPEG and single-level TIFF are read).
    pub levels: Vec<Option<usize>>,
    /// Pixel size of the images as read (at `levels`), micrometres.
    pub um_per_px: f64,
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

    /// Record (create or replace) a sample and, when given, where its image files are,
    /// in one write transaction (never one without the other).
    pub(crate) fn put_sample_with_images(
        &self,
        rec: &SampleRecord,
        images: Option<&SampleImages>,
    ) -> Result<()> {
        valid_id(&rec.id, "sample")?;
        let Some(images) = images else {
            return self.put_sample(rec);
        };
        let (record, located) = (codec::encode(rec), codec::encode(images));
        let path = self.db_path();
        self.write(|txn| {
            let mut t = txn.open_table(SAMPLES).map_err(|e| db_err(&path, e))?;
            t.insert(rec.id.as_str(), record.as_slice())
                .map_err(|e| db_err(&path, e))?;
            let mut t = txn
                .open_table(SAMPLE_IMAGES)
                .map_err(|e| db_err(&path, e))?;
            t.insert(rec.id.as_str(), located.as_slice())
                .map_err(|e| db_err(&path, e))?;
            Ok(())
        })
    }

    /// Where the image files of sample `id` are; `None` when nothing is recorded (a
    /// volume, a sample ingested from memory, a store written before the record
    /// existed, an unknown sample).
    pub fn sample_images(&self, id: &str) -> Result<Option<SampleImages>> {
        self.get_raw(SAMPLE_IMAGES, id, "sample images record")
    }

    /// Every recorded [`SampleImages`], in sample id order.
    pub fn all_sample_images(&self) -> Result<Vec<SampleImages>> {
        self.all_raw(SAMPLE_IMAGES, "sample images record")
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
