//! `vortexdb demo`: the whole VORTEX workflow on data the command makes itself, with
//! the default model built into the binary: it generates the phantom, registers the
//! model, ingests the 3D volume and the spots, runs a molecular query per gene program,
//! a morphology retrieval from one patch, predicted expression and k-means domains, and
//! writes a static, self-contained HTML report (`report.html`, images inlined) with the
//! raw outputs and `summary.json` beside it. Progress goes to stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::out;
use super::query::underlay;
use vortexdb::domains::{self, KMeansOptions};
use vortexdb::error::{Error, Result};
use vortexdb::ingest::{IngestOptions, SpotOptions, ingest_spots, ingest_volume};
use vortexdb::metrics::{adjusted_rand_index, roc_auc};
use vortexdb::model::{Device, RunOptions};
use vortexdb::phantom::{COMPARTMENTS, PhantomParams};
use vortexdb::predict::Predictions;
use vortexdb::query::heatmap::{Heatmap, auto_downsample, heatmap, overlay};
use vortexdb::query::{GeneQuery, gene_profile, rank_patches};
use vortexdb::spots::{SpotFormat, SpotPaths, read_spots};
use vortexdb::store::{SearchOptions, Store};

/// File inside a store the demo made: only such a store is replaced by the next run.
const DEMO_MARKER: &str = "DEMO_STORE";

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory (created; an earlier demo's files in it are replaced).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Phantom seed. The default, 7, is one the built-in model never saw (it was trained
    /// on seeds 1 and 3 and tuned on seed 2), so the demo's figures are held out.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Phantom shape Z,Y,X in 4-um voxels.
    #[arg(long, default_value = "48,256,256")]
    pub shape: String,
    /// Execution provider: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

const SAMPLE: &str = "phantom";
/// One gene per program, with the compartment label it marks (0 = none: immune).
const QUERIES: [(&str, &str, u8); 5] = [
    ("GLD01", "gland", 1),
    ("TUM01", "tumour", 2),
    ("STR01", "stroma", 3),
    ("FAT01", "fat", 4),
    ("IMM01", "immune", 0),
];

struct Steps {
    t0: Instant,
    n: usize,
    i: usize,
}

impl Steps {
    fn start(&mut self, what: &str) {
        self.i += 1;
        eprintln!(
            "[{}/{}] {what} ({:.1} s)",
            self.i,
            self.n,
            self.t0.elapsed().as_secs_f64()
        );
    }
}

/// Label of the phantom at each patch centre (model voxels = phantom voxels here).
fn centre_labels(pred: &Predictions, labels: &[u8], shape: [usize; 3]) -> Vec<u8> {
    pred.patches
        .records
        .iter()
        .map(|p| {
            let c: [usize; 3] = std::array::from_fn(|a| {
                ((p.origin[a] as usize) + p.size[a] as usize / 2).min(shape[a] - 1)
            });
            labels[(c[0] * shape[1] + c[1]) * shape[2] + c[2]]
        })
        .collect()
}

fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path)
        .map_err(|e| Error::bad_input(path.display().to_string(), e.to_string()))
}

