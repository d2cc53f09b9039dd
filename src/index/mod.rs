//! Approximate nearest-neighbour index over one collection's embeddings.
//!
//! A thin wrapper around `hnsw_rs` that fixes the choices the store relies on:
//! * distances are always L2 on what is indexed; a cosine collection indexes unit
//!   vectors, so the ranking equals cosine ranking and `1 - cos = d^2 / 2`;
//! * ids are the store's `u64` vector ids;
//! * snapshots are `hnsw_rs` dumps plus a CRC-32 of every file, so a damaged snapshot is
//!   detected before `hnsw_rs` (which asserts on bad input) ever reads it;
//! * exact (brute-force) search with the same distances, for small or highly filtered
//!   sets and for verifying recall.
//!
//! The index never decides what exists: the store checks every hit against redb's
//! tombstones and the caller's filter.

use std::collections::BinaryHeap;
use std::io::Read;
use std::path::Path;

use hnsw_rs::prelude::{AnnT, DistL2, FilterT, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

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

    /// Lower-case name, as accepted by [`Metric::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
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

/// Maximum number of HNSW layers (hnsw_rs caps this at 16).
const MAX_LAYERS: usize = 16;

/// An in-memory HNSW graph over one collection.
pub struct VectorIndex {
    hnsw: Hnsw<'static, f32, DistL2>,
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
    /// `hnsw_rs` dump basename.
    pub basename: String,
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
        let hnsw = Hnsw::new(
            params.m,
            capacity.max(1_000),
            MAX_LAYERS,
            params.ef_construction,
            DistL2 {},
        );
        VectorIndex {
            hnsw,
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

    /// Insert `(id, vector)` pairs in parallel (rayon). Vectors must already be
    /// prepared with [`prepare`] for this index's metric.
    pub fn insert(&mut self, items: &[(u64, Vec<f32>)]) {
        if items.is_empty() {
            return;
        }
        let refs: Vec<(&[f32], usize)> = items
            .iter()
            .map(|(id, v)| (v.as_slice(), *id as usize))
            .collect();
        if refs.len() < 64 {
            for r in &refs {
                self.hnsw.insert_slice(*r);
            }
        } else {
            self.hnsw.parallel_insert_slice(&refs);
        }
        self.len += items.len();
        let batch_max = items.iter().map(|(id, _)| *id).max();
        self.max_id = self.max_id.max(batch_max);
    }

    /// The `k` nearest ids to `query` (already prepared), closest first, with their
    /// distances in the collection's metric. `keep` restricts the search.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let found = match keep {
            None => self.hnsw.search(query, k, ef.max(k)),
            Some(f) => {
                let filter = IdFilter(f);
                self.hnsw
                    .search_filter(query, k, ef.max(k), Some(&filter as &dyn FilterT))
            }
        };
        found
            .into_iter()
            .map(|n| (n.d_id as u64, self.metric_distance(n.distance)))
            .collect()
    }

    fn metric_distance(&self, l2: f32) -> f32 {
        match self.metric {
            Metric::L2 => l2,
            Metric::Cosine => 0.5 * l2 * l2,
        }
    }

    /// Write the graph into `dir` (which must exist and be empty) and return what was
    /// written, with checksums.
    pub fn save(&self, dir: &Path) -> Result<SnapshotInfo> {
        let basename = "hnsw";
        let written = self
            .hnsw
            .file_dump(dir, basename)
            .map_err(|e| Error::Index(format!("{}: dump failed: {e}", dir.display())))?;
        let mut files = Vec::new();
        for ext in ["hnsw.graph", "hnsw.data"] {
            let name = format!("{written}.{ext}");
            let path = dir.join(&name);
            let (len, crc32) = checksum_file(&path)?;
            // hnsw_rs does not fsync; make the files durable before redb points at them.
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            files.push(SnapshotFile { name, len, crc32 });
        }
        sync_dir(dir)?;
        Ok(SnapshotInfo {
            basename: written,
            files,
            len: self.len,
            max_id: self.max_id,
        })
    }

    /// Load a snapshot saved by [`VectorIndex::save`], after verifying every file's
    /// length and checksum. Any mismatch is an error (the store then rebuilds).
    pub fn load(dir: &Path, info: &SnapshotInfo, dim: usize, metric: Metric) -> Result<Self> {
        for f in &info.files {
            let path = dir.join(&f.name);
            let (len, crc) = checksum_file(&path)?;
            if len != f.len || crc != f.crc32 {
                return Err(Error::Corrupted {
                    path,
                    message: format!(
                        "snapshot file length/checksum mismatch (expected {} bytes crc {:08x}, found {} bytes crc {:08x})",
                        f.len, f.crc32, len, crc
                    ),
                });
            }
        }
        // HnswIo hands out a graph that borrows it; it is a few hundred bytes and one is
        // created per snapshot load, so it is leaked rather than made self-referential.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &info.basename)));
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let io = io;
            io.load_hnsw::<f32, DistL2>()
        }));
        let hnsw = match loaded {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(Error::Index(format!("{}: {e}", dir.display()))),
            Err(_) => {
                return Err(Error::Index(format!(
                    "{}: snapshot could not be decoded",
                    dir.display()
                )));
            }
        };
        if hnsw.get_nb_point() != info.len
            || (info.len > 0 && hnsw.get_point_indexation().get_data_dimension() != dim)
        {
            return Err(Error::Index(format!(
                "{}: snapshot holds {} points of dimension {}, expected {} of dimension {dim}",
                dir.display(),
                hnsw.get_nb_point(),
                hnsw.get_point_indexation().get_data_dimension(),
                info.len
            )));
        }
        Ok(VectorIndex {
            hnsw,
            metric,
            dim,
            len: info.len,
            max_id: info.max_id,
        })
    }
}

struct IdFilter<'a>(&'a dyn Fn(u64) -> bool);

impl FilterT for IdFilter<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        (self.0)(*id as u64)
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
    let sq: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
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

fn checksum_file(path: &Path) -> Result<(u64, u32)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

/// fsync a directory so renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
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
        for (id, v) in &pts {
            let hits = idx.search(v, 1, 64, None);
            assert_eq!(hits[0].0, *id, "point {id} orphaned");
        }
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
        let data = dir.path().join(&info.files[1].name);
        let mut bytes = std::fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&data, bytes).unwrap();
        assert!(VectorIndex::load(dir.path(), &info, 16, Metric::L2).is_err());
    }
}
