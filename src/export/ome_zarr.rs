//! OME-Zarr outputs (NGFF 0.5 on Zarr v3, gzip chunks, through `zarrs`) that napari and
//! the `ome-zarr` reader open next to the source: float32 volumes (heatmaps, predicted
//! genes; NaN where no patch covers a voxel) as a multiscale image, and label volumes
//! (domains) as an image with an NGFF `labels` image of the same data. Levels halve y
//! and x (and z while it is the longest axis' equal or more) until the largest side is
//! at most 256: NaN-ignoring means for values, the block's first voxel for labels.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use zarrs::array::{ArrayBuilder, Element, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use crate::error::{Error, Result};

/// Largest side of the coarsest level.
const COARSEST: usize = 256;

pub(super) fn zerr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_file(path, format!("cannot write OME-Zarr: {e}"))
}

/// Halving factors (z, y, x) of each level after the first.
fn factors(shape: [usize; 3]) -> Vec<[usize; 3]> {
    let mut out = Vec::new();
    let mut s = shape;
    while s[1].max(s[2]) > COARSEST && out.len() < 8 {
        let fz = if s[0] >= 2 && s[0] * 2 >= s[1].max(s[2]) {
            2
        } else {
            1
        };
        out.push([fz, 2, 2]);
        s = [s[0].div_ceil(fz), s[1].div_ceil(2), s[2].div_ceil(2)];
    }
    out
}

/// One level down by `f`: `reduce` maps a block's values to one.
fn down<T: Copy>(
    data: &[T],
    shape: [usize; 3],
    f: [usize; 3],
    reduce: impl Fn(&[T]) -> T,
) -> (Vec<T>, [usize; 3]) {
    let out = [
        shape[0].div_ceil(f[0]),
        shape[1].div_ceil(f[1]),
        shape[2].div_ceil(f[2]),
    ];
    let mut v = Vec::with_capacity(out.iter().product());
    let mut block = Vec::with_capacity(f.iter().product());
    for z in 0..out[0] {
        for y in 0..out[1] {
            for x in 0..out[2] {
                block.clear();
                for zz in z * f[0]..((z + 1) * f[0]).min(shape[0]) {
                    for yy in y * f[1]..((y + 1) * f[1]).min(shape[1]) {
                        for xx in x * f[2]..((x + 1) * f[2]).min(shape[2]) {
                            block.push(data[(zz * shape[1] + yy) * shape[2] + xx]);
                        }
                    }
                }
                v.push(reduce(&block));
            }
        }
    }
    (v, out)
}

pub(super) fn nan_mean(b: &[f32]) -> f32 {
    let (s, n) = b
        .iter()
        .filter(|x| !x.is_nan())
        .fold((0f64, 0usize), |(s, n), &x| (s + x as f64, n + 1));
    if n == 0 {
        f32::NAN
    } else {
        (s / n as f64) as f32
    }
}

/// `multiscales` metadata for levels `0..n` with voxel sizes `voxels`.
fn multiscales(name: &str, voxels: &[[f64; 3]]) -> Value {
    let axes: Vec<Value> = ["z", "y", "x"]
        .iter()
        .map(|a| json!({"name": a, "type": "space", "unit": "micrometer"}))
        .collect();
    let datasets: Vec<Value> = voxels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"path": i.to_string(),
                   "coordinateTransformations": [{"type": "scale", "scale": v}]})
        })
        .collect();
    json!([{"name": name, "axes": axes, "datasets": datasets}])
}

/// A (c,) z, y, x raster for [`write_levels`]: `channels` planes of `shape` one after
/// another (`None`: no channel axis).
pub(super) struct Raster<'a, T> {
    /// The values, channel-major.
    pub data: &'a [T],
    /// Channels (an axis `c` first) or none.
    pub channels: Option<usize>,
    /// Shape (z, y, x) of one channel.
    pub shape: [usize; 3],
    /// Voxel size (z, y, x) in micrometres at full resolution.
    pub voxel_um: [f64; 3],
}

/// Write the pyramid of `r` as arrays `prefix/0`, `prefix/1`, ... of `store`;
/// returns each level's voxel size.
pub(super) fn write_levels<T>(
    path: &Path,
    store: &Arc<FilesystemStore>,
    prefix: &str,
    r: &Raster<'_, T>,
    dtype: zarrs::array::DataType,
    fill: T,
    reduce: impl Fn(&[T]) -> T + Copy,
) -> Result<Vec<[f64; 3]>>
where
    T: Element + Copy + Into<zarrs::array::builder::ArrayBuilderFillValue>,
{
    let nc = r.channels.unwrap_or(1);
    let mut level = (r.data.to_vec(), r.shape);
    let mut voxel = r.voxel_um;
    let mut voxels = Vec::new();
    let fs = factors(r.shape);
    for k in 0..=fs.len() {
        let (d, s) = &level;
        let mut dims: Vec<u64> = s.iter().map(|&n| n as u64).collect();
        let mut chunk: Vec<u64> = [32usize, COARSEST, COARSEST]
            .iter()
            .zip(s)
            .map(|(&c, &n)| c.min(n).max(1) as u64)
            .collect();
        let mut names = vec!["z", "y", "x"];
        if let Some(c) = r.channels {
            dims.insert(0, c as u64);
            chunk.insert(0, 1);
            names.insert(0, "c");
        }
        let gzip = zarrs::array::codec::GzipCodec::new(5).map_err(|e| zerr(path, e))?;
        let a = ArrayBuilder::new(dims, chunk, dtype.clone(), fill)
            .bytes_to_bytes_codecs(vec![Arc::new(gzip)])
            .dimension_names(Some(names))
            .build(store.clone(), &format!("{prefix}/{k}"))
            .map_err(|e| zerr(path, e))?;
        a.store_metadata().map_err(|e| zerr(path, e))?;
        a.store_array_subset(&a.subset_all(), d.as_slice())
            .map_err(|e| zerr(path, e))?;
        voxels.push(voxel);
        if let Some(f) = fs.get(k) {
            let plane: usize = s.iter().product();
            let mut next = Vec::new();
            let mut shape = *s;
            for c in 0..nc {
                let (v, sh) = down(&d[c * plane..(c + 1) * plane], *s, *f, reduce);
                next.extend(v);
                shape = sh;
            }
            level = (next, shape);
            voxel = [
                voxel[0] * f[0] as f64,
                voxel[1] * f[1] as f64,
                voxel[2] * f[2] as f64,
            ];
        }
    }
    Ok(voxels)
}

