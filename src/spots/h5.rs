//! 10x `filtered_feature_bc_matrix.h5` through the pure-Rust `hdf5-reader` crate (no
//! libhdf5): `/matrix/{barcodes, data, indices, indptr, shape}` and
//! `/matrix/features/name` (or `/matrix/genes` + `/matrix/gene_names` of the older
//! layout), a genes x barcodes matrix in compressed sparse column form.

use std::path::Path;

use hdf5_reader::{Dataset, Datatype, H5Type, Hdf5File, OpenOptions};

use super::{bad, check_count, read_all};
use crate::error::Result;
use crate::expression::CountMatrix;

/// A numeric dataset's values as f64, whatever its integer or float type; `None` when
/// it is not numeric or cannot be read.
pub(super) fn dataset_f64(ds: &Dataset) -> Option<Vec<f64>> {
    fn all<T: H5Type + Copy>(ds: &Dataset, f: impl Fn(T) -> f64) -> Option<Vec<f64>> {
        ds.read_array::<T>()
            .ok()
            .map(|a| a.iter().map(|&v| f(v)).collect())
    }
    match ds.dtype() {
        Datatype::FloatingPoint { size: 4, .. } => all::<f32>(ds, f64::from),
        Datatype::FloatingPoint { size: 8, .. } => all::<f64>(ds, |v| v),
        Datatype::FixedPoint { size, signed, .. } => match (*size, *signed) {
            (1, true) => all::<i8>(ds, f64::from),
            (1, false) => all::<u8>(ds, f64::from),
            (2, true) => all::<i16>(ds, f64::from),
            (2, false) => all::<u16>(ds, f64::from),
            (4, true) => all::<i32>(ds, f64::from),
            (4, false) => all::<u32>(ds, f64::from),
            (8, true) => all::<i64>(ds, |v| v as f64),
            (8, false) => all::<u64>(ds, |v| v as f64),
            _ => None,
        },
        _ => None,
    }
}

/// An integer dataset's values as i64 (unsigned values above `i64::MAX` saturate);
/// `None` when it is not an integer dataset or cannot be read.
pub(super) fn dataset_i64(ds: &Dataset) -> Option<Vec<i64>> {
    fn all<T: H5Type + Copy>(ds: &Dataset, f: impl Fn(T) -> i64) -> Option<Vec<i64>> {
        ds.read_array::<T>()
            .ok()
            .map(|a| a.iter().map(|&v| f(v)).collect())
    }
    match ds.dtype() {
        Datatype::FixedPoint { size, signed, .. } => match (*size, *signed) {
            (1, true) => all::<i8>(ds, i64::from),
            (1, false) => all::<u8>(ds, i64::from),
            (2, true) => all::<i16>(ds, i64::from),
            (2, false) => all::<u16>(ds, i64::from),
            (4, true) => all::<i32>(ds, i64::from),
            (4, false) => all::<u32>(ds, i64::from),
            (8, true) => all::<i64>(ds, |v| v),
            (8, false) => all::<u64>(ds, |v| i64::try_from(v).unwrap_or(i64::MAX)),
            _ => None,
        },
        _ => None,
    }
}

/// Open an HDF5 file held in memory, with reads bounded by the memory budget.
pub(super) fn open_bytes(path: &Path, bytes: Vec<u8>) -> Result<Hdf5File> {
    let budget = usize::try_from(crate::limits::memory_budget()).unwrap_or(usize::MAX);
    Hdf5File::from_vec_with_options(bytes, OpenOptions::default().with_max_read_bytes(budget))
        .map_err(|e| bad(path, format!("not a readable HDF5 file: {e}")))
}

/// Run a parse of a damaged file without letting a panic inside the reader take the
/// process down: a panic is reported as a damaged file.
pub(super) fn guarded<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(bad(path, format!("malformed {what}: the file is damaged"))),
    }
}

fn ints(f: &Hdf5File, path: &Path, name: &str) -> Result<Vec<i64>> {
    let ds = f
        .dataset(name)
        .map_err(|e| bad(path, format!("malformed 10x HDF5: no dataset {name} ({e})")))?;
    dataset_i64(&ds).ok_or_else(|| {
        bad(
            path,
            format!("malformed 10x HDF5: {name} is not an integer dataset or cannot be read"),
        )
    })
}

fn counts(f: &Hdf5File, path: &Path, name: &str) -> Result<Vec<f64>> {
    let ds = f
        .dataset(name)
        .map_err(|e| bad(path, format!("malformed 10x HDF5: no dataset {name} ({e})")))?;
    dataset_f64(&ds).ok_or_else(|| bad(path, format!("malformed 10x HDF5: cannot read {name}")))
}

fn strings(f: &Hdf5File, path: &Path, names: &[&str]) -> Result<Vec<String>> {
    let mut last = String::new();
    for name in names {
        match f.dataset(name) {
            Ok(ds) => {
                return ds.read_strings().map_err(|e| {
                    bad(
                        path,
                        format!(
                            "malformed 10x HDF5: cannot read {name} ({e}); damaged or truncated?"
                        ),
                    )
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(bad(
        path,
        format!(
            "malformed 10x HDF5: cannot open {} ({last}); the file is damaged, truncated or not a 10x matrix",
            names.join(" or ")
        ),
    ))
}

/// Barcodes and the spots x genes counts of a 10x matrix file.
pub(super) fn read_10x_h5(path: &Path) -> Result<(Vec<String>, CountMatrix)> {
    let bytes = read_all(path)?;
    guarded(path, "10x HDF5", || parse(path, bytes))
}

fn parse(path: &Path, bytes: Vec<u8>) -> Result<(Vec<String>, CountMatrix)> {
    let f = open_bytes(path, bytes)?;
    let barcodes = strings(&f, path, &["/matrix/barcodes"])?;
    let genes = strings(&f, path, &["/matrix/features/name", "/matrix/gene_names"])?;
    let shape = ints(&f, path, "/matrix/shape")?;
    let data = counts(&f, path, "/matrix/data")?;
    let indices = ints(&f, path, "/matrix/indices")?;
    let indptr = ints(&f, path, "/matrix/indptr")?;
    let (ng, nb) = (genes.len(), barcodes.len());
    if shape.len() != 2 || shape[0] as usize != ng || shape[1] as usize != nb {
        return Err(bad(
            path,
            format!(
                "malformed 10x HDF5: /matrix/shape {shape:?} disagrees with {ng} features and {nb} barcodes"
            ),
        ));
    }
    if indptr.len() != nb + 1
        || indices.len() != data.len()
        || indptr.first() != Some(&0)
        || indptr.last().copied() != Some(data.len() as i64)
        || indptr.windows(2).any(|w| w[1] < w[0])
    {
        return Err(bad(
            path,
            "malformed 10x HDF5: indptr/indices/data lengths are inconsistent",
        ));
    }
    let mut m = CountMatrix::new(genes);
    for b in 0..nb {
        let mut row = Vec::with_capacity((indptr[b + 1] - indptr[b]) as usize);
        for k in indptr[b] as usize..indptr[b + 1] as usize {
            let g = indices[k];
            if g < 0 || g as usize >= ng {
                return Err(bad(
                    path,
                    format!("malformed 10x HDF5: gene index {g} out of range"),
                ));
            }
            let c = check_count(path, data[k], &barcodes[b], &m.genes[g as usize])?;
            row.push((g as u32, c));
        }
        m.push_row(row);
    }
    Ok((barcodes, m))
}
