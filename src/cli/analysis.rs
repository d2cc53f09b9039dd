//! `vortexdb predict`, `vortexdb domains` and `vortexdb eval`: predicted expression per
//! patch (Parquet, per-gene 3D volumes and PNG slices), k-means spatial domains (label
//! volume, summaries, PNG slices, ARI against a segmentation) and the evaluation of
//! predictions against measured spots (JSON + Markdown report with PNG plots).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch, UInt64Array};
use clap::Args;
use serde_json::json;

use super::out;
use super::query::underlay;
use vortexdb::domains::{self, KMeansOptions};
use vortexdb::error::{Error, Result};
use vortexdb::metrics::eval::{EvalInput, EvalReport, evaluate};
use vortexdb::predict::{Predictions, gene_columns};
use vortexdb::query::heatmap::{Heatmap, auto_downsample, coolwarm, overlay, write_tiff};
use vortexdb::store::{DomainRecord, SampleRecord, Store};
use vortexdb::vecio::{write_f32_array_npy, write_u8_array_npy};

fn split_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// How predictions are made (shared by `predict` and `eval`).
#[derive(Debug, Args)]
pub struct MethodArgs {
    /// Instead of the predictor head, predict each patch as the similarity-weighted mean
    /// expression of its K most similar reference spots (BLEEP-style baseline).
    #[arg(long, value_name = "K")]
    pub knn: Option<usize>,
    /// Spot samples used as the reference of --knn, comma-separated.
    #[arg(long, value_name = "S1,S2")]
    pub reference: Option<String>,
}

impl MethodArgs {
    fn load(&self, store: &Store, sample: &str) -> Result<Predictions> {
        let mut p = Predictions::load(store, sample)?;
        if let Some(k) = self.knn {
            let r = split_list(&self.reference);
            if r.is_empty() {
                return Err(Error::bad_input(
                    "--reference",
                    "--knn needs --reference with at least one spot sample",
                ));
            }
            p.use_knn(store, &r, k)?;
        }
        Ok(p)
    }
}

/// Arguments of `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose patches to predict.
    #[arg(long)]
    pub sample: String,
    /// Parquet file of every patch: patch_id, z, y, x (model voxels), tissue, one
    /// column per predicted gene.
    #[arg(long)]
    pub out: PathBuf,
    /// Genes to write as 3D volumes (comma-separated; case-insensitive).
    #[arg(long, value_name = "G1,G2")]
    pub genes: Option<String>,
    /// Directory for the volumes: <gene>.npy and <gene>.tif (float32, overlap-averaged,
    /// NaN outside the patches) and <gene>_zNNNN.png slices.
    #[arg(long, value_name = "DIR")]
    pub volumes: Option<PathBuf>,
    /// Model voxels per output voxel (default: the smallest keeping a volume under 64M
    /// voxels).
    #[arg(long)]
    pub downsample: Option<usize>,
    /// PNG slices per gene volume.
    #[arg(long, default_value_t = 3)]
    pub slices: usize,
    /// Prediction method.
    #[command(flatten)]
    pub method: MethodArgs,
}

