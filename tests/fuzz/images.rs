//! Structured mutations of PNG (IHDR, chunk CRCs repaired, ancillary chunks,
//! recompressed scanlines) and JPEG (SOF geometry and components, tables, restart
//! intervals, entropy-coded data; the end-of-image marker kept).

use std::io::{Read, Write};

use crate::mutate::{Rng, interesting_int, mutate_generic, mutate_range, put_int};

// --- PNG ---------------------------------------------------------------------------

/// A PNG chunk: (start of the length field, data length, type).
fn png_chunks(data: &[u8]) -> Vec<(usize, usize, [u8; 4])> {
    let mut out = Vec::new();
    let mut p = 8;
    while p + 12 <= data.len() {
        let n = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        let t: [u8; 4] = data[p + 4..p + 8].try_into().unwrap();
        if p + 12 + n > data.len() {
            break;
        }
        out.push((p, n, t));
        p += 12 + n;
    }
    out
}

/// A complete chunk with its CRC.
pub fn png_chunk(t: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut c = (body.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(t);
    c.extend_from_slice(body);
    let mut h = crc32fast::Hasher::new();
    h.update(t);
    h.update(body);
    c.extend_from_slice(&h.finalize().to_be_bytes());
    c
}

pub fn png(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> bool {
    if data.len() < 8 || &data[1..4] != b"PNG" {
        return false;
    }
    let chunks = png_chunks(data);
    let Some(&(ih, ihn, _)) = chunks.iter().find(|c| &c.2 == b"IHDR" && c.1 >= 13) else {
        return false;
    };
    let rebuild = |data: &mut Vec<u8>, at: usize, n: usize, body: Vec<u8>, t: [u8; 4]| {
        let c = png_chunk(&t, &body);
        data.splice(at..at + 12 + n, c);
    };
    match rng.below(10) {
        0..=2 => {
            let mut body = data[ih + 8..ih + 8 + ihn].to_vec();
            let at = if rng.chance(1, 2) { 0 } else { 4 };
            let v = *rng.pick(&[
                0u64,
                1,
                2,
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                0xffff,
                0x1_0000,
                16384,
                46341,
            ]);
            put_int(&mut body, at, 4, v, true);
            rebuild(data, ih, ihn, body, *b"IHDR");
        }
        3 => {
            let mut body = data[ih + 8..ih + 8 + ihn].to_vec();
            let (at, vals): (usize, &[u8]) = match rng.below(3) {
                0 => (8, &[0, 1, 2, 4, 8, 16, 3, 32, 255]),
                1 => (9, &[0, 2, 3, 4, 6, 1, 5, 7, 255]),
                _ => (10 + rng.below(3), &[0, 1, 2, 255]),
            };
            body[at] = *rng.pick(vals);
            rebuild(data, ih, ihn, body, *b"IHDR");
        }
        4 | 5 => {
            // Any chunk's data, length and CRC repaired.
            let &(at, n, t) = rng.pick(&chunks);
            let mut body = data[at + 8..at + 8 + n].to_vec();
            mutate_generic(rng, &mut body, &[]);
            rebuild(data, at, n, body, t);
        }
        6 => {
            let &(at, _, _) = rng.pick(&chunks);
            let v = interesting_int(rng);
            put_int(data, at, 4, v, true);
        }
        7 => {
            // Delete or duplicate a chunk.
            let &(at, n, _) = rng.pick(&chunks);
            let c = data[at..at + 12 + n].to_vec();
            if rng.chance(1, 2) {
                data.drain(at..at + 12 + n);
            } else {
                let &(to, _, _) = rng.pick(&chunks);
                data.splice(to..to, c);
            }
        }
        8 => {
            // Ancillary chunks decoders size things by, right after IHDR.
            let u32s = |rng: &mut Rng, n: usize| -> Vec<u8> {
                (0..n)
                    .flat_map(|_| (interesting_int(rng) as u32).to_be_bytes())
                    .collect()
            };
            let (t, body): ([u8; 4], Vec<u8>) = match rng.below(6) {
                0 => (
                    *b"PLTE",
                    (0..3 * rng.below(300)).map(|_| rng.next() as u8).collect(),
                ),
                1 => (
                    *b"tRNS",
                    (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                ),
                2 => (*b"acTL", u32s(rng, 2)),
                3 => {
                    let mut b = u32s(rng, 5);
                    b.extend([0, 1, 0, 1, rng.below(4) as u8, rng.below(3) as u8]);
                    (*b"fcTL", b)
                }
                4 => (
                    *b"sBIT",
                    (0..rng.below(5)).map(|_| rng.next() as u8).collect(),
                ),
                _ => (*b"iCCP", b"x\0\0garbage".to_vec()),
            };
            let c = png_chunk(&t, &body);
            let to = ih + 12 + ihn;
            data.splice(to..to, c);
        }
        _ => {
            // Decompressed scanlines mutated and recompressed into one IDAT.
            let idat: Vec<&(usize, usize, [u8; 4])> =
                chunks.iter().filter(|c| &c.2 == b"IDAT").collect();
            if idat.is_empty() {
                return false;
            }
            let z: Vec<u8> = idat
                .iter()
                .flat_map(|&&(at, n, _)| data[at + 8..at + 8 + n].to_vec())
                .collect();
            let mut raw = Vec::new();
            let _ = flate2::read::ZlibDecoder::new(&z[..])
                .take(1 << 22)
                .read_to_end(&mut raw);
            mutate_generic(rng, &mut raw, other);
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = enc.write_all(&raw);
            let z = enc.finish().unwrap_or_default();
            let first = idat[0].0;
            let last = idat[idat.len() - 1];
            let c = png_chunk(b"IDAT", &z);
            data.splice(first..last.0 + 12 + last.1, c);
        }
    }
    true
}

// --- JPEG --------------------------------------------------------------------------

/// JPEG marker segments before the entropy-coded data: (marker position, marker, length).
fn jpeg_segments(data: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut out = Vec::new();
    let mut p = 2;
    while p + 4 <= data.len() && data[p] == 0xFF {
        let m = data[p + 1];
        if (0xD0..=0xD7).contains(&m) || m == 0x01 || m == 0xFF {
            p += if m == 0xFF { 1 } else { 2 };
            continue;
        }
        let n = u16::from_be_bytes([data[p + 2], data[p + 3]]) as usize;
        out.push((p, m, n));
        if m == 0xDA || m == 0xD9 {
            break;
        }
        p += 2 + n;
    }
    out
}

fn is_sof(m: u8) -> bool {
    (0xC0..=0xCF).contains(&m) && m != 0xC4 && m != 0xC8 && m != 0xCC
}

pub fn jpeg(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> bool {
    if data.len() < 4 || data[..2] != [0xFF, 0xD8] {
        return false;
    }
    let segs = jpeg_segments(data);
    if segs.is_empty() {
        return false;
    }
    let sofs: Vec<usize> = segs.iter().filter(|s| is_sof(s.1)).map(|s| s.0).collect();
    let find = |m: u8| -> Vec<usize> { segs.iter().filter(|s| s.1 == m).map(|s| s.0).collect() };
    let put_byte = |data: &mut Vec<u8>, at: usize, v: u8| {
        if let Some(b) = data.get_mut(at) {
            *b = v;
        }
    };
    match rng.below(11) {
        0..=2 if !sofs.is_empty() => {
            // SOF height (p + 5) or width (p + 7).
            let p = *rng.pick(&sofs);
            let at = p + if rng.chance(1, 2) { 5 } else { 7 };
            let v = *rng.pick(&[0u64, 1, 2, 0xFFFF, 0x8000, 0x4000, 0x7FFF, 9999]);
            put_int(data, at, 2, v, true);
        }
        3 if !sofs.is_empty() => {
            let p = *rng.pick(&sofs);
            match rng.below(4) {
                0 => put_byte(data, p + 4, *rng.pick(&[8, 12, 16, 0, 255])),
                1 => put_byte(data, p + 9, *rng.pick(&[0, 1, 2, 3, 4, 5, 255])),
                2 => {
                    let k = rng.below(4);
                    let v = *rng.pick(&[0x00, 0x11, 0x12, 0x21, 0x22, 0x41, 0x14, 0x44, 0xFF]);
                    put_byte(data, p + 11 + 3 * k, v)
                }
                _ => {
                    let k = rng.below(4);
                    put_byte(data, p + 12 + 3 * k, *rng.pick(&[0, 1, 3, 4, 255]))
                }
            }
        }
        4 if !sofs.is_empty() => {
            let p = *rng.pick(&sofs);
            let m = *rng.pick(&[0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC9, 0xCA, 0xCB, 0xCF]);
            put_byte(data, p + 1, m);
        }
        5 => {
            let s = rng.pick(&segs);
            let v = interesting_int(rng);
            put_int(data, s.0 + 2, 2, v, true);
        }
        6 => {
            let dht = find(0xC4);
            if dht.is_empty() {
                return false;
            }
            let p = *rng.pick(&dht);
            let at = p + 5 + rng.below(16);
            put_byte(data, at, *rng.pick(&[0, 1, 0x10, 0xFF]));
        }
        7 => {
            let dqt = find(0xDB);
            if dqt.is_empty() {
                return false;
            }
            let p = *rng.pick(&dqt);
            put_byte(data, p + 4, *rng.pick(&[0x00, 0x10, 0x04, 0xF0, 0x13]));
        }
        8 => {
            let sos = find(0xDA);
            if sos.is_empty() {
                return false;
            }
            let p = sos[0];
            let at = p + 4 + rng.below(10);
            put_byte(
                data,
                at,
                *rng.pick(&[0, 1, 2, 3, 4, 0x3F, 0x40, 0x11, 0xFF]),
            );
        }
        9 => {
            // A restart interval, or a second copy of a segment.
            let seg = if rng.chance(1, 2) || sofs.is_empty() {
                let v = *rng.pick(&[0u16, 1, 2, 0xFFFF]);
                let mut s = vec![0xFF, 0xDD, 0, 4];
                s.extend(v.to_be_bytes());
                s
            } else {
                let s = segs.iter().find(|s| s.0 == sofs[0]).expect("sof");
                data[s.0..(s.0 + 2 + s.2).min(data.len())].to_vec()
            };
            let at = rng.pick(&segs).0;
            data.splice(at..at, seg);
        }
        _ => {
            // The entropy-coded data after SOS.
            let sos = find(0xDA);
            let Some(&p) = sos.first() else { return false };
            let lo = p + 2 + segs.iter().find(|s| s.0 == p).map_or(0, |s| s.2);
            let hi = data.len().saturating_sub(2);
            if lo >= hi {
                return false;
            }
            for _ in 0..1 + rng.below(4) {
                mutate_range(rng, data, other, lo, hi);
            }
        }
    }
    true
}

/// Most mutated JPEGs keep their end-of-image marker, which `decode_image` requires.
pub fn jpeg_keep_end(rng: &mut Rng, data: &mut Vec<u8>) {
    if !data.ends_with(&[0xFF, 0xD9]) && rng.chance(9, 10) {
        data.extend([0xFF, 0xD9]);
    }
}
