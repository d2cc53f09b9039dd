//! Approximate nearest-neighbour index over one collection's embeddings.
//!
//! A wrapper around the HNSW graph in [`hnsw`] that fixes the choices the store
//! relies on:
//! * distances are always L2 on what is indexed; a cosine collection indexes unit
//!   vectors, so the ranking equals cosine ranking and `1 - cos = d^2 / 2`;
//! * the graph holds one [`Quantization`] of the vectors in RAM: f32 (exact), int8
//!   or one bit per dimension; the quantized ones return candidates with approximate
//!   distances, which the store rescores on the full-precision vectors;
//! * ids are the store's `u64` vector ids;
//! * a snapshot is one file with a CRC-32 footer, also recorded in redb, so a damaged
//!   snapshot is detected while it is read and never used;
//! * exact (brute-force) search with the same distances, for small or highly filtered
//!   sets and for verifying recall.
//!
//! The index never decides what exists: the store checks every hit against redb's
//! tombstones and the caller's filter.

mod hnsw;

use std::collections::BinaryHeap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use hnsw::{dot, l2sq};

use crate::error::{Error, Result};

/// How vectors of a collection are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// Cosine distance `1 - cos(a, b)`; vectors are normalised for indexing.
    Cosine,
}

impl Metric {
    /// Parse `l2` or `cosine`.
    pub fn parse(s: &str) -> Option<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Some(Metric::L2),
            "cosine" | "cos" => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// Parse a name, or an error naming the parameter.
    pub fn from_name(s: &str) -> crate::error::Result<Metric> {
        Metric::parse(s)
            .ok_or_else(|| crate::error::Error::arg("metric", format!("'{s}' is not l2 or cosine")))
    }

    /// Lower-case name, as accepted by [`Metric::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
        }
    }
}

/// The representation of a collection's vectors held in RAM by its graph, chosen when
/// the collection is created. The full-precision vectors are always kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Quantization {
    /// 32-bit floats: exact distances, `4 d` bytes per vector.
    #[default]
    F32,
    /// Int8 scalar quantization, each vector over its own range (offset and step, so
    /// nothing is fitted and codes do not depend on insertion order): `d + 16` bytes
    /// per vector; candidates rescored on the f32 vectors.
    Int8,
    /// One bit per dimension (sign about the mean), Hamming distance: `d / 8` bytes
    /// per vector; candidates rescored on the f32 vectors.
    Binary,
}

impl Quantization {
    /// Every representation, in order of decreasing size.
    pub const ALL: [Quantization; 3] =
        [Quantization::F32, Quantization::Int8, Quantization::Binary];

    /// Lower-case name: `f32`, `int8`, `binary`.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::Int8 => "int8",
            Quantization::Binary => "binary",
        }
    }

    /// Parse a name as given by [`Quantization::name`] (also `none`, `i8`, `sq8`, `b1`,
    /// `bit`), or an error naming the option.
    pub fn from_name(s: &str) -> Result<Quantization> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "none" | "float" => Ok(Quantization::F32),
            "int8" | "i8" | "sq8" => Ok(Quantization::Int8),
            "binary" | "b1" | "bit" | "bits" => Ok(Quantization::Binary),
            _ => Err(Error::arg(
                "quantization",
                format!("'{s}' is not f32, int8 or binary"),
            )),
        }
    }

    /// How many candidates per wanted neighbour a search takes from the graph and
    /// rescores on the full-precision vectors, unless the caller says otherwise.
    pub fn default_rescore(self) -> usize {
        match self {
            Quantization::F32 => 1,
            Quantization::Int8 => 4,
            Quantization::Binary => 16,
        }
    }

    /// True when graph distances are exact (no rescoring needed).
    pub fn is_exact(self) -> bool {
        self == Quantization::F32
    }

    /// Bytes per vector of the representation held in RAM (links and ids excluded).
    pub fn code_bytes(self, dim: usize) -> usize {
        match self {
            Quantization::F32 => 4 * dim,
            Quantization::Int8 => dim,
            Quantization::Binary => 8 * dim.div_ceil(64),
        }
    }
}

/// HNSW construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node on upper layers (`M`); layer 0 keeps `2 M`.
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
        }
    }
}

/// File name of a graph inside a snapshot directory.
const GRAPH_FILE: &str = "graph.vxh";

