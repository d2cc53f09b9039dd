//! `vortexdb query genes|profile|patch`: molecular queries, profile queries and
//! morphology retrieval over the 3D patches of a store (see [`vortexdb::query`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray, UInt64Array};
use arrow::record_batch::RecordBatch;
use clap::{Args, Subcommand};
use serde_json::json;

use super::out;
use vortexdb::error::{Error, Result};
use vortexdb::model::{Model, RunOptions};
use vortexdb::query::heatmap::{auto_downsample, heatmap, overlay, write_tiff};
use vortexdb::query::{
    GeneQuery, RankedPatch, gene_profile, profile_embedding, rank_patches, score_percentile, triage,
};
use vortexdb::store::{Filter, SearchOptions, Store};
use vortexdb::vecio::write_f32_array_npy;

/// Subcommands of `query`.
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
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Samples whose 3D patches are scored (repeatable; default: all).
    #[arg(long = "sample")]
    pub samples: Vec<String>,
    /// Samples never scored (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Registered model (default: the store's only model).
    #[arg(long)]
    pub model: Option<String>,
    /// Patches to print (and to list in --json).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Write patches.parquet, triage.csv, heatmap_<sample>.npy/.tif, overlay PNGs and
    /// query.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Heatmap downsampling (model voxels per heatmap voxel; default: the smallest
    /// keeping each heatmap under 64M voxels).
    #[arg(long)]
    pub downsample: Option<usize>,
    /// Overlay PNGs per sample: this many evenly spaced slices.
    #[arg(long, default_value_t = 3)]
    pub slices: usize,
    /// Triage: a patch counts as similar above this percentile of all scores.
    #[arg(long, default_value_t = 90.0)]
    pub threshold_percentile: f64,
}

/// Arguments of `query genes`.
#[derive(Debug, Args)]
pub struct GenesArgs {
    #[command(flatten)]
    score: ScoreArgs,
    /// Genes of interest, comma-separated (e.g. ERBB2,GRB7).
    #[arg(long)]
    pub genes: String,
    /// Samples whose spots define the profile (repeatable; default: all with spots).
    #[arg(long)]
    pub spots_from: Vec<String>,
    /// Genes correlated above this PCC join the filter.
    #[arg(long, default_value_t = 0.5)]
    pub min_pcc: f64,
    /// Percentile a filter gene must exceed in a spot.
    #[arg(long, default_value_t = 75.0)]
    pub percentile: f64,
    /// Fraction of filter genes a spot must have above their percentile.
    #[arg(long, default_value_t = 0.5)]
    pub min_fraction: f64,
}

/// Arguments of `query profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    score: ScoreArgs,
    /// CSV/TSV of `gene,value` rows (a spot, an averaged cluster, bulk RNA).
    #[arg(long, conflicts_with = "markers")]
    pub profile: Option<PathBuf>,
    /// A marker list instead: comma-separated genes set to a high expression value.
    #[arg(long)]
    pub markers: Option<String>,
    /// The profile's values are raw counts (normalised + log1p here); otherwise they
    /// are taken as log1p-normalised.
    #[arg(long)]
    pub counts: bool,
}

/// Arguments of `query patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Store directory.
    pub store: PathBuf,
    /// Sample of the query patch (with --at).
    #[arg(long)]
    pub sample: Option<String>,
    /// Position Z,Y,X (model voxels) inside the query patch; the stored patch whose
    /// centre is nearest is used.
    #[arg(long, requires = "sample")]
    pub at: Option<String>,
    /// Or an H&E image (PNG/JPEG/TIFF) embedded by the 2D encoder (cross-modal 2D -> 3D).
    #[arg(long, conflicts_with = "at")]
    pub image: Option<PathBuf>,
    /// Results to return.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Only these samples (repeatable).
    #[arg(long = "in")]
    pub within: Vec<String>,
    /// Leave out the query's own sample.
    #[arg(long)]
    pub exclude_self: bool,
    /// Registered model (default: the store's only model).
    #[arg(long)]
    pub model: Option<String>,
    /// Exact search instead of HNSW.
    #[arg(long)]
    pub exact: bool,
    /// What to search: `3d` (volume and section-stack patches) or `2d` (images ingested
    /// with `ingest image`). A 3D query patch with `--target 2d` is 3D -> 2D retrieval.
    #[arg(long, default_value = "3d")]
    pub target: String,
}

