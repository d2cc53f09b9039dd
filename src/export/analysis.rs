//! Files of predictions, domains and evaluations.

use std::path::Path;

use arrow_array::{Float32Array, Int64Array, UInt64Array};
use serde_json::json;

use super::{
    col, write_f32_array_npy, write_json, write_parquet, write_png, write_tiff, write_u8_array_npy,
};
use crate::catalog::SampleRecord;
use crate::domains::Domains;
use crate::error::{Error, Result};
use crate::metrics::compare::Evaluation;
use crate::predict::Predictions;
use crate::query::heatmap::{Heatmap, auto_downsample, overlay};
use crate::render::{domain_slice, eval_markdown, pcc_chart, spot_maps, underlay};

/// Parquet of every patch: `patch_id`, `z`, `y`, `x` (model voxels), `tissue`, one
/// float32 column per predicted gene.
pub fn write_predictions_parquet(path: &Path, pred: &Predictions) -> Result<()> {
    let r = &pred.patches.records;
    let mut cols = vec![
        col("patch_id", UInt64Array::from(pred.patches.ids.clone())),
        col(
            "z",
            Int64Array::from_iter_values(r.iter().map(|p| p.origin[0])),
        ),
        col(
            "y",
            Int64Array::from_iter_values(r.iter().map(|p| p.origin[1])),
        ),
        col(
            "x",
            Int64Array::from_iter_values(r.iter().map(|p| p.origin[2])),
        ),
        col(
            "tissue",
            Float32Array::from_iter_values(r.iter().map(|p| p.tissue_fraction)),
        ),
    ];
    for (j, g) in pred.genes.iter().enumerate() {
        cols.push(col(g, Float32Array::from(pred.column(j))));
    }
    write_parquet(path, cols)
}

/// Per gene of `genes`: `<gene>.npy` and `<gene>.tif` (float32, overlap-averaged, NaN
/// outside the patches), with `ome_zarr` `<gene>.ome.zarr`, and `slices` PNG overlays
/// `<gene>_zNNNN.png` in `dir`.
pub fn write_gene_volumes(
    dir: &Path,
    pred: &Predictions,
    genes: &[String],
    downsample: Option<usize>,
    slices: usize,
    ome_zarr: bool,
) -> Result<Vec<String>> {
    let cols = pred.gene_columns(genes)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let d = match downsample {
        Some(d) => crate::limits::count("downsample", d)?,
        None => auto_downsample(pred.sample.grid.shape, 64 << 20),
    };
    let names: Vec<&str> = cols.iter().map(|&c| pred.genes[c].as_str()).collect();
    let stems = crate::names::unique_stems(&names);
    let mut files = Vec::new();
    for (&c, name) in cols.iter().zip(&stems) {
        let h = pred.gene_volume(c, d);
        let npy = dir.join(format!("{name}.npy"));
        write_f32_array_npy(&npy, &h.shape, &h.data)?;
        let tif = dir.join(format!("{name}.tif"));
        write_tiff(&tif, &h)?;
        files.push(npy.display().to_string());
        files.push(tif.display().to_string());
        if ome_zarr {
            let z = dir.join(format!("{name}.ome.zarr"));
            let v = pred.sample.model_voxel_um.map(|u| u * h.downsample as f64);
            super::write_ome_zarr(&z, &pred.genes[c], h.shape, &h.data, v)?;
            files.push(z.display().to_string());
        }
        files.extend(write_slices(dir, name, &pred.sample, &h, slices)?);
    }
    Ok(files)
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
    let mut src = crate::volume::open(Path::new(&rec.source), None).ok();
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
        write_png(&img, &png)?;
        files.push(png.display().to_string());
    }
    Ok(files)
}

/// `domains.npy` (uint8 label volume, domain + 1, 0 = no patch), with `ome_zarr`
/// `domains.ome.zarr` (the labels as an image and as its NGFF `labels/domains`),
/// `domains.csv` (patch_id, z, y, x, domain), `domains.json` and `slices` PNG slices in
/// `dir`.
pub fn write_domains(
    dir: &Path,
    dom: &Domains,
    downsample: Option<usize>,
    slices: usize,
    ome_zarr: bool,
) -> Result<Vec<String>> {
    let (pred, rec) = (&dom.predictions, &dom.record);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let d = match downsample {
        Some(d) => crate::limits::count("downsample", d)?,
        None => auto_downsample(pred.sample.grid.shape, 64 << 20),
    };
    let (vol, shape) = dom.label_volume(d);
    let mut files = Vec::new();
    let npy = dir.join("domains.npy");
    write_u8_array_npy(&npy, &shape, &vol)?;
    files.push(npy.display().to_string());
    if ome_zarr {
        let z = dir.join("domains.ome.zarr");
        let v = pred.sample.model_voxel_um.map(|u| u * d as f64);
        let s3 = [shape[0], shape[1], shape[2]];
        super::write_ome_zarr_labels(&z, "domains", s3, &vol, v)?;
        files.push(z.display().to_string());
    }
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
    let ari = dom.ari;
    let body = json!({"sample": rec.sample, "k": rec.k, "seed": rec.seed, "restarts": rec.restarts,
        "inertia": rec.inertia, "downsample": d, "shape": shape, "domains": dom.summaries,
        "ari": ari.map(|x| x.0), "ari_patches": ari.map(|x| x.1)});
    write_json(&js, &body)?;
    files.push(js.display().to_string());
    // Slices: domain colours blended (alpha 0.5) on the source image.
    let h = Heatmap {
        shape,
        downsample: d,
        data: vec![0.0; vol.len()],
    };
    let mut src = crate::volume::open(Path::new(&pred.sample.source), None).ok();
    let n = slices.min(shape[0]);
    for k in 0..n {
        let z = (2 * k + 1) * shape[0] / (2 * n);
        let under = src
            .as_mut()
            .and_then(|s| underlay(s.as_mut(), &pred.sample, &h, z));
        let img = domain_slice(&vol, shape, z, under.as_deref());
        let png = dir.join(format!("domains_z{:04}.png", z * d + d / 2));
        write_png(&img, &png)?;
        files.push(png.display().to_string());
    }
    Ok(files)
}

/// `eval.json`, `eval.md`, `pcc.png` and `map_<gene>.png` (the three best genes,
/// predicted beside measured at the spots of the first section) in `dir`.
pub fn write_eval(dir: &Path, ev: &Evaluation) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let body =
        serde_json::to_value(ev.summary()).map_err(|e| Error::bad_file(dir, e.to_string()))?;
    let r = &ev.comparison.report;
    let mut files = Vec::new();
    let js = dir.join("eval.json");
    write_json(&js, &body)?;
    files.push(js.display().to_string());
    let md = dir.join("eval.md");
    std::fs::write(&md, eval_markdown(&ev.sample, &ev.spots, &body, r, ev.ari))
        .map_err(|e| Error::io(&md, e))?;
    files.push(md.display().to_string());
    let png = dir.join("pcc.png");
    write_png(&pcc_chart(r), &png)?;
    files.push(png.display().to_string());
    for e in r.per_gene.iter().take(3) {
        let Some(j) = ev.comparison.genes.iter().position(|g| *g == e.gene) else {
            continue;
        };
        let png = dir.join(format!("map_{}.png", crate::names::file_stem(&e.gene)));
        write_png(&spot_maps(&ev.comparison, j), &png)?;
        files.push(png.display().to_string());
    }
    Ok(files)
}
