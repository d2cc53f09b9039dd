//! The evaluation of predicted against measured expression: [`compare`] reads a
//! sample's predictions out at the measured spots and scores them with [`eval`]'s
//! metrics (PCC, SSIM, Spearman of variances, Moran's I, Geary's C), optionally with
//! the stored domains' ARI against a segmentation. The statistics themselves live in
//! `crate::stats`, below this module.

pub mod compare;
pub mod eval;
