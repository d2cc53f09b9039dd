//! Raw vector files: streaming readers for NPY (float32, N x D) and Parquet (a
//! `list<float>` column, optional `sample`, `z`, `y`, `x` columns), and NPY writers
//! (search results, uint8 volumes).
//!
//! Readers stream in batches so memory is bounded by the batch size, and every error
//! names the file and what is wrong with it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type};
use arrow_array::{Array, FixedSizeListArray, Float32Array, Float64Array, ListArray, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::engine::PatchRecord;
use crate::error::{Error, Result};

mod parquet_footer;

/// A batch of rows read from a vector file.
#[derive(Debug, Clone, Default)]
pub struct VectorBatch {
    /// Row-major values, `rows * dim`.
    pub values: Vec<f32>,
    /// Provenance per row, when the file has a `sample` column.
    pub records: Vec<Option<PatchRecord>>,
}

impl VectorBatch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

enum Source {
    Npy(BufReader<File>),
    Parquet {
        reader: ParquetRecordBatchReader,
        pending: Option<(RecordBatch, usize)>,
        column: String,
    },
}

/// A streaming reader over a vector file.
pub struct VectorReader {
    path: PathBuf,
    rows: u64,
    dim: usize,
    done: u64,
    source: Source,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::bad_file(path, msg)
}

impl VectorReader {
    /// Open `path`, recognising NPY by its magic bytes and Parquet by its `PAR1` magic.
    /// `column` names the Parquet vector column (default `vector`).
    pub fn open(path: &Path, column: Option<&str>) -> Result<VectorReader> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() == 0 {
            return Err(bad(path, "file is empty"));
        }
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut magic = [0u8; 6];
        let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
        drop(f);
        if n >= 6 && &magic == b"\x93NUMPY" {
            Self::open_npy(path, meta.len())
        } else if n >= 4 && &magic[..4] == b"PAR1" {
            Self::open_parquet(path, column.unwrap_or("vector"))
        } else {
            Err(bad(
                path,
                "not an NPY or Parquet file (expected float32 N x D .npy or Parquet with a list<float> column)",
            ))
        }
    }

    fn open_npy(path: &Path, file_len: u64) -> Result<VectorReader> {
        check_npy_header_len(path, file_len)?;
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let npy = npyz::NpyFile::new(BufReader::with_capacity(1 << 20, f))
            .map_err(|e| bad(path, format!("invalid NPY header: {e}")))?;
        let descr = npy.dtype().descr();
        if descr != "'<f4'" {
            return Err(bad(
                path,
                format!(
                    "dtype {descr} is not supported; vectors must be little-endian float32 ('<f4')"
                ),
            ));
        }
        if npy.order() != npyz::Order::C {
            return Err(bad(
                path,
                "Fortran-ordered arrays are not supported; save with C order",
            ));
        }
        let shape = npy.shape().to_vec();
        if shape.len() != 2 {
            return Err(bad(
                path,
                format!("expected a 2-D array N x D, found shape {shape:?}"),
            ));
        }
        let (rows, dim) = (shape[0], shape[1] as usize);
        if rows == 0 || dim == 0 {
            return Err(bad(path, format!("contains no vectors (shape {shape:?})")));
        }
        if dim > 65_536 {
            return Err(bad(
                path,
                format!("dimension {dim} is larger than 65536 (shape {shape:?})"),
            ));
        }
        let reader = npy.into_inner();
        let data_len =
            crate::limits::checked_bytes(&path.display().to_string(), &[rows, dim as u64], 4)?;
        let header_len = file_len.saturating_sub(data_len);
        if file_len < data_len || header_len < 10 {
            return Err(bad(
                path,
                format!(
                    "truncated: header declares {rows} x {dim} float32 but the file has {file_len} bytes"
                ),
            ));
        }
        Ok(VectorReader {
            path: path.to_path_buf(),
            rows,
            dim,
            done: 0,
            source: Source::Npy(reader),
        })
    }

    fn open_parquet(path: &Path, column: &str) -> Result<VectorReader> {
        guard_parquet(path, || Self::open_parquet_inner(path, column))
    }

    fn open_parquet_inner(path: &Path, column: &str) -> Result<VectorReader> {
        check_parquet_footer(path)?;
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| bad(path, format!("invalid Parquet file: {e}")))?;
        check_parquet_chunks(path, builder.metadata())?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = builder.schema().clone();
        let field = schema.field_with_name(column).map_err(|_| {
            bad(
                path,
                format!(
                    "no column '{column}' (columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let item_ok = |dt: &DataType| matches!(dt, DataType::Float32 | DataType::Float64);
        let fixed_dim = match field.data_type() {
            DataType::FixedSizeList(item, n) if item_ok(item.data_type()) => Some(*n as usize),
            DataType::List(item) | DataType::LargeList(item) if item_ok(item.data_type()) => None,
            other => {
                return Err(bad(
                    path,
                    format!(
                        "column '{column}' has type {other}; expected list<float32> or list<float64>"
                    ),
                ));
            }
        };
        if rows == 0 {
            return Err(bad(path, "contains no vectors (0 rows)"));
        }
        let mut reader = builder
            .with_batch_size(8192)
            .build()
            .map_err(|e| bad(path, format!("invalid Parquet file: {e}")))?;
        // Peek the first batch to learn the dimension of variable-length lists.
        let first = reader
            .next()
            .transpose()
            .map_err(|e| bad(path, format!("cannot read Parquet data: {e}")))?
            .ok_or_else(|| bad(path, "contains no vectors"))?;
        let dim = match fixed_dim {
            Some(d) => d,
            None => {
                let col = first.column_by_name(column).expect("checked");
                let list = col.as_list_opt::<i32>().map(|l| l.value_length(0) as usize);
                let large = col.as_list_opt::<i64>().map(|l| l.value_length(0) as usize);
                list.or(large).unwrap_or(0)
            }
        };
        if dim == 0 {
            return Err(bad(path, "first vector is empty"));
        }
        if dim > 65_536 {
            return Err(bad(path, format!("dimension {dim} is larger than 65536")));
        }
        Ok(VectorReader {
            path: path.to_path_buf(),
            rows,
            dim,
            done: 0,
            source: Source::Parquet {
                reader,
                pending: Some((first, 0)),
                column: column.to_string(),
            },
        })
    }

    /// Total rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Skip the first `n` rows (to resume an import).
    pub fn skip(&mut self, n: u64) -> Result<()> {
        let mut left = n.min(self.rows - self.done);
        while left > 0 {
            let take = left.min(8192) as usize;
            let b = self
                .next_batch(take)?
                .ok_or_else(|| bad(&self.path, "ended early while skipping rows"))?;
            left -= b.len() as u64;
        }
        Ok(())
    }

    /// Read up to `max` rows; `None` at the end. Values are checked to be finite.
    pub fn next_batch(&mut self, max: usize) -> Result<Option<VectorBatch>> {
        if self.done >= self.rows {
            return Ok(None);
        }
        let want = (max as u64).min(self.rows - self.done) as usize;
        let mut batch = VectorBatch::default();
        match &mut self.source {
            Source::Npy(r) => {
                let mut bytes = vec![0u8; want * self.dim * 4];
                r.read_exact(&mut bytes).map_err(|e| {
                    bad(
                        &self.path,
                        format!("truncated data after row {} ({e})", self.done),
                    )
                })?;
                batch.values = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                batch.records = vec![None; want];
            }
            Source::Parquet {
                reader,
                pending,
                column,
            } => {
                while batch.len() < want {
                    let (rb, offset) = match pending.take() {
                        Some(p) => p,
                        None => match guard_parquet(&self.path, || Ok(reader.next()))? {
                            Some(Ok(rb)) => (rb, 0),
                            Some(Err(e)) => {
                                return Err(bad(
                                    &self.path,
                                    format!("cannot read Parquet data: {e}"),
                                ));
                            }
                            None => break,
                        },
                    };
                    let take = (want - batch.len()).min(rb.num_rows() - offset);
                    append_parquet_rows(
                        &self.path,
                        &rb,
                        column,
                        offset,
                        take,
                        self.dim,
                        self.done + batch.len() as u64,
                        &mut batch,
                    )?;
                    if offset + take < rb.num_rows() {
                        *pending = Some((rb, offset + take));
                    }
                }
                if batch.len() < want {
                    return Err(bad(
                        &self.path,
                        format!("ended after {} rows", self.done + batch.len() as u64),
                    ));
                }
            }
        }
        if let Some(i) = batch.values.iter().position(|x| !x.is_finite()) {
            let row = self.done + (i / self.dim) as u64;
            return Err(bad(
                &self.path,
                format!(
                    "row {row}, column {}: value {} is not finite (NaN/inf)",
                    i % self.dim,
                    batch.values[i]
                ),
            ));
        }
        self.done += batch.len() as u64;
        Ok(Some(batch))
    }
}

#[allow(clippy::too_many_arguments)]
fn append_parquet_rows(
    path: &Path,
    rb: &RecordBatch,
    column: &str,
    offset: usize,
    take: usize,
    dim: usize,
    first_row: u64,
    out: &mut VectorBatch,
) -> Result<()> {
    let col = rb
        .column_by_name(column)
        .ok_or_else(|| bad(path, format!("no column '{column}'")))?;
    for r in 0..take {
        let row = offset + r;
        let global = first_row + r as u64;
        if col.is_null(row) {
            return Err(bad(path, format!("row {global}: vector is null")));
        }
        let values: std::sync::Arc<dyn Array> =
            if let Some(l) = col.as_any().downcast_ref::<ListArray>() {
                l.value(row)
            } else if let Some(l) = col.as_list_opt::<i64>() {
                l.value(row)
            } else if let Some(l) = col.as_any().downcast_ref::<FixedSizeListArray>() {
                l.value(row)
            } else {
                return Err(bad(path, format!("column '{column}' is not a list")));
            };
        if values.len() != dim {
            return Err(bad(
                path,
                format!(
                    "row {global}: vector has dimension {} but the first row has {dim}",
                    values.len()
                ),
            ));
        }
        if values.null_count() > 0 {
            return Err(bad(path, format!("row {global}: vector contains nulls")));
        }
        if let Some(a) = values.as_any().downcast_ref::<Float32Array>() {
            out.values.extend_from_slice(a.values());
        } else if let Some(a) = values.as_any().downcast_ref::<Float64Array>() {
            out.values.extend(a.values().iter().map(|x| *x as f32));
        } else {
            return Err(bad(path, format!("column '{column}' does not hold floats")));
        }
        out.records.push(parquet_record(path, rb, row, global)?);
    }
    let _ = Float32Type {};
    Ok(())
}

fn int_at(rb: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    let c = rb.column_by_name(name)?;
    if c.is_null(row) {
        return None;
    }
    if let Some(a) = c.as_primitive_opt::<Int64Type>() {
        return Some(a.value(row));
    }
    c.as_primitive_opt::<Int32Type>()
        .map(|a| a.value(row) as i64)
}

fn parquet_record(
    path: &Path,
    rb: &RecordBatch,
    row: usize,
    global: u64,
) -> Result<Option<PatchRecord>> {
    let Some(col) = rb.column_by_name("sample") else {
        return Ok(None);
    };
    let sample = if let Some(s) = col.as_string_opt::<i32>() {
        s.value(row).to_string()
    } else if let Some(s) = col.as_string_opt::<i64>() {
        s.value(row).to_string()
    } else {
        return Err(bad(path, "column 'sample' must be a string column"));
    };
    if col.is_null(row) {
        return Err(bad(path, format!("row {global}: sample is null")));
    }
    // The same id rule as every ingest (no path-like or overlong ids).
    crate::names::valid_id(&sample, "sample")
        .map_err(|e| bad(path, format!("row {global}: {e}")))?;
    let coord = |name: &str| -> Result<i64> {
        match rb.column_by_name(name) {
            None => Ok(0),
            Some(c) if c.is_null(row) => Err(bad(path, format!("row {global}: {name} is null"))),
            Some(c) => int_at(rb, name, row).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "column '{name}' must hold integers (patch origins), not {}",
                        c.data_type()
                    ),
                )
            }),
        }
    };
    Ok(Some(PatchRecord {
        sample,
        origin: [coord("z")?, coord("y")?, coord("x")?],
        size: [0; 3],
        tissue_fraction: 1.0,
    }))
}

