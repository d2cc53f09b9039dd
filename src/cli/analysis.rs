//! `vortexdb predict`, `vortexdb domains`, `vortexdb eval` and `vortexdb export`:
//! predicted expression per patch (Parquet, per-gene 3D volumes and PNG slices), k-means
//! spatial domains (label volume, summaries, PNG slices, ARI against a segmentation),
//! the evaluation of predictions against measured spots (JSON + Markdown report with
//! PNG plots) and a sample as a SpatialData Zarr store.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::{VolumeOut, split_list};
use super::emit_files;
use vortexdb::{
    Error, EvalOptions, GeneQuery, KMeansOptions, Method, Predictions, Result, ScoreOptions,
    SpatialDataOptions, Store, evaluate_sample, find_domains, predict as predict_sample,
    query_genes, write_domains, write_eval, write_gene_volumes, write_predictions_parquet,
    write_spatialdata,
};

/// How predictions are made (shared by `predict` and `eval`).
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct MethodArgs {
    /// Instead of the predictor head, predict each patch as the similarity-weighted mean
    /// expression of its K most similar reference spots (BLEEP-style baseline).
    #[arg(long, value_name = "K", conflicts_with_all = ["ridge", "readout"])] pub knn: Option<usize>,
    /// Instead of the predictor head, the ridge readout: a linear map from each patch's
    /// stored embedding and hidden representation to expression, fitted on the
    /// --reference spots (measured on this sample); the penalty by leave-one-reference-
    /// out cross-validation unless --alpha.
    #[arg(long, conflicts_with = "readout")] pub ridge: bool,
    /// Penalty of --ridge (on standardised features).
    #[arg(long, requires = "ridge")] pub alpha: Option<f64>,
    /// Spatial context scales of --ridge: cell sides in micrometres, comma-separated
    /// (each adds the mean embedding of the 3 x 3 cells around a patch); 0 for none.
    /// Default: chosen by cross-validation among none, 200, and 200,400.
    #[arg(long, requires = "ridge", value_name = "UM1,UM2", value_delimiter = ',')]
    pub context_um: Option<Vec<f64>>,
    /// Spot samples used as the reference of --knn or --ridge, comma-separated.
    #[arg(long, value_name = "S1,S2", value_delimiter = ',', conflicts_with = "readout")] pub reference: Vec<String>,
    /// Instead of the predictor head, a readout stored with `readout fit` (fitted once
    /// on reference spots, of this sample or another, embedded with the same model).
    #[arg(long, value_name = "NAME")] pub readout: Option<String>,
}

impl MethodArgs {
    fn load(&self, store: &Store, sample: &str) -> Result<Predictions> {
        let reference = self.reference.clone();
        if (self.knn.is_some() || self.ridge) && reference.is_empty() {
            let flag = if self.ridge { "--ridge" } else { "--knn" };
            return Err(Error::arg(
                "reference",
                format!("{flag} needs --reference with at least one spot sample"),
            ));
        }
        let method = match self.knn {
            _ if self.readout.is_some() => Method::Readout {
                name: self.readout.clone().unwrap_or_default(),
                reference: Vec::new(),
            },
            Some(k) => Method::Knn { k, reference },
            None if self.ridge => Method::Ridge {
                reference,
                alpha: self.alpha,
                // `--context-um 0`: no context.
                context_um: self
                    .context_um
                    .as_ref()
                    .map(|c| c.iter().copied().filter(|&v| v != 0.0).collect()),
            },
            None => Method::Predictor,
        };
        predict_sample(store, sample, &method)
    }
}

/// Arguments of `predict`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose patches to predict.
    #[arg(long)] pub sample: String,
    /// Parquet file of every patch: patch_id, z, y, x (model voxels), tissue, one
    /// column per predicted gene.
    #[arg(long)] pub out: PathBuf,
    /// Genes to write as 3D volumes (comma-separated; case-insensitive).
    #[arg(long, value_name = "G1,G2")] pub genes: Option<String>,
    /// Directory for the volumes: <gene>.npy and <gene>.tif (float32, overlap-averaged,
    /// NaN outside the patches) and <gene>_zNNNN.png slices.
    #[arg(long, value_name = "DIR")] pub volumes: Option<PathBuf>,
    /// Output volumes and slices.
    #[command(flatten)] pub vol: VolumeOut,
    /// Prediction method.
    #[command(flatten)] pub method: MethodArgs,
}

/// Run `predict`.
pub fn predict(a: &PredictArgs, json: bool) -> Result<()> {
    a.vol.check()?;
    let store = Store::open_read_only(&a.store)?;
    let pred = a.method.load(&store, &a.sample)?;
    let genes = split_list(a.genes.as_deref());
    pred.gene_columns(&genes)?;
    if !genes.is_empty() && a.volumes.is_none() {
        return Err(Error::arg("volumes", "--genes needs --volumes DIR"));
    }
    write_predictions_parquet(&a.out, &pred)?;
    let mut files = vec![a.out.display().to_string()];
    if let Some(dir) = &a.volumes {
        files.extend(write_gene_volumes(
            dir,
            &pred,
            &genes,
            a.vol.downsample,
            a.vol.slices,
            a.vol.ome_zarr,
        )?);
    }
    let v = json!({"sample": a.sample, "patches": pred.len(), "genes": pred.genes.len(),
                   "method": pred.method, "ridge": pred.ridge});
    emit_files(json, v, &pred, &files);
    Ok(())
}

