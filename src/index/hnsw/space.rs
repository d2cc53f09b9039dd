//! What the graph keeps per node to compute distances, and the distance kernels.
//!
//! A [`Space`] is one representation of the indexed vectors held in RAM: `Flat` (f32,
//! exact), `Sq8` (int8 scalar quantization with a per-dimension offset and scale: 4x
//! smaller) and `Bits` (one bit per dimension, the sign about a per-dimension mean:
//! 32x smaller). The graph is generic over it, so each representation's walk is
//! compiled with its kernel inlined. Distances of quantized spaces approximate the
//! squared L2 distance (`Sq8`) or rank like it (`Bits`: Hamming distance); the store
//! rescores the best candidates on the full-precision vectors.
//!
//! Kernels are written as 16-lane loops that the compiler vectorises; [`Kernel`]
//! selects the plain or the AVX2/FMA/POPCNT build at compile time inside the graph's
//! hot loops (the choice is made once, at run time, by the graph).

use std::io::{Read, Write};

/// Distance kernels, compiled once per instruction set.
pub(crate) trait Kernel {
    /// Squared L2 between two f32 vectors.
    fn l2(a: &[f32], b: &[f32]) -> f32;
    /// `sum (a_i - s_i c_i)^2`: a query minus the offset against an int8 code.
    fn sq8(a: &[f32], s: &[f32], c: &[u8]) -> f32;
    /// `sum (s_i (a_i - b_i))^2` between two int8 codes.
    fn sq8_pair(s: &[f32], a: &[u8], b: &[u8]) -> f32;
    /// Hamming distance between two bit vectors.
    fn hamming(a: &[u64], b: &[u64]) -> f32;
}

/// The kernels without any instruction-set assumption.
pub(crate) struct Portable;
impl Kernel for Portable {
    #[inline(always)]
    fn l2(a: &[f32], b: &[f32]) -> f32 {
        l2sq_lanes::<false>(a, b)
    }
    #[inline(always)]
    fn sq8(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        sq8_lanes::<false>(a, s, c)
    }
    #[inline(always)]
    fn sq8_pair(s: &[f32], a: &[u8], b: &[u8]) -> f32 {
        sq8_pair_lanes::<false>(s, a, b)
    }
    #[inline(always)]
    fn hamming(a: &[u64], b: &[u64]) -> f32 {
        hamming_words(a, b)
    }
}

/// The kernels inlined into code compiled with AVX2, FMA and POPCNT.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Fma;
#[cfg(target_arch = "x86_64")]
impl Kernel for Fma {
    #[inline(always)]
    fn l2(a: &[f32], b: &[f32]) -> f32 {
        l2sq_lanes::<true>(a, b)
    }
    #[inline(always)]
    fn sq8(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        sq8_lanes::<true>(a, s, c)
    }
    #[inline(always)]
    fn sq8_pair(s: &[f32], a: &[u8], b: &[u8]) -> f32 {
        sq8_pair_lanes::<true>(s, a, b)
    }
    #[inline(always)]
    fn hamming(a: &[u64], b: &[u64]) -> f32 {
        hamming_words(a, b)
    }
}

