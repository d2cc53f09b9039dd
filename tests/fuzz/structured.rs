//! Format-aware mutations: each knows just enough of its format to change the fields a
//! parser sizes its work by (an NPY shape, TIFF IFD values, PNG IHDR, JPEG SOF, JSON
//! numbers, table cells, the Parquet footer, the HNSW snapshot header and links) and
//! to repair the checksums in front of them (PNG chunk CRCs, the snapshot footer), so
//! that the parser gets past its first line of defence.

use crate::images::{jpeg, png};
use crate::mutate::{Rng, interesting_int, mutate_generic, mutate_range, put_int};
use crate::text::{gz, json, table};

/// The layout of a fuzzed file, which picks its structured mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmt {
    /// NumPy `.npy`.
    Npy,
    /// Classic TIFF (little- or big-endian).
    Tiff,
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// JSON text.
    Json,
    /// A delimited text table (`b' '` splits on whitespace, for MatrixMarket).
    Table(u8),
    /// A gzip-compressed delimited text table.
    Gz(u8),
    /// Apache Parquet.
    Parquet,
    /// A vortexdb HNSW graph snapshot (`graph.vxh`).
    Snapshot,
    /// HDF5.
    Hdf5,
    /// A store's page-structured files (`vortex.redb`, a packed vector file): whole
    /// 4 KiB pages zeroed, copied over others or cut off.
    Pages,
}

/// Mutate `data` (a file of format `fmt`): half the time one or two structured
/// mutations, then (or else) one to four generic ones.
pub fn mutate(rng: &mut Rng, fmt: Fmt, data: &mut Vec<u8>, other: &[u8]) {
    if rng.chance(1, 2) {
        let n = 1 + rng.below(2);
        let mut done = false;
        for _ in 0..n {
            done |= structured(rng, fmt, data, other);
        }
        if done && rng.chance(2, 3) {
            return;
        }
    }
    mutate_generic(rng, data, other);
}

/// One structured mutation; false when the input is too damaged to find its fields.
pub fn structured(rng: &mut Rng, fmt: Fmt, data: &mut Vec<u8>, other: &[u8]) -> bool {
    match fmt {
        Fmt::Npy => npy(rng, data),
        Fmt::Tiff => tiff(rng, data),
        Fmt::Png => png(rng, data, other),
        Fmt::Jpeg => jpeg(rng, data, other),
        Fmt::Json => json(rng, data),
        Fmt::Table(d) => table(rng, data, d),
        Fmt::Gz(d) => gz(rng, data, d, other),
        Fmt::Parquet => parquet(rng, data, other),
        Fmt::Snapshot => snapshot(rng, data, other),
        Fmt::Hdf5 => hdf5(rng, data),
        Fmt::Pages => pages(rng, data),
    }
}

// --- NPY ---------------------------------------------------------------------------

