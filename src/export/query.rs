//! Files of a molecular or profile query.

use std::path::Path;

use arrow_array::{Float32Array, Int64Array, StringArray, UInt64Array};
use serde_json::json;

use super::{col, write_f32_array_npy, write_json, write_parquet, write_png, write_tiff};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::limits;
use crate::query::QueryResult;
use crate::query::heatmap::overlay;
use crate::render::underlay;

/// What [`write_query`] writes.
#[derive(Debug, Clone)]
pub struct QueryExport {
    /// Patches listed under `top` in `query.json`.
    pub top: usize,
    /// Heatmap downsampling (`None`: the smallest keeping each heatmap under 64M voxels).
    pub downsample: Option<usize>,
    /// Overlay PNGs per sample (evenly spaced slices).
    pub slices: usize,
    /// Also write each heatmap as an OME-Zarr image (`heatmap_<sample>.ome.zarr`).
    pub ome_zarr: bool,
}

impl Default for QueryExport {
    fn default() -> Self {
        QueryExport {
            top: 10,
            downsample: None,
            slices: 3,
            ome_zarr: false,
        }
    }
}

impl QueryExport {
    /// Range checks (before any work).
    pub fn validate(&self) -> Result<()> {
        limits::count("top", self.top)?;
        limits::count("slices", self.slices)?;
        if let Some(d) = self.downsample {
            limits::count("downsample", d)?;
        }
        Ok(())
    }
}

/// Write `patches.parquet` (every scored patch), `triage.csv`, per sample
/// `heatmap_<sample>.npy|.tif` (and `.ome.zarr` with `opts.ome_zarr`) and overlay PNGs,
/// and `query.json` into `dir`.
pub fn write_query(
    dir: &Path,
    store: &Store,
    r: &QueryResult,
    opts: &QueryExport,
) -> Result<Vec<String>> {
    opts.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ranked = &r.ranked;
    let mut files = Vec::new();
    let pq = dir.join("patches.parquet");
    write_parquet(
        &pq,
        vec![
            col(
                "sample",
                StringArray::from_iter_values(ranked.iter().map(|p| &*p.sample)),
            ),
            col(
                "id",
                UInt64Array::from_iter_values(ranked.iter().map(|p| p.id)),
            ),
            col(
                "z",
                Int64Array::from_iter_values(ranked.iter().map(|p| p.origin[0])),
            ),
            col(
                "y",
                Int64Array::from_iter_values(ranked.iter().map(|p| p.origin[1])),
            ),
            col(
                "x",
                Int64Array::from_iter_values(ranked.iter().map(|p| p.origin[2])),
            ),
            col(
                "score",
                Float32Array::from_iter_values(ranked.iter().map(|p| p.score)),
            ),
            col(
                "percentile",
                Float32Array::from_iter_values(ranked.iter().map(|p| p.percentile)),
            ),
        ],
    )?;
    files.push(pq.display().to_string());
    let tc = dir.join("triage.csv");
    let mut t =
        String::from("sample,patches,fraction_above,max_score,mean_score,best_z,best_y,best_x\n");
    for row in &r.triage {
        t.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            row.sample,
            row.patches,
            row.fraction_above,
            row.max_score,
            row.mean_score,
            row.best_origin[0],
            row.best_origin[1],
            row.best_origin[2]
        ));
    }
    std::fs::write(&tc, t).map_err(|e| Error::io(&tc, e))?;
    files.push(tc.display().to_string());
    // Heatmaps and overlays per sample.
    for row in &r.triage {
        let Some(rec) = store.sample(&row.sample)? else {
            continue;
        };
        let h = r.heatmap_of(&rec, opts.downsample)?;
        let npy = dir.join(format!("heatmap_{}.npy", row.sample));
        write_f32_array_npy(&npy, &h.shape, &h.data)?;
        let tif = dir.join(format!("heatmap_{}.tif", row.sample));
        write_tiff(&tif, &h)?;
        files.push(npy.display().to_string());
        files.push(tif.display().to_string());
        if opts.ome_zarr {
            let z = dir.join(format!("heatmap_{}.ome.zarr", row.sample));
            let v = rec.model_voxel_um.map(|u| u * h.downsample as f64);
            super::write_ome_zarr(&z, &format!("heatmap {}", row.sample), h.shape, &h.data, v)?;
            files.push(z.display().to_string());
        }
        let (lo, hi) = (
            h.percentile(10.0).unwrap_or(0.0),
            h.percentile(90.0).unwrap_or(1.0),
        );
        let n = opts.slices.min(h.shape[0]);
        let mut under_src = crate::volume::open(Path::new(&rec.source), None).ok();
        for k in 0..n {
            let z = (2 * k + 1) * h.shape[0] / (2 * n);
            let under = under_src
                .as_mut()
                .and_then(|src| underlay(src.as_mut(), &rec, &h, z));
            let img = overlay(&h, z, lo, hi, under.as_deref());
            let model_z = z * h.downsample + h.downsample / 2;
            let png = dir.join(format!("overlay_{}_z{:04}.png", row.sample, model_z));
            write_png(&img, &png)?;
            files.push(png.display().to_string());
        }
    }
    let q = json!({"query": r.summary, "threshold": r.threshold, "triage": r.triage,
                   "top": &ranked[..opts.top.min(ranked.len())], "files": files});
    write_json(&dir.join("query.json"), &q)?;
    Ok(files)
}