/// Run `demo`.
pub fn run(a: DemoArgs, json_out: bool) -> Result<()> {
    let shape = {
        let v: Vec<usize> = a
            .shape
            .split(',')
            .map(|x| x.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::bad_input("--shape", format!("'{}' is not Z,Y,X", a.shape)))?;
        if v.len() != 3 {
            return Err(Error::bad_input(
                "--shape",
                format!("'{}' is not Z,Y,X", a.shape),
            ));
        }
        [v[0], v[1], v[2]]
    };
    let device: Device = a.device.parse()?;
    let run = RunOptions {
        device,
        ..Default::default()
    };
    let mut st = Steps {
        t0: Instant::now(),
        n: 8,
        i: 0,
    };
    let dir = &a.out;
    // Refuse before any work: only a store an earlier demo made is ever replaced.
    let store_dir = dir.join("store");
    if store_dir.exists() && !store_dir.join(DEMO_MARKER).is_file() {
        return Err(Error::bad_input(
            store_dir.display().to_string(),
            "exists and was not made by `vortexdb demo`; it is left alone: choose another --out",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let figs = dir.join("figures");
    std::fs::create_dir_all(&figs).map_err(|e| Error::io(&figs, e))?;

    st.start(&format!(
        "generating the phantom (seed {}, {} x {} x {} voxels of 4 um)",
        a.seed, shape[0], shape[1], shape[2]
    ));
    let ph_dir = dir.join("phantom");
    let ph = vortexdb::phantom::generate(
        &PhantomParams {
            seed: a.seed,
            shape,
            plane_step: 16,
            overwrite: true,
        },
        &ph_dir,
    )?;
    let labels = {
        let mut v = vortexdb::volume::NpyVolume::open(&ph.files.labels, None)?;
        let mut out = Vec::with_capacity(shape.iter().product());
        for z in 0..shape[0] {
            out.extend(
                vortexdb::volume::VolumeSource::read_slice(&mut v, z)?
                    .data
                    .iter()
                    .map(|x| (x * 255.0).round() as u8),
            );
        }
        out
    };

    st.start("creating the store and registering the built-in default model");
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir).map_err(|e| Error::io(&store_dir, e))?;
    }
    let store = Store::create(&store_dir)?;
    let marker = store_dir.join(DEMO_MARKER);
    std::fs::write(
        &marker,
        "made by `vortexdb demo`; the next demo run replaces this store\n",
    )
    .map_err(|e| Error::io(&marker, e))?;
    let model_dir = vortexdb::model::embedded::write_to(&dir.join("model"))?;
    store.add_model(&model_dir)?;
    let model = store.load_model(None)?;
    let mname = model.manifest.name.clone();
    let collection = format!("{mname}:3d");

    st.start("ingesting the 3D volume (every 75%-overlapping patch through the 3D encoder and the predictor)");
    let src = vortexdb::volume::open(&ph.files.volume, None)?;
    let mut last = 0u64;
    let ing = ingest_volume(
        &store,
        &model,
        src,
        &IngestOptions {
            sample: SAMPLE.into(),
            run: run.clone(),
            ..Default::default()
        },
        &mut |p| {
            let pct = p.positions_done * 4 / p.positions_total.max(1);
            if pct > last {
                last = pct;
                eprintln!(
                    "      {}% of {} grid positions, {} patches stored",
                    pct * 25,
                    p.positions_total,
                    p.patches_stored
                );
            }
        },
    )?;

    st.start("ingesting the spots (QC, normalisation, smoothing, gene encoder)");
    let table = read_spots(&ph.files.spots, SpotFormat::Parquet, &SpotPaths::default())?;
    let mut sopts = SpotOptions::new(SAMPLE);
    sopts.run = run.clone();
    let spots = ingest_spots(&store, &model, table, &sopts)?;

    st.start("molecular queries: one gene per program -> spots -> mean embedding -> 3D heatmap");
    let pred = Predictions::load(&store, SAMPLE)?;
    let centre = centre_labels(&pred, &labels, shape);
    let label_of: std::collections::HashMap<u64, u8> = pred
        .patches
        .ids
        .iter()
        .copied()
        .zip(centre.iter().copied())
        .collect();
    let origin_of: std::collections::HashMap<u64, [i64; 3]> = pred
        .patches
        .ids
        .iter()
        .copied()
        .zip(pred.patches.records.iter().map(|r| r.origin))
        .collect();
    let rec = pred.sample.clone();
    let d = auto_downsample(rec.grid.shape, 64 << 20);
    let mid = rec.grid.shape[0] / 2 / d;
    let mut under_src = vortexdb::volume::open(Path::new(&rec.source), None).ok();
    let blank = Heatmap {
        shape: [
            rec.grid.shape[0].div_ceil(d),
            rec.grid.shape[1].div_ceil(d),
            rec.grid.shape[2].div_ceil(d),
        ],
        downsample: d,
        data: Vec::new(),
    };
    let under = under_src
        .as_mut()
        .and_then(|s| underlay(s.as_mut(), &rec, &blank, mid));
    let mut queries = Vec::new();
    for (gene, program, label) in QUERIES {
        let prof = gene_profile(&store, &mname, &GeneQuery::new(vec![gene.into()]))?;
        let ranked = rank_patches(&store, &collection, &prof.embedding, None, Vec::new())?;
        let auc = (label > 0).then(|| {
            let scores: Vec<f32> = ranked.iter().map(|r| r.score).collect();
            let pos: Vec<bool> = ranked
                .iter()
                .map(|r| label_of.get(&r.id) == Some(&label))
                .collect();
            roc_auc(&scores, &pos)
        });
        let pts: Vec<([i64; 3], f32)> = ranked.iter().map(|r| (r.origin, r.score)).collect();
        let h = heatmap(&rec.grid, &pts, d);
        let (lo, hi) = (
            h.percentile(10.0).unwrap_or(0.0),
            h.percentile(90.0).unwrap_or(1.0),
        );
        let png = figs.join(format!("query_{}.png", vortexdb::names::file_stem(gene)));
        save_png(&overlay(&h, mid, lo, hi, under.as_deref()), &png)?;
        let top10 = ranked
            .iter()
            .take(10)
            .filter(|r| label_of.get(&r.id) == Some(&label))
            .count();
        queries.push(json!({"gene": gene, "program": program, "compartment_label": label,
            "correlated": prof.correlated.len(), "spots": prof.spots.len(), "spots_total": prof.spots_total,
            "auc": auc, "top10_in_compartment": if label > 0 { Some(top10) } else { None },
            "figure": format!("figures/query_{}.png", vortexdb::names::file_stem(gene))}));
    }

    st.start("morphology retrieval: the patches most similar to one tumour patch");
    // The query patch: the tumour-centred patch nearest the middle of the volume.
    let centre_pt: [f64; 3] = std::array::from_fn(|i| rec.grid.shape[i] as f64 / 2.0);
    let qi = (0..pred.len())
        .filter(|&i| centre[i] == 2)
        .min_by(|&x, &y| {
            let dist = |i: usize| -> f64 {
                let o = pred.patches.records[i].origin;
                (0..3).map(|a| (o[a] as f64 - centre_pt[a]).powi(2)).sum()
            };
            dist(x).total_cmp(&dist(y))
        })
        .unwrap_or(0);
    let qid = pred.patches.ids[qi];
    let (qvec, _) = store
        .get(&collection, qid)?
        .ok_or_else(|| Error::Corrupted {
            path: store.path().to_path_buf(),
            message: format!("patch {qid} has no vector"),
        })?;
    let hits = store.search(
        &collection,
        &[qvec],
        &SearchOptions {
            k: 11,
            ..Default::default()
        },
    )?;
    let retrieved: Vec<serde_json::Value> = hits[0]
        .iter()
        .filter(|h| h.id != qid)
        .take(10)
        .map(|h| {
            let l = label_of.get(&h.id).copied().unwrap_or(0);
            let o = origin_of.get(&h.id).copied().unwrap_or([0; 3]);
            json!({"id": h.id, "origin": o, "score": 1.0 - h.distance,
                "compartment": COMPARTMENTS[l as usize]})
        })
        .collect();
    let same = retrieved
        .iter()
        .filter(|r| r["compartment"] == "tumour")
        .count();

    st.start("predicted expression and k-means spatial domains (k = 4)");
    let mut pred_figs = Vec::new();
    for gene in ["TUM01", "GLD01", "IMM01"] {
        let c = pred.gene_columns(&[gene.to_string()])?[0];
        let h = pred.gene_volume(c, d);
        let (lo, hi) = (
            h.percentile(10.0).unwrap_or(0.0),
            h.percentile(90.0).unwrap_or(1.0),
        );
        let png = figs.join(format!("predicted_{}.png", vortexdb::names::file_stem(gene)));
        save_png(&overlay(&h, mid, lo, hi, under.as_deref()), &png)?;
        pred_figs.push(json!({"gene": gene, "figure": format!("figures/predicted_{}.png", vortexdb::names::file_stem(gene))}));
    }
    let (drec, summaries) = domains::compute(
        &pred,
        &KMeansOptions {
            k: 4,
            restarts: 10,
            seed: 0,
            ..Default::default()
        },
    )?;
    store.put_domains(&drec)?;
    let (seg, seg_shape) = domains::read_segmentation(&ph.files.labels)?;
    let (ari, ari_n) =
        domains::ari_against(&pred, &drec.labels, &seg, seg_shape, &ph.files.labels)?;
    let (vol, vshape) = domains::label_volume(&pred, &drec.labels, 4, d);
    let dimg = super::analysis::domain_slice(&vol, vshape, mid, under.as_deref());
    save_png(&dimg, &figs.join("domains.png"))?;
    // Ground truth at the same slice, for the eye.
    let timg = image::RgbImage::from_fn(vshape[2] as u32, vshape[1] as u32, |x, y| {
        let (z, yy, xx) = (
            (mid * d + d / 2).min(shape[0] - 1),
            (y as usize * d + d / 2).min(shape[1] - 1),
            (x as usize * d + d / 2).min(shape[2] - 1),
        );
        let l = labels[(z * shape[1] + yy) * shape[2] + xx];
        if l == 0 {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb(super::analysis::PALETTE[(l as usize + 5) % 10])
        }
    });
    save_png(&timg, &figs.join("truth.png"))?;
    let hne = ph
        .files
        .planes
        .iter()
        .min_by_key(|p| {
            let z: usize = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("plane_"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            z.abs_diff(mid * d)
        })
        .cloned();
    // Domain purity against the truth, for the table: each domain's majority compartment.
    let mut by_domain = [[0usize; 5]; 4];
    for (l, &c) in drec.labels.iter().zip(&centre) {
        by_domain[*l as usize][c as usize] += 1;
    }
    let dom_rows: Vec<serde_json::Value> = summaries
        .iter()
        .map(|s| {
            let counts = by_domain[s.domain as usize];
            let (best, n) = counts
                .iter()
                .enumerate()
                .skip(1)
                .max_by_key(|x| x.1)
                .map(|(i, n)| (i, *n))
                .unwrap_or((0, 0));
            json!({"domain": s.domain + 1, "patches": s.patches, "fraction": s.fraction,
                "top_genes": s.top_genes, "majority_compartment": COMPARTMENTS[best],
                "majority_share": n as f64 / s.patches.max(1) as f64})
        })
        .collect();
    // Sanity: labels of the same partition give ARI 1 (keeps the import honest).
    debug_assert_eq!(
        adjusted_rand_index(&drec.labels, &drec.labels).ok(),
        Some(1.0)
    );

    st.start("evaluating predicted against measured expression at the spots; writing the report");
    let cmp = super::analysis::compare(
        &store,
        &pred,
        SAMPLE,
        &[],
        &QUERIES.iter().map(|q| q.0.to_string()).collect::<Vec<_>>(),
        false,
    )?;
    let pq = dir.join("predictions.parquet");
    super::analysis::write_predictions_parquet(&pq, &pred)?;
    let r = &cmp.report;
    let secs = st.t0.elapsed().as_secs_f64();
    let summary = json!({
        "ok": true,
        "seconds": secs,
        "phantom": {"seed": a.seed, "shape": shape, "spots": ph.n_spots,
            "compartment_fractions": ph.compartment_fractions},
        "ingest": {"patches": ing.patches_total, "grid_positions": ing.grid_positions,
            "seconds": ing.seconds, "patches_per_second": ing.patches_per_second,
            "spots_kept": spots.qc.kept},
        "model": mname,
        "queries": queries,
        "retrieval": {"query_id": qid, "query_origin": pred.patches.records[qi].origin,
            "query_compartment": "tumour", "top10_same_compartment": same, "hits": retrieved},
        "prediction": {"pcc_all": r.pcc_all, "pcc_top50": r.pcc_top50, "pcc_markers": r.pcc_markers,
            "ssim": r.ssim, "variance_spearman": r.variance_spearman,
            "moran_predicted": r.moran_predicted, "moran_measured": r.moran_measured,
            "geary_predicted": r.geary_predicted, "geary_measured": r.geary_measured,
            "spots": r.spots, "genes": r.genes, "figures": pred_figs},
        "domains": {"k": 4, "ari": ari, "ari_patches": ari_n, "inertia": drec.inertia, "domains": dom_rows},
        "files": {"report": "report.html", "store": "store", "phantom": "phantom",
            "predictions": "predictions.parquet", "figures": "figures"},
    });
    let sj = dir.join("summary.json");
    std::fs::write(
        &sj,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&sj, e))?;
    let html = report_html(dir, &summary, hne.as_deref())?;
    let rp = dir.join("report.html");
    std::fs::write(&rp, html).map_err(|e| Error::io(&rp, e))?;
    eprintln!("done in {secs:.1} s");
    if json_out {
        out(&summary.to_string());
    } else {
        out(&format!(
            "demo: phantom {}x{}x{} (seed {}), {} patches and {} spots ingested",
            shape[0], shape[1], shape[2], a.seed, ing.patches_total, spots.qc.kept
        ));
        for q in &queries {
            out(&format!(
                "  query {} ({}): {} spots, AUC {}",
                q["gene"].as_str().unwrap_or(""),
                q["program"].as_str().unwrap_or(""),
                q["spots"],
                q["auc"]
                    .as_f64()
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_else(|| "- (no compartment)".into())
            ));
        }
        out(&format!(
            "  retrieval from a tumour patch: {same}/10 of the nearest patches are tumour"
        ));
        out(&format!(
            "  predicted vs measured: PCC all {:.3}, top 50 {:.3}, SSIM {:.3}",
            r.pcc_all, r.pcc_top50, r.ssim
        ));
        out(&format!(
            "  domains (k = 4): ARI {ari:.3} against the phantom's compartments"
        ));
        out(&format!("  report: {}", rp.display()));
        out(&format!("  total {secs:.1} s"));
    }
    Ok(())
}

/// Standard base64 (RFC 4648) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn img_tag(dir: &Path, rel: &str, alt: &str) -> Result<String> {
    let p = dir.join(rel);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    Ok(format!(
        "<figure><img alt=\"{alt}\" src=\"data:image/png;base64,{}\"><figcaption>{alt}</figcaption></figure>",
        base64(&bytes)
    ))
}

