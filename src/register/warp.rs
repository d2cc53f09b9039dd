//! Serial sections brought into one frame by a 2D affine per section.
//!
//! Serial sections are photographed one by one: each image has its own size, offset and
//! rotation. A transforms file gives, for every section, the affine that maps its image
//! pixels (x, y) to the common frame's pixels, and the frame's size. It can come from any
//! registration: landmarks, the spot grids of spatial-transcriptomics arrays (the her2st
//! evaluation fits one per section from spot positions), or an image-registration tool.
//! [`Registered`] reads each section and resamples it into the frame (bilinear, white
//! outside the photographed area), so the ingest sees one aligned stack.
//!
//! The file format is [`Transforms`]'s: one affine per image in stacking order, frame
//! x = a x + b y + c, frame y = d x + e y + f, and optionally a displacement field per
//! section (non-rigid refinement), applied before the affine's inverse.

use std::path::Path;

use super::field::Field;
use super::transforms::Transforms;
use crate::error::Result;
use crate::volume::{ImageStack, Slice, VolumeInfo, VolumeSource};

/// Frame pixel -> image pixel: the inverse of `[a, b, c, d, e, f]`.
fn invert(m: &[f64; 6]) -> [f64; 6] {
    let det = m[0] * m[4] - m[1] * m[3];
    let (ia, ib, id, ie) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    [
        ia,
        ib,
        -(ia * m[2] + ib * m[5]),
        id,
        ie,
        -(id * m[2] + ie * m[5]),
    ]
}

/// An [`ImageStack`] whose sections are resampled into one frame.
pub struct Registered {
    inner: ImageStack,
    inverse: Vec<[f64; 6]>,
    fields: Vec<Option<Field>>,
    info: VolumeInfo,
}

impl Registered {
    /// Wrap `inner` (opened with [`ImageStack::open_files_any_size`]) with `t`, read
    /// from `path` (listed among the source files, so that other transforms make another
    /// ingest fingerprint).
    pub fn new(inner: ImageStack, t: &Transforms, path: &Path) -> Registered {
        let mut info = inner.info().clone();
        info.shape = [info.shape[0], t.frame[0], t.frame[1]];
        info.files.push(path.to_path_buf());
        Registered {
            inverse: t.sections.iter().map(invert).collect(),
            fields: (0..t.sections.len()).map(|i| t.field(i).cloned()).collect(),
            inner,
            info,
        }
    }
}

