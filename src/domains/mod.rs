//! Spatial domains: k-means over the predictor's hidden representation of every patch
//! of a sample (the method's choice), turned into a 3D label volume, per-domain
//! summaries and, given a segmentation, the adjusted Rand index against it.

pub mod kmeans;

use std::path::Path;

pub use kmeans::{KMeans, KMeansOptions, kmeans};

use crate::catalog::DomainRecord;
use crate::error::{Error, Result};
use crate::predict::Predictions;
use crate::query::heatmap::heatmap;

/// One domain's summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainSummary {
    /// Domain number (label value in the volume is `domain + 1`; 0 = no patch).
    pub domain: u32,
    /// Patches in the domain.
    pub patches: usize,
    /// Share of the sample's patches.
    pub fraction: f64,
    /// Genes with the highest mean predicted expression in the domain relative to the
    /// whole sample (difference of means), with that difference.
    pub top_genes: Vec<(String, f32)>,
}

/// Spatial domains of one sample: the clustering (as stored), per-domain summaries and
/// the ARI against a segmentation when one was given.
#[derive(Debug, Clone)]
pub struct Domains {
    /// The predictions clustered (patches, hidden representation).
    pub predictions: Predictions,
    /// The clustering as stored in the store.
    pub record: DomainRecord,
    /// Size and top genes of each domain.
    pub summaries: Vec<DomainSummary>,
    /// Adjusted Rand index against the segmentation and the patches it was computed
    /// over.
    pub ari: Option<(f64, usize)>,
    /// Seconds the clustering took.
    pub seconds: f64,
}

impl Domains {
    /// The label volume at `downsample` model voxels per voxel (domain + 1, 0 = no
    /// patch) and its shape.
    pub fn label_volume(&self, downsample: usize) -> (Vec<u8>, [usize; 3]) {
        label_volume(
            &self.predictions,
            &self.record.labels,
            self.record.k,
            downsample,
        )
    }
}

impl std::fmt::Display for Domains {
    /// The clustering, each domain's size and top genes, and the ARI, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.predictions;
        write!(
            f,
            "{} domains over {} patches of '{}' (k-means on the {}-d hidden representation, \
             inertia {:.4}, {:.2} s)",
            self.record.k,
            p.len(),
            p.sample.id,
            p.hidden_dim(),
            self.record.inertia,
            self.seconds
        )?;
        for s in &self.summaries {
            let top: Vec<String> = s
                .top_genes
                .iter()
                .map(|(g, d)| format!("{g} {d:+.2}"))
                .collect();
            write!(
                f,
                "\n  domain {}: {} patches ({:.1}%), top genes {}",
                s.domain + 1,
                s.patches,
                100.0 * s.fraction,
                top.join(", ")
            )?;
        }
        if let Some((v, n)) = self.ari {
            write!(f, "\n  ARI against the segmentation: {v:.3} ({n} patches)")?;
        }
        Ok(())
    }
}

/// Spatial domains of `sample`: k-means on the predictor's hidden representation of
/// every patch, stored in the store (replacing earlier domains of the sample, read by
/// evaluation), with the ARI against `segmentation` (an NPY of integer labels of the
/// source volume) when given. The segmentation is read before anything is computed.
pub fn find_domains(
    store: &crate::engine::Store,
    sample: &str,
    opts: &KMeansOptions,
    segmentation: Option<&Path>,
) -> Result<Domains> {
    let seg = segmentation.map(read_segmentation).transpose()?;
    let predictions = Predictions::load(store, sample)?;
    let t = std::time::Instant::now();
    let (record, summaries) = compute(&predictions, opts)?;
    let seconds = t.elapsed().as_secs_f64();
    let ari = match (&seg, segmentation) {
        (Some((lab, shape)), Some(p)) => {
            Some(ari_against(&predictions, &record.labels, lab, *shape, p)?)
        }
        _ => None,
    };
    store.put_domains(&record)?;
    Ok(Domains {
        predictions,
        record,
        summaries,
        ari,
        seconds,
    })
}

/// k-means over the hidden representation of every patch of `pred`.
pub fn compute(
    pred: &Predictions,
    opts: &KMeansOptions,
) -> Result<(DomainRecord, Vec<DomainSummary>)> {
    // Label volumes are uint8 (0 = no patch), so at most 255 domains.
    crate::limits::count("domains.k", opts.k)?;
    crate::limits::count("restarts", opts.restarts)?;
    crate::limits::count("max_iter", opts.max_iter)?;
    if opts.k > pred.len() {
        return Err(Error::arg(
            "k",
            format!(
                "k = {} is larger than the {} patches of sample '{}'",
                opts.k,
                pred.len(),
                pred.sample.id
            ),
        ));
    }
    let km = kmeans(&pred.hidden(), pred.hidden_dim(), opts)?;
    let rec = DomainRecord {
        sample: pred.sample.id.clone(),
        k: opts.k,
        seed: opts.seed,
        restarts: opts.restarts,
        inertia: km.inertia,
        ids: pred.patches.ids.clone(),
        labels: km.labels,
    };
    let summaries = summarise(pred, &rec.labels, opts.k, 5);
    Ok((rec, summaries))
}

