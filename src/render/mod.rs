//! Rendering: the images (overlays, domain slices, charts), the Markdown evaluation
//! report the library draws (the demo's HTML page is the demo's own, in `demo`). Everything here returns values
//! in memory; writing files is [`crate::export`]'s job.

mod images;
mod markdown;

pub use images::{PALETTE, domain_slice, pcc_chart, spot_maps, underlay};
pub use markdown::eval_markdown;
