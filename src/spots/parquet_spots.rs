//! Parquet spot tables.
//!
//! * Wide: one row per spot; a spot id column (`spot`, `barcode` or `spot_id`),
//!   positions `x, y` (or `pixel_x, pixel_y`) in image pixels, optionally `z` (or
//!   `plane_z`, the section) and array `row, col`; every other numeric column is a gene.
//! * Long: one row per (spot, gene) with columns `spot, gene, count` and the spot's
//!   positions repeated on each of its rows.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{SpotFormat, SpotTable, bad, check_count, check_unique};
use crate::error::{Error, Result};
use crate::expression::CountMatrix;

const ID_COLS: [&str; 3] = ["spot", "barcode", "spot_id"];
const RESERVED: [&str; 15] = [
    "spot",
    "barcode",
    "spot_id",
    "sample",
    "x",
    "y",
    "z",
    "plane_z",
    "pixel_x",
    "pixel_y",
    "row",
    "col",
    "array_row",
    "array_col",
    "in_tissue",
];

pub(super) fn read(path: &Path) -> Result<SpotTable> {
    crate::vecio::guard_parquet(path, || read_inner(path))
}

fn read_inner(path: &Path) -> Result<SpotTable> {
    crate::vecio::check_parquet_footer(path)?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| bad(path, format!("not a readable Parquet file: {e}")))?;
    crate::vecio::check_parquet_chunks(path, builder.metadata())?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| bad(path, format!("cannot read (truncated?): {e}")))?);
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let has = |n: &str| names.iter().any(|c| c == n);
    let id_col = ID_COLS
        .iter()
        .find(|c| has(c))
        .ok_or_else(|| bad(path, "no spot id column (spot, barcode or spot_id)"))?
        .to_string();
    let (xc, yc) = if has("x") && has("y") {
        ("x", "y")
    } else if has("pixel_x") && has("pixel_y") {
        ("pixel_x", "pixel_y")
    } else {
        return Err(bad(path, "no position columns (x, y or pixel_x, pixel_y)"));
    };
    let zc = ["z", "plane_z"].into_iter().find(|c| has(c));
    let arr = if has("row") && has("col") {
        Some(("col", "row"))
    } else if has("array_row") && has("array_col") {
        Some(("array_col", "array_row"))
    } else {
        None
    };
    let ids = strings(path, &batches, &id_col)?;
    let xs = floats(path, &batches, xc)?;
    let ys = floats(path, &batches, yc)?;
    let zs = zc.map(|c| floats(path, &batches, c)).transpose()?;
    let array = arr
        .map(|(c, r)| Ok::<_, Error>((floats(path, &batches, c)?, floats(path, &batches, r)?)))
        .transpose()?;
    if has("gene") && has("count") {
        return long(path, &batches, ids, xs, ys, zs, array);
    }
    let genes: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| !RESERVED.contains(&f.name().as_str()) && f.data_type().is_numeric())
        .map(|f| f.name().clone())
        .collect();
    if genes.is_empty() {
        return Err(bad(
            path,
            "no gene columns: a wide table needs numeric gene columns, a long one `gene` and `count`",
        ));
    }
    check_unique(path, &ids, "spot")?;
    let cols: Vec<Vec<f64>> = genes
        .iter()
        .map(|g| floats(path, &batches, g))
        .collect::<Result<_>>()?;
    let mut m = CountMatrix::new(genes.clone());
    for i in 0..ids.len() {
        let mut row = Vec::new();
        for (j, c) in cols.iter().enumerate() {
            if c[i] != 0.0 {
                row.push((j as u32, check_count(path, c[i], &ids[i], &genes[j])?));
            }
        }
        m.push_row(row);
    }
    Ok(SpotTable {
        format: SpotFormat::Parquet,
        files: vec![path.to_path_buf()],
        pixel: xs.iter().zip(&ys).map(|(&x, &y)| [x, y]).collect(),
        array: array.map(|(c, r)| c.iter().zip(&r).map(|(&c, &r)| [c, r]).collect()),
        z: zs,
        spot_diameter_px: None,
        dropped_outside_tissue: 0,
        counts: m,
        ids,
    })
}