/// Arguments of `domains`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct DomainsArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose patches to cluster.
    #[arg(long)] pub sample: String,
    /// Number of domains.
    #[arg(long, default_value_t = 5)] pub k: usize,
    /// k-means seed.
    #[arg(long, default_value_t = 0)] pub seed: u64,
    /// k-means restarts (the lowest inertia is kept).
    #[arg(long, default_value_t = 10)] pub restarts: usize,
    /// Lloyd iterations at most per restart.
    #[arg(long, default_value_t = 300)] pub max_iter: usize,
    /// A segmentation of the sample's source volume (NPY, integer labels, 0 =
    /// background): the adjusted Rand index of the domains against it is reported.
    #[arg(long, value_name = "NPY")] pub segmentation: Option<PathBuf>,
    /// Output directory: domains.npy (uint8 label volume, domain + 1, 0 = no patch),
    /// domains.csv (patch_id, z, y, x, domain), domains.json, domains_zNNNN.png.
    #[arg(long)] pub out: Option<PathBuf>,
    /// Output volume and slices.
    #[command(flatten)] pub vol: VolumeOut,
}

/// Run `domains`.
pub fn domains(a: &DomainsArgs, json: bool) -> Result<()> {
    a.vol.check()?;
    let opts = KMeansOptions {
        k: a.k,
        restarts: a.restarts,
        max_iter: a.max_iter,
        seed: a.seed,
        ..Default::default()
    };
    let store = Store::open(&a.store)?;
    let d = find_domains(&store, &a.sample, &opts, a.segmentation.as_deref())?;
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        files = write_domains(dir, &d, a.vol.downsample, a.vol.slices, a.vol.ome_zarr)?;
    }
    let (rec, ari) = (&d.record, d.ari);
    let v = json!({"sample": a.sample, "k": a.k, "patches": d.predictions.len(),
        "inertia": rec.inertia, "seconds": d.seconds, "domains": d.summaries,
        "ari": ari.map(|x| x.0), "ari_patches": ari.map(|x| x.1)});
    emit_files(json, v, &d, &files);
    Ok(())
}

/// Arguments of `eval`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample whose predictions to evaluate.
    #[arg(long)] pub sample: String,
    /// Spot sample holding the measured expression (default: the same id); its spot
    /// positions must be in the sample's frame.
    #[arg(long)] pub spots: Option<String>,
    /// Genes to evaluate (default: every predicted gene measured in the spots).
    #[arg(long, value_name = "G1,G2")] pub genes: Option<String>,
    /// Marker genes reported separately.
    #[arg(long, value_name = "G1,G2")] pub markers: Option<String>,
    /// Compare with the smoothed (k nearest spots) measured values instead of the raw
    /// normalised ones.
    #[arg(long)] pub smoothed: bool,
    /// A segmentation (NPY of the source volume's shape) to score the stored domains
    /// against (ARI); run `vortexdb domains` first.
    #[arg(long, value_name = "NPY")] pub segmentation: Option<PathBuf>,
    /// Score spots that are also the --knn / --ridge reference (refused otherwise): the
    /// report is marked in_sample, a fit rather than a held-out figure.
    #[arg(long)] pub allow_in_sample: bool,
    /// Output directory: eval.json, eval.md, pcc.png, map_<gene>.png.
    #[arg(long)] pub out: Option<PathBuf>,
    /// Prediction method.
    #[command(flatten)] pub method: MethodArgs,
}

/// Run `eval`.
pub fn eval(a: &EvalArgs, json: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let pred = a.method.load(&store, &a.sample)?;
    let opts = EvalOptions {
        spots: a.spots.clone(),
        genes: split_list(a.genes.as_deref()),
        markers: split_list(a.markers.as_deref()),
        smoothed: a.smoothed,
        segmentation: a.segmentation.clone(),
        allow_in_sample: a.allow_in_sample,
    };
    let ev = evaluate_sample(&store, &pred, &opts)?;
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        files = write_eval(dir, &ev)?;
    }
    let v = serde_json::to_value(ev.summary()).unwrap_or_default();
    emit_files(json, v, &ev, &files);
    Ok(())
}

/// Arguments of `export`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample to export (a volume or a section stack).
    #[arg(long)] pub sample: String,
    /// The SpatialData Zarr store to write (replaced if it is one; anything else there
    /// is refused). Images: volume, heatmap, predicted; labels: domains (the stored
    /// ones); points: patches, spots; tables: predictions, spot_expression.
    #[arg(long)] pub out: PathBuf,
    /// Genes whose predicted volumes form the `predicted` image (comma-separated).
    #[arg(long, value_name = "G1,G2")] pub genes: Option<String>,
    /// Genes of a molecular query (as `query genes --genes`) whose heatmap over the
    /// sample becomes the `heatmap` image.
    #[arg(long, value_name = "G1,G2")] pub query: Option<String>,
    /// Model voxels per image voxel (default: the smallest keeping an image under 64M
    /// voxels per channel).
    #[arg(long)] pub downsample: Option<usize>,
    /// Prediction method of the `predictions` table and the `predicted` image.
    #[command(flatten)] pub method: MethodArgs,
}

/// Run `export`.
pub fn export(a: &ExportArgs, json: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let pred = a.method.load(&store, &a.sample)?;
    let query = match split_list(a.query.as_deref()) {
        g if g.is_empty() => None,
        genes => {
            let opts = ScoreOptions {
                samples: vec![a.sample.clone()],
                model: Some(pred.sample.model.clone()),
                ..Default::default()
            };
            Some(query_genes(&store, &GeneQuery::new(genes), &opts)?)
        }
    };
    let opts = SpatialDataOptions {
        genes: split_list(a.genes.as_deref()),
        query: query.as_ref(),
        downsample: a.downsample,
    };
    let r = write_spatialdata(&a.out, &store, &pred, &opts)?;
    super::flush_warnings(&store);
    super::emit(json, &r);
    Ok(())
}
