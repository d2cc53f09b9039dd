//! Registration computed from the images: serial sections, a section to its volume.

use std::path::PathBuf;

use pyo3::prelude::*;
use vortexdb as vx;

use crate::convert::{OrRaise, serialised};

/// Register serial section images and write the transforms file `out` (QC beside it).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn register_sections(
    py: Python<'_>,
    images: Vec<PathBuf>,
    out: PathBuf,
    reference: Option<usize>,
    motion: String,
    max_side: usize,
    direct: bool,
    min_score: f64,
    min_overlap: f64,
    nonrigid: bool,
) -> PyResult<Py<PyAny>> {
    let motion = vx::Motion::parse(&motion)
        .ok_or_else(|| {
            vx::Error::arg(
                "motion",
                format!("{motion:?}: use rigid, similarity or affine"),
            )
        })
        .or_raise()?;
    let opts = vx::SectionOptions {
        reference,
        motion,
        max_side,
        chain: !direct,
        min_score,
        min_overlap,
        nonrigid,
    };
    let reg = py
        .detach(|| {
            let reg = vx::register_sections(&images, &opts)?;
            vx::write_registration(&reg, &out)?;
            Ok::<_, vx::Error>(reg)
        })
        .or_raise()?;
    serialised(py, &reg.file)
}

/// Find the plane of `volume` that `image` was cut from and write the plane file `out`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn register_section_to_volume(
    py: Python<'_>,
    volume: PathBuf,
    image: PathBuf,
    out: PathBuf,
    um_per_px: f64,
    um_per_voxel: f64,
    max_tilt: f64,
    min_score: f64,
) -> PyResult<Py<PyAny>> {
    let opts = vx::PlaneOptions {
        um_per_px,
        um_per_voxel,
        max_tilt_deg: max_tilt,
        min_score,
    };
    let fit = py
        .detach(|| {
            let mut src = vx::open_volume(&volume, None)?;
            let fit = vx::register_section_to_volume(src.as_mut(), &volume, &image, &opts)?;
            vx::write_plane(&fit, &out)?;
            Ok::<_, vx::Error>(fit)
        })
        .or_raise()?;
    serialised(py, &fit)
}
