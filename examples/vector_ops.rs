//! The Rust side of `benches/python_overhead.py`: one raw-vector import or one batch
//! search through the public API, timing only the library call, so the Python package
//! can be compared with the library doing the same work. Prints one JSON line.
//!
//! Run: `cargo run --release --example vector_ops -- STORE_DIR NPY OP [EF [IDS_OUT]]`
//!
//! * `OP = import`: create the store `STORE_DIR` and time `import_array` of the
//!   (N, D) float32 NPY file `NPY` into the collection `v` (`ImportOptions::new`: L2,
//!   batches of 10 000, default HNSW parameters).
//! * `OP = search`: open the store an import built, run one warm-up search of the
//!   first query (loads the graph snapshot, reported apart), then time `Store::search`
//!   of every row of the query file `NPY` (k 10; `EF` defaults to the library's,
//!   `SearchOptions::default().ef`, 0 meaning k). With `IDS_OUT` the ids found are
//!   written as an (N, 10) int64 NPY after timing.
use std::path::Path;
use std::time::Instant;
use vortexdb::{ImportOptions, Result, SearchOptions, Store, VectorReader};

const COLLECTION: &str = "v";
const K: usize = 10;

/// The whole NPY file as one row-major array and its dimension.
fn read_flat(path: &Path) -> Result<(Vec<f32>, usize)> {
    let mut r = VectorReader::open(path, None)?;
    let dim = r.dim();
    let mut flat = Vec::with_capacity(r.rows() as usize * dim);
    while let Some(b) = r.next_batch(16_384)? {
        flat.extend_from_slice(&b.values);
    }
    Ok((flat, dim))
}

fn import(dir: &Path, npy: &Path) -> Result<String> {
    let (flat, dim) = read_flat(npy)?;
    let store = Store::create(dir)?;
    let opts = ImportOptions::new(COLLECTION);
    let t0 = Instant::now();
    let report = vortexdb::import_array(&store, &flat, dim, &opts, &mut |_| {})?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(format!(
        r#"{{"op":"import","seconds":{seconds},"rows":{},"dim":{dim},"imported":{}}}"#,
        report.rows, report.imported
    ))
}

fn search(dir: &Path, npy: &Path, ef: Option<usize>, ids_out: Option<&Path>) -> Result<String> {
    let (flat, dim) = read_flat(npy)?;
    let rows: Vec<&[f32]> = flat.chunks_exact(dim).collect();
    let store = Store::open(dir)?;
    let defaults = SearchOptions::default();
    let opts = SearchOptions {
        k: K,
        ef: ef.unwrap_or(defaults.ef),
        exact: false,
        ..defaults
    };
    let t0 = Instant::now();
    store.search(COLLECTION, &rows[..1], &opts)?;
    let warmup = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let hits = store.search(COLLECTION, &rows, &opts)?;
    let seconds = t0.elapsed().as_secs_f64();
    let ids: Vec<Vec<u64>> = hits
        .iter()
        .map(|h| h.iter().map(|x| x.id).collect())
        .collect();
    let checksum: u64 = ids.iter().flatten().fold(0u64, |a, x| a.wrapping_add(*x));
    if let Some(out) = ids_out {
        vortexdb::write_ids_npy(out, &ids, K)?;
    }
    Ok(format!(
        r#"{{"op":"search","seconds":{seconds},"warmup_seconds":{warmup},"queries":{},"k":{K},"ef":{},"id_sum":{checksum}}}"#,
        rows.len(),
        opts.ef
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 5 {
        eprintln!("usage: vector_ops STORE_DIR NPY import|search [EF [IDS_OUT]]");
        std::process::exit(2);
    }
    let ef = match args.get(3).map(|x| x.parse::<usize>()) {
        None => None,
        Some(Ok(ef)) => Some(ef),
        Some(Err(e)) => {
            eprintln!("EF {:?}: {e}", args[3]);
            std::process::exit(2);
        }
    };
    let (dir, npy, op) = (Path::new(&args[0]), Path::new(&args[1]), args[2].as_str());
    let out = match op {
        "import" => import(dir, npy),
        "search" => search(dir, npy, ef, args.get(4).map(Path::new)),
        other => {
            eprintln!("unknown OP {other:?}: import or search");
            std::process::exit(2);
        }
    };
    match out {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("vector_ops: {e}");
            std::process::exit(1);
        }
    }
}
