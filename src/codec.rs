//! Byte encodings of everything stored in redb, kept in one place so the format can
//! change behind a schema version.
//!
//! * Structured records (collections, samples, patch geometry, snapshot manifests,
//!   spots, models) are bincode 2 (standard config) over serde followed by a CRC-32 of
//!   those bytes (schema 2; schema-1 stores had no record CRC and are migrated when
//!   opened for writing), so a damaged record is reported, never decoded into a wrong
//!   value.
//! * Vectors are raw little-endian `f32` followed by a CRC-32 of those bytes, so a
//!   damaged page is reported instead of silently returning a wrong vector.

use serde::{Serialize, de::DeserializeOwned};

/// Version of the on-disk schema written by this build. Bump on any change to the
/// tables or encodings below; the store refuses to open other versions.
pub const SCHEMA_VERSION: u32 = 2;

/// The schema before record checksums; such stores are migrated in place by a writer.
pub const SCHEMA_V1: u32 = 1;

/// Encode a serde value with the store's bincode configuration and a CRC-32 trailer.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("bincode encoding of in-memory values cannot fail");
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a serde value written by [`encode`]; `None` when the checksum is wrong or
/// the bytes are not a valid encoding.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    decode_unchecked(strip_crc(bytes)?)
}

/// The body of a record written by [`encode`], `None` when its CRC-32 is wrong.
pub fn strip_crc(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 4 {
        return None;
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(trailer.try_into().expect("4 bytes"));
    (crc32fast::hash(body) == crc).then_some(body)
}

/// A schema-1 record (no CRC) with the CRC-32 trailer of schema 2 added.
pub fn add_crc(v1: &[u8]) -> Vec<u8> {
    let mut out = v1.to_vec();
    out.extend_from_slice(&crc32fast::hash(v1).to_le_bytes());
    out
}

/// Decode bincode bytes without a checksum (schema-1 records, during migration).
pub fn decode_unchecked<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    // bincode allocates collection lengths read from the bytes only as it fills them,
    // and a length beyond the remaining bytes fails with UnexpectedEnd.
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((v, used)) if used == bytes.len() => Some(v),
        _ => None,
    }
}

/// Encode a vector as little-endian f32 bytes plus a CRC-32 trailer.
pub fn encode_vector(v: &[f32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(v.len() * 4 + 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Decode a vector written by [`encode_vector`] into `out`; `false` when the length
/// or checksum is wrong.
pub fn decode_vector(bytes: &[u8], dim: usize, out: &mut Vec<f32>) -> bool {
    if bytes.len() != dim * 4 + 4 {
        return false;
    }
    let (body, trailer) = bytes.split_at(dim * 4);
    let crc = u32::from_le_bytes(trailer.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return false;
    }
    out.clear();
    out.extend(
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_roundtrip_and_damage_detection() {
        let v = vec![1.0f32, -2.5, 3.25];
        let mut bytes = Vec::new();
        encode_vector(&v, &mut bytes);
        let mut back = Vec::new();
        assert!(decode_vector(&bytes, 3, &mut back));
        assert_eq!(back, v);
        assert!(!decode_vector(&bytes, 2, &mut back), "wrong dim accepted");
        bytes[5] ^= 0x40;
        assert!(!decode_vector(&bytes, 3, &mut back), "flipped bit accepted");
    }

    #[test]
    fn records_roundtrip_and_reject_trailing_bytes() {
        let value = (String::from("sample"), 7u64, [1i64, 2, 3]);
        let bytes = encode(&value);
        assert_eq!(
            decode::<(String, u64, [i64; 3])>(&bytes),
            Some(value.clone())
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode::<(String, u64, [i64; 3])>(&longer), None);
        // Every single-bit flip of the record is detected.
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert_eq!(decode::<(String, u64, [i64; 3])>(&b), None, "bit {i}");
        }
        // A schema-1 record becomes a schema-2 record by adding its CRC.
        let v1 = strip_crc(&bytes).unwrap();
        assert_eq!(add_crc(v1), bytes);
    }
}
