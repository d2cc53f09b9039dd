//! Randomness and smooth random fields. Random draws are a hash of (seed, stream,
//! coordinates) for random access, or ChaCha8 streams seeded from such a hash for
//! sequences; the fields are value noise on randomly offset lattices.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(super) const S_COMP: u64 = 1;
pub(super) const S_WARP: u64 = 2;
pub(super) const S_SHADE: u64 = 3;
pub(super) const S_OUTLINE: u64 = 4;
pub(super) const S_GLAND: u64 = 5;
pub(super) const S_NUCLEUS: u64 = 6;
pub(super) const S_FAT: u64 = 7;
pub(super) const S_NOISE: u64 = 8;
pub(super) const S_HE_NOISE: u64 = 9;
pub(super) const S_PROGRAMS: u64 = 10;
pub(super) const S_COUNTS: u64 = 11;
pub(super) const S_STRIPES: u64 = 12;
pub(super) const S_OBLIQUE: u64 = 13;

pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn key(seed: u64, stream: u64, a: i64, b: i64, c: i64) -> u64 {
    key_last(key_prefix(seed, stream, a, b), c)
}

/// The part of [`key`] that does not depend on `c` (for loops over `c`).
pub(super) fn key_prefix(seed: u64, stream: u64, a: i64, b: i64) -> u64 {
    let h = mix(seed ^ mix(stream));
    let h = mix(h ^ a as u64);
    mix(h ^ (b as u64).rotate_left(21))
}

pub(super) fn key_last(prefix: u64, c: i64) -> u64 {
    mix(prefix ^ (c as u64).rotate_left(42))
}

/// Uniform in [0, 1) from the top 24 bits of a hash.
pub(super) fn unit(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

pub(super) fn rng(seed: u64, stream: u64, a: i64, b: i64, c: i64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key(seed, stream, a, b, c))
}

// ---------------------------------------------------------------------------------
// Smooth random fields: value noise on a randomly offset lattice, smoothstep
// interpolation, evaluated separably (z for a slice, y for a row, x per voxel).

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

struct Lattice {
    spacing: f32,
    amp: f32,
    off: [f32; 3],
    n: [usize; 3],
    values: Vec<f32>,
    ytab: Vec<(u32, f32)>,
    /// x weights, and the runs of x sharing a lattice interval: (first x, interval).
    xw: Vec<f32>,
    xseg: Vec<(usize, usize)>,
}

impl Lattice {
    fn new(seed: u64, stream: u64, id: i64, spacing: f32, amp: f32, shape: [usize; 3]) -> Self {
        let o = key(seed, stream, id, -1, -1);
        let off = [
            unit(o) * spacing,
            unit(mix(o)) * spacing,
            unit(mix(mix(o))) * spacing,
        ];
        let n: [usize; 3] =
            std::array::from_fn(|a| ((shape[a] as f32 + off[a]) / spacing) as usize + 2);
        let mut values = Vec::with_capacity(n[0] * n[1] * n[2]);
        for iz in 0..n[0] {
            for iy in 0..n[1] {
                for ix in 0..n[2] {
                    let h = key(
                        seed,
                        stream ^ ((id as u64) << 32),
                        iz as i64,
                        iy as i64,
                        ix as i64,
                    );
                    values.push(unit(h) * 2.0 - 1.0);
                }
            }
        }
        let tab = |axis: usize| -> Vec<(u32, f32)> {
            (0..shape[axis])
                .map(|p| {
                    let t = (p as f32 + off[axis]) / spacing;
                    let i = t.floor();
                    (i as u32, smooth(t - i))
                })
                .collect()
        };
        let xtab = tab(2);
        let mut xseg: Vec<(usize, usize)> = Vec::new();
        for (x, &(i, _)) in xtab.iter().enumerate() {
            if xseg.last().is_none_or(|s| s.1 != i as usize) {
                xseg.push((x, i as usize));
            }
        }
        Lattice {
            spacing,
            amp,
            off,
            n,
            ytab: tab(1),
            xw: xtab.iter().map(|t| t.1).collect(),
            xseg,
            values,
        }
    }

    /// The lattice interpolated to slice `z`: an `n[1] x n[2]` plane.
    fn plane(&self, z: usize) -> Vec<f32> {
        let t = (z as f32 + self.off[0]) / self.spacing;
        let i = t.floor() as usize;
        let w = smooth(t - i as f32);
        let s = self.n[1] * self.n[2];
        let (a, b) = (
            &self.values[i * s..(i + 1) * s],
            &self.values[(i + 1) * s..(i + 2) * s],
        );
        a.iter().zip(b).map(|(a, b)| a + (b - a) * w).collect()
    }

    /// Add `amp * field` along row `y` of the slice whose plane is given.
    fn add_row(&self, plane: &[f32], y: usize, out: &mut [f32], row: &mut Vec<f32>) {
        let (iy, wy) = self.ytab[y];
        let nx = self.n[2];
        let r0 = &plane[iy as usize * nx..][..nx];
        let r1 = &plane[(iy as usize + 1) * nx..][..nx];
        row.clear();
        row.extend(
            r0.iter()
                .zip(r1)
                .map(|(a, b)| (a + (b - a) * wy) * self.amp),
        );
        for (s, &(x0, i)) in self.xseg.iter().enumerate() {
            let x1 = self.xseg.get(s + 1).map_or(out.len(), |n| n.0);
            let (a, d) = (row[i], row[i + 1] - row[i]);
            for (o, w) in out[x0..x1].iter_mut().zip(&self.xw[x0..x1]) {
                *o += a + d * w;
            }
        }
    }
}

/// A sum of lattices (octaves).
pub(super) struct Noise(Vec<Lattice>);

impl Noise {
    pub(super) fn new(
        seed: u64,
        stream: u64,
        id: i64,
        octaves: &[(f32, f32)],
        shape: [usize; 3],
    ) -> Self {
        Noise(
            octaves
                .iter()
                .enumerate()
                .map(|(o, &(sp, amp))| {
                    Lattice::new(seed, stream, id * 16 + o as i64, sp, amp, shape)
                })
                .collect(),
        )
    }

    pub(super) fn planes(&self, z: usize) -> Vec<Vec<f32>> {
        self.0.iter().map(|l| l.plane(z)).collect()
    }

    pub(super) fn row(
        &self,
        planes: &[Vec<f32>],
        y: usize,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        out.fill(0.0);
        for (l, p) in self.0.iter().zip(planes) {
            l.add_row(p, y, out, scratch);
        }
    }
}
