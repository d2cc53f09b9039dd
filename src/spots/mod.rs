//! Spot readers: the her2st Spatial Transcriptomics layout, 10x Visium output (MTX
//! directory or `.h5`, tissue positions, scale factors), AnnData `.h5ad` files and
//! Parquet tables (wide or long). Each returns a [`SpotTable`]: spot ids, positions in the sample image's
//! pixels and a sparse count matrix, validated (unique ids, non-negative integer
//! counts, every counted spot has a position) with errors that name the file.

mod arrays;
mod h5;
mod h5ad;
mod parquet_spots;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::expression::CountMatrix;
pub use arrays::SpotPositions;
pub use h5ad::H5adOptions;

/// Spot file layouts understood by [`read_spots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpotFormat {
    /// her2st: `counts/NAME.tsv.gz` (spots x genes) + `spots/NAME_selection.tsv`.
    Her2st,
    /// 10x Visium: `filtered_feature_bc_matrix/` or `filtered_feature_bc_matrix.h5`,
    /// `spatial/tissue_positions(.csv|_list.csv)`, `spatial/scalefactors_json.json`.
    Visium,
    /// Parquet, wide (one column per gene) or long (`spot, gene, count` rows).
    Parquet,
    /// AnnData `.h5ad` (scanpy, squidpy, HEST-1k): counts from `X`, a layer or
    /// `raw/X`, positions from `obsm["spatial"]` (see [`H5adOptions`]).
    H5ad,
    /// Arrays handed over in memory ([`SpotTable::from_arrays`], e.g. from an AnnData
    /// object by the Python package); not a file layout.
    Arrays,
}

impl SpotFormat {
    /// Parse `her2st`, `visium`, `h5ad` or `parquet`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "her2st" | "st" => Ok(SpotFormat::Her2st),
            "visium" | "10x" => Ok(SpotFormat::Visium),
            "parquet" => Ok(SpotFormat::Parquet),
            "h5ad" | "anndata" => Ok(SpotFormat::H5ad),
            _ => Err(Error::arg(
                "format",
                format!("'{s}' is not a spot format; use her2st, visium, h5ad or parquet"),
            )),
        }
    }

    /// The layout named by `format`, or the one [`SpotFormat::detect`] guesses from
    /// `path` when none is named.
    pub fn named_or_detected(format: Option<&str>, path: &Path) -> Result<Self> {
        match format {
            Some(f) => SpotFormat::parse(f),
            None => SpotFormat::detect(path),
        }
    }

    /// Guess the layout of `path`: a `.parquet` file, an `.h5ad` file, a Visium
    /// directory or `.h5`, or a her2st counts file (`.tsv`, `.tsv.gz`).
    pub fn detect(path: &Path) -> Result<Self> {
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".parquet") {
            Ok(SpotFormat::Parquet)
        } else if name.ends_with(".h5ad") {
            Ok(SpotFormat::H5ad)
        } else if path.is_dir() || name.ends_with(".h5") {
            Ok(SpotFormat::Visium)
        } else if name.ends_with(".tsv") || name.ends_with(".tsv.gz") {
            Ok(SpotFormat::Her2st)
        } else {
            Err(Error::arg(
                "format",
                format!(
                    "{}: cannot tell the spot format from the name",
                    path.display()
                ),
            ))
        }
    }
}

/// Spots read from a source, before quality control.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotTable {
    /// The layout read.
    pub format: SpotFormat,
    /// The files read, for messages and provenance.
    pub files: Vec<PathBuf>,
    /// Spot ids (unique).
    pub ids: Vec<String>,
    /// Spot centres (x, y) in pixels of the sample's image (full resolution).
    pub pixel: Vec<[f64; 2]>,
    /// Array (grid) coordinates (x = column, y = row) when the layout has them.
    pub array: Option<Vec<[f64; 2]>>,
    /// Section index (z) of each spot, when the source says (Parquet `z` / `plane_z`).
    pub z: Option<Vec<f64>>,
    /// Spot diameter in image pixels, when known (Visium scale factors).
    pub spot_diameter_px: Option<f64>,
    /// Spots whose positions table entry marks them outside the tissue (dropped).
    pub dropped_outside_tissue: usize,
    /// The counts, one row per spot in `ids` order.
    pub counts: CountMatrix,
}

