//! The plane of a 3D volume that a 2D section was cut from, and the plane file.
//!
//! A section pixel `(u, v)` (index coordinates, pixel centres at integers) lies at
//!
//! ```text
//! q  = R(rotation) * ((u, v) - centre) * um_per_px * scale        (micrometres, in plane)
//! P  = origin + (q.x * e1 + q.y * e2) / voxel_um                  (voxel index x, y, z)
//! e1, e2 = the first two columns of Ry(tilt_y) * Rx(tilt_x)
//! ```
//!
//! so `origin` is where the section's centre pixel lies, `tilt_x` / `tilt_y` tip the
//! plane about the volume's x and y axes, and `rotation`, `scale` act within the plane.
//! The plane file (`vortexdb-plane/1`) holds these and the 3 x 3 matrix that maps
//! `(u, v, 1)` to voxel `(x, y, z)` directly, which `ingest spots` applies.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Value of `format` in plane files.
pub const PLANE_FORMAT: &str = "vortexdb-plane/1";

/// Where a section lies in a volume (see the module docs for the geometry).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Plane {
    /// Voxel index coordinates `(x, y, z)` of the section's centre pixel.
    pub origin: [f64; 3],
    /// Tilt about the volume's x axis, then its y axis, in degrees.
    pub tilt_deg: [f64; 2],
    /// In-plane rotation in degrees.
    pub rotation_deg: f64,
    /// In-plane scale: tissue micrometres per section micrometre (shrinkage < 1 < swelling).
    pub scale: f64,
    /// The section's centre in its pixel index coordinates `(u, v)`.
    pub centre: [f64; 2],
    /// Section pixel size in micrometres.
    pub um_per_px: f64,
    /// Volume voxel size `(x, y, z)` in micrometres.
    pub voxel_um: [f64; 3],
}

fn rot_x(a: f64) -> [[f64; 3]; 3] {
    let (s, c) = a.to_radians().sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

fn rot_y(b: f64) -> [[f64; 3]; 3] {
    let (s, c) = b.to_radians().sin_cos();
    [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
}

fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

impl Plane {
    /// The in-plane axes `e1`, `e2` and the normal, unit vectors in micrometre space
    /// `(x, y, z)`.
    pub fn axes(&self) -> [[f64; 3]; 3] {
        let r = mul(&rot_y(self.tilt_deg[1]), &rot_x(self.tilt_deg[0]));
        [
            [r[0][0], r[1][0], r[2][0]],
            [r[0][1], r[1][1], r[2][1]],
            [r[0][2], r[1][2], r[2][2]],
        ]
    }

    /// The matrix `M` with voxel `(x, y, z) = M (u, v, 1)`.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        let [e1, e2, _] = self.axes();
        let (s, c) = self.rotation_deg.to_radians().sin_cos();
        let k = self.um_per_px * self.scale;
        // q = k R (u - cu, v - cv); P = origin + (q.x e1 + q.y e2) / voxel.
        let cols_u = [k * c, k * s]; // d q / d u
        let cols_v = [-k * s, k * c]; // d q / d v
        std::array::from_fn(|i| {
            let du = (cols_u[0] * e1[i] + cols_u[1] * e2[i]) / self.voxel_um[i];
            let dv = (cols_v[0] * e1[i] + cols_v[1] * e2[i]) / self.voxel_um[i];
            [
                du,
                dv,
                self.origin[i] - du * self.centre[0] - dv * self.centre[1],
            ]
        })
    }

    /// Voxel index coordinates `(x, y, z)` of section pixel `(u, v)`.
    pub fn to_voxel(&self, u: f64, v: f64) -> [f64; 3] {
        let m = self.matrix();
        std::array::from_fn(|i| m[i][0] * u + m[i][1] * v + m[i][2])
    }

    /// Angle in degrees between the section's normal and the volume's z axis.
    pub fn tilt_total_deg(&self) -> f64 {
        self.axes()[2][2].clamp(-1.0, 1.0).acos().to_degrees()
    }

    /// Depth of the section's centre in micrometres (`origin.z * voxel_z`).
    pub fn depth_um(&self) -> f64 {
        self.origin[2] * self.voxel_um[2]
    }

    /// Angle in degrees between this plane's normal and `other`'s.
    pub fn angle_to(&self, other: &Plane) -> f64 {
        let (a, b) = (self.axes()[2], other.axes()[2]);
        let d: f64 = (0..3).map(|i| a[i] * b[i]).sum();
        d.abs().clamp(-1.0, 1.0).acos().to_degrees()
    }
}

/// A plane file: the plane, what was registered and how well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneFile {
    /// [`PLANE_FORMAT`].
    pub format: String,
    /// The volume registered to.
    pub volume: PathBuf,
    /// The section image.
    pub image: PathBuf,
    /// The plane.
    pub plane: Plane,
    /// Section pixel `(u, v, 1)` -> voxel `(x, y, z)`, rows x, y, z.
    pub matrix: [[f64; 3]; 3],
    /// Depth of the section's centre in micrometres.
    pub depth_um: f64,
    /// Angle between the section's normal and the volume's z axis, degrees.
    pub tilt_total_deg: f64,
    /// Similarity of the section and the volume on the plane (mean squared cosine of
    /// their normalised gradient fields over the section's tissue; 0 unrelated, 1 equal).
    pub score: f64,
    /// Wall seconds of the fit.
    pub seconds: f64,
}

