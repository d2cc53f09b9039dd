//! The demo's typed report: `summary.json` is this value serialised, and the HTML
//! report is rendered from it.

use serde::Serialize;

/// Everything the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Always true (kept for readers of `summary.json`).
    pub ok: bool,
    /// Wall time of the whole demo.
    pub seconds: f64,
    /// The phantom generated.
    pub phantom: DemoPhantom,
    /// The ingest.
    pub ingest: DemoIngest,
    /// The model used.
    pub model: String,
    /// One molecular query per gene program.
    pub queries: Vec<DemoQuery>,
    /// Morphology retrieval from one tumour patch.
    pub retrieval: DemoRetrieval,
    /// Predicted against measured expression.
    pub prediction: DemoPrediction,
    /// k-means domains.
    pub domains: DemoDomains,
    /// Files of the output directory, relative to it.
    pub files: DemoFiles,
    /// The output directory (not in `summary.json`, whose paths are relative to it).
    #[serde(skip)]
    pub out: std::path::PathBuf,
}

/// The phantom of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoPhantom {
    /// Seed.
    pub seed: u64,
    /// Shape (z, y, x) in 4-um voxels.
    pub shape: [usize; 3],
    /// Spots generated.
    pub spots: usize,
    /// Share of the tissue in each compartment (gland, tumour, stroma, fat).
    pub compartment_fractions: [f64; 4],
}

/// The ingest of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoIngest {
    /// Patches stored.
    pub patches: u64,
    /// Grid positions visited.
    pub grid_positions: u64,
    /// Wall time of the volume ingest.
    pub seconds: f64,
    /// Its throughput.
    pub patches_per_second: f64,
    /// Spots kept by QC.
    pub spots_kept: usize,
}

/// One molecular query of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoQuery {
    /// The gene asked for.
    pub gene: String,
    /// Its program.
    pub program: String,
    /// The phantom label of the compartment it marks (0: none).
    pub compartment_label: u8,
    /// Genes correlated with it.
    pub correlated: usize,
    /// Spots selected.
    pub spots: usize,
    /// Spots considered.
    pub spots_total: usize,
    /// ROC AUC of the similarity against the patch-centre compartment.
    pub auc: Option<f64>,
    /// Of the 10 best patches, those in the compartment.
    pub top10_in_compartment: Option<usize>,
    /// Its heatmap figure.
    pub figure: String,
}

/// The retrieval of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRetrieval {
    /// The query patch.
    pub query_id: u64,
    /// Its origin.
    pub query_origin: [i64; 3],
    /// Its compartment.
    pub query_compartment: String,
    /// Of its 10 nearest patches, those of the same compartment.
    pub top10_same_compartment: usize,
    /// The 10 nearest patches.
    pub hits: Vec<DemoHit>,
}

/// A retrieved patch.
#[derive(Debug, Clone, Serialize)]
pub struct DemoHit {
    /// Vector id.
    pub id: u64,
    /// Origin.
    pub origin: [i64; 3],
    /// Cosine similarity.
    pub score: f64,
    /// Compartment at its centre.
    pub compartment: String,
}

/// The evaluation of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoPrediction {
    /// PCC over all genes.
    pub pcc_all: f64,
    /// PCC over the 50 best-predicted genes.
    pub pcc_top50: f64,
    /// PCC over the marker genes.
    pub pcc_markers: Option<f64>,
    /// SSIM of the gridded spots.
    pub ssim: f64,
    /// Spearman of per-gene variances.
    pub variance_spearman: f64,
    /// Moran's I of the predicted maps.
    pub moran_predicted: f64,
    /// Moran's I of the measured maps.
    pub moran_measured: f64,
    /// Geary's C of the predicted maps.
    pub geary_predicted: f64,
    /// Geary's C of the measured maps.
    pub geary_measured: f64,
    /// Spots compared.
    pub spots: usize,
    /// Genes compared.
    pub genes: usize,
    /// Predicted-expression figures.
    pub figures: Vec<DemoFigure>,
}

/// A figure of one gene.
#[derive(Debug, Clone, Serialize)]
pub struct DemoFigure {
    /// Gene.
    pub gene: String,
    /// File, relative to the output directory.
    pub figure: String,
}

/// The domains of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoDomains {
    /// Domains.
    pub k: usize,
    /// ARI against the phantom's compartments.
    pub ari: f64,
    /// Patches scored.
    pub ari_patches: usize,
    /// k-means inertia.
    pub inertia: f64,
    /// Per domain.
    pub domains: Vec<DemoDomain>,
}

/// One domain of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoDomain {
    /// Domain number (1-based).
    pub domain: u32,
    /// Patches.
    pub patches: usize,
    /// Share of the patches.
    pub fraction: f64,
    /// Top predicted genes and their lift.
    pub top_genes: Vec<(String, f32)>,
    /// The compartment most of its patches are centred in.
    pub majority_compartment: String,
    /// Their share.
    pub majority_share: f64,
}

/// Files of a demo output directory.
#[derive(Debug, Clone, Serialize)]
pub struct DemoFiles {
    /// The HTML report.
    pub report: String,
    /// The store.
    pub store: String,
    /// The phantom's files.
    pub phantom: String,
    /// Predicted expression of every patch.
    pub predictions: String,
    /// The figures.
    pub figures: String,
}

impl std::fmt::Display for DemoReport {
    /// The headline figures, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [z, y, x] = self.phantom.shape;
        write!(
            f,
            "demo: phantom {z}x{y}x{x} (seed {}), {} patches and {} spots ingested",
            self.phantom.seed, self.ingest.patches, self.ingest.spots_kept
        )?;
        for q in &self.queries {
            let auc = q
                .auc
                .map_or("- (no compartment)".into(), |v| format!("{v:.3}"));
            write!(
                f,
                "\n  query {} ({}): {} spots, AUC {auc}",
                q.gene, q.program, q.spots
            )?;
        }
        let p = &self.prediction;
        write!(
            f,
            "\n  retrieval from a tumour patch: {}/10 of the nearest patches are tumour\n  \
             predicted vs measured: PCC all {:.3}, top 50 {:.3}, SSIM {:.3}\n  \
             domains (k = 4): ARI {:.3} against the phantom's compartments\n  \
             report: {}\n  look at it in the browser: vortexdb view {} \
             (needs the Python package: docs/VIEWER.md)\n  total {:.1} s",
            self.retrieval.top10_same_compartment,
            p.pcc_all,
            p.pcc_top50,
            p.ssim,
            self.domains.ari,
            self.out.join(&self.files.report).display(),
            self.out.join(&self.files.store).display(),
            self.seconds
        )
    }
}