/// Where a spot table's positions live, when not beside the counts, and which parts
/// of an `.h5ad` file to read.
#[derive(Debug, Clone, Default)]
pub struct SpotPaths {
    /// Positions table (her2st selection TSV or Visium tissue positions CSV).
    pub positions: Option<PathBuf>,
    /// The parts of an AnnData file holding counts and positions.
    pub h5ad: H5adOptions,
}

/// Read spots from `path` in `format` (see [`SpotFormat`]).
pub fn read_spots(path: &Path, format: SpotFormat, extra: &SpotPaths) -> Result<SpotTable> {
    if !path.exists() {
        return Err(Error::bad_file(path, "no such file or directory"));
    }
    let h = &extra.h5ad;
    let other_key = h.spatial_key.as_deref().is_some_and(|k| k != "spatial");
    if format != SpotFormat::H5ad
        && (h.layer.is_some() || h.raw || h.library_id.is_some() || other_key)
    {
        return Err(Error::arg(
            "layer",
            format!(
                "layer, raw, spatial key and library id choose parts of an .h5ad file; {} is read as {format:?}",
                path.display()
            ),
        ));
    }
    let t = match format {
        SpotFormat::Her2st => read_her2st(path, extra.positions.as_deref())?,
        SpotFormat::Visium => read_visium(path, extra.positions.as_deref())?,
        SpotFormat::Parquet => parquet_spots::read(path)?,
        SpotFormat::H5ad => h5ad::read(path, &extra.h5ad)?,
        SpotFormat::Arrays => {
            return Err(Error::arg(
                "format",
                "'arrays' spots are passed in memory (SpotTable::from_arrays), not read from a file",
            ));
        }
    };
    if t.ids.is_empty() {
        return Err(Error::bad_file(path, "no spots to ingest"));
    }
    check_coordinates(path, &t)?;
    Ok(t)
}

/// Largest absolute spot coordinate accepted (pixels, array steps or sections): a
/// whole slide at 0.1 um/px is ~10^6 px across.
pub const MAX_COORDINATE: f64 = 1e7;

/// Every spot position, array coordinate and section index must be finite and within
/// [`MAX_COORDINATE`] (spot grids and maps are sized from them).
pub(crate) fn check_coordinates(path: &Path, t: &SpotTable) -> Result<()> {
    let bad_at = |what: &str, i: usize, v: &[f64]| {
        bad(
            path,
            format!(
                "spot {:?}: {what} {v:?} is not a finite coordinate within +-{MAX_COORDINATE:e}",
                t.ids.get(i).map(String::as_str).unwrap_or("?")
            ),
        )
    };
    let ok = |v: &f64| v.is_finite() && v.abs() <= MAX_COORDINATE;
    if let Some(i) = t.pixel.iter().position(|p| !p.iter().all(ok)) {
        return Err(bad_at("position", i, &t.pixel[i]));
    }
    if let Some(a) = &t.array
        && let Some(i) = a.iter().position(|p| !p.iter().all(ok))
    {
        return Err(bad_at("array coordinate", i, &a[i]));
    }
    if let Some(z) = &t.z
        && let Some(i) = z.iter().position(|v| !ok(v))
    {
        return Err(bad_at("section", i, &[z[i]]));
    }
    if t.spot_diameter_px
        .is_some_and(|d| !(d.is_finite() && d > 0.0))
    {
        return Err(bad(path, "spot diameter must be a positive finite number"));
    }
    Ok(())
}

pub(crate) fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::bad_file(path, msg)
}

fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy();
    if name.ends_with(".gz") {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        ))))
    } else {
        Ok(Box::new(BufReader::new(f)))
    }
}

fn csv_reader(path: &Path, delim: u8, headers: bool) -> Result<csv::Reader<Box<dyn BufRead>>> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(headers)
        .flexible(false)
        .from_reader(open_text(path)?))
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(_) => bad(path, format!("cannot read: {e} (truncated or not gzip?)")),
        _ => bad(path, format!("malformed table: {e}")),
    }
}

/// A count as found in a file: must be a finite, non-negative integer.
pub(crate) fn parse_count(path: &Path, s: &str, spot: &str, gene: &str) -> Result<f32> {
    let v: f64 = s.trim().parse().map_err(|_| {
        bad(
            path,
            format!("spot '{spot}', gene '{gene}': '{s}' is not a number"),
        )
    })?;
    check_count(path, v, spot, gene)
}

/// Counts are non-negative integers; normalised or negative values are refused.
pub(crate) fn check_count(path: &Path, v: f64, spot: &str, gene: &str) -> Result<f32> {
    if !v.is_finite() || v < 0.0 {
        return Err(bad(
            path,
            format!(
                "spot '{spot}', gene '{gene}': count {v} is negative or not finite; raw counts expected"
            ),
        ));
    }
    if v > f32::MAX as f64 {
        return Err(bad(
            path,
            format!(
                "spot '{spot}', gene '{gene}': count {v} is too large (over {:e})",
                f32::MAX
            ),
        ));
    }
    if v.fract() != 0.0 {
        return Err(bad(
            path,
            format!(
                "spot '{spot}', gene '{gene}': count {v} is not an integer; raw counts are expected, \
                 not normalised values"
            ),
        ));
    }
    Ok(v as f32)
}

pub(crate) fn check_unique(path: &Path, ids: &[String], what: &str) -> Result<()> {
    let mut seen = HashSet::with_capacity(ids.len());
    let dups: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    if !dups.is_empty() {
        let list: Vec<&str> = dups.iter().take(5).map(|s| s.as_str()).collect();
        return Err(bad(
            path,
            format!(
                "{} duplicated {what} id(s): {}",
                dups.len(),
                list.join(", ")
            ),
        ));
    }
    Ok(())
}

fn missing_list(v: &[String]) -> String {
    let mut s: Vec<&str> = v.iter().take(5).map(|s| s.as_str()).collect();
    if v.len() > 5 {
        s.push("...");
    }
    s.join(", ")
}

/// Every spot of the count matrix must have a row in the positions table.
fn check_positions(
    positions: &Path,
    counts: &Path,
    ids: &[String],
    what: &str,
    has: impl Fn(&str) -> bool,
) -> Result<()> {
    let absent: Vec<String> = ids.iter().filter(|id| !has(id)).cloned().collect();
    if absent.is_empty() {
        return Ok(());
    }
    Err(bad(
        positions,
        format!(
            "does not match the count matrix {}: {} of its {} {what} have no position ({})",
            counts.display(),
            absent.len(),
            ids.len(),
            missing_list(&absent)
        ),
    ))
}

// --- her2st ---------------------------------------------------------------------

