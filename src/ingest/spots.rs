//! Spot ingestion: a [`SpotTable`] -> QC -> normalisation + log1p -> panels (the
//! model's encoder and predicted genes, the sample's highly variable and most expressed
//! genes) -> smoothing -> the model's gene encoder -> one durable store transaction
//! (spots, raw counts, panel expression, embeddings).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::file_fingerprint;
use crate::catalog::{ExpressionRecord, SpotBatch, SpotRecord, SpotSetRecord};
use crate::engine::{CollectionSpec, PatchRecord, Store};
use crate::error::{Error, Result};
use crate::expression::{
    GeneIndex, QcSettings, QcSummary, dense_panel, highly_variable_genes, normalize_log1p,
    quality_control, smooth_knn, top_expressed,
};
use crate::index::Metric;
use crate::model::{Model, RunOptions};
use crate::register::Transforms;
use crate::spots::SpotTable;

/// Settings of a spot ingest.
#[derive(Debug, Clone)]
pub struct SpotOptions {
    /// Sample id.
    pub sample: String,
    /// Quality-control thresholds.
    pub qc: QcSettings,
    /// Nearest spots averaged into the stored smoothed expression (method: ~10).
    pub smooth_k: usize,
    /// Highly variable genes to record (method: 1,200).
    pub n_hvg: usize,
    /// Most expressed genes to record (method: 250).
    pub n_top: usize,
    /// Image pixels (x, y) -> sample (x, y): [a, b, c, d, e, f].
    pub affine: [f64; 6],
    /// Section index (z) for spots whose source gives none.
    pub z: f64,
    /// A section cut on a plane of the volume (as `register_section_to_volume` finds
    /// it): image pixel `(x, y, 1)` -> voxel `(x, y, z)`, rows x, y, z. When given, it
    /// replaces `affine` and `z`, so spots of a tilted section get their 3D positions.
    pub plane: Option<[[f64; 3]; 3]>,
    /// Spots of one section of a registered stack (`ingest sections --transforms`):
    /// the transforms and the section's index. Image pixels go through that section's
    /// map, its non-rigid field included, into the frame, at z = the index; replaces
    /// `affine` and `z`.
    pub section: Option<(Transforms, usize)>,
    /// Spots per gene-encoder batch.
    pub batch: usize,
    /// Execution provider and threads.
    pub run: RunOptions,
}

impl SpotOptions {
    /// The method's defaults for `sample`: QC >= 25 genes and < 20% MT, smoothing over
    /// 10 spots, 1,200 HVGs, 250 most expressed genes, identity affine at z = 0.
    pub fn new(sample: &str) -> Self {
        SpotOptions {
            sample: sample.into(),
            qc: QcSettings::default(),
            smooth_k: 10,
            n_hvg: 1200,
            n_top: 250,
            affine: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            z: 0.0,
            plane: None,
            section: None,
            batch: 256,
            run: RunOptions::default(),
        }
    }
}

/// What a spot ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct SpotReport {
    /// Sample id.
    pub sample: String,
    /// Layout read.
    pub format: String,
    /// Files read.
    pub files: Vec<String>,
    /// Model and collection of the embeddings.
    pub model: String,
    /// Collection of the spot embeddings.
    pub collection: String,
    /// Spots dropped as outside the tissue by the positions table.
    pub dropped_outside_tissue: usize,
    /// QC counts by rule.
    pub qc: QcSummary,
    /// The QC thresholds applied (not in the JSON report, which records counts).
    #[serde(skip)]
    pub qc_settings: crate::expression::QcSettings,
    /// Genes in the count matrix.
    pub genes: usize,
    /// Encoder genes found / in the model's panel, and the missing ones.
    pub encoder_genes_found: usize,
    /// Size of the model's encoder panel.
    pub encoder_genes: usize,
    /// Encoder genes absent from the data.
    pub encoder_missing: Vec<String>,
    /// Predicted genes found.
    pub predicted_genes_found: usize,
    /// Size of the model's predicted panel.
    pub predicted_genes: usize,
    /// Predicted genes absent from the data.
    pub predicted_missing: Vec<String>,
    /// Highly variable genes recorded.
    pub hvg: usize,
    /// Encoder genes among the sample's highly variable genes.
    pub encoder_genes_in_hvg: usize,
    /// Spots embedded.
    pub embedded: usize,
    /// True when the same data were already ingested (nothing done).
    pub already_present: bool,
    /// Wall time.
    pub seconds: f64,
    /// Spots read per second (whole ingest).
    pub spots_per_second: f64,
}

