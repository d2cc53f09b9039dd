//! Search: the `k` nearest vectors by HNSW (filter applied during the walk, every hit
//! re-checked, the candidates of a quantized graph rescored on the full-precision
//! vectors, an unfillable query redone exactly) or by brute force over the packed
//! file, the filters (samples, excluded samples, a box of patch origins) compiled
//! against each collection's provenance, and exhaustive similarities for heatmaps and
//! ranks, read from the packed rows of the samples asked for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use redb::ReadTransaction;

use super::packed::Packed;
use super::snapshots::Live;
use super::tables::*;
use super::vectors::{read_tombstones, validate_vector};
use super::{Store, db_err, decode_record_at};
use crate::error::{Error, Result};
use crate::index::{self, ExactTopK};

/// A search hit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hit {
    /// Vector id.
    pub id: u64,
    /// Distance in the collection's metric (smaller is closer).
    pub distance: f32,
}

/// One vector's similarity to a query, with its provenance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPatch {
    /// Vector id.
    pub id: u64,
    /// Cosine similarity (minus the L2 distance for L2 collections): larger is closer.
    pub score: f32,
    /// Index into [`Scored::samples`] (`u32::MAX` for a vector without a record).
    pub sample: u32,
    /// Patch origin (z, y, x) in the sample's model voxels.
    pub origin: [i64; 3],
}

/// Result of [`Store::similarities`].
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// Sample names indexed by [`ScoredPatch::sample`].
    pub samples: Vec<String>,
    /// One entry per vector that passed the filter, in no particular order.
    pub items: Vec<ScoredPatch>,
}

/// A box of patch origins, `min` inclusive and `max` exclusive, in (z, y, x) voxels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Lower corner (inclusive).
    pub min: [i64; 3],
    /// Upper corner (exclusive).
    pub max: [i64; 3],
}

impl Region {
    fn contains(&self, p: &[i64; 3]) -> bool {
        (0..3).all(|i| p[i] >= self.min[i] && p[i] < self.max[i])
    }
}

/// Restrictions on which stored vectors a search may return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only vectors of these samples.
    pub samples: Option<Vec<String>>,
    /// Never vectors of these samples.
    pub exclude_samples: Vec<String>,
    /// Only patches whose origin lies in this box.
    pub region: Option<Region>,
}

impl Filter {
    /// True when the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.samples.is_none() && self.exclude_samples.is_empty() && self.region.is_none()
    }
}

/// Search parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Number of neighbours.
    pub k: usize,
    /// HNSW candidate list size (raised to `k` if smaller).
    pub ef: usize,
    /// Brute force instead of HNSW.
    pub exact: bool,
    /// Restrictions.
    pub filter: Filter,
    /// Candidates per wanted neighbour taken from a quantized graph and rescored on
    /// the full-precision vectors (0: the representation's default, 4 for int8, 16
    /// for binary; ignored for f32).
    pub rescore: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            ef: 64,
            exact: false,
            filter: Filter::default(),
            rescore: 0,
        }
    }
}

/// Per-collection provenance used by filters: sample index and origin per id.
#[derive(Clone, Default)]
pub(crate) struct Meta {
    samples: Vec<String>,
    rows: HashMap<u64, (u32, [i64; 3])>,
    /// Every record with an id below this was read (ids only grow: a write appends
    /// records above it).
    next_id: u64,
    /// The collection's epoch and tombstone count when it was read: a delete or a
    /// compaction since makes the next read a whole one.
    epoch: u64,
    tombstones: u64,
}

/// A compiled filter: a predicate over ids plus, when provenance was needed, the list
/// of allowed ids (for choosing exact search when few pass).
struct Compiled<'a> {
    live: &'a Live,
    allowed: Option<HashSet<u64>>,
}

impl Compiled<'_> {
    fn keep(&self, id: u64) -> bool {
        !self.live.tombstones.contains(&id) && self.allowed.as_ref().is_none_or(|a| a.contains(&id))
    }
}

