//! `--make-corpus` seeds of the image targets: TIFF (encoded by the tiff crate, and
//! tiled / big-endian files built by hand), PNG (png crate) and JPEG (image crate).

use std::io::Cursor;

use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, colortype};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Writes one page into a TIFF encoder.
type PageFn<'a> = &'a dyn Fn(&mut TiffEncoder<&mut Cursor<Vec<u8>>>) -> tiff::TiffResult<()>;

/// A classic TIFF built by hand: `entries` are (tag, type, values); values that do
/// not fit in the entry go after the image data. `data` is the pixel payload, placed
/// at offset 8 (entries may refer to it).
fn tiff_by_hand(be: bool, entries: &[(u16, u16, Vec<u32>)], data: &[u8]) -> Vec<u8> {
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut out = if be {
        b"MM\0*".to_vec()
    } else {
        b"II*\0".to_vec()
    };
    out.extend([0; 4]);
    out.extend(data);
    let mut arrays = Vec::new();
    let ifd_at = |arrays_len: usize| 8 + data.len() + arrays_len;
    let mut inline = Vec::new();
    for (_, typ, vals) in entries {
        let size = if *typ == 3 { 2 } else { 4 };
        if vals.len() * size <= 4 {
            let mut v = Vec::new();
            for &x in vals {
                if size == 2 {
                    v.extend(w16(x as u16));
                } else {
                    v.extend(w32(x));
                }
            }
            v.resize(4, 0);
            inline.push(v);
        } else {
            let at = (8 + data.len() + arrays.len()) as u32;
            for &x in vals {
                if size == 2 {
                    arrays.extend(w16(x as u16));
                } else {
                    arrays.extend(w32(x));
                }
            }
            inline.push(w32(at).to_vec());
        }
    }
    out.extend(&arrays);
    let ifd = ifd_at(arrays.len()) as u32;
    out[4..8].copy_from_slice(&w32(ifd));
    out.extend(w16(entries.len() as u16));
    for ((tag, typ, vals), v) in entries.iter().zip(inline) {
        out.extend(w16(*tag));
        out.extend(w16(*typ));
        out.extend(w32(vals.len() as u32));
        out.extend(v);
    }
    out.extend([0; 4]);
    out
}

pub fn tiff_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let (w, h) = (16u32, 12u32);
    let gray: Vec<u8> = (0..w * h).map(|i| (i * 3) as u8).collect();
    let gray16: Vec<u16> = (0..w * h).map(|i| (i * 311) as u16).collect();
    let fl: Vec<f32> = (0..w * h).map(|i| i as f32 / 200.0).collect();
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 5) as u8).collect();
    let mut out = Vec::new();
    let encode = |comp: Compression, pages: usize, f: PageFn| -> Res<Vec<u8>> {
        let mut c = Cursor::new(Vec::new());
        {
            let mut e = TiffEncoder::new(&mut c)?.with_compression(comp);
            for _ in 0..pages {
                f(&mut e)?;
            }
        }
        Ok(c.into_inner())
    };
    out.push((
        "seed-gray8.tif".to_string(),
        encode(Compression::Uncompressed, 3, &|e| {
            e.write_image::<colortype::Gray8>(w, h, &gray)
        })?,
    ));
    out.push((
        "seed-gray16-lzw.tif".into(),
        encode(Compression::Lzw, 2, &|e| {
            e.write_image::<colortype::Gray16>(w, h, &gray16)
        })?,
    ));
    out.push((
        "seed-f32-deflate.tif".into(),
        encode(Compression::Deflate(DeflateLevel::Fast), 2, &|e| {
            e.write_image::<colortype::Gray32Float>(w, h, &fl)
        })?,
    ));
    out.push((
        "seed-rgb8-packbits.tif".into(),
        encode(Compression::Packbits, 2, &|e| {
            e.write_image::<colortype::RGB8>(w, h, &rgb)
        })?,
    ));
    out.push((
        "seed-strips.tif".into(),
        encode(Compression::Uncompressed, 2, &|e| {
            let mut im = e.new_image::<colortype::Gray8>(w, h)?;
            im.rows_per_strip(4)?;
            im.write_data(&gray)
        })?,
    ));
    // Tiled (2 x 2 tiles of 16 x 16), little-endian; and one big-endian strip page.
    let (tw, th) = (32u32, 24u32);
    let tiles: Vec<u8> = (0..4 * 256).map(|i| (i / 4) as u8).collect();
    let offs: Vec<u32> = (0..4).map(|k| 8 + 256 * k).collect();
    let tiled = tiff_by_hand(
        false,
        &[
            (256, 3, vec![tw]),
            (257, 3, vec![th]),
            (258, 3, vec![8]),
            (259, 3, vec![1]),
            (262, 3, vec![1]),
            (277, 3, vec![1]),
            (322, 3, vec![16]),
            (323, 3, vec![16]),
            (324, 4, offs),
            (325, 4, vec![256; 4]),
        ],
        &tiles,
    );
    out.push(("seed-tiled.tif".into(), tiled));
    let be = tiff_by_hand(
        true,
        &[
            (256, 3, vec![w]),
            (257, 3, vec![h]),
            (258, 3, vec![8]),
            (259, 3, vec![1]),
            (262, 3, vec![1]),
            (273, 4, vec![8]),
            (277, 3, vec![1]),
            (278, 3, vec![h]),
            (279, 4, vec![w * h]),
        ],
        &gray,
    );
    out.push(("seed-bigendian.tif".into(), be));
    Ok(out)
}

