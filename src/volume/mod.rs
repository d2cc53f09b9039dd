//! 3D image sources read one slice at a time: NPY (uint8/uint16/float32), a multi-page
//! TIFF, a directory of TIFF/PNG/JPEG slices, an OME-Zarr image (one level of its
//! pyramid, chunk-deep slabs), and serial H&E sections stacked into a 2.5D volume. Every source is validated when opened (shape, dtype, truncation, equal
//! slice sizes) so that a bad file fails before anything is written to a store.
//!
//! Intensities are scaled to [0, 1]: uint8 / 255, uint16 / 65535, float32 as stored
//! (or linearly from a caller-given range).

mod array;
pub mod grid;
mod image_file;
mod pyramid;
mod tiff_file;
mod zarr;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use array::ArrayVolume;
pub use image_file::decode_image;
pub(crate) use image_file::image_header;
pub use pyramid::{PyramidLevel, PyramidTiff, is_tiff};
pub use tiff_file::TiffVolume;
pub use zarr::{LevelChoice, ZarrLevel, ZarrVolume, is_zarr};

/// Element type of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Dtype {
    /// 8-bit unsigned.
    U8,
    /// 16-bit unsigned.
    U16,
    /// 32-bit float.
    F32,
}

impl Dtype {
    fn bytes(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
            Dtype::F32 => 4,
        }
    }
}

/// What a source holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VolumeInfo {
    /// Slices, rows, columns.
    pub shape: [usize; 3],
    /// Channels per voxel (1 grayscale, 3 RGB).
    pub channels: usize,
    /// Element type.
    pub dtype: Dtype,
    /// The source path (file or directory) for messages.
    pub source: String,
    /// The files read, for the ingest fingerprint.
    pub files: Vec<PathBuf>,
    /// The intensity window the reader applies (part of the ingest fingerprint).
    #[serde(default)]
    pub intensity_range: IntensityRange,
    /// Digest of the whole content of an in-memory source (no files to fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl VolumeInfo {
    /// An error naming the source unless slice `z` exists.
    pub(crate) fn check_slice(&self, z: usize) -> Result<()> {
        let nz = self.shape[0];
        if z >= nz {
            return Err(Error::bad_file(
                &self.source,
                format!("slice {z} out of range (volume has {nz})"),
            ));
        }
        Ok(())
    }
}

/// One slice: `channels` planes of `h * w` intensities in [0, 1], planar (C, H, W).
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// `channels * h * w` values.
    pub data: Vec<f32>,
}

/// A volume read slice by slice. Reading in increasing `z` is the fast path.
pub trait VolumeSource: Send {
    /// Shape, channels and dtype.
    fn info(&self) -> &VolumeInfo;
    /// Slice `z` with intensities scaled to [0, 1].
    fn read_slice(&mut self, z: usize) -> Result<Slice>;
    /// Voxel size (z, y, x) in micrometres when the file records it (OME-Zarr);
    /// `None` when the caller must say (the other formats).
    fn voxel_um(&self) -> Option<[f64; 3]> {
        None
    }
    /// The voxel size of the level read relative to the full-resolution one (z, y, x):
    /// 1 for single-resolution formats, 4 on y and x for the third level of a pyramid
    /// halving each time. A full-resolution voxel size given by the user is scaled by it.
    fn level_factor(&self) -> [f64; 3] {
        [1.0; 3]
    }
}

/// Optional linear intensity window mapped to [0, 1] (values outside are clamped).
pub type IntensityRange = Option<(f32, f32)>;

/// An intensity range must be finite with its high end above its low end.
pub(crate) fn check_range(range: IntensityRange) -> Result<()> {
    match range {
        Some((lo, hi)) if !(lo.is_finite() && hi.is_finite() && hi > lo) => Err(Error::arg(
            "intensity_range",
            format!("high {hi} must exceed low {lo} (both finite)"),
        )),
        _ => Ok(()),
    }
}

fn scale(dtype: Dtype, range: IntensityRange) -> (f32, f32) {
    match range {
        Some((lo, hi)) => (lo, hi),
        None => match dtype {
            Dtype::U8 => (0.0, 255.0),
            Dtype::U16 => (0.0, 65535.0),
            Dtype::F32 => (0.0, 1.0),
        },
    }
}

fn apply_scale(v: f32, lo: f32, hi: f32, clamp: bool) -> f32 {
    let x = (v - lo) / (hi - lo);
    if clamp { x.clamp(0.0, 1.0) } else { x }
}

// ---------------------------------------------------------------------------------
// NPY

/// A C-ordered `.npy` volume of shape (Z, Y, X) or (Z, Y, X, C), read with seeks.
pub struct NpyVolume {
    info: VolumeInfo,
    file: File,
    data_offset: u64,
    big_endian: bool,
}

