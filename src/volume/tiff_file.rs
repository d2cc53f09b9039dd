//! The multi-page TIFF reader: one page per slice, every page checked when opened.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::{Dtype, IntensityRange, Slice, VolumeInfo, VolumeSource, apply_scale, scale};
use crate::error::{Error, Result};

/// A multi-page TIFF, one page per slice, all pages of one size and type.
pub struct TiffVolume {
    info: VolumeInfo,
    path: PathBuf,
    decoder: tiff::decoder::Decoder<BufReader<File>>,
    range: IntensityRange,
}

/// Decoder limits from the memory budget (an IFD value, e.g. a strip-offset list, is
/// bounded by the file it comes from, at most 256 MiB).
pub(crate) fn tiff_limits() -> tiff::decoder::Limits {
    let budget = usize::try_from(crate::limits::memory_budget()).unwrap_or(usize::MAX);
    let mut l = tiff::decoder::Limits::default();
    l.decoding_buffer_size = budget;
    l.intermediate_buffer_size = budget;
    l.ifd_value_size = 256 << 20;
    l
}

fn tiff_err(path: &Path, page: usize, e: tiff::TiffError) -> Error {
    Error::bad_file(
        path,
        format!("TIFF page {page}: {e} (truncated or damaged file?)"),
    )
}

pub(super) fn tiff_kind(path: &Path, page: usize, ct: tiff::ColorType) -> Result<(usize, Dtype)> {
    use tiff::ColorType as C;
    Ok(match ct {
        C::Gray(8) => (1, Dtype::U8),
        C::Gray(16) => (1, Dtype::U16),
        C::Gray(32) => (1, Dtype::F32),
        C::RGB(8) => (3, Dtype::U8),
        C::RGB(16) => (3, Dtype::U16),
        other => {
            return Err(Error::bad_file(
                path,
                format!(
                    "TIFF page {page}: pixel type {other:?} is not supported (use 8/16-bit gray or RGB, or 32-bit float gray)"
                ),
            ));
        }
    })
}

impl TiffVolume {
    /// Open a multi-page TIFF and check every page: same size and type, and every strip
    /// or tile inside the file (a truncated file fails here, before any ingest).
    pub fn open(path: &Path, range: IntensityRange) -> Result<TiffVolume> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut d = tiff::decoder::Decoder::new(BufReader::new(f))
            .map_err(|e| tiff_err(path, 0, e))?
            .with_limits(tiff_limits());
        let mut page = 0usize;
        let mut first: Option<((u32, u32), usize, Dtype)> = None;
        loop {
            let dims = d.dimensions().map_err(|e| tiff_err(path, page, e))?;
            let ct = d.colortype().map_err(|e| tiff_err(path, page, e))?;
            let (c, dt) = tiff_kind(path, page, ct)?;
            // A page is decoded whole (its samples, then as f32): bound it first.
            crate::limits::alloc_bytes(
                &path.display().to_string(),
                &[dims.0 as u64, dims.1 as u64],
                (c * (dt.bytes() + 8)) as u64,
                &format!("TIFF page {page} ({} x {} pixels)", dims.0, dims.1),
            )?;
            if dims.0 == 0 || dims.1 == 0 {
                return Err(Error::bad_file(
                    path,
                    format!("TIFF page {page} is empty ({} x {})", dims.0, dims.1),
                ));
            }
            if page >= 1 << 20 {
                return Err(Error::bad_file(path, "more than 2^20 pages"));
            }
            match first {
                None => first = Some((dims, c, dt)),
                Some((d0, c0, t0)) if (d0, c0, t0) != (dims, c, dt) => {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "slices of different sizes or types: page 0 is {}x{} ({c0} channel(s), {t0:?}), page {page} is {}x{} ({c} channel(s), {dt:?})",
                            d0.0, d0.1, dims.0, dims.1
                        ),
                    ));
                }
                _ => {}
            }
            check_chunks_in_file(&mut d, path, &format!("page {page}"), len)?;
            page += 1;
            if !d.more_images() {
                break;
            }
            d.next_image().map_err(|e| tiff_err(path, page, e))?;
        }
        let ((w, h), c, dtype) = first.expect("at least one page");
        d.seek_to_image(0).map_err(|e| tiff_err(path, 0, e))?;
        Ok(TiffVolume {
            info: VolumeInfo {
                shape: [page, h as usize, w as usize],
                channels: c,
                dtype,
                source: path.display().to_string(),
                files: vec![path.to_path_buf()],
                intensity_range: range,
                content: None,
            },
            path: path.to_path_buf(),
            decoder: d,
            range,
        })
    }
}

