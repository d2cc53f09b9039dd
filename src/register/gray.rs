//! Single-channel float images for registration: optical density of H&E, area
//! downsampling, Gaussian smoothing, gradients, bilinear sampling, Otsu's tissue mask.

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::decode_image;

/// A single-channel image, row-major, index coordinates (pixel `(x, y)` at `x, y`).
#[derive(Debug, Clone)]
pub(crate) struct Gray {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

impl Gray {
    pub fn new(w: usize, h: usize) -> Gray {
        Gray {
            w,
            h,
            data: vec![0.0; w * h],
        }
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.w + x]
    }

    /// Bilinear value at index coordinates `(x, y)`; `None` outside the pixel centres'
    /// hull (half a pixel of slack at the border, clamped).
    #[inline]
    pub fn sample(&self, x: f64, y: f64) -> Option<f32> {
        if !(x > -0.5 && y > -0.5 && x < self.w as f64 - 0.5 && y < self.h as f64 - 0.5) {
            return None;
        }
        let (x, y) = (
            x.clamp(0.0, (self.w - 1) as f64),
            y.clamp(0.0, (self.h - 1) as f64),
        );
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (tx, ty) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let top = self.get(x0, y0) * (1.0 - tx) + self.get(x1, y0) * tx;
        let bot = self.get(x0, y1) * (1.0 - tx) + self.get(x1, y1) * tx;
        Some(top * (1.0 - ty) + bot * ty)
    }

    /// Mean of every `k x k` block (the last partial row and column of blocks dropped).
    pub fn block_mean(&self, k: usize) -> Gray {
        let (w, h) = ((self.w / k).max(1), (self.h / k).max(1));
        let mut out = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                let mut n = 0.0;
                for yy in y * k..((y + 1) * k).min(self.h) {
                    for xx in x * k..((x + 1) * k).min(self.w) {
                        s += self.get(xx, yy);
                        n += 1.0;
                    }
                }
                out.data[y * w + x] = if n > 0.0 { s / n } else { 0.0 };
            }
        }
        out
    }

    /// Separable Gaussian blur of standard deviation `sigma` pixels (edges clamped).
    pub fn blur(&self, sigma: f64) -> Gray {
        if sigma <= 0.0 {
            return self.clone();
        }
        let r = (3.0 * sigma).ceil() as isize;
        let kern: Vec<f32> = (-r..=r)
            .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
            .collect();
        let sum: f32 = kern.iter().sum();
        let kern: Vec<f32> = kern.iter().map(|k| k / sum).collect();
        let (w, h) = (self.w as isize, self.h as isize);
        let mut tmp = Gray::new(self.w, self.h);
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for (i, k) in kern.iter().enumerate() {
                    let xx = (x + i as isize - r).clamp(0, w - 1);
                    s += k * self.data[(y * w + xx) as usize];
                }
                tmp.data[(y * w + x) as usize] = s;
            }
        }
        let mut out = Gray::new(self.w, self.h);
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for (i, k) in kern.iter().enumerate() {
                    let yy = (y + i as isize - r).clamp(0, h - 1);
                    s += k * tmp.data[(yy * w + x) as usize];
                }
                out.data[(y * w + x) as usize] = s;
            }
        }
        out
    }

    /// Central-difference gradients `(d/dx, d/dy)` (one-sided at the border).
    pub fn gradients(&self) -> (Gray, Gray) {
        let (w, h) = (self.w, self.h);
        let mut gx = Gray::new(w, h);
        let mut gy = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
                let dx = (xr - xl).max(1) as f32;
                let dy = (yd - yu).max(1) as f32;
                gx.data[y * w + x] = (self.get(xr, y) - self.get(xl, y)) / dx;
                gy.data[y * w + x] = (self.get(x, yd) - self.get(x, yu)) / dy;
            }
        }
        (gx, gy)
    }

    /// Otsu's threshold over the values (256 bins between the extremes).
    pub fn otsu(&self) -> f32 {
        otsu(&self.data)
    }
}