fn parse_npy_header(path: &Path, f: &mut File) -> Result<(String, bool, Vec<usize>, u64)> {
    let p = path.display().to_string();
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)
        .map_err(|_| Error::bad_file(&p, "not an NPY file (too short)"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(Error::bad_file(&p, "not an NPY file (bad magic)"));
    }
    let (hlen, pre) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b)
                .map_err(|_| Error::bad_file(&p, "truncated NPY header"))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            f.read_exact(&mut b)
                .map_err(|_| Error::bad_file(&p, "truncated NPY header"))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => {
            return Err(Error::bad_file(&p, format!("unsupported NPY version {v}")));
        }
    };
    if hlen > 1 << 20 {
        return Err(Error::bad_file(&p, "NPY header too long"));
    }
    let mut h = vec![0u8; hlen];
    f.read_exact(&mut h)
        .map_err(|_| Error::bad_file(&p, "truncated NPY header"))?;
    let h = String::from_utf8_lossy(&h).to_string();
    let field = |key: &str| -> Option<String> {
        let i = h.find(&format!("'{key}'"))?;
        let rest = h[i + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest.to_string())
    };
    let descr = field("descr")
        .and_then(|r| {
            let r = r.strip_prefix('\'')?;
            Some(r[..r.find('\'')?].to_string())
        })
        .ok_or_else(|| Error::bad_file(&p, "NPY header has no descr"))?;
    let fortran = field("fortran_order")
        .map(|r| r.starts_with("True"))
        .unwrap_or(false);
    let shape: Vec<usize> = field("shape")
        .and_then(|r| {
            let r = r.strip_prefix('(')?;
            let inner = &r[..r.find(')')?];
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<usize>().ok())
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Error::bad_file(&p, "NPY header has no readable shape"))?;
    Ok((descr, fortran, shape, (pre + hlen) as u64))
}

impl NpyVolume {
    /// Open and validate an NPY volume.
    pub fn open(path: &Path, range: IntensityRange) -> Result<NpyVolume> {
        let p = path.display().to_string();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let (descr, fortran, shape, data_offset) = parse_npy_header(path, &mut file)?;
        let (dtype, big_endian) = match descr.as_str() {
            "|u1" | "<u1" | ">u1" => (Dtype::U8, false),
            "<u2" => (Dtype::U16, false),
            ">u2" => (Dtype::U16, true),
            "<f4" => (Dtype::F32, false),
            ">f4" => (Dtype::F32, true),
            other => {
                return Err(Error::bad_file(
                    &p,
                    format!(
                        "dtype '{other}' is not supported; volumes must be uint8, uint16 or float32"
                    ),
                ));
            }
        };
        if fortran {
            return Err(Error::bad_file(
                &p,
                "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
            ));
        }
        let (dims, channels) = match shape.as_slice() {
            [z, y, x] => ([*z, *y, *x], 1),
            [z, y, x, c] if *c == 1 || *c == 3 => ([*z, *y, *x], *c),
            _ => {
                return Err(Error::bad_file(
                    &p,
                    format!(
                        "shape {shape:?} is not a volume; expected (Z, Y, X) or (Z, Y, X, C) with C = 1 or 3"
                    ),
                ));
            }
        };
        if dims.contains(&0) {
            return Err(Error::bad_file(
                &p,
                format!("empty volume, shape {shape:?}"),
            ));
        }
        let dims64: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let need = crate::limits::checked_bytes(&p, &dims64, (channels * dtype.bytes()) as u64)?;
        // One slice, as f32, is what a reader allocates.
        crate::limits::alloc_bytes(&p, &dims64[1..], (channels * 4) as u64, "one slice")?;
        let have = file
            .metadata()
            .map_err(|e| Error::io(path, e))?
            .len()
            .saturating_sub(data_offset);
        if have < need {
            return Err(Error::bad_file(
                &p,
                format!(
                    "truncated: shape {shape:?} of {descr} needs {need} bytes of data, the file has {have}"
                ),
            ));
        }
        Ok(NpyVolume {
            info: VolumeInfo {
                shape: dims,
                channels,
                dtype,
                source: p,
                files: vec![path.to_path_buf()],
                intensity_range: range,
                content: None,
            },
            file,
            data_offset,
            big_endian,
        })
    }
}

impl VolumeSource for NpyVolume {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        self.info.check_slice(z)?;
        let [_, h, w] = self.info.shape;
        let bytes = h * w * self.info.channels * self.info.dtype.bytes();
        let mut buf = vec![0u8; bytes];
        let path = PathBuf::from(&self.info.source);
        self.file
            .seek(SeekFrom::Start(self.data_offset + (z * bytes) as u64))
            .map_err(|e| Error::io(&path, e))?;
        self.file
            .read_exact(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        decode_slice(&buf, &self.info, self.big_endian, z)
    }
}

