//! Query benchmark over 1M stored 3D patch embeddings (synthetic, clustered, 64-d like
//! the default model), issue 7: molecular-query top-100 latency through HNSW against
//! exact search on the same data in the same run (and HNSW's recall@100), and the time
//! of a full heatmap (score every patch, percentile ranks, overlap-averaged volume).
//!
//!     cargo bench --bench query -- [--n 1000000] [--queries 200] [--store DIR]
//!
//! The store is built once (bench-data/query-1m) and reused. Prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use vortexdb::SampleRecord;
use vortexdb::rank_patches;
use vortexdb::{CollectionSpec, Metric, NewVector, PatchRecord, SearchOptions, Store};
use vortexdb::{Grid, Polarity};
use vortexdb::{auto_downsample, heatmap};

const DIM: usize = 64;
const COLLECTION: &str = "bench-model:3d";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 1.732 - 3.464
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str, d: &str| -> String {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| d.to_string())
    };
    let n: usize = arg("--n", "1000000").parse().unwrap();
    let nq: usize = arg("--queries", "200").parse().unwrap();
    let dir = PathBuf::from(arg("--store", "bench-data/query-1m"));
    // A 75%-overlap grid of 16 x 32 x 32 patches with about n origins.
    let nz = ((n as f64 / 4.0).cbrt()).ceil() as usize;
    let shape = [
        4 * (nz - 1) + 16,
        8 * (2 * nz - 1) + 32,
        8 * (2 * nz - 1) + 32,
    ];
    let grid = Grid::new(shape, [16, 32, 32], 0.75, "bench").unwrap();
    let mut origins: Vec<[i64; 3]> = Vec::new();
    'fill: for &z in &grid.z {
        for &y in &grid.y {
            for &x in &grid.x {
                if origins.len() == n {
                    break 'fill;
                }
                origins.push([z as i64, y as i64, x as i64]);
            }
        }
    }
    let n = origins.len();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    // Latent 8-d clusters by region (patches near each other look alike), mapped to 64-d.
    let map: Vec<f32> = (0..8 * DIM).map(|_| rng.normal()).collect();
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..8).map(|_| rng.normal() * 3.0).collect())
        .collect();
    let vector = |o: &[i64; 3], rng: &mut Rng| -> Vec<f32> {
        let c = &centres[((o[0] / 64 * 7 + o[1] / 128 * 3 + o[2] / 128) % 64) as usize];
        let z: Vec<f32> = c.iter().map(|x| x + rng.normal()).collect();
        (0..DIM)
            .map(|j| (0..8).map(|l| z[l] * map[l * DIM + j]).sum::<f32>() + 0.1 * rng.normal())
            .collect()
    };
    let t0 = Instant::now();
    let store = if dir.join("vortex.redb").exists() {
        Store::open(&dir).unwrap()
    } else {
        let s = Store::create(&dir).unwrap();
        s.create_collection(&CollectionSpec::for_model(
            "bench-model",
            "3d",
            DIM,
            Metric::Cosine,
        ))
        .unwrap();
        for chunk in origins.chunks(20_000) {
            let vs: Vec<Vec<f32>> = chunk.iter().map(|o| vector(o, &mut rng)).collect();
            let batch: Vec<NewVector> = chunk
                .iter()
                .zip(&vs)
                .map(|(o, v)| NewVector {
                    vector: v,
                    record: Some(PatchRecord {
                        sample: "vol".into(),
                        origin: *o,
                        size: [16, 32, 32],
                        tissue_fraction: 1.0,
                    }),
                })
                .collect();
            s.insert(COLLECTION, &batch, None).unwrap();
        }
        s.put_sample(&SampleRecord {
            id: "vol".into(),
            kind: "3d".into(),
            source: "synthetic".into(),
            fingerprint: "bench".into(),
            model: "bench-model".into(),
            collection: COLLECTION.into(),
            source_shape: shape,
            voxel_um: [4.0; 3],
            model_voxel_um: [4.0; 3],
            grid: grid.clone(),
            threshold: 0.0,
            polarity: Polarity::All,
            min_tissue: 0.0,
            status: "complete".into(),
            patches: n as u64,
        })
        .unwrap();
        s
    };
    let load_s = t0.elapsed().as_secs_f64();
    // First search builds (or loads) the graph.
    let t = Instant::now();
    let probe = vector(&origins[0], &mut rng);
    store
        .search(
            COLLECTION,
            &[probe],
            &SearchOptions {
                k: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let index_s = t.elapsed().as_secs_f64();
    eprintln!("store ready: {n} vectors (data {load_s:.1} s, graph {index_s:.1} s)");
    // Molecular-query embeddings: the normalised mean of 20 patches of one region
    // (what a spot-average profile looks like in a trained space).
    let queries: Vec<Vec<f32>> = (0..nq)
        .map(|_| {
            let base = (rng.next() % n as u64) as usize;
            let mut m = vec![0.0f32; DIM];
            for k in 0..20 {
                let v = vector(&origins[(base + k * 7) % n], &mut rng);
                for (a, b) in m.iter_mut().zip(&v) {
                    *a += b;
                }
            }
            let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt();
            m.iter().map(|x| x / norm).collect()
        })
        .collect();
    let run = |exact: bool, ef: usize| -> (Vec<f64>, Vec<Vec<u64>>) {
        let mut lat = Vec::new();
        let mut ids = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let h = store
                .search(
                    COLLECTION,
                    std::slice::from_ref(q),
                    &SearchOptions {
                        k: 100,
                        ef,
                        exact,
                        ..Default::default()
                    },
                )
                .unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            ids.push(h[0].iter().map(|x| x.id).collect());
        }
        (lat, ids)
    };
    let (mut exact_lat, exact_ids) = run(true, 0);
    let mut hnsw = Vec::new();
    for ef in [100, 200, 400] {
        let (mut lat, ids) = run(false, ef);
        let recall: f64 = ids
            .iter()
            .zip(&exact_ids)
            .map(|(a, b)| a.iter().filter(|x| b.contains(x)).count() as f64 / 100.0)
            .sum::<f64>()
            / nq as f64;
        hnsw.push(json!({"ef": ef, "p50_ms": pct(&mut lat, 50.0), "p99_ms": pct(&mut lat, 99.0), "recall_at_100": recall}));
    }
    // Full heatmap: score all, percentile ranks, sort, overlap-averaged volume.
    let mut hm = Vec::new();
    let mut parts = (0.0, 0.0);
    let d = auto_downsample(grid.shape, 64 << 20);
    for q in queries.iter().take(5) {
        let t = Instant::now();
        let ranked = rank_patches(&store, COLLECTION, q, None, vec![]).unwrap();
        let t_rank = t.elapsed().as_secs_f64();
        let pts: Vec<([i64; 3], f32)> = ranked.iter().map(|r| (r.origin, r.score)).collect();
        let h = heatmap(&grid, &pts, d);
        assert_eq!(ranked.len(), n);
        assert!(!h.data.is_empty());
        let total = t.elapsed().as_secs_f64();
        parts = (t_rank, total - t_rank);
        hm.push(total);
    }
    let hm_med = pct(&mut hm, 50.0);
    let out = json!({
        "n": n, "dim": DIM, "queries": nq, "threads": rayon::current_num_threads(),
        "volume_model_voxels": grid.shape, "heatmap_downsample": d,
        "exact_top100": {"p50_ms": pct(&mut exact_lat, 50.0), "p99_ms": pct(&mut exact_lat, 99.0)},
        "hnsw_top100": hnsw,
        "heatmap_seconds_median_of_5": hm_med,
        "heatmap_last_split_seconds": {"score_rank_sort": parts.0, "volume": parts.1},
        "graph_build_or_load_seconds": index_s,
    });
    println!("{out}");
}
