//! Spatial context of a patch for the ridge readout: at each scale, the mean feature of
//! the patches around it in its slab (the patches with the same z origin and depth,
//! i.e. the same section of a 2D or 2.5D sample), over the 3 x 3 block of square
//! in-plane cells of that side (micrometres) centred on the patch's own cell. Expression
//! is spatially autocorrelated over hundreds of micrometres (tumour nests, stroma,
//! lymphoid aggregates), more than one patch sees; the neighbourhood's morphology
//! carries that signal. Cells keep the cost linear in patches (9 cell lookups per patch
//! and scale) and the memory in cells, not patches.

use std::collections::HashMap;

use crate::engine::PatchRecord;

/// A cell: the slab (z origin, z size) and the in-plane cell (y, x).
type Key = (i64, u32, i64, i64);

/// Per-cell sums of the features at one scale.
struct Scale {
    /// Cell side in micrometres.
    side_um: f64,
    /// Index of each cell into `sums` / `counts`.
    cells: HashMap<Key, usize>,
    /// Feature sums per cell, `width` each.
    sums: Vec<f64>,
    /// Patches per cell.
    counts: Vec<u32>,
}

/// The context features of a sample's patches at one or more scales.
pub(super) struct Context<'a> {
    records: &'a [PatchRecord],
    voxel_um: [f64; 3],
    width: usize,
    scales: Vec<Scale>,
}

impl<'a> Context<'a> {
    /// Sums of `feature(i)` (each `width` wide) over the cells of every scale;
    /// `voxel_um` is the size of the voxels the patch origins are counted in.
    pub(super) fn new(
        records: &'a [PatchRecord],
        voxel_um: [f64; 3],
        scales_um: &[f64],
        width: usize,
        feature: impl Fn(usize, &mut [f64]),
    ) -> Self {
        let mut ctx = Context {
            records,
            voxel_um,
            width,
            scales: scales_um
                .iter()
                .map(|&side_um| Scale {
                    side_um,
                    cells: HashMap::new(),
                    sums: Vec::new(),
                    counts: Vec::new(),
                })
                .collect(),
        };
        let mut buf = vec![0.0; width];
        for i in 0..records.len() {
            feature(i, &mut buf);
            for s in 0..ctx.scales.len() {
                let key = ctx.key(i, s, 0, 0);
                let sc = &mut ctx.scales[s];
                let next = sc.counts.len();
                let c = *sc.cells.entry(key).or_insert(next);
                if c == next {
                    sc.counts.push(0);
                    sc.sums.resize((next + 1) * width, 0.0);
                }
                sc.counts[c] += 1;
                for (a, b) in sc.sums[c * width..(c + 1) * width].iter_mut().zip(&buf) {
                    *a += b;
                }
            }
        }
        ctx
    }

    /// Width of [`Context::write`]'s output: scales x feature width.
    pub(super) fn len(&self) -> usize {
        self.scales.len() * self.width
    }

    /// The cell of patch `i` at scale `s`, shifted by (dy, dx) cells.
    fn key(&self, i: usize, s: usize, dy: i64, dx: i64) -> Key {
        let p = &self.records[i];
        let side = self.scales[s].side_um;
        let cell = |a: usize| {
            let centre = (p.origin[a] as f64 + p.size[a] as f64 / 2.0) * self.voxel_um[a];
            (centre / side).floor() as i64
        };
        (p.origin[0], p.size[0], cell(1) + dy, cell(2) + dx)
    }

    /// The context features of patch `i`, scale after scale, into `out` (`len()`).
    pub(super) fn write(&self, i: usize, out: &mut [f64]) {
        let w = self.width;
        for (s, (sc, o)) in self.scales.iter().zip(out.chunks_mut(w)).enumerate() {
            o.iter_mut().for_each(|v| *v = 0.0);
            let mut n = 0u32;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    if let Some(&c) = sc.cells.get(&self.key(i, s, dy, dx)) {
                        n += sc.counts[c];
                        for (a, b) in o.iter_mut().zip(&sc.sums[c * w..(c + 1) * w]) {
                            *a += b;
                        }
                    }
                }
            }
            // The patch's own cell holds at least the patch itself.
            o.iter_mut().for_each(|v| *v /= n.max(1) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(z: i64, y: i64, x: i64) -> PatchRecord {
        PatchRecord {
            sample: "s".into(),
            origin: [z, y, x],
            size: [1, 10, 10],
            tissue_fraction: 1.0,
        }
    }

    #[test]
    fn context_is_the_mean_over_the_block_of_cells_in_the_same_slab() {
        // Patch centres at 5, 15, ..., 95 voxels of 2 um along x, in two slabs; cells
        // of 40 um: centre 10 um -> cell 0, ..., 190 um -> cell 4.
        let mut recs: Vec<PatchRecord> = (0..10).map(|k| patch(0, 0, k * 10)).collect();
        recs.extend((0..10).map(|k| patch(1, 0, k * 10)));
        let value = |i: usize| if i < 10 { i as f64 } else { 100.0 };
        let ctx = Context::new(&recs, [1.0, 2.0, 2.0], &[40.0], 1, |i, b| b[0] = value(i));
        assert_eq!(ctx.len(), 1);
        let mut out = [0.0];
        // Patch 0 (centre 10 um, cell 0): cells -1..=1 hold patches 0..=3.
        ctx.write(0, &mut out);
        assert!((out[0] - 1.5).abs() < 1e-12, "{out:?}");
        // Patch 5 (centre 110 um, cell 2): cells 1..=3 hold patches 2..=7.
        ctx.write(5, &mut out);
        assert!((out[0] - 4.5).abs() < 1e-12, "{out:?}");
        // The other slab never mixes in.
        ctx.write(15, &mut out);
        assert_eq!(out[0], 100.0);
    }

    #[test]
    fn scales_are_written_one_after_the_other() {
        let recs: Vec<PatchRecord> = (0..10).map(|k| patch(0, 0, k * 10)).collect();
        let ctx = Context::new(&recs, [1.0, 1.0, 1.0], &[10.0, 1000.0], 2, |i, b| {
            b[0] = i as f64;
            b[1] = 1.0;
        });
        let mut out = [0.0; 4];
        ctx.write(4, &mut out);
        // 10 um cells: patches 3, 4, 5; 1000 um cells: all ten.
        assert_eq!(out, [4.0, 1.0, 4.5, 1.0]);
    }
}