/// Run `predict`.
pub fn run_predict(a: &PredictArgs, json_out: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let pred = a.method.load(&store, &a.sample)?;
    let genes = split_list(&a.genes);
    let cols = pred.gene_columns(&genes)?;
    if !genes.is_empty() && a.volumes.is_none() {
        return Err(Error::bad_input("--volumes", "--genes needs --volumes DIR"));
    }
    write_predictions_parquet(&a.out, &pred)?;
    let mut files = vec![a.out.display().to_string()];
    if let Some(dir) = &a.volumes {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let d = a
            .downsample
            .unwrap_or_else(|| auto_downsample(pred.sample.grid.shape, 64 << 20));
        let names: Vec<&str> = cols.iter().map(|&c| pred.genes[c].as_str()).collect();
        let stems = vortexdb::names::unique_stems(&names);
        for (&c, name) in cols.iter().zip(&stems) {
            let h = pred.gene_volume(c, d);
            let npy = dir.join(format!("{name}.npy"));
            write_f32_array_npy(&npy, &h.shape, &h.data)?;
            let tif = dir.join(format!("{name}.tif"));
            write_tiff(&tif, &h)?;
            files.push(npy.display().to_string());
            files.push(tif.display().to_string());
            files.extend(write_slices(dir, name, &pred.sample, &h, a.slices)?);
        }
    }
    let method = serde_json::to_value(&pred.method).unwrap_or_default();
    if json_out {
        out(
            &json!({"ok": true, "sample": a.sample, "patches": pred.len(),
            "genes": pred.genes.len(), "method": method, "files": files})
            .to_string(),
        );
    } else {
        out(&format!(
            "predicted {} genes for {} patches of '{}' ({})",
            pred.genes.len(),
            pred.len(),
            a.sample,
            match &pred.method {
                vortexdb::predict::Method::Predictor => "predictor head".to_string(),
                vortexdb::predict::Method::Knn { k, reference } =>
                    format!("{k} nearest spots of {}", reference.join(", ")),
            }
        ));
        for f in &files {
            out(&format!("  {f}"));
        }
    }
    Ok(())
}