/// Size and top genes (by mean predicted expression above the sample mean) per domain.
pub fn summarise(pred: &Predictions, labels: &[u32], k: usize, top: usize) -> Vec<DomainSummary> {
    let g = pred.genes.len();
    let n = pred.len();
    let mut overall = vec![0f64; g];
    let mut sums = vec![vec![0f64; g]; k];
    let mut counts = vec![0usize; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l as usize] += 1;
        for j in 0..g {
            let v = pred.expression[i * g + j] as f64;
            sums[l as usize][j] += v;
            overall[j] += v;
        }
    }
    (0..k)
        .map(|d| {
            let mut diff: Vec<(String, f32)> = (0..g)
                .map(|j| {
                    let m = sums[d][j] / counts[d].max(1) as f64;
                    (pred.genes[j].clone(), (m - overall[j] / n as f64) as f32)
                })
                .collect();
            diff.sort_by(|a, b| b.1.total_cmp(&a.1));
            diff.truncate(top);
            DomainSummary {
                domain: d as u32,
                patches: counts[d],
                fraction: counts[d] as f64 / n as f64,
                top_genes: diff,
            }
        })
        .collect()
}

/// The 3D domain label volume (model resolution / `downsample`): each voxel takes the
/// domain most of its covering patches belong to, stored as `domain + 1` (0 where no
/// patch covers it).
pub fn label_volume(
    pred: &Predictions,
    labels: &[u32],
    k: usize,
    downsample: usize,
) -> (Vec<u8>, [usize; 3]) {
    let mut best: Option<(Vec<f32>, Vec<u8>, [usize; 3])> = None;
    for d in 0..k {
        let pts: Vec<([i64; 3], f32)> = pred
            .patches
            .records
            .iter()
            .zip(labels)
            .map(|(r, &l)| (r.origin, if l as usize == d { 1.0 } else { 0.0 }))
            .collect();
        let h = heatmap(&pred.sample.grid, &pts, downsample);
        let (score, lab, _) = best.get_or_insert_with(|| {
            (
                vec![f32::NEG_INFINITY; h.data.len()],
                vec![0u8; h.data.len()],
                h.shape,
            )
        });
        for ((s, l), &v) in score.iter_mut().zip(lab.iter_mut()).zip(&h.data) {
            if !v.is_nan() && v > *s {
                *s = v;
                *l = (d + 1).min(255) as u8;
            }
        }
    }
    let (_, lab, shape) = best.expect("k >= 1");
    (lab, shape)
}

/// An integer label volume read from an NPY file (any integer dtype, C order).
pub fn read_segmentation(path: &Path) -> Result<(Vec<u32>, [usize; 3])> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| Error::bad_file(&p, format!("not an NPY file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    if shape.len() != 3 {
        return Err(Error::bad_file(
            &p,
            format!("a segmentation must be 3D (Z, Y, X); this one has shape {shape:?}"),
        ));
    }
    if npy.order() != npyz::Order::C {
        return Err(Error::bad_file(
            &p,
            "Fortran-order arrays are not supported",
        ));
    }
    let bad = |e: std::io::Error| Error::bad_file(&p, format!("cannot read labels: {e}"));
    let data: Vec<u32> = match npy.dtype() {
        npyz::DType::Plain(t) => match (t.type_char(), t.size_field()) {
            (npyz::TypeChar::Uint, 1) => npy
                .into_vec::<u8>()
                .map_err(bad)?
                .into_iter()
                .map(u32::from)
                .collect(),
            (npyz::TypeChar::Uint, 2) => npy
                .into_vec::<u16>()
                .map_err(bad)?
                .into_iter()
                .map(u32::from)
                .collect(),
            (npyz::TypeChar::Uint, 4) => npy.into_vec::<u32>().map_err(bad)?,
            (npyz::TypeChar::Int, 4) => npy
                .into_vec::<i32>()
                .map_err(bad)?
                .into_iter()
                .map(|v| v.max(0) as u32)
                .collect(),
            (npyz::TypeChar::Int, 8) => npy
                .into_vec::<i64>()
                .map_err(bad)?
                .into_iter()
                .map(|v| v.max(0) as u32)
                .collect(),
            (c, s) => {
                return Err(Error::bad_file(
                    &p,
                    format!("labels must be integers; dtype is {c:?}{s}"),
                ));
            }
        },
        other => {
            return Err(Error::bad_file(&p, format!("unsupported dtype {other:?}")));
        }
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err(Error::bad_file(
            &p,
            "the file is shorter than its header says",
        ));
    }
    Ok((data, [shape[0], shape[1], shape[2]]))
}

/// Adjusted Rand index of the domains against a segmentation of the sample's source
/// volume, over the patches whose centre voxel is labelled (label 0 = background is
/// left out). Returns (ARI, patches compared). A segmentation whose shape is not the
/// source volume's is refused.
pub fn ari_against(
    pred: &Predictions,
    labels: &[u32],
    seg: &[u32],
    seg_shape: [usize; 3],
    seg_path: &Path,
) -> Result<(f64, usize)> {
    let r = &pred.sample;
    if seg_shape != r.source_shape {
        return Err(Error::bad_file(
            seg_path,
            format!(
                "segmentation shape {:?} differs from sample '{}''s volume {:?}",
                seg_shape, r.id, r.source_shape
            ),
        ));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (p, &l) in pred.patches.records.iter().zip(labels) {
        let c: [usize; 3] = std::array::from_fn(|i| {
            let m = p.origin[i] as f64 + p.size[i] as f64 / 2.0;
            ((m * r.model_voxel_um[i] / r.voxel_um[i]) as usize).min(seg_shape[i] - 1)
        });
        let s = seg[(c[0] * seg_shape[1] + c[1]) * seg_shape[2] + c[2]];
        if s != 0 {
            a.push(l);
            b.push(s);
        }
    }
    if a.is_empty() {
        return Err(Error::bad_file(
            seg_path,
            "no patch centre falls on a labelled (non-zero) voxel",
        ));
    }
    Ok((crate::stats::adjusted_rand_index(&a, &b)?, a.len()))
}