#[inline(always)]
fn fma_or<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Squared L2 over 16 lanes; `FMA` selects fused multiply-add, which is only fast
/// when inlined into code compiled with the `fma` target feature.
#[inline(always)]
pub(crate) fn l2sq_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] = fma_or::<FMA>(d, d, acc[i]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

#[inline(always)]
fn sq8_lanes<const FMA: bool>(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cs, cc) = (a.chunks_exact(16), s.chunks_exact(16), c.chunks_exact(16));
    let (ra, rs, rc) = (ca.remainder(), cs.remainder(), cc.remainder());
    for ((x, sc), code) in ca.zip(cs).zip(cc) {
        for i in 0..16 {
            let d = fma_or::<FMA>(-sc[i], code[i] as f32, x[i]);
            acc[i] = fma_or::<FMA>(d, d, acc[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for ((x, sc), code) in ra.iter().zip(rs).zip(rc) {
        let d = x - sc * *code as f32;
        sum += d * d;
    }
    sum
}

#[inline(always)]
fn sq8_pair_lanes<const FMA: bool>(s: &[f32], a: &[u8], b: &[u8]) -> f32 {
    let mut acc = [0f32; 16];
    let (cs, ca, cb) = (s.chunks_exact(16), a.chunks_exact(16), b.chunks_exact(16));
    let (rs, ra, rb) = (cs.remainder(), ca.remainder(), cb.remainder());
    for ((sc, x), y) in cs.zip(ca).zip(cb) {
        for i in 0..16 {
            let d = (x[i] as f32 - y[i] as f32) * sc[i];
            acc[i] = fma_or::<FMA>(d, d, acc[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for ((sc, x), y) in rs.iter().zip(ra).zip(rb) {
        let d = (*x as f32 - *y as f32) * sc;
        sum += d * d;
    }
    sum
}

#[inline(always)]
fn hamming_words(a: &[u64], b: &[u64]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones())
        .sum::<u32>() as f32
}

/// One representation of the indexed vectors, held in RAM for the graph walk.
pub(crate) trait Space: Send + Sync + Sized {
    /// A query prepared for [`Space::dist`].
    type Query: Send + Sync;
    /// The representation's tag in snapshot files.
    const KIND: u8;
    /// An empty space for `dim`-dimensional vectors.
    fn empty(dim: usize, capacity: usize) -> Self;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Fit the quantizer's parameters on the first batch (no-op for f32).
    fn fit(&mut self, batch: &[(u64, Vec<f32>)]);
    /// Append one node's vector (prepared for the metric).
    fn push(&mut self, v: &[f32]);
    /// A query vector (prepared for the metric) in this space.
    fn query(&self, v: &[f32]) -> Self::Query;
    /// A node's own vector as a query (for linking it).
    fn node_query(&self, node: u32) -> Self::Query;
    /// Distance from a query to a node.
    fn dist<K: Kernel>(&self, q: &Self::Query, node: u32) -> f32;
    /// Distance between two nodes.
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32;
    /// Address of a node's data (for prefetching).
    fn addr(&self, node: u32) -> *const u8;
    /// Bytes per node in RAM and in a snapshot.
    fn node_bytes(dim: usize) -> usize;
    /// Bytes of the parameters in a snapshot.
    fn param_bytes(dim: usize) -> usize;
    /// Write parameters and every node's data.
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()>;
    /// Read what [`Space::write`] wrote for `n` nodes.
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String>;
}

fn read_f32s(r: &mut dyn Read, n: usize) -> Result<Vec<f32>, String> {
    let mut v = vec![0f32; n];
    r.read_exact(bytemuck::cast_slice_mut(&mut v))
        .map_err(|e| format!("truncated ({e})"))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err("non-finite value in the index".into());
    }
    Ok(v)
}

/// Full-precision vectors (`--quantization f32`).
pub(crate) struct Flat {
    dim: usize,
    vectors: Vec<f32>,
}

impl Flat {
    #[inline(always)]
    fn vec(&self, node: u32) -> &[f32] {
        let s = node as usize * self.dim;
        &self.vectors[s..s + self.dim]
    }
}

impl Space for Flat {
    type Query = Vec<f32>;
    const KIND: u8 = 0;
    fn empty(dim: usize, capacity: usize) -> Self {
        Flat {
            dim,
            vectors: Vec::with_capacity(capacity * dim),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn fit(&mut self, _: &[(u64, Vec<f32>)]) {}
    fn push(&mut self, v: &[f32]) {
        self.vectors.extend_from_slice(v);
    }
    fn query(&self, v: &[f32]) -> Vec<f32> {
        v.to_vec()
    }
    fn node_query(&self, node: u32) -> Vec<f32> {
        self.vec(node).to_vec()
    }
    #[inline(always)]
    fn dist<K: Kernel>(&self, q: &Vec<f32>, node: u32) -> f32 {
        K::l2(q, self.vec(node))
    }
    #[inline(always)]
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32 {
        K::l2(self.vec(a), self.vec(b))
    }
    #[inline(always)]
    fn addr(&self, node: u32) -> *const u8 {
        self.vectors.as_ptr().wrapping_add(node as usize * self.dim) as *const u8
    }
    fn node_bytes(dim: usize) -> usize {
        4 * dim
    }
    fn param_bytes(_: usize) -> usize {
        0
    }
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(bytemuck::cast_slice(&self.vectors))
    }
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String> {
        Ok(Flat {
            dim,
            vectors: read_f32s(r, n * dim)?,
        })
    }
}

/// Int8 scalar quantization (`--quantization int8`): `x_i ~ lo_i + scale_i * c_i` with
/// `c_i` in 0..=255, the range of each dimension fitted on the first batch with a
/// margin (values outside it are clipped).
pub(crate) struct Sq8 {
    dim: usize,
    lo: Vec<f32>,
    scale: Vec<f32>,
    codes: Vec<u8>,
}

impl Sq8 {
    #[inline(always)]
    fn code(&self, node: u32) -> &[u8] {
        let s = node as usize * self.dim;
        &self.codes[s..s + self.dim]
    }
}

impl Space for Sq8 {
    type Query = Vec<f32>;
    const KIND: u8 = 1;
    fn empty(dim: usize, capacity: usize) -> Self {
        Sq8 {
            dim,
            lo: vec![-1.0; dim],
            scale: vec![2.0 / 255.0; dim],
            codes: Vec::with_capacity(capacity * dim),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn fit(&mut self, batch: &[(u64, Vec<f32>)]) {
        if batch.is_empty() {
            return;
        }
        let d = self.dim;
        let mut min = vec![f32::INFINITY; d];
        let mut max = vec![f32::NEG_INFINITY; d];
        for (_, v) in batch {
            for i in 0..d {
                min[i] = min[i].min(v[i]);
                max[i] = max[i].max(v[i]);
            }
        }
        let typical = (0..d).map(|i| max[i] - min[i]).sum::<f32>() / d as f32;
        let typical = if typical > 0.0 {
            typical
        } else {
            batch[0]
                .1
                .iter()
                .fold(0f32, |a, x| a.max(x.abs()))
                .max(1e-3)
        };
        // A small first batch says little about the range: widen it.
        let extra = if batch.len() < 1000 {
            0.5 * typical
        } else {
            0.0
        };
        for i in 0..d {
            let pad = 0.05 * (max[i] - min[i]) + extra;
            let (lo, hi) = (min[i] - pad, max[i] + pad);
            let span = (hi - lo).max(1e-3 * typical);
            self.lo[i] = lo;
            self.scale[i] = span / 255.0;
        }
    }
    fn push(&mut self, v: &[f32]) {
        for i in 0..self.dim {
            let c = ((v[i] - self.lo[i]) / self.scale[i]).round();
            self.codes.push(c.clamp(0.0, 255.0) as u8);
        }
    }
    fn query(&self, v: &[f32]) -> Vec<f32> {
        v.iter().zip(&self.lo).map(|(x, lo)| x - lo).collect()
    }
    fn node_query(&self, node: u32) -> Vec<f32> {
        self.code(node)
            .iter()
            .zip(&self.scale)
            .map(|(c, s)| *c as f32 * s)
            .collect()
    }
    #[inline(always)]
    fn dist<K: Kernel>(&self, q: &Vec<f32>, node: u32) -> f32 {
        K::sq8(q, &self.scale, self.code(node))
    }
    #[inline(always)]
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32 {
        K::sq8_pair(&self.scale, self.code(a), self.code(b))
    }
    #[inline(always)]
    fn addr(&self, node: u32) -> *const u8 {
        self.codes.as_ptr().wrapping_add(node as usize * self.dim)
    }
    fn node_bytes(dim: usize) -> usize {
        dim
    }
    fn param_bytes(dim: usize) -> usize {
        8 * dim
    }
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(bytemuck::cast_slice(&self.lo))?;
        w.write_all(bytemuck::cast_slice(&self.scale))?;
        w.write_all(&self.codes)
    }
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String> {
        let lo = read_f32s(r, dim)?;
        let scale = read_f32s(r, dim)?;
        if scale.iter().any(|s| *s <= 0.0) {
            return Err("int8 scale not positive".into());
        }
        let mut codes = vec![0u8; n * dim];
        r.read_exact(&mut codes)
            .map_err(|e| format!("truncated ({e})"))?;
        Ok(Sq8 {
            dim,
            lo,
            scale,
            codes,
        })
    }
}

/// One bit per dimension (`--quantization binary`): the sign of `x_i - mean_i`, the
/// mean fitted on the first batch; distances are Hamming distances.
pub(crate) struct Bits {
    dim: usize,
    words: usize,
    mean: Vec<f32>,
    bits: Vec<u64>,
}

impl Bits {
    #[inline(always)]
    fn word(&self, node: u32) -> &[u64] {
        let s = node as usize * self.words;
        &self.bits[s..s + self.words]
    }

    fn encode(&self, v: &[f32], out: &mut Vec<u64>) {
        for w in 0..self.words {
            let mut x = 0u64;
            for b in 0..64 {
                let i = w * 64 + b;
                if i < self.dim && v[i] > self.mean[i] {
                    x |= 1 << b;
                }
            }
            out.push(x);
        }
    }
}

impl Space for Bits {
    type Query = Vec<u64>;
    const KIND: u8 = 2;
    fn empty(dim: usize, capacity: usize) -> Self {
        let words = dim.div_ceil(64);
        Bits {
            dim,
            words,
            mean: vec![0.0; dim],
            bits: Vec::with_capacity(capacity * words),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn fit(&mut self, batch: &[(u64, Vec<f32>)]) {
        if batch.is_empty() {
            return;
        }
        let mut sum = vec![0f64; self.dim];
        for (_, v) in batch {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += *x as f64;
            }
        }
        for (m, s) in self.mean.iter_mut().zip(sum) {
            *m = (s / batch.len() as f64) as f32;
        }
    }
    fn push(&mut self, v: &[f32]) {
        let mut out = std::mem::take(&mut self.bits);
        self.encode(v, &mut out);
        self.bits = out;
    }
    fn query(&self, v: &[f32]) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.words);
        self.encode(v, &mut out);
        out
    }
    fn node_query(&self, node: u32) -> Vec<u64> {
        self.word(node).to_vec()
    }
    #[inline(always)]
    fn dist<K: Kernel>(&self, q: &Vec<u64>, node: u32) -> f32 {
        K::hamming(q, self.word(node))
    }
    #[inline(always)]
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32 {
        K::hamming(self.word(a), self.word(b))
    }
    #[inline(always)]
    fn addr(&self, node: u32) -> *const u8 {
        self.bits.as_ptr().wrapping_add(node as usize * self.words) as *const u8
    }
    fn node_bytes(dim: usize) -> usize {
        8 * dim.div_ceil(64)
    }
    fn param_bytes(dim: usize) -> usize {
        4 * dim
    }
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(bytemuck::cast_slice(&self.mean))?;
        w.write_all(bytemuck::cast_slice(&self.bits))
    }
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String> {
        let words = dim.div_ceil(64);
        let mean = read_f32s(r, dim)?;
        let mut bits = vec![0u64; n * words];
        r.read_exact(bytemuck::cast_slice_mut(&mut bits))
            .map_err(|e| format!("truncated ({e})"))?;
        Ok(Bits {
            dim,
            words,
            mean,
            bits,
        })
    }
}
