//! Non-rigid refinement of serial sections: a smooth displacement field per section on
//! a regular grid of control points, fitted by local block matching after the affine
//! registration and regularised towards zero where the images say little.
//!
//! A section's field `d` is in frame pixels: the registered section shows at frame
//! point `p` what its affine alone shows at `p + d(p)`, i.e. image pixel
//! `A^-1 (p + d(p))`. `d` is bilinear between control points `origin + (col, row) *
//! step` and constant beyond the outermost ones.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::gray::Gray;

/// A displacement field on a regular grid of control points (frame pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Frame position `(x, y)` of control point (row 0, column 0).
    pub origin: [f64; 2],
    /// Frame pixels between neighbouring control points.
    pub step: f64,
    /// Rows and columns of control points.
    pub grid: [usize; 2],
    /// x displacement of every control point, row-major, frame pixels.
    pub dx: Vec<f64>,
    /// y displacement of every control point, row-major, frame pixels.
    pub dy: Vec<f64>,
}

impl Field {
    /// The displacement at frame point `p` (bilinear, constant beyond the grid).
    pub fn at(&self, p: [f64; 2]) -> [f64; 2] {
        let [rows, cols] = self.grid;
        let gx = ((p[0] - self.origin[0]) / self.step).clamp(0.0, (cols - 1) as f64);
        let gy = ((p[1] - self.origin[1]) / self.step).clamp(0.0, (rows - 1) as f64);
        let (c0, r0) = (gx.floor() as usize, gy.floor() as usize);
        let (c1, r1) = ((c0 + 1).min(cols - 1), (r0 + 1).min(rows - 1));
        let (tx, ty) = (gx - c0 as f64, gy - r0 as f64);
        let lerp = |v: &[f64]| {
            let top = v[r0 * cols + c0] * (1.0 - tx) + v[r0 * cols + c1] * tx;
            let bot = v[r1 * cols + c0] * (1.0 - tx) + v[r1 * cols + c1] * tx;
            top * (1.0 - ty) + bot * ty
        };
        [lerp(&self.dx), lerp(&self.dy)]
    }

    /// The largest displacement, frame pixels.
    pub fn max_displacement(&self) -> f64 {
        self.dx
            .iter()
            .zip(&self.dy)
            .map(|(x, y)| x.hypot(*y))
            .fold(0.0, f64::max)
    }

    /// Why this field cannot be applied, if it cannot: a grid under 2 x 2 or over
    /// 4096 x 4096, displacement arrays of another length, a non-finite or
    /// non-positive step, non-finite values, or a field that folds (a displacement
    /// changing by more than half the control spacing between neighbours, which
    /// would also keep its inverse from converging).
    pub fn problem(&self) -> Option<String> {
        let [rows, cols] = self.grid;
        if !(2..=4096).contains(&rows) || !(2..=4096).contains(&cols) {
            return Some(format!(
                "a grid of {rows} x {cols} control points (2 to 4096 each way)"
            ));
        }
        let n = rows * cols;
        if self.dx.len() != n || self.dy.len() != n {
            return Some(format!(
                "{} x and {} y displacements for {rows} x {cols} control points",
                self.dx.len(),
                self.dy.len()
            ));
        }
        if !(self.step.is_finite() && self.step > 0.0)
            || self.origin.iter().any(|v| !v.is_finite())
            || self.dx.iter().chain(&self.dy).any(|v| !v.is_finite())
        {
            return Some("a step, origin or displacement that is not a finite number".into());
        }
        let fold = |v: &[f64]| {
            (0..rows).any(|r| {
                (0..cols).any(|c| {
                    let here = v[r * cols + c];
                    (c + 1 < cols && (v[r * cols + c + 1] - here).abs() > 0.5 * self.step)
                        || (r + 1 < rows && (v[(r + 1) * cols + c] - here).abs() > 0.5 * self.step)
                })
            })
        };
        if fold(&self.dx) || fold(&self.dy) {
            return Some(
                "displacements that change by more than half the control spacing between \
                 neighbouring control points (the field would fold)"
                    .into(),
            );
        }
        None
    }

    /// The frame point whose displaced position is `q`: `p + d(p) = q`, by fixed-point
    /// iteration (the field changes by less than half a step per step, so it converges).
    pub fn solve(&self, q: [f64; 2]) -> [f64; 2] {
        let mut p = q;
        for _ in 0..50 {
            let d = self.at(p);
            let next = [q[0] - d[0], q[1] - d[1]];
            let moved = (next[0] - p[0]).hypot(next[1] - p[1]);
            p = next;
            if moved < 1e-6 {
                break;
            }
        }
        p
    }
}