impl std::fmt::Display for SpotReport {
    /// What was read, kept, embedded and missing, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        if r.already_present {
            return write!(
                f,
                "sample {} already has these spots ({} kept of {}); nothing to do",
                r.sample, r.qc.kept, r.qc.spots_in
            );
        }
        write!(
            f,
            "sample {}: {} spots read ({} format, {} genes), {} kept by QC ({} with < {} genes, \
             {} with >= {}% MT), {} embedded into {} in {:.1} s ({:.0} spots/s); encoder genes \
             found {}/{}, predicted genes found {}/{}",
            r.sample,
            r.qc.spots_in,
            r.format,
            r.genes,
            r.qc.kept,
            r.qc.removed_min_genes,
            r.qc_settings.min_genes,
            r.qc.removed_mito,
            r.qc_settings.max_mito_fraction * 100.0,
            r.embedded,
            r.collection,
            r.seconds,
            r.spots_per_second,
            r.encoder_genes_found,
            r.encoder_genes,
            r.predicted_genes_found,
            r.predicted_genes,
        )?;
        if !r.encoder_missing.is_empty() || !r.predicted_missing.is_empty() {
            let list = |v: &[String]| {
                let mut s: Vec<&str> = v.iter().take(10).map(|s| s.as_str()).collect();
                if v.len() > 10 {
                    s.push("...");
                }
                s.join(", ")
            };
            write!(
                f,
                "\n  missing from the data: encoder genes [{}], predicted genes [{}] (embedded / \
                 predicted as 0)",
                list(&r.encoder_missing),
                list(&r.predicted_missing)
            )?;
        }
        Ok(())
    }
}