/// An NPY `shape` tuple meant to hurt: huge, zero, negative, unparsable or many dims.
fn evil_shape(rng: &mut Rng) -> String {
    const FIXED: [&str; 10] = [
        "()", "(0,)", "(,)", "(-1, 4)", "(3, 4", "(1e3, 4)", "(2L, 3L)", "( , )", "(None,)",
        "[3, 4]",
    ];
    if rng.chance(1, 5) {
        return rng.pick(&FIXED).to_string();
    }
    const DIMS: [&str; 20] = [
        "0",
        "1",
        "2",
        "3",
        "4",
        "7",
        "64",
        "255",
        "65536",
        "65537",
        "2147483647",
        "4294967295",
        "4294967296",
        "4611686018427387904",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "-3",
        "46341",
        "1048576",
    ];
    let n = rng.below(10);
    let dims: Vec<String> = (0..n)
        .map(|_| {
            if rng.chance(1, 3) {
                (1 + rng.below(8)).to_string()
            } else {
                rng.pick(&DIMS).to_string()
            }
        })
        .collect();
    match n {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// Where the header of an NPY file is: (version, length-field width, header start).
fn npy_header(data: &[u8]) -> Option<(u8, usize, usize, usize)> {
    if data.len() < 10 || &data[..6] != b"\x93NUMPY" {
        return None;
    }
    let (w, start) = if data[6] == 1 { (2, 10) } else { (4, 12) };
    if data.len() < start {
        return None;
    }
    let hlen = if w == 2 {
        u16::from_le_bytes([data[8], data[9]]) as usize
    } else {
        u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize
    };
    Some((data[6], w, start, hlen.min(data.len() - start)))
}

/// Replace the value after `'key':` up to the end of that value (a quoted string, a
/// parenthesised tuple, or a bare word).
fn replace_field(h: &str, key: &str, value: &str) -> Option<String> {
    let i = h.find(&format!("'{key}'"))?;
    let colon = i + key.len() + 2 + h[i + key.len() + 2..].find(':')?;
    let rest = &h[colon + 1..];
    let lead = rest.len() - rest.trim_start().len();
    let v0 = colon + 1 + lead;
    let t = &h[v0..];
    let end = if let Some(s) = t.strip_prefix('\'') {
        s.find('\'').map(|j| j + 2)?
    } else if t.starts_with('(') || t.starts_with('[') {
        let close = if t.starts_with('(') { ')' } else { ']' };
        t.find(close).map(|j| j + 1)?
    } else {
        t.find([',', '}']).unwrap_or(t.len())
    };
    Some(format!("{}{}{}", &h[..v0], value, &h[v0 + end..]))
}

fn npy(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    let Some((version, w, start, hlen)) = npy_header(data) else {
        return false;
    };
    let h = String::from_utf8_lossy(&data[start..start + hlen]).to_string();
    let new = match rng.below(7) {
        0..=2 => replace_field(&h, "shape", &evil_shape(rng)),
        3 => {
            const DESCR: [&str; 18] = [
                "'<f4'",
                "'>f4'",
                "'|u1'",
                "'<u1'",
                "'<u2'",
                "'>u2'",
                "'<f8'",
                "'<i8'",
                "'|b1'",
                "'<c8'",
                "'|O'",
                "'<U10'",
                "'|S0'",
                "'|V8'",
                "'<f2'",
                "[('a', '<f4')]",
                "'x'",
                "'<f4",
            ];
            {
                let d = *rng.pick(&DESCR);
                replace_field(&h, "descr", d)
            }
        }
        4 => {
            let v = *rng.pick(&["True", "False", "1", "", "None"]);
            replace_field(&h, "fortran_order", v)
        }
        5 => {
            // The length field itself, not repaired.
            let v = interesting_int(rng);
            put_int(data, 8, w, v, false);
            return true;
        }
        _ => {
            data[6] = *rng.pick(&[0u8, 1, 2, 3, 4, 255]);
            return true;
        }
    };
    let Some(mut new) = new else {
        return false;
    };
    // Re-pad as numpy does (total header a multiple of 64, ending in '\n'), mostly.
    if rng.chance(9, 10) {
        let body = new.trim_end().to_string();
        let pad = (64 - (start + body.len() + 1) % 64) % 64;
        new = format!("{body}{}\n", " ".repeat(pad));
    }
    let mut out = data[..start].to_vec();
    if version == 1 && new.len() > u16::MAX as usize {
        return false;
    }
    put_int(&mut out, 8, w, new.len() as u64, false);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&data[start + hlen..]);
    *data = out;
    true
}

// --- TIFF --------------------------------------------------------------------------

fn rd(data: &[u8], at: usize, width: usize, be: bool) -> Option<u64> {
    let b = data.get(at..at + width)?;
    let mut v = 0u64;
    for i in 0..width {
        let byte = if be { b[i] } else { b[width - 1 - i] };
        v = (v << 8) | byte as u64;
    }
    Some(v)
}

fn tiff_type_size(t: u64) -> usize {
    match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => 1,
    }
}

/// Values a TIFF reader sizes or dispatches by, per tag.
fn tiff_value(rng: &mut Rng, tag: u64) -> u64 {
    let v: &[u64] = match tag {
        256 | 257 | 322 | 323 => &[
            0,
            1,
            2,
            3,
            0xffff,
            0x1_0000,
            46341,
            0x7fff_ffff,
            0xffff_ffff,
            100_000,
        ],
        258 => &[0, 1, 2, 4, 8, 12, 16, 24, 32, 64, 0xffff],
        277 => &[0, 1, 2, 3, 4, 5, 255, 0xffff],
        259 => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712, 50000],
        262 => &[0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 32844],
        278 => &[0, 1, 2, 0xffff, 0xffff_ffff],
        284 => &[0, 1, 2, 3],
        339 => &[0, 1, 2, 3, 4, 5, 6],
        317 => &[0, 1, 2, 3, 4],
        _ => &[],
    };
    if !v.is_empty() && rng.chance(3, 4) {
        *rng.pick(v)
    } else {
        interesting_int(rng)
    }
}