/// Settings of the block matching, in working-grid pixels.
pub(crate) struct FieldFit {
    /// Working pixels between control points.
    pub spacing: usize,
    /// Largest shift searched per iteration.
    pub radius: [usize; 3],
}

impl Default for FieldFit {
    fn default() -> Self {
        FieldFit {
            spacing: 32,
            radius: [8, 4, 2],
        }
    }
}

/// A field on the working grid: control point `(r, c)` at grid pixel `(c, r) * spacing`.
pub(crate) struct GridField {
    pub rows: usize,
    pub cols: usize,
    pub spacing: usize,
    pub d: Vec<[f64; 2]>,
}

impl GridField {
    pub fn zero(w: usize, h: usize, spacing: usize) -> GridField {
        let (rows, cols) = ((h - 1) / spacing + 2, (w - 1) / spacing + 2);
        GridField {
            rows,
            cols,
            spacing,
            d: vec![[0.0; 2]; rows * cols],
        }
    }

    /// Displacement at grid point `(x, y)` (bilinear).
    pub fn at(&self, x: f64, y: f64) -> [f64; 2] {
        let s = self.spacing as f64;
        let gx = (x / s).clamp(0.0, (self.cols - 1) as f64);
        let gy = (y / s).clamp(0.0, (self.rows - 1) as f64);
        let (c0, r0) = (gx.floor() as usize, gy.floor() as usize);
        let (c1, r1) = ((c0 + 1).min(self.cols - 1), (r0 + 1).min(self.rows - 1));
        let (tx, ty) = (gx - c0 as f64, gy - r0 as f64);
        let v = |r: usize, c: usize, a: usize| self.d[r * self.cols + c][a];
        std::array::from_fn(|a| {
            (v(r0, c0, a) * (1.0 - tx) + v(r0, c1, a) * tx) * (1.0 - ty)
                + (v(r1, c0, a) * (1.0 - tx) + v(r1, c1, a) * tx) * ty
        })
    }

    /// The same field in frame pixels, for a grid whose pixel `g` is frame point
    /// `k g + k / 2`.
    pub fn to_frame(&self, k: f64) -> Field {
        Field {
            origin: [k / 2.0; 2],
            step: k * self.spacing as f64,
            grid: [self.rows, self.cols],
            dx: self.d.iter().map(|d| k * d[0]).collect(),
            dy: self.d.iter().map(|d| k * d[1]).collect(),
        }
    }
}