/// The graph over one of the representations.
enum Graphs {
    F32(hnsw::Graph<hnsw::Flat>),
    Int8(hnsw::Graph<hnsw::Sq8>),
    Binary(hnsw::Graph<hnsw::Bits>),
}

/// Run `$e` with `$g` bound to the graph, whatever its representation.
macro_rules! each {
    ($graphs:expr, $g:ident => $e:expr) => {
        match $graphs {
            Graphs::F32($g) => $e,
            Graphs::Int8($g) => $e,
            Graphs::Binary($g) => $e,
        }
    };
}

/// An in-memory HNSW graph over one collection.
pub struct VectorIndex {
    graph: Graphs,
    quantization: Quantization,
    metric: Metric,
    dim: usize,
    len: usize,
    max_id: Option<u64>,
}

/// One file of a snapshot with its length and CRC-32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// File name inside the snapshot directory.
    pub name: String,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of the whole file.
    pub crc32: u32,
}

/// What a saved snapshot contains; recorded in redb by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Files of the dump with checksums.
    pub files: Vec<SnapshotFile>,
    /// Number of points in the graph.
    pub len: usize,
    /// Largest id in the graph.
    pub max_id: Option<u64>,
}

impl VectorIndex {
    /// An empty index for `dim`-dimensional vectors, sized for about `capacity` points.
    pub fn new(dim: usize, metric: Metric, params: HnswParams, capacity: usize) -> Self {
        Self::with_quantization(dim, metric, params, capacity, Quantization::F32)
    }

    /// [`VectorIndex::new`] holding `quantization` of the vectors (the quantizer is
    /// fitted on the first batch inserted).
    pub fn with_quantization(
        dim: usize,
        metric: Metric,
        params: HnswParams,
        capacity: usize,
        quantization: Quantization,
    ) -> Self {
        let (m, efc) = (params.m, params.ef_construction);
        let graph = match quantization {
            Quantization::F32 => Graphs::F32(hnsw::Graph::new(dim, m, efc, capacity)),
            Quantization::Int8 => Graphs::Int8(hnsw::Graph::new(dim, m, efc, capacity)),
            Quantization::Binary => Graphs::Binary(hnsw::Graph::new(dim, m, efc, capacity)),
        };
        VectorIndex {
            graph,
            quantization,
            metric,
            dim,
            len: 0,
            max_id: None,
        }
    }

    /// Number of points in the graph (deleted ones included until compaction).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the graph holds no point.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Largest id inserted so far.
    pub fn max_id(&self) -> Option<u64> {
        self.max_id
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The representation held in RAM.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// Every node's id, in node order (node `i` is the `i`-th vector inserted).
    pub fn ids(&self) -> &[u64] {
        each!(&self.graph, g => g.ids())
    }

    /// Insert `(id, vector)` pairs in parallel, on the graph build threads (a pool of their
    /// own at a lower priority, so that searches go first).
    /// Vectors must already be prepared with [`prepare`] for this index's metric.
    pub fn insert(&mut self, items: &[(u64, Vec<f32>)]) {
        if items.is_empty() {
            return;
        }
        let graph = &mut self.graph;
        build_pool().install(|| each!(graph, g => g.insert(items)));
        self.len += items.len();
        let batch_max = items.iter().map(|(id, _)| *id).max();
        self.max_id = self.max_id.max(batch_max);
    }

    /// The `k` nearest ids to `query` (already prepared), closest first, with their
    /// distances in the collection's metric. `keep` restricts the search. For a
    /// quantized index the distances (and so the order) are approximate: see
    /// [`VectorIndex::candidates`].
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        self.candidates(query, k, ef, keep)
            .into_iter()
            .map(|(node, d)| (self.id_of(node), d))
            .collect()
    }

    /// The `k` best nodes for `query` by the graph's own distances: (node number,
    /// distance), closest first; the distance is in the collection's metric for f32
    /// and int8 (approximate for int8) and a Hamming distance for binary. Node `i` is
    /// the `i`-th vector inserted, so the store finds its full-precision vector by it.
    pub fn candidates(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u32, f32)> {
        let raw = each!(&self.graph, g => g.search(query, k, ef.max(k), keep));
        match self.quantization {
            Quantization::Binary => raw,
            _ => raw
                .into_iter()
                .map(|(n, d2)| (n, self.metric_distance(d2.max(0.0))))
                .collect(),
        }
    }