/// One slice's raw bytes (interleaved (Y, X, C) elements of `info.dtype`) as planar
/// (C, Y, X) values scaled to [0, 1]; a non-finite float is an error naming the source.
pub(crate) fn decode_slice(
    buf: &[u8],
    info: &VolumeInfo,
    big_endian: bool,
    z: usize,
) -> Result<Slice> {
    let [_, h, w] = info.shape;
    let c = info.channels;
    let n = h * w * c;
    let range = info.intensity_range;
    let (lo, hi) = scale(info.dtype, range);
    let clamp = range.is_some();
    let mut data = vec![0f32; n];
    let put = |data: &mut Vec<f32>, i: usize, v: f32| {
        let (pix, ch) = (i / c, i % c);
        data[ch * h * w + pix] = apply_scale(v, lo, hi, clamp);
    };
    match info.dtype {
        Dtype::U8 => buf
            .iter()
            .enumerate()
            .for_each(|(i, &b)| put(&mut data, i, b as f32)),
        Dtype::U16 => buf.chunks_exact(2).enumerate().for_each(|(i, b)| {
            let v = if big_endian {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            };
            put(&mut data, i, v as f32)
        }),
        Dtype::F32 => {
            for (i, b) in buf.chunks_exact(4).enumerate() {
                let a = [b[0], b[1], b[2], b[3]];
                let v = if big_endian {
                    f32::from_be_bytes(a)
                } else {
                    f32::from_le_bytes(a)
                };
                if !v.is_finite() {
                    return Err(Error::bad_file(
                        &info.source,
                        format!("non-finite value at slice {z}, element {i}"),
                    ));
                }
                put(&mut data, i, v);
            }
        }
    }
    Ok(Slice {
        channels: c,
        h,
        w,
        data,
    })
}

// ---------------------------------------------------------------------------------
// image stacks: a directory of slices, or serial sections

/// A stack of 2D image files (TIFF, PNG, JPEG), one per slice, all of one size (or,
/// opened with [`ImageStack::open_files_any_size`], each of its own size, for
/// `Registered` (in `register`) to bring into one frame); with
/// [`ImageStack::open_levels`] some are read at one level of a pyramidal TIFF.
pub struct ImageStack {
    info: VolumeInfo,
    files: Vec<PathBuf>,
    range: IntensityRange,
    /// (height, width) of every file.
    sizes: Vec<(usize, usize)>,
    /// The pyramid level each file is read at (`None`: the file's one image).
    pyramids: Vec<Option<PyramidTiff>>,
}

fn natural_key(p: &Path) -> Vec<(String, u64)> {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num = String::new();
    for ch in name.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
        } else {
            if !num.is_empty() {
                out.push((std::mem::take(&mut text), num.parse().unwrap_or(u64::MAX)));
                num.clear();
            }
            text.push(ch);
        }
    }
    out.push((text, num.parse().unwrap_or(0)));
    out
}

const IMAGE_EXT: [&str; 5] = ["tif", "tiff", "png", "jpg", "jpeg"];

