//! `vortexdb register`: registration computed from the images.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::emit_files;
use vortexdb::{Error, Motion, Result, SectionOptions, register_sections, write_registration};

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
        #[arg(long, default_value_t = 0.2)] min_score: f64,
        /// A pair whose tissue overlap after registration is below this fails.
        #[arg(long, default_value_t = 0.5)] min_overlap: f64,
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
            }
            emit_files(json, json!(reg.file), &text, &files);
            Ok(())
        }
    }
}
