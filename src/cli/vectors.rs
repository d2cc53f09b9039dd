//! `vortexdb vectors ...`: raw vector import, search, delete and compaction.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{flush_warnings, out};
use vortexdb::error::{Error, Result};
use vortexdb::index::{HnswParams, Metric};
use vortexdb::store::{
    CollectionSpec, Filter, ImportMark, ImportProgress, NewVector, PatchRecord, Region,
    SearchOptions, Store,
};
use vortexdb::vecio::{self, VectorReader};

/// Raw-vector subcommands.
#[derive(Debug, Subcommand)]
pub enum VectorsCommand {
    /// Import vectors (NPY float32 N x D, or Parquet with a list<float> column) into a
    /// collection, creating it if needed. Resumable: re-running the same file continues
    /// after the last durable batch.
    Import(ImportArgs),
    /// Search a collection with query vectors; writes an N x K int64 NPY of ids.
    Search(SearchArgs),
    /// Delete vectors by id (tombstoned until `compact`).
    Delete {
        /// Store directory.
        store: PathBuf,
        /// Collection name.
        #[arg(long)]
        collection: String,
        /// Comma-separated ids.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u64>,
    },
    /// Rebuild a collection's index without its deleted vectors.
    Compact {
        /// Store directory.
        store: PathBuf,
        /// Collection name.
        #[arg(long)]
        collection: String,
    },
}

/// Arguments of `vectors import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Collection to import into (created with the file's dimension if missing).
    #[arg(long)]
    pub collection: String,
    /// Vector file (.npy float32 N x D, or .parquet).
    pub file: PathBuf,
    /// Distance for a new collection: l2 or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Rows per durable write transaction.
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
    /// Parquet column holding the vectors.
    #[arg(long, default_value = "vector")]
    pub column: String,
    /// Tag every imported vector with this sample id (NPY input).
    #[arg(long)]
    pub sample: Option<String>,
    /// HNSW links per node for a new collection.
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW build candidate list for a new collection.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// Print one JSON line per durable batch on stdout as it is acknowledged.
    #[arg(long)]
    pub ack: bool,
}

/// Arguments of `vectors search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Collection to search.
    #[arg(long)]
    pub collection: String,
    /// Query vectors (same formats as import).
    #[arg(long)]
    pub queries: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// HNSW search candidate list size.
    #[arg(long, default_value_t = 64)]
    pub ef: usize,
    /// Brute-force search instead of HNSW.
    #[arg(long)]
    pub exact: bool,
    /// Only these samples (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub sample: Option<Vec<String>>,
    /// Exclude these samples (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_sample: Vec<String>,
    /// Only patches with origin in a box: z0:z1,y0:y1,x0:x1 (end exclusive).
    #[arg(long)]
    pub region: Option<String>,
    /// Output NPY (N x K int64 ids, -1 where fewer than K matched).
    #[arg(long)]
    pub out: PathBuf,
    /// Optional NPY of the distances (N x K float32).
    #[arg(long)]
    pub distances: Option<PathBuf>,
}

