//! The whole VORTEX workflow on data the library makes itself, with the default model
//! built in: it generates the phantom, registers the model, ingests the 3D volume and
//! the spots, runs a molecular query per gene program, a morphology retrieval from one
//! patch, predicted expression and k-means domains, and writes a static,
//! self-contained HTML report (`report.html`, images inlined) with the raw outputs and
//! `summary.json` (the [`DemoReport`]) beside it.

mod html;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use report::{
    DemoDomain, DemoDomains, DemoFigure, DemoFiles, DemoHit, DemoIngest, DemoPhantom,
    DemoPrediction, DemoQuery, DemoReport, DemoRetrieval,
};

use crate::domains::{self, KMeansOptions};
use crate::engine::{SearchOptions, Store};
use crate::error::{Error, Result};
use crate::export::{write_json, write_png, write_predictions_parquet};
use crate::ingest::{IngestOptions, SpotOptions, ingest_spots, ingest_volume};
use crate::metrics::compare::compare;
use crate::model::{Device, RunOptions};
use crate::phantom::{COMPARTMENTS, PhantomParams};
use crate::predict::Predictions;
use crate::query::heatmap::{Heatmap, auto_downsample, heatmap, overlay};
use crate::query::{GeneQuery, gene_profile, rank_patches};
use crate::render::{PALETTE, domain_slice, underlay};
use crate::spots::{SpotFormat, SpotPaths, read_spots};
use crate::stats::{adjusted_rand_index, roc_auc};

/// File inside a store the demo made: only such a store is replaced by the next run.
pub const DEMO_MARKER: &str = "DEMO_STORE";

/// Settings of [`run_demo`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output directory (created; an earlier demo's files in it are replaced).
    pub out: PathBuf,
    /// Phantom seed. The default, 7, is one the built-in model never saw (it was
    /// trained on seeds 1 and 3 and tuned on seed 2), so the demo's figures are held out.
    pub seed: u64,
    /// Phantom shape (z, y, x) in 4-um voxels.
    pub shape: [usize; 3],
    /// Execution provider.
    pub device: Device,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out: PathBuf::from("demo-out"),
            seed: 7,
            shape: [48, 256, 256],
            device: Device::Cpu,
        }
    }
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

struct Steps<'a> {
    t0: Instant,
    n: usize,
    i: usize,
    say: &'a mut dyn FnMut(&str),
}

