//! Streaming ingest of a 3D volume or a 2.5D stack of serial sections:
//!
//! ```text
//! reader thread: source slices -> resample to the model's voxels -> tissue mask ->
//!                patch grid -> patch extraction + normalisation -> batches
//!                (on rayon workers when inference runs on a GPU; on the CPU, ONNX
//!                Runtime already occupies every core)
//! inference thread: batches -> ONNX Runtime (image_3d) -> embeddings
//! writer (caller's thread): one durable redb transaction per batch, with the grid
//!                position reached, so a re-run resumes after the last durable batch
//! ```
//!
//! Memory is bounded by the patch depth (a window of model-resolution slices), a few
//! source slices and two batches in flight per channel, never by the volume size.

mod hest;
mod options;
mod sources;
pub mod spots;
mod vectors;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use hest::{HestReport, HestSample, ingest_hest};
pub use options::{Encoder, IngestOptions, IngestReport, Progress, peak_rss_bytes};
pub use sources::{
    Sections, default_polarity, ingest_image, ingest_image_source, ingest_section_stack,
    ingest_sections, open_sample_images, open_volume_for, read_sample_image, resolve_model,
};
pub use spots::{SpotOptions, SpotReport, ingest_spots};
pub use vectors::{
    ImportAck, ImportOptions, ImportReport, VectorSearch, import_array, import_vectors,
    search_array, search_vectors,
};

use crate::catalog::{IngestStatus, SampleImages, SampleRecord};
use crate::engine::{CollectionSpec, ImportMark, ImportProgress, NewVector, PatchRecord, Store};
use crate::error::{Error, Result};
use crate::index::Metric;
use crate::model::Model;
use crate::volume::VolumeSource;
use crate::volume::grid::{
    Grid, OTSU_BINS, Resampled, box_count, histogram_add, mask_integral, otsu,
};

pub(crate) fn file_fingerprint(h: &mut Sha256, files: &[PathBuf]) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
        let len = file.metadata().map_err(|e| Error::io(f, e))?.len();
        h.update(len.to_le_bytes());
        let mut buf = vec![0u8; (len.min(1 << 16)) as usize];
        file.read_exact(&mut buf).map_err(|e| Error::io(f, e))?;
        h.update(&buf);
        file.seek(SeekFrom::Start(len - buf.len() as u64))
            .map_err(|e| Error::io(f, e))?;
        file.read_exact(&mut buf).map_err(|e| Error::io(f, e))?;
        h.update(&buf);
    }
    Ok(())
}

struct Batch {
    input: Vec<f32>,
    records: Vec<PatchRecord>,
    rows_done: u64,
}

struct Embedded {
    vectors: ndarray::Array2<f32>,
    /// Predictor output per patch (predicted genes, then hidden), when the model has one.
    predicted: Option<ndarray::Array2<f32>>,
    records: Vec<PatchRecord>,
    rows_done: u64,
}

/// Ingest `source` into `store` as sample `opts.sample` with `model` (registered in
/// the store). Resumes an interrupted ingest of the same source and settings; refuses
/// a sample id already used for other data. `on_progress` runs after every durable
/// batch; returning `ControlFlow::Break(())` stops the ingest there with
/// [`Error::Interrupted`] (what was written is complete; the same call resumes).
pub fn ingest_volume(
    store: &Store,
    model: &Model,
    source: Box<dyn VolumeSource + '_>,
    opts: &IngestOptions,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    ingest_located(store, model, source, opts, None, on_progress)
}

