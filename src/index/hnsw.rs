//! A hand-written HNSW graph (Malkov & Yashunin), laid out for speed: vectors in one
//! contiguous buffer, layer-0 links in one flat array of `u32`, per-thread visited
//! marks, and an AVX2/FMA squared-L2 kernel chosen at run time.
//!
//! Why not `hnsw_rs`: on the same data and threads it built ~4x slower and answered
//! ~4x fewer queries/s than hnswlib (BENCHMARKS.md); this layout is the one hnswlib
//! uses, in safe Rust apart from the target-feature call.
//!
//! Concurrency: a batch is first appended serially (vectors, levels, empty link
//! lists), then linked in parallel. Link lists are `AtomicU32` so that concurrent
//! readers and a writer holding the node's lock never race in the Rust sense; a
//! reader may see a list mid-update, which is harmless for a graph walk (every id it
//! can see is a node whose vector is already in place).

mod repair;
mod snapshot;
mod space;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use space::Fma;
pub(crate) use space::{Bits, Flat, Kernel, Portable, Space, Sq8};
use space::{dot_lanes, l2sq_lanes};

const NO_ENTRY: u64 = u64::MAX;
const MAX_LEVEL: usize = 15;

/// Squared-L2 kernel signature.
type DistFn = fn(&[f32], &[f32]) -> f32;

#[inline(always)]
fn l2sq_portable(a: &[f32], b: &[f32]) -> f32 {
    l2sq_lanes::<false>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn l2sq_avx2_inner(a: &[f32], b: &[f32]) -> f32 {
    l2sq_lanes::<true>(a, b)
}

#[cfg(target_arch = "x86_64")]
fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only selected by `pick_kernel` after detecting AVX2 and FMA at run time.
    unsafe { l2sq_avx2_inner(a, b) }
}

fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn pick_kernel() -> DistFn {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        return l2sq_avx2;
    }
    l2sq_portable
}

/// Squared L2 distance with the fastest kernel this CPU supports.
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    thread_local!(static K: DistFn = pick_kernel());
    K.with(|k| k(a, b))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2_inner(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

fn pick_dot() -> DistFn {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: only chosen after detecting AVX2 and FMA at run time.
        return |a, b| unsafe { dot_avx2_inner(a, b) };
    }
    |a, b| dot_lanes::<false>(a, b)
}

/// Dot product with the fastest kernel this CPU supports.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    thread_local!(static K: DistFn = pick_dot());
    K.with(|k| k(a, b))
}

/// Hint the CPU to start loading the cache line at `p` (no effect on other targets).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand(f32, u32);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Visited marks with a per-search tag (u16 keeps the array small: 2 MB per million
/// nodes, so it stays in cache longer).
struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

thread_local!(static VISITED: RefCell<Visited> = const { RefCell::new(Visited { marks: Vec::new(), epoch: 0 }) });

/// The graph over one [`Space`]. Node numbers are dense `u32` in insertion order;
/// `ids` maps them to the store's ids.
pub(crate) struct Graph<S: Space> {
    space: S,
    m: usize,
    m0: usize,
    ef_construction: usize,
    seed: u64,
    fma: bool,
    ids: Vec<u64>,
    levels: Vec<u8>,
    layer0: Vec<AtomicU32>,
    upper: Vec<Box<[AtomicU32]>>,
    locks: Vec<Mutex<()>>,
    entry: AtomicU64,
    entry_lock: Mutex<()>,
}

fn pack(node: u32, level: usize) -> u64 {
    ((level as u64) << 32) | node as u64
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
    x ^ (x >> 31)
}

impl<S: Space> Graph<S> {
    /// An empty graph.
    pub(crate) fn new(dim: usize, m: usize, ef_construction: usize, capacity: usize) -> Self {
        let m = m.max(2);
        let m0 = 2 * m;
        Graph {
            space: S::empty(dim, capacity),
            m,
            m0,
            ef_construction: ef_construction.max(m),
            seed: 0x5EED,
            fma: has_fma(),
            ids: Vec::with_capacity(capacity),
            levels: Vec::with_capacity(capacity),
            layer0: Vec::with_capacity(capacity * (m0 + 1)),
            upper: Vec::with_capacity(capacity),
            locks: Vec::with_capacity(capacity),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
        }
    }

