//! 10x `filtered_feature_bc_matrix.h5` through the pure-Rust `hdf5-reader` crate (no
//! libhdf5): `/matrix/{barcodes, data, indices, indptr, shape}` and
//! `/matrix/features/name` (or `/matrix/genes` + `/matrix/gene_names` of the older
//! layout), a genes x barcodes matrix in compressed sparse column form.

use std::path::Path;

use hdf5_reader::Hdf5File;

use super::{bad, check_count, read_all};
use crate::error::Result;
use crate::expression::CountMatrix;

fn ints(f: &Hdf5File, path: &Path, name: &str) -> Result<Vec<i64>> {
    let ds = f
        .dataset(name)
        .map_err(|e| bad(path, format!("malformed 10x HDF5: no dataset {name} ({e})")))?;
    if let Ok(a) = ds.read_array::<i64>() {
        return Ok(a.iter().copied().collect());
    }
    if let Ok(a) = ds.read_array::<i32>() {
        return Ok(a.iter().map(|&v| v as i64).collect());
    }
    if let Ok(a) = ds.read_array::<u32>() {
        return Ok(a.iter().map(|&v| v as i64).collect());
    }
    if let Ok(a) = ds.read_array::<u64>() {
        return Ok(a.iter().map(|&v| v as i64).collect());
    }
    Err(bad(
        path,
        format!("malformed 10x HDF5: {name} is not an integer dataset or cannot be read"),
    ))
}

fn counts(f: &Hdf5File, path: &Path, name: &str) -> Result<Vec<f64>> {
    if let Ok(v) = ints(f, path, name) {
        return Ok(v.into_iter().map(|v| v as f64).collect());
    }
    let ds = f
        .dataset(name)
        .map_err(|e| bad(path, format!("malformed 10x HDF5: no dataset {name} ({e})")))?;
    if let Ok(a) = ds.read_array::<f32>() {
        return Ok(a.iter().map(|&v| v as f64).collect());
    }
    if let Ok(a) = ds.read_array::<f64>() {
        return Ok(a.iter().copied().collect());
    }
    Err(bad(path, format!("malformed 10x HDF5: cannot read {name}")))
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
    // The reader validates what it parses, but a damaged file must never take the
    // process down: treat a panic inside it as a malformed file.
    let parsed = std::panic::catch_unwind(|| parse(path, bytes));
    match parsed {
        Ok(r) => r,
        Err(_) => Err(bad(path, "malformed 10x HDF5: the file is damaged")),
    }
}

fn parse(path: &Path, bytes: Vec<u8>) -> Result<(Vec<String>, CountMatrix)> {
    let f = Hdf5File::from_vec(bytes)
        .map_err(|e| bad(path, format!("not a readable HDF5 file: {e}")))?;
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
