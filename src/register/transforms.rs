//! The transforms file: one affine per section image into a common frame.
//!
//! ```json
//! {"format": "vortexdb-transforms/2",
//!  "frame": [height, width],
//!  "sections": [[a, b, c, d, e, f], ...],
//!  "reference": 2, "images": ["C2.jpg", ...], "motion": "affine",
//!  "pairs": [{"moving": 1, "fixed": 2, "score": 0.83, "overlap": 0.97, ...}, ...],
//!  "fields": [null, {"origin": [x, y], "step": s, "grid": [rows, cols],
//!                    "dx": [...], "dy": [...]}, ...]}
//! ```
//!
//! One entry of `sections` per image in stacking order: frame x = a x + b y + c, frame
//! y = d x + e y + f, in continuous pixel coordinates of the image as read. `fields`
//! (optional, one entry or `null` per section) refines a section non-rigidly: see
//! [`Field`]; the section's pixel shown at frame point p is then `A^-1 (p + d(p))`.
//! Version 1
//! (no `format`: `frame` and `sections` only) is read as before; another `format` is
//! refused by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::affine::Affine;
use super::field::Field;
use super::pair::Motion;
use super::sections::PairReport;
use crate::error::{Error, Result};

/// Value of `format` in the transforms files this version writes.
pub const FORMAT: &str = "vortexdb-transforms/2";

/// Per-section affines and the frame, as read from or written to a transforms file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transforms {
    /// [`FORMAT`]; absent in version 1 files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Frame height and width in pixels.
    pub frame: [usize; 2],
    /// One `[a, b, c, d, e, f]` per section: image pixel -> frame pixel.
    pub sections: Vec<[f64; 6]>,
    /// Index of the reference section (registration output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<usize>,
    /// The images registered, in order (registration output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PathBuf>,
    /// The degrees of freedom fitted (registration output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion: Option<Motion>,
    /// Score and QC image of every registered pair (registration output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairReport>,
    /// Non-rigid refinement: none, or one optional displacement field per section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Option<Field>>,
}

impl Transforms {
    /// Read and check a transforms file for `n` sections: a known version, the count
    /// matches, the frame is non-empty and every affine is finite and invertible, every
    /// field applicable.
    pub fn read(path: &Path, n: usize) -> Result<Transforms> {
        let t = Transforms::read_any(path)?;
        if t.sections.len() != n {
            return Err(Error::bad_file(
                path,
                format!("{} transforms for {n} section images", t.sections.len()),
            ));
        }
        Ok(t)
    }

    /// Read and check a transforms file for however many sections it lists.
    pub fn read_any(path: &Path) -> Result<Transforms> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not JSON: {e}")))?;
        match value.get("format") {
            None => {}
            Some(serde_json::Value::String(f)) if f == FORMAT => {}
            Some(other) => {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "transforms file of format {other}; this version reads {FORMAT:?} and \
                         version 1 (no \"format\")"
                    ),
                ));
            }
        }
        let t: Transforms = serde_json::from_value(value).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a transforms file ({{\"frame\": [h, w], \"sections\": [[a, b, c, d, e, f], ...]}}): {e}"
                ),
            )
        })?;
        let n = t.sections.len();
        if n == 0 {
            return Err(Error::bad_file(path, "no sections"));
        }
        if t.frame[0] == 0
            || t.frame[1] == 0
            || t.frame[0]
                .checked_mul(t.frame[1])
                .is_none_or(|n| n > 1 << 30)
        {
            return Err(Error::bad_file(
                path,
                format!(
                    "frame {:?} must be non-empty and under 2^30 pixels",
                    t.frame
                ),
            ));
        }
        // Each registered slice is allocated whole: up to 3 channels of f32 per pixel.
        crate::limits::alloc_bytes(
            &path.display().to_string(),
            &[t.frame[0] as u64, t.frame[1] as u64],
            3 * 4,
            &format!(
                "a registered slice of {} x {} pixels",
                t.frame[0], t.frame[1]
            ),
        )?;
        for (i, m) in t.sections.iter().enumerate() {
            if !Affine(*m).is_regular() {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "transform {} (section {}) is not an invertible affine: {m:?}",
                        i,
                        i + 1
                    ),
                ));
            }
        }
        if !t.fields.is_empty() && t.fields.len() != n {
            return Err(Error::bad_file(
                path,
                format!("{} fields for {n} section images", t.fields.len()),
            ));
        }
        for (i, f) in t.fields.iter().enumerate() {
            if let Some(problem) = f.as_ref().and_then(Field::problem) {
                return Err(Error::bad_file(
                    path,
                    format!("field {i} (section {}): {problem}", i + 1),
                ));
            }
        }
        Ok(t)
    }

    /// The field of section `i`, if it has one.
    pub fn field(&self, i: usize) -> Option<&Field> {
        self.fields.get(i).and_then(Option::as_ref)
    }

    /// Frame point `p` -> the continuous pixel of section `i` shown there (NaN for a
    /// singular affine, which [`Transforms::read`] refuses).
    pub fn frame_to_image(&self, i: usize, p: [f64; 2]) -> [f64; 2] {
        let q = match self.field(i) {
            Some(f) => {
                let d = f.at(p);
                [p[0] + d[0], p[1] + d[1]]
            }
            None => p,
        };
        Affine(self.sections[i])
            .inverse()
            .map_or([f64::NAN; 2], |inv| inv.apply(q))
    }

    /// Continuous pixel `q` of section `i` -> the frame point where it is shown (spots
    /// of the section go there).
    pub fn image_to_frame(&self, i: usize, q: [f64; 2]) -> [f64; 2] {
        let p = Affine(self.sections[i]).apply(q);
        match self.field(i) {
            Some(f) => f.solve(p),
            None => p,
        }
    }

    /// A version-1 style set of transforms (frame and affines only).
    pub fn new(frame: [usize; 2], sections: Vec<[f64; 6]>) -> Transforms {
        Transforms {
            format: Some(FORMAT.into()),
            frame,
            sections,
            reference: None,
            images: Vec::new(),
            motion: None,
            pairs: Vec::new(),
            fields: Vec::new(),
        }
    }
}