pub(super) fn write_predictions_parquet(path: &Path, pred: &Predictions) -> Result<()> {
    let err = |e: String| Error::bad_input(path.display().to_string(), e);
    let r = &pred.patches.records;
    let mut cols: Vec<(String, ArrayRef)> = vec![
        (
            "patch_id".into(),
            Arc::new(UInt64Array::from(pred.patches.ids.clone())),
        ),
        (
            "z".into(),
            Arc::new(Int64Array::from_iter_values(r.iter().map(|p| p.origin[0]))),
        ),
        (
            "y".into(),
            Arc::new(Int64Array::from_iter_values(r.iter().map(|p| p.origin[1]))),
        ),
        (
            "x".into(),
            Arc::new(Int64Array::from_iter_values(r.iter().map(|p| p.origin[2]))),
        ),
        (
            "tissue".into(),
            Arc::new(Float32Array::from_iter_values(
                r.iter().map(|p| p.tissue_fraction),
            )),
        ),
    ];
    for (j, g) in pred.genes.iter().enumerate() {
        cols.push((g.clone(), Arc::new(Float32Array::from(pred.column(j)))));
    }
    let batch = RecordBatch::try_from_iter(cols).map_err(|e| err(e.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None)
        .map_err(|e| err(e.to_string()))?;
    w.write(&batch).map_err(|e| err(e.to_string()))?;
    w.close().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// `n` evenly spaced PNG overlays (coolwarm, 10th-90th percentile) of a volume.
fn write_slices(
    dir: &Path,
    name: &str,
    rec: &SampleRecord,
    h: &Heatmap,
    n: usize,
) -> Result<Vec<String>> {
    let (lo, hi) = (
        h.percentile(10.0).unwrap_or(0.0),
        h.percentile(90.0).unwrap_or(1.0),
    );
    let mut src = vortexdb::volume::open(Path::new(&rec.source), None).ok();
    let n = n.min(h.shape[0]);
    let mut files = Vec::new();
    for k in 0..n {
        let z = (2 * k + 1) * h.shape[0] / (2 * n);
        let under = src.as_mut().and_then(|s| underlay(s.as_mut(), rec, h, z));
        let img = overlay(h, z, lo, hi, under.as_deref());
        let png = dir.join(format!(
            "{name}_z{:04}.png",
            z * h.downsample + h.downsample / 2
        ));
        img.save(&png)
            .map_err(|e| Error::bad_input(png.display().to_string(), e.to_string()))?;
        files.push(png.display().to_string());
    }
    Ok(files)
}

/// Arguments of `domains`.
#[derive(Debug, Args)]
pub struct DomainsArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose patches to cluster.
    #[arg(long)]
    pub sample: String,
    /// Number of domains.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// k-means seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// k-means restarts (the lowest inertia is kept).
    #[arg(long, default_value_t = 10)]
    pub restarts: usize,
    /// Lloyd iterations at most per restart.
    #[arg(long, default_value_t = 300)]
    pub max_iter: usize,
    /// A segmentation of the sample's source volume (NPY, integer labels, 0 =
    /// background): the adjusted Rand index of the domains against it is reported.
    #[arg(long, value_name = "NPY")]
    pub segmentation: Option<PathBuf>,
    /// Output directory: domains.npy (uint8 label volume, domain + 1, 0 = no patch),
    /// domains.csv (patch_id, z, y, x, domain), domains.json, domains_zNNNN.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Model voxels per output voxel (default: keeps the volume under 64M voxels).
    #[arg(long)]
    pub downsample: Option<usize>,
    /// PNG slices.
    #[arg(long, default_value_t = 3)]
    pub slices: usize,
}

/// Ten distinct colours (matplotlib's tab10) for domain labels 1..=10.
pub(super) const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Run `domains`.
pub fn run_domains(a: &DomainsArgs, json_out: bool) -> Result<()> {
    let seg = match &a.segmentation {
        Some(p) => Some((domains::read_segmentation(p)?, p.clone())),
        None => None,
    };
    let store = Store::open(&a.store)?;
    let pred = Predictions::load(&store, &a.sample)?;
    let opts = KMeansOptions {
        k: a.k,
        restarts: a.restarts,
        max_iter: a.max_iter,
        seed: a.seed,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let (rec, summaries) = domains::compute(&pred, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    let ari = match &seg {
        Some(((lab, shape), p)) => Some(domains::ari_against(&pred, &rec.labels, lab, *shape, p)?),
        None => None,
    };
    store.put_domains(&rec)?;
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        files = write_domain_outputs(dir, &pred, &rec, &summaries, ari, a.downsample, a.slices)?;
    }
    if json_out {
        out(
            &json!({"ok": true, "sample": a.sample, "k": a.k, "patches": pred.len(),
            "inertia": rec.inertia, "seconds": secs, "domains": summaries,
            "ari": ari.map(|x| x.0), "ari_patches": ari.map(|x| x.1), "files": files})
            .to_string(),
        );
    } else {
        out(&format!(
            "{} domains over {} patches of '{}' (k-means on the {}-d hidden representation, inertia {:.4}, {:.2} s)",
            a.k,
            pred.len(),
            a.sample,
            pred.hidden_dim(),
            rec.inertia,
            secs
        ));
        for s in &summaries {
            let top: Vec<String> = s
                .top_genes
                .iter()
                .map(|(g, d)| format!("{g} {d:+.2}"))
                .collect();
            out(&format!(
                "  domain {}: {} patches ({:.1}%), top genes {}",
                s.domain + 1,
                s.patches,
                100.0 * s.fraction,
                top.join(", ")
            ));
        }
        if let Some((v, n)) = ari {
            out(&format!(
                "  ARI against the segmentation: {v:.3} ({n} patches)"
            ));
        }
        for f in &files {
            out(&format!("  {f}"));
        }
    }
    Ok(())
}

fn write_domain_outputs(
    dir: &Path,
    pred: &Predictions,
    rec: &DomainRecord,
    summaries: &[domains::DomainSummary],
    ari: Option<(f64, usize)>,
    downsample: Option<usize>,
    slices: usize,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let d = downsample.unwrap_or_else(|| auto_downsample(pred.sample.grid.shape, 64 << 20));
    let (vol, shape) = domains::label_volume(pred, &rec.labels, rec.k, d);
    let mut files = Vec::new();
    let npy = dir.join("domains.npy");
    write_u8_array_npy(&npy, &shape, &vol)?;
    files.push(npy.display().to_string());
    let csv = dir.join("domains.csv");
    let mut s = String::from("patch_id,z,y,x,domain\n");
    for ((id, p), l) in rec.ids.iter().zip(&pred.patches.records).zip(&rec.labels) {
        s.push_str(&format!(
            "{id},{},{},{},{}\n",
            p.origin[0],
            p.origin[1],
            p.origin[2],
            l + 1
        ));
    }
    std::fs::write(&csv, s).map_err(|e| Error::io(&csv, e))?;
    files.push(csv.display().to_string());
    let js = dir.join("domains.json");
    let body = json!({"sample": rec.sample, "k": rec.k, "seed": rec.seed, "restarts": rec.restarts,
        "inertia": rec.inertia, "downsample": d, "shape": shape, "domains": summaries,
        "ari": ari.map(|x| x.0), "ari_patches": ari.map(|x| x.1)});
    std::fs::write(&js, serde_json::to_string_pretty(&body).unwrap_or_default())
        .map_err(|e| Error::io(&js, e))?;
    files.push(js.display().to_string());
    // Slices: domain colours blended (alpha 0.5) on the source image.
    let h = Heatmap {
        shape,
        downsample: d,
        data: vec![0.0; vol.len()],
    };
    let mut src = vortexdb::volume::open(Path::new(&pred.sample.source), None).ok();
    let n = slices.min(shape[0]);
    for k in 0..n {
        let z = (2 * k + 1) * shape[0] / (2 * n);
        let under = src
            .as_mut()
            .and_then(|s| underlay(s.as_mut(), &pred.sample, &h, z));
        let img = domain_slice(&vol, shape, z, under.as_deref());
        let png = dir.join(format!("domains_z{:04}.png", z * d + d / 2));
        img.save(&png)
            .map_err(|e| Error::bad_input(png.display().to_string(), e.to_string()))?;
        files.push(png.display().to_string());
    }
    Ok(files)
}

/// Slice `z` of a domain label volume (`shape`, labels domain + 1, 0 = none): domain
/// colours blended half and half onto `under` (planar RGB in [0, 1]) or mid-gray.
pub(super) fn domain_slice(
    vol: &[u8],
    shape: [usize; 3],
    z: usize,
    under: Option<&[f32]>,
) -> image::RgbImage {
    let page = shape[1] * shape[2];
    image::RgbImage::from_fn(shape[2] as u32, shape[1] as u32, |x, y| {
        let i = y as usize * shape[2] + x as usize;
        let base: [f32; 3] = match under {
            Some(u) => [u[i], u[page + i], u[2 * page + i]].map(|v| v * 255.0),
            None => [128.0; 3],
        };
        let l = vol[z * page + i];
        let px = if l == 0 {
            base
        } else {
            let c = PALETTE[(l as usize - 1) % PALETTE.len()];
            [0, 1, 2].map(|j| 0.5 * base[j] + 0.5 * c[j] as f32)
        };
        image::Rgb(px.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose predictions to evaluate.
    #[arg(long)]
    pub sample: String,
    /// Spot sample holding the measured expression (default: the same id); its spot
    /// positions must be in the sample's frame.
    #[arg(long)]
    pub spots: Option<String>,
    /// Genes to evaluate (default: every predicted gene measured in the spots).
    #[arg(long, value_name = "G1,G2")]
    pub genes: Option<String>,
    /// Marker genes reported separately.
    #[arg(long, value_name = "G1,G2")]
    pub markers: Option<String>,
    /// Compare with the smoothed (k nearest spots) measured values instead of the raw
    /// normalised ones.
    #[arg(long)]
    pub smoothed: bool,
    /// A segmentation (NPY of the source volume's shape) to score the stored domains
    /// against (ARI); run `vortexdb domains` first.
    #[arg(long, value_name = "NPY")]
    pub segmentation: Option<PathBuf>,
    /// Output directory: eval.json, eval.md, pcc.png, map_<gene>.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Prediction method.
    #[command(flatten)]
    pub method: MethodArgs,
}

/// The measured-vs-predicted comparison `eval` runs, as a library call for tests and
/// the demo: returns the report, the genes, predicted and measured values at the spots
/// and their positions.
pub struct Comparison {
    /// The metrics.
    pub report: EvalReport,
    /// Genes compared.
    pub genes: Vec<String>,
    /// Predicted, spots x genes.
    pub predicted: Vec<f32>,
    /// Measured, spots x genes.
    pub measured: Vec<f32>,
    /// Spot positions (z, y, x) in source voxels.
    pub positions: Vec<[f64; 3]>,
}

/// Compare `pred` with the measured expression of spot sample `spots`.
pub fn compare(
    store: &Store,
    pred: &Predictions,
    spots: &str,
    genes: &[String],
    markers: &[String],
    smoothed: bool,
) -> Result<Comparison> {
    let set = store.spot_set(spots)?.ok_or_else(|| {
        Error::bad_input(
            "--spots",
            format!("sample '{spots}' has no spots in this store"),
        )
    })?;
    let wanted: Vec<String> = if genes.is_empty() {
        pred.genes
            .iter()
            .filter(|g| set.panel.iter().any(|p| p.eq_ignore_ascii_case(g)))
            .filter(|g| {
                !set.predicted_missing
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(g))
            })
            .cloned()
            .collect()
    } else {
        genes.to_vec()
    };
    let pcols = gene_columns(&pred.genes, &wanted, &pred.sample.model)?;
    let mcols = gene_columns(&set.panel, &wanted, &format!("spots of {spots}")).map_err(|_| {
        Error::bad_input(
            "--genes",
            format!(
                "some genes are not measured in the spots of '{spots}' (panel of {} genes)",
                set.panel.len()
            ),
        )
    })?;
    if wanted.is_empty() {
        return Err(Error::bad_input(
            "--genes",
            "no predicted gene is measured in these spots",
        ));
    }
    let rows = store.spots(spots)?;
    let kept: Vec<(&vortexdb::store::SpotRecord, &vortexdb::store::ExpressionRecord)> = rows
        .iter()
        .filter_map(|(s, e)| e.as_ref().map(|e| (s, e)))
        .collect();
    let spot_refs: Vec<&vortexdb::store::SpotRecord> = kept.iter().map(|x| x.0).collect();
    let at = pred.at_spots(&spot_refs);
    let g_all = pred.genes.len();
    let mut predicted = Vec::with_capacity(kept.len() * wanted.len());
    let mut measured = Vec::with_capacity(kept.len() * wanted.len());
    for (i, (_, e)) in kept.iter().enumerate() {
        let src = if smoothed { &e.smoothed } else { &e.normalized };
        for (&pc, &mc) in pcols.iter().zip(&mcols) {
            predicted.push(at[i * g_all + pc]);
            measured.push(src[mc]);
        }
    }
    let positions: Vec<[f64; 3]> = kept.iter().map(|x| x.0.position).collect();
    // Array (row, column) coordinates grid the spots exactly, whatever the registration.
    let grid: Option<Vec<[f64; 2]>> = kept
        .iter()
        .map(|x| x.0.array.map(|a| [a[1], a[0]]))
        .collect();
    let report = evaluate(&EvalInput {
        genes: &wanted,
        predicted: &predicted,
        measured: &measured,
        positions: &positions,
        grid: grid.as_deref(),
        markers,
    })?;
    Ok(Comparison {
        report,
        genes: wanted,
        predicted,
        measured,
        positions,
    })
}

/// Run `eval`.
pub fn run_eval(a: &EvalArgs, json_out: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let pred = a.method.load(&store, &a.sample)?;
    let spots = a.spots.clone().unwrap_or_else(|| a.sample.clone());
    let cmp = compare(
        &store,
        &pred,
        &spots,
        &split_list(&a.genes),
        &split_list(&a.markers),
        a.smoothed,
    )?;
    let ari = match &a.segmentation {
        Some(p) => {
            let (lab, shape) = domains::read_segmentation(p)?;
            let rec = store.domains(&a.sample)?.ok_or_else(|| {
                Error::bad_input(
                    "--segmentation",
                    format!(
                        "sample '{}' has no domains yet: run `vortexdb domains {} --sample {}` first",
                        a.sample,
                        a.store.display(),
                        a.sample
                    ),
                )
            })?;
            if rec.ids != pred.patches.ids {
                return Err(Error::bad_input(
                    "--segmentation",
                    "the stored domains are of other patches; run `vortexdb domains` again",
                ));
            }
            Some(domains::ari_against(&pred, &rec.labels, &lab, shape, p)?)
        }
        None => None,
    };
    let r = &cmp.report;
    let method = serde_json::to_value(&pred.method).unwrap_or_default();
    let body = json!({"sample": a.sample, "spots": spots, "method": method,
        "measured": if a.smoothed {"smoothed"} else {"normalized"},
        "report": r, "ari": ari.map(|x| x.0), "ari_patches": ari.map(|x| x.1)});
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let js = dir.join("eval.json");
        std::fs::write(&js, serde_json::to_string_pretty(&body).unwrap_or_default())
            .map_err(|e| Error::io(&js, e))?;
        files.push(js.display().to_string());
        let md = dir.join("eval.md");
        std::fs::write(&md, markdown(&a.sample, &spots, &body, r, ari))
            .map_err(|e| Error::io(&md, e))?;
        files.push(md.display().to_string());
        let png = dir.join("pcc.png");
        pcc_chart(r)
            .save(&png)
            .map_err(|e| Error::bad_input(png.display().to_string(), e.to_string()))?;
        files.push(png.display().to_string());
        for e in r.per_gene.iter().take(3) {
            let j = cmp.genes.iter().position(|g| *g == e.gene).expect("gene");
            let png = dir.join(format!("map_{}.png", vortexdb::names::file_stem(&e.gene)));
            spot_maps(&cmp, j)
                .save(&png)
                .map_err(|e| Error::bad_input(png.display().to_string(), e.to_string()))?;
            files.push(png.display().to_string());
        }
    }
    if json_out {
        let mut b = body;
        b["ok"] = json!(true);
        b["files"] = json!(files);
        out(&b.to_string());
    } else {
        out(&format!(
            "'{}' predicted vs measured at {} spots of '{}', {} genes, {} sections",
            a.sample, r.spots, spots, r.genes, r.sections
        ));
        out(&format!(
            "  PCC all {:.3}, top 50 {:.3}, markers {}",
            r.pcc_all,
            r.pcc_top50,
            r.pcc_markers
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "-".into())
        ));
        out(&format!(
            "  SSIM {:.3}, Spearman of gene variances {:.3}",
            r.ssim, r.variance_spearman
        ));
        out(&format!(
            "  Moran's I predicted {:.3} / measured {:.3}; Geary's C {:.3} / {:.3}",
            r.moran_predicted, r.moran_measured, r.geary_predicted, r.geary_measured
        ));
        if let Some((v, n)) = ari {
            out(&format!(
                "  domains ARI against the segmentation {v:.3} ({n} patches)"
            ));
        }
        for f in &files {
            out(&format!("  {f}"));
        }
    }
    Ok(())
}

fn markdown(
    sample: &str,
    spots: &str,
    body: &serde_json::Value,
    r: &EvalReport,
    ari: Option<(f64, usize)>,
) -> String {
    let f = |v: f64| format!("{v:.3}");
    let mut s = format!(
        "# Evaluation of '{sample}' against the spots of '{spots}'\n\n\
         Method: `{}`; measured values: {}.\n\n\
         | metric | value |\n|---|---|\n\
         | spots | {} |\n| sections | {} |\n| genes | {} |\n\
         | PCC, all genes | {} |\n| PCC, 50 best-predicted genes | {} |\n| PCC, markers | {} |\n\
         | SSIM (spots gridded, min-max scaled) | {} |\n| Spearman of per-gene variances | {} |\n\
         | Moran's I predicted / measured | {} / {} |\n| Geary's C predicted / measured | {} / {} |\n",
        body["method"],
        body["measured"].as_str().unwrap_or(""),
        r.spots,
        r.sections,
        r.genes,
        f(r.pcc_all),
        f(r.pcc_top50),
        r.pcc_markers.map(f).unwrap_or_else(|| "-".into()),
        f(r.ssim),
        f(r.variance_spearman),
        f(r.moran_predicted),
        f(r.moran_measured),
        f(r.geary_predicted),
        f(r.geary_measured),
    );
    if let Some((v, n)) = ari {
        s.push_str(&format!(
            "| domains ARI vs segmentation | {} ({n} patches) |\n",
            f(v)
        ));
    }
    if !r.markers_missing.is_empty() {
        s.push_str(&format!(
            "\nMarkers not predicted: {}.\n",
            r.markers_missing.join(", ")
        ));
    }
    s.push_str("\n![PCC per gene](pcc.png)\n\n## Per gene (best PCC first)\n\n| gene | PCC | SSIM | Moran's I pred / meas | Geary's C pred / meas |\n|---|---|---|---|---|\n");
    for e in &r.per_gene {
        s.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} / {} |\n",
            e.gene,
            f(e.pcc),
            f(e.ssim),
            f(e.moran_predicted),
            f(e.moran_measured),
            f(e.geary_predicted),
            f(e.geary_measured)
        ));
    }
    s
}

