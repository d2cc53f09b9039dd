//! Embedding one H&E image with the model's 2D encoder (cross-modal 2D -> 3D queries).

use std::path::Path;

use super::{Model, RunOptions};
use crate::error::{Error, Result};

impl Model {
    /// An H&E image through the 2D encoder: resized to the model's 2D patch, normalised.
    pub fn embed_image(&self, path: &Path) -> Result<Vec<f32>> {
        let spec = self.manifest.patch_2d.as_ref().ok_or_else(|| {
            Error::arg(
                "image",
                format!("model '{}' has no 2D encoder", self.manifest.name),
            )
        })?;
        let img = crate::volume::decode_image(path)?.to_rgb8();
        let [h, w] = spec.size_px;
        let r = image::imageops::resize(
            &img,
            w as u32,
            h as u32,
            image::imageops::FilterType::Triangle,
        );
        let c = spec.channels;
        let mut x = vec![0.0f32; c * h * w];
        for (px, py, p) in r.enumerate_pixels() {
            for k in 0..c {
                let v = p[k.min(2)] as f32 / 255.0;
                x[(k * h + py as usize) * w + px as usize] = (v - spec.mean[k]) / spec.std[k];
            }
        }
        let a = ndarray::Array4::from_shape_vec((1, c, h, w), x)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let mut net = self.network("image_2d", &RunOptions::default())?;
        Ok(net.embed(a.view().into_dyn())?.row(0).to_vec())
    }
}