fn read_her2st(counts_path: &Path, positions: Option<&Path>) -> Result<SpotTable> {
    let sel_path = match positions {
        Some(p) => p.to_path_buf(),
        None => her2st_selection_for(counts_path)?,
    };
    let mut rdr = csv_reader(counts_path, b'\t', true)?;
    let header = rdr.headers().map_err(|e| csv_err(counts_path, e))?.clone();
    if header.len() < 2 {
        return Err(bad(
            counts_path,
            "header has no gene columns (tab-separated expected)",
        ));
    }
    let genes: Vec<String> = header.iter().skip(1).map(|s| s.to_string()).collect();
    check_unique(counts_path, &genes, "gene")?;
    let mut counts = CountMatrix::new(genes.clone());
    let mut ids = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(counts_path, e))?;
        let id = rec.get(0).unwrap_or("").to_string();
        let mut row = Vec::new();
        for (j, s) in rec.iter().skip(1).enumerate() {
            if s == "0" {
                continue;
            }
            let c = parse_count(counts_path, s, &id, &genes[j])?;
            row.push((j as u32, c));
        }
        counts.push_row(row);
        ids.push(id);
    }
    check_unique(counts_path, &ids, "spot")?;

    // Selection table: x y new_x new_y pixel_x pixel_y selected.
    let mut srd = csv_reader(&sel_path, b'\t', true)?;
    let h = srd.headers().map_err(|e| csv_err(&sel_path, e))?.clone();
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(&sel_path, format!("no '{name}' column")))
    };
    let (cx, cy, cpx, cpy) = (col("x")?, col("y")?, col("pixel_x")?, col("pixel_y")?);
    let csel = h.iter().position(|c| c == "selected");
    let num = |rec: &csv::StringRecord, c: usize| -> Result<f64> {
        rec.get(c)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                bad(
                    &sel_path,
                    format!(
                        "line {}: not a number in column {}",
                        rec.position()
                            .map_or_else(|| "?".to_string(), |p| p.line().to_string()),
                        c + 1
                    ),
                )
            })
    };
    let mut pos: HashMap<String, ([f64; 2], [f64; 2], bool)> = HashMap::new();
    for rec in srd.records() {
        let rec = rec.map_err(|e| csv_err(&sel_path, e))?;
        let (x, y) = (num(&rec, cx)?, num(&rec, cy)?);
        let key = format!("{}x{}", x.round() as i64, y.round() as i64);
        let selected = match csel {
            Some(c) => num(&rec, c)? == 1.0,
            None => true,
        };
        if pos
            .insert(
                key.clone(),
                ([num(&rec, cpx)?, num(&rec, cpy)?], [x, y], selected),
            )
            .is_some()
        {
            return Err(bad(&sel_path, format!("spot {key} appears twice")));
        }
    }
    check_positions(&sel_path, counts_path, &ids, "spots", |id| {
        pos.contains_key(id)
    })?;
    let keep: Vec<usize> = (0..ids.len()).filter(|&i| pos[&ids[i]].2).collect();
    let dropped = ids.len() - keep.len();
    Ok(SpotTable {
        format: SpotFormat::Her2st,
        files: vec![counts_path.to_path_buf(), sel_path],
        pixel: keep.iter().map(|&i| pos[&ids[i]].0).collect(),
        array: Some(keep.iter().map(|&i| pos[&ids[i]].1).collect()),
        z: None,
        spot_diameter_px: None,
        dropped_outside_tissue: dropped,
        counts: counts.select_rows(&keep),
        ids: keep.iter().map(|&i| ids[i].clone()).collect(),
    })
}

/// `.../counts/NAME.tsv.gz` -> `.../spots/NAME_selection.tsv`.
fn her2st_selection_for(counts: &Path) -> Result<PathBuf> {
    let file = counts
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = file
        .trim_end_matches(".gz")
        .trim_end_matches(".tsv")
        .to_string();
    let root = counts
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("."));
    let cand = root.join("spots").join(format!("{name}_selection.tsv"));
    if cand.exists() {
        Ok(cand)
    } else {
        Err(Error::arg(
            "positions",
            format!(
                "{}: no spot selection table at {}",
                counts.display(),
                cand.display()
            ),
        ))
    }
}

// --- Visium ---------------------------------------------------------------------