/// Every strip or tile of the current IFD of `d` lies inside the file of `len` bytes
/// (a truncated file fails here, before any ingest); `what` names the IFD.
pub(super) fn check_chunks_in_file<R: std::io::Read + std::io::Seek>(
    d: &mut tiff::decoder::Decoder<R>,
    path: &Path,
    what: &str,
    len: u64,
) -> Result<()> {
    use tiff::tags::Tag;
    let terr = |e| {
        Error::bad_file(
            path,
            format!("TIFF {what}: {e} (truncated or damaged file?)"),
        )
    };
    let off = match d
        .find_tag_unsigned_vec::<u64>(Tag::StripOffsets)
        .map_err(terr)?
    {
        Some(v) => Some(v),
        None => d
            .find_tag_unsigned_vec::<u64>(Tag::TileOffsets)
            .map_err(terr)?,
    };
    let cnt = match d
        .find_tag_unsigned_vec::<u64>(Tag::StripByteCounts)
        .map_err(terr)?
    {
        Some(v) => Some(v),
        None => d
            .find_tag_unsigned_vec::<u64>(Tag::TileByteCounts)
            .map_err(terr)?,
    };
    let (Some(off), Some(cnt)) = (off, cnt) else {
        return Err(Error::bad_file(
            path,
            format!("TIFF {what} has no strip or tile offsets"),
        ));
    };
    if off.len() != cnt.len() {
        return Err(Error::bad_file(
            path,
            format!(
                "TIFF {what}: {} data offsets but {} byte counts",
                off.len(),
                cnt.len()
            ),
        ));
    }
    for (o, n) in off.iter().zip(&cnt) {
        if o.checked_add(*n).is_none_or(|end| end > len) {
            return Err(Error::bad_file(
                path,
                format!(
                    "truncated: {what} has data at bytes {o}..{} but the file is {len} bytes",
                    o.saturating_add(*n)
                ),
            ));
        }
    }
    Ok(())
}

fn decode_to_planar(
    r: tiff::decoder::DecodingResult,
    c: usize,
    h: usize,
    w: usize,
    dtype: Dtype,
    range: IntensityRange,
) -> Option<Vec<f32>> {
    use tiff::decoder::DecodingResult as D;
    let (lo, hi) = scale(dtype, range);
    let clamp = range.is_some();
    let vals: Vec<f32> = match r {
        D::U8(v) => v.into_iter().map(|x| x as f32).collect(),
        D::U16(v) => v.into_iter().map(|x| x as f32).collect(),
        D::F32(v) => v,
        _ => return None,
    };
    if vals.len() != c * h * w {
        return None;
    }
    let mut out = vec![0f32; c * h * w];
    for (i, v) in vals.into_iter().enumerate() {
        out[(i % c) * h * w + i / c] = apply_scale(v, lo, hi, clamp);
    }
    Some(out)
}

impl VolumeSource for TiffVolume {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        self.info.check_slice(z)?;
        let [_, h, w] = self.info.shape;
        self.decoder
            .seek_to_image(z)
            .map_err(|e| tiff_err(&self.path, z, e))?;
        let r = self
            .decoder
            .read_image()
            .map_err(|e| tiff_err(&self.path, z, e))?;
        let c = self.info.channels;
        let data = decode_to_planar(r, c, h, w, self.info.dtype, self.range).ok_or_else(|| {
            Error::bad_file(
                &self.info.source,
                format!("page {z}: unexpected pixel data"),
            )
        })?;
        Ok(Slice {
            channels: c,
            h,
            w,
            data,
        })
    }
}