/// Otsu's threshold of `values` (256 bins between the extremes).
pub(crate) fn otsu(values: &[f32]) -> f32 {
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    if values.is_empty() || hi <= lo {
        return lo;
    }
    let mut hist = [0f64; 256];
    let scale = 255.999 / (hi - lo);
    for &v in values {
        hist[((v - lo) * scale) as usize] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, c)| i as f64 * c).sum();
    let (mut w0, mut s0, mut best, mut best_t) = (0.0, 0.0, -1.0, 0usize);
    for (t, c) in hist.iter().enumerate() {
        w0 += c;
        s0 += t as f64 * c;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (s0 / w0, (sum_all - s0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    lo + (best_t as f32 + 1.0) / scale
}

/// An image file read as mean optical density over its channels
/// (`-ln((v + 1) / 256)`, 0 for white), averaged over `k x k` blocks; also returns the
/// file's full size `(w, h)`. Bright-field H&E: tissue absorbs, background is ~0.
pub(crate) fn read_density(path: &Path, k: usize) -> Result<(Gray, [usize; 2])> {
    let img = decode_image(path)?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w < k || h < k {
        return Err(Error::bad_file(
            path,
            format!("image of {w} x {h} pixels is smaller than one {k} x {k} working pixel"),
        ));
    }
    let lut: Vec<f32> = (0..256)
        .map(|v| -(((v as f32) + 1.0) / 256.0).ln())
        .collect();
    let (ow, oh) = (w / k, h / k);
    let mut out = Gray::new(ow, oh);
    let raw = rgb.as_raw();
    let norm = 1.0 / (3 * k * k) as f32;
    for oy in 0..oh {
        let row = &mut out.data[oy * ow..(oy + 1) * ow];
        for y in oy * k..(oy + 1) * k {
            let line = &raw[y * w * 3..(y + 1) * w * 3];
            for (ox, acc) in row.iter_mut().enumerate() {
                let px = &line[ox * k * 3..(ox + 1) * k * 3];
                *acc += px.iter().map(|&v| lut[v as usize]).sum::<f32>();
            }
        }
        row.iter_mut().for_each(|v| *v *= norm);
    }
    Ok((out, [w, h]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_splits_two_modes() {
        let v: Vec<f32> = (0..1000)
            .map(|i| {
                if i % 3 == 0 {
                    0.9 + (i % 7) as f32 * 0.01
                } else {
                    0.1
                }
            })
            .collect();
        let t = otsu(&v);
        assert!(t > 0.1 && t <= 0.9, "{t}");
    }

    #[test]
    fn sampling_and_gradients() {
        let mut g = Gray::new(8, 6);
        for y in 0..6 {
            for x in 0..8 {
                g.data[y * 8 + x] = 2.0 * x as f32 + 3.0 * y as f32;
            }
        }
        assert_eq!(g.sample(2.5, 1.5), Some(2.0 * 2.5 + 3.0 * 1.5));
        assert_eq!(g.sample(-1.0, 0.0), None);
        let (gx, gy) = g.gradients();
        assert_eq!((gx.get(3, 3), gy.get(3, 3)), (2.0, 3.0));
        // Blurring keeps a linear ramp away from the border (the kernel reaches 3 sigma).
        let mut big = Gray::new(16, 12);
        for y in 0..12 {
            for x in 0..16 {
                big.data[y * 16 + x] = 2.0 * x as f32 + 3.0 * y as f32;
            }
        }
        let b = big.blur(1.0);
        assert!(
            (b.get(8, 6) - big.get(8, 6)).abs() < 1e-3,
            "{}",
            b.get(8, 6)
        );
        assert_eq!(g.block_mean(2).get(0, 0), (0.0 + 2.0 + 3.0 + 5.0) / 4.0);
    }
}
