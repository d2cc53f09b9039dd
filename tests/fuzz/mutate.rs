//! Format-agnostic mutations: a deterministic PRNG and the byte-level operators every
//! target shares (bit flips, interesting bytes and integers, truncation, chunk
//! duplication and deletion, random insertion, splicing two seeds).

/// Largest input the mutators grow an input to.
pub const MAX_INPUT: usize = 1 << 20;

/// xorshift64* (Vigna): fast, deterministic, good enough to drive mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from any seed (zero is remapped, xorshift must not start at 0).
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        if r.0 == 0 {
            r.0 = 1;
        }
        for _ in 0..4 {
            r.next();
        }
        r
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u32, den: u32) -> bool {
        (self.next() % den as u64) < num as u64
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// FNV-1a, for per-target seeds and outcome keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Byte values that often sit on a boundary.
pub const INTERESTING_BYTES: [u8; 4] = [0, 0xff, 0x7f, 0x80];

/// Integers that often sit on a boundary (as u64; `u64::MAX` is also -1).
pub const INTERESTING_INTS: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x1_0000,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];

/// A boundary integer, sometimes a small or a random one.
pub fn interesting_int(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 => rng.below(16) as u64,
        1 => rng.next(),
        _ => *rng.pick(&INTERESTING_INTS),
    }
}

/// Write the low `width` bytes of `v` at `at` (little- or big-endian), clipped to `data`.
pub fn put_int(data: &mut [u8], at: usize, width: usize, v: u64, big_endian: bool) {
    let bytes = if big_endian {
        v.to_be_bytes()[8 - width..].to_vec()
    } else {
        v.to_le_bytes()[..width].to_vec()
    };
    for (i, b) in bytes.into_iter().enumerate() {
        if let Some(d) = data.get_mut(at + i) {
            *d = b;
        }
    }
}

/// Apply one random byte-level mutation to `data` (`other` is a second seed of the
/// same role, for splicing).
pub fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    mutate_range(rng, data, other, 0, usize::MAX);
}

/// Like [`mutate_once`], with positions drawn from `lo..hi` (clipped to the input):
/// lets a format focus mutations on its header or footer.
pub fn mutate_range(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], lo: usize, hi: usize) {
    let len = data.len();
    let hi = hi.min(len);
    let (lo, hi) = if hi > lo { (lo, hi) } else { (0, len) };
    let pos = |rng: &mut Rng| lo + rng.below(hi - lo);
    match rng.below(10) {
        // Bit flip.
        0 if len > 0 => {
            let i = pos(rng);
            data[i] ^= 1 << rng.below(8);
        }
        // Byte set to a boundary value.
        1 if len > 0 => {
            let i = pos(rng);
            data[i] = *rng.pick(&INTERESTING_BYTES);
        }
        // Random byte.
        2 if len > 0 => {
            let i = pos(rng);
            data[i] = rng.next() as u8;
        }
        // 1/2/4/8-byte integer, LE or BE, set to a boundary value.
        3 | 4 if len > 0 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let i = pos(rng);
            let v = interesting_int(rng);
            let be = rng.chance(1, 2);
            put_int(data, i, width, v, be);
        }
        // Truncation.
        5 if len > 0 => {
            let at = pos(rng);
            data.truncate(at);
        }
        // Duplicate a chunk.
        6 if len > 0 && len < MAX_INPUT => {
            let (a, n) = chunk(rng, len, lo, hi);
            let piece = data[a..a + n].to_vec();
            let at = pos(rng);
            data.splice(at..at, piece);
        }
        // Delete a chunk.
        7 if len > 0 => {
            let (a, n) = chunk(rng, len, lo, hi);
            data.drain(a..a + n);
        }
        // Insert random bytes (sometimes repeated boundary bytes).
        8 if len < MAX_INPUT => {
            let max = if rng.chance(1, 8) { 512 } else { 16 };
            let n = 1 + rng.below(max);
            let fill: Vec<u8> = if rng.chance(1, 2) {
                vec![*rng.pick(&INTERESTING_BYTES); n]
            } else {
                (0..n).map(|_| rng.next() as u8).collect()
            };
            let at = if len == 0 { 0 } else { pos(rng) };
            data.splice(at..at, fill);
        }
        // Splice: a prefix of this input and a suffix of the other seed.
        9 if !other.is_empty() => {
            let a = if len == 0 { 0 } else { rng.below(len + 1) };
            let b = rng.below(other.len());
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
            data.truncate(MAX_INPUT);
        }
        _ => {
            if len > 0 {
                let i = pos(rng);
                data[i] = data[i].wrapping_add(1 + rng.below(3) as u8);
            } else {
                data.push(rng.next() as u8);
            }
        }
    }
}

/// A random chunk `(start, len)` starting in `lo..hi`, mostly short.
fn chunk(rng: &mut Rng, len: usize, lo: usize, hi: usize) -> (usize, usize) {
    let a = if hi > lo {
        lo + rng.below(hi - lo)
    } else {
        rng.below(len)
    };
    let a = a.min(len - 1);
    let max = len - a;
    let n = if rng.chance(1, 4) {
        1 + rng.below(max)
    } else {
        1 + rng.below(max.min(32))
    };
    (a, n)
}

/// Apply 1-4 random generic mutations.
pub fn mutate_generic(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let n = 1 + rng.below(4);
    for _ in 0..n {
        mutate_once(rng, data, other);
    }
}

/// Text fields that trip number parsers, path checks and string handling.
pub const EVIL_TEXT: [&str; 24] = [
    "",
    "0",
    "-1",
    "-0",
    "1.5",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-1e309",
    "1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "2147483648",
    "9223372036854775807",
    "99999999999999999999999999999",
    "..",
    "/abs",
    "\u{1F4A5}",
    "\"",
    "a\tb",
    "0x10",
];