/// Run `f`, which reads a Parquet file with the parquet crate, turning a panic inside
/// the crate into an error naming the file: parquet 60 panics on some damaged pages
/// (dictionary-encoded data without a dictionary, a zero-width byte-stream split, ...)
/// that no check of the footer can foresee.
pub(crate) fn guard_parquet<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(bad(
            path,
            format!("damaged Parquet file (the reader failed: {what})"),
        ))
    })
}

/// Check a Parquet footer before the parquet crate parses it (see `parquet_footer`).
pub(crate) fn check_parquet_footer(path: &Path) -> Result<()> {
    parquet_footer::check(path)
}

/// Every column chunk the footer lists must lie inside the file: the parquet crate
/// panics on a negative offset or length, and reads (allocates) what a chunk claims.
pub(crate) fn check_parquet_chunks(
    path: &Path,
    meta: &parquet::file::metadata::ParquetMetaData,
) -> Result<()> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let inside = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(bad(
                    path,
                    format!(
                        "damaged Parquet footer: row group {g}, column {}: chunk at {start} of {len} bytes is outside the file ({file_len} bytes)",
                        c.column_path()
                    ),
                ));
            }
            parquet_footer::check_first_page(path, &mut file, start as u64)?;
        }
    }
    Ok(())
}

/// Longest NPY header accepted (numpy writes well under 1 KiB).
const MAX_NPY_HEADER: u64 = 1 << 20;