impl ImageStack {
    /// Every TIFF/PNG/JPEG file of `dir`, in natural name order (`s2` before `s10`).
    pub fn open_dir(dir: &Path, range: IntensityRange) -> Result<ImageStack> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort_by_key(|p| natural_key(p));
        if files.is_empty() {
            return Err(Error::bad_file(
                dir,
                "no TIFF, PNG or JPEG slices in this directory",
            ));
        }
        Self::open_files(files, dir.display().to_string(), range)
    }

    /// The given image files, in the given order (serial sections, top to bottom).
    pub fn open_files(
        files: Vec<PathBuf>,
        source: String,
        range: IntensityRange,
    ) -> Result<ImageStack> {
        Self::open_checked(files, source, range, true)
    }

    /// The given image files, which may differ in size (the stack's shape is the first
    /// file's); channels and pixel type must agree.
    pub fn open_files_any_size(
        files: Vec<PathBuf>,
        source: String,
        range: IntensityRange,
    ) -> Result<ImageStack> {
        Self::open_checked(files, source, range, false)
    }

    fn open_checked(
        files: Vec<PathBuf>,
        source: String,
        range: IntensityRange,
        same_size: bool,
    ) -> Result<ImageStack> {
        let none = files.iter().map(|_| None).collect();
        Self::open_levels(files, source, range, same_size, none)
    }

    /// The given image files, file `i` read at the level `pyramids[i]` opened (`None`:
    /// its one image); `same_size` as in [`ImageStack::open_files`] (`true`) or
    /// [`ImageStack::open_files_any_size`].
    pub fn open_levels(
        files: Vec<PathBuf>,
        source: String,
        range: IntensityRange,
        same_size: bool,
        pyramids: Vec<Option<PyramidTiff>>,
    ) -> Result<ImageStack> {
        if pyramids.len() != files.len() {
            return Err(Error::arg("pyramids", "one entry per file"));
        }
        let mut first: Option<(u32, u32, usize, Dtype, PathBuf)> = None;
        let mut sizes = Vec::with_capacity(files.len());
        for (f, p) in files.iter().zip(&pyramids) {
            let (w, h, c, dt) = match p {
                Some(p) => {
                    let i = p.info();
                    (i.shape[2] as u32, i.shape[1] as u32, i.channels, i.dtype)
                }
                None => image_header(f)?,
            };
            sizes.push((h as usize, w as usize));
            match &first {
                None => first = Some((w, h, c, dt, f.clone())),
                Some((w0, h0, c0, d0, f0)) if same_size && (*w0, *h0) != (w, h) => {
                    return Err(Error::bad_file(
                        f,
                        format!(
                            "slices of different sizes: {} is {w0}x{h0}, this one is {w}x{h}",
                            f0.display()
                        ),
                    ));
                }
                Some((_, _, c0, d0, f0)) if (*c0, *d0) != (c, dt) => {
                    return Err(Error::bad_file(
                        f,
                        format!(
                            "slices of different types: {} has {c0} channel(s) of {d0:?}, this one {c} of {dt:?}",
                            f0.display()
                        ),
                    ));
                }
                _ => {}
            }
        }
        let (w, h, c, dtype, _) = first.ok_or_else(|| Error::bad_file(&source, "no images"))?;
        Ok(ImageStack {
            info: VolumeInfo {
                shape: [files.len(), h as usize, w as usize],
                channels: c,
                dtype,
                source,
                files: files.clone(),
                intensity_range: range,
                content: None,
            },
            files,
            range,
            sizes,
            pyramids,
        })
    }

    /// The slice files in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl VolumeSource for ImageStack {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn read_slice(&mut self, z: usize) -> Result<Slice> {
        self.info.check_slice(z)?;
        if let Some(level) = self.pyramids[z].as_mut() {
            return level.read_slice(0);
        }
        let f = &self.files[z];
        let p = f.display().to_string();
        let img = decode_image(f)?;
        let (h, w) = self.sizes[z];
        if (img.width() as usize, img.height() as usize) != (w, h) {
            return Err(Error::bad_file(&p, "image changed size while reading"));
        }
        let c = self.info.channels;
        let (lo, hi) = scale(self.info.dtype, self.range);
        let clamp = self.range.is_some();
        let vals: Vec<f32> = match (c, self.info.dtype) {
            (1, Dtype::U8) => img
                .to_luma8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            (1, _) => img
                .to_luma16()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            (_, Dtype::U8) => img
                .to_rgb8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            (_, Dtype::U16) => img
                .to_rgb16()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            (_, Dtype::F32) => img.to_rgb32f().into_raw(),
        };
        let mut data = vec![0f32; c * h * w];
        for (i, v) in vals.into_iter().enumerate() {
            data[(i % c) * h * w + i / c] = apply_scale(v, lo, hi, clamp);
        }
        Ok(Slice {
            channels: c,
            h,
            w,
            data,
        })
    }
}

/// Open a volume: a `.npy` file, a `.tif`/`.tiff` multi-page file, an OME-Zarr image
/// (its full-resolution level; [`open_level`] picks another), or a directory of slice
/// images.
pub fn open(path: &Path, range: IntensityRange) -> Result<Box<dyn VolumeSource>> {
    open_level(path, range, LevelChoice::Index(0))
}

/// [`open`], reading the OME-Zarr level `choice` picks (other formats have one level:
/// `choice` is ignored for them).
pub fn open_level(
    path: &Path,
    range: IntensityRange,
    choice: LevelChoice,
) -> Result<Box<dyn VolumeSource>> {
    check_range(range)?;
    if zarr::is_zarr(path) {
        return Ok(Box::new(ZarrVolume::open(path, choice, range)?));
    }
    if path.is_dir() {
        return Ok(Box::new(ImageStack::open_dir(path, range)?));
    }
    if !path.exists() {
        return Err(Error::bad_file(path, "no such file or directory"));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => Ok(Box::new(NpyVolume::open(path, range)?)),
        "tif" | "tiff" => Ok(Box::new(TiffVolume::open(path, range)?)),
        _ => Err(Error::bad_file(
            path,
            "unknown volume format; give a .npy file, a multi-page .tif/.tiff, an OME-Zarr directory, or a directory of slice images",
        )),
    }
}
