//! Byte encodings of everything stored in redb, kept in one place so the format can
//! change behind a schema version.
//!
//! * Structured records (collections, samples, patch geometry, snapshot manifests,
//!   spots, models) are bincode 2 (standard config) over serde followed by a CRC-32 of
//!   those bytes (schema 2; schema-1 stores had no record CRC and are migrated when
//!   opened for writing), so a damaged record is reported, never decoded into a wrong
//!   value.
//! * Vectors (and predictions) are raw little-endian `f32` followed by a CRC-32 of
//!   their `(collection, id)` key and those bytes, and patch records are bincode with
//!   the same keyed CRC, so a damaged value, or a value found under a damaged key, is
//!   reported instead of silently returning a wrong vector or id.

use serde::{Serialize, de::DeserializeOwned};

/// Version of the on-disk format written by this build. Bump on any change to the
/// tables or encodings below (and add a migration and an old-store test fixture). A
/// new table alone is not such a change when readers treat it as absent in older
/// stores and older builds ignore it (`readouts`, `sample_images`): it needs a test
/// that a store without it still answers, not a bump.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format this build opens (older and newer ones are refused with
/// [`crate::Error::Version`]); stores older than [`FORMAT_VERSION`] are migrated in
/// place by the first writer that opens them.
pub const OLDEST_SUPPORTED: u32 = SCHEMA_V1;

/// The schema before record checksums; such stores are migrated in place by a writer.
pub const SCHEMA_V1: u32 = 1;

/// The schema with vectors as redb values (before packed files); migrated in place by
/// a writer.
pub const SCHEMA_V2: u32 = 2;

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

/// A `(collection id, vector id)` key as the bytes its value's CRC-32 covers, so a value
/// found under another key (a damaged key, a misdirected page) fails its check.
pub type Key = (u32, u64);

fn keyed_crc(key: Key, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&key.0.to_le_bytes());
    h.update(&key.1.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// True when `bytes` is a body followed by the CRC-32 of `key` and that body.
pub fn keyed_crc_ok(key: Key, bytes: &[u8]) -> bool {
    if bytes.len() < 4 {
        return false;
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    u32::from_le_bytes(trailer.try_into().expect("4 bytes")) == keyed_crc(key, body)
}

/// Encode a record stored under `key` (patch records): bincode + CRC-32 of key and body.
pub fn encode_at<T: Serialize>(key: Key, value: &T) -> Vec<u8> {
    let mut out = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("bincode encoding of in-memory values cannot fail");
    let crc = keyed_crc(key, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a record written by [`encode_at`] under `key`.
pub fn decode_at<T: DeserializeOwned>(key: Key, bytes: &[u8]) -> Option<T> {
    if !keyed_crc_ok(key, bytes) {
        return None;
    }
    decode_unchecked(&bytes[..bytes.len() - 4])
}

/// A schema-1 value under `key` rewritten for schema 2: `body` (without any old CRC)
/// followed by the keyed CRC-32.
pub fn add_keyed_crc(key: Key, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&keyed_crc(key, body).to_le_bytes());
    out
}

/// Encode the vector stored under `key` as little-endian f32 bytes plus a CRC-32 of
/// the key and those bytes.
pub fn encode_vector(key: Key, v: &[f32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(v.len() * 4 + 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    let crc = keyed_crc(key, out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Decode the vector written by [`encode_vector`] under `key` into `out`; `false` when
/// the length or checksum is wrong (or the value belongs to another key).
pub fn decode_vector(key: Key, bytes: &[u8], dim: usize, out: &mut Vec<f32>) -> bool {
    if bytes.len() != dim * 4 + 4 || !keyed_crc_ok(key, bytes) {
        return false;
    }
    let body = &bytes[..dim * 4];
    out.clear();
    out.extend(
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
    );
    true
}

/// `v` as JSON text with every object's keys sorted: the same bytes whatever the
/// `serde_json` features of the build (`preserve_order`, which a dependency may turn
/// on, keeps insertion order instead). For what is hashed into fingerprints.
pub(crate) fn canonical_json(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_roundtrip_and_damage_detection() {
        let v = vec![1.0f32, -2.5, 3.25];
        let mut bytes = Vec::new();
        encode_vector((1, 7), &v, &mut bytes);
        let mut back = Vec::new();
        assert!(decode_vector((1, 7), &bytes, 3, &mut back));
        assert_eq!(back, v);
        assert!(
            !decode_vector((1, 7), &bytes, 2, &mut back),
            "wrong dim accepted"
        );
        assert!(
            !decode_vector((1, 8), &bytes, 3, &mut back),
            "other key accepted"
        );
        assert!(
            !decode_vector((2, 7), &bytes, 3, &mut back),
            "other collection accepted"
        );
        bytes[5] ^= 0x40;
        assert!(
            !decode_vector((1, 7), &bytes, 3, &mut back),
            "flipped bit accepted"
        );
        // Keyed records: the same value under another key fails.
        let r = encode_at((3, 9), &("s".to_string(), [1i64, 2, 3]));
        assert!(decode_at::<(String, [i64; 3])>((3, 9), &r).is_some());
        assert!(decode_at::<(String, [i64; 3])>((3, 10), &r).is_none());
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