/// The header length an NPY file declares must fit in the file (and be sane) before
/// npyz reads it: npyz allocates the declared length (up to 4 GiB) up front.
fn check_npy_header_len(path: &Path, file_len: u64) -> Result<()> {
    let mut pre = [0u8; 12];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut pre).map_err(|e| Error::io(path, e))?;
    if n < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err(bad(path, "not an NPY file (bad magic or too short)"));
    }
    let (hlen, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as u64, 10),
        2 | 3 if n == 12 => (
            u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64,
            12,
        ),
        v => {
            return Err(bad(
                path,
                format!("unsupported or truncated NPY version {v}"),
            ));
        }
    };
    if hlen > MAX_NPY_HEADER || start + hlen > file_len {
        return Err(bad(
            path,
            format!("NPY header of {hlen} bytes does not fit in the file ({file_len} bytes)"),
        ));
    }
    Ok(())
}

/// Read every row of a (small) vector file, e.g. a query file.
pub fn read_all(path: &Path, column: Option<&str>) -> Result<(Vec<Vec<f32>>, usize)> {
    let mut r = VectorReader::open(path, column)?;
    let dim = r.dim();
    // The row count is the file's claim: reserve no more than a bounded amount up front.
    let mut out = Vec::with_capacity((r.rows() as usize).min(1 << 16));
    while let Some(b) = r.next_batch(8192)? {
        out.extend(b.values.chunks_exact(dim).map(|c| c.to_vec()));
    }
    Ok((out, dim))
}

