//! Typed names of the catalog: what a collection holds ([`Modality`]), what a sample
//! was ingested from ([`SampleKind`]), how far its ingest got ([`IngestStatus`]), and
//! the one place collection names are built ([`collection_name`]). Records store the
//! names as strings (the on-disk format); these types parse and print them.

use serde::Serialize;

/// What the vectors of a collection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Modality {
    /// 3D patches of volumes and section stacks (`image_3d`).
    Image3d,
    /// 2D patches of single images (`image_2d`).
    Image2d,
    /// Spot expression profiles (the gene encoder).
    Spots,
    /// Vectors imported as they are (no model).
    Raw,
}

impl Modality {
    /// The name in collection names and records: `3d`, `2d`, `spots`, `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image3d => "3d",
            Modality::Image2d => "2d",
            Modality::Spots => "spots",
            Modality::Raw => "raw",
        }
    }

    /// Parse [`Modality::name`].
    pub fn parse(s: &str) -> Option<Modality> {
        Some(match s {
            "3d" => Modality::Image3d,
            "2d" => Modality::Image2d,
            "spots" => Modality::Spots,
            "raw" => Modality::Raw,
            _ => return None,
        })
    }

    /// The patches a retrieval (`query_patch`) searches, `3d` or `2d`; anything else is
    /// an error naming the `target` parameter.
    pub fn retrieval_target(s: &str) -> crate::error::Result<Modality> {
        match s {
            "3d" => Ok(Modality::Image3d),
            "2d" => Ok(Modality::Image2d),
            t => Err(crate::error::Error::arg(
                "target",
                format!("'{t}' is not 3d or 2d"),
            )),
        }
    }
}

/// What a sample's patches were cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum SampleKind {
    /// A 3D volume (`3d`).
    Volume,
    /// A stack of serial sections (`2.5d`).
    Sections,
    /// One 2D image (`2d`).
    Image,
}

impl SampleKind {
    /// The name stored in the sample record: `3d`, `2.5d`, `2d`.
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::Volume => "3d",
            SampleKind::Sections => "2.5d",
            SampleKind::Image => "2d",
        }
    }

    /// Parse [`SampleKind::name`].
    pub fn parse(s: &str) -> Option<SampleKind> {
        Some(match s {
            "3d" => SampleKind::Volume,
            "2.5d" => SampleKind::Sections,
            "2d" => SampleKind::Image,
            _ => return None,
        })
    }

    /// The modality of its patches.
    pub fn modality(self) -> Modality {
        match self {
            SampleKind::Image => Modality::Image2d,
            _ => Modality::Image3d,
        }
    }
}

/// How far a sample's ingest got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum IngestStatus {
    /// Interrupted or running: re-running the same ingest resumes it.
    Ingesting,
    /// Every grid position was processed.
    Complete,
    /// Every grid position was processed and none passed the tissue mask: nothing is
    /// stored (the ingest reported it as an error, never as a success).
    Empty,
}

impl IngestStatus {
    /// The name stored in the sample record.
    pub fn name(self) -> &'static str {
        match self {
            IngestStatus::Ingesting => "ingesting",
            IngestStatus::Complete => "complete",
            IngestStatus::Empty => "empty",
        }
    }

    /// Parse [`IngestStatus::name`] (anything but `complete` or `empty` is still
    /// ingesting).
    pub fn parse(s: &str) -> IngestStatus {
        match s {
            "complete" => IngestStatus::Complete,
            "empty" => IngestStatus::Empty,
            _ => IngestStatus::Ingesting,
        }
    }
}

/// The collection holding `modality` vectors of `model`: `<model>:<modality>`.
pub fn collection_name(model: &str, modality: Modality) -> String {
    format!("{model}:{}", modality.name())
}