/// [`ingest_volume`] of a source read from image files, with where they are (`images`,
/// keyed by `opts.sample`) recorded in the sample record's own transactions.
pub(crate) fn ingest_located(
    store: &Store,
    model: &Model,
    source: Box<dyn VolumeSource + '_>,
    opts: &IngestOptions,
    images: Option<SampleImages>,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<IngestReport> {
    let images = images.map(|i| SampleImages {
        sample: opts.sample.clone(),
        ..i
    });
    let t0 = Instant::now();
    let m = &model.manifest;
    let p = opts.encoder.patch(m)?;
    let source: Box<dyn VolumeSource + '_> = match &opts.stain_reference {
        Some(r) => Box::new(crate::stain::StainNormalized::new(source, r)?),
        None => source,
    };
    if opts.batch == 0 {
        return Err(Error::arg("batch", "must be at least 1"));
    }
    if !(0.0..=1.0).contains(&opts.min_tissue) {
        return Err(Error::arg("min_tissue", "must be in [0, 1]"));
    }
    crate::names::valid_id(&opts.sample, "sample")?;
    crate::limits::threads_arg("threads", opts.run.threads)?;
    crate::limits::count("batch", opts.batch)?;
    if !(0.0..1.0).contains(&opts.overlap) {
        return Err(Error::arg(
            "overlap",
            format!("{} must be in [0, 1)", opts.overlap),
        ));
    }
    // The options that set each axis's voxel size, named in errors as the user gave them.
    let names = match opts.kind {
        crate::catalog::SampleKind::Sections => ["spacing_um", "um_per_px", "um_per_px"],
        crate::catalog::SampleKind::Image => ["um_per_px"; 3],
        _ => ["um_per_voxel"; 3],
    };
    if let Some(v) = opts.voxel_um {
        for (x, name) in v.into_iter().zip(names) {
            crate::limits::um_arg(name, x)?;
        }
    }
    // Open the encoder before writing anything: a model or runtime problem must not
    // leave a sample behind.
    let net = model.network(opts.encoder.network(), &opts.run)?;
    // With a predictor, every 3D patch's predicted expression and hidden representation
    // are stored beside its embedding (for `predict` and `domains`).
    let predictor = if opts.encoder == Encoder::Image3d && m.networks.contains_key("predictor") {
        if !m.network("image_3d")?.outputs.contains_key("tokens") {
            return Err(Error::bad_file(
                "manifest.json",
                format!(
                    "model '{}' has a predictor but its image_3d network lists no 'tokens' output to feed it",
                    m.name
                ),
            ));
        }
        Some(model.network("predictor", &opts.run)?)
    } else {
        None
    };
    let target = [p.slice_um(), p.um_per_px, p.um_per_px];
    // The caller's voxel size, else the file's (OME-Zarr), else the model's.
    // A voxel size the user gives is the full-resolution one: scale it to the level read.
    let f = source.level_factor();
    let voxel = opts
        .voxel_um
        .map(|v| [v[0] * f[0], v[1] * f[1], v[2] * f[2]])
        .or(source.voxel_um())
        .unwrap_or(target);
    let info = source.info().clone();
    let mut vol = Resampled::new(source, voxel, target, p.channels, names)?;
    let shape = vol.shape();
    let grid = Grid::new(
        shape,
        [p.depth, p.size_px[0], p.size_px[1]],
        opts.overlap,
        &info.source,
    )?;
    // Fingerprint: source content samples + everything that shapes the grid.
    let mut h = Sha256::new();
    file_fingerprint(&mut h, &info.files)?;
    if let Some(c) = &info.content {
        h.update(c.as_bytes());
    }
    // The sample id is part of it: the same file ingested as another sample is new
    // data, not a resume (import progress is keyed by this fingerprint).
    let settings = serde_json::json!({
        "sample": opts.sample, "intensity_range": info.intensity_range,
        "kind": opts.kind.name(), "shape": info.shape, "dtype": info.dtype, "voxel": voxel,
        "overlap": opts.overlap, "min_tissue": opts.min_tissue, "polarity": opts.polarity,
        "model": m.name, "files": model.manifest.networks.values().flat_map(|n| n.files()).map(|f| f.1).collect::<Vec<_>>(),
        "encoder": opts.encoder.network(),
    });
    h.update(crate::codec::canonical_json(&settings).as_bytes());
    let fingerprint: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let kind = opts.encoder.collection_kind();
    let collection = crate::catalog::collection_name(&m.name, opts.encoder.modality());
    match store.collection(&collection) {
        Ok(c) => Store::same_quantization(&c, opts.quantization)?,
        Err(_) => {
            store.create_collection(
                &CollectionSpec::for_model(&m.name, kind, m.embedding_dim, Metric::Cosine)
                    .with_quantization(opts.quantization.unwrap_or_default()),
            )?;
        }
    }
    let existing = store.sample(&opts.sample)?;
    let (threshold, mut patches_total) = match &existing {
        Some(s) if s.fingerprint != fingerprint => {
            return Err(Error::arg(
                "sample",
                format!(
                    "sample '{}' already holds other data or settings (source {}, model {}); \
                     choose another sample id",
                    s.id, s.source, s.model
                ),
            ));
        }
        Some(s) if s.ingest_status() == IngestStatus::Complete => (s.threshold, s.patches),
        Some(s) => (s.threshold, store.count_sample_patches(&collection, &s.id)?),
        None => {
            // Otsu threshold from up to 32 evenly spaced slices.
            let mut hist = vec![0u64; OTSU_BINS];
            let n = shape[0];
            let picks: Vec<usize> = (0..n.min(32)).map(|i| i * n / n.min(32)).collect();
            for z in picks {
                let s = vol.slice(z)?;
                histogram_add(&mut hist, &s, p.channels, 3);
            }
            (otsu(&hist), 0)
        }
    };
    let mut record = SampleRecord {
        id: opts.sample.clone(),
        kind: opts.kind.name().into(),
        source: info.source.clone(),
        fingerprint: fingerprint.clone(),
        model: m.name.clone(),
        collection: collection.clone(),
        source_shape: info.shape,
        voxel_um: voxel,
        model_voxel_um: target,
        grid: grid.clone(),
        threshold,
        polarity: opts.polarity,
        min_tissue: opts.min_tissue,
        status: IngestStatus::Ingesting.name().into(),
        patches: patches_total,
    };
    let resumed_from = store
        .import_progress(&collection, &fingerprint)?
        .map(|p| p.rows_done)
        .unwrap_or(0);
    let nothing = |threshold: f32| Error::NothingSelected {
        stage: "tissue",
        message: format!(
            "no patch of sample '{}' passed the tissue mask (threshold {threshold}, \
             --min-tissue {}) among {} grid positions: nothing was stored; check --tissue, \
             --min-tissue and --intensity-range",
            opts.sample,
            opts.min_tissue,
            grid.len()
        ),
    };
    if existing.as_ref().map(|s| s.ingest_status()) == Some(IngestStatus::Empty) {
        return Err(nothing(threshold));
    }
    if existing.as_ref().map(|s| s.ingest_status()) == Some(IngestStatus::Complete) {
        return Ok(IngestReport {
            sample: opts.sample.clone(),
            collection,
            model: m.name.clone(),
            source_shape: info.shape,
            model_shape: shape,
            grid_positions: grid.len(),
            resumed_from,
            patches_new: 0,
            patches_total,
            threshold,
            seconds: t0.elapsed().as_secs_f64(),
            inference_seconds: 0.0,
            patches_per_second: 0.0,
            peak_rss_bytes: peak_rss_bytes(),
        });
    }
    if existing.is_none() {
        store.put_sample_with_images(&record, images.as_ref())?;
    }

    let total = grid.len();
    let (tx_b, rx_b) = sync_channel::<Batch>(2);
    let (tx_e, rx_e) = sync_channel::<Embedded>(2);
    let mut patches_new = 0u64;
    let mut inference_s = 0f64;
    let result: Result<()> = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            produce(
                &mut vol,
                &grid,
                p,
                opts,
                threshold,
                resumed_from,
                &opts.sample,
                tx_b,
            )
        });
        let infer = scope.spawn(|| infer(p, opts.encoder, net, predictor, rx_b, tx_e));
        let write = write_batches(
            store,
            &collection,
            &fingerprint,
            total,
            rx_e,
            &mut patches_new,
            patches_total,
            on_progress,
        );
        let p = producer
            .join()
            .unwrap_or_else(|_| Err(Error::Inference("patch reader panicked".into())));
        let i = infer
            .join()
            .unwrap_or_else(|_| Err(Error::Inference("inference thread panicked".into())));
        if let Ok(s) = &i {
            inference_s = *s;
        }
        // The first real error wins; a closed channel is only a consequence.
        write.and(p).and(i.map(|_| ()))
    });
    result.map_err(|e| match e {
        Error::Interrupted { done, total, .. } => Error::Interrupted {
            what: format!("ingest of sample '{}'", opts.sample),
            done,
            total,
        },
        other => other,
    })?;
    patches_total += patches_new;
    // Final marker (the tail of the grid may be background) and completion.
    store.insert(
        &collection,
        &[],
        Some(ImportMark {
            source: &fingerprint,
            progress: ImportProgress {
                rows_done: total,
                rows_total: total,
            },
        }),
    )?;
    let done = if patches_total == 0 {
        IngestStatus::Empty
    } else {
        IngestStatus::Complete
    };
    record.status = done.name().into();
    record.patches = patches_total;
    // With the images again: a resumed ingest records where its files are now.
    store.put_sample_with_images(&record, images.as_ref())?;
    if done == IngestStatus::Empty {
        return Err(nothing(threshold));
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(IngestReport {
        sample: opts.sample.clone(),
        collection,
        model: m.name.clone(),
        source_shape: info.shape,
        model_shape: shape,
        grid_positions: total,
        resumed_from,
        patches_new,
        patches_total,
        threshold,
        seconds: secs,
        inference_seconds: inference_s,
        patches_per_second: patches_new as f64 / secs.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// A model-resolution slice and, for every (y, x) position of the patch grid, how many
/// tissue pixels of this slice the patch there covers (row-major over grid.y x grid.x).
/// Keeping the counts instead of the slice's summed-area table saves 4 bytes per pixel
/// per window slice: with 2048 x 2048 slices, 256 MiB of a 16-slice window.
type MaskedSlice = (Arc<Vec<f32>>, Vec<u32>);

struct Window {
    z0: usize,
    slices: VecDeque<MaskedSlice>,
}

#[allow(clippy::too_many_arguments)]
fn produce(
    vol: &mut Resampled<'_>,
    grid: &Grid,
    p: &crate::model::PatchSpec,
    opts: &IngestOptions,
    threshold: f32,
    start: u64,
    sample: &str,
    tx: SyncSender<Batch>,
) -> Result<()> {
    let [nz, ny, nx] = vol.shape();
    let _ = nz;
    let (d, ph, pw, c) = (p.depth, p.size_px[0], p.size_px[1], p.channels);
    let per = d * c * ph * pw;
    let vox = (d * ph * pw) as f32;
    let mut win = Window {
        z0: 0,
        slices: VecDeque::new(),
    };
    let mut pending: Vec<(u64, [usize; 3], f32)> = Vec::new();
    let layer = grid.per_layer();
    // On CPU, ONNX Runtime already uses every core: cutting patches on the rayon pool
    // beside it only contends (measured: BENCHMARKS.md). With a GPU doing inference the
    // CPU work is the bottleneck, so it runs in parallel.
    let parallel = !matches!(opts.run.device, crate::model::Device::Cpu);
    let send =
        |pending: &mut Vec<(u64, [usize; 3], f32)>, win: &Window, tx: &SyncSender<Batch>| -> bool {
            if pending.is_empty() {
                return true;
            }
            let mut input = vec![0f32; pending.len() * per];
            let cut = |(dst, &(_, [_, y, x], _)): (&mut [f32], &(u64, [usize; 3], f32))| {
                for (dz, (s, _)) in win.slices.iter().enumerate().take(d) {
                    for ch in 0..c {
                        let (mean, std) = (p.mean[ch], p.std[ch]);
                        let plane = &s[ch * ny * nx..(ch + 1) * ny * nx];
                        for r in 0..ph {
                            let src = &plane[(y + r) * nx + x..(y + r) * nx + x + pw];
                            let o = ((dz * c + ch) * ph + r) * pw;
                            for (k, v) in src.iter().enumerate() {
                                dst[o + k] = (v - mean) / std;
                            }
                        }
                    }
                }
            };
            if parallel {
                input
                    .par_chunks_mut(per)
                    .zip(pending.par_iter())
                    .for_each(cut);
            } else {
                input.chunks_mut(per).zip(pending.iter()).for_each(cut);
            }
            let records = pending
                .iter()
                .map(|&(_, o, t)| PatchRecord {
                    sample: sample.to_string(),
                    origin: [o[0] as i64, o[1] as i64, o[2] as i64],
                    size: [d as u32, ph as u32, pw as u32],
                    tissue_fraction: t,
                })
                .collect();
            let rows_done = pending.last().map(|x| x.0 + 1).unwrap_or(0);
            pending.clear();
            tx.send(Batch {
                input,
                records,
                rows_done,
            })
            .is_ok()
        };
    for (iz, &z0) in grid.z.iter().enumerate() {
        let first = iz as u64 * layer;
        if first + layer <= start {
            continue;
        }
        // Batches never span layers: every patch of a batch reads the same window.
        // Slide the window to [z0, z0 + d).
        while win.z0 < z0 && !win.slices.is_empty() {
            win.slices.pop_front();
            win.z0 += 1;
        }
        if win.slices.is_empty() {
            win.z0 = z0;
        }
        while win.slices.len() < d {
            let z = win.z0 + win.slices.len();
            let s = vol.slice(z)?;
            let sat = mask_integral(&s, c, ny, nx, threshold, opts.polarity);
            let counts = grid
                .y
                .iter()
                .flat_map(|&y| grid.x.iter().map(move |&x| (y, x)))
                .map(|(y, x)| box_count(&sat, nx, y, x, ph, pw))
                .collect();
            drop(sat);
            win.slices.push_back((Arc::new(s), counts));
        }
        let cands: Vec<(u64, [usize; 3], f32)> = (0..grid.y.len())
            .flat_map(|iy| (0..grid.x.len()).map(move |ix| (iy, ix)))
            .map(|(iy, ix)| {
                let cell = iy * grid.x.len() + ix;
                (cell, first + cell as u64, [z0, grid.y[iy], grid.x[ix]])
            })
            .filter(|(_, ord, _)| *ord >= start)
            .map(|(cell, ord, o)| {
                let t: u32 = win.slices.iter().map(|(_, counts)| counts[cell]).sum();
                (ord, o, t as f32 / vox)
            })
            .filter(|&(_, _, t)| t >= opts.min_tissue)
            .collect();
        for cand in cands {
            pending.push(cand);
            if pending.len() == opts.batch && !send(&mut pending, &win, &tx) {
                return Ok(());
            }
        }
        if !send(&mut pending, &win, &tx) {
            return Ok(());
        }
    }
    Ok(())
}

fn infer(
    p: &crate::model::PatchSpec,
    encoder: Encoder,
    mut net: crate::model::Network,
    mut predictor: Option<crate::model::Network>,
    rx: Receiver<Batch>,
    tx: SyncSender<Embedded>,
) -> Result<f64> {
    let mut secs = 0f64;
    for b in rx {
        let n = b.records.len();
        // image_3d takes (B, D, C, H, W); image_2d (B, C, H, W), the same bytes at depth 1.
        let dims: Vec<usize> = match encoder {
            Encoder::Image3d => vec![n, p.depth, p.channels, p.size_px[0], p.size_px[1]],
            Encoder::Image2d => vec![n, p.channels, p.size_px[0], p.size_px[1]],
        };
        let arr = ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&dims), &b.input)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let t = Instant::now();
        let (vectors, predicted) = match predictor.as_mut() {
            None => (net.embed(arr)?, None),
            Some(pred) => {
                let mut outs = net.run(arr)?;
                let take = |outs: &mut Vec<(String, ndarray::ArrayD<f32>)>, k: &str| {
                    outs.iter()
                        .position(|(n, _)| n == k)
                        .map(|i| outs.swap_remove(i).1)
                        .ok_or_else(|| Error::Inference(format!("image_3d: no output '{k}'")))
                };
                let emb = take(&mut outs, "embedding")?
                    .into_dimensionality::<ndarray::Ix2>()
                    .map_err(|e| Error::Inference(format!("image_3d embedding: {e}")))?;
                let tokens = take(&mut outs, "tokens")?;
                let mut pouts = pred.run(tokens.view())?;
                let expr = take(&mut pouts, "expression")?;
                let hidden = take(&mut pouts, "hidden")?;
                let joined = ndarray::concatenate(
                    ndarray::Axis(1),
                    &[
                        expr.view()
                            .into_shape_with_order((n, expr.len() / n.max(1)))
                            .map_err(|e| Error::Inference(e.to_string()))?,
                        hidden
                            .view()
                            .into_shape_with_order((n, hidden.len() / n.max(1)))
                            .map_err(|e| Error::Inference(e.to_string()))?,
                    ],
                )
                .map_err(|e| Error::Inference(format!("predictor outputs: {e}")))?;
                (
                    emb.as_standard_layout().into_owned(),
                    Some(joined.as_standard_layout().into_owned()),
                )
            }
        };
        secs += t.elapsed().as_secs_f64();
        if tx
            .send(Embedded {
                vectors,
                predicted,
                records: b.records,
                rows_done: b.rows_done,
            })
            .is_err()
        {
            break;
        }
    }
    Ok(secs)
}

#[allow(clippy::too_many_arguments)]
fn write_batches(
    store: &Store,
    collection: &str,
    fingerprint: &str,
    total: u64,
    rx: Receiver<Embedded>,
    patches_new: &mut u64,
    before: u64,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<()> {
    for e in rx {
        let rows: Vec<&[f32]> = e
            .vectors
            .rows()
            .into_iter()
            .map(|r| r.to_slice().expect("standard layout"))
            .collect();
        let batch: Vec<NewVector> = rows
            .iter()
            .zip(e.records)
            .map(|(v, r)| NewVector {
                vector: v,
                record: Some(r),
            })
            .collect();
        let predicted: Vec<&[f32]> = match &e.predicted {
            Some(p) => p
                .rows()
                .into_iter()
                .map(|r| r.to_slice().expect("standard layout"))
                .collect(),
            None => Vec::new(),
        };
        store.insert_predicted(
            collection,
            &batch,
            &predicted,
            Some(ImportMark {
                source: fingerprint,
                progress: ImportProgress {
                    rows_done: e.rows_done,
                    rows_total: total,
                },
            }),
        )?;
        *patches_new += batch.len() as u64;
        let flow = on_progress(Progress {
            positions_done: e.rows_done,
            positions_total: total,
            patches_stored: before + *patches_new,
        });
        if flow.is_break() {
            return Err(Error::Interrupted {
                what: format!("ingest into '{collection}'"),
                done: e.rows_done,
                total,
            });
        }
    }
    Ok(())
}
