//! AnnData `.h5ad` spots (scanpy, squidpy, HEST-1k) through the pure-Rust
//! `hdf5-reader` crate: counts from `X`, `layers/NAME` or `raw/X` (dense, CSR or
//! CSC, anndata >= 0.8 `encoding-type` attributes or the older `h5sparse_format`),
//! spot ids from `obs`'s index, genes from `var`'s (or `raw/var`'s), positions from
//! `obsm/spatial` (pixels of the full-resolution image), array coordinates from
//! `obs/array_col` + `obs/array_row`, sections from `obs/z`, the spot diameter from
//! `uns/spatial/LIBRARY/scalefactors/spot_diameter_fullres`.

use std::path::Path;

use hdf5_reader::Hdf5File;
use hdf5_reader::group::Group;

use super::h5::{dataset_f64, dataset_i64, guarded, open_bytes};
use super::{SpotFormat, SpotTable, bad, check_count, check_unique, read_all};
use crate::error::{Error, Result};
use crate::expression::CountMatrix;
use crate::limits::alloc_bytes;

/// Which parts of an `.h5ad` file hold the spots (see [`super::SpotPaths`]).
#[derive(Debug, Clone, Default)]
pub struct H5adOptions {
    /// Raw counts in `layers/NAME` instead of `X`.
    pub layer: Option<String>,
    /// Raw counts in `raw/X` (genes from `raw/var`) instead of `X`.
    pub raw: bool,
    /// The `obsm` entry with spot positions in image pixels (default `spatial`).
    pub spatial_key: Option<String>,
    /// The `uns/spatial` library whose scale factors give the spot diameter (default:
    /// the only one).
    pub library_id: Option<String>,
}

/// Read the spots of an AnnData `.h5ad` file.
pub(super) fn read(path: &Path, opts: &H5adOptions) -> Result<SpotTable> {
    if opts.raw && opts.layer.is_some() {
        return Err(Error::arg(
            "layer",
            "give either a layer or raw counts (--raw), not both",
        ));
    }
    let bytes = read_all(path)?;
    guarded(path, ".h5ad", || parse(path, bytes, opts))
}

fn parse(path: &Path, bytes: Vec<u8>, opts: &H5adOptions) -> Result<SpotTable> {
    let f = open_bytes(path, bytes)?;
    let ids = index(&f, path, "obs")?;
    let (element, var) = match (&opts.layer, opts.raw) {
        (Some(l), _) => (format!("layers/{l}"), "var"),
        (None, true) => ("raw/X".to_string(), "raw/var"),
        (None, false) => ("X".to_string(), "var"),
    };
    if opts.raw && f.group("raw").is_err() {
        return Err(bad(path, "no raw/X: the file keeps no raw counts in .raw"));
    }
    let genes = index(&f, path, var)?;
    check_unique(path, &ids, "spot (obs)")?;
    check_unique(path, &genes, "gene (var)")?;
    let counts = matrix(&f, path, &element, &ids, genes).map_err(|e| hint(e, &f, opts))?;
    let key = opts.spatial_key.as_deref().unwrap_or("spatial");
    let pixel = positions(&f, path, key, ids.len())?;
    let array = match (
        obs_column(&f, path, "array_col", ids.len())?,
        obs_column(&f, path, "array_row", ids.len())?,
    ) {
        (Some(x), Some(y)) => Some(x.into_iter().zip(y).map(|(x, y)| [x, y]).collect()),
        _ => None,
    };
    let z = obs_column(&f, path, "z", ids.len())?;
    let spot_diameter_px = diameter(&f, path, opts.library_id.as_deref())?;
    Ok(SpotTable {
        format: SpotFormat::H5ad,
        files: vec![path.to_path_buf()],
        ids,
        pixel,
        array,
        z,
        spot_diameter_px,
        dropped_outside_tissue: 0,
        counts,
    })
}

/// Names of the members of `group`, for messages ("none" when empty or absent).
fn members(f: &Hdf5File, group: &str) -> String {
    let names = f.group(group).and_then(|g| g.member_names()).map(|(g, d)| {
        let mut all: Vec<String> = g.into_iter().chain(d).collect();
        all.sort();
        all
    });
    match names {
        Ok(v) if !v.is_empty() => v.join(", "),
        _ => "none".to_string(),
    }
}

fn attr_string(g: &Group, name: &str) -> Option<String> {
    g.attribute(name).ok()?.read_string().ok()
}

