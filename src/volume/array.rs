//! A volume held in memory: any byte buffer (a NumPy array handed over by the Python
//! package without a copy, a `Vec<u8>`, a memory map) read slice by slice like a file.

use sha2::{Digest, Sha256};

use super::{Dtype, IntensityRange, Slice, VolumeInfo, VolumeSource, check_range, decode_slice};
use crate::error::{Error, Result};

/// A C-ordered volume in memory: elements of `dtype` in native byte order, shape
/// (Z, Y, X) or (Z, Y, X, C) with C = 1 or 3. Its ingest fingerprint is a SHA-256 of
/// the shape, dtype and every byte (computed once, when constructed), so re-ingesting
/// the same array resumes and a different array under the same sample id is refused.
pub struct ArrayVolume<B> {
    info: VolumeInfo,
    data: B,
}

impl<B: AsRef<[u8]> + Send> ArrayVolume<B> {
    /// Wrap `data` (validated: shape, length, intensity range). `name` names the
    /// source in messages (`"array"`, a variable name).
    pub fn new(
        data: B,
        shape: &[usize],
        dtype: Dtype,
        name: &str,
        range: IntensityRange,
    ) -> Result<Self> {
        check_range(range)?;
        let bad = |m: String| Error::bad_input(name, m);
        let (dims, channels) = match shape {
            [z, y, x] => ([*z, *y, *x], 1),
            [z, y, x, c] if *c == 1 || *c == 3 => ([*z, *y, *x], *c),
            _ => {
                return Err(bad(format!(
                    "shape {shape:?} is not a volume; expected (Z, Y, X) or (Z, Y, X, C) with C = 1 or 3"
                )));
            }
        };
        if dims.contains(&0) {
            return Err(bad(format!("empty volume, shape {shape:?}")));
        }
        let dims64: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let need = crate::limits::checked_bytes(name, &dims64, (channels * dtype.bytes()) as u64)?;
        let have = data.as_ref().len() as u64;
        if have != need {
            return Err(bad(format!(
                "shape {shape:?} of {dtype:?} needs {need} bytes, the buffer has {have}"
            )));
        }
        let mut h = Sha256::new();
        h.update(format!("{shape:?}{dtype:?}").as_bytes());
        h.update(data.as_ref());
        let content: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(ArrayVolume {
            info: VolumeInfo {
                shape: dims,
                channels,
                dtype,
                source: name.to_string(),
                files: Vec::new(),
                intensity_range: range,
                content: Some(content),
            },
            data,
        })
    }
}

impl<B: AsRef<[u8]> + Send> VolumeSource for ArrayVolume<B> {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        self.info.check_slice(z)?;
        let [_, h, w] = self.info.shape;
        let bytes = h * w * self.info.channels * self.info.dtype.bytes();
        let buf = &self.data.as_ref()[z * bytes..(z + 1) * bytes];
        decode_slice(buf, &self.info, cfg!(target_endian = "big"), z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slices_like_a_file_and_rejects_bad_shapes() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let mut v = ArrayVolume::new(data.clone(), &[2, 3, 4], Dtype::U8, "a", None).unwrap();
        let s = v.read_slice(1).unwrap();
        assert_eq!((s.h, s.w, s.channels), (3, 4, 1));
        assert!((s.data[0] - 12.0 / 255.0).abs() < 1e-7);
        assert!(v.read_slice(2).is_err());
        let short = ArrayVolume::new(data[..20].to_vec(), &[2, 3, 4], Dtype::U8, "a", None);
        assert!(matches!(short, Err(Error::BadInput { ref what, .. }) if what == "a"));
        assert!(ArrayVolume::new(data.clone(), &[24], Dtype::U8, "a", None).is_err());
        assert!(ArrayVolume::new(data.clone(), &[2, 3, 4, 1], Dtype::U8, "a", None).is_ok());
        // The content digest changes with any byte.
        let mut other = data.clone();
        other[23] ^= 1;
        let w = ArrayVolume::new(other, &[2, 3, 4], Dtype::U8, "a", None).unwrap();
        assert_ne!(v.info().content, w.info().content);
        let f = [f32::NAN, 0.0, 0.0, 0.0];
        let mut nan = ArrayVolume::new(
            bytemuck::cast_slice::<f32, u8>(&f).to_vec(),
            &[1, 2, 2],
            Dtype::F32,
            "a",
            None,
        )
        .unwrap();
        assert!(nan.read_slice(0).is_err());
    }
}
