//! Pyramidal whole-slide TIFF: OME-TIFF (reduced levels in the `SubIFDs` of the full
//! image, as `tifffile` and bfconvert write them), Aperio SVS and plain tiled pyramids
//! (reduced levels further down the main IFD chain, thumbnails, labels and macro images
//! skipped). One level is read, tile by tile (JPEG, LZW, deflate or none, by the `tiff`
//! crate), as one plane: memory is that level's, not the full-resolution image's.
//!
//! The pixel size comes from the OME-XML `Pixels` element (`PhysicalSizeX/Y` and their
//! units) or the Aperio description's `MPP`; without either the caller must give it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

use super::image_file::guard_decoder;
use super::tiff_file::{check_chunks_in_file, tiff_kind, tiff_limits};
use super::{Dtype, IntensityRange, LevelChoice, Slice, VolumeInfo, VolumeSource, decode_slice};
use crate::error::{Error, Result};

/// One resolution level of a pyramidal TIFF.
#[derive(Debug, Clone, PartialEq)]
pub struct PyramidLevel {
    /// Width and height in pixels.
    pub size: [u32; 2],
    /// Pixel size in micrometres (x; square pixels are assumed, y is checked).
    pub um_per_px: f64,
    /// Tile width and height (`None`: stored in strips).
    pub tile: Option<[u32; 2]>,
    ifd: u64,
    /// JPEG tiles in YCbCr: the decoder hands back YCbCr, converted to RGB here.
    ycbcr: bool,
}

/// A pyramidal TIFF read at one level as a single-plane source (shape (1, H, W)).
pub struct PyramidTiff {
    info: VolumeInfo,
    path: PathBuf,
    levels: Vec<PyramidLevel>,
    level: usize,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::bad_file(path, msg.into())
}

fn terr(path: &Path, what: &str, e: tiff::TiffError) -> Error {
    bad(path, format!("{what}: {e} (truncated or damaged file?)"))
}

/// A reader over a TIFF file whose header points at another IFD, so that the `tiff`
/// crate decodes a SubIFD (or any IFD) as the file's first image.
struct AtIfd<R> {
    inner: R,
    header: Vec<u8>,
    pos: u64,
}

impl<R: Read + Seek> AtIfd<R> {
    fn new(mut inner: R, ifd: u64) -> std::io::Result<AtIfd<R>> {
        let mut h = [0u8; 16];
        inner.seek(SeekFrom::Start(0))?;
        inner.read_exact(&mut h[..8])?;
        let le = &h[..2] == b"II";
        let big = if le { h[2] == 43 } else { h[3] == 43 };
        let header = if big {
            inner.read_exact(&mut h[8..16])?;
            let b = if le {
                ifd.to_le_bytes()
            } else {
                ifd.to_be_bytes()
            };
            h[8..16].copy_from_slice(&b);
            h.to_vec()
        } else {
            let v = u32::try_from(ifd).map_err(|_| std::io::ErrorKind::InvalidData)?;
            let b = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            h[4..8].copy_from_slice(&b);
            h[..8].to_vec()
        };
        inner.seek(SeekFrom::Start(0))?;
        Ok(AtIfd {
            inner,
            header,
            pos: 0,
        })
    }
}

impl<R: Read + Seek> Read for AtIfd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if (self.pos as usize) < self.header.len() {
            let h = &self.header[self.pos as usize..];
            let n = h.len().min(buf.len());
            buf[..n].copy_from_slice(&h[..n]);
            self.inner.seek(SeekFrom::Current(n as i64))?;
            n
        } else {
            self.inner.read(buf)?
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for AtIfd<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

type FileDecoder = Decoder<AtIfd<BufReader<File>>>;

fn decoder_at(path: &Path, ifd: u64) -> Result<FileDecoder> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let r = AtIfd::new(BufReader::new(f), ifd).map_err(|e| Error::io(path, e))?;
    Ok(Decoder::new(r)
        .map_err(|e| terr(path, "TIFF header", e))?
        .with_limits(tiff_limits()))
}

