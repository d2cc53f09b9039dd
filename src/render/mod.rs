//! Rendering: the images (overlays, domain slices, charts), the Markdown evaluation
//! report and the demo's HTML page the library draws. Everything here returns values
//! in memory; writing files is [`crate::export`]'s job.

mod images;
mod markdown;
mod report;

pub use crate::query::heatmap::{coolwarm, overlay};
pub use images::{PALETTE, domain_slice, pcc_chart, spot_maps, underlay};
pub use markdown::eval_markdown;
pub use report::report_html;