    /// The id of node `node`.
    pub fn id_of(&self, node: u32) -> u64 {
        each!(&self.graph, g => g.id(node))
    }

    /// Distance in the collection's metric from a squared L2 distance.
    pub fn metric_distance(&self, l2sq: f32) -> f32 {
        match self.metric {
            Metric::L2 => l2sq.sqrt(),
            Metric::Cosine => 0.5 * l2sq,
        }
    }

    /// Write the graph into `dir` (which must exist) and return what was written,
    /// with its checksum. The file is fsynced before returning.
    pub fn save(&self, dir: &Path) -> Result<SnapshotInfo> {
        each!(&self.graph, g => g.ensure_reachable());
        let path = dir.join(GRAPH_FILE);
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let (len, crc32) =
            each!(&self.graph, g => g.write_to(&mut w)).map_err(|e| Error::io(&path, e))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
        Ok(SnapshotInfo {
            files: vec![SnapshotFile {
                name: GRAPH_FILE.into(),
                len,
                crc32,
            }],
            len: self.len,
            max_id: self.max_id,
        })
    }

    /// Load a snapshot saved by [`VectorIndex::save`]. Its length and checksum must
    /// match what redb recorded; any mismatch or damage is an error (the store then
    /// rebuilds from redb).
    pub fn load(dir: &Path, info: &SnapshotInfo, dim: usize, metric: Metric) -> Result<Self> {
        Self::load_quantized(dir, info, dim, metric, Quantization::F32)
    }

    /// [`VectorIndex::load`] of a graph holding `quantization` (a snapshot of another
    /// representation is refused).
    pub fn load_quantized(
        dir: &Path,
        info: &SnapshotInfo,
        dim: usize,
        metric: Metric,
        quantization: Quantization,
    ) -> Result<Self> {
        let [f] = info.files.as_slice() else {
            return Err(Error::Index(format!(
                "{}: snapshot record lists {} files",
                dir.display(),
                info.files.len()
            )));
        };
        let path = dir.join(&f.name);
        let corrupt = |message: String| Error::Corrupted {
            path: path.clone(),
            message,
        };
        let actual = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        if actual != f.len {
            return Err(corrupt(format!(
                "snapshot is {actual} bytes, expected {}",
                f.len
            )));
        }
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        let (graph, crc) = match quantization {
            Quantization::F32 => {
                hnsw::Graph::read_from(&mut r, actual).map(|(g, c)| (Graphs::F32(g), c))
            }
            Quantization::Int8 => {
                hnsw::Graph::read_from(&mut r, actual).map(|(g, c)| (Graphs::Int8(g), c))
            }
            Quantization::Binary => {
                hnsw::Graph::read_from(&mut r, actual).map(|(g, c)| (Graphs::Binary(g), c))
            }
        }
        .map_err(corrupt)?;
        if crc != f.crc32 {
            return Err(corrupt(format!(
                "checksum {crc:08x} differs from the recorded {:08x}",
                f.crc32
            )));
        }
        // The dimension must match even for an empty graph: later inserts use it.
        let (n, d) = each!(&graph, g => (g.len(), g.dim()));
        if n != info.len || d != dim {
            return Err(corrupt(format!(
                "snapshot holds {n} points, expected {} of dimension {dim}",
                info.len
            )));
        }
        Ok(VectorIndex {
            graph,
            quantization,
            metric,
            dim,
            len: info.len,
            max_id: info.max_id,
        })
    }
}

/// Prepare a vector for indexing under `metric`: L2 vectors are used as they are,
/// cosine vectors are scaled to unit length. `None` for a zero vector under cosine.
pub fn prepare(v: &[f32], metric: Metric) -> Option<Vec<f32>> {
    match metric {
        Metric::L2 => Some(v.to_vec()),
        Metric::Cosine => {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                None
            } else {
                Some(v.iter().map(|x| x / norm).collect())
            }
        }
    }
}

/// Distance between two prepared vectors under `metric` (same values as the index).
pub fn distance(a: &[f32], b: &[f32], metric: Metric) -> f32 {
    let sq = l2sq(a, b);
    match metric {
        Metric::L2 => sq.sqrt(),
        Metric::Cosine => 0.5 * sq,
    }
}