/// The index of dataframe `group` (`obs`, `var`, `raw/var`): the string dataset its
/// `_index` attribute names.
fn index(f: &Hdf5File, path: &Path, group: &str) -> Result<Vec<String>> {
    let g = match f.group(group) {
        Ok(g) => g,
        Err(_) if f.dataset(group).is_ok() => {
            return Err(bad(
                path,
                format!(
                    "{group} is a table dataset written by anndata < 0.7; \
                     re-save the file with a current anndata"
                ),
            ));
        }
        Err(_) => return Err(bad(path, format!("not an AnnData file: no {group} group"))),
    };
    let col = attr_string(&g, "_index").unwrap_or_else(|| "_index".to_string());
    let ds = g
        .dataset(&col)
        .map_err(|e| bad(path, format!("{group}: no index column '{col}' ({e})")))?;
    if let Ok(v) = ds.read_strings() {
        return Ok(v);
    }
    // An integer index (anndata writes a RangeIndex as strings, but be lenient).
    dataset_i64(&ds)
        .map(|v| v.into_iter().map(|i| i.to_string()).collect())
        .ok_or_else(|| bad(path, format!("{group}/{col}: cannot read the index names")))
}

/// Append " (...)" advice to a non-integer count error: `X` of a processed file
/// often holds normalised values, the raw counts sit in a layer or in `raw`.
fn hint(e: Error, f: &Hdf5File, opts: &H5adOptions) -> Error {
    match e {
        Error::BadFile { path, message }
            if message.contains("not an integer") && opts.layer.is_none() && !opts.raw =>
        {
            let raw = if f.group("raw").is_ok() {
                "raw/X; "
            } else {
                ""
            };
            Error::BadFile {
                path,
                message: format!(
                    "{message}: X holds processed values; name the raw counts with --layer NAME \
                     or --raw (here: {raw}layers: {})",
                    members(f, "layers")
                ),
            }
        }
        other => other,
    }
}

/// The counts of `element` (a dense dataset or a CSR / CSC group) over `genes`.
fn matrix(
    f: &Hdf5File,
    path: &Path,
    element: &str,
    ids: &[String],
    genes: Vec<String>,
) -> Result<CountMatrix> {
    let (n, g) = (ids.len(), genes.len());
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    let count = |v: f64, i: usize, j: usize| check_count(path, v, &ids[i], &genes[j]);
    if let Ok(ds) = f.dataset(element) {
        let shape = ds.shape().to_vec();
        if shape != [n as u64, g as u64] {
            return Err(bad(
                path,
                format!("{element} has shape {shape:?}, not {n} spots x {g} genes (obs x var)"),
            ));
        }
        alloc_bytes(&path.to_string_lossy(), &shape, 8, element)?;
        let v = dataset_f64(&ds)
            .ok_or_else(|| bad(path, format!("{element}: not a numeric matrix")))?;
        for (i, row) in rows.iter_mut().enumerate() {
            for (j, &x) in v[i * g..(i + 1) * g].iter().enumerate() {
                if x != 0.0 {
                    row.push((j as u32, count(x, i, j)?));
                }
            }
        }
    } else {
        let grp = f.group(element).map_err(|_| {
            let what = match element.split_once('/') {
                Some(("layers", l)) => format!("no layer '{l}' (layers: {})", members(f, "layers")),
                Some(("raw", _)) => "no raw/X in the file's .raw".to_string(),
                _ => "no X".to_string(),
            };
            bad(path, what)
        })?;
        let kind = attr_string(&grp, "encoding-type")
            .or_else(|| attr_string(&grp, "h5sparse_format").map(|s| format!("{s}_matrix")))
            .unwrap_or_default();
        let csr = match kind.as_str() {
            "csr_matrix" => true,
            "csc_matrix" => false,
            other => {
                return Err(bad(
                    path,
                    format!("{element}: '{other}' is not a dense, CSR or CSC matrix"),
                ));
            }
        };
        let shape = ["shape", "h5sparse_shape"]
            .iter()
            .find_map(|a| {
                let a = grp.attribute(a).ok()?;
                a.read_1d::<i64>()
                    .or_else(|_| {
                        a.read_1d::<i32>()
                            .map(|v| v.into_iter().map(i64::from).collect())
                    })
                    .or_else(|_| {
                        a.read_1d::<u64>()
                            .map(|v| v.into_iter().map(|x| x as i64).collect())
                    })
                    .ok()
            })
            .unwrap_or_default();
        if shape != [n as i64, g as i64] {
            return Err(bad(
                path,
                format!("{element} has shape {shape:?}, not {n} spots x {g} genes (obs x var)"),
            ));
        }
        let part = |name: &str| {
            grp.dataset(name)
                .map_err(|e| bad(path, format!("{element}: no {name} ({e})")))
        };
        let (data_ds, indices_ds, indptr_ds) = (part("data")?, part("indices")?, part("indptr")?);
        for ds in [&data_ds, &indices_ds, &indptr_ds] {
            alloc_bytes(&path.to_string_lossy(), ds.shape(), 8, element)?;
        }
        let data = dataset_f64(&data_ds)
            .ok_or_else(|| bad(path, format!("{element}/data: not numeric")))?;
        let int = |ds: &hdf5_reader::Dataset, name: &str| {
            dataset_i64(ds).ok_or_else(|| bad(path, format!("{element}/{name}: not integers")))
        };
        let (indices, indptr) = (int(&indices_ds, "indices")?, int(&indptr_ds, "indptr")?);
        let (major, minor) = if csr { (n, g) } else { (g, n) };
        if indptr.len() != major + 1
            || indices.len() != data.len()
            || indptr[0] != 0
            || indptr[major] != data.len() as i64
            || indptr.windows(2).any(|w| w[1] < w[0])
        {
            return Err(bad(
                path,
                format!("{element}: indptr / indices / data are inconsistent"),
            ));
        }
        for a in 0..major {
            for k in indptr[a] as usize..indptr[a + 1] as usize {
                let b = indices[k];
                if b < 0 || b as usize >= minor {
                    return Err(bad(path, format!("{element}: index {b} out of range")));
                }
                let (i, j) = if csr {
                    (a, b as usize)
                } else {
                    (b as usize, a)
                };
                rows[i].push((j as u32, count(data[k], i, j)?));
            }
        }
    }
    let mut m = CountMatrix::new(genes);
    for r in rows {
        m.push_row(r);
    }
    Ok(m)
}