/// Bar chart of per-gene PCC (best first), zero line in gray, bars from -1 to 1.
fn pcc_chart(r: &EvalReport) -> image::RgbImage {
    let n = r.per_gene.len().max(1);
    let bw = (600 / n).clamp(2, 16) as u32;
    let (w, h) = (bw * n as u32 + 20, 220u32);
    let mid = 110i64;
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for x in 0..w {
        img.put_pixel(x, mid as u32, image::Rgb([160, 160, 160]));
    }
    for (i, e) in r.per_gene.iter().enumerate() {
        if e.pcc.is_nan() {
            continue;
        }
        let top = mid - (e.pcc * 100.0).round() as i64;
        let (a, b) = (top.min(mid), top.max(mid));
        let c = coolwarm(((e.pcc + 1.0) / 2.0) as f32);
        for y in a..=b {
            for dx in 0..bw.saturating_sub(1).max(1) {
                img.put_pixel(
                    10 + i as u32 * bw + dx,
                    y.clamp(0, h as i64 - 1) as u32,
                    image::Rgb(c),
                );
            }
        }
    }
    img
}

/// Predicted (left) and measured (right) values of gene `j` at the spots of the first
/// section, min-max scaled, coolwarm, each spot an 8 x 8 block.
fn spot_maps(c: &Comparison, j: usize) -> image::RgbImage {
    let g = c.genes.len();
    let z0 = c
        .positions
        .iter()
        .map(|p| p[0].round() as i64)
        .min()
        .unwrap_or(0);
    let idx: Vec<usize> = (0..c.positions.len())
        .filter(|&i| c.positions[i][0].round() as i64 == z0)
        .collect();
    let yx: Vec<[f64; 2]> = idx
        .iter()
        .map(|&i| [c.positions[i][1], c.positions[i][2]])
        .collect();
    let cells = vortexdb::metrics::eval::grid_cells(&yx);
    let rows = cells.iter().map(|x| x.0 + 1).max().unwrap_or(1);
    let cols = cells.iter().map(|x| x.1 + 1).max().unwrap_or(1);
    let s = 8u32;
    let pw = cols as u32 * s;
    let mut img =
        image::RgbImage::from_pixel(2 * pw + s, rows as u32 * s, image::Rgb([255, 255, 255]));
    for (side, m) in [(0u32, &c.predicted), (pw + s, &c.measured)] {
        let v: Vec<f64> = idx.iter().map(|&i| m[i * g + j] as f64).collect();
        let scaled = vortexdb::metrics::min_max(&v);
        for (&(r, cc), t) in cells.iter().zip(scaled) {
            let col = coolwarm(t as f32);
            for dy in 0..s - 1 {
                for dx in 0..s - 1 {
                    img.put_pixel(
                        side + cc as u32 * s + dx,
                        r as u32 * s + dy,
                        image::Rgb(col),
                    );
                }
            }
        }
    }
    img
}