fn f3(v: &serde_json::Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.3}"))
        .unwrap_or_else(|| "-".into())
}

fn report_html(dir: &Path, s: &serde_json::Value, hne: Option<&Path>) -> Result<String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vortexdb demo report</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th{{background:#f2f2f2}}td:first-child,th:first-child{{text-align:left}}\
         figure{{display:inline-block;margin:4px;text-align:center}}img{{width:256px;image-rendering:pixelated;border:1px solid #ddd}}\
         figcaption{{font-size:.85em}}.num{{font-weight:bold}}</style></head><body>"
    );
    let ph = &s["phantom"];
    let _ = write!(
        h,
        "<h1>vortexdb demo report</h1><p>Synthetic phantom (seed {}, {} voxels of 4 um, {} spots), the built-in model \
         <code>{}</code>. Everything below was computed by <code>vortexdb demo</code> in <span class=\"num\" id=\"total-seconds\">{:.1}</span> s.</p>",
        ph["seed"],
        ph["shape"]
            .as_array()
            .map(|v| v
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" x "))
            .unwrap_or_default(),
        ph["spots"],
        s["model"].as_str().unwrap_or(""),
        s["seconds"].as_f64().unwrap_or(0.0)
    );
    let ing = &s["ingest"];
    let _ = write!(
        h,
        "<h2>Ingest</h2><p><span class=\"num\" id=\"patches\">{}</span> patches stored of {} grid positions in {:.1} s ({:.0} patches/s); {} spots kept.</p>",
        ing["patches"],
        ing["grid_positions"],
        ing["seconds"].as_f64().unwrap_or(0.0),
        ing["patches_per_second"].as_f64().unwrap_or(0.0),
        ing["spots_kept"]
    );
    h.push_str("<p>");
    if let Some(p) = hne {
        let rel = p
            .strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        h.push_str(&img_tag(dir, &rel, "H&amp;E plane near the middle slice")?);
    }
    h.push_str(&img_tag(
        dir,
        "figures/truth.png",
        "ground-truth compartments (middle slice)",
    )?);
    let legend: String = (1..=4)
        .map(|l| {
            let c = super::analysis::PALETTE[(l + 5) % 10];
            format!(
                "<span style=\"display:inline-block;width:1em;height:1em;background:rgb({},{},{});vertical-align:middle\"></span> {} ",
                c[0], c[1], c[2], COMPARTMENTS[l]
            )
        })
        .collect();
    let _ = write!(h, "</p><p id=\"legend\">Ground truth: {legend}");
    h.push_str("</p><h2>Molecular queries (gene &rarr; morphology)</h2><p>Each query: the gene, genes correlated with it (PCC &gt; 0.5), spots above the 75th percentile, their mean transcriptomic embedding, cosine similarity with every 3D patch, overlap-averaged into a heatmap (coolwarm, 10th&ndash;90th percentile, middle slice). AUC: similarity against the patch-centre compartment.</p>\
        <table id=\"queries\"><tr><th>gene</th><th>program</th><th>correlated genes</th><th>spots used</th><th>AUC</th><th>top 10 in compartment</th></tr>");
    let mut figs = String::new();
    for q in s["queries"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            q["gene"].as_str().unwrap_or(""),
            q["program"].as_str().unwrap_or(""),
            q["correlated"],
            q["spots"],
            q["spots_total"],
            f3(&q["auc"]),
            q["top10_in_compartment"]
                .as_u64()
                .map(|v| format!("{v}/10"))
                .unwrap_or_else(|| "-".into())
        );
        figs.push_str(&img_tag(
            dir,
            q["figure"].as_str().unwrap_or(""),
            &format!(
                "{} ({})",
                q["gene"].as_str().unwrap_or(""),
                q["program"].as_str().unwrap_or("")
            ),
        )?);
    }
    h.push_str("</table><p>");
    h.push_str(&figs);
    let rt = &s["retrieval"];
    let _ = write!(
        h,
        "</p><h2>Morphology retrieval</h2><p>Query: the tumour patch at origin {} (z, y, x). <span class=\"num\" id=\"retrieval-same\">{}</span>/10 of its nearest patches are tumour.</p>\
         <table id=\"retrieval\"><tr><th>rank</th><th>patch</th><th>origin (z, y, x)</th><th>similarity</th><th>compartment</th></tr>",
        rt["query_origin"], rt["top10_same_compartment"]
    );
    for (i, hit) in rt["hits"].as_array().into_iter().flatten().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            hit["id"],
            hit["origin"],
            f3(&hit["score"]),
            hit["compartment"].as_str().unwrap_or("")
        );
    }
    let p = &s["prediction"];
    let _ = write!(
        h,
        "</table><h2>Predicted expression</h2><p>The predictor head on every patch, read out at the {} spots and compared with their measured expression over {} genes.</p>\
         <table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>\
         <tr><td>PCC, all genes</td><td>{}</td></tr><tr><td>PCC, 50 best-predicted genes</td><td>{}</td></tr>\
         <tr><td>PCC, one marker per program</td><td>{}</td></tr><tr><td>SSIM (gridded spots)</td><td>{}</td></tr>\
         <tr><td>Spearman of per-gene variances</td><td>{}</td></tr><tr><td>Moran's I predicted / measured</td><td>{} / {}</td></tr>\
         <tr><td>Geary's C predicted / measured</td><td>{} / {}</td></tr></table><p>",
        p["spots"],
        p["genes"],
        f3(&p["pcc_all"]),
        f3(&p["pcc_top50"]),
        f3(&p["pcc_markers"]),
        f3(&p["ssim"]),
        f3(&p["variance_spearman"]),
        f3(&p["moran_predicted"]),
        f3(&p["moran_measured"]),
        f3(&p["geary_predicted"]),
        f3(&p["geary_measured"])
    );
    for f in p["figures"].as_array().into_iter().flatten() {
        h.push_str(&img_tag(
            dir,
            f["figure"].as_str().unwrap_or(""),
            &format!("predicted {}", f["gene"].as_str().unwrap_or("")),
        )?);
    }
    let dm = &s["domains"];
    let _ = write!(
        h,
        "</p><h2>Spatial domains</h2><p>k-means (k = 4, 10 restarts) on the predictor's hidden representation of every patch. ARI against the phantom's compartments: <span class=\"num\" id=\"ari\">{}</span> ({} patches).</p>\
         <table id=\"domains\"><tr><th>domain</th><th>patches</th><th>share</th><th>top predicted genes</th><th>majority compartment</th></tr>",
        f3(&dm["ari"]),
        dm["ari_patches"]
    );
    for d in dm["domains"].as_array().into_iter().flatten() {
        let genes: Vec<String> = d["top_genes"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .filter_map(|g| g[0].as_str().map(String::from))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{} ({:.0}%)</td></tr>",
            d["domain"],
            d["patches"],
            100.0 * d["fraction"].as_f64().unwrap_or(0.0),
            genes.join(", "),
            d["majority_compartment"].as_str().unwrap_or(""),
            100.0 * d["majority_share"].as_f64().unwrap_or(0.0)
        );
    }
    h.push_str("</table><p>");
    h.push_str(&img_tag(
        dir,
        "figures/domains.png",
        "domains (middle slice)",
    )?);
    h.push_str(&img_tag(
        dir,
        "figures/truth.png",
        "ground truth (middle slice)",
    )?);
    h.push_str("</p><h2>Files</h2><ul><li><code>store/</code>: the vortexdb store (open it with any command)</li>\
        <li><code>phantom/</code>: the generated volume, labels, H&amp;E planes and spots</li>\
        <li><code>predictions.parquet</code>: predicted expression of every patch</li>\
        <li><code>figures/</code>: the PNGs above</li><li><code>summary.json</code>: every figure of this report</li></ul></body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