pub(super) fn run(cmd: VectorsCommand, json: bool) -> Result<()> {
    match cmd {
        VectorsCommand::Import(a) => import(a, json),
        VectorsCommand::Search(a) => search(a, json),
        VectorsCommand::Delete {
            store,
            collection,
            ids,
        } => {
            let s = Store::open(&store)?;
            let n = s.delete(&collection, &ids)?;
            if json {
                out(&json!({"ok": true, "deleted": n}).to_string());
            } else {
                out(&format!("deleted {n} of {} ids", ids.len()));
            }
            Ok(())
        }
        VectorsCommand::Compact { store, collection } => {
            let s = Store::open(&store)?;
            let n = s.compact(&collection)?;
            flush_warnings(&s);
            if json {
                out(&json!({"ok": true, "tombstones_removed": n}).to_string());
            } else {
                out(&format!(
                    "compacted '{collection}': {n} deleted vectors dropped"
                ));
            }
            Ok(())
        }
    }
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

fn import(a: ImportArgs, json: bool) -> Result<()> {
    let t0 = Instant::now();
    let col_arg = a.column.as_str();
    if a.batch_size == 0 {
        return Err(Error::bad_input("--batch-size", "must be at least 1"));
    }
    let metric = Metric::parse(&a.metric).ok_or_else(|| {
        Error::bad_input("--metric", format!("'{}' is not l2 or cosine", a.metric))
    })?;
    // Open the store first so a wrong directory is reported before reading the file.
    let store = Store::open(&a.store)?;
    // Validate the whole file before the first write: a bad row half way through
    // must not leave a half-imported file behind.
    let mut reader = VectorReader::open(&a.file, Some(col_arg))?;
    let (rows, dim) = (reader.rows(), reader.dim());
    let existing = match store.collection(&a.collection) {
        Ok(c) => Some(c),
        Err(Error::UnknownCollection { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(c) = &existing
        && c.dim != dim
    {
        return Err(Error::bad_input(
            a.file.display().to_string(),
            format!(
                "vectors have dimension {dim} but collection '{}' has dimension {}",
                c.name, c.dim
            ),
        ));
    }
    let effective_metric = existing.as_ref().map_or(metric, |c| c.metric);
    let mut row = 0u64;
    while let Some(b) = reader.next_batch(65_536)? {
        if effective_metric == Metric::Cosine
            && let Some(i) = b
                .values
                .chunks_exact(dim)
                .position(|v| v.iter().all(|x| *x == 0.0))
        {
            return Err(Error::bad_input(
                a.file.display().to_string(),
                format!(
                    "row {}: zero vector cannot be compared by cosine",
                    row + i as u64
                ),
            ));
        }
        row += b.len() as u64;
    }
    let source = fingerprint(&a.file)?;
    if existing.is_none() {
        store.create_collection(&CollectionSpec {
            name: a.collection.clone(),
            model: "raw".into(),
            modality: "raw".into(),
            dim,
            metric,
            hnsw: HnswParams {
                m: a.m,
                ef_construction: a.ef_construction,
            },
        })?;
    }
    let done_before = store
        .import_progress(&a.collection, &source)?
        .map_or(0, |p| p.rows_done);
    store.sync_index(&a.collection)?;
    let mut reader = VectorReader::open(&a.file, Some(col_arg))?;
    reader.skip(done_before)?;
    let mut done = done_before;
    while let Some(b) = reader.next_batch(a.batch_size)? {
        let batch: Vec<NewVector> = b
            .values
            .chunks_exact(dim)
            .zip(b.records)
            .map(|(v, r)| NewVector {
                vector: v,
                record: r.or_else(|| {
                    a.sample.as_ref().map(|s| PatchRecord {
                        sample: s.clone(),
                        origin: [0; 3],
                        size: [0; 3],
                        tissue_fraction: 1.0,
                    })
                }),
            })
            .collect();
        done += batch.len() as u64;
        let ids = store
            .insert(
                &a.collection,
                &batch,
                Some(ImportMark {
                    source: &source,
                    progress: ImportProgress {
                        rows_done: done,
                        rows_total: rows,
                    },
                }),
            )
            .map_err(|e| match e {
                Error::BadInput { path, message } => {
                    Error::bad_input(a.file.display().to_string(), format!("{path}: {message}"))
                }
                other => other,
            })?;
        if a.ack {
            out(&json!({"acked_rows": done, "first_id": ids.start, "end_id": ids.end}).to_string());
        }
    }
    store.save_snapshot(&a.collection)?;
    flush_warnings(&store);
    let secs = t0.elapsed().as_secs_f64();
    let imported = done - done_before;
    if json {
        out(
            &json!({"ok": true, "collection": a.collection, "file": a.file, "rows": rows,
                    "dim": dim, "imported": imported, "resumed_from": done_before,
                    "seconds": secs})
            .to_string(),
        );
    } else if imported == 0 {
        out(&format!(
            "{} was already fully imported into '{}'",
            a.file.display(),
            a.collection
        ));
    } else {
        out(&format!(
            "imported {imported} vectors of dim {dim} into '{}' in {secs:.2}s{}",
            a.collection,
            if done_before > 0 {
                format!(" (resumed after {done_before} rows)")
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}

fn parse_region(s: &str) -> Result<Region> {
    let err = || Error::bad_input("--region", format!("'{s}' is not z0:z1,y0:y1,x0:x1"));
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 3 {
        return Err(err());
    }
    let mut min = [0i64; 3];
    let mut max = [0i64; 3];
    for (i, p) in parts.iter().enumerate() {
        let (a, b) = p.split_once(':').ok_or_else(err)?;
        min[i] = a.trim().parse().map_err(|_| err())?;
        max[i] = b.trim().parse().map_err(|_| err())?;
        if max[i] <= min[i] {
            return Err(Error::bad_input("--region", format!("empty range '{p}'")));
        }
    }
    Ok(Region { min, max })
}

fn search(a: SearchArgs, json: bool) -> Result<()> {
    if a.k == 0 {
        return Err(Error::bad_input("--k", "must be at least 1"));
    }
    let store = Store::open_read_only(&a.store)?;
    let info = store.collection(&a.collection)?;
    let (queries, dim) = vecio::read_all(&a.queries, None)?;
    if dim != info.dim {
        return Err(Error::bad_input(
            a.queries.display().to_string(),
            format!(
                "queries have dimension {dim} but collection '{}' has dimension {}",
                info.name, info.dim
            ),
        ));
    }
    let filter = Filter {
        samples: a.sample.clone(),
        exclude_samples: a.exclude_sample.clone(),
        region: a.region.as_deref().map(parse_region).transpose()?,
    };
    let opts = SearchOptions {
        k: a.k,
        ef: a.ef,
        exact: a.exact,
        filter,
    };
    let t0 = Instant::now();
    let hits = store.search(&a.collection, &queries, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    flush_warnings(&store);
    let ids: Vec<Vec<u64>> = hits
        .iter()
        .map(|h| h.iter().map(|x| x.id).collect())
        .collect();
    vecio::write_ids_npy(&a.out, &ids, a.k)?;
    if let Some(p) = &a.distances {
        let d: Vec<Vec<f32>> = hits
            .iter()
            .map(|h| {
                (0..a.k)
                    .map(|j| h.get(j).map_or(f32::NAN, |x| x.distance))
                    .collect()
            })
            .collect();
        vecio::write_f32_npy(p, &d, a.k)?;
    }
    if json {
        out(&json!({"ok": true, "queries": queries.len(), "k": a.k, "ef": a.ef, "exact": a.exact,
                    "seconds": secs, "out": a.out,
                    "first": hits.first().map(|h| h.iter().map(|x| json!({"id": x.id, "distance": x.distance})).collect::<Vec<_>>())})
        .to_string());
    } else {
        out(&format!(
            "searched {} queries (k={}, {}) in {:.3}s -> {}",
            queries.len(),
            a.k,
            if a.exact {
                "exact".to_string()
            } else {
                format!("ef={}", a.ef)
            },
            secs,
            a.out.display()
        ));
    }
    Ok(())
}