/// A fresh store at `path`: an OME-Zarr we wrote before is replaced, anything else at
/// that path is refused (never deleted).
fn fresh_store(path: &Path) -> Result<Arc<FilesystemStore>> {
    if path.exists() {
        if !path.join("zarr.json").is_file() {
            return Err(Error::OutputExists {
                path: path.to_path_buf(),
                message: "exists and is not an OME-Zarr image; remove it or choose another --out"
                    .into(),
                can_overwrite: false,
            });
        }
        std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e))?;
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    Ok(Arc::new(
        FilesystemStore::new(path).map_err(|e| zerr(path, e))?,
    ))
}

fn group(path: &Path, store: &Arc<FilesystemStore>, at: &str, ome: Value) -> Result<()> {
    let attrs = json!({ "ome": ome });
    GroupBuilder::new()
        .attributes(attrs.as_object().cloned().unwrap_or_default())
        .build(store.clone(), at)
        .map_err(|e| zerr(path, e))?
        .store_metadata()
        .map_err(|e| zerr(path, e))
}

/// Write a float32 (z, y, x) volume as a multiscale OME-Zarr image at `path`
/// (voxel size `voxel_um` at full resolution, NaN = no data).
pub fn write_ome_zarr(
    path: &Path,
    name: &str,
    shape: [usize; 3],
    data: &[f32],
    voxel_um: [f64; 3],
) -> Result<()> {
    let store = fresh_store(path)?;
    let r = Raster {
        data,
        channels: None,
        shape,
        voxel_um,
    };
    let voxels = write_levels(
        path,
        &store,
        "",
        &r,
        data_type::float32(),
        f32::NAN,
        nan_mean,
    )?;
    group(
        path,
        &store,
        "/",
        json!({"version": "0.5", "multiscales": multiscales(name, &voxels)}),
    )
}

/// Write a uint8 label volume (0 = none) as an OME-Zarr image at `path` with the same
/// data as its NGFF label image `labels/<name>` (one colour per label), so napari shows
/// it as a labels layer.
pub fn write_ome_zarr_labels(
    path: &Path,
    name: &str,
    shape: [usize; 3],
    labels: &[u8],
    voxel_um: [f64; 3],
) -> Result<()> {
    let store = fresh_store(path)?;
    let first = |b: &[u8]| b[0];
    let u8t = data_type::uint8();
    let r = Raster {
        data: labels,
        channels: None,
        shape,
        voxel_um,
    };
    let voxels = write_levels(path, &store, "", &r, u8t.clone(), 0, first)?;
    group(
        path,
        &store,
        "/",
        json!({"version": "0.5", "multiscales": multiscales(name, &voxels)}),
    )?;
    group(
        path,
        &store,
        "/labels",
        json!({"version": "0.5", "labels": [name]}),
    )?;
    let at = format!("/labels/{name}");
    write_levels(path, &store, &at, &r, u8t, 0, first)?;
    let mut seen = [false; 256];
    labels.iter().for_each(|&l| seen[l as usize] = true);
    // The domain PNGs' colours: label l is PALETTE[(l - 1) % 10].
    let colors: Vec<Value> = (1..256)
        .filter(|&l| seen[l])
        .map(|l| {
            let [r, g, b] = crate::render::PALETTE[(l - 1) % crate::render::PALETTE.len()];
            json!({"label-value": l, "rgba": [r, g, b, 255]})
        })
        .collect();
    group(
        path,
        &store,
        &at,
        json!({"version": "0.5", "multiscales": multiscales(name, &voxels),
               "image-label": {"colors": colors, "source": {"image": "../../"}}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_halve_until_the_coarsest_fits_and_means_ignore_nan() {
        assert!(factors([10, 200, 100]).is_empty());
        assert_eq!(factors([1, 1000, 600]), vec![[1, 2, 2]; 2]);
        // z is halved while it is at least half the largest side.
        assert_eq!(factors([600, 600, 600])[0], [2, 2, 2]);
        let (v, s) = down(
            &[1.0, f32::NAN, 3.0, f32::NAN],
            [1, 2, 2],
            [1, 2, 2],
            nan_mean,
        );
        assert_eq!((v, s), (vec![2.0], [1, 1, 1]));
        let (v, _) = down(&[f32::NAN; 4], [1, 2, 2], [1, 2, 2], nan_mean);
        assert!(v[0].is_nan());
        let (v, s) = down(&[1u8, 2, 3, 4, 5, 6], [1, 2, 3], [1, 2, 2], |b| b[0]);
        assert_eq!((v, s), (vec![1, 3], [1, 1, 2]));
    }
}
