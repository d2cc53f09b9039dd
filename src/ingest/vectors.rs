//! Raw vector import: an NPY or Parquet file into a collection (created with the file's
//! dimension when missing), validated whole before the first write, one durable
//! transaction per batch, and resumable: the source's fingerprint (name, length,
//! CRC-32) keys the import progress, so re-running the same file continues after the
//! last durable batch without duplicates.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::engine::{CollectionSpec, ImportMark, ImportProgress, NewVector, PatchRecord, Store};
use crate::error::{Error, Result};
use crate::index::{HnswParams, Metric, Quantization};
use crate::vecio::VectorReader;

/// Settings of [`import_vectors`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Collection to import into.
    pub collection: String,
    /// Distance of a new collection.
    pub metric: Metric,
    /// Rows per durable write transaction.
    pub batch_size: usize,
    /// Parquet column holding the vectors.
    pub column: String,
    /// Tag every vector without provenance with this sample id.
    pub sample: Option<String>,
    /// HNSW parameters of a new collection.
    pub hnsw: HnswParams,
    /// The representation a new collection's graph holds in RAM.
    pub quantization: Option<Quantization>,
}

impl ImportOptions {
    /// Import into `collection` (L2, batches of 10 000, column `vector`, HNSW M 16,
    /// f32 in RAM).
    pub fn new(collection: &str) -> Self {
        ImportOptions {
            collection: collection.into(),
            metric: Metric::L2,
            batch_size: 10_000,
            column: "vector".into(),
            sample: None,
            hnsw: HnswParams::default(),
            quantization: None,
        }
    }
}

/// One acknowledged (durable) batch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ImportAck {
    /// Rows of the file durable so far.
    pub acked_rows: u64,
    /// First id of the batch.
    pub first_id: u64,
    /// One past its last id.
    pub end_id: u64,
}

/// What [`import_vectors`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The collection.
    pub collection: String,
    /// The file (`None` for an in-memory array).
    pub file: Option<PathBuf>,
    /// Rows in the file.
    pub rows: u64,
    /// Vector dimension.
    pub dim: usize,
    /// Rows imported by this call.
    pub imported: u64,
    /// Rows an earlier, interrupted import of the same file had made durable.
    pub resumed_from: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Identify a source file by name, length and CRC-32 of its bytes.
fn fingerprint(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(format!("{name}:{len}:{:08x}", h.finalize()))
}

