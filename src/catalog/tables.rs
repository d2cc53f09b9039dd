//! The catalog's redb tables, beside the engine's in the same `vortex.redb`: string
//! keys are sample ids or model names; values are bincode records with a CRC-32
//! ([`crate::codec`]), predictions f32 LE bytes with a CRC-32 of key and bytes.

use redb::TableDefinition;

/// `models`: model name -> [`super::ModelRecord`].
pub(crate) const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// `samples`: sample id -> [`super::SampleRecord`].
pub(crate) const SAMPLES: TableDefinition<&str, &[u8]> = TableDefinition::new("samples");
/// `sample_images`: sample id -> [`super::SampleImages`] (where the image files of a
/// sample ingested from files are; absent in stores written before it existed, and for
/// samples ingested from a volume or from memory).
pub(crate) const SAMPLE_IMAGES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("sample_images");
/// `spot_sets`: sample -> [`super::SpotSetRecord`].
pub(crate) const SPOT_SETS: TableDefinition<&str, &[u8]> = TableDefinition::new("spot_sets");
/// `spots`: (sample, spot index) -> [`super::SpotRecord`].
pub(crate) const SPOTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("spots");
/// `expression`: (sample, spot index) -> [`super::ExpressionRecord`] (kept spots only).
pub(crate) const EXPRESSION: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("expression");
/// `predictions`: (collection id, patch id) -> f32 values with a CRC: the predicted
/// genes (manifest order), then the hidden representation.
pub(crate) const PREDICTIONS: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("predictions");
/// `readouts`: readout name -> [`super::ReadoutRecord`].
pub(crate) const READOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("readouts");
/// `domains`: sample id -> [`super::DomainRecord`] (the last `domains` run).
pub(crate) const DOMAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("domains");
