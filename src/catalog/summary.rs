//! Everything a store holds, in one value: the engine's [`StoreInfo`] with the
//! catalog's models, samples and spot sets; what `vortexdb info` prints (as text for
//! people through `Display`, or as JSON).

use std::fmt;

use serde_json::{Value, json};

use super::{ModelRecord, SampleImages, SampleRecord, SpotSetRecord};
use crate::engine::{Store, StoreInfo};
use crate::error::Result;

/// Collections, models, samples and spot sets of a store.
#[derive(Debug, Clone)]
pub struct StoreSummary {
    /// Sizes, generation and collections with their snapshot state.
    pub info: StoreInfo,
    /// Registered models.
    pub models: Vec<ModelRecord>,
    /// Ingested samples.
    pub samples: Vec<SampleRecord>,
    /// Where the image files of the samples ingested from them are (sample id order;
    /// none for volumes, samples ingested from memory, or stores written before the
    /// record existed).
    pub sample_images: Vec<SampleImages>,
    /// Ingested spot sets.
    pub spot_sets: Vec<SpotSetRecord>,
}

impl Store {
    /// The store's summary (read in one go; a rebuilt snapshot is reported as a
    /// warning, see [`Store::take_warnings`]).
    pub fn summary(&self) -> Result<StoreSummary> {
        Ok(StoreSummary {
            info: self.info()?,
            models: self.models()?,
            samples: self.samples()?,
            sample_images: self.all_sample_images()?,
            spot_sets: self.spot_sets()?,
        })
    }
}

impl StoreSummary {
    /// The recorded image files of sample `id`, if any.
    pub fn images_of(&self, id: &str) -> Option<&SampleImages> {
        self.sample_images.iter().find(|i| i.sample == id)
    }

    /// The summary as one JSON object. Each sample has `images` (its image files,
    /// absolute, in section order), `transforms` (the transforms file, absolute, or
    /// null), `levels` (the pyramid level read of each image, null for a file's one
    /// image) and `um_per_px` (the pixel size of the images as read), all null when no
    /// [`SampleImages`] is recorded for it.
    pub fn to_json(&self) -> Value {
        let info = &self.info;
        let cols: Vec<_> = info
            .collections
            .iter()
            .zip(&info.disk)
            .map(|((c, snap), d)| {
                json!({"name": c.name, "model": c.model, "modality": c.modality,
                       "dim": c.dim, "metric": c.metric.name(), "live": c.live,
                       "tombstones": c.tombstones, "generation": c.generation,
                       "epoch": c.epoch, "quantization": c.quantization.name(),
                       "rows": c.rows, "snapshot_generation": snap.generation,
                       "snapshot_fresh": snap.fresh, "raw_bytes": d.raw_bytes,
                       "packed_bytes": d.packed_bytes, "index_bytes": d.index_bytes})
            })
            .collect();
        let samples: Vec<_> = self
            .samples
            .iter()
            .map(|x| {
                let im = self.images_of(&x.id);
                json!({"id": x.id, "kind": x.kind, "source": x.source, "model": x.model,
                       "status": x.status, "patches": x.patches,
                       "voxel_um": x.voxel_um, "source_shape": x.source_shape,
                       "images": im.map(|i| &i.images),
                       "transforms": im.and_then(|i| i.transforms.as_ref()),
                       "levels": im.map(|i| &i.levels),
                       "um_per_px": im.map(|i| i.um_per_px)})
            })
            .collect();
        let sets: Vec<_> = self
            .spot_sets
            .iter()
            .map(|x| {
                json!({"sample": x.sample, "format": x.format, "files": x.files,
                       "model": x.model, "spots": x.spots, "kept": x.kept,
                       "genes": x.genes.len(), "qc": x.qc_summary})
            })
            .collect();
        let models: Vec<_> = self.models.iter().map(|m| &m.name).collect();
        json!({"store": info.path, "schema_version": info.schema_version,
            "generation": info.generation, "db_bytes": info.db_bytes,
            "disk_bytes": info.disk_bytes(),
            "collections": cols, "models": models, "samples": samples, "spot_sets": sets})
    }
}

impl fmt::Display for StoreSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        write!(
            f,
            "store {} (schema v{}, generation {}, {} bytes: vortex.redb {}, packed vectors {}, \
             index {})",
            info.path.display(),
            info.schema_version,
            info.generation,
            info.disk_bytes(),
            info.db_bytes,
            info.disk.iter().map(|d| d.packed_bytes).sum::<u64>(),
            info.disk.iter().map(|d| d.index_bytes).sum::<u64>(),
        )?;
        if info.collections.is_empty() {
            write!(f, "\n  no collections")?;
        }
        for ((c, snap), d) in info.collections.iter().zip(&info.disk) {
            let index = match (snap.fresh, snap.generation) {
                (true, _) => "fresh".to_string(),
                (false, Some(g)) => format!("stale (gen {g} of {})", c.generation),
                (false, None) => "none".into(),
            };
            write!(
                f,
                "\n  {:<24} {:>10} vectors  dim {:<5} {:<6} {:<6} model {} / {}  deleted {}  index {index}  \
                 packed {} bytes ({:.3}x raw f32)",
                c.name,
                c.live,
                c.dim,
                c.metric.name(),
                c.quantization.name(),
                c.model,
                c.modality,
                c.tombstones,
                d.packed_bytes,
                if d.raw_bytes > 0 {
                    d.packed_bytes as f64 / d.raw_bytes as f64
                } else {
                    0.0
                },
            )?;
        }
        for m in &self.models {
            write!(f, "\n  model {}", m.name)?;
        }
        for x in &self.samples {
            write!(
                f,
                "\n  sample {:<16} {:<4} {:>9} patches  {:<9} model {}  from {}",
                x.id, x.kind, x.patches, x.status, x.model, x.source
            )?;
        }
        for x in &self.spot_sets {
            write!(
                f,
                "\n  spots  {:<16} {:<7} {:>6} spots ({} kept)  {} genes  model {}  from {}",
                x.sample,
                x.format,
                x.spots,
                x.kept,
                x.genes.len(),
                x.model,
                x.files.first().map(|f| f.as_str()).unwrap_or("")
            )?;
        }
        Ok(())
    }
}