impl Store {
    /// The provenance of every row of the collection, kept per collection: after
    /// writes that only appended (no delete, no compaction since) only the records of
    /// the new ids are read (ids only grow), so the first filtered search after an
    /// import batch costs the batch, not the collection; the result equals a whole read.
    fn meta_for(&self, txn: &ReadTransaction, info: &CollectionInfo) -> Result<Arc<Meta>> {
        let cached = self.meta.read().expect("meta lock").get(&info.id).cloned();
        let mut meta = match cached {
            Some((g, m)) if g == info.generation => return Ok(m),
            Some((_, m))
                if m.next_id <= info.next_id
                    && m.epoch == info.epoch
                    && m.tombstones == info.tombstones =>
            {
                Meta::clone(&m)
            }
            _ => Meta::default(),
        };
        let path = self.db_path();
        let records = txn.open_table(RECORDS).map_err(|e| db_err(&path, e))?;
        let mut sample_ix: HashMap<String, u32> = meta
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        for entry in records
            .range((info.id, meta.next_id)..=(info.id, u64::MAX))
            .map_err(|e| db_err(&path, e))?
        {
            let (k, v) = entry.map_err(|e| db_err(&path, e))?;
            let r: PatchRecord = decode_record_at(&path, k.value(), v.value())?;
            let ix = *sample_ix.entry(r.sample.clone()).or_insert_with(|| {
                meta.samples.push(r.sample.clone());
                (meta.samples.len() - 1) as u32
            });
            meta.rows.insert(k.value().1, (ix, r.origin));
        }
        meta.next_id = info.next_id;
        meta.epoch = info.epoch;
        meta.tombstones = info.tombstones;
        let meta = Arc::new(meta);
        self.meta
            .write()
            .expect("meta lock")
            .insert(info.id, (info.generation, meta.clone()));
        Ok(meta)
    }

