//! The settings of a volume ingest, its progress reports and its final report.

use crate::catalog::SampleKind;
use crate::error::{Error, Result};
use crate::index::Quantization;
use crate::model::RunOptions;
use crate::volume::grid::Polarity;

/// Which image encoder embeds the patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoder {
    /// `image_3d` on `patch` (3D volumes, 2.5D section stacks): collection `<model>:3d`.
    #[default]
    Image3d,
    /// `image_2d` on `patch_2d` (single H&E images): collection `<model>:2d`, the target
    /// of cross-modal 3D -> 2D retrieval. No predictions are stored.
    Image2d,
}

impl Encoder {
    /// The network name in the manifest.
    pub fn network(self) -> &'static str {
        match self {
            Encoder::Image3d => "image_3d",
            Encoder::Image2d => "image_2d",
        }
    }

    /// The collection kind (`3d` or `2d`): the collection is `<model>:<kind>`.
    pub fn collection_kind(self) -> &'static str {
        match self {
            Encoder::Image3d => "3d",
            Encoder::Image2d => "2d",
        }
    }

    /// The modality of the collection it fills.
    pub fn modality(self) -> crate::catalog::Modality {
        match self {
            Encoder::Image3d => crate::catalog::Modality::Image3d,
            Encoder::Image2d => crate::catalog::Modality::Image2d,
        }
    }

    /// The patch geometry this encoder reads.
    pub fn patch(self, m: &crate::model::Manifest) -> Result<&crate::model::PatchSpec> {
        match self {
            Encoder::Image3d => Ok(&m.patch),
            Encoder::Image2d => m.patch_2d.as_ref().ok_or_else(|| {
                Error::bad_file(
                    "manifest.json",
                    format!("model '{}' has no 2D encoder (no patch_2d)", m.name),
                )
            }),
        }
    }
}

/// Settings of one ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Sample id (letters, digits, - _ .).
    pub sample: String,
    /// What the source is: a volume, serial sections or one image.
    pub kind: SampleKind,
    /// The encoder (3D by default).
    pub encoder: Encoder,
    /// Source voxel size (z, y, x) in micrometres; `None` = the model's.
    pub voxel_um: Option<[f64; 3]>,
    /// Overlap between neighbouring patches on every axis (method: 0.75).
    pub overlap: f64,
    /// Minimum tissue fraction of a patch.
    pub min_tissue: f32,
    /// Tissue side of the Otsu threshold.
    pub polarity: Polarity,
    /// Patches per inference batch (and per store transaction).
    pub batch: usize,
    /// Execution provider and threads.
    pub run: RunOptions,
    /// What the graph of the model's collection holds in RAM, when this ingest
    /// creates the collection (an existing collection keeps its own).
    pub quantization: Option<Quantization>,
    /// Stain-normalise every section (slice) of an RGB H&E source to the stain of this
    /// reference image before it is embedded ([`crate::StainNormalized`]); `None`: as read.
    pub stain_reference: Option<std::path::PathBuf>,
}

impl IngestOptions {
    /// Ingest as sample `sample` with the defaults (a 3D volume, 75% overlap, tissue
    /// fraction 0.25, batches of 64, CPU).
    pub fn new(sample: &str) -> Self {
        IngestOptions {
            sample: sample.into(),
            ..Default::default()
        }
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            sample: String::new(),
            kind: SampleKind::Volume,
            encoder: Encoder::Image3d,
            voxel_um: None,
            overlap: 0.75,
            min_tissue: 0.25,
            polarity: Polarity::Bright,
            batch: 64,
            run: RunOptions::default(),
            quantization: None,
            stain_reference: None,
        }
    }
}

/// Progress reported after every durable batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Grid positions examined so far (stored or skipped as background).
    pub positions_done: u64,
    /// Grid positions in total.
    pub positions_total: u64,
    /// Patches stored for this sample so far.
    pub patches_stored: u64,
}

/// What an ingest did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    /// Sample id.
    pub sample: String,
    /// Collection the embeddings went to.
    pub collection: String,
    /// Model used.
    pub model: String,
    /// Source shape (z, y, x).
    pub source_shape: [usize; 3],
    /// Shape at the model's resolution.
    pub model_shape: [usize; 3],
    /// Patch grid positions.
    pub grid_positions: u64,
    /// Grid position the run started from (non-zero when resuming).
    pub resumed_from: u64,
    /// Patches stored by this run.
    pub patches_new: u64,
    /// Patches stored for the sample in total.
    pub patches_total: u64,
    /// Tissue threshold used.
    pub threshold: f32,
    /// Wall time of this run in seconds.
    pub seconds: f64,
    /// Seconds spent inside ONNX Runtime.
    pub inference_seconds: f64,
    /// Patches per second of this run.
    pub patches_per_second: f64,
    /// Peak resident memory of the process in bytes (Linux), if known.
    pub peak_rss_bytes: Option<u64>,
}

impl std::fmt::Display for IngestReport {
    /// One line for people: what was ingested, or that the sample was complete.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        if r.patches_new == 0 && r.resumed_from == r.grid_positions {
            return write!(
                f,
                "sample {} is already complete: {} patches in {}; nothing to do",
                r.sample, r.patches_total, r.collection
            );
        }
        let [a, b, c] = r.source_shape;
        let [x, y, z] = r.model_shape;
        let resumed = if r.resumed_from > 0 {
            format!(", resumed at {}", r.resumed_from)
        } else {
            String::new()
        };
        write!(
            f,
            "sample {}: {} new patches ({} in total) from a {a}x{b}x{c} source ({x}x{y}x{z} at \
             the model's resolution, {} grid positions{resumed}) into {} in {:.1} s ({:.1} \
             patches/s, tissue threshold {:.3})",
            r.sample,
            r.patches_new,
            r.patches_total,
            r.grid_positions,
            r.collection,
            r.seconds,
            r.patches_per_second,
            r.threshold
        )
    }
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
