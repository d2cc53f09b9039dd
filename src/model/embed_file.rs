//! One network of a model run on a float32 NPY array (rows = batch), for parity checks
//! against PyTorch and for inference benchmarks.

use std::path::Path;
use std::time::Instant;

use super::{Model, RunOptions};
use crate::error::{Error, Result};

/// Settings of [`Model::embed_file`].
#[derive(Debug, Clone)]
pub struct EmbedFileOptions {
    /// Network role: `image_3d`, `image_2d`, `genes` or `predictor`.
    pub network: String,
    /// Output name (`embedding`, `expression`, `hidden`).
    pub output: String,
    /// Rows per inference call.
    pub batch: usize,
    /// Run the whole input this many times and keep the best time.
    pub repeat: usize,
    /// Execution provider and threads.
    pub run: RunOptions,
}

/// The output of [`Model::embed_file`].
#[derive(Debug, Clone)]
pub struct EmbedFileOutput {
    /// One row per input row (further output axes flattened).
    pub rows: Vec<Vec<f32>>,
    /// Values per row.
    pub dim: usize,
    /// Best wall time of one pass over the input.
    pub seconds: f64,
}

impl Model {
    /// Run network `opts.network` on the float32 NPY array `input` and return output
    /// `opts.output`.
    pub fn embed_file(&self, input: &Path, opts: &EmbedFileOptions) -> Result<EmbedFileOutput> {
        if opts.batch == 0 {
            return Err(Error::arg("batch", "must be at least 1"));
        }
        if opts.repeat == 0 {
            return Err(Error::arg("repeat", "must be at least 1"));
        }
        let mut net = self.network(&opts.network, &opts.run)?;
        let (shape, values) = crate::vecio::read_f32_nd(input)?;
        if shape.is_empty() || shape[0] == 0 {
            return Err(Error::bad_file(input, "empty input"));
        }
        let n = shape[0];
        let per: usize = shape[1..].iter().product();
        let mut best = f64::INFINITY;
        let mut rows: Vec<Vec<f32>> = Vec::new();
        let mut dim = 0;
        for _ in 0..opts.repeat {
            rows.clear();
            let t = Instant::now();
            for start in (0..n).step_by(opts.batch) {
                let end = (start + opts.batch).min(n);
                let mut s = shape.clone();
                s[0] = end - start;
                let view = ndarray::ArrayViewD::from_shape(s, &values[start * per..end * per])
                    .map_err(|e| Error::bad_file(input, e.to_string()))?;
                let outs = net.run(view)?;
                let (_, o) = outs
                    .into_iter()
                    .find(|(k, _)| *k == opts.output)
                    .ok_or_else(|| {
                        Error::arg(
                            "output",
                            format!("network {} has no output '{}'", opts.network, opts.output),
                        )
                    })?;
                // Rows = batch; any further axes are flattened (e.g. tokens B,Q,E).
                let b = o.shape()[0];
                dim = o.len() / b.max(1);
                let flat = o.as_standard_layout();
                let flat = flat
                    .as_slice()
                    .ok_or_else(|| Error::Inference("output is not contiguous".into()))?;
                rows.extend(flat.chunks(dim.max(1)).map(|r| r.to_vec()));
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(EmbedFileOutput {
            rows,
            dim,
            seconds: best,
        })
    }
}