impl Steps<'_> {
    fn start(&mut self, what: &str) {
        self.i += 1;
        let line = format!(
            "[{}/{}] {what} ({:.1} s)",
            self.i,
            self.n,
            self.t0.elapsed().as_secs_f64()
        );
        (self.say)(&line);
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

/// Run the demo into `opts.out`; `say` receives one line per step and ingest progress.
pub fn run_demo(opts: &DemoOptions, say: &mut dyn FnMut(&str)) -> Result<DemoReport> {
    let a = opts;
    let shape = a.shape;
    let run = RunOptions {
        device: a.device,
        ..Default::default()
    };
    let mut st = Steps {
        t0: Instant::now(),
        n: 8,
        i: 0,
        say,
    };
    let dir = &a.out;
    // Refuse before any work: only a store an earlier demo made is ever replaced.
    let store_dir = dir.join("store");
    if store_dir.exists() && !store_dir.join(DEMO_MARKER).is_file() {
        return Err(Error::OutputExists {
            path: store_dir,
            message: "exists and was not made by `vortexdb demo`; it is left alone".into(),
            can_overwrite: false,
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let figs = dir.join("figures");
    std::fs::create_dir_all(&figs).map_err(|e| Error::io(&figs, e))?;

    st.start(&format!(
        "generating the phantom (seed {}, {} x {} x {} voxels of 4 um)",
        a.seed, shape[0], shape[1], shape[2]
    ));
    let ph_dir = dir.join("phantom");
    let ph = crate::phantom::generate(
        &PhantomParams {
            seed: a.seed,
            shape,
            plane_step: 16,
            overwrite: true,
            oblique: 0,
        },
        &ph_dir,
    )?;
    let labels = {
        let mut v = crate::volume::NpyVolume::open(&ph.files.labels, None)?;
        let mut out = Vec::with_capacity(shape.iter().product());
        for z in 0..shape[0] {
            out.extend(
                crate::volume::VolumeSource::read_slice(&mut v, z)?
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
    let model_dir = crate::model::embedded::write_to(&dir.join("model"))?;
    store.add_model(&model_dir)?;
    let model = store.load_model(None)?;
    let mname = model.manifest.name.clone();
    let collection = format!("{mname}:3d");

    st.start("ingesting the 3D volume (every 75%-overlapping patch through the 3D encoder and the predictor)");
    let src = crate::volume::open(&ph.files.volume, None)?;
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
                (st.say)(&format!(
                    "      {}% of {} grid positions, {} patches stored",
                    pct * 25,
                    p.positions_total,
                    p.patches_stored
                ));
            }
            std::ops::ControlFlow::Continue(())
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
    let mut under_src = crate::volume::open(Path::new(&rec.source), None).ok();
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
        let png = figs.join(format!("query_{}.png", crate::names::file_stem(gene)));
        write_png(&overlay(&h, mid, lo, hi, under.as_deref()), &png)?;
        let top10 = ranked
            .iter()
            .take(10)
            .filter(|r| label_of.get(&r.id) == Some(&label))
            .count();
        queries.push(DemoQuery {
            gene: gene.into(),
            program: program.into(),
            compartment_label: label,
            correlated: prof.correlated.len(),
            spots: prof.spots.len(),
            spots_total: prof.spots_total,
            auc,
            top10_in_compartment: (label > 0).then_some(top10),
            figure: format!("figures/query_{}.png", crate::names::file_stem(gene)),
        });
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
    let retrieved: Vec<DemoHit> = hits[0]
        .iter()
        .filter(|h| h.id != qid)
        .take(10)
        .map(|h| {
            let l = label_of.get(&h.id).copied().unwrap_or(0);
            let o = origin_of.get(&h.id).copied().unwrap_or([0; 3]);
            DemoHit {
                id: h.id,
                origin: o,
                score: (1.0 - h.distance) as f64,
                compartment: COMPARTMENTS[l as usize].into(),
            }
        })
        .collect();
    let same = retrieved
        .iter()
        .filter(|r| r.compartment == "tumour")
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
        let png = figs.join(format!("predicted_{}.png", crate::names::file_stem(gene)));
        write_png(&overlay(&h, mid, lo, hi, under.as_deref()), &png)?;
        pred_figs.push(DemoFigure {
            gene: gene.into(),
            figure: format!("figures/predicted_{}.png", crate::names::file_stem(gene)),
        });
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
    let dimg = domain_slice(&vol, vshape, mid, under.as_deref());
    write_png(&dimg, &figs.join("domains.png"))?;
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
            image::Rgb(PALETTE[(l as usize + 5) % 10])
        }
    });
    write_png(&timg, &figs.join("truth.png"))?;
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
    let dom_rows: Vec<DemoDomain> = summaries
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
            DemoDomain {
                domain: s.domain + 1,
                patches: s.patches,
                fraction: s.fraction,
                top_genes: s.top_genes.clone(),
                majority_compartment: COMPARTMENTS[best].into(),
                majority_share: n as f64 / s.patches.max(1) as f64,
            }
        })
        .collect();
    // Sanity: labels of the same partition give ARI 1 (keeps the import honest).
    debug_assert_eq!(
        adjusted_rand_index(&drec.labels, &drec.labels).ok(),
        Some(1.0)
    );

    st.start("evaluating predicted against measured expression at the spots; writing the report");
    let cmp = compare(
        &store,
        &pred,
        SAMPLE,
        &[],
        &QUERIES.iter().map(|q| q.0.to_string()).collect::<Vec<_>>(),
        false,
    )?;
    let pq = dir.join("predictions.parquet");
    write_predictions_parquet(&pq, &pred)?;
    let r = &cmp.report;
    let secs = st.t0.elapsed().as_secs_f64();
    let summary = DemoReport {
        ok: true,
        seconds: secs,
        phantom: DemoPhantom {
            seed: a.seed,
            shape,
            spots: ph.n_spots,
            compartment_fractions: ph.compartment_fractions,
        },
        ingest: DemoIngest {
            patches: ing.patches_total,
            grid_positions: ing.grid_positions,
            seconds: ing.seconds,
            patches_per_second: ing.patches_per_second,
            spots_kept: spots.qc.kept,
        },
        model: mname,
        queries,
        retrieval: DemoRetrieval {
            query_id: qid,
            query_origin: pred.patches.records[qi].origin,
            query_compartment: "tumour".into(),
            top10_same_compartment: same,
            hits: retrieved,
        },
        prediction: DemoPrediction {
            pcc_all: r.pcc_all,
            pcc_top50: r.pcc_top50,
            pcc_markers: r.pcc_markers,
            ssim: r.ssim,
            variance_spearman: r.variance_spearman,
            moran_predicted: r.moran_predicted,
            moran_measured: r.moran_measured,
            geary_predicted: r.geary_predicted,
            geary_measured: r.geary_measured,
            spots: r.spots,
            genes: r.genes,
            figures: pred_figs,
        },
        domains: DemoDomains {
            k: 4,
            ari,
            ari_patches: ari_n,
            inertia: drec.inertia,
            domains: dom_rows,
        },
        files: DemoFiles {
            report: "report.html".into(),
            store: "store".into(),
            phantom: "phantom".into(),
            predictions: "predictions.parquet".into(),
            figures: "figures".into(),
        },
        out: dir.to_path_buf(),
    };
    // Through a JSON value, as the report is rendered from one (f32 fields print as
    // the f64 of their value, keys in order).
    let value = serde_json::to_value(&summary).map_err(|e| Error::bad_file(dir, e.to_string()))?;
    write_json(&dir.join("summary.json"), &value)?;
    let html = html::report_html(dir, &summary, hne.as_deref())?;
    let rp = dir.join("report.html");
    std::fs::write(&rp, html).map_err(|e| Error::io(&rp, e))?;
    (st.say)(&format!("done in {secs:.1} s"));
    Ok(summary)
}