pub fn png_bytes(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<&[u8]>,
) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        if let Some(p) = palette {
            e.set_palette(p.to_vec());
        }
        let mut wr = e.write_header()?;
        wr.write_image_data(data)?;
    }
    Ok(out)
}

fn jpeg_bytes(w: u32, h: u32, data: &[u8], color: image::ExtendedColorType) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75).encode(data, w, h, color)?;
    Ok(out)
}

pub fn image_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    use png::{BitDepth as D, ColorType as C};
    let (w, h) = (12u32, 10u32);
    let n = (w * h) as usize;
    let ramp = |k: usize| -> Vec<u8> { (0..k).map(|i| (i * 13 % 251) as u8).collect() };
    let palette: Vec<u8> = (0..16 * 3).map(|i| (i * 17) as u8).collect();
    let idx: Vec<u8> = (0..n).map(|i| (i % 16) as u8).collect();
    let mut out = vec![
        (
            "seed-gray8.png".into(),
            png_bytes(w, h, C::Grayscale, D::Eight, &ramp(n), None)?,
        ),
        (
            "seed-rgb8.png".into(),
            png_bytes(w, h, C::Rgb, D::Eight, &ramp(3 * n), None)?,
        ),
        (
            "seed-rgba16.png".into(),
            png_bytes(w, h, C::Rgba, D::Sixteen, &ramp(8 * n), None)?,
        ),
        (
            "seed-gray16.png".into(),
            png_bytes(w, h, C::Grayscale, D::Sixteen, &ramp(2 * n), None)?,
        ),
        (
            "seed-palette.png".into(),
            png_bytes(w, h, C::Indexed, D::Eight, &idx, Some(&palette))?,
        ),
        (
            "seed-rgb.jpg".into(),
            jpeg_bytes(24, 16, &ramp(24 * 16 * 3), image::ExtendedColorType::Rgb8)?,
        ),
        (
            "seed-gray.jpg".into(),
            jpeg_bytes(17, 9, &ramp(17 * 9), image::ExtendedColorType::L8)?,
        ),
    ];
    let mut c = Cursor::new(Vec::new());
    TiffEncoder::new(&mut c)?.write_image::<colortype::RGB8>(w, h, &ramp(3 * n))?;
    out.push(("seed-rgb8.tif".into(), c.into_inner()));
    Ok(out)
}