fn read_visium(path: &Path, positions: Option<&Path>) -> Result<SpotTable> {
    // `path` is the output directory, the matrix directory or the .h5 file.
    let (matrix, root) = if path.is_dir() {
        let h5 = path.join("filtered_feature_bc_matrix.h5");
        let mtx = path.join("filtered_feature_bc_matrix");
        if mtx.is_dir() {
            (mtx, path.to_path_buf())
        } else if h5.is_file() {
            (h5, path.to_path_buf())
        } else if path.join("matrix.mtx.gz").is_file() || path.join("matrix.mtx").is_file() {
            (
                path.to_path_buf(),
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            )
        } else {
            return Err(bad(
                path,
                "not a Visium output: no filtered_feature_bc_matrix/ or filtered_feature_bc_matrix.h5",
            ));
        }
    } else {
        (
            path.to_path_buf(),
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        )
    };
    let (barcodes, counts, matrix_files) = if matrix.is_dir() {
        read_mtx_dir(&matrix)?
    } else {
        let (b, c) = h5::read_10x_h5(&matrix)?;
        (b, c, vec![matrix.clone()])
    };
    check_unique(&matrix, &barcodes, "barcode")?;
    let spatial = root.join("spatial");
    let pos_path = match positions {
        Some(p) => p.to_path_buf(),
        None => ["tissue_positions.csv", "tissue_positions_list.csv"]
            .iter()
            .map(|f| spatial.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::arg(
                    "positions",
                    format!(
                        "{}: no tissue_positions.csv or tissue_positions_list.csv",
                        spatial.display()
                    ),
                )
            })?,
    };
    let pos = read_tissue_positions(&pos_path)?;
    check_positions(&pos_path, &matrix, &barcodes, "barcodes", |b| {
        pos.contains_key(b)
    })?;
    let keep: Vec<usize> = (0..barcodes.len())
        .filter(|&i| pos[&barcodes[i]].in_tissue)
        .collect();
    let sf_path = spatial.join("scalefactors_json.json");
    let spot_diameter_px = if sf_path.is_file() {
        let text = std::fs::read_to_string(&sf_path).map_err(|e| Error::io(&sf_path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(&sf_path, format!("not valid JSON: {e}")))?;
        Some(
            v.get("spot_diameter_fullres")
                .and_then(|d| d.as_f64())
                .ok_or_else(|| bad(&sf_path, "no numeric spot_diameter_fullres"))?,
        )
    } else {
        None
    };
    let mut files = matrix_files;
    files.push(pos_path);
    if spot_diameter_px.is_some() {
        files.push(sf_path);
    }
    Ok(SpotTable {
        format: SpotFormat::Visium,
        files,
        pixel: keep.iter().map(|&i| pos[&barcodes[i]].pixel).collect(),
        array: Some(keep.iter().map(|&i| pos[&barcodes[i]].array).collect()),
        z: None,
        spot_diameter_px,
        dropped_outside_tissue: barcodes.len() - keep.len(),
        counts: counts.select_rows(&keep),
        ids: keep.iter().map(|&i| barcodes[i].clone()).collect(),
    })
}

struct VisiumPos {
    in_tissue: bool,
    array: [f64; 2],
    pixel: [f64; 2],
}

fn read_tissue_positions(path: &Path) -> Result<HashMap<String, VisiumPos>> {
    // tissue_positions.csv has a header; tissue_positions_list.csv does not.
    let mut first = String::new();
    open_text(path)?
        .read_line(&mut first)
        .map_err(|e| Error::io(path, e))?;
    let has_header = first.starts_with("barcode");
    let mut rdr = csv_reader(path, b',', has_header)?;
    let mut out = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        if rec.len() < 6 {
            return Err(bad(
                path,
                "expected 6 columns: barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres",
            ));
        }
        let f = |c: usize| -> Result<f64> {
            rec[c].trim().parse::<f64>().map_err(|_| {
                bad(
                    path,
                    format!("barcode {}: '{}' is not a number", &rec[0], &rec[c]),
                )
            })
        };
        let p = VisiumPos {
            in_tissue: f(1)? != 0.0,
            array: [f(3)?, f(2)?],
            pixel: [f(5)?, f(4)?],
        };
        if out.insert(rec[0].to_string(), p).is_some() {
            return Err(bad(path, format!("barcode {} appears twice", &rec[0])));
        }
    }
    Ok(out)
}

