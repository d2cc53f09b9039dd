//! Connectivity repair of the graph: relinking the thinly linked or unreachable nodes
//! that parallel insertion and neighbour pruning can leave behind.

use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{Cand, Graph, Portable, Space};

impl<S: Space> Graph<S> {
    /// Repair what parallel insertion and neighbour pruning can leave behind among
    /// the nodes of the last batch: too few links, or no link back from the nearest
    /// neighbour (an outlier no beam search would find).
    pub(super) fn repair_batch(&self, batch_start: usize) {
        let n = self.ids.len();
        if self.entry().is_none() {
            return;
        }
        // 0. Under parallel insertion a node can be linked from a neighbour whose own
        //    lists were still empty, and end up with very few links. Redo those
        //    nodes' neighbour search now that the batch is in place.
        let want = self.m.min(n.saturating_sub(1)) / 2;
        let this = self;
        (batch_start as u32..n as u32)
            .into_par_iter()
            .filter(|&node| (this.links(node, 0)[0].load(Ordering::Acquire) as usize) < want)
            .for_each(|node| this.relink(node));
        // 1. A search for a new node's vector arrives next to its nearest neighbours;
        //    if none of the three nearest links back (typically an outlier the
        //    selection heuristic pruned everywhere), the node is found, if at all, only
        //    by detours a beam search does not take. Link it from one of them, into a
        //    free slot if one has room.
        (batch_start as u32..n as u32)
            .into_par_iter()
            .for_each(|node| {
                let mut buf = Vec::new();
                let mut theirs = Vec::new();
                Self::read_links(this.links(node, 0), &mut buf);
                let mut near: Vec<Cand> = buf
                    .iter()
                    .map(|&c| Cand(this.space.between::<Portable>(node, c), c))
                    .collect();
                near.sort_unstable();
                near.truncate(3);
                let linked_back = near.iter().any(|c| {
                    Self::read_links(this.links(c.1, 0), &mut theirs);
                    theirs.contains(&node)
                });
                if linked_back || near.is_empty() {
                    return;
                }
                let target = near
                    .iter()
                    .find(|c| (this.links(c.1, 0)[0].load(Ordering::Acquire) as usize) < this.m0)
                    .unwrap_or(&near[0]);
                this.force_link(target.1, node);
            });
    }

    /// Make every node reachable from the entry point on layer 0 (one serial pass over
    /// the links, plus a search per node cut off). Run before a snapshot is written.
    pub(crate) fn ensure_reachable(&self) {
        let n = self.ids.len();
        let Some((entry, _)) = self.entry() else {
            return;
        };
        let mut buf = Vec::new();
        // 2. Every node reachable from the entry point on layer 0.
        for _round in 0..4 {
            let mut reached = vec![false; n];
            self.mark_reachable(entry, &mut reached, &mut buf);
            let lost: Vec<u32> = (0..n as u32).filter(|&x| !reached[x as usize]).collect();
            if lost.is_empty() {
                return;
            }
            for node in lost {
                if reached[node as usize] {
                    continue; // reached through an earlier repair in this round
                }
                let found =
                    self.search_internal(&self.space.node_query(node), self.ef_construction);
                let near: Vec<u32> = found
                    .into_iter()
                    .filter(|&c| c != node && reached[c as usize])
                    .collect();
                let Some(&first) = near.first() else { continue };
                let slot =
                    near.iter().take(4).copied().find(|&c| {
                        (self.links(c, 0)[0].load(Ordering::Acquire) as usize) < self.m0
                    });
                self.force_link(slot.unwrap_or(first), node);
                // everything reachable from `node` is now reached too
                self.mark_reachable(node, &mut reached, &mut buf);
            }
        }
    }

    /// Mark every node reachable from `from` on layer 0 (depth-first over links).
    fn mark_reachable(&self, from: u32, reached: &mut [bool], buf: &mut Vec<u32>) {
        let mut stack = vec![from];
        reached[from as usize] = true;
        while let Some(x) = stack.pop() {
            Self::read_links(self.links(x, 0), buf);
            for &y in buf.iter() {
                if !reached[y as usize] {
                    reached[y as usize] = true;
                    stack.push(y);
                }
            }
        }
    }

    /// Search again for the neighbours of a thinly linked node and merge them in.
    fn relink(&self, node: u32) {
        let q = self.space.node_query(node);
        let cands: Vec<Cand> = self
            .search_internal(&q, self.ef_construction)
            .into_iter()
            .filter(|&c| c != node)
            .map(|c| Cand(self.space.between::<Portable>(node, c), c))
            .collect();
        let selected = self.select::<Portable>(&cands, self.m);
        {
            let _g = self.locks[node as usize].lock().expect("node lock");
            let list = self.links(node, 0);
            let mut buf = Vec::new();
            Self::read_links(list, &mut buf);
            let mut union: Vec<Cand> = selected
                .iter()
                .chain(buf.iter().filter(|x| !selected.contains(x)))
                .map(|&c| Cand(self.space.between::<Portable>(node, c), c))
                .collect();
            union.sort_unstable();
            let kept: Vec<u32> = if union.len() <= self.m0 {
                union.iter().map(|c| c.1).collect()
            } else {
                self.select::<Portable>(&union, self.m0)
            };
            Self::write_links(list, &kept);
        }
        let mut scratch = Vec::new();
        for &s in &selected {
            self.add_link::<Portable>(s, node, 0, self.m0, &mut scratch);
        }
    }

    /// Add `node` to `target`'s layer-0 list: into a free slot, else in place of the
    /// farthest link.
    fn force_link(&self, target: u32, node: u32) {
        let _g = self.locks[target as usize].lock().expect("node lock");
        let list = self.links(target, 0);
        let mut theirs = Vec::new();
        Self::read_links(list, &mut theirs);
        if theirs.contains(&node) {
            return;
        }
        if theirs.len() < self.m0 {
            theirs.push(node);
        } else {
            let d = |x: u32| self.space.between::<Portable>(target, x);
            let worst = (0..theirs.len())
                .max_by(|&a, &b| d(theirs[a]).total_cmp(&d(theirs[b])))
                .expect("full list");
            theirs[worst] = node;
        }
        Self::write_links(list, &theirs);
    }
}
