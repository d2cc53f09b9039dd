//! The features a linear readout reads per patch: the stored embedding, the predictor's
//! hidden representation, and the mean embedding around the patch at each context
//! scale (`context.rs`), optionally standardised over the sample's own patches.

use super::Predictions;
use super::context::Context;
use crate::engine::Store;
use crate::error::Result;

/// Per-patch feature rows of one sample, computed on demand.
pub(super) struct Rows<'a> {
    emb: Vec<f32>,
    dim: usize,
    hidden: Vec<f32>,
    h: usize,
    ctx: Context<'a>,
    /// Per-feature mean and spread over the sample's patches, when standardised.
    shift: Option<(Vec<f64>, Vec<f64>)>,
}

impl<'a> Rows<'a> {
    /// The rows of `p`'s patches with context at `scales`; with `per_sample`, every
    /// feature is standardised by its mean and spread over these patches (constant
    /// features keep a spread of 1).
    pub(super) fn new(
        p: &'a Predictions,
        store: &Store,
        scales: &[f64],
        per_sample: bool,
    ) -> Result<Rows<'a>> {
        let (emb, dim) = p.embeddings(store)?;
        let h = p.hidden_dim();
        let hidden = p.hidden();
        let ctx = Context::new(
            &p.patches.records,
            p.sample.model_voxel_um,
            scales,
            dim,
            |i, out| {
                for (o, v) in out.iter_mut().zip(&emb[i * dim..(i + 1) * dim]) {
                    *o = *v as f64;
                }
            },
        );
        let mut rows = Rows {
            emb,
            dim,
            hidden,
            h,
            ctx,
            shift: None,
        };
        if per_sample {
            let (n, f) = (p.len(), rows.width());
            let (mut s, mut ss) = (vec![0.0; f], vec![0.0; f]);
            let mut buf = vec![0.0; f];
            for i in 0..n {
                rows.write(i, &mut buf);
                for ((a, b), v) in s.iter_mut().zip(ss.iter_mut()).zip(&buf) {
                    *a += v;
                    *b += v * v;
                }
            }
            let nf = n.max(1) as f64;
            let mean: Vec<f64> = s.iter().map(|v| v / nf).collect();
            let sd = ss
                .iter()
                .zip(&mean)
                .map(|(q, m)| {
                    let var = q / nf - m * m;
                    if var > 1e-12 { var.sqrt() } else { 1.0 }
                })
                .collect();
            rows.shift = Some((mean, sd));
        }
        Ok(rows)
    }

    /// Embedding width.
    pub(super) fn dim(&self) -> usize {
        self.dim
    }

    /// Embedding + hidden width (the features before the context).
    pub(super) fn base(&self) -> usize {
        self.dim + self.h
    }

    /// Features per row.
    pub(super) fn width(&self) -> usize {
        self.base() + self.ctx.len()
    }

    /// The features of patch `i` into `out` (`width()` long).
    pub(super) fn write(&self, i: usize, out: &mut [f64]) {
        let (dim, h) = (self.dim, self.h);
        let own = self.emb[i * dim..(i + 1) * dim]
            .iter()
            .chain(&self.hidden[i * h..(i + 1) * h]);
        for (o, v) in out.iter_mut().zip(own) {
            *o = *v as f64;
        }
        let base = self.base();
        self.ctx.write(i, &mut out[base..]);
        if let Some((m, s)) = &self.shift {
            for ((v, m), s) in out.iter_mut().zip(m).zip(s) {
                *v = (*v - m) / s;
            }
        }
    }
}