/// Import the vectors of `file` (NPY float32 N x D, or Parquet with a `list<float>`
/// column and optional `sample`, `z`, `y`, `x` provenance columns). `on_ack` is called
/// after each durable batch.
pub fn import_vectors(
    store: &Store,
    file: &Path,
    opts: &ImportOptions,
    on_ack: &mut dyn FnMut(ImportAck),
) -> Result<ImportReport> {
    let t0 = Instant::now();
    // Validate the whole file before the first write: a bad row half way through
    // must not leave a half-imported file behind.
    let mut reader = VectorReader::open(file, Some(&opts.column))?;
    let (rows, dim) = (reader.rows(), reader.dim());
    let existing = existing_collection(store, opts, dim, file)?;
    let effective_metric = existing.as_ref().map_or(opts.metric, |c| c.metric);
    let mut row = 0u64;
    while let Some(b) = reader.next_batch(65_536)? {
        if effective_metric == Metric::Cosine
            && let Some(i) = zero_row(&b.values, dim)
        {
            return Err(Error::bad_file(
                file,
                format!(
                    "row {}: zero vector cannot be compared by cosine",
                    row + i as u64
                ),
            ));
        }
        row += b.len() as u64;
    }
    let source = fingerprint(file)?;
    let done_before = prepare_import(store, opts, existing.is_none(), dim, &source)?;
    let mut reader = VectorReader::open(file, Some(&opts.column))?;
    reader.skip(done_before)?;
    let mut done = done_before;
    while let Some(b) = reader.next_batch(opts.batch_size)? {
        let batch: Vec<NewVector> = b
            .values
            .chunks_exact(dim)
            .zip(b.records)
            .map(|(v, r)| NewVector {
                vector: v,
                record: r.or_else(|| tag(opts)),
            })
            .collect();
        done = insert_batch(store, opts, &batch, &source, done, rows, on_ack).map_err(
            |e| match e {
                Error::BadInput { what, message } => {
                    Error::bad_file(file, format!("{what}: {message}"))
                }
                other => other,
            },
        )?;
    }
    store.save_snapshot(&opts.collection)?;
    Ok(ImportReport {
        collection: opts.collection.clone(),
        file: Some(file.to_path_buf()),
        rows,
        dim,
        imported: done - done_before,
        resumed_from: done_before,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Import the rows of `values`, a row-major N x `dim` array (borrowed, e.g. a NumPy
/// array without a copy), as [`import_vectors`] imports a file: validated whole before
/// the first write, one durable transaction per batch, resumable (the array's
/// fingerprint is its shape and CRC-32). Rows get provenance only from `opts.sample`.
pub fn import_array(
    store: &Store,
    values: &[f32],
    dim: usize,
    opts: &ImportOptions,
    on_ack: &mut dyn FnMut(ImportAck),
) -> Result<ImportReport> {
    let t0 = Instant::now();
    crate::limits::count_as("batch", "batch_size", opts.batch_size)?;
    let what = "vectors";
    if dim == 0 || !values.len().is_multiple_of(dim) || values.is_empty() {
        return Err(Error::bad_input(
            what,
            format!(
                "{} values do not form rows of dimension {dim}",
                values.len()
            ),
        ));
    }
    let rows = (values.len() / dim) as u64;
    let existing = existing_collection(store, opts, dim, Path::new("<array>"))?;
    let effective_metric = existing.as_ref().map_or(opts.metric, |c| c.metric);
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        return Err(Error::bad_input(
            what,
            format!("row {}: non-finite value in column {}", i / dim, i % dim),
        ));
    }
    if effective_metric == Metric::Cosine
        && let Some(i) = zero_row(values, dim)
    {
        return Err(Error::bad_input(
            what,
            format!("row {i}: zero vector cannot be compared by cosine"),
        ));
    }
    let source = format!(
        "array:{rows}x{dim}:{:08x}",
        crc32fast::hash(bytemuck::cast_slice(values))
    );
    let done_before = prepare_import(store, opts, existing.is_none(), dim, &source)?;
    let mut done = done_before;
    let start = done_before as usize * dim;
    for chunk in values[start..].chunks(opts.batch_size * dim) {
        let batch: Vec<NewVector> = chunk
            .chunks_exact(dim)
            .map(|v| NewVector {
                vector: v,
                record: tag(opts),
            })
            .collect();
        done = insert_batch(store, opts, &batch, &source, done, rows, on_ack)?;
    }
    store.save_snapshot(&opts.collection)?;
    Ok(ImportReport {
        collection: opts.collection.clone(),
        file: None,
        rows,
        dim,
        imported: done - done_before,
        resumed_from: done_before,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The collection when it exists (its dimension must be `dim`), `None` when missing.
fn existing_collection(
    store: &Store,
    opts: &ImportOptions,
    dim: usize,
    input: &Path,
) -> Result<Option<crate::engine::CollectionInfo>> {
    let existing = match store.collection(&opts.collection) {
        Ok(c) => Some(c),
        Err(Error::UnknownCollection { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(c) = &existing {
        same_dimension(c, dim, input, "vectors")?;
        Store::same_quantization(c, opts.quantization)?;
        if c.model != "raw" {
            return Err(Error::arg(
                "collection",
                format!(
                    "collection '{}' holds the embeddings of model '{}': raw vectors cannot \
                     be imported into it (they would join its queries); import into a new \
                     collection",
                    c.name, c.model
                ),
            ));
        }
    }
    if let Some(s) = &opts.sample {
        crate::names::valid_id(s, "sample")?;
    }
    crate::limits::count_as("batch", "batch_size", opts.batch_size)?;
    Ok(existing)
}

/// `what` read from `input` must have the collection's dimension.
fn same_dimension(
    c: &crate::engine::CollectionInfo,
    dim: usize,
    input: &Path,
    what: &str,
) -> Result<()> {
    if dim == c.dim {
        return Ok(());
    }
    Err(Error::DimensionMismatch {
        path: input.to_path_buf(),
        what: what.into(),
        found: dim,
        against: format!("collection '{}'", c.name),
        expected: c.dim,
    })
}

/// First all-zero row of a row-major array.
fn zero_row(values: &[f32], dim: usize) -> Option<usize> {
    values
        .chunks_exact(dim)
        .position(|v| v.iter().all(|x| *x == 0.0))
}

/// Create the collection when `create`, bring its index up to date, and return the
/// rows an earlier import of `source` made durable.
fn prepare_import(
    store: &Store,
    opts: &ImportOptions,
    create: bool,
    dim: usize,
    source: &str,
) -> Result<u64> {
    if create {
        store.create_collection(&CollectionSpec {
            name: opts.collection.clone(),
            model: "raw".into(),
            modality: crate::catalog::Modality::Raw.name().into(),
            dim,
            metric: opts.metric,
            hnsw: opts.hnsw,
            quantization: opts.quantization.unwrap_or_default(),
        })?;
    }
    let done_before = store
        .import_progress(&opts.collection, source)?
        .map_or(0, |p| p.rows_done);
    store.sync_index(&opts.collection)?;
    Ok(done_before)
}

/// The provenance given to rows that carry none.
fn tag(opts: &ImportOptions) -> Option<PatchRecord> {
    opts.sample.as_ref().map(|s| PatchRecord {
        sample: s.clone(),
        origin: [0; 3],
        size: [0; 3],
        tissue_fraction: 1.0,
    })
}

/// Insert one batch with its import mark; returns the rows durable after it.
fn insert_batch(
    store: &Store,
    opts: &ImportOptions,
    batch: &[NewVector],
    source: &str,
    done: u64,
    rows: u64,
    on_ack: &mut dyn FnMut(ImportAck),
) -> Result<u64> {
    let done = done + batch.len() as u64;
    let ids = store.insert(
        &opts.collection,
        batch,
        Some(ImportMark {
            source,
            progress: ImportProgress {
                rows_done: done,
                rows_total: rows,
            },
        }),
    )?;
    on_ack(ImportAck {
        acked_rows: done,
        first_id: ids.start,
        end_id: ids.end,
    });
    Ok(done)
}

impl std::fmt::Display for ImportReport {
    /// One line for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.imported == 0 {
            let what = self
                .file
                .as_ref()
                .map_or("the array".to_string(), |p| p.display().to_string());
            return write!(
                f,
                "{what} was already fully imported into '{}'",
                self.collection
            );
        }
        write!(
            f,
            "imported {} vectors of dim {} into '{}' in {:.2}s",
            self.imported, self.dim, self.collection, self.seconds
        )?;
        if self.resumed_from > 0 {
            write!(f, " (resumed after {} rows)", self.resumed_from)?;
        }
        Ok(())
    }
}

/// The result of [`search_vectors`].
#[derive(Debug, Clone)]
pub struct VectorSearch {
    /// Query vectors read.
    pub queries: usize,
    /// Neighbours asked for.
    pub k: usize,
    /// Per query, its hits (at most `k`), nearest first.
    pub hits: Vec<Vec<crate::engine::Hit>>,
    /// Wall time of the search (not the file read).
    pub seconds: f64,
}

/// Search `collection` with every vector of the file `queries` (NPY or Parquet, as
/// [`import_vectors`] reads).
pub fn search_vectors(
    store: &Store,
    collection: &str,
    queries: &Path,
    opts: &crate::engine::SearchOptions,
) -> Result<VectorSearch> {
    // The search's own range check, before the query file is read.
    crate::limits::count("k", opts.k)?;
    let info = store.collection(collection)?;
    let (rows, dim) = crate::vecio::read_all(queries, None)?;
    same_dimension(&info, dim, queries, "queries")?;
    search_checked(store, collection, &rows, opts)
}

/// Search `collection` with the rows of `values`, a row-major N x `dim` array
/// (borrowed, e.g. a NumPy array without a copy), as [`search_vectors`] does.
pub fn search_array(
    store: &Store,
    collection: &str,
    values: &[f32],
    dim: usize,
    opts: &crate::engine::SearchOptions,
) -> Result<VectorSearch> {
    crate::limits::count("k", opts.k)?;
    let info = store.collection(collection)?;
    same_dimension(&info, dim, Path::new("queries"), "queries")?;
    let rows: Vec<&[f32]> = values.chunks_exact(dim).collect();
    search_checked(store, collection, &rows, opts)
}

fn search_checked<Q: AsRef<[f32]>>(
    store: &Store,
    collection: &str,
    rows: &[Q],
    opts: &crate::engine::SearchOptions,
) -> Result<VectorSearch> {
    let t0 = Instant::now();
    let hits = store.search(collection, rows, opts)?;
    Ok(VectorSearch {
        queries: rows.len(),
        k: opts.k,
        hits,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

impl VectorSearch {
    /// Write the ids as an N x K int64 NPY (-1 where fewer than K matched) and, when
    /// `distances` is given, the distances as N x K float32 (NaN padded).
    pub fn write(&self, ids: &Path, distances: Option<&Path>) -> Result<()> {
        let rows: Vec<Vec<u64>> = self
            .hits
            .iter()
            .map(|h| h.iter().map(|x| x.id).collect())
            .collect();
        crate::vecio::write_ids_npy(ids, &rows, self.k)?;
        if let Some(p) = distances {
            let (_, dist) = self.padded();
            let d: Vec<Vec<f32>> = dist.chunks(self.k).map(<[f32]>::to_vec).collect();
            crate::vecio::write_f32_npy(p, &d, self.k)?;
        }
        Ok(())
    }

    /// Ids and distances as row-major N x K arrays, padded with -1 and NaN where a
    /// query found fewer than K neighbours.
    pub fn padded(&self) -> (Vec<i64>, Vec<f32>) {
        let k = self.k;
        let mut ids = vec![-1i64; self.hits.len() * k];
        let mut dist = vec![f32::NAN; self.hits.len() * k];
        for (i, h) in self.hits.iter().enumerate() {
            for (j, x) in h.iter().enumerate().take(k) {
                ids[i * k + j] = x.id as i64;
                dist[i * k + j] = x.distance;
            }
        }
        (ids, dist)
    }
}

impl std::str::FromStr for crate::engine::Region {
    type Err = Error;

    /// `z0:z1,y0:y1,x0:x1` (patch origins, end exclusive).
    fn from_str(s: &str) -> Result<Self> {
        let err = || Error::arg("region", format!("'{s}' is not z0:z1,y0:y1,x0:x1"));
        let parts: Vec<&str> = s.split(',').collect();
        if parts.len() != 3 {
            return Err(err());
        }
        let (mut min, mut max) = ([0i64; 3], [0i64; 3]);
        for (i, p) in parts.iter().enumerate() {
            let (a, b) = p.split_once(':').ok_or_else(err)?;
            min[i] = a.trim().parse().map_err(|_| err())?;
            max[i] = b.trim().parse().map_err(|_| err())?;
            if max[i] <= min[i] {
                return Err(Error::arg("region", format!("empty range '{p}'")));
            }
        }
        Ok(crate::engine::Region { min, max })
    }
}