/// The shift of `moving` that best matches `fixed` in the window of half-size `half`
/// around `(cx, cy)`, searched over integer shifts up to `radius` and refined to a
/// fraction of a pixel, with its correlation; `None` where the window has too little
/// tissue or no clear peak.
fn match_block(
    fixed: &Gray,
    mask: &[bool],
    moving: &Gray,
    (cx, cy): (usize, usize),
    half: usize,
    radius: usize,
) -> Option<([f64; 2], f64)> {
    let (w, h) = (fixed.w, fixed.h);
    let (x0, x1) = (cx.saturating_sub(half), (cx + half + 1).min(w));
    let (y0, y1) = (cy.saturating_sub(half), (cy + half + 1).min(h));
    let mut pix = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            let i = y * w + x;
            if mask[i] && fixed.data[i].is_finite() {
                pix.push((x, y, fixed.data[i] as f64));
            }
        }
    }
    let area = (x1 - x0) * (y1 - y0);
    if pix.len() * 2 < area || pix.len() < 64 {
        return None;
    }
    let n = pix.len() as f64;
    let mf = pix.iter().map(|p| p.2).sum::<f64>() / n;
    let vf = pix.iter().map(|p| (p.2 - mf).powi(2)).sum::<f64>();
    if vf <= 1e-9 {
        return None;
    }
    let r = radius as isize;
    let side = 2 * radius + 1;
    let mut scores = vec![f64::NAN; side * side];
    for sy in -r..=r {
        for sx in -r..=r {
            let (mut sm, mut smm, mut sfm, mut cnt) = (0.0, 0.0, 0.0, 0usize);
            for &(x, y, f) in &pix {
                let (mx, my) = (x as isize + sx, y as isize + sy);
                if mx < 0 || my < 0 || mx >= w as isize || my >= h as isize {
                    continue;
                }
                let m = moving.data[my as usize * w + mx as usize];
                if !m.is_finite() {
                    continue;
                }
                let m = m as f64;
                sm += m;
                smm += m * m;
                sfm += (f - mf) * m;
                cnt += 1;
            }
            if (cnt as f64) < 0.9 * n {
                continue;
            }
            let vm = smm - sm * sm / cnt as f64;
            if vm > 1e-9 {
                scores[(sy + r) as usize * side + (sx + r) as usize] = sfm / (vf * vm).sqrt();
            }
        }
    }
    let (best, &peak) = scores
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let (bx, by) = (best % side, best / side);
    // A peak on the border of the search is not a peak.
    if bx == 0 || by == 0 || bx == side - 1 || by == side - 1 || peak < 0.3 {
        return None;
    }
    let sub = |a: f64, c: f64, b: f64| {
        let den = a - 2.0 * c + b;
        if den < -1e-12 {
            (0.5 * (a - b) / den).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let at = |x: usize, y: usize| scores[y * side + x];
    let fx = sub(at(bx - 1, by), peak, at(bx + 1, by));
    let fy = sub(at(bx, by - 1), peak, at(bx, by + 1));
    let fx = if fx.is_finite() { fx } else { 0.0 };
    let fy = if fy.is_finite() { fy } else { 0.0 };
    Some(([bx as f64 - r as f64 + fx, by as f64 - r as f64 + fy], peak))
}

/// Fit a field that brings `moving(g + d(g))` onto `fixed(g)` over the tissue `mask`,
/// where `sample(g)` gives the moving image at grid point `g` through the affine.
/// Each iteration warps the moving image through the current field, matches blocks
/// around every control point, drops matches that disagree with their neighbours, and
/// adds the measured shifts smoothed by a normalised Gaussian over the control grid
/// (weights shrunk towards zero where few blocks matched).
pub(crate) fn fit_field(
    fixed: &Gray,
    mask: &[bool],
    sample: &(dyn Fn(f64, f64) -> f32 + Sync),
    fit: &FieldFit,
) -> GridField {
    let (w, h) = (fixed.w, fixed.h);
    let mut field = GridField::zero(w, h, fit.spacing);
    let (rows, cols) = (field.rows, field.cols);
    for &radius in &fit.radius {
        let warped = warp_through(w, h, &field, sample);
        let matches: Vec<Option<([f64; 2], f64)>> = (0..rows * cols)
            .into_par_iter()
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let (cx, cy) = (c * fit.spacing, r * fit.spacing);
                if cx >= w || cy >= h {
                    return None;
                }
                match_block(fixed, mask, &warped, (cx, cy), fit.spacing, radius)
            })
            .collect();
        // Outliers: a shift far from the median of its matched neighbours.
        let mut kept = matches.clone();
        for i in 0..rows * cols {
            let Some((s, _)) = matches[i] else { continue };
            let (r, c) = ((i / cols) as isize, (i % cols) as isize);
            let mut nx = Vec::new();
            let mut ny = Vec::new();
            for dr in -1..=1isize {
                for dc in -1..=1isize {
                    let (rr, cc) = (r + dr, c + dc);
                    if (dr, dc) == (0, 0) || rr < 0 || cc < 0 {
                        continue;
                    }
                    let (rr, cc) = (rr as usize, cc as usize);
                    if rr >= rows || cc >= cols {
                        continue;
                    }
                    if let Some((t, _)) = matches[rr * cols + cc] {
                        nx.push(t[0]);
                        ny.push(t[1]);
                    }
                }
            }
            if nx.len() >= 3 {
                let med = |v: &mut Vec<f64>| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let (mx, my) = (med(&mut nx), med(&mut ny));
                if (s[0] - mx).hypot(s[1] - my) > 0.5 * radius as f64 + 1.0 {
                    kept[i] = None;
                }
            } else {
                kept[i] = None;
            }
        }
        // Normalised Gaussian smoothing over the control grid (sigma 1.5 control points),
        // shrunk towards zero by a prior weight of one good match.
        let sigma = 1.5f64;
        let reach = 4isize;
        let prior = 0.5;
        let update: Vec<[f64; 2]> = (0..rows * cols)
            .map(|i| {
                let (r, c) = ((i / cols) as isize, (i % cols) as isize);
                let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
                for dr in -reach..=reach {
                    for dc in -reach..=reach {
                        let (rr, cc) = (r + dr, c + dc);
                        if rr < 0 || cc < 0 || rr >= rows as isize || cc >= cols as isize {
                            continue;
                        }
                        if let Some((s, ncc)) = kept[rr as usize * cols + cc as usize] {
                            let g = (-((dr * dr + dc * dc) as f64) / (2.0 * sigma * sigma)).exp();
                            let wgt = g * ncc * ncc;
                            sx += wgt * s[0];
                            sy += wgt * s[1];
                            sw += wgt;
                        }
                    }
                }
                [sx / (sw + prior), sy / (sw + prior)]
            })
            .collect();
        for (d, u) in field.d.iter_mut().zip(&update) {
            d[0] += u[0];
            d[1] += u[1];
        }
    }
    field
}