    /// Similarity of `query` to every live vector passing `filter` (all vectors when it
    /// is empty): cosine similarity for cosine collections, minus the L2 distance
    /// otherwise, computed exactly on the full-precision vectors. A parallel scan of
    /// the packed rows: with a sample filter only the rows of those samples are read
    /// (runs of consecutive rows), never the whole collection, and the graph is not
    /// needed (nor built). For heatmaps and percentile ranks. Vectors without a record
    /// belong to no sample.
    pub fn similarities(&self, collection: &str, query: &[f32], filter: &Filter) -> Result<Scored> {
        let txn = self.read()?;
        let info = self.collection_in(&txn, collection)?;
        validate_vector(query, info.dim, info.metric, 0).map_err(|e| match e {
            Error::BadInput { message, .. } => Error::bad_input("query", message),
            other => other,
        })?;
        let q = index::prepare(query, info.metric).expect("validated");
        let meta = self.meta_for(&txn, &info)?;
        let packed = self.packed_for(&txn, &info)?;
        let tombstones = read_tombstones(&txn, &self.db_path(), info.id)?;
        let allowed: Option<HashSet<u32>> = filter.samples.as_ref().map(|s| {
            (0..meta.samples.len() as u32)
                .filter(|&i| s.contains(&meta.samples[i as usize]))
                .collect()
        });
        let excluded: HashSet<u32> = (0..meta.samples.len() as u32)
            .filter(|&i| filter.exclude_samples.contains(&meta.samples[i as usize]))
            .collect();
        let pass = |id: u64| -> Option<(u32, [i64; 3])> {
            if !tombstones.is_empty() && tombstones.contains(&id) {
                return None;
            }
            let (sample, origin) = match meta.rows.get(&id) {
                Some(&(s, o)) => (s, o),
                None if allowed.is_none() => (u32::MAX, [0; 3]),
                None => return None,
            };
            if allowed.as_ref().is_some_and(|a| !a.contains(&sample)) || excluded.contains(&sample)
            {
                return None;
            }
            if let Some(r) = &filter.region
                && !r.contains(&origin)
            {
                return None;
            }
            Some((sample, origin))
        };
        // The rows to read: those of the samples asked for, or all of them.
        let rows: Vec<u64> = match &allowed {
            Some(a) => {
                let mut r: Vec<u64> = meta
                    .rows
                    .iter()
                    .filter(|(_, (s, _))| a.contains(s))
                    .filter_map(|(id, _)| packed.row_of(*id))
                    .collect();
                r.sort_unstable();
                r
            }
            None => (0..packed.rows()).collect(),
        };
        let metric = info.metric;
        let scored: Result<Vec<Option<ScoredPatch>>> = rows
            .par_chunks(4096)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&row| {
                        let id = packed.id_of(row);
                        let Some((sample, origin)) = pass(id) else {
                            return Ok(None);
                        };
                        let v = packed.vector(row, id)?;
                        Ok(Some(ScoredPatch {
                            id,
                            score: similarity(&q, v, metric),
                            sample,
                            origin,
                        }))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<Vec<_>>>>()
            .map(|v| v.into_iter().flatten().collect());
        Ok(Scored {
            samples: meta.samples.clone(),
            items: scored?.into_iter().flatten().collect(),
        })
    }

    /// The `k` nearest stored vectors to each query. HNSW unless `exact` is set or the
    /// filter lets few vectors through; every hit is re-checked against tombstones and
    /// the filter, and a query the graph cannot fill falls back to exact search.
    /// `queries` are rows of any owner (`Vec<f32>`, slices of one borrowed array).
    pub fn search<Q: AsRef<[f32]>>(
        &self,
        collection: &str,
        queries: &[Q],
        opts: &SearchOptions,
    ) -> Result<Vec<Vec<Hit>>> {
        crate::limits::count("k", opts.k)?;
        crate::limits::count("ef", opts.ef)?;
        let info = self.sync_index(collection)?;
        for (i, q) in queries.iter().enumerate() {
            validate_vector(q.as_ref(), info.dim, info.metric, i).map_err(|e| match e {
                Error::BadInput { message, .. } => Error::bad_input(format!("query {i}"), message),
                other => other,
            })?;
        }
        let prepared: Vec<Vec<f32>> = queries
            .iter()
            .map(|q| index::prepare(q.as_ref(), info.metric).expect("validated"))
            .collect();
        let txn = self.read()?;
        let meta = if opts.filter.is_empty() {
            None
        } else {
            Some(self.meta_for(&txn, &info)?)
        };
        let slot = self.slot(info.id);
        let live_guard = slot.read().expect("slot lock");
        let live = live_guard
            .as_ref()
            .ok_or_else(|| Error::Index("graph vanished during search".into()))?;
        if let Some(m) = &meta {
            check_filter(m, &opts.filter, &info.name)?;
        }
        let allowed = meta.map(|m| allowed_ids(&m, &opts.filter));
        let compiled = Compiled { live, allowed };
        let n_allowed = match &compiled.allowed {
            Some(a) => a.iter().filter(|id| !live.tombstones.contains(id)).count(),
            None => info.live as usize,
        };
        let want = opts.k.min(n_allowed);
        // A selective filter makes the graph walk inefficient and unreliable: when
        // few vectors pass, brute force over them is both faster and exact.
        let few = compiled.allowed.is_some() && n_allowed <= (info.live as usize / 20).max(4_096);
        if opts.exact || few || want == 0 {
            return self.exact(&txn, &info, &prepared, opts.k, &compiled);
        }
        let keep = |id: u64| compiled.keep(id);
        let filtered = compiled.allowed.is_some() || !live.tombstones.is_empty();
        // A quantized graph gives candidates; their full-precision rows decide.
        let quantized = !info.quantization.is_exact();
        let packed = if quantized {
            Some(self.packed_for(&txn, &info)?)
        } else {
            None
        };
        let rescore = match opts.rescore {
            0 => info.quantization.default_rescore(),
            r => r,
        };
        let n_cand = if quantized {
            opts.k
                .saturating_mul(rescore)
                .min(crate::limits::MAX_EF.max(opts.k))
        } else {
            opts.k
        };
        let results: Result<Vec<Option<Vec<Hit>>>> = prepared
            .par_iter()
            .map(|q| {
                let cands = live.index.candidates(
                    q,
                    n_cand,
                    opts.ef.max(n_cand),
                    if filtered { Some(&keep) } else { None },
                );
                let mut hits: Vec<Hit> = match &packed {
                    None => cands
                        .into_iter()
                        .map(|(node, distance)| Hit {
                            id: live.index.id_of(node),
                            distance,
                        })
                        .filter(|h| compiled.keep(h.id))
                        .collect(),
                    Some(p) => rescored(p, &live.index, q, &cands, info.metric, &compiled)?,
                };
                hits.truncate(opts.k);
                Ok((hits.len() >= want).then_some(hits))
            })
            .collect();
        let mut results = results?;
        let missing: Vec<usize> = (0..results.len())
            .filter(|i| results[*i].is_none())
            .collect();
        if !missing.is_empty() {
            let qs: Vec<Vec<f32>> = missing.iter().map(|i| prepared[*i].clone()).collect();
            let exact = self.exact(&txn, &info, &qs, opts.k, &compiled)?;
            for (i, hits) in missing.into_iter().zip(exact) {
                results[i] = Some(hits);
            }
        }
        Ok(results.into_iter().map(|r| r.expect("filled")).collect())
    }

    /// Brute-force top-k over the vectors `compiled` keeps, one pass over redb for all
    /// queries.
    fn exact(
        &self,
        txn: &ReadTransaction,
        info: &CollectionInfo,
        queries: &[Vec<f32>],
        k: usize,
        compiled: &Compiled<'_>,
    ) -> Result<Vec<Vec<Hit>>> {
        let packed = self.packed_for(txn, info)?;
        let mut tops: Vec<ExactTopK> = queries.iter().map(|_| ExactTopK::new(k)).collect();
        let mut chunk: Vec<(u64, Vec<f32>)> = Vec::with_capacity(4096);
        let flush = |chunk: &mut Vec<(u64, Vec<f32>)>, tops: &mut Vec<ExactTopK>| {
            tops.par_iter_mut()
                .zip(queries.par_iter())
                .for_each(|(top, q)| {
                    for (id, v) in chunk.iter() {
                        top.push(*id, index::distance(q, v, info.metric));
                    }
                });
            chunk.clear();
        };
        let visit = |row: u64, id: u64, chunk: &mut Vec<(u64, Vec<f32>)>| -> Result<()> {
            let v = packed.vector(row, id)?;
            chunk.push((
                id,
                index::prepare(v, info.metric).unwrap_or_else(|| v.to_vec()),
            ));
            Ok(())
        };
        match &compiled.allowed {
            Some(allowed) if allowed.len() < info.live as usize / 8 => {
                let mut rows: Vec<(u64, u64)> = allowed
                    .iter()
                    .filter(|id| compiled.keep(**id))
                    .filter_map(|&id| packed.row_of(id).map(|r| (r, id)))
                    .collect();
                rows.sort_unstable();
                for (row, id) in rows {
                    visit(row, id, &mut chunk)?;
                    if chunk.len() == 4096 {
                        flush(&mut chunk, &mut tops);
                    }
                }
            }
            _ => {
                for row in 0..packed.rows() {
                    let id = packed.id_of(row);
                    if !compiled.keep(id) {
                        continue;
                    }
                    visit(row, id, &mut chunk)?;
                    if chunk.len() == 4096 {
                        flush(&mut chunk, &mut tops);
                    }
                }
            }
        }
        flush(&mut chunk, &mut tops);
        Ok(tops
            .into_iter()
            .map(|t| {
                t.into_sorted()
                    .into_iter()
                    .map(|(id, distance)| Hit { id, distance })
                    .collect()
            })
            .collect())
    }
}

/// The candidates of a quantized graph (node, approximate distance) rescored on their
/// full-precision rows (node `i` is row `i`), kept by the filter, closest first.
fn rescored(
    packed: &Packed,
    index: &index::VectorIndex,
    q: &[f32],
    cands: &[(u32, f32)],
    metric: index::Metric,
    compiled: &Compiled<'_>,
) -> Result<Vec<Hit>> {
    let mut hits = Vec::with_capacity(cands.len());
    for &(node, _) in cands {
        let id = index.id_of(node);
        if !compiled.keep(id) || node as u64 >= packed.rows() {
            continue;
        }
        let v = packed.vector(node as u64, id)?;
        hits.push(Hit {
            id,
            distance: exact_distance(q, v, metric),
        });
    }
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    Ok(hits)
}

/// The distance of a stored (unprepared) vector to a prepared query, equal to
/// [`index::distance`] on the prepared vector.
fn exact_distance(q: &[f32], v: &[f32], metric: index::Metric) -> f32 {
    match metric {
        index::Metric::L2 => index::l2sq(q, v).sqrt(),
        index::Metric::Cosine => match index::prepare(v, metric) {
            Some(p) => index::distance(q, &p, metric),
            None => 1.0,
        },
    }
}

/// Cosine similarity of a stored (unprepared) vector to a prepared query, or minus
/// the L2 distance.
fn similarity(q: &[f32], v: &[f32], metric: index::Metric) -> f32 {
    match metric {
        index::Metric::Cosine => {
            let norm = index::dot(v, v).sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return 0.0;
            }
            index::dot(q, v) / norm
        }
        index::Metric::L2 => -index::distance(v, q, metric),
    }
}