impl VolumeSource for Registered {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        let src = self.inner.read_slice(z)?;
        let [_, fh, fw] = self.info.shape;
        let (c, h, w) = (src.channels, src.h, src.w);
        let m = self.inverse[z];
        let field = self.fields[z].as_ref();
        // Brightfield background: white outside the photographed area.
        let mut data = vec![1f32; c * fh * fw];
        for y in 0..fh {
            for x in 0..fw {
                // Pixel centres: frame (x + 0.5, y + 0.5) -> image, then back to indices.
                let (mut fx, mut fy) = (x as f64 + 0.5, y as f64 + 0.5);
                if let Some(f) = field {
                    let d = f.at([fx, fy]);
                    (fx, fy) = (fx + d[0], fy + d[1]);
                }
                let sx = m[0] * fx + m[1] * fy + m[2] - 0.5;
                let sy = m[3] * fx + m[4] * fy + m[5] - 0.5;
                if sx < -0.5 || sy < -0.5 || sx > w as f64 - 0.5 || sy > h as f64 - 0.5 {
                    continue;
                }
                let (sx, sy) = (sx.clamp(0.0, (w - 1) as f64), sy.clamp(0.0, (h - 1) as f64));
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                let (tx, ty) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
                for ch in 0..c {
                    let p = &src.data[ch * h * w..(ch + 1) * h * w];
                    let top = p[y0 * w + x0] * (1.0 - tx) + p[y0 * w + x1] * tx;
                    let bot = p[y1 * w + x0] * (1.0 - tx) + p[y1 * w + x1] * tx;
                    data[(ch * fh + y) * fw + x] = top * (1.0 - ty) + bot * ty;
                }
            }
        }
        Ok(Slice {
            channels: c,
            h: fh,
            w: fw,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_undoes_the_affine() {
        let m = [0.9, -0.3, 12.0, 0.25, 1.1, -4.0];
        let i = invert(&m);
        for (x, y) in [(0.0, 0.0), (10.0, 3.5), (-7.0, 100.0)] {
            let (fx, fy) = (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]);
            let (bx, by) = (i[0] * fx + i[1] * fy + i[2], i[3] * fx + i[4] * fy + i[5]);
            assert!((bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9);
        }
    }

    /// A smooth RGB pattern of the frame coordinates.
    fn pattern(fx: f64, fy: f64) -> [u8; 3] {
        let v = |k: f64| {
            (127.5 + 120.0 * (fx * 0.07 * k + fy * 0.05 + (fy * 0.031 * k).sin()).sin()) as u8
        };
        [v(1.0), v(1.3), v(0.7)]
    }

    /// Section B is section A's pattern photographed rotated by 20 degrees and shifted,
    /// on a larger canvas; with its affine, the registered B equals A inside the frame,
    /// and without it they differ (so the check can fail).
    #[test]
    fn registered_section_matches_its_reference() {
        let dir = tempfile::tempdir().unwrap();
        let (h, w) = (100usize, 120usize);
        let a = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb(pattern(x as f64 + 0.5, y as f64 + 0.5))
        });
        let (c, s) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        // B pixel (u, v) shows frame point T(u, v) = R (u, v) + t.
        let t = [c, -s, 30.0, s, c, -25.0];
        let b = image::RgbImage::from_fn(150, 140, |u, v| {
            let (u, v) = (u as f64 + 0.5, v as f64 + 0.5);
            image::Rgb(pattern(
                t[0] * u + t[1] * v + t[2],
                t[3] * u + t[4] * v + t[5],
            ))
        });
        let (pa, pb) = (dir.path().join("a.png"), dir.path().join("b.png"));
        a.save(&pa).unwrap();
        b.save(&pb).unwrap();
        let tf = dir.path().join("t.json");
        std::fs::write(
            &tf,
            serde_json::json!({"frame": [h, w], "sections": [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], t]})
                .to_string(),
        )
        .unwrap();
        let files = vec![pa, pb];
        let tr = Transforms::read(&tf, 2).unwrap();
        let stack = ImageStack::open_files_any_size(files.clone(), "s".into(), None).unwrap();
        let mut reg = Registered::new(stack, &tr, &tf);
        assert_eq!(reg.info().shape, [2, h, w]);
        assert!(
            reg.info().files.contains(&tf),
            "the transforms are part of the fingerprint"
        );
        let (ra, rb) = (reg.read_slice(0).unwrap(), reg.read_slice(1).unwrap());
        // Frame pixels whose B pre-image lies well inside B.
        let inv = invert(&t);
        let mut diffs = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                let (u, v) = (
                    inv[0] * fx + inv[1] * fy + inv[2],
                    inv[3] * fx + inv[4] * fy + inv[5],
                );
                if (2.0..148.0).contains(&u) && (2.0..138.0).contains(&v) {
                    for ch in 0..3 {
                        let i = (ch * h + y) * w + x;
                        diffs.push((ra.data[i] - rb.data[i]).abs());
                    }
                }
            }
        }
        assert!(
            diffs.len() > 3 * 5000,
            "overlap too small: {}",
            diffs.len() / 3
        );
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        assert!(mean < 0.03, "registered B differs from A by {mean}");
        // Unregistered (B read as is, top-left corner) it does not match.
        let mut plain = ImageStack::open_files_any_size(files, "s".into(), None).unwrap();
        let pb = plain.read_slice(1).unwrap();
        let mut d = 0f32;
        for y in 0..h {
            for x in 0..w {
                d += (ra.data[y * w + x] - pb.data[y * 150 + x]).abs();
            }
        }
        assert!(
            d / (h * w) as f32 > 0.1,
            "the check cannot tell registered from not"
        );
        // Bad transforms files name the file and the problem.
        std::fs::write(&tf, r#"{"frame": [10, 10], "sections": [[1,0,0,0,1,0]]}"#).unwrap();
        let e = Transforms::read(&tf, 2).unwrap_err().to_string();
        assert!(
            e.contains("t.json") && e.contains("1 transforms for 2 section images"),
            "{e}"
        );
        std::fs::write(
            &tf,
            r#"{"frame": [10, 10], "sections": [[1,0,0,0,1,0], [1,2,0,2,4,0]]}"#,
        )
        .unwrap();
        let e = Transforms::read(&tf, 2).unwrap_err().to_string();
        assert!(e.contains("not an invertible affine"), "{e}");
        std::fs::write(&tf, "[1, 2]").unwrap();
        let e = Transforms::read(&tf, 2).unwrap_err().to_string();
        assert!(e.contains("not a transforms file"), "{e}");
    }
}