/// Tags most readers act on: sizes, strips, tiles, sample layout, compression.
const TIFF_TAGS: [u64; 16] = [
    256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339,
];

fn tiff(rng: &mut Rng, data: &mut [u8]) -> bool {
    let be = match data.get(..2) {
        Some(b"II") => false,
        Some(b"MM") => true,
        _ => return false,
    };
    if rd(data, 2, 2, be) != Some(42) {
        return false;
    }
    // Walk the IFD chain, collecting entry positions and next-IFD pointer positions.
    let mut entries = Vec::new();
    let mut nexts = vec![4usize];
    let mut counts = Vec::new();
    let mut off = rd(data, 4, 4, be).unwrap_or(0) as usize;
    let mut seen = std::collections::HashSet::new();
    while off != 0 && seen.insert(off) && seen.len() <= 64 {
        let Some(n) = rd(data, off, 2, be) else { break };
        counts.push(off);
        for i in 0..n as usize {
            let e = off + 2 + 12 * i;
            if e + 12 > data.len() {
                break;
            }
            entries.push(e);
        }
        let nx = off + 2 + 12 * n as usize;
        match rd(data, nx, 4, be) {
            Some(v) => {
                nexts.push(nx);
                off = v as usize;
            }
            None => break,
        }
    }
    if entries.is_empty() {
        return false;
    }
    // Prefer the entries readers size their work by.
    let e = {
        let good: Vec<usize> = entries
            .iter()
            .copied()
            .filter(|&e| TIFF_TAGS.contains(&rd(data, e, 2, be).unwrap_or(0)))
            .collect();
        if !good.is_empty() && rng.chance(3, 4) {
            *rng.pick(&good)
        } else {
            *rng.pick(&entries)
        }
    };
    let tag = rd(data, e, 2, be).unwrap_or(0);
    let typ = rd(data, e + 2, 2, be).unwrap_or(0);
    let count = rd(data, e + 4, 4, be).unwrap_or(0) as usize;
    let size = tiff_type_size(typ);
    match rng.below(12) {
        0..=4 => {
            let v = tiff_value(rng, tag);
            if size.saturating_mul(count) <= 4 {
                put_int(data, e + 8, size.min(4), v, be);
            } else {
                // An array elsewhere in the file: change one element, or the offset.
                let at = rd(data, e + 8, 4, be).unwrap_or(0) as usize;
                if rng.chance(3, 4) && at < data.len() {
                    let k = rng.below(count.min(1 << 16));
                    put_int(data, at + k * size, size, v, be);
                } else {
                    put_int(data, e + 8, 4, interesting_int(rng), be);
                }
            }
        }
        5 | 6 => {
            let v = interesting_int(rng);
            put_int(data, e + 4, 4, v, be);
        }
        7 => {
            let t = rng.below(20) as u64;
            put_int(data, e + 2, 2, t, be);
        }
        8 => {
            let t = *rng.pick(&TIFF_TAGS);
            put_int(data, e, 2, t, be);
        }
        9 => {
            let at = *rng.pick(&counts);
            let v = interesting_int(rng);
            put_int(data, at, 2, v, be);
        }
        _ => {
            // A next-IFD pointer: end the chain, loop it, point into the file or past it.
            let at = *rng.pick(&nexts);
            let v = match rng.below(4) {
                0 => 0,
                1 => *rng.pick(&counts) as u64,
                2 => rng.below(data.len()) as u64,
                _ => interesting_int(rng),
            };
            put_int(data, at, 4, v, be);
        }
    }
    true
}

// --- Parquet -----------------------------------------------------------------------