impl ScoreArgs {
    /// Range checks before anything is read or printed.
    fn validate(&self) -> Result<()> {
        vortexdb::limits::int_arg("--top", self.top, 0, vortexdb::limits::MAX_K)?;
        vortexdb::limits::int_arg("--slices", self.slices, 0, 1000)?;
        if let Some(d) = self.downsample {
            vortexdb::limits::int_arg("--downsample", d, 1, 1 << 20)?;
        }
        vortexdb::limits::float_arg(
            "--threshold-percentile",
            self.threshold_percentile,
            0.0,
            100.0,
        )?;
        Ok(())
    }
}

/// Run a `query` subcommand.
pub fn run(cmd: QueryCommand, json_out: bool) -> Result<()> {
    match &cmd {
        QueryCommand::Genes(a) => a.score.validate()?,
        QueryCommand::Profile(a) => a.score.validate()?,
        QueryCommand::Patch(a) => {
            vortexdb::limits::int_arg("--top", a.top, 1, vortexdb::limits::MAX_K)?;
        }
    }
    match cmd {
        QueryCommand::Genes(a) => {
            let store = Store::open_read_only(&a.score.store)?;
            let model = store.load_model(a.score.model.as_deref())?;
            let genes: Vec<String> = a
                .genes
                .split(',')
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
            let q = GeneQuery {
                genes,
                spot_samples: (!a.spots_from.is_empty()).then(|| a.spots_from.clone()),
                min_pcc: a.min_pcc,
                percentile: a.percentile,
                min_fraction: a.min_fraction,
            };
            let p = gene_profile(&store, &model.manifest.name, &q)?;
            let summary = json!({
                "genes": p.genes, "correlated": p.correlated, "thresholds": p.thresholds,
                "spots_total": p.spots_total, "spots_selected": p.spots.len(),
            });
            if !json_out {
                out(&format!(
                    "genes {}; correlated (PCC > {}): {}; {} of {} spots above the {}th percentile in at least {:.0}% of the {} filter genes",
                    p.genes.join(", "),
                    a.min_pcc,
                    if p.correlated.is_empty() {
                        "none".to_string()
                    } else {
                        p.correlated
                            .iter()
                            .take(12)
                            .map(|(g, r)| format!("{g} {r:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    p.spots.len(),
                    p.spots_total,
                    a.percentile,
                    a.min_fraction * 100.0,
                    p.thresholds.len()
                ));
            }
            score_and_write(&store, &model, &p.embedding, &a.score, summary, json_out)
        }
        QueryCommand::Profile(a) => {
            let store = Store::open_read_only(&a.score.store)?;
            let model = store.load_model(a.score.model.as_deref())?;
            let (profile, counts) = match (&a.profile, &a.markers) {
                (Some(f), None) => (read_profile(f)?, a.counts),
                (None, Some(m)) => {
                    let high = marker_value(&model);
                    (
                        m.split(',')
                            .map(|g| (g.trim().to_string(), high))
                            .filter(|g| !g.0.is_empty())
                            .collect(),
                        false,
                    )
                }
                _ => {
                    return Err(Error::bad_input(
                        "query profile",
                        "give --profile FILE or --markers A,B,...",
                    ));
                }
            };
            let (emb, unused) =
                profile_embedding(&model, &profile, counts, &RunOptions::default())?;
            if !json_out && !unused.is_empty() {
                out(&format!(
                    "{} profile gene(s) not in the encoder panel, ignored: {}",
                    unused.len(),
                    unused
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let summary = json!({"profile_genes": profile.len(), "unused_genes": unused});
            score_and_write(&store, &model, &emb, &a.score, summary, json_out)
        }
        QueryCommand::Patch(a) => run_patch(&a, json_out),
    }
}

/// A "high" log1p value for marker genes: the model's top value-bin edge, else
/// log1p(100) (1% of a spot's counts).
fn marker_value(model: &Model) -> f64 {
    let m: serde_json::Value = serde_json::from_str(&model.manifest_json).unwrap_or_default();
    m["encoder_genes"]["bin_edges"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(|v| v.as_f64())
        .map(|v| v + 0.1)
        .unwrap_or(100f64.ln_1p())
}

fn read_profile(path: &Path) -> Result<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split([',', '\t']).map(|s| s.trim()).collect();
        if f.len() < 2 {
            return Err(Error::bad_input(
                path.display().to_string(),
                format!("line {}: expected 'gene,value'", i + 1),
            ));
        }
        match f[1].parse::<f64>() {
            Ok(v) => out.push((f[0].to_string(), v)),
            Err(_) if i == 0 => continue, // header
            Err(_) => {
                return Err(Error::bad_input(
                    path.display().to_string(),
                    format!("line {}: '{}' is not a number", i + 1, f[1]),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::bad_input(
            path.display().to_string(),
            "no gene,value rows",
        ));
    }
    Ok(out)
}

fn score_and_write(
    store: &Store,
    model: &Model,
    emb: &[f32],
    a: &ScoreArgs,
    summary: serde_json::Value,
    json_out: bool,
) -> Result<()> {
    let collection = format!("{}:3d", model.manifest.name);
    let ranked = rank_patches(
        store,
        &collection,
        emb,
        (!a.samples.is_empty()).then(|| a.samples.clone()),
        a.exclude.clone(),
    )?;
    if ranked.is_empty() {
        return Err(Error::bad_input(
            "--sample",
            format!(
                "no 3D patches of model '{}' to score; ingest a volume first",
                model.manifest.name
            ),
        ));
    }
    let threshold = score_percentile(&ranked, a.threshold_percentile);
    let tri = triage(&ranked, threshold);
    let mut files = Vec::new();
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        files = write_outputs(store, dir, &ranked, &tri, a)?;
        let q = json!({"query": summary, "threshold": threshold, "triage": tri,
                       "top": &ranked[..a.top.min(ranked.len())], "files": files});
        let p = dir.join("query.json");
        std::fs::write(&p, serde_json::to_string_pretty(&q).unwrap_or_default())
            .map_err(|e| Error::io(&p, e))?;
    }
    if json_out {
        out(
            &json!({"ok": true, "query": summary, "patches": ranked.len(), "threshold": threshold,
                    "top": &ranked[..a.top.min(ranked.len())], "triage": tri, "files": files})
            .to_string(),
        );
        return Ok(());
    }
    out(&format!(
        "top {} of {} patches:",
        a.top.min(ranked.len()),
        ranked.len()
    ));
    out("  rank  sample            z     y     x   similarity  percentile");
    for (i, p) in ranked.iter().take(a.top).enumerate() {
        out(&format!(
            "  {:>4}  {:<14} {:>5} {:>5} {:>5}   {:>9.4}   {:>8.2}",
            i + 1,
            p.sample,
            p.origin[0],
            p.origin[1],
            p.origin[2],
            p.score,
            p.percentile
        ));
    }
    out(&format!(
        "triage (share of patches above {threshold:.4}, the {}th percentile):",
        a.threshold_percentile
    ));
    for r in &tri {
        out(&format!(
            "  {:<16} {:>7} patches  {:>5.1}% above  max {:.4}  mean {:.4}  best at {:?}",
            r.sample,
            r.patches,
            r.fraction_above * 100.0,
            r.max_score,
            r.mean_score,
            r.best_origin
        ));
    }
    if !files.is_empty() {
        out(&format!(
            "wrote {} files to {}",
            files.len(),
            a.out.as_ref().expect("out").display()
        ));
    }
    Ok(())
}

fn write_outputs(
    store: &Store,
    dir: &Path,
    ranked: &[RankedPatch],
    tri: &[vortexdb::query::TriageRow],
    a: &ScoreArgs,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let pq = dir.join("patches.parquet");
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "sample",
            Arc::new(StringArray::from_iter_values(
                ranked.iter().map(|p| &*p.sample),
            )),
        ),
        (
            "id",
            Arc::new(UInt64Array::from_iter_values(ranked.iter().map(|p| p.id))),
        ),
        (
            "z",
            Arc::new(Int64Array::from_iter_values(
                ranked.iter().map(|p| p.origin[0]),
            )),
        ),
        (
            "y",
            Arc::new(Int64Array::from_iter_values(
                ranked.iter().map(|p| p.origin[1]),
            )),
        ),
        (
            "x",
            Arc::new(Int64Array::from_iter_values(
                ranked.iter().map(|p| p.origin[2]),
            )),
        ),
        (
            "score",
            Arc::new(Float32Array::from_iter_values(
                ranked.iter().map(|p| p.score),
            )),
        ),
        (
            "percentile",
            Arc::new(Float32Array::from_iter_values(
                ranked.iter().map(|p| p.percentile),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(cols).map_err(|e| Error::Inference(e.to_string()))?;
    let f = std::fs::File::create(&pq).map_err(|e| Error::io(&pq, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None)
        .map_err(|e| Error::Inference(e.to_string()))?;
    w.write(&batch)
        .map_err(|e| Error::Inference(e.to_string()))?;
    w.close().map_err(|e| Error::Inference(e.to_string()))?;
    files.push(pq.display().to_string());
    let tc = dir.join("triage.csv");
    let mut t =
        String::from("sample,patches,fraction_above,max_score,mean_score,best_z,best_y,best_x\n");
    for r in tri {
        t.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.sample,
            r.patches,
            r.fraction_above,
            r.max_score,
            r.mean_score,
            r.best_origin[0],
            r.best_origin[1],
            r.best_origin[2]
        ));
    }
    std::fs::write(&tc, t).map_err(|e| Error::io(&tc, e))?;
    files.push(tc.display().to_string());
    // Heatmaps and overlays per sample.
    for r in tri {
        let Some(rec) = store.sample(&r.sample)? else {
            continue;
        };
        let pts: Vec<([i64; 3], f32)> = ranked
            .iter()
            .filter(|p| *p.sample == *r.sample)
            .map(|p| (p.origin, p.score))
            .collect();
        let d = a
            .downsample
            .unwrap_or_else(|| auto_downsample(rec.grid.shape, 64 << 20));
        let h = heatmap(&rec.grid, &pts, d);
        let npy = dir.join(format!("heatmap_{}.npy", r.sample));
        write_f32_array_npy(&npy, &h.shape, &h.data)?;
        let tif = dir.join(format!("heatmap_{}.tif", r.sample));
        write_tiff(&tif, &h)?;
        files.push(npy.display().to_string());
        files.push(tif.display().to_string());
        let (lo, hi) = (
            h.percentile(10.0).unwrap_or(0.0),
            h.percentile(90.0).unwrap_or(1.0),
        );
        let n = a.slices.min(h.shape[0]);
        let mut under_src = vortexdb::volume::open(Path::new(&rec.source), None).ok();
        for k in 0..n {
            let z = (2 * k + 1) * h.shape[0] / (2 * n);
            let under = under_src
                .as_mut()
                .and_then(|src| underlay(src.as_mut(), &rec, &h, z));
            let img = overlay(&h, z, lo, hi, under.as_deref());
            let model_z = z * h.downsample + h.downsample / 2;
            let png = dir.join(format!("overlay_{}_z{:04}.png", r.sample, model_z));
            img.save(&png)
                .map_err(|e| Error::bad_input(png.display().to_string(), e.to_string()))?;
            files.push(png.display().to_string());
        }
    }
    Ok(files)
}

/// Source slice under heatmap slice `z`, resampled (nearest) to the heatmap's grid, as
/// planar RGB in [0, 1].
pub(super) fn underlay(
    src: &mut dyn vortexdb::volume::VolumeSource,
    rec: &vortexdb::store::SampleRecord,
    h: &vortexdb::query::heatmap::Heatmap,
    z: usize,
) -> Option<Vec<f32>> {
    let d = h.downsample as f64;
    let f = |a: usize, i: usize| {
        ((i as f64 * d + d / 2.0) * rec.model_voxel_um[a] / rec.voxel_um[a]) as usize
    };
    let sz = f(0, z).min(src.info().shape[0].saturating_sub(1));
    let s = src.read_slice(sz).ok()?;
    let (hh, ww) = (h.shape[1], h.shape[2]);
    let page = hh * ww;
    let mut out = vec![0.0f32; 3 * page];
    for y in 0..hh {
        let sy = f(1, y).min(s.h - 1);
        for x in 0..ww {
            let sx = f(2, x).min(s.w - 1);
            for c in 0..3 {
                let sc = if s.channels == 3 { c } else { 0 };
                out[c * page + y * ww + x] = s.data[(sc * s.h + sy) * s.w + sx];
            }
        }
    }
    Some(out)
}

fn run_patch(a: &PatchArgs, json_out: bool) -> Result<()> {
    let store = Store::open_read_only(&a.store)?;
    let model = store.load_model(a.model.as_deref())?;
    if a.target != "3d" && a.target != "2d" {
        return Err(Error::bad_input(
            "--target",
            format!("'{}' is not 3d or 2d", a.target),
        ));
    }
    let target = format!("{}:{}", model.manifest.name, a.target);
    if store.collection(&target).is_err() {
        return Err(Error::bad_input(
            "--target",
            format!(
                "no {} patches of model '{}' in this store{}",
                a.target,
                model.manifest.name,
                if a.target == "2d" {
                    "; add images with `vortexdb ingest image`"
                } else {
                    ""
                }
            ),
        ));
    }
    let (query, own_sample, source): (Vec<f32>, Option<String>, String) =
        match (&a.sample, &a.at, &a.image) {
            (Some(s), Some(at), None) => {
                let rec = store.sample(s)?.ok_or_else(|| {
                    Error::bad_input("--sample", format!("sample '{s}' is not in this store"))
                })?;
                let v: Vec<i64> = at
                    .split(',')
                    .map(|x| x.trim().parse::<i64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| Error::bad_input("--at", format!("'{at}' is not Z,Y,X")))?;
                if v.len() != 3 {
                    return Err(Error::bad_input("--at", format!("'{at}' is not Z,Y,X")));
                }
                let patch = rec.grid.patch;
                // The query patch lives in its sample's own collection (3D or 2D).
                let collection = rec.collection.clone();
                let scored = store.similarities(
                    &collection,
                    &vec![1.0; model.manifest.embedding_dim],
                    &Filter {
                        samples: Some(vec![s.clone()]),
                        ..Default::default()
                    },
                )?;
                let best = scored
                    .items
                    .iter()
                    .min_by_key(|p| {
                        (0..3)
                            .map(|k| {
                                let c = p.origin[k] * 2 + patch[k] as i64;
                                (c - 2 * v[k]).pow(2)
                            })
                            .sum::<i64>()
                    })
                    .ok_or_else(|| {
                        Error::bad_input("--sample", format!("sample '{s}' has no stored patches"))
                    })?;
                let (vec, _) =
                    store
                        .get(&collection, best.id)?
                        .ok_or_else(|| Error::Corrupted {
                            path: store.path().to_path_buf(),
                            message: format!("patch {} is in the index but not in redb", best.id),
                        })?;
                (
                    vec,
                    Some(s.clone()),
                    format!("{s} patch {} at {:?}", best.id, best.origin),
                )
            }
            (None, None, Some(img)) => (embed_image(&model, img)?, None, img.display().to_string()),
            _ => {
                return Err(Error::bad_input(
                    "query patch",
                    "give --sample ID --at Z,Y,X or --image FILE",
                ));
            }
        };
    let mut exclude = Vec::new();
    if a.exclude_self
        && let Some(s) = &own_sample
    {
        exclude.push(s.clone());
    }
    let opts = SearchOptions {
        k: a.top,
        ef: (a.top * 4).max(64),
        exact: a.exact,
        filter: Filter {
            samples: (!a.within.is_empty()).then(|| a.within.clone()),
            exclude_samples: exclude,
            region: None,
        },
    };
    let hits = store.search(&target, &[query], &opts)?;
    let mut rows = Vec::new();
    for h in &hits[0] {
        let (_, rec) = store.get(&target, h.id)?.unwrap_or_default();
        let (sample, origin) = rec.map(|r| (r.sample, r.origin)).unwrap_or_default();
        rows.push(json!({"id": h.id, "sample": sample, "origin": origin,
                         "similarity": 1.0 - h.distance}));
    }
    if json_out {
        out(&json!({"ok": true, "query": source, "hits": rows}).to_string());
    } else {
        out(&format!("{} patches most similar to {source}:", rows.len()));
        for (i, r) in rows.iter().enumerate() {
            out(&format!(
                "  {:>3}  {:<14} origin {}  similarity {:.4}",
                i + 1,
                r["sample"].as_str().unwrap_or(""),
                r["origin"],
                r["similarity"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    Ok(())
}

/// An H&E image through the 2D encoder: resized to the model's 2D patch, normalised.
fn embed_image(model: &Model, path: &Path) -> Result<Vec<f32>> {
    let spec = model.manifest.patch_2d.as_ref().ok_or_else(|| {
        Error::bad_input(
            "--image",
            format!("model '{}' has no 2D encoder", model.manifest.name),
        )
    })?;
    let img = vortexdb::volume::decode_image(path)?.to_rgb8();
    let [h, w] = spec.size_px;
    let r = image::imageops::resize(
        &img,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    let c = spec.channels;
    let mut x = vec![0.0f32; c * h * w];
    for (px, py, p) in r.enumerate_pixels() {
        for k in 0..c {
            let v = p[k.min(2)] as f32 / 255.0;
            x[(k * h + py as usize) * w + px as usize] = (v - spec.mean[k]) / spec.std[k];
        }
    }
    let a = ndarray::Array4::from_shape_vec((1, c, h, w), x)
        .map_err(|e| Error::Inference(e.to_string()))?;
    let mut net = model.network("image_2d", &RunOptions::default())?;
    Ok(net.embed(a.view().into_dyn())?.row(0).to_vec())
}
