//! Vectors whose distribution shifts from batch to batch, as when a new stain, scanner
//! or model version joins a collection: each distribution is a set of Gaussian
//! clusters about its own centre, at its own scale; and the import and recall of such
//! batches. Shared by `tests/insertion_order.rs` and `benches/insertion_order.rs`
//! (included by path).

use std::time::Instant;

use vortexdb::{CollectionSpec, Metric, NewVector, Quantization, SearchOptions, Store};

/// Scale of distribution `k` (cycled): the first at 1, later ones up to 10x larger or
/// about other centres.
const SCALES: [f32; 6] = [1.0, 1.0, 5.0, 1.0, 10.0, 3.0];

/// Clusters per distribution.
const CLUSTERS: usize = 16;

/// A small deterministic generator (splitmix64, Box-Muller).
pub struct Gen(u64);

impl Gen {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Gen {
        Gen(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A standard normal number.
    pub fn normal(&mut self) -> f32 {
        let a = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let b = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    }
}

/// One distribution: cluster centres and the spread about them.
pub struct Dist {
    centres: Vec<Vec<f32>>,
    sd: f32,
}

/// Distribution `k` of `dim`-dimensional vectors: its centre is the origin for `k = 0`
/// and `scale * sqrt(dim)` away along a random direction otherwise; its clusters spread
/// about it with its scale.
pub fn distribution(k: usize, dim: usize) -> Dist {
    let mut g = Gen::new(1_000 + k as u64);
    let scale = SCALES[k % SCALES.len()];
    let centre: Vec<f32> = if k == 0 {
        vec![0.0; dim]
    } else {
        let dir: Vec<f32> = (0..dim).map(|_| g.normal()).collect();
        let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt();
        dir.iter()
            .map(|x| x / norm * scale * (dim as f32).sqrt())
            .collect()
    };
    let centres = (0..CLUSTERS)
        .map(|_| centre.iter().map(|c| c + scale * g.normal()).collect())
        .collect();
    Dist {
        centres,
        sd: 0.6 * scale,
    }
}

impl Dist {
    /// `n` vectors of this distribution (clusters taken in turn), from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut g = Gen::new(seed);
        (0..n)
            .map(|i| {
                self.centres[i % CLUSTERS]
                    .iter()
                    .map(|c| c + self.sd * g.normal())
                    .collect()
            })
            .collect()
    }
}

/// The batches of a shifting import of `n` vectors: a first batch of `first` vectors
/// of distribution 0, then `batches` batches of the rest, batch `b` from distribution
/// `b`. Returns the batches and `queries` held-out queries drawn from the batches'
/// distributions in proportion to their sizes.
pub fn shifting(
    n: usize,
    dim: usize,
    first: usize,
    batches: usize,
    queries: usize,
) -> (Vec<Vec<Vec<f32>>>, Vec<Vec<f32>>) {
    let rest = n - first;
    let mut out = vec![distribution(0, dim).sample(first, 7)];
    let mut sizes = vec![(0, first)];
    for b in 1..=batches {
        let m = rest / batches + usize::from(b <= rest % batches);
        out.push(distribution(b, dim).sample(m, 7 + b as u64));
        sizes.push((b, m));
    }
    let mut qs = Vec::with_capacity(queries);
    for (i, (k, m)) in sizes.iter().enumerate() {
        let take = if i + 1 == sizes.len() {
            queries - qs.len()
        } else {
            (queries * m).div_ceil(n).min(queries - qs.len())
        };
        qs.extend(distribution(*k, dim).sample(take, 99_000 + *k as u64));
    }
    (out, qs)
}

/// Insert `batches` into a new L2 collection `name` of `q`, searching after every batch
/// when `between` (the graph follows the import), otherwise once at the end (the graph
/// is built from every row). Returns the seconds spent inserting and searching.
pub fn import(
    store: &Store,
    name: &str,
    q: Quantization,
    batches: &[Vec<Vec<f32>>],
    between: bool,
) -> (f64, f64) {
    let dim = batches[0][0].len();
    store
        .create_collection(&CollectionSpec::raw(name, dim, Metric::L2).with_quantization(q))
        .unwrap();
    let probe = [batches[0][0].clone()];
    let (mut ins, mut search) = (0.0, 0.0);
    let probe_search = |search: &mut f64| {
        let t = Instant::now();
        store
            .search(name, &probe, &SearchOptions::default())
            .unwrap();
        *search += t.elapsed().as_secs_f64();
    };
    for batch in batches {
        let nv: Vec<NewVector> = batch
            .iter()
            .map(|v| NewVector {
                vector: v,
                record: None,
            })
            .collect();
        let t = Instant::now();
        store.insert(name, &nv, None).unwrap();
        ins += t.elapsed().as_secs_f64();
        if between {
            probe_search(&mut search);
        }
    }
    if !between {
        probe_search(&mut search);
    }
    (ins, search)
}

/// The ids of the exact 10 nearest vectors of `name` to each query.
pub fn truth(store: &Store, name: &str, queries: &[Vec<f32>]) -> Vec<Vec<u64>> {
    let exact = SearchOptions {
        k: 10,
        exact: true,
        ..Default::default()
    };
    store
        .search(name, queries, &exact)
        .unwrap()
        .into_iter()
        .map(|h| h.into_iter().map(|h| h.id).collect())
        .collect()
}

/// Recall@10 of `name` at `ef` against `truth`.
pub fn recall(
    store: &Store,
    name: &str,
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    ef: usize,
) -> f64 {
    let opts = SearchOptions {
        k: 10,
        ef,
        ..Default::default()
    };
    let found = store.search(name, queries, &opts).unwrap();
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|h| t.contains(&h.id)).count())
        .sum();
    hits as f64 / (10 * queries.len()) as f64
}