/// `obsm/KEY`: one (x, y) per spot in image pixels.
fn positions(f: &Hdf5File, path: &Path, key: &str, n: usize) -> Result<Vec<[f64; 2]>> {
    let name = format!("obsm/{key}");
    let ds = f.dataset(&name).map_err(|_| {
        bad(
            path,
            format!(
                "no {name} with spot positions (obsm: {}); name the entry with --spatial-key",
                members(f, "obsm")
            ),
        )
    })?;
    let shape = ds.shape().to_vec();
    if shape.len() != 2 || shape[0] != n as u64 || shape[1] < 2 {
        return Err(bad(
            path,
            format!("{name} has shape {shape:?}, not {n} spots x 2 (x, y)"),
        ));
    }
    alloc_bytes(&path.to_string_lossy(), &shape, 8, &name)?;
    let v = dataset_f64(&ds).ok_or_else(|| bad(path, format!("{name}: not numeric")))?;
    let w = shape[1] as usize;
    Ok((0..n).map(|i| [v[i * w], v[i * w + 1]]).collect())
}

/// A numeric `obs` column of one value per spot, when present.
fn obs_column(f: &Hdf5File, path: &Path, col: &str, n: usize) -> Result<Option<Vec<f64>>> {
    let Ok(ds) = f.dataset(&format!("obs/{col}")) else {
        return Ok(None);
    };
    if ds.shape() != [n as u64] {
        return Err(bad(
            path,
            format!("obs/{col} has shape {:?}, not {n} spots", ds.shape()),
        ));
    }
    dataset_f64(&ds)
        .map(Some)
        .ok_or_else(|| bad(path, format!("obs/{col}: not numeric")))
}

/// `uns/spatial/LIBRARY/scalefactors/spot_diameter_fullres`, when present.
fn diameter(f: &Hdf5File, path: &Path, library: Option<&str>) -> Result<Option<f64>> {
    let Ok(spatial) = f.group("uns/spatial") else {
        return Ok(None);
    };
    let lib = match library {
        Some(l) => l.to_string(),
        None => match spatial.member_names() {
            Ok((groups, _)) if groups.len() == 1 => groups[0].clone(),
            _ => return Ok(None),
        },
    };
    let name = format!("uns/spatial/{lib}/scalefactors/spot_diameter_fullres");
    match f.dataset(&name) {
        Ok(ds) => match dataset_f64(&ds).as_deref() {
            Some([d]) => Ok(Some(*d)),
            _ => Err(bad(path, format!("{name}: not one number"))),
        },
        Err(_) if library.is_some() => Err(bad(
            path,
            format!("no {name} (libraries: {})", members(f, "uns/spatial")),
        )),
        Err(_) => Ok(None),
    }
}
