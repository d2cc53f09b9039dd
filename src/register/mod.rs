//! Registration computed from the images: serial sections to one another
//! ([`register_sections`]) and a section to the plane of a 3D volume it was cut from
//! ([`register_section_to_volume`]); the transforms file the section ingest reads and the
//! source that resamples sections into its frame.
//!
//! Serial sections are compared as optical density (`-ln` of the bright-field
//! transmission, so stain strength is a gain the fit absorbs), block-averaged to a
//! working size, each section fitted to its neighbour towards the reference by
//! Gauss-Newton (rigid, then similarity, then affine) from the best start of a rotation
//! sweep. A section and a volume are different modalities: their match is scored on
//! normalised gradient fields (edges in the same places, whatever their contrast).

mod affine;
mod field;
mod gray;
mod pair;
mod plane;
mod sections;
mod transforms;
mod volume_fit;
mod warp;

pub use affine::Affine;
pub use field::Field;
pub use pair::Motion;
pub use plane::{PLANE_FORMAT, Plane, PlaneFile, write_plane};
pub use sections::{
    PairReport, SectionOptions, SectionRegistration, register_sections, write_registration,
};
pub use transforms::{FORMAT, Transforms};
pub use volume_fit::{PlaneOptions, register_section_to_volume};
pub use warp::Registered;
