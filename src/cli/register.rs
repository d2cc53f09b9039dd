//! `vortexdb register`: registration computed from the images.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::emit_files;
use vortexdb::{
    Error, Motion, PlaneOptions, Result, SectionOptions, open_volume, register_section_to_volume,
    register_sections, write_plane, write_registration,
};

/// `register` subcommands.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum RegisterCommand {
    /// Register serial section images (in stacking order) to one another from the images
    /// alone; write the transforms file `ingest sections --transforms` reads, a QC
    /// overlay per pair beside it (fixed magenta, moving green) and a score per pair.
    Sections {
        /// Section images in stacking order (PNG, JPEG, TIFF).
        #[arg(required = true, num_args = 2..)] images: Vec<PathBuf>,
        /// Transforms file to write (QC images go beside it).
        #[arg(long)] out: PathBuf,
        /// Reference section (0-based; default: the middle one): the frame is its pixels.
        #[arg(long)] reference: Option<usize>,
        /// Degrees of freedom: rigid, similarity or affine (fitted after the others).
        #[arg(long, default_value = "similarity")] motion: String,
        /// Longest side of the finest working image in pixels.
        #[arg(long, default_value_t = 1024)] max_side: usize,
        /// Register each section directly to the reference instead of to its neighbour.
        #[arg(long)] direct: bool,
        /// A pair scoring below this (correlation after registration) fails.
        #[arg(long, default_value_t = 0.3)] min_score: f64,
        /// A pair whose tissue overlap after registration is below this fails.
        #[arg(long, default_value_t = 0.8)] min_overlap: f64,
        /// Refine each section non-rigidly after its affine map (a smooth displacement
        /// field, kept where it raises the pair's score).
        #[arg(long)] nonrigid: bool,
    },
    /// Find the plane of a 3D volume that a 2D section image was cut from (depth, tilt,
    /// in-plane rotation, translation, scale), across modalities (H&E against microCT):
    /// write the plane file `ingest spots --plane` reads to place the section's spots in 3D.
    SectionToVolume {
        /// The volume (NPY, TIFF, OME-Zarr, slice folder) as `ingest volume` reads it.
        volume: PathBuf,
        /// The section image (PNG, JPEG, TIFF).
        image: PathBuf,
        /// Plane file to write.
        #[arg(long)] out: PathBuf,
        /// Section pixel size in micrometres.
        #[arg(long)] um_per_px: f64,
        /// Volume voxel edge in micrometres.
        #[arg(long)] um_per_voxel: f64,
        /// Largest tilt searched, degrees.
        #[arg(long, default_value_t = 10.0)] max_tilt: f64,
        /// A fit scoring below this fails.
        #[arg(long, default_value_t = 0.3)] min_score: f64,
    },
}

/// Run a `register` subcommand.
pub fn run(c: RegisterCommand, json: bool) -> Result<()> {
    match c {
        RegisterCommand::Sections {
            images,
            out,
            reference,
            motion,
            max_side,
            direct,
            min_score,
            min_overlap,
            nonrigid,
        } => {
            let motion = Motion::parse(&motion).ok_or_else(|| {
                Error::arg(
                    "motion",
                    format!("{motion:?}: use rigid, similarity or affine"),
                )
            })?;
            let opts = SectionOptions {
                reference,
                motion,
                max_side,
                chain: !direct,
                min_score,
                min_overlap,
                nonrigid,
            };
            let reg = register_sections(&images, &opts)?;
            write_registration(&reg, &out)?;
            let dir = out.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            let mut files = vec![out.display().to_string()];
            files.extend(
                reg.file
                    .pairs
                    .iter()
                    .map(|p| dir.join(&p.qc).display().to_string()),
            );
            let mut text = format!(
                "registered {} sections into the frame of section {} ({} x {} pixels)",
                images.len(),
                reg.file.reference.unwrap_or(0),
                reg.file.frame[1],
                reg.file.frame[0]
            );
            for p in &reg.file.pairs {
                text.push_str(&format!(
                    "\n  {} -> {}: score {:.3}, overlap {:.3}, rotation {:.1} deg, scale {:.3} ({:.1} s)",
                    p.moving, p.fixed, p.score, p.overlap, p.rotation_deg, p.scale, p.seconds
                ));
                if let (Some(a), Some(b), Some(m)) =
                    (p.score_affine, p.score_nonrigid, p.field_max_px)
                {
                    text.push_str(&format!(
                        "; non-rigid: score {a:.3} -> {b:.3}, {}",
                        if m > 0.0 {
                            format!("field kept (largest displacement {m:.1} px)")
                        } else {
                            "no field kept".to_string()
                        }
                    ));
                }
            }
            emit_files(json, json!(reg.file), &text, &files);
            Ok(())
        }
        RegisterCommand::SectionToVolume {
            volume,
            image,
            out,
            um_per_px,
            um_per_voxel,
            max_tilt,
            min_score,
        } => {
            let opts = PlaneOptions {
                um_per_px,
                um_per_voxel,
                max_tilt_deg: max_tilt,
                min_score,
            };
            let mut src = open_volume(&volume, None)?;
            let fit = register_section_to_volume(src.as_mut(), &volume, &image, &opts)?;
            write_plane(&fit, &out)?;
            let p = &fit.plane;
            let text = format!(
                "{} lies at depth {:.1} um, tilt {:.2} deg ({:.2}, {:.2}), rotation {:.1} deg, scale {:.3}; score {:.3} ({:.1} s)",
                image.display(),
                fit.depth_um,
                fit.tilt_total_deg,
                p.tilt_deg[0],
                p.tilt_deg[1],
                p.rotation_deg,
                p.scale,
                fit.score,
                fit.seconds
            );
            emit_files(json, json!(fit), &text, &[out.display().to_string()]);
            Ok(())
        }
    }
}