/// The moving image on the working grid through `field`: `sample(g + d(g))`.
pub(crate) fn warp_through(
    w: usize,
    h: usize,
    field: &GridField,
    sample: &(dyn Fn(f64, f64) -> f32 + Sync),
) -> Gray {
    let mut out = Gray::new(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            let d = field.at(x as f64, y as f64);
            *v = sample(x as f64 + d[0], y as f64 + d[1]);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texture(x: f64, y: f64) -> f32 {
        (0.5 + 0.25 * (x * 0.21).sin() * (y * 0.17).cos() + 0.2 * ((x + 2.0 * y) * 0.07).sin())
            as f32
    }

    /// A moving image displaced by a smooth known field is brought back: the fitted
    /// field is within 0.3 px of the truth on average and 1 px at worst inside, and the check could fail
    /// (the truth is several pixels).
    #[test]
    fn block_matching_recovers_a_smooth_field() {
        let (w, h) = (160usize, 128usize);
        let truth = |x: f64, y: f64| {
            [
                3.0 * (x / w as f64 * std::f64::consts::PI).sin(),
                -2.5 * (y / h as f64 * std::f64::consts::PI).sin(),
            ]
        };
        let mut fixed = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                fixed.data[y * w + x] = texture(x as f64, y as f64);
            }
        }
        // moving(g + t(g)) = fixed(g): moving(q) = fixed(q - t(q)) to first order,
        // so sample it by solving q = g + t(g) for g.
        let sample = |x: f64, y: f64| {
            let mut g = [x, y];
            for _ in 0..30 {
                let t = truth(g[0], g[1]);
                g = [x - t[0], y - t[1]];
            }
            texture(g[0], g[1])
        };
        let mask = vec![true; w * h];
        let fit = FieldFit {
            spacing: 16,
            ..FieldFit::default()
        };
        let f = fit_field(&fixed, &mask, &sample, &fit);
        let (mut worst, mut sum, mut n, mut before): (f64, f64, f64, f64) = (0.0, 0.0, 0.0, 0.0);
        for y in (16..h - 16).step_by(8) {
            for x in (16..w - 16).step_by(8) {
                let (d, t) = (f.at(x as f64, y as f64), truth(x as f64, y as f64));
                let e = (d[0] - t[0]).hypot(d[1] - t[1]);
                worst = worst.max(e);
                sum += e;
                n += 1.0;
                before = before.max(t[0].hypot(t[1]));
            }
        }
        assert!(
            before > 3.0,
            "the truth must be large enough to fail the check"
        );
        assert!(
            sum / n < 0.3 && worst < 1.0,
            "field off by {} px on average, {worst} at worst",
            sum / n
        );
    }

    #[test]
    fn field_inverse_and_checks() {
        let f = Field {
            origin: [0.0, 0.0],
            step: 10.0,
            grid: [2, 3],
            dx: vec![0.0, 1.0, 2.0, 0.5, 1.5, 2.5],
            dy: vec![-1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        };
        assert!(f.problem().is_none());
        let p = [7.0, 4.0];
        let d = f.at(p);
        let back = f.solve([p[0] + d[0], p[1] + d[1]]);
        assert!((back[0] - p[0]).abs() < 1e-6 && (back[1] - p[1]).abs() < 1e-6);
        let mut bad = f.clone();
        bad.dx[1] = 9.0;
        assert!(bad.problem().unwrap().contains("fold"));
        bad = f.clone();
        bad.dy.pop();
        assert!(bad.problem().unwrap().contains("control points"));
        bad = f.clone();
        bad.grid = [1, 6];
        assert!(bad.problem().unwrap().contains("grid"));
    }
}