/// `matrix.mtx(.gz)` (genes x barcodes, MatrixMarket coordinate), `barcodes.tsv(.gz)`,
/// `features.tsv(.gz)` (id, symbol, type).
#[allow(clippy::type_complexity)]
fn read_mtx_dir(dir: &Path) -> Result<(Vec<String>, CountMatrix, Vec<PathBuf>)> {
    let find = |stem: &str| -> Result<PathBuf> {
        [format!("{stem}.gz"), stem.to_string()]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| bad(dir, format!("no {stem}(.gz)")))
    };
    let (mtx, bc, feat) = (
        find("matrix.mtx")?,
        find("barcodes.tsv")?,
        find("features.tsv").or_else(|_| find("genes.tsv"))?,
    );
    let mut barcodes = Vec::new();
    for line in open_text(&bc)?.lines() {
        let line = line.map_err(|e| bad(&bc, format!("cannot read: {e}")))?;
        if !line.trim().is_empty() {
            barcodes.push(line.trim().to_string());
        }
    }
    let mut genes = Vec::new();
    for line in open_text(&feat)?.lines() {
        let line = line.map_err(|e| bad(&feat, format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split('\t');
        let id = it.next().unwrap_or("");
        genes.push(it.next().unwrap_or(id).to_string());
    }
    let mut lines = open_text(&mtx)?.lines();
    let header = lines
        .next()
        .transpose()
        .map_err(|e| bad(&mtx, format!("cannot read: {e}")))?
        .unwrap_or_default();
    if !header.starts_with("%%MatrixMarket matrix coordinate") {
        return Err(bad(&mtx, "not a MatrixMarket coordinate file"));
    }
    let mut dims = None;
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); barcodes.len()];
    let mut entries = 0usize;
    for (ln, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(&mtx, format!("cannot read (truncated?): {e}")))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let at = || format!("line {}", ln + 2);
        if dims.is_none() {
            let d: Vec<usize> = f.iter().filter_map(|s| s.parse().ok()).collect();
            if d.len() != 3 {
                return Err(bad(
                    &mtx,
                    format!("{}: expected 'genes barcodes entries'", at()),
                ));
            }
            if d[0] != genes.len() || d[1] != barcodes.len() {
                return Err(bad(
                    &mtx,
                    format!(
                        "is {} genes x {} barcodes but {} lists {} genes and {} lists {} barcodes",
                        d[0],
                        d[1],
                        feat.display(),
                        genes.len(),
                        bc.display(),
                        barcodes.len()
                    ),
                ));
            }
            dims = Some(d);
            continue;
        }
        if f.len() != 3 {
            return Err(bad(
                &mtx,
                format!("{}: expected 'gene barcode count'", at()),
            ));
        }
        let (g, b): (usize, usize) = match (f[0].parse(), f[1].parse()) {
            (Ok(g), Ok(b)) if g >= 1 && g <= genes.len() && b >= 1 && b <= barcodes.len() => (g, b),
            _ => return Err(bad(&mtx, format!("{}: index out of range", at()))),
        };
        let c = parse_count(&mtx, f[2], &barcodes[b - 1], &genes[g - 1])?;
        rows[b - 1].push(((g - 1) as u32, c));
        entries += 1;
    }
    match dims {
        Some(d) if d[2] == entries => {}
        Some(d) => {
            return Err(bad(
                &mtx,
                format!(
                    "truncated: header announces {} entries, found {entries}",
                    d[2]
                ),
            ));
        }
        None => return Err(bad(&mtx, "no size line")),
    }
    let mut m = CountMatrix::new(genes);
    for r in rows {
        m.push_row(r);
    }
    Ok((barcodes, m, vec![mtx, bc, feat]))
}

/// Read a whole file (used by the HDF5 reader).
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| Error::io(path, e))?;
    Ok(v)
}
