//! `vortexdb demo`: an end-to-end run of what is built so far, on synthetic data the
//! command generates itself (no downloads): a store with two "samples" of clustered
//! embeddings carrying patch coordinates, a durable batched import, approximate and
//! exact search, a filtered search, deletion and compaction, and a reopen from the
//! snapshot. Writes its files and `summary.json` to `--out`.
//!
//! The VORTEX stages (phantom, ONNX encoders, molecular queries, domains) join this
//! command as they are built.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::out;
use crate::error::{Error, Result};
use crate::index::Metric;
use crate::store::{CollectionSpec, Filter, NewVector, PatchRecord, Region, SearchOptions, Store};
use crate::vecio;

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory (created; an earlier demo's store in it is replaced).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Number of embeddings to generate.
    #[arg(long, default_value_t = 50_000)]
    pub n: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
}

/// Deterministic xorshift generator (the demo needs no randomness crate).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.next()).sum::<f32>() * 1.732 - 3.464
    }
}

/// Clustered vectors (32 clusters in an 8-d latent space mapped to `dim`) with a
/// patch grid: sample A and B, origins on a 75%-overlap grid of 112-px patches.
fn generate(n: usize, dim: usize) -> (Vec<Vec<f32>>, Vec<PatchRecord>) {
    let mut rng = Rng(0x5EED_0F70_27E5);
    let latent = 8;
    let map: Vec<f32> = (0..latent * dim)
        .map(|_| rng.normal() / (latent as f32).sqrt())
        .collect();
    let centres: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..latent).map(|_| rng.normal() * 3.0).collect())
        .collect();
    let mut rows = Vec::with_capacity(n);
    let mut recs = Vec::with_capacity(n);
    for i in 0..n {
        let c = &centres[(rng.next() * 32.0) as usize % 32];
        let z: Vec<f32> = c.iter().map(|x| x + rng.normal()).collect();
        rows.push(
            (0..dim)
                .map(|j| {
                    (0..latent).map(|l| z[l] * map[l * dim + j]).sum::<f32>() + 0.05 * rng.normal()
                })
                .collect(),
        );
        let half = n / 2;
        let (sample, k) = if i < half {
            ("sample-A", i)
        } else {
            ("sample-B", i - half)
        };
        recs.push(PatchRecord {
            sample: sample.into(),
            origin: [
                (k / 4096) as i64 * 5,
                (k / 64 % 64) as i64 * 28,
                (k % 64) as i64 * 28,
            ],
            size: [21, 112, 112],
            tissue_fraction: 1.0,
        });
    }
    (rows, recs)
}