    /// Vector dimension.
    pub(crate) fn dim(&self) -> usize {
        self.space.dim()
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The store id of a node.
    pub(crate) fn id(&self, node: u32) -> u64 {
        self.ids[node as usize]
    }

    /// Every node's store id, in node order.
    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    #[inline]
    fn links(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let s = node as usize * (self.m0 + 1);
            &self.layer0[s..s + self.m0 + 1]
        } else {
            let s = (level - 1) * (self.m + 1);
            &self.upper[node as usize][s..s + self.m + 1]
        }
    }

    fn read_links(list: &[AtomicU32], out: &mut Vec<u32>) {
        out.clear();
        let n = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        out.extend(list[1..=n].iter().map(|a| a.load(Ordering::Relaxed)));
    }

    fn write_links(list: &[AtomicU32], ids: &[u32]) {
        for (slot, id) in list[1..].iter().zip(ids) {
            slot.store(*id, Ordering::Relaxed);
        }
        list[0].store(ids.len() as u32, Ordering::Release);
    }

    fn entry(&self) -> Option<(u32, usize)> {
        let e = self.entry.load(Ordering::Acquire);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as usize))
    }

    fn random_level(&self, id: u64) -> usize {
        let u = ((splitmix(id ^ self.seed) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.m as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL)
    }

    /// Append `(id, vector)` pairs and link them into the graph (in parallel).
    pub(crate) fn insert(&mut self, items: &[(u64, Vec<f32>)]) {
        let start = self.ids.len();
        if start == 0 {
            self.space.fit(items);
        }
        for (id, v) in items {
            assert_eq!(v.len(), self.space.dim(), "vector dimension");
            let level = self.random_level(*id);
            self.space.push(v);
            self.ids.push(*id);
            self.levels.push(level as u8);
            self.layer0
                .extend((0..self.m0 + 1).map(|_| AtomicU32::new(0)));
            self.upper.push(
                (0..level * (self.m + 1))
                    .map(|_| AtomicU32::new(0))
                    .collect(),
            );
            self.locks.push(Mutex::new(()));
        }
        let mut first = start;
        if self.entry().is_none() && first < self.ids.len() {
            self.entry.store(
                pack(first as u32, self.levels[first] as usize),
                Ordering::Release,
            );
            first += 1;
        }
        let this = &*self;
        let nodes = first as u32..this.ids.len() as u32;
        let batch = nodes.len();
        if nodes.len() < 32 {
            nodes.for_each(|n| this.link(n));
        } else {
            nodes.into_par_iter().for_each(|n| this.link(n));
        }
        self.repair_batch(start);
        // The whole-graph reachability pass costs O(n); run it when the batch is a
        // sizeable part of the graph (amortised O(1) per node), and before snapshots.
        if batch * 10 >= self.ids.len() {
            self.ensure_reachable();
        }
    }
    /// Internal node numbers nearest to `q` (no filter), closest first.
    fn search_internal(&self, q: &S::Query, ef: usize) -> Vec<u32> {
        let Some((entry, top)) = self.entry() else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        let d0 = self.space.dist::<Portable>(q, entry);
        let (cur, cur_d) = if top > 0 {
            self.greedy::<Portable>(q, entry, d0, top, 1, &mut buf)
        } else {
            (entry, d0)
        };
        VISITED
            .with(|v| {
                self.search_layer::<Portable>(
                    q,
                    &[Cand(cur_d, cur)],
                    ef,
                    0,
                    None,
                    &mut v.borrow_mut(),
                    &mut buf,
                )
            })
            .into_iter()
            .map(|c| c.1)
            .collect()
    }

    #[inline(always)]
    fn greedy<K: Kernel>(
        &self,
        q: &S::Query,
        mut cur: u32,
        mut cur_d: f32,
        from: usize,
        to: usize,
        buf: &mut Vec<u32>,
    ) -> (u32, f32) {
        for level in (to..=from).rev() {
            loop {
                let mut changed = false;
                Self::read_links(self.links(cur, level), buf);
                for &nb in buf.iter() {
                    let d = self.space.dist::<K>(q, nb);
                    if d < cur_d {
                        cur_d = d;
                        cur = nb;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        (cur, cur_d)
    }

    /// Best-first search of one layer; returns up to `ef` nodes passing `keep`,
    /// closest first.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)] // hot path: scratch buffers passed in
    fn search_layer<K: Kernel>(
        &self,
        q: &S::Query,
        eps: &[Cand],
        ef: usize,
        level: usize,
        keep: Option<&dyn Fn(u32) -> bool>,
        visited: &mut Visited,
        buf: &mut Vec<u32>,
    ) -> Vec<Cand> {
        visited.reset(self.ids.len());
        let mut cands: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        for &c in eps {
            if visited.insert(c.1) {
                cands.push(Reverse(c));
                if keep.is_none_or(|f| f(c.1)) {
                    results.push(c);
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        let mut bound = results.peek().map_or(f32::INFINITY, |c| c.0);
        while let Some(Reverse(c)) = cands.pop() {
            if c.0 > bound && results.len() >= ef {
                break;
            }
            Self::read_links(self.links(c.1, level), buf);
            // Keep the unvisited neighbours and start loading their vectors before the
            // first distance is computed.
            buf.retain(|&nb| visited.insert(nb));
            for &nb in buf.iter() {
                prefetch(self.space.addr(nb));
            }
            for &nb in buf.iter() {
                let d = self.space.dist::<K>(q, nb);
                if results.len() < ef || d < bound {
                    cands.push(Reverse(Cand(d, nb)));
                    if keep.is_none_or(|f| f(nb)) {
                        results.push(Cand(d, nb));
                        if results.len() > ef {
                            results.pop();
                        }
                        bound = results.peek().map_or(f32::INFINITY, |c| c.0);
                    }
                }
            }
        }
        results.into_sorted_vec()
    }

    /// hnswlib's neighbour-selection heuristic: keep a candidate only if it is closer
    /// to the base than to every neighbour already kept. `cands` sorted ascending.
    #[inline(always)]
    fn select<K: Kernel>(&self, cands: &[Cand], m: usize) -> Vec<u32> {
        if cands.len() <= m {
            return cands.iter().map(|c| c.1).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if kept.iter().all(|&r| self.space.between::<K>(c.1, r) >= c.0) {
                kept.push(c.1);
                if kept.len() == m {
                    break;
                }
            }
        }
        kept
    }

    fn link(&self, node: u32) {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when AVX2 and FMA were detected at run time.
            return unsafe { self.link_fma(node) };
        }
        self.link_k::<Portable>(node)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,popcnt")]
    fn link_fma(&self, node: u32) {
        self.link_k::<Fma>(node)
    }

    #[inline(always)]
    fn link_k<K: Kernel>(&self, node: u32) {
        let q = &self.space.node_query(node);
        let level = self.levels[node as usize] as usize;
        let mut buf = Vec::with_capacity(self.m0);
        let (entry, top) = self.entry().expect("graph has an entry point");
        // A node above the current top holds the entry lock for its whole insertion,
        // as in hnswlib, so two new tops cannot race.
        let (_top_guard, entry, top) = if level > top {
            let g = self.entry_lock.lock().expect("entry lock");
            let (e, t) = self.entry().expect("entry");
            (Some(g), e, t)
        } else {
            (None, entry, top)
        };
        let d0 = self.space.dist::<K>(q, entry);
        let (cur, cur_d) = if top > level {
            self.greedy::<K>(q, entry, d0, top, level + 1, &mut buf)
        } else {
            (entry, d0)
        };
        let mut eps = vec![Cand(cur_d, cur)];
        VISITED.with(|v| {
            let visited = &mut v.borrow_mut();
            for l in (0..=level.min(top)).rev() {
                let cands = self.search_layer::<K>(
                    q,
                    &eps,
                    self.ef_construction,
                    l,
                    None,
                    visited,
                    &mut buf,
                );
                let selected = self.select::<K>(&cands, self.m);
                let max = if l == 0 { self.m0 } else { self.m };
                {
                    let _g = self.locks[node as usize].lock().expect("node lock");
                    let list = self.links(node, l);
                    Self::read_links(list, &mut buf);
                    if buf.is_empty() {
                        Self::write_links(list, &selected);
                    } else {
                        // Another insertion already linked to this node at this level
                        // (it reached it through a higher layer): keep those links too.
                        let mut union: Vec<Cand> = selected
                            .iter()
                            .chain(buf.iter().filter(|x| !selected.contains(x)))
                            .map(|&n| Cand(self.space.dist::<K>(q, n), n))
                            .collect();
                        union.sort_unstable();
                        let kept = if union.len() <= max {
                            union.iter().map(|c| c.1).collect()
                        } else {
                            self.select::<K>(&union, max)
                        };
                        Self::write_links(list, &kept);
                    }
                }
                for &s in &selected {
                    self.add_link::<K>(s, node, l, max, &mut buf);
                }
                eps = cands;
            }
        });
        if level > top {
            self.entry.store(pack(node, level), Ordering::Release);
        }
    }

    #[inline(always)]
    fn add_link<K: Kernel>(&self, to: u32, new: u32, level: usize, max: usize, buf: &mut Vec<u32>) {
        let _g = self.locks[to as usize].lock().expect("node lock");
        let list = self.links(to, level);
        Self::read_links(list, buf);
        if buf.contains(&new) {
            return;
        }
        if buf.len() < max {
            list[buf.len() + 1].store(new, Ordering::Relaxed);
            list[0].store(buf.len() as u32 + 1, Ordering::Release);
            return;
        }
        let mut cands: Vec<Cand> = buf
            .iter()
            .chain(std::iter::once(&new))
            .map(|&n| Cand(self.space.between::<K>(to, n), n))
            .collect();
        cands.sort_unstable();
        let kept = self.select::<K>(&cands, max);
        Self::write_links(list, &kept);
    }

    /// The `k` nearest nodes to `q` (prepared for the metric) among those whose id
    /// passes `keep`: (node, distance in the space), closest first. For `Flat` the
    /// distance is the squared L2 distance.
    pub(crate) fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u32, f32)> {
        let q = self.space.query(q);
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is set only when AVX2, FMA and POPCNT were detected at run time.
            return unsafe { self.search_fma(&q, k, ef, keep) };
        }
        self.search_k::<Portable>(&q, k, ef, keep)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,popcnt")]
    fn search_fma(
        &self,
        q: &S::Query,
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u32, f32)> {
        self.search_k::<Fma>(q, k, ef, keep)
    }

    #[inline(always)]
    fn search_k<K: Kernel>(
        &self,
        q: &S::Query,
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u32, f32)> {
        let Some((entry, top)) = self.entry() else {
            return Vec::new();
        };
        let mut buf = Vec::with_capacity(self.m0);
        let d0 = self.space.dist::<K>(q, entry);
        let (cur, cur_d) = if top > 0 {
            self.greedy::<K>(q, entry, d0, top, 1, &mut buf)
        } else {
            (entry, d0)
        };
        let node_keep = keep.map(|f| move |n: u32| f(self.ids[n as usize]));
        let found = VISITED.with(|v| {
            self.search_layer::<K>(
                q,
                &[Cand(cur_d, cur)],
                ef.max(k),
                0,
                node_keep.as_ref().map(|f| f as &dyn Fn(u32) -> bool),
                &mut v.borrow_mut(),
                &mut buf,
            )
        });
        found.into_iter().take(k).map(|c| (c.1, c.0)).collect()
    }
}