/// Write an `n x k` int64 matrix of ids as NPY (`-1` pads rows with fewer than k hits).
pub fn write_ids_npy(path: &Path, rows: &[Vec<u64>], k: usize) -> Result<()> {
    let values = rows
        .iter()
        .flat_map(|r| (0..k).map(move |j| r.get(j).map_or(-1, |x| *x as i64)));
    write_npy(path, &[rows.len(), k], values)
}

/// Write an `n x d` float32 matrix as NPY.
pub fn write_f32_npy(path: &Path, rows: &[Vec<f32>], d: usize) -> Result<()> {
    if let Some(r) = rows.iter().find(|r| r.len() != d) {
        return Err(Error::bad_file(
            path,
            format!("a row of {} values where {d} were expected", r.len()),
        ));
    }
    write_npy(path, &[rows.len(), d], rows.iter().flatten().copied())
}

/// Write a C-ordered float32 array of any shape (e.g. a Z, Y, X heatmap) as NPY.
pub fn write_f32_array_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::bad_file(
            path,
            format!("{} values do not fill shape {shape:?}", data.len()),
        ));
    }
    write_npy(path, shape, data.iter().copied())
}

/// Write a C-ordered uint8 array of any shape (e.g. a label volume) as NPY.
pub fn write_u8_array_npy(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::bad_file(
            path,
            format!("{} values do not fill shape {shape:?}", data.len()),
        ));
    }
    write_npy(path, shape, data.iter().copied())
}

/// One C-ordered NPY file of `shape` from `values` in row order (npyz).
fn write_npy<T: npyz::AutoSerialize>(
    path: &Path,
    shape: &[usize],
    values: impl Iterator<Item = T>,
) -> Result<()> {
    use npyz::WriterBuilder;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| Error::io(path, e))?;
    for v in values {
        w.push(&v).map_err(|e| Error::io(path, e))?;
    }
    w.finish().map_err(|e| Error::io(path, e))
}

/// Write a C-ordered uint8 array of any shape as NPY (format 1.0, dtype `|u1`).
pub fn write_u8_npy(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    use std::io::Write;
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::bad_file(
            path,
            format!("{} bytes do not fill shape {shape:?}", data.len()),
        ));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.extend(std::iter::repeat_n(' ', pad));
    header.push('\n');
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let len =
        u16::try_from(header.len()).map_err(|_| Error::bad_file(path, "NPY header too long"))?;
    w.write_all(b"\x93NUMPY\x01\x00")
        .and_then(|_| w.write_all(&len.to_le_bytes()))
        .and_then(|_| w.write_all(header.as_bytes()))
        .and_then(|_| w.write_all(data))
        .and_then(|_| w.flush())
        .map_err(|e| Error::io(path, e))
}

/// Read a float32 NPY array of any shape (C order): its shape and values.
pub fn read_f32_nd(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let p = path.display().to_string();
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    check_npy_header_len(path, file_len)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| Error::bad_file(&p, format!("not an NPY file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(Error::bad_file(
            &p,
            "Fortran-ordered arrays are not supported",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let need = crate::limits::checked_bytes(&p, npy.shape(), 4)?;
    if need > file_len {
        return Err(Error::bad_file(
            &p,
            format!(
                "truncated: shape {shape:?} of float32 needs {need} bytes, the file has {file_len}"
            ),
        ));
    }
    match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {}
        other => {
            return Err(Error::bad_file(
                &p,
                format!("dtype {} is not float32", other.descr()),
            ));
        }
    }
    let values: Vec<f32> = npy
        .into_vec()
        .map_err(|e| Error::bad_file(&p, format!("cannot read values (truncated?): {e}")))?;
    Ok((shape, values))
}