pub(super) fn run(a: DemoArgs, json_out: bool) -> Result<()> {
    if a.n < 100 || a.dim == 0 {
        return Err(Error::bad_input(
            "--n/--dim",
            "need at least 100 vectors of dimension >= 1",
        ));
    }
    let t_all = Instant::now();
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let store_dir = a.out.join("store");
    if store_dir.join(crate::store::DB_FILE).exists() {
        std::fs::remove_dir_all(&store_dir).map_err(|e| Error::io(&store_dir, e))?;
    }
    let say = |s: String| {
        if !json_out {
            out(&s)
        }
    };
    say(format!(
        "[1/6] generating {} clustered {}-d embeddings with patch coordinates",
        a.n, a.dim
    ));
    let (rows, recs) = generate(a.n, a.dim);
    vecio::write_f32_npy(&a.out.join("vectors.npy"), &rows, a.dim)?;

    say(format!(
        "[2/6] importing into {} in durable batches of 5000",
        store_dir.display()
    ));
    let t = Instant::now();
    let store = Store::create(&store_dir)?;
    store.create_collection(&CollectionSpec {
        model: "demo".into(),
        modality: "3d".into(),
        ..CollectionSpec::raw("patches", a.dim, Metric::Cosine)
    })?;
    for (chunk, rc) in rows.chunks(5000).zip(recs.chunks(5000)) {
        let batch: Vec<NewVector> = chunk
            .iter()
            .zip(rc)
            .map(|(v, r)| NewVector {
                vector: v,
                record: Some(r.clone()),
            })
            .collect();
        store.insert("patches", &batch, None)?;
    }
    let import_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.sync_index("patches")?;
    let index_s = t.elapsed().as_secs_f64();
    say(format!(
        "      {import_s:.1}s to redb, {index_s:.1}s to build and snapshot the HNSW graph"
    ));

    say("[3/6] 200 queries: HNSW (ef 64) vs exact search".into());
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|i| rows[(i * 7919) % a.n].iter().map(|x| x + 0.01).collect())
        .collect();
    let t = Instant::now();
    let approx = store.search(
        "patches",
        &queries,
        &SearchOptions {
            k: 10,
            ef: 64,
            ..Default::default()
        },
    )?;
    let approx_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let exact = store.search(
        "patches",
        &queries,
        &SearchOptions {
            k: 10,
            exact: true,
            ..Default::default()
        },
    )?;
    let exact_s = t.elapsed().as_secs_f64();
    let hit: usize = approx
        .iter()
        .zip(&exact)
        .map(|(a, e)| a.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count())
        .sum();
    let recall = hit as f64 / (10.0 * queries.len() as f64);
    say(format!(
        "      recall@10 {recall:.3}; HNSW {:.0} q/s, exact {:.0} q/s",
        queries.len() as f64 / approx_s,
        queries.len() as f64 / exact_s
    ));

    say("[4/6] filtered search: only sample-B, only patches with z < 5 and y < 896".into());
    let filter = Filter {
        samples: Some(vec!["sample-B".into()]),
        region: Some(Region {
            min: [0, 0, 0],
            max: [5, 896, i64::MAX],
        }),
        ..Default::default()
    };
    let filtered = store.search(
        "patches",
        &queries[..1],
        &SearchOptions {
            k: 5,
            filter,
            ..Default::default()
        },
    )?;
    let mut top = Vec::new();
    for h in &filtered[0] {
        let (_, rec) = store.get("patches", h.id)?.expect("hit is stored");
        let rec = rec.expect("demo rows have records");
        say(format!(
            "      id {:>6}  cosine distance {:.4}  {} at z,y,x = {:?}",
            h.id, h.distance, rec.sample, rec.origin
        ));
        top.push(
            json!({"id": h.id, "distance": h.distance, "sample": rec.sample, "origin": rec.origin}),
        );
    }

    say("[5/6] deleting the 5 nearest patches of query 0, then compacting".into());
    let gone: Vec<u64> = exact[0].iter().take(5).map(|h| h.id).collect();
    store.delete("patches", &gone)?;
    let after = store.search(
        "patches",
        &queries[..1],
        &SearchOptions {
            k: 10,
            ..Default::default()
        },
    )?;
    let leaked = after[0].iter().filter(|h| gone.contains(&h.id)).count();
    store.compact("patches")?;
    drop(store);

    say("[6/6] reopening read-only from the snapshot".into());
    let t = Instant::now();
    let store = Store::open_read_only(&store_dir)?;
    let again = store.search(
        "patches",
        &queries[..1],
        &SearchOptions {
            k: 10,
            ..Default::default()
        },
    )?;
    let reopen_s = t.elapsed().as_secs_f64();
    let warnings = store.take_warnings();
    let info = store.info()?;
    let (c, snap) = &info.collections[0];
    say(format!(
        "      {} live vectors, {} tombstones, snapshot fresh: {}, reopen + first query {:.3}s",
        c.live, c.tombstones, snap.fresh, reopen_s
    ));
    let summary = json!({
        "ok": leaked == 0 && again[0].len() == 10 && warnings.is_empty(),
        "n": a.n, "dim": a.dim, "import_s": import_s, "index_s": index_s,
        "recall_at_10": recall, "hnsw_qps": queries.len() as f64 / approx_s,
        "exact_qps": queries.len() as f64 / exact_s, "filtered_top": top,
        "deleted_returned": leaked, "reopen_first_query_s": reopen_s,
        "live": c.live, "snapshot_fresh": snap.fresh, "total_s": t_all.elapsed().as_secs_f64(),
        "store": store_dir,
    });
    std::fs::write(
        a.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("json"),
    )
    .map_err(|e| Error::io(a.out.join("summary.json"), e))?;
    if json_out {
        out(&summary.to_string());
    } else {
        out(&format!(
            "done in {:.1}s; outputs in {} (summary.json, vectors.npy, store/)",
            t_all.elapsed().as_secs_f64(),
            a.out.display()
        ));
    }
    if leaked > 0 {
        return Err(Error::Index(format!(
            "{leaked} deleted vectors were returned"
        )));
    }
    Ok(())
}