/// Whether `path` starts like a TIFF file (classic or BigTIFF, either byte order).
pub fn is_tiff(path: &Path) -> bool {
    let mut h = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut h))
        .is_ok()
        && matches!(&h, b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+")
}

/// Micrometres per `unit` (OME's `UnitsLength` symbols; the default is micrometre).
fn unit_um(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "µm" | "um" | "μm" | "micrometer" | "micron" => 1.0,
        "nm" | "nanometer" => 1e-3,
        "mm" | "millimeter" => 1e3,
        "cm" | "centimeter" => 1e4,
        "m" | "meter" => 1e6,
        "Å" | "angstrom" => 1e-4,
        _ => return None,
    })
}

/// (x, y) pixel size in micrometres from the first OME-XML `Pixels` element.
fn ome_pixel_size(path: &Path, xml: &str) -> Result<Option<(f64, f64)>> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Pixels" => {
                let mut a = std::collections::HashMap::new();
                for attr in e.attributes().flatten() {
                    let k = attr.key.local_name().as_ref().to_string();
                    a.insert(k, attr.value.to_string());
                }
                let axis = |n: &str| -> Result<Option<f64>> {
                    let Some(v) = a.get(&format!("PhysicalSize{n}")) else {
                        return Ok(None);
                    };
                    let unit = a
                        .get(&format!("PhysicalSize{n}Unit"))
                        .map(String::as_str)
                        .unwrap_or("");
                    let (Ok(v), Some(u)) = (v.trim().parse::<f64>(), unit_um(unit)) else {
                        return Err(bad(
                            path,
                            format!("OME-XML PhysicalSize{n}=\"{v}\" {unit:?} is not a length"),
                        ));
                    };
                    Ok(Some(v * u))
                };
                return Ok(match (axis("X")?, axis("Y")?) {
                    (Some(x), y) => Some((x, y.unwrap_or(x))),
                    _ => None,
                });
            }
            Ok(Event::Eof) => return Ok(None),
            Err(e) => return Err(bad(path, format!("OME-XML in ImageDescription: {e}"))),
            _ => {}
        }
    }
}

/// The pixel size an Aperio SVS description records (`... |MPP = 0.2520|...`).
fn aperio_mpp(desc: &str) -> Option<f64> {
    desc.split('|').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        (k.trim() == "MPP").then(|| v.trim().parse().ok()).flatten()
    })
}

/// What one IFD holds, as far as level discovery needs.
struct Ifd {
    ptr: u64,
    size: [u32; 2],
    tile: Option<[u32; 2]>,
    kind: std::result::Result<(usize, Dtype), String>,
    subifds: Vec<u64>,
    reduced: bool,
    ycbcr: bool,
}

fn kind_name(k: &std::result::Result<(usize, Dtype), String>) -> String {
    match k {
        Ok((c, t)) => format!("{c} channel(s) of {t:?}"),
        Err(_) => "an unsupported pixel type".into(),
    }
}