impl PlaneFile {
    /// Read and check a plane file: its format, a finite, non-degenerate matrix.
    pub fn read(path: &Path) -> Result<PlaneFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not JSON: {e}")))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(PLANE_FORMAT) => {}
            other => {
                return Err(Error::bad_file(
                    path,
                    format!("plane file of format {other:?}; this version reads {PLANE_FORMAT:?}"),
                ));
            }
        }
        let f: PlaneFile = serde_json::from_value(value)
            .map_err(|e| Error::bad_file(path, format!("not a plane file: {e}")))?;
        let m = f.matrix;
        // The two in-plane columns must be finite and span a plane.
        let cross = [
            m[1][0] * m[2][1] - m[2][0] * m[1][1],
            m[2][0] * m[0][1] - m[0][0] * m[2][1],
            m[0][0] * m[1][1] - m[1][0] * m[0][1],
        ];
        let area = cross.iter().map(|v| v * v).sum::<f64>().sqrt();
        if m.iter().flatten().any(|v| !v.is_finite()) || area < 1e-9 {
            return Err(Error::bad_file(
                path,
                format!("the matrix {m:?} does not map the section onto a plane"),
            ));
        }
        Ok(f)
    }

    /// Voxel `(x, y, z)` of section pixel `(u, v)` by the file's matrix.
    pub fn to_voxel(&self, u: f64, v: f64) -> [f64; 3] {
        let m = &self.matrix;
        std::array::from_fn(|i| m[i][0] * u + m[i][1] * v + m[i][2])
    }
}

/// Write a plane file (through a temporary file, renamed into place).
pub fn write_plane(file: &PlaneFile, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(file).expect("serialisable");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_aligned_plane_is_a_slice() {
        let p = Plane {
            origin: [50.0, 60.0, 12.0],
            tilt_deg: [0.0, 0.0],
            rotation_deg: 0.0,
            scale: 1.0,
            centre: [31.5, 31.5],
            um_per_px: 4.0,
            voxel_um: [4.0, 4.0, 4.0],
        };
        let v = p.to_voxel(31.5 + 10.0, 31.5 - 3.0);
        assert!(
            (v[0] - 60.0).abs() < 1e-9 && (v[1] - 57.0).abs() < 1e-9 && (v[2] - 12.0).abs() < 1e-9
        );
        assert_eq!(p.tilt_total_deg(), 0.0);
        // A tilt of 10 degrees about y moves x steps into z by tan(10) of them... and the
        // normal turns by 10 degrees.
        let t = Plane {
            tilt_deg: [0.0, 10.0],
            ..p
        };
        assert!((t.tilt_total_deg() - 10.0).abs() < 1e-9);
        assert!((t.angle_to(&p) - 10.0).abs() < 1e-9);
        let a = t.to_voxel(31.5 + 10.0, 31.5);
        assert!(
            (a[2] - (12.0 - 10.0 * 10f64.to_radians().sin())).abs() < 1e-9,
            "{a:?}"
        );
        // Rotation by 90 degrees sends +u to +y.
        let r = Plane {
            rotation_deg: 90.0,
            ..p
        };
        let b = r.to_voxel(31.5 + 1.0, 31.5);
        assert!((b[0] - 50.0).abs() < 1e-9 && (b[1] - 61.0).abs() < 1e-9);
    }
}