fn parquet(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> bool {
    let n = data.len();
    if n < 12 || &data[n - 4..] != b"PAR1" {
        return false;
    }
    let meta_len = u32::from_le_bytes(data[n - 8..n - 4].try_into().unwrap()) as usize;
    if meta_len + 8 > n {
        return false;
    }
    let start = n - 8 - meta_len;
    match rng.below(8) {
        0 => {
            let v = interesting_int(rng);
            put_int(data, n - 8, 4, v, false);
        }
        1..=5 => {
            // The thrift footer, its length repaired.
            let mut meta = data[start..n - 8].to_vec();
            if rng.chance(1, 3) && !meta.is_empty() {
                // A long varint where a small one was: huge sizes and counts.
                let at = rng.below(meta.len());
                let mut v = vec![0xFFu8; 1 + rng.below(9)];
                v.push(0x01);
                meta.splice(at..at + 1, v);
            } else {
                mutate_generic(rng, &mut meta, &[]);
            }
            let mut out = data[..start].to_vec();
            out.extend_from_slice(&meta);
            let len = if rng.chance(9, 10) {
                meta.len() as u64
            } else {
                interesting_int(rng)
            };
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(b"PAR1");
            *data = out;
        }
        _ => {
            // Page headers and data.
            for _ in 0..1 + rng.below(3) {
                mutate_range(rng, data, other, 4, start);
            }
        }
    }
    true
}

// --- HNSW snapshot -----------------------------------------------------------------

/// Repair the snapshot footer: the CRC-32 of everything before it.
pub fn snapshot_fix_crc(data: &mut [u8]) {
    if data.len() >= 4 {
        let n = data.len() - 4;
        let crc = crc32fast::hash(&data[..n]);
        data[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Damage a page-structured file a page at a time, as a failing disk or a torn write
/// does: zero a page, copy one page over another, cut the file at a page boundary.
fn pages(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    const PAGE: usize = 4096;
    let n = data.len() / PAGE;
    if n == 0 {
        return false;
    }
    let p = rng.below(n);
    match rng.below(3) {
        0 => data[p * PAGE..(p + 1) * PAGE].fill(0),
        1 => {
            let q = rng.below(n);
            let page = data[q * PAGE..(q + 1) * PAGE].to_vec();
            data[p * PAGE..(p + 1) * PAGE].copy_from_slice(&page);
        }
        _ => data.truncate(p * PAGE),
    }
    true
}

fn snapshot(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> bool {
    if data.len() < 52 {
        return false;
    }
    let u32_at = |d: &[u8], at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap());
    let n = u64::from_le_bytes(data[24..32].try_into().unwrap()).min(1 << 20) as usize;
    let m0 = u32_at(data, 16) as usize;
    let l0 = 48 + 9 * n;
    let l0_end = (l0 + n * (m0 + 1) * 4).min(data.len().saturating_sub(4));
    match rng.below(10) {
        0..=2 => {
            let (at, w) = *rng.pick(&[(8, 4), (12, 4), (16, 4), (20, 4), (24, 8), (40, 8)]);
            let v = interesting_int(rng);
            put_int(data, at, w, v, false);
        }
        3..=5 if l0 + 4 <= l0_end => {
            // A link (or a link count) of layer 0.
            let k = rng.below((l0_end - l0) / 4);
            let v = match rng.below(5) {
                0 => n as u64,
                1 => n.saturating_sub(1) as u64,
                2 => m0 as u64 + 1,
                3 => u32::MAX as u64,
                _ => rng.below(n + 2) as u64,
            };
            put_int(data, l0 + 4 * k, 4, v, false);
        }
        6 if n > 0 && 48 + 9 * n <= data.len() => {
            let i = 48 + 8 * n + rng.below(n);
            data[i] = *rng.pick(&[0u8, 1, 2, 15, 16, 17, 255]);
        }
        7 => {
            let e = rng.below(n + 2) as u64 | ((rng.below(18) as u64) << 32);
            put_int(data, 40, 8, e, false);
        }
        8 => {
            // NaN / infinite / huge vector components near the end.
            let hi = data.len().saturating_sub(4);
            let at = hi.saturating_sub(4 + 4 * rng.below(64)) & !3;
            let v = *rng.pick(&[f32::NAN, f32::INFINITY, -f32::INFINITY, f32::MAX, 0.0]);
            put_int(data, at, 4, v.to_bits() as u64, false);
        }
        _ => mutate_generic(rng, data, other),
    }
    if rng.chance(17, 20) {
        snapshot_fix_crc(data);
    }
    true
}

// --- HDF5 --------------------------------------------------------------------------

fn hdf5(rng: &mut Rng, data: &mut [u8]) -> bool {
    if data.len() < 64 {
        return false;
    }
    // Offsets and lengths are 8-byte, sizes and counts often 4-byte, little-endian.
    let w = *rng.pick(&[8usize, 4, 2]);
    let at = (rng.below(data.len() - 8) / w) * w;
    let v = interesting_int(rng);
    put_int(data, at, w, v, false);
    true
}