#[allow(clippy::type_complexity)]
fn long(
    path: &Path,
    batches: &[RecordBatch],
    ids: Vec<String>,
    xs: Vec<f64>,
    ys: Vec<f64>,
    zs: Option<Vec<f64>>,
    array: Option<(Vec<f64>, Vec<f64>)>,
) -> Result<SpotTable> {
    let gene_names = strings(path, batches, "gene")?;
    let counts = floats(path, batches, "count")?;
    let mut spot_of: HashMap<String, usize> = HashMap::new();
    let mut gene_of: HashMap<String, u32> = HashMap::new();
    let mut genes = Vec::new();
    let mut order = Vec::new();
    let mut rows: Vec<Vec<(u32, f32)>> = Vec::new();
    let mut first_row = Vec::new();
    for r in 0..ids.len() {
        let s = match spot_of.get(&ids[r]) {
            Some(&s) => {
                let f = first_row[s];
                if xs[f] != xs[r] || ys[f] != ys[r] {
                    return Err(bad(
                        path,
                        format!("spot '{}' has two different positions", ids[r]),
                    ));
                }
                s
            }
            None => {
                spot_of.insert(ids[r].clone(), order.len());
                order.push(ids[r].clone());
                first_row.push(r);
                rows.push(Vec::new());
                order.len() - 1
            }
        };
        let g = *gene_of.entry(gene_names[r].clone()).or_insert_with(|| {
            genes.push(gene_names[r].clone());
            (genes.len() - 1) as u32
        });
        if rows[s].iter().any(|e| e.0 == g) {
            return Err(bad(
                path,
                format!("spot '{}', gene '{}' appears twice", ids[r], gene_names[r]),
            ));
        }
        let c = check_count(path, counts[r], &ids[r], &gene_names[r])?;
        rows[s].push((g, c));
    }
    let mut m = CountMatrix::new(genes);
    for r in rows {
        m.push_row(r);
    }
    Ok(SpotTable {
        format: SpotFormat::Parquet,
        files: vec![path.to_path_buf()],
        pixel: first_row.iter().map(|&r| [xs[r], ys[r]]).collect(),
        array: array.map(|(c, rr)| first_row.iter().map(|&r| [c[r], rr[r]]).collect()),
        z: zs.map(|z| first_row.iter().map(|&r| z[r]).collect()),
        spot_diameter_px: None,
        dropped_outside_tissue: 0,
        counts: m,
        ids: order,
    })
}

fn column(path: &Path, batches: &[RecordBatch], name: &str) -> Result<Vec<ArrayRef>> {
    batches
        .iter()
        .map(|b| {
            b.column_by_name(name)
                .cloned()
                .ok_or_else(|| bad(path, format!("no column '{name}'")))
        })
        .collect()
}

fn floats(path: &Path, batches: &[RecordBatch], name: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for a in column(path, batches, name)? {
        if a.null_count() > 0 {
            return Err(bad(path, format!("column '{name}' has missing values")));
        }
        let f = as_f64(&*a).ok_or_else(|| {
            bad(
                path,
                format!(
                    "column '{name}' is not numeric (it holds {})",
                    a.data_type()
                ),
            )
        })?;
        out.extend(f);
    }
    Ok(out)
}

/// The values of a numeric column (integers, floats, booleans as 0/1; a dictionary of
/// numbers by its keys) as f64; `None` for any other type. Written out instead of
/// arrow's `cast` kernel, which would pull the whole arrow compute stack into the build.
fn as_f64(a: &dyn Array) -> Option<Vec<f64>> {
    macro_rules! prim {
        ($t:ty) => {
            a.as_primitive::<$t>()
                .values()
                .iter()
                .map(|&v| v as f64)
                .collect()
        };
    }
    Some(match a.data_type() {
        DataType::Float64 => prim!(Float64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float16 => a
            .as_primitive::<Float16Type>()
            .values()
            .iter()
            .map(|v| v.to_f64())
            .collect(),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Boolean => a
            .as_boolean()
            .values()
            .iter()
            .map(|b| if b { 1.0 } else { 0.0 })
            .collect(),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let values = as_f64(d.values().as_ref())?;
            let keys = d.normalized_keys();
            keys.iter()
                .map(|&k| values.get(k).copied())
                .collect::<Option<_>>()?
        }
        _ => return None,
    })
}

/// The values of a text column (UTF-8 of any offset width or view; a dictionary, as
/// pandas writes categoricals; integers, as ids) as strings; `None` for other types.
fn as_strings(a: &dyn Array) -> Option<Vec<String>> {
    let text = |it: &mut dyn Iterator<Item = Option<&str>>| -> Vec<String> {
        it.map(|v| v.unwrap_or("").to_string()).collect()
    };
    Some(match a.data_type() {
        DataType::Utf8 => text(&mut a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => text(&mut a.as_string::<i64>().iter()),
        DataType::Utf8View => text(&mut a.as_string_view().iter()),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let values = as_strings(d.values().as_ref())?;
            let keys = d.normalized_keys();
            keys.iter()
                .map(|&k| values.get(k).cloned())
                .collect::<Option<_>>()?
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => as_f64(a)?
            .into_iter()
            .map(|v| format!("{}", v as i128))
            .collect(),
        _ => return None,
    })
}

fn strings(path: &Path, batches: &[RecordBatch], name: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for a in column(path, batches, name)? {
        if a.null_count() > 0 {
            return Err(bad(path, format!("column '{name}' has missing values")));
        }
        let s = as_strings(&*a).ok_or_else(|| {
            bad(
                path,
                format!("column '{name}' is not text (it holds {})", a.data_type()),
            )
        })?;
        out.extend(s);
    }
    Ok(out)
}
