//! Whole 2D image files (PNG, JPEG, TIFF) read safely: dimensions checked against the
//! memory budget before any pixel buffer exists, a JPEG's end marker required, PNG
//! palettes checked, and a decoder panic (third-party) turned into an error naming the
//! file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::Dtype;
use crate::error::{Error, Result};

/// Decode a whole PNG, JPEG or TIFF image with its size checked against the memory
/// budget before any pixel buffer is allocated, and a JPEG's end-of-image marker
/// required (a truncated JPEG is refused, not decoded with grey rows).
pub fn decode_image(f: &Path) -> Result<image::DynamicImage> {
    let p = f.display().to_string();
    let (w, h, c, dt) = image_header(f)?;
    let r = image::ImageReader::open(f)
        .map_err(|e| Error::io(f, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(f, e))?;
    if r.format() == Some(image::ImageFormat::Jpeg) {
        check_jpeg_end(f)?;
    }
    let mut r = r;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(crate::limits::memory_budget());
    r.limits(limits);
    let img = guard_decoder(&p, || r.decode())?
        .map_err(|e| Error::bad_file(&p, format!("cannot decode image: {e}")))?;
    if (img.width(), img.height()) != (w, h) || c == 0 || dt.bytes() == 0 {
        return Err(Error::bad_file(&p, "image changed size while reading"));
    }
    Ok(img)
}

/// Run an image decoder, turning a panic inside it into an error naming the file:
/// zune-jpeg 0.5 (the image crate's JPEG decoder) panics on some damaged progressive
/// JPEGs (an upsampling assertion) that no check of the headers can foresee.
pub(super) fn guard_decoder<T>(p: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|e| {
        let what = e
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Error::bad_file(
            p,
            format!("cannot decode image (the decoder failed: {what})"),
        )
    })
}

/// A JPEG must end with its end-of-image marker (FF D9), trailing zero padding aside.
fn check_jpeg_end(f: &Path) -> Result<()> {
    let mut file = File::open(f).map_err(|e| Error::io(f, e))?;
    let len = file.metadata().map_err(|e| Error::io(f, e))?.len();
    let tail = len.min(4096);
    file.seek(SeekFrom::Start(len - tail))
        .map_err(|e| Error::io(f, e))?;
    let mut buf = vec![0u8; tail as usize];
    file.read_exact(&mut buf).map_err(|e| Error::io(f, e))?;
    let end = buf
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    if end < 2 || buf[end - 2..end] != [0xFF, 0xD9] {
        return Err(Error::bad_file(
            f,
            "truncated JPEG: no end-of-image marker at the end of the file",
        ));
    }
    Ok(())
}

/// A PNG palette (PLTE) must hold 1 to 256 whole RGB entries: png 0.18 panics while
/// expanding one of another length, so it is refused before decoding.
fn check_png_palette(f: &Path) -> Result<()> {
    let mut r = BufReader::new(File::open(f).map_err(|e| Error::io(f, e))?);
    let mut sig = [0u8; 8];
    if r.read_exact(&mut sig).is_err() || &sig[1..4] != b"PNG" {
        return Ok(());
    }
    // Chunks before the image data (where PLTE must be); a damaged chain ends the walk
    // and is left to the decoder.
    let mut head = [0u8; 8];
    while r.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        match &head[4..8] {
            b"PLTE" if len == 0 || !len.is_multiple_of(3) || len > 768 => {
                return Err(Error::bad_file(
                    f,
                    format!("PNG palette of {len} bytes (must be 1 to 256 RGB entries)"),
                ));
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        if r.seek_relative(len as i64 + 4).is_err() {
            break;
        }
    }
    Ok(())
}

pub(crate) fn image_header(f: &Path) -> Result<(u32, u32, usize, Dtype)> {
    let p = f.display().to_string();
    let r = image::ImageReader::open(f)
        .map_err(|e| Error::io(f, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(f, e))?;
    if r.format() == Some(image::ImageFormat::Png) {
        check_png_palette(f)?;
    }
    let dec = guard_decoder(&p, || r.into_decoder())?
        .map_err(|e| Error::bad_file(&p, format!("cannot read image: {e}")))?;
    use image::ImageDecoder;
    let (w, h) = dec.dimensions();
    // Decoded as 16-bit RGBA at most, then converted to f32 planes.
    crate::limits::alloc_bytes(
        &p,
        &[w as u64, h as u64],
        8 + 12,
        &format!("decoding this {w} x {h} image"),
    )?;
    let (c, dt) = match dec.color_type() {
        image::ColorType::L8 | image::ColorType::La8 => (1, Dtype::U8),
        image::ColorType::L16 | image::ColorType::La16 => (1, Dtype::U16),
        image::ColorType::Rgb8 | image::ColorType::Rgba8 => (3, Dtype::U8),
        image::ColorType::Rgb16 | image::ColorType::Rgba16 => (3, Dtype::U16),
        image::ColorType::Rgb32F | image::ColorType::Rgba32F => (3, Dtype::F32),
        other => {
            return Err(Error::bad_file(
                &p,
                format!("pixel type {other:?} is not supported"),
            ));
        }
    };
    if w == 0 || h == 0 {
        return Err(Error::bad_file(&p, "empty image"));
    }
    Ok((w, h, c, dt))
}