fn read_ifd(path: &Path, d: &mut FileDecoder, what: &str, len: u64) -> Result<Ifd> {
    let (w, h) = d.dimensions().map_err(|e| terr(path, what, e))?;
    let ct = d.colortype().map_err(|e| terr(path, what, e))?;
    let jpeg = d
        .find_tag_unsigned::<u16>(Tag::Compression)
        .map_err(|e| terr(path, what, e))?
        == Some(7);
    // JPEG tiles in YCbCr (what most scanners and tifffile write) decode to RGB.
    let ycbcr = jpeg && ct == tiff::ColorType::YCbCr(8);
    let ct = if ycbcr { tiff::ColorType::RGB(8) } else { ct };
    // Only levels need a pixel type vortexdb reads (other pages may be anything).
    let kind = tiff_kind(path, 0, ct)
        .map_err(|_| format!("{what}: pixel type {ct:?} is not supported (8/16-bit gray or RGB)"));
    let tile = match d.get_chunk_type() {
        tiff::decoder::ChunkType::Tile => {
            let (tw, th) = d.chunk_dimensions();
            Some([tw, th])
        }
        _ => None,
    };
    let subifds = d
        .find_tag_unsigned_vec::<u64>(Tag::SubIfd)
        .map_err(|e| terr(path, what, e))?
        .unwrap_or_default();
    let reduced = d
        .find_tag_unsigned::<u32>(Tag::NewSubfileType)
        .map_err(|e| terr(path, what, e))?
        .is_some_and(|t| t & 1 == 1);
    if kind.is_ok() {
        check_chunks_in_file(d, path, what, len)?;
    }
    Ok(Ifd {
        ptr: d.ifd_pointer().map(|p| p.0).unwrap_or(0),
        size: [w, h],
        tile,
        kind,
        subifds,
        reduced,
        ycbcr,
    })
}

