//! `vortexdb query genes|profile|patch`: molecular queries, profile queries and
//! morphology retrieval over the 3D patches of a store.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::args::{VolumeOut, ints, split_list};
use super::{emit, out, out_json};
use vortexdb::{
    Error, GeneQuery, Modality, PatchQuery, PatchSource, Profile, QueryExport, QueryResult, Result,
    ScoreOptions, Store, query_genes, query_patch, query_profile, read_profile, write_query,
};

/// Subcommands of `query`.
#[rustfmt::skip]
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Molecular query: genes of interest -> correlated genes -> spots high in them ->
    /// their mean transcriptomic embedding -> similarity with every 3D patch.
    Genes(GenesArgs),
    /// Profile query: an expression profile (gene,value table) or a marker list through
    /// the gene encoder -> similarity with every 3D patch.
    Profile(ProfileArgs),
    /// Morphology retrieval: the patches most similar to a stored patch or an image.
    Patch(PatchArgs),
}

/// Where and how to score and what to write (shared by `genes` and `profile`).
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Samples whose patches are scored (repeatable; default: all).
    #[arg(long = "sample")] pub samples: Vec<String>,
    /// Samples never scored (repeatable).
    #[arg(long)] pub exclude: Vec<String>,
    /// Registered model (default: the store's only model).
    #[arg(long)] pub model: Option<String>,
    /// Patches to print (and to list in --json).
    #[arg(long, default_value_t = 10)] pub top: usize,
    /// Write patches.parquet, triage.csv, heatmap_<sample>.npy/.tif, overlay PNGs and
    /// query.json here.
    #[arg(long)] pub out: Option<PathBuf>,
    /// Heatmap volumes and overlay slices.
    #[command(flatten)] pub vol: VolumeOut,
    /// Triage: a patch counts as similar above this percentile of all scores.
    #[arg(long, default_value_t = 90.0)] pub threshold_percentile: f64,
    /// What to score: `3d` (volume and section-stack patches) or `2d` (images and whole
    /// slides ingested with `ingest image`).
    #[arg(long, default_value = "3d")] pub target: String,
}

/// Arguments of `query genes`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct GenesArgs {
    #[command(flatten)] score: ScoreArgs,
    /// Genes of interest, comma-separated (e.g. ERBB2,GRB7).
    #[arg(long)] pub genes: String,
    /// Samples whose spots define the profile (repeatable; default: all with spots).
    #[arg(long)] pub spots_from: Vec<String>,
    /// Genes correlated above this PCC join the filter.
    #[arg(long, default_value_t = 0.5)] pub min_pcc: f64,
    /// Percentile a filter gene must exceed in a spot.
    #[arg(long, default_value_t = 75.0)] pub percentile: f64,
    /// Fraction of filter genes a spot must have above their percentile.
    #[arg(long, default_value_t = 0.5)] pub min_fraction: f64,
}

/// Arguments of `query profile`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)] score: ScoreArgs,
    /// CSV/TSV of `gene,value` rows (a spot, an averaged cluster, bulk RNA).
    #[arg(long, conflicts_with = "markers", required_unless_present = "markers")] pub profile: Option<PathBuf>,
    /// A marker list instead: comma-separated genes set to a high expression value.
    #[arg(long)] pub markers: Option<String>,
    /// The profile's values are raw counts (normalised + log1p here); otherwise they
    /// are taken as log1p-normalised.
    #[arg(long)] pub counts: bool,
}

/// Arguments of `query patch`.
#[rustfmt::skip]
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample of the query patch (with --at).
    #[arg(long)] pub sample: Option<String>,
    /// Position Z,Y,X (model voxels) inside the query patch; the stored patch whose
    /// centre is nearest is used.
    #[arg(long, requires = "sample")] pub at: Option<String>,
    /// Or an H&E image (PNG/JPEG/TIFF) embedded by the 2D encoder (cross-modal 2D -> 3D).
    #[arg(long, conflicts_with = "at")] pub image: Option<PathBuf>,
    /// Results to return.
    #[arg(long, default_value_t = 10)] pub top: usize,
    /// Only these samples (repeatable).
    #[arg(long = "in")] pub within: Vec<String>,
    /// Leave out the query's own sample.
    #[arg(long)] pub exclude_self: bool,
    /// Registered model (default: the store's only model).
    #[arg(long)] pub model: Option<String>,
    /// Exact search instead of HNSW.
    #[arg(long)] pub exact: bool,
    /// What to search: `3d` (volume and section-stack patches) or `2d` (images ingested
    /// with `ingest image`). A 3D query patch with `--target 2d` is 3D -> 2D retrieval.
    #[arg(long, default_value = "3d")] pub target: String,
}

