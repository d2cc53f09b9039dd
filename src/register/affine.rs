//! 2D affine maps in continuous pixel coordinates (a pixel `i` spans `[i, i + 1)`, its
//! centre at `i + 0.5`): `x' = a x + b y + c`, `y' = d x + e y + f`.

use serde::{Deserialize, Serialize};

/// A 2D affine map `[a, b, c, d, e, f]`: `x' = a x + b y + c`, `y' = d x + e y + f`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// The identity map.
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    /// A rotation by `deg` degrees (counter-clockwise in x-right, y-down images is
    /// clockwise on screen) about `centre`, scaled by `scale`, then shifted by `shift`.
    pub fn similarity(deg: f64, scale: f64, centre: [f64; 2], shift: [f64; 2]) -> Affine {
        let (s, c) = deg.to_radians().sin_cos();
        let (a, b, d, e) = (scale * c, -scale * s, scale * s, scale * c);
        Affine([
            a,
            b,
            centre[0] - a * centre[0] - b * centre[1] + shift[0],
            d,
            e,
            centre[1] - d * centre[0] - e * centre[1] + shift[1],
        ])
    }

    /// A uniform scaling by `k` (full-resolution pixels per level pixel).
    pub fn scaling(k: f64) -> Affine {
        Affine([k, 0.0, 0.0, 0.0, k, 0.0])
    }

    /// The image of point `p`.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.0;
        [
            m[0] * p[0] + m[1] * p[1] + m[2],
            m[3] * p[0] + m[4] * p[1] + m[5],
        ]
    }

    /// Determinant of the linear part.
    pub fn det(&self) -> f64 {
        self.0[0] * self.0[4] - self.0[1] * self.0[3]
    }

    /// True when every entry is finite and the linear part is well conditioned: both
    /// singular values within `1e-3 ..= 1e3` of each other's scale.
    pub fn is_regular(&self) -> bool {
        let [s1, s2] = self.singular_values();
        self.0.iter().all(|v| v.is_finite()) && s2 > 1e-9 && s1 / s2 < 1e3
    }

    /// Singular values of the linear part, largest first.
    pub fn singular_values(&self) -> [f64; 2] {
        let m = &self.0;
        let (a, b, c, d) = (m[0], m[1], m[3], m[4]);
        let s1 = a * a + b * b + c * c + d * d;
        let s2 = ((a * a + b * b - c * c - d * d).powi(2) + 4.0 * (a * c + b * d).powi(2)).sqrt();
        [
            ((s1 + s2) / 2.0).max(0.0).sqrt(),
            ((s1 - s2) / 2.0).max(0.0).sqrt(),
        ]
    }

    /// The inverse map (`None` when the linear part is singular).
    pub fn inverse(&self) -> Option<Affine> {
        let m = &self.0;
        let det = self.det();
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let (ia, ib, id, ie) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
        Some(Affine([
            ia,
            ib,
            -(ia * m[2] + ib * m[5]),
            id,
            ie,
            -(id * m[2] + ie * m[5]),
        ]))
    }

    /// `self ∘ other`: apply `other`, then `self`.
    pub fn then_after(&self, other: &Affine) -> Affine {
        let (p, q) = (&self.0, &other.0);
        Affine([
            p[0] * q[0] + p[1] * q[3],
            p[0] * q[1] + p[1] * q[4],
            p[0] * q[2] + p[1] * q[5] + p[2],
            p[3] * q[0] + p[4] * q[3],
            p[3] * q[1] + p[4] * q[4],
            p[3] * q[2] + p[4] * q[5] + p[5],
        ])
    }

    /// Rotation of the linear part in degrees (of its closest rotation).
    pub fn rotation_deg(&self) -> f64 {
        let m = &self.0;
        (m[3] - m[1]).atan2(m[0] + m[4]).to_degrees()
    }

    /// Least-squares affine taking `src[i]` to `dst[i]` (at least three points not on
    /// one line; `None` otherwise).
    pub fn fit(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Affine> {
        if src.len() != dst.len() || src.len() < 3 {
            return None;
        }
        // Normal equations of [x y 1] against each output coordinate, centred.
        let n = src.len() as f64;
        let mean = |v: &[[f64; 2]], k: usize| v.iter().map(|p| p[k]).sum::<f64>() / n;
        let (sx, sy, dx, dy) = (mean(src, 0), mean(src, 1), mean(dst, 0), mean(dst, 1));
        let (mut xx, mut xy, mut yy) = (0.0, 0.0, 0.0);
        let (mut xu, mut yu, mut xv, mut yv) = (0.0, 0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (x, y, u, v) = (s[0] - sx, s[1] - sy, d[0] - dx, d[1] - dy);
            xx += x * x;
            xy += x * y;
            yy += y * y;
            xu += x * u;
            yu += y * u;
            xv += x * v;
            yv += y * v;
        }
        let det = xx * yy - xy * xy;
        if det.abs() < 1e-12 * (xx * yy).max(1e-300) {
            return None;
        }
        let solve = |bx: f64, by: f64| ((yy * bx - xy * by) / det, (xx * by - xy * bx) / det);
        let (a, b) = solve(xu, yu);
        let (d, e) = solve(xv, yv);
        Some(Affine([
            a,
            b,
            dx - a * sx - b * sy,
            d,
            e,
            dy - d * sx - e * sy,
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_invert_fit_agree() {
        let a = Affine::similarity(23.0, 1.1, [50.0, 40.0], [3.0, -7.0]);
        let b = Affine([0.9, 0.1, 5.0, -0.2, 1.05, 2.0]);
        let ab = a.then_after(&b);
        let p = [12.5, -3.0];
        let q = ab.apply(p);
        let r = a.apply(b.apply(p));
        assert!((q[0] - r[0]).abs() < 1e-9 && (q[1] - r[1]).abs() < 1e-9);
        let back = ab.inverse().unwrap().apply(q);
        assert!((back[0] - p[0]).abs() < 1e-9 && (back[1] - p[1]).abs() < 1e-9);
        let src: Vec<[f64; 2]> = (0..10).map(|i| [i as f64 * 3.0, (i * i) as f64]).collect();
        let dst: Vec<[f64; 2]> = src.iter().map(|&p| ab.apply(p)).collect();
        let fit = Affine::fit(&src, &dst).unwrap();
        for k in 0..6 {
            assert!((fit.0[k] - ab.0[k]).abs() < 1e-6, "{fit:?} vs {ab:?}");
        }
        assert!((a.rotation_deg() - 23.0).abs() < 1e-9);
        let [s1, s2] = a.singular_values();
        assert!((s1 - 1.1).abs() < 1e-9 && (s2 - 1.1).abs() < 1e-9);
        assert!(Affine([1.0, 2.0, 0.0, 2.0, 4.0, 0.0]).inverse().is_none());
        assert!(!Affine([1.0, 0.0, 0.0, 0.0, 1e-6, 0.0]).is_regular());
    }
}