impl PyramidTiff {
    /// Open a (possibly single-level) TIFF image, find its levels and read the one
    /// `choice` picks: `Nearest([_, y, x])` the level whose pixel size is nearest the
    /// model's (log scale), `Index(i)` level `i` (0 = full resolution). `um_per_px`
    /// (the full-resolution pixel size) overrides the file's; without both, an error
    /// says to give it.
    pub fn open(
        path: &Path,
        um_per_px: Option<f64>,
        choice: LevelChoice,
        range: IntensityRange,
    ) -> Result<PyramidTiff> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        guard_decoder(&path.display().to_string(), || {
            Self::open_inner(path, len, um_per_px, choice, range)
        })?
    }

    fn open_inner(
        path: &Path,
        len: u64,
        um_per_px: Option<f64>,
        choice: LevelChoice,
        range: IntensityRange,
    ) -> Result<PyramidTiff> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        // No header patch: the file's own first IFD.
        let plain = AtIfd {
            inner: BufReader::new(f),
            header: Vec::new(),
            pos: 0,
        };
        let mut d = Decoder::new(plain)
            .map_err(|e| terr(path, "TIFF header", e))?
            .with_limits(tiff_limits());
        let desc = d
            .find_tag(Tag::ImageDescription)
            .ok()
            .flatten()
            .and_then(|v| v.into_string().ok())
            .unwrap_or_default();
        let base = read_ifd(path, &mut d, "IFD 0", len)?;
        if let Err(e) = &base.kind {
            return Err(bad(path, e.clone()));
        }
        let mut ifds = vec![base];
        if !ifds[0].subifds.is_empty() {
            // OME-TIFF: the reduced levels are the SubIFDs of the full image.
            for (k, &p) in ifds[0].subifds.clone().iter().enumerate() {
                let mut sd = decoder_at(path, p)?;
                ifds.push(read_ifd(
                    path,
                    &mut sd,
                    &format!("SubIFD {k} of IFD 0"),
                    len,
                )?);
            }
        } else {
            // SVS / plain pyramids: further tiled IFDs of the same pixel type whose
            // aspect ratio is the full image's (thumbnail, label and macro differ).
            let [w0, h0] = ifds[0].size;
            let mut i = 1;
            while d.more_images() && i < 64 {
                d.next_image()
                    .map_err(|e| terr(path, &format!("IFD {i}"), e))?;
                let c = read_ifd(path, &mut d, &format!("IFD {i}"), len)?;
                i += 1;
                let aspect = (c.size[0] as f64 / c.size[1] as f64) / (w0 as f64 / h0 as f64);
                let smaller = c.size[0] < ifds.last().expect("base").size[0];
                if c.tile.is_some()
                    && c.kind == ifds[0].kind
                    && smaller
                    && (aspect - 1.0).abs() < 0.02
                {
                    ifds.push(c);
                } else if c.reduced && c.tile.is_some() && smaller {
                    return Err(bad(
                        path,
                        format!(
                            "reduced-resolution IFD of {} x {} does not match the full image's {} x {} (pixel type or aspect ratio)",
                            c.size[0], c.size[1], w0, h0
                        ),
                    ));
                }
            }
        }
        let [w0, h0] = ifds[0].size;
        let um0 = match um_per_px {
            Some(u) => u,
            None => {
                let from_ome = if desc.trim_start().starts_with("<?xml") || desc.contains("<OME") {
                    ome_pixel_size(path, &desc)?
                } else {
                    None
                };
                if let Some((x, y)) = from_ome
                    && (x / y - 1.0).abs() > 0.01
                {
                    return Err(bad(
                        path,
                        format!(
                            "pixels are not square ({x} x {y} um); give --um-per-px to override"
                        ),
                    ));
                }
                match from_ome.map(|(x, _)| x).or_else(|| aperio_mpp(&desc)) {
                    Some(u) => u,
                    None => {
                        return Err(Error::arg(
                            "um_per_px",
                            format!(
                                "{}: the file records no pixel size (no OME-XML PhysicalSizeX, no Aperio MPP); give it with --um-per-px",
                                path.display()
                            ),
                        ));
                    }
                }
            }
        };
        if !(um0.is_finite() && um0 > 0.0) {
            return Err(bad(
                path,
                format!("pixel size {um0} um is not a positive length"),
            ));
        }
        let mut levels = Vec::with_capacity(ifds.len());
        for (k, f) in ifds.iter().enumerate() {
            let [w, h] = f.size;
            if k > 0 {
                let prev = &ifds[k - 1];
                let (rx, ry) = (w0 as f64 / w as f64, h0 as f64 / h as f64);
                if f.kind != ifds[0].kind
                    || w > prev.size[0]
                    || h > prev.size[1]
                    || (rx / ry - 1.0).abs() > 0.02
                {
                    return Err(bad(
                        path,
                        format!(
                            "pyramid levels disagree: level {k} is {w} x {h} ({}) under level {} of {} x {} ({})",
                            kind_name(&f.kind),
                            k - 1,
                            prev.size[0],
                            prev.size[1],
                            kind_name(&prev.kind)
                        ),
                    ));
                }
            }
            levels.push(PyramidLevel {
                size: [w, h],
                um_per_px: um0 * w0 as f64 / w as f64,
                tile: f.tile,
                ifd: f.ptr,
                ycbcr: f.ycbcr,
            });
        }
        let level = match choice {
            LevelChoice::Index(i) if i < levels.len() => i,
            LevelChoice::Index(i) => {
                return Err(Error::arg(
                    "level",
                    format!(
                        "{}: level {i} does not exist (the pyramid has {})",
                        path.display(),
                        levels.len()
                    ),
                ));
            }
            LevelChoice::Nearest(want) | LevelChoice::NearestFrom { want, .. } => {
                let dist = |l: &PyramidLevel| (l.um_per_px / want[2]).ln().abs();
                (0..levels.len())
                    .min_by(|&a, &b| dist(&levels[a]).total_cmp(&dist(&levels[b])))
                    .expect("at least one level")
            }
        };
        let [w, h] = levels[level].size;
        let (c, dtype) = ifds[level].kind.clone().map_err(|e| bad(path, e))?;
        // The level is decoded whole (its samples, then as f32): bound it first.
        crate::limits::alloc_bytes(
            &path.display().to_string(),
            &[w as u64, h as u64],
            (c * (dtype.bytes() + 8)) as u64,
            &format!("TIFF level {level} ({w} x {h} pixels)"),
        )?;
        Ok(PyramidTiff {
            info: VolumeInfo {
                shape: [1, h as usize, w as usize],
                channels: c,
                dtype,
                source: path.display().to_string(),
                files: vec![path.to_path_buf()],
                intensity_range: range,
                content: None,
            },
            path: path.to_path_buf(),
            levels,
            level,
        })
    }

    /// Every level, full resolution first.
    pub fn levels(&self) -> &[PyramidLevel] {
        &self.levels
    }

    /// The index of the level this source reads.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Pixel size of the level read, in micrometres.
    pub fn um_per_px(&self) -> f64 {
        self.levels[self.level].um_per_px
    }

    /// The level's samples, interleaved (y, x, c), assembled tile by tile.
    fn read_level(&self) -> Result<Vec<u8>> {
        let lv = &self.levels[self.level];
        let what = format!("level {} ({} x {})", self.level, lv.size[0], lv.size[1]);
        let mut d = decoder_at(&self.path, lv.ifd)?;
        let (c, dt) = (self.info.channels, self.info.dtype);
        let [w, h] = [lv.size[0] as usize, lv.size[1] as usize];
        let px = c * dt.bytes();
        let mut out = vec![0u8; w * h * px];
        let (cw, ch) = d.chunk_dimensions();
        let (cw, ch) = (cw as usize, ch as usize);
        let across = w.div_ceil(cw);
        let n = match d.get_chunk_type() {
            tiff::decoder::ChunkType::Tile => d.tile_count(),
            _ => d.strip_count(),
        }
        .map_err(|e| terr(&self.path, &what, e))?;
        for i in 0..n {
            let (tw, th) = d.chunk_data_dimensions(i);
            let (tw, th) = (tw as usize, th as usize);
            let r = d
                .read_chunk(i)
                .map_err(|e| terr(&self.path, &format!("{what}, tile {i}"), e))?;
            let bytes: Vec<u8> = match r {
                DecodingResult::U8(v) => v,
                DecodingResult::U16(v) => v.iter().flat_map(|x| x.to_ne_bytes()).collect(),
                _ => {
                    return Err(bad(
                        &self.path,
                        format!("{what}, tile {i}: unexpected sample type"),
                    ));
                }
            };
            // Edge tiles come cropped to the image (or padded to the full tile).
            let stride = if bytes.len() >= cw * ch * px { cw } else { tw };
            if bytes.len() < stride * (th - 1) * px + tw * px {
                return Err(bad(
                    &self.path,
                    format!(
                        "{what}, tile {i}: {} bytes for {tw} x {th} pixels",
                        bytes.len()
                    ),
                ));
            }
            let (x0, y0) = ((i as usize % across) * cw, (i as usize / across) * ch);
            for r in 0..th.min(h.saturating_sub(y0)) {
                let n = tw.min(w.saturating_sub(x0)) * px;
                let dst = ((y0 + r) * w + x0) * px;
                out[dst..dst + n].copy_from_slice(&bytes[r * stride * px..r * stride * px + n]);
            }
        }
        if lv.ycbcr {
            out.chunks_exact_mut(3).for_each(ycbcr_to_rgb);
        }
        Ok(out)
    }
}

/// JFIF (full-range BT.601) YCbCr to RGB, in place.
fn ycbcr_to_rgb(p: &mut [u8]) {
    let (y, cb, cr) = (p[0] as f32, p[1] as f32 - 128.0, p[2] as f32 - 128.0);
    let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    p[0] = q(y + 1.402 * cr);
    p[1] = q(y - 0.344_136 * cb - 0.714_136 * cr);
    p[2] = q(y + 1.772 * cb);
}

impl VolumeSource for PyramidTiff {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn voxel_um(&self) -> Option<[f64; 3]> {
        let u = self.um_per_px();
        Some([u, u, u])
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        self.info.check_slice(z)?;
        let raw = guard_decoder(&self.info.source, || self.read_level())??;
        decode_slice(&raw, &self.info, cfg!(target_endian = "big"), 0)
    }
}
