//! Serving an int8 collection from disk (issue 38, "serving from disk"): queries/s with
//! the page cache warm and cold.
//!
//! The store (N x 512, cosine, int8; 100 Gaussian clusters in a 32-d latent space,
//! normalised) is built once under DIR and kept for reruns. Each serving round opens it
//! read-only in this process, runs Q queries (one batch call, k 10, rescore 4) and
//! closes it. A cold round first evicts every file of the store from the page cache
//! (`posix_fadvise(DONTNEED)`, the store closed so nothing is mapped; the resident
//! share of the packed file is measured with `mincore` and printed), then opens the
//! store (graph loaded from disk, not timed) and times the queries: the int8 codes are
//! in RAM, the packed f32 rows that rescoring reads are on disk. Rounds interleave warm
//! and cold; medians. Memory (RssAnon / RssFile of this process) after each case's
//! last round.
//!
//!     cargo bench --bench cold_rescoring -- [N] [Q] [ROUNDS] [DIR]
//!     # default 500000 2000 3 /tmp/vortex-cold-bench

use std::path::{Path, PathBuf};
use std::time::Instant;

use vortexdb::{CollectionSpec, Metric, NewVector, Quantization, SearchOptions, Store};

const DIM: usize = 512;
const LATENT: usize = 32;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (a, b) = (self.uniform().max(1e-7), self.uniform());
        (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
    }
}

/// `n` rows from clusters in a latent space projected to DIM, normalised.
fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut g = Rng(42);
    let proj: Vec<f32> = (0..DIM * LATENT).map(|_| g.normal()).collect();
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..LATENT).map(|_| g.normal() * 3.0).collect())
        .collect();
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let c = &centres[(r.next() % 100) as usize];
            let z: Vec<f32> = c.iter().map(|x| x + r.normal()).collect();
            let mut v: Vec<f32> = (0..DIM)
                .map(|d| {
                    let row = &proj[d * LATENT..(d + 1) * LATENT];
                    row.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + 0.5 * r.normal()
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn build(dir: &Path, n: usize) {
    let t = Instant::now();
    let store = Store::create(dir).unwrap();
    store
        .create_collection(
            &CollectionSpec::raw("c", DIM, Metric::Cosine).with_quantization(Quantization::Int8),
        )
        .unwrap();
    for start in (0..n).step_by(20_000) {
        let chunk = rows(20_000.min(n - start), 1_000 + start as u64);
        let b: Vec<NewVector> = chunk
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        store.insert("c", &b, None).unwrap();
    }
    let inserted = t.elapsed().as_secs_f64();
    store.sync_index("c").unwrap();
    store.save_snapshot("c").unwrap();
    println!(
        "built {n} x {DIM} int8: insert {inserted:.0} s, graph {:.0} s",
        t.elapsed().as_secs_f64() - inserted
    );
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn evict(dir: &Path) {
    use std::os::fd::AsRawFd;
    for p in files(dir) {
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: advice on an open descriptor of our own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

/// Share of the pages of `path` in the page cache.
fn resident(path: &Path) -> f64 {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a read-only private map of a file nobody truncates during the call.
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    let pages = len.div_ceil(4096);
    let mut v = vec![0u8; pages];
    // SAFETY: `v` holds one byte per page of the mapping.
    unsafe { libc::mincore(map.as_ptr() as *mut _, len, v.as_mut_ptr()) };
    v.iter().filter(|b| *b & 1 == 1).count() as f64 / pages as f64
}

fn memory() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("RssAnon:"), kb("RssFile:"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args.first().map_or(500_000, |a| a.parse().unwrap());
    let nq: usize = args.get(1).map_or(2_000, |a| a.parse().unwrap());
    let rounds: usize = args.get(2).map_or(3, |a| a.parse().unwrap());
    let dir = PathBuf::from(args.get(3).map_or("/tmp/vortex-cold-bench", |s| s.as_str()));
    if !dir.join("vortex.redb").exists() {
        build(&dir, n);
    }
    let packed = files(&dir.join("vectors"))[0].clone();
    let queries = rows(nq, 7);
    let exact: Vec<Vec<u64>> = {
        let store = Store::open_read_only(&dir).unwrap();
        let opts = SearchOptions {
            k: 10,
            exact: true,
            ..Default::default()
        };
        store
            .search("c", &queries[..200.min(nq)], &opts)
            .unwrap()
            .into_iter()
            .map(|h| h.into_iter().map(|x| x.id).collect())
            .collect()
    };
    println!(
        "{n} x {DIM} int8 (cosine), {nq} queries per round (one batch call, k 10, rescore 4), \
         {} threads, packed file {:.0} MiB",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::metadata(&packed).unwrap().len() as f64 / 1048576.0
    );
    let cases = [false, true];
    for ef in [64usize, 128] {
        let mut qps = vec![Vec::new(); cases.len()];
        let mut recall = 0.0;
        let mut mem = vec![(0.0, 0.0); cases.len()];
        let mut res = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            for (ci, &cold) in cases.iter().enumerate() {
                if cold {
                    evict(&dir);
                }
                res[ci].push(resident(&packed));
                let store = Store::open_read_only(&dir).unwrap();
                store.sync_index("c").unwrap();
                let opts = SearchOptions {
                    k: 10,
                    ef,
                    ..Default::default()
                };
                let t = Instant::now();
                let hits = store.search("c", &queries, &opts).unwrap();
                let s = t.elapsed().as_secs_f64();
                qps[ci].push(nq as f64 / s);
                recall = exact
                    .iter()
                    .zip(&hits)
                    .map(|(e, h)| h.iter().filter(|x| e.contains(&x.id)).count())
                    .sum::<usize>() as f64
                    / (10 * exact.len()) as f64;
                mem[ci] = memory();
                println!(
                    "ef {ef} round {round} {}: {:.0} q/s (packed resident before {:.0}%)",
                    if cold { "cold" } else { "warm" },
                    nq as f64 / s,
                    100.0 * res[ci][round]
                );
            }
        }
        let m: Vec<f64> = qps.into_iter().map(median).collect();
        println!(
            "ef {ef}, recall@10 {recall:.4}: warm {:.0} q/s, cold {:.0} q/s, cold / warm {:.2}; \
             RssAnon / RssFile MiB after: warm {:.0} / {:.0}, cold {:.0} / {:.0}",
            m[0],
            m[1],
            m[1] / m[0],
            mem[0].0,
            mem[0].1,
            mem[1].0,
            mem[1].1
        );
    }
}