/// Running exact top-k: feed candidates, get the `k` closest, closest first.
pub struct ExactTopK {
    k: usize,
    heap: BinaryHeap<(OrdF32, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl ExactTopK {
    /// Collector for the `k` best candidates.
    pub fn new(k: usize) -> Self {
        ExactTopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offer a candidate; ties are broken by the smaller id.
    pub fn push(&mut self, id: u64, dist: f32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push((OrdF32(dist), id));
        } else if let Some(top) = self.heap.peek()
            && (OrdF32(dist), id) < *top
        {
            self.heap.pop();
            self.heap.push((OrdF32(dist), id));
        }
    }

    /// The collected candidates, closest first.
    pub fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut v: Vec<(u64, f32)> = self.heap.into_iter().map(|(d, id)| (id, d.0)).collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// fsync a directory so renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The threads that link graphs (builds, catch-ups, inserts): a pool of their own, one
/// thread per core, at a lower scheduling priority (nice 10, Linux), so that a graph
/// being built or caught up never holds up searches, which run on rayon's global pool:
/// a job a search hands to a pool busy with a build would wait for the whole build.
pub(crate) fn build_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .thread_name(|i| format!("vortexdb-build-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("cannot start the graph build threads")
    })
}

/// Lower this thread's scheduling priority (nice 10; Linux only, best effort).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id changes only its scheduling priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize, dim: usize) -> Vec<(u64, Vec<f32>)> {
        let mut state = 0x9E3779B97F4A7C15u64;
        (0..n as u64)
            .map(|id| {
                let v = (0..dim)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                (id, v)
            })
            .collect()
    }

    #[test]
    fn every_stored_vector_finds_itself() {
        let pts = points(2_000, 32);
        let mut idx = VectorIndex::new(32, Metric::L2, HnswParams::default(), pts.len());
        idx.insert(&pts);
        // A rare miss at ef 64 is approximate search; a wide search must find every
        // point, or the point is orphaned.
        let mut misses = 0;
        for (id, v) in &pts {
            if idx.search(v, 1, 64, None)[0].0 != *id {
                misses += 1;
                assert_eq!(idx.search(v, 1, 512, None)[0].0, *id, "point {id} orphaned");
            }
        }
        assert!(misses <= 2, "{misses} of 2000 points not found at ef 64");
    }

    #[test]
    fn filter_is_applied_and_exact_agrees() {
        let pts = points(500, 8);
        let mut idx = VectorIndex::new(8, Metric::Cosine, HnswParams::default(), 500);
        let prepared: Vec<_> = pts
            .iter()
            .map(|(id, v)| (*id, prepare(v, Metric::Cosine).unwrap()))
            .collect();
        idx.insert(&prepared);
        let q = &prepared[7].1;
        let even = |id: u64| id.is_multiple_of(2);
        let hits = idx.search(q, 10, 200, Some(&even));
        assert!(hits.iter().all(|(id, _)| id.is_multiple_of(2)));
        let mut exact = ExactTopK::new(10);
        for (id, v) in prepared.iter().filter(|(id, _)| id.is_multiple_of(2)) {
            exact.push(*id, distance(q, v, Metric::Cosine));
        }
        let exact = exact.into_sorted();
        assert_eq!(
            hits.iter().map(|h| h.0).collect::<Vec<_>>(),
            exact.iter().map(|h| h.0).collect::<Vec<_>>()
        );
        for (h, e) in hits.iter().zip(&exact) {
            assert!((h.1 - e.1).abs() < 1e-5);
        }
    }

    #[test]
    fn snapshot_roundtrip_and_damage() {
        let pts = points(300, 16);
        let mut idx = VectorIndex::new(16, Metric::L2, HnswParams::default(), 300);
        idx.insert(&pts);
        let dir = tempfile::tempdir().unwrap();
        let info = idx.save(dir.path()).unwrap();
        let back = VectorIndex::load(dir.path(), &info, 16, Metric::L2).unwrap();
        assert_eq!(back.len(), 300);
        assert_eq!(back.search(&pts[5].1, 1, 50, None)[0].0, 5);
        // flip one byte in the data file
        let data = dir.path().join(&info.files[0].name);
        let mut bytes = std::fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&data, bytes).unwrap();
        assert!(VectorIndex::load(dir.path(), &info, 16, Metric::L2).is_err());
    }
}