/// Ingest `table` as the spots of `opts.sample`, embedding the kept spots with the
/// model's gene encoder. Everything is checked and computed before the single write;
/// re-running with the same data is a no-op, other data under the same sample id is
/// refused.
pub fn ingest_spots(
    store: &Store,
    model: &Model,
    table: SpotTable,
    opts: &SpotOptions,
) -> Result<SpotReport> {
    let t0 = Instant::now();
    crate::names::valid_id(&opts.sample, "sample")?;
    crate::limits::count("batch", opts.batch)?;
    let mito = opts.qc.max_mito_fraction;
    if !(mito > 0.0 && mito <= 1.0) {
        return Err(Error::arg(
            "max_mito",
            format!("{mito} is not a fraction in (0, 1]"),
        ));
    }
    if opts.affine.iter().any(|x| !x.is_finite()) || !opts.z.is_finite() {
        return Err(Error::arg("affine", "every number (and z) must be finite"));
    }
    if opts
        .plane
        .is_some_and(|m| m.iter().flatten().any(|v| !v.is_finite()))
    {
        return Err(Error::arg(
            "plane",
            "every number of the plane's matrix must be finite",
        ));
    }
    if let Some((t, i)) = &opts.section
        && *i >= t.sections.len()
    {
        return Err(Error::arg(
            "section",
            format!(
                "section {i} of a registration of {} sections (counted from 0)",
                t.sections.len()
            ),
        ));
    }
    let m = &model.manifest;
    let files: Vec<PathBuf> = table.files.clone();
    let mut h = Sha256::new();
    file_fingerprint(&mut h, &files)?;
    if files.is_empty() {
        content_digest(&mut h, &table);
    }
    h.update(crate::codec::canonical_json(&serde_json::json!({
        "qc": opts.qc, "smooth_k": opts.smooth_k, "n_hvg": opts.n_hvg, "n_top": opts.n_top,
        "affine": opts.affine, "z": opts.z, "model": m.name,
    })));
    if let Some(plane) = opts.plane {
        h.update(crate::codec::canonical_json(
            &serde_json::json!({ "plane": plane }),
        ));
    }
    if let Some((t, i)) = &opts.section {
        h.update(crate::codec::canonical_json(&serde_json::json!({
            "section": i, "map": t.sections[*i], "field": t.field(*i), "frame": t.frame,
        })));
    }
    let fingerprint = format!("{:x}", h.finalize());
    let file_names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if let Some(prev) = store.spot_set(&opts.sample)? {
        if prev.fingerprint == fingerprint {
            return Ok(SpotReport {
                sample: opts.sample.clone(),
                format: prev.format,
                files: file_names,
                model: prev.model,
                collection: prev.collection,
                dropped_outside_tissue: prev.dropped_outside_tissue,
                qc: prev.qc_summary,
                qc_settings: opts.qc.clone(),
                genes: prev.genes.len(),
                encoder_genes_found: m.encoder_genes.as_ref().map_or(0, |p| p.names.len())
                    - prev.encoder_missing.len(),
                encoder_genes: m.encoder_genes.as_ref().map_or(0, |p| p.names.len()),
                encoder_missing: prev.encoder_missing,
                predicted_genes_found: m.predicted_genes.len() - prev.predicted_missing.len(),
                predicted_genes: m.predicted_genes.len(),
                predicted_missing: prev.predicted_missing,
                hvg: prev.hvg.len(),
                encoder_genes_in_hvg: 0,
                embedded: 0,
                already_present: true,
                seconds: t0.elapsed().as_secs_f64(),
                spots_per_second: 0.0,
            });
        }
        return Err(Error::arg(
            "sample",
            format!(
                "sample '{}' already has spots from {} (other data or settings); use another sample id",
                opts.sample,
                prev.files.join(", ")
            ),
        ));
    }
    let source = file_names.first().cloned().unwrap_or_default();
    let enc = m.encoder_genes.as_ref().ok_or_else(|| {
        Error::bad_input(
            model
                .dir
                .join(crate::model::MANIFEST_FILE)
                .display()
                .to_string(),
            "the model has no gene encoder panel (encoder_genes); it cannot embed spots",
        )
    })?;
    let mut network = model.network("genes", &opts.run)?;

    // QC, then normalisation of the kept spots.
    let (qc, qc_summary) = quality_control(&table.counts, &opts.qc);
    let keep: Vec<usize> = (0..qc.len()).filter(|&i| qc[i].kept).collect();
    if keep.is_empty() {
        return Err(Error::NothingSelected {
            stage: "spot_qc",
            message: format!(
                "{source}: no spot passes QC (>= {} genes and < {}% mitochondrial counts): {} below \
                 the gene minimum, {} above the mitochondrial limit",
                opts.qc.min_genes,
                opts.qc.max_mito_fraction * 100.0,
                qc_summary.removed_min_genes,
                qc_summary.removed_mito
            ),
        });
    }
    let kept = table.counts.select_rows(&keep);
    let target = m.expression.normalize_total;
    let norm = normalize_log1p(&kept, target);

    // Panels.
    let gi = GeneIndex::new(&table.counts.genes);
    let (enc_cols, encoder_missing) = gi.panel(&enc.names);
    if encoder_missing.len() == enc.names.len() {
        let sample: Vec<&str> = table
            .counts
            .genes
            .iter()
            .take(5)
            .map(|s| s.as_str())
            .collect();
        return Err(Error::bad_input(
            source,
            format!(
                "none of the model '{}' gene encoder's {} genes ({}, ...) is in the data (whose genes \
                 are {}, ...); this model was not trained on this panel",
                m.name,
                enc.names.len(),
                enc.names
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                sample.join(", ")
            ),
        ));
    }
    let (_, predicted_missing) = gi.panel(&m.predicted_genes);
    let mut panel: Vec<String> = enc.names.clone();
    let upper: std::collections::HashSet<String> = panel.iter().map(|g| g.to_uppercase()).collect();
    panel.extend(
        m.predicted_genes
            .iter()
            .filter(|g| !upper.contains(&g.to_uppercase()))
            .cloned(),
    );
    let (panel_cols, _) = gi.panel(&panel);
    let hvg: Vec<String> = highly_variable_genes(&kept, target, opts.n_hvg)
        .into_iter()
        .map(|j| kept.genes[j].clone())
        .collect();
    let top: Vec<String> = top_expressed(&norm, opts.n_top, &["MT-", "RPL", "RPS"])
        .into_iter()
        .map(|j| kept.genes[j].clone())
        .collect();
    let hvg_upper: std::collections::HashSet<String> =
        hvg.iter().map(|g| g.to_uppercase()).collect();
    let encoder_genes_in_hvg = enc
        .names
        .iter()
        .filter(|g| hvg_upper.contains(&g.to_uppercase()))
        .count();

    // Positions in the sample frame; smoothing works on them.
    let a = opts.affine;
    let position = |i: usize| -> [f64; 3] {
        let [x, y] = table.pixel[i];
        if let Some(m) = opts.plane {
            let p: [f64; 3] = std::array::from_fn(|r| m[r][0] * x + m[r][1] * y + m[r][2]);
            return [p[2], p[1], p[0]];
        }
        if let Some((t, s)) = &opts.section {
            let p = t.image_to_frame(*s, [x, y]);
            return [*s as f64, p[1], p[0]];
        }
        let z = table.z.as_ref().map_or(opts.z, |z| z[i]);
        [z, a[3] * x + a[4] * y + a[5], a[0] * x + a[1] * y + a[2]]
    };
    let kept_pos: Vec<[f64; 2]> = keep
        .iter()
        .map(|&i| {
            let p = position(i);
            [p[1], p[2]]
        })
        .collect();
    let normalized = dense_panel(&norm, &panel_cols);
    let smoothed = smooth_knn(&normalized, &kept_pos, opts.smooth_k);

    // Gene encoder input: the encoder genes, smoothed as the model was trained.
    let enc_input = dense_panel(&norm, &enc_cols);
    let enc_input = smooth_knn(&enc_input, &kept_pos, m.expression.smooth_k);
    let g = enc.names.len();
    let mut embeddings: Vec<Vec<f32>> = Vec::with_capacity(keep.len());
    for chunk in enc_input.chunks(opts.batch) {
        let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
        let x = Array2::from_shape_vec((chunk.len(), g), flat)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let e = network.embed(x.view().into_dyn())?;
        embeddings.extend(e.outer_iter().map(|r| r.to_vec()));
    }

    // Records.
    let diameter = table.spot_diameter_px.unwrap_or(0.0).round() as u32;
    let spots: Vec<SpotRecord> = (0..table.ids.len())
        .map(|i| SpotRecord {
            id: table.ids[i].clone(),
            pixel: table.pixel[i],
            array: table.array.as_ref().map(|a| a[i]),
            position: position(i),
            qc: qc[i],
            vector_id: None,
            counts: table.counts.row(i).map(|(g, c)| (g as u32, c)).collect(),
        })
        .collect();
    let records: Vec<PatchRecord> = keep
        .iter()
        .map(|&i| {
            let p = position(i);
            PatchRecord {
                sample: opts.sample.clone(),
                origin: [
                    p[0].round() as i64,
                    p[1].round() as i64,
                    p[2].round() as i64,
                ],
                size: [1, diameter, diameter],
                tissue_fraction: 1.0,
            }
        })
        .collect();
    let expression: Vec<ExpressionRecord> = normalized
        .into_iter()
        .zip(smoothed)
        .map(|(n, s)| ExpressionRecord {
            normalized: n,
            smoothed: s,
        })
        .collect();
    let collection = crate::catalog::collection_name(&m.name, crate::catalog::Modality::Spots);
    if store.collection(&collection).is_err() {
        let metric = Metric::Cosine;
        store.create_collection(&CollectionSpec::for_model(
            &m.name,
            "spots",
            m.embedding_dim,
            metric,
        ))?;
    }
    let set = SpotSetRecord {
        sample: opts.sample.clone(),
        format: format!("{:?}", table.format).to_lowercase(),
        files: file_names.clone(),
        fingerprint,
        model: m.name.clone(),
        collection: collection.clone(),
        genes: table.counts.genes.clone(),
        qc: opts.qc.clone(),
        qc_summary: qc_summary.clone(),
        dropped_outside_tissue: table.dropped_outside_tissue,
        normalize_total: target,
        panel,
        encoder_missing: encoder_missing.clone(),
        predicted_missing: predicted_missing.clone(),
        smooth_k: opts.smooth_k,
        encoder_smooth_k: m.expression.smooth_k,
        hvg: hvg.clone(),
        top_expressed: top,
        spots: spots.len(),
        kept: keep.len(),
        spot_diameter_px: table.spot_diameter_px,
        affine: opts.affine,
    };
    let embedded = embeddings.len();
    store.put_spots(SpotBatch {
        set,
        spots,
        expression,
        embeddings,
        records,
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(SpotReport {
        sample: opts.sample.clone(),
        format: format!("{:?}", table.format).to_lowercase(),
        files: file_names,
        model: m.name.clone(),
        collection,
        dropped_outside_tissue: table.dropped_outside_tissue,
        qc: qc_summary,
        qc_settings: opts.qc.clone(),
        genes: table.counts.n_genes(),
        encoder_genes_found: g - encoder_missing.len(),
        encoder_genes: g,
        encoder_missing,
        predicted_genes_found: m.predicted_genes.len() - predicted_missing.len(),
        predicted_genes: m.predicted_genes.len(),
        predicted_missing,
        hvg: hvg.len(),
        encoder_genes_in_hvg,
        embedded,
        already_present: false,
        seconds,
        spots_per_second: table.ids.len() as f64 / seconds.max(1e-9),
    })
}

/// Every value of a table that came with no files (arrays handed over in memory).
fn content_digest(h: &mut Sha256, t: &SpotTable) {
    let c = &t.counts;
    for id in t.ids.iter().chain(&c.genes) {
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    let mut f64s: Vec<f64> = t.pixel.iter().flatten().copied().collect();
    f64s.extend(t.array.iter().flatten().flatten());
    f64s.extend(t.z.iter().flatten());
    f64s.extend(t.spot_diameter_px);
    h.update(bytemuck::cast_slice(&f64s));
    let ptr: Vec<u64> = c.indptr.iter().map(|&p| p as u64).collect();
    h.update(bytemuck::cast_slice(&ptr));
    h.update(bytemuck::cast_slice(&c.indices));
    h.update(bytemuck::cast_slice(&c.data));
}