/// A filter that cannot apply is an error, never an empty answer: an empty sample name,
/// or a sample or region filter on a collection whose vectors carry no provenance.
fn check_filter(meta: &Meta, filter: &Filter, collection: &str) -> Result<()> {
    let names = filter
        .samples
        .iter()
        .flatten()
        .chain(&filter.exclude_samples);
    if names.clone().any(|n| n.is_empty()) {
        return Err(Error::arg("sample", "an empty sample name"));
    }
    let by_sample = filter.samples.is_some() || !filter.exclude_samples.is_empty();
    if meta.rows.is_empty() && (by_sample || filter.region.is_some()) {
        return Err(Error::arg(
            if by_sample { "sample" } else { "region" },
            format!(
                "collection '{collection}' holds no sample tags or patch origins (its \
                 vectors were imported without them): a sample or region filter cannot \
                 apply"
            ),
        ));
    }
    Ok(())
}

fn allowed_ids(meta: &Meta, filter: &Filter) -> HashSet<u64> {
    let wanted: Option<HashSet<u32>> = filter.samples.as_ref().map(|names| {
        meta.samples
            .iter()
            .enumerate()
            .filter(|(_, s)| names.contains(s))
            .map(|(i, _)| i as u32)
            .collect()
    });
    let excluded: HashSet<u32> = meta
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| filter.exclude_samples.contains(s))
        .map(|(i, _)| i as u32)
        .collect();
    meta.rows
        .iter()
        .filter(|(_, (s, origin))| {
            wanted.as_ref().is_none_or(|w| w.contains(s))
                && !excluded.contains(s)
                && filter.region.as_ref().is_none_or(|r| r.contains(origin))
        })
        .map(|(id, _)| *id)
        .collect()
}
