//! What the graph keeps per node to compute distances, and the distance kernels.
//!
//! A [`Space`] is one representation of the indexed vectors held in RAM: `Flat` (f32,
//! exact), `Sq8` (8-bit scalar quantization, each vector with its own offset and
//! step: nearly 4x smaller) and `Bits` (one bit per dimension, the sign about a per-dimension mean:
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
    /// `sum a_i b_i` between two 8-bit codes.
    fn dot8(a: &[u8], b: &[u8]) -> u32;
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
    fn dot8(a: &[u8], b: &[u8]) -> u32 {
        dot8_portable(a, b)
    }
    #[inline(always)]
    fn hamming(a: &[u64], b: &[u64]) -> f32 {
        hamming_words(a, b)
    }
}

/// The kernels compiled with AVX2, FMA and POPCNT. Each is its own
/// `#[target_feature]` function, so it is fast wherever it is called from (a closure
/// in the graph walk is compiled without the features; an FMA inlined there would
/// become a call to the software `fmaf`), and inlined into callers that have them.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Fma;
#[cfg(target_arch = "x86_64")]
impl Kernel for Fma {
    #[inline(always)]
    fn l2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `Fma` is used only after AVX2, FMA and POPCNT were detected.
        unsafe { l2_fma(a, b) }
    }
    #[inline(always)]
    fn dot8(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: as above.
        unsafe { dot8_avx2(a, b) }
    }
    #[inline(always)]
    fn hamming(a: &[u64], b: &[u64]) -> f32 {
        // SAFETY: as above.
        unsafe { hamming_popcnt(a, b) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn l2_fma(a: &[f32], b: &[f32]) -> f32 {
    l2sq_lanes::<true>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn hamming_popcnt(a: &[u64], b: &[u64]) -> f32 {
    hamming_words(a, b)
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

/// Dot product over 16 lanes (see [`l2sq_lanes`]).
#[inline(always)]
pub(crate) fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = fma_or::<FMA>(x[i], y[i], acc[i]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn dot8_portable(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| *x as u32 * *y as u32).sum()
}

/// `sum a_i b_i` of two 8-bit codes, 16 dimensions per step: widened to i16 and
/// multiplied and pairwise added to i32 by `vpmaddwd` (255 * 255 * 2 fits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot8_avx2(a: &[u8], b: &[u8]) -> u32 {
    use core::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut i = 0;
    // SAFETY: every load reads 16 bytes at `i`, with `i + 16 <= n`.
    unsafe {
        let mut acc = _mm256_setzero_si256();
        while i + 16 <= n {
            let va = _mm256_cvtepu8_epi16(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let vb = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
            i += 16;
        }
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s) as u32 + dot8_portable(&a[i..n], &b[i..n])
    }
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

/// 8-bit scalar quantization with a scale of each vector's own (`--quantization int8`):
/// vector `x` is coded as `x_i ~ lo + step c_i`, with `lo` its smallest and
/// `lo + 255 step` its largest value, and the node keeps `lo`, `step`, `sum_i c_i` and
/// the squared norm of the coded vector beside its codes. Nothing is fitted to a
/// sample, so a vector's code does not depend on the vectors inserted before it: a
/// collection whose samples arrive over months, from shifting distributions, is coded
/// exactly as if they had been imported at once. Squared L2 distances between coded
/// vectors (the query is coded the same way) are exact for the codes:
/// `|a|^2 + |b|^2 - 2 <a, b>`, with
/// `<a, b> = d lo_a lo_b + lo_a step_b S_b + lo_b step_a S_a + step_a step_b <c_a, c_b>`
/// and `<c_a, c_b>` an integer dot product.
pub(crate) struct Sq8 {
    dim: usize,
    /// Per node: `lo`, `step`, `sum c`, `|x|^2` (f32, little-endian), then the codes.
    nodes: Vec<u8>,
}

/// Bytes of a node's numbers before its codes.
const SQ8_HEAD: usize = 16;

/// A vector coded by [`Sq8`]: its numbers and codes.
pub(crate) struct Sq8Code {
    lo: f32,
    step: f32,
    sum: f32,
    norm2: f32,
    codes: Vec<u8>,
}

impl Sq8 {
    #[inline(always)]
    fn node(&self, node: u32) -> &[u8] {
        let stride = SQ8_HEAD + self.dim;
        let s = node as usize * stride;
        &self.nodes[s..s + stride]
    }

    /// Code `v`: its range in 255 steps, and the numbers the distance needs.
    fn encode(v: &[f32]) -> Sq8Code {
        let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let step = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let codes: Vec<u8> = v
            .iter()
            .map(|x| ((x - lo) / step).round().clamp(0.0, 255.0) as u8)
            .collect();
        let sum = codes.iter().map(|&c| c as u32).sum::<u32>() as f32;
        let norm2 = codes
            .iter()
            .map(|&c| {
                let y = lo + step * c as f32;
                y * y
            })
            .sum();
        Sq8Code {
            lo,
            step,
            sum,
            norm2,
            codes,
        }
    }

    #[inline(always)]
    fn head(node: &[u8]) -> [f32; 4] {
        let f = |i: usize| f32::from_le_bytes(node[4 * i..4 * i + 4].try_into().expect("4"));
        [f(0), f(1), f(2), f(3)]
    }

    /// Squared L2 between two coded vectors given their numbers and codes.
    #[inline(always)]
    fn sq_l2<K: Kernel>(&self, a: [f32; 4], ca: &[u8], b: [f32; 4], cb: &[u8]) -> f32 {
        let [lo_a, st_a, s_a, n_a] = a;
        let [lo_b, st_b, s_b, n_b] = b;
        let dot = self.dim as f32 * lo_a * lo_b
            + lo_a * st_b * s_b
            + lo_b * st_a * s_a
            + st_a * st_b * K::dot8(ca, cb) as f32;
        (n_a + n_b - 2.0 * dot).max(0.0)
    }
}

impl Space for Sq8 {
    type Query = Sq8Code;
    const KIND: u8 = 3;
    fn empty(dim: usize, capacity: usize) -> Self {
        Sq8 {
            dim,
            nodes: Vec::with_capacity(capacity * (SQ8_HEAD + dim)),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn fit(&mut self, _: &[(u64, Vec<f32>)]) {}
    fn push(&mut self, v: &[f32]) {
        let c = Sq8::encode(v);
        for x in [c.lo, c.step, c.sum, c.norm2] {
            self.nodes.extend_from_slice(&x.to_le_bytes());
        }
        self.nodes.extend_from_slice(&c.codes);
    }
    fn query(&self, v: &[f32]) -> Sq8Code {
        Sq8::encode(v)
    }
    fn node_query(&self, node: u32) -> Sq8Code {
        let n = self.node(node);
        let [lo, step, sum, norm2] = Sq8::head(n);
        Sq8Code {
            lo,
            step,
            sum,
            norm2,
            codes: n[SQ8_HEAD..].to_vec(),
        }
    }
    #[inline(always)]
    fn dist<K: Kernel>(&self, q: &Sq8Code, node: u32) -> f32 {
        let n = self.node(node);
        self.sq_l2::<K>(
            [q.lo, q.step, q.sum, q.norm2],
            &q.codes,
            Sq8::head(n),
            &n[SQ8_HEAD..],
        )
    }
    #[inline(always)]
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32 {
        let (na, nb) = (self.node(a), self.node(b));
        self.sq_l2::<K>(
            Sq8::head(na),
            &na[SQ8_HEAD..],
            Sq8::head(nb),
            &nb[SQ8_HEAD..],
        )
    }
    #[inline(always)]
    fn addr(&self, node: u32) -> *const u8 {
        self.nodes
            .as_ptr()
            .wrapping_add(node as usize * (SQ8_HEAD + self.dim))
    }
    fn node_bytes(dim: usize) -> usize {
        SQ8_HEAD + dim
    }
    fn param_bytes(_: usize) -> usize {
        0
    }
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&self.nodes)
    }
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String> {
        let mut nodes = vec![0u8; n * (SQ8_HEAD + dim)];
        r.read_exact(&mut nodes)
            .map_err(|e| format!("truncated ({e})"))?;
        for i in 0..n {
            let [lo, step, sum, norm2] = Sq8::head(&nodes[i * (SQ8_HEAD + dim)..]);
            let fine = [lo, step, sum, norm2].iter().all(|x| x.is_finite())
                && step > 0.0
                && sum >= 0.0
                && norm2 >= 0.0;
            if !fine {
                return Err(format!("int8 node {i} has impossible numbers"));
            }
        }
        Ok(Sq8 { dim, nodes })
    }
}

/// One bit per dimension (`--quantization binary`): the signs `s_i = +-1` of
/// `x' = x - mean` (the mean fitted on the first batch), plus two numbers per vector,
/// `|x'|^2` and `a = mean_i |x'_i|` (the scale for which `a s` is closest to `x'`).
/// Squared L2 distances to a query (kept in f32, `q' = q - mean`) are estimated as
/// `|x'|^2 - 2 <q', s> |x'|^2 / <x', s>` (plus `|q'|^2`, the same for every node; exact
/// for the vector itself), `<q', s>` read through one 256-entry table per byte of the
/// code; between two nodes as `|x'|^2 + |y'|^2 - 2 a_x a_y (d - 2 hamming(s_x, s_y))`.
pub(crate) struct Bits {
    dim: usize,
    words: usize,
    mean: Vec<f32>,
    bits: Vec<u64>,
    /// Per node: `|x'|^2` and `a`.
    norms: Vec<[f32; 2]>,
}

/// A query in a [`Bits`] space: its tables, or a node used as a query (building).
pub(crate) struct BitsQuery {
    /// `tables[j * 256 + b]`: minus twice the sum of `q'_i` over the set bits `b` of
    /// byte `j`; empty for a node's own query.
    tables: Vec<f32>,
    /// `sum_i q'_i`.
    total: f32,
    /// The node, for a node's own query.
    node: u32,
}

impl Bits {
    #[inline(always)]
    fn word(&self, node: u32) -> &[u64] {
        let s = node as usize * self.words;
        &self.bits[s..s + self.words]
    }

    fn norms_of(&self, v: &[f32]) -> [f32; 2] {
        let (mut n2, mut abs) = (0f32, 0f32);
        for (x, m) in v.iter().zip(&self.mean) {
            let c = x - m;
            n2 += c * c;
            abs += c.abs();
        }
        [n2, abs / self.dim as f32]
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
    type Query = BitsQuery;
    const KIND: u8 = 2;
    fn empty(dim: usize, capacity: usize) -> Self {
        let words = dim.div_ceil(64);
        Bits {
            dim,
            words,
            mean: vec![0.0; dim],
            bits: Vec::with_capacity(capacity * words),
            norms: Vec::with_capacity(capacity),
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
        let n = self.norms_of(v);
        self.norms.push(n);
    }
    fn query(&self, v: &[f32]) -> BitsQuery {
        let centred: Vec<f32> = v.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        let bytes = self.words * 8;
        let mut tables = vec![0f32; bytes * 256];
        for j in 0..bytes {
            let t = &mut tables[j * 256..(j + 1) * 256];
            for b in 0..8 {
                let i = j * 8 + b;
                let w = if i < self.dim { -2.0 * centred[i] } else { 0.0 };
                // Entries with bit b set get w added: doubling fills the table.
                let step = 1usize << b;
                for e in 0..step {
                    t[e + step] = t[e] + w;
                }
            }
        }
        BitsQuery {
            tables,
            total: centred.iter().sum(),
            node: 0,
        }
    }
    fn node_query(&self, node: u32) -> BitsQuery {
        BitsQuery {
            tables: Vec::new(),
            total: 0.0,
            node,
        }
    }
    #[inline(always)]
    fn dist<K: Kernel>(&self, q: &BitsQuery, node: u32) -> f32 {
        if q.tables.is_empty() {
            return self.between::<K>(q.node, node);
        }
        // <q', s> = 2 sum_{set} q'_i - total = -(total + the tables' sum).
        let mut acc = 0f32;
        for (w, word) in self.word(node).iter().enumerate() {
            let bytes = word.to_le_bytes();
            let base = w * 8 * 256;
            for (j, byte) in bytes.iter().enumerate() {
                acc += q.tables[base + j * 256 + *byte as usize];
            }
        }
        // <q', x'> ~ <q', s> |x'|^2 / <x', s>: exact when q is x itself (so a stored
        // vector finds itself), as in RaBitQ's estimator.
        let [n2, a] = self.norms[node as usize];
        let scale = if a > 0.0 {
            n2 / (self.dim as f32 * a)
        } else {
            0.0
        };
        n2 + 2.0 * scale * (q.total + acc)
    }
    #[inline(always)]
    fn between<K: Kernel>(&self, a: u32, b: u32) -> f32 {
        let ham = K::hamming(self.word(a), self.word(b));
        let ([na, aa], [nb, ab]) = (self.norms[a as usize], self.norms[b as usize]);
        (na + nb - 2.0 * aa * ab * (self.dim as f32 - 2.0 * ham)).max(0.0)
    }
    #[inline(always)]
    fn addr(&self, node: u32) -> *const u8 {
        self.bits.as_ptr().wrapping_add(node as usize * self.words) as *const u8
    }
    fn node_bytes(dim: usize) -> usize {
        8 * dim.div_ceil(64) + 8
    }
    fn param_bytes(dim: usize) -> usize {
        4 * dim
    }
    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(bytemuck::cast_slice(&self.mean))?;
        w.write_all(bytemuck::cast_slice(&self.bits))?;
        w.write_all(bytemuck::cast_slice(&self.norms))
    }
    fn read(r: &mut dyn Read, dim: usize, n: usize) -> Result<Self, String> {
        let words = dim.div_ceil(64);
        let mean = read_f32s(r, dim)?;
        let mut bits = vec![0u64; n * words];
        r.read_exact(bytemuck::cast_slice_mut(&mut bits))
            .map_err(|e| format!("truncated ({e})"))?;
        let flat = read_f32s(r, 2 * n)?;
        let norms = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        Ok(Bits {
            dim,
            words,
            mean,
            bits,
            norms,
        })
    }
}