impl ScoreArgs {
    fn options(&self) -> Result<ScoreOptions> {
        Ok(ScoreOptions {
            samples: self.samples.clone(),
            exclude: self.exclude.clone(),
            model: self.model.clone(),
            threshold_percentile: self.threshold_percentile,
            target: Modality::retrieval_target(&self.target)?,
        })
    }

    fn export(&self) -> QueryExport {
        QueryExport {
            top: self.top,
            downsample: self.vol.downsample,
            slices: self.vol.slices,
            ome_zarr: self.vol.ome_zarr,
        }
    }
}

/// Run a `query` subcommand.
pub fn run(cmd: QueryCommand, json: bool) -> Result<()> {
    match cmd {
        QueryCommand::Genes(a) => {
            a.score.export().validate()?;
            let store = Store::open_read_only(&a.score.store)?;
            let q = GeneQuery {
                genes: split_list(Some(&a.genes)),
                spot_samples: (!a.spots_from.is_empty()).then(|| a.spots_from.clone()),
                min_pcc: a.min_pcc,
                percentile: a.percentile,
                min_fraction: a.min_fraction,
            };
            let r = query_genes(&store, &q, &a.score.options()?)?;
            report(&store, &r, &a.score, json)
        }
        QueryCommand::Profile(a) => {
            a.score.export().validate()?;
            let store = Store::open_read_only(&a.score.store)?;
            let profile = match &a.profile {
                Some(f) => Profile::Values {
                    genes: read_profile(f)?,
                    counts: a.counts,
                },
                None => Profile::Markers(split_list(a.markers.as_deref())),
            };
            let r = query_profile(&store, &profile, &a.score.options()?)?;
            report(&store, &r, &a.score, json)
        }
        QueryCommand::Patch(a) => patch(&a, json),
    }
}

fn report(store: &Store, r: &QueryResult, a: &ScoreArgs, json: bool) -> Result<()> {
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        files = write_query(dir, store, r, &a.export())?;
    }
    let ranked = &r.ranked;
    if let (false, Some(h)) = (json, r.headline()) {
        out(&h);
    }
    if json {
        let top = &ranked[..a.top.min(ranked.len())];
        out_json(
            &json!({"query": r.summary, "patches": ranked.len(), "threshold": r.threshold,
                         "top": top, "triage": r.triage, "files": files}),
        );
        return Ok(());
    }
    out(&r.table(a.top));
    if let (false, Some(dir)) = (files.is_empty(), &a.out) {
        out(&format!("wrote {} files to {}", files.len(), dir.display()));
    }
    Ok(())
}

fn patch(a: &PatchArgs, json: bool) -> Result<()> {
    let target = Modality::retrieval_target(&a.target)?;
    let source = match (&a.sample, &a.at, &a.image) {
        (Some(s), Some(at), None) => PatchSource::Stored {
            sample: s.clone(),
            at: ints(at, "at", "Z,Y,X")?,
        },
        (None, None, Some(img)) => PatchSource::Image(img.clone()),
        _ => {
            return Err(Error::bad_input(
                "query patch",
                "give --sample ID --at Z,Y,X or --image FILE",
            ));
        }
    };
    let store = Store::open_read_only(&a.store)?;
    let q = PatchQuery {
        source,
        top: a.top,
        within: a.within.clone(),
        exclude_self: a.exclude_self,
        model: a.model.clone(),
        exact: a.exact,
        target,
    };
    let r = query_patch(&store, &q)?;
    emit(json, &r);
    Ok(())
}
