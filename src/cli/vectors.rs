//! `vortexdb vectors ...`: raw vector import, search, delete and compaction.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{emit, emit_text, flush_warnings, out, out_json};
use vortexdb::{
    Filter, HnswParams, ImportOptions, Metric, Quantization, Result, SearchOptions, Store,
    import_vectors, search_vectors,
};

/// Raw-vector subcommands.
#[rustfmt::skip]
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
        #[arg(long)] collection: String,
        /// Comma-separated ids.
        #[arg(long, value_delimiter = ',', required = true)] ids: Vec<u64>,
    },
    /// Rebuild a collection's index without its deleted vectors.
    Compact {
        /// Store directory.
        store: PathBuf,
        /// Collection name.
        #[arg(long)] collection: String,
    },
}

/// Arguments of `vectors import`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Collection to import into (created with the file's dimension if missing).
    #[arg(long)] pub collection: String,
    /// Vector file (.npy float32 N x D, or .parquet).
    pub file: PathBuf,
    /// Distance for a new collection: l2 or cosine.
    #[arg(long, default_value = "l2")] pub metric: String,
    /// Rows per durable write transaction.
    #[arg(long, default_value_t = 10_000)] pub batch_size: usize,
    /// Parquet column holding the vectors.
    #[arg(long, default_value = "vector")] pub column: String,
    /// Tag every imported vector with this sample id (NPY input).
    #[arg(long)] pub sample: Option<String>,
    /// HNSW links per node for a new collection.
    #[arg(long, default_value_t = 16)] pub m: usize,
    /// HNSW build candidate list for a new collection.
    #[arg(long, default_value_t = 200)] pub ef_construction: usize,
    /// What a new collection's graph holds in RAM: f32, int8 (4x smaller) or binary
    /// (32x smaller); searches of int8/binary rescore on the f32 vectors on disk.
    /// Default f32; on an existing collection a different value is refused.
    #[arg(long)] pub quantization: Option<String>,
    /// Print one JSON line per durable batch on stdout as it is acknowledged.
    #[arg(long)] pub ack: bool,
}

/// Arguments of `vectors search`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Collection to search.
    #[arg(long)] pub collection: String,
    /// Query vectors (same formats as import).
    #[arg(long)] pub queries: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)] pub k: usize,
    /// HNSW search candidate list size.
    #[arg(long, default_value_t = 64)] pub ef: usize,
    /// Brute-force search instead of HNSW.
    #[arg(long)] pub exact: bool,
    /// Candidates per neighbour rescored on the f32 vectors for an int8/binary
    /// collection (0: 4 for int8, 16 for binary).
    #[arg(long, default_value_t = 0)] pub rescore: usize,
    /// Only these samples (comma-separated).
    #[arg(long, value_delimiter = ',')] pub sample: Option<Vec<String>>,
    /// Exclude these samples (comma-separated).
    #[arg(long, value_delimiter = ',')] pub exclude_sample: Vec<String>,
    /// Only patches with origin in a box: z0:z1,y0:y1,x0:x1 (end exclusive).
    #[arg(long)] pub region: Option<String>,
    /// Output NPY (N x K int64 ids, -1 where fewer than K matched).
    #[arg(long)] pub out: PathBuf,
    /// Optional NPY of the distances (N x K float32).
    #[arg(long)] pub distances: Option<PathBuf>,
}

/// Run a `vectors` subcommand.
pub fn run(cmd: VectorsCommand, json: bool) -> Result<()> {
    match cmd {
        VectorsCommand::Import(a) => import(a, json),
        VectorsCommand::Search(a) => search(a, json),
        VectorsCommand::Delete {
            store,
            collection,
            ids,
        } => {
            let n = Store::open(&store)?.delete(&collection, &ids)?;
            emit_text(json, json!({"deleted": n}), || {
                format!("deleted {n} of {} ids", ids.len())
            });
            Ok(())
        }
        VectorsCommand::Compact { store, collection } => {
            let s = Store::open(&store)?;
            let n = s.compact(&collection)?;
            flush_warnings(&s);
            emit_text(json, json!({"tombstones_removed": n}), || {
                format!("compacted '{collection}': {n} deleted vectors dropped")
            });
            Ok(())
        }
    }
}

fn import(a: ImportArgs, json: bool) -> Result<()> {
    let metric = Metric::from_name(&a.metric)?;
    let opts = ImportOptions {
        collection: a.collection.clone(),
        metric,
        batch_size: a.batch_size,
        column: a.column.clone(),
        sample: a.sample.clone(),
        hnsw: HnswParams {
            m: a.m,
            ef_construction: a.ef_construction,
        },
        quantization: a
            .quantization
            .as_deref()
            .map(Quantization::from_name)
            .transpose()?,
    };
    // Open the store first so a wrong directory is reported before reading the file.
    let store = Store::open(&a.store)?;
    let r = import_vectors(&store, &a.file, &opts, &mut |ack| {
        if a.ack {
            out(&serde_json::to_string(&ack).unwrap_or_default());
        }
    })?;
    flush_warnings(&store);
    emit(json, &r);
    Ok(())
}

fn search(a: SearchArgs, json: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let filter = Filter {
        samples: a.sample.clone(),
        exclude_samples: a.exclude_sample.clone(),
        region: a.region.as_deref().map(str::parse).transpose()?,
    };
    let opts = SearchOptions {
        k: a.k,
        ef: a.ef,
        exact: a.exact,
        filter,
        rescore: a.rescore,
    };
    let r = search_vectors(&store, &a.collection, &a.queries, &opts)?;
    flush_warnings(&store);
    r.write(&a.out, a.distances.as_deref())?;
    if json {
        let first = r.hits.first().map(|h| {
            h.iter()
                .map(|x| json!({"id": x.id, "distance": x.distance}))
                .collect::<Vec<_>>()
        });
        out_json(
            &json!({"queries": r.queries, "k": a.k, "ef": a.ef, "exact": a.exact,
                         "seconds": r.seconds, "out": a.out, "first": first}),
        );
        return Ok(());
    }
    let how = if a.exact {
        "exact".to_string()
    } else {
        format!("ef={}", a.ef)
    };
    out(&format!(
        "searched {} queries (k={}, {how}) in {:.3}s -> {}",
        r.queries,
        a.k,
        r.seconds,
        a.out.display()
    ));
    Ok(())
}
