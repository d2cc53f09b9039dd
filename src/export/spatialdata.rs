//! A sample as a SpatialData Zarr store (the on-disk format `spatialdata.read_zarr`
//! reads: container 0.2 on Zarr v3, rasters 0.3 on NGFF 0.5, points 0.2, tables 0.2),
//! every element in one `global` coordinate system in micrometres:
//! - images: `volume` (the source resampled to the export grid, gray or RGB, uint8),
//!   `heatmap` (a query's similarity) and `predicted` (one channel per chosen gene),
//! - labels: `domains` (the stored k-means domains, domain + 1, 0 = no patch),
//! - points: `patches` (patch centres) and `spots` (the sample's spots),
//! - tables: `predictions` (AnnData: every patch x predicted gene, annotating
//!   `patches`) and `spots` (kept spots x panel, normalised, annotating `spots`).
//!
//! The store is written beside its destination and renamed into place, so a failure
//! leaves no half-written store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
use serde::Serialize;
use serde_json::{Value, json};
use zarrs::array::data_type;
use zarrs::filesystem::FilesystemStore;

use super::anndata_zarr::{Column, Table, Writer};
use super::ome_zarr::{Raster, nan_mean, write_levels, zerr};
use super::{col, write_parquet};
use crate::engine::Store;
use crate::error::{Error, Result};
use crate::predict::Predictions;
use crate::query::QueryResult;
use crate::query::heatmap::auto_downsample;

/// What [`write_spatialdata`] puts beside the patches, predictions, domains and spots.
#[derive(Debug, Clone, Default)]
pub struct SpatialDataOptions<'a> {
    /// Genes whose predicted volumes form the `predicted` image (one channel each).
    pub genes: Vec<String>,
    /// A query whose heatmap of the sample becomes the `heatmap` image.
    pub query: Option<&'a QueryResult>,
    /// Model voxels per image voxel (`None`: the smallest keeping an image under 64M
    /// voxels per channel).
    pub downsample: Option<usize>,
}

/// What [`write_spatialdata`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SpatialDataExport {
    /// The sample.
    pub sample: String,
    /// The store written.
    pub out: PathBuf,
    /// Image elements.
    pub images: Vec<String>,
    /// Label elements.
    pub labels: Vec<String>,
    /// Points elements.
    pub points: Vec<String>,
    /// Table elements.
    pub tables: Vec<String>,
    /// Elements left out, each with the reason.
    pub skipped: Vec<String>,
    /// Model voxels per image voxel.
    pub downsample: usize,
}

impl std::fmt::Display for SpatialDataExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote SpatialData of '{}' to {}: images [{}], labels [{}], points [{}], tables [{}]",
            self.sample,
            self.out.display(),
            self.images.join(", "),
            self.labels.join(", "),
            self.points.join(", "),
            self.tables.join(", ")
        )?;
        for s in &self.skipped {
            write!(f, "\n  skipped {s}")?;
        }
        Ok(())
    }
}

const MICRON: &str = "micrometer";

fn space_axes(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|a| match *a {
            "c" => json!({"name": "c", "type": "channel"}),
            a => json!({"name": a, "type": "space", "unit": MICRON}),
        })
        .collect()
}

/// The transformation from an element's own axes to `global` (micrometres).
fn to_global(names: &[&str], scale: Option<Vec<f64>>) -> Value {
    let system = |n: &str| json!({"name": n, "axes": space_axes(names)});
    let mut t = match scale {
        Some(s) => json!({"type": "scale", "scale": s}),
        None => json!({"type": "identity"}),
    };
    t["input"] = system(&names.concat());
    t["output"] = system("global");
    t
}

/// NGFF 0.5 multiscales (SpatialData's flavour) of levels with voxel sizes `voxels`.
fn multiscales(name: &str, voxels: &[[f64; 3]], channels: bool) -> Value {
    let names: &[&str] = if channels {
        &["c", "z", "y", "x"]
    } else {
        &["z", "y", "x"]
    };
    let v0 = voxels[0];
    let datasets: Vec<Value> = voxels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut s: Vec<f64> = (0..3).map(|a| v[a] / v0[a]).collect();
            if channels {
                s.insert(0, 1.0);
            }
            json!({"path": i.to_string(), "coordinateTransformations": [{"type": "scale", "scale": s}]})
        })
        .collect();
    let mut scale = v0.to_vec();
    if channels {
        scale.insert(0, 1.0);
    }
    json!([{"name": name, "axes": space_axes(names), "datasets": datasets,
            "coordinateTransformations": [to_global(names, Some(scale))]}])
}

fn raster_attrs(ome: Value) -> Value {
    let mut ome = ome;
    ome["version"] = json!("0.5-dev-spatialdata");
    json!({"ome": ome, "spatialdata_attrs": {"version": "0.3"}})
}

/// The destination: absent, or a SpatialData store (which is replaced); anything else
/// is refused, never deleted.
fn check_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let ours = std::fs::read_to_string(out.join("zarr.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v["attributes"]["spatialdata_attrs"].is_object());
    if ours {
        return Ok(());
    }
    Err(Error::OutputExists {
        path: out.to_path_buf(),
        message: "exists and is not a SpatialData store; remove it or choose another --out".into(),
        can_overwrite: false,
    })
}

/// Write the sample of `pred` as a SpatialData Zarr store at `out` (see the module
/// documentation for its elements). A stored domain clustering of the sample becomes
/// `domains`; its spots (a spot set of the same id) become `spots`; the source volume
/// is read again for `volume` and skipped, with the reason, when it cannot be.
pub fn write_spatialdata(
    out: &Path,
    store: &Store,
    pred: &Predictions,
    opts: &SpatialDataOptions<'_>,
) -> Result<SpatialDataExport> {
    let rec = &pred.sample;
    let cols = pred.gene_columns(&opts.genes)?;
    let d = match opts.downsample {
        Some(d) => crate::limits::count("downsample", d)?,
        None => auto_downsample(rec.grid.shape, 64 << 20),
    };
    // The largest buffers: the predicted image (every gene at once) and the volume.
    let grid: Vec<u64> = rec
        .grid
        .shape
        .iter()
        .map(|&n| n.div_ceil(d) as u64)
        .collect();
    let what = "the predicted-genes image (choose fewer --genes or a larger --downsample)";
    let at = out.display().to_string();
    crate::limits::alloc_bytes(
        &at,
        &[&[cols.len().max(1) as u64][..], &grid].concat(),
        4,
        what,
    )?;
    crate::limits::alloc_bytes(&at, &[&[3u64][..], &grid].concat(), 1, "the volume image")?;
    check_out(out)?;
    let name = out
        .file_name()
        .ok_or_else(|| Error::arg("out", format!("{} names no directory", out.display())))?;
    let tmp = out.with_file_name(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut report = SpatialDataExport {
        sample: rec.id.clone(),
        out: out.to_path_buf(),
        images: vec![],
        labels: vec![],
        points: vec![],
        tables: vec![],
        skipped: vec![],
        downsample: d,
    };
    let written = write_all(&tmp, store, pred, opts, &cols, d, &mut report);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(report)
}

fn write_all(
    dir: &Path,
    store: &Store,
    pred: &Predictions,
    opts: &SpatialDataOptions<'_>,
    cols: &[usize],
    d: usize,
    report: &mut SpatialDataExport,
) -> Result<()> {
    let rec = &pred.sample;
    let fs = Arc::new(FilesystemStore::new(dir).map_err(|e| zerr(dir, e))?);
    let w = Writer {
        path: dir,
        store: fs.clone(),
    };
    let version = format!("vortexdb {}", env!("CARGO_PKG_VERSION"));
    w.group(
        "/",
        json!({"spatialdata_attrs": {"version": "0.2", "spatialdata_software_version": version}}),
    )?;
    for g in ["images", "labels", "points", "tables"] {
        w.group(&format!("/{g}"), json!({}))?;
    }
    let voxel = rec.model_voxel_um.map(|v| v * d as f64);
    let image = |name: &str, data: &[f32], channels: usize, shape, labels: Vec<String>| {
        let r = Raster {
            data,
            channels: Some(channels),
            shape,
            voxel_um: voxel,
        };
        let at = format!("/images/{name}");
        let v = write_levels(dir, &fs, &at, &r, data_type::float32(), f32::NAN, nan_mean)?;
        let channels: Vec<Value> = labels.iter().map(|l| json!({"label": l})).collect();
        w.group(
            &at,
            raster_attrs(json!({"multiscales": multiscales(name, &v, true),
                                "omero": {"channels": channels}})),
        )
    };

    // The source, resampled to the export grid.
    match source_volume(rec, d) {
        Ok((data, channels, shape)) => {
            let r = Raster {
                data: &data,
                channels: Some(channels),
                shape,
                voxel_um: voxel,
            };
            let v = write_levels(dir, &fs, "/images/volume", &r, data_type::uint8(), 0, |b| {
                b[0]
            })?;
            let labels: &[&str] = if channels == 3 {
                &["r", "g", "b"]
            } else {
                &["gray"]
            };
            let ch: Vec<Value> = labels.iter().map(|l| json!({"label": l})).collect();
            w.group(
                "/images/volume",
                raster_attrs(json!({"multiscales": multiscales("volume", &v, true),
                                    "omero": {"channels": ch}})),
            )?;
            report.images.push("volume".into());
        }
        Err(why) => report.skipped.push(format!("image volume: {why}")),
    }
    if let Some(q) = opts.query {
        let h = q.heatmap_of(rec, Some(d))?;
        let label = match &q.gene_query {
            Some(g) => g.genes.join("+"),
            None => "query".into(),
        };
        image("heatmap", &h.data, 1, h.shape, vec![label])?;
        report.images.push("heatmap".into());
    }
    if !cols.is_empty() {
        let mut data = Vec::new();
        let mut shape = [0; 3];
        for &c in cols {
            let h = pred.gene_volume(c, d);
            shape = h.shape;
            data.extend(h.data);
        }
        let names = cols.iter().map(|&c| pred.genes[c].clone()).collect();
        image("predicted", &data, cols.len(), shape, names)?;
        report.images.push("predicted".into());
    }

    // Domains, when the sample has a stored clustering of these patches.
    let domains = store
        .domains(&rec.id)?
        .filter(|r| r.ids == pred.patches.ids);
    if let Some(dr) = &domains {
        let (lab, shape) = crate::domains::label_volume(pred, &dr.labels, dr.k, d);
        let r = Raster {
            data: &lab,
            channels: None,
            shape,
            voxel_um: voxel,
        };
        let v = write_levels(
            dir,
            &fs,
            "/labels/domains",
            &r,
            data_type::uint8(),
            0,
            |b| b[0],
        )?;
        let colors: Vec<Value> = (1..=dr.k.min(255))
            .map(|l| {
                let [r, g, b] = crate::render::PALETTE[(l - 1) % crate::render::PALETTE.len()];
                json!({"label-value": l, "rgba": [r, g, b, 255]})
            })
            .collect();
        w.group(
            "/labels/domains",
            raster_attrs(json!({"multiscales": multiscales("domains", &v, false),
                                "image-label": {"version": "0.5", "colors": colors}})),
        )?;
        w.group("/labels", json!({"ome": {"labels": ["domains"]}}))?;
        report.labels.push("domains".into());
    } else {
        report
            .skipped
            .push("labels domains: no stored domains of these patches (run `domains`)".into());
    }

    // Patch centres and the predictions table.
    let um = rec.model_voxel_um;
    let centres: Vec<[f64; 3]> = pred
        .patches
        .records
        .iter()
        .map(|p| {
            let c = |a: usize| (p.origin[a] as f64 + p.size[a] as f64 / 2.0) * um[a];
            [c(2), c(1), c(0)]
        })
        .collect();
    let ids: Vec<i64> = pred.patches.ids.iter().map(|&i| i as i64).collect();
    let domain: Option<Vec<i64>> = domains
        .as_ref()
        .map(|r| r.labels.iter().map(|&l| l as i64 + 1).collect());
    let mut pcols = xyz_cols(&centres);
    pcols.push(col("patch_id", Int64Array::from(ids.clone())));
    let tissue: Vec<f64> = pred
        .patches
        .records
        .iter()
        .map(|p| p.tissue_fraction as f64)
        .collect();
    pcols.push(col("tissue", Float64Array::from(tissue.clone())));
    if let Some(dm) = &domain {
        pcols.push(col("domain", Int64Array::from(dm.clone())));
    }
    points(&w, dir, "patches", "patch_id", pcols)?;
    report.points.push("patches".into());
    let mut obs = vec![
        region("patches", ids.len()),
        ("patch_id".to_string(), Column::I64(ids.clone())),
        ("tissue".to_string(), Column::F64(tissue)),
    ];
    for (a, n) in ["z", "y", "x"].iter().enumerate() {
        let o = pred.patches.records.iter().map(|p| p.origin[a]).collect();
        obs.push((format!("origin_{n}"), Column::I64(o)));
    }
    if let Some(dm) = domain {
        obs.push(("domain".to_string(), Column::I64(dm)));
    }
    w.table(
        "/tables/predictions",
        &Table {
            obs_names: ids.iter().map(|i| i.to_string()).collect(),
            obs,
            var_names: pred.genes.clone(),
            x: pred.expression.clone(),
            obsm: vec![("spatial".into(), centres.concat(), 3)],
            attrs: annotation("patches", "patch_id"),
            uns: vec![spatialdata_attrs("patches", "patch_id")],
        },
    )?;
    report.tables.push("predictions".into());

    // The sample's spots, when it has a spot set.
    match store.spot_set(&rec.id)? {
        Some(set) => {
            spots(&w, dir, store, rec, &set)?;
            report.points.push("spots".into());
            report.tables.push("spot_expression".into());
        }
        None => report
            .skipped
            .push(format!("points spots: no spot set '{}'", rec.id)),
    }
    Ok(())
}

fn region(name: &str, n: usize) -> (String, Column) {
    (
        "region".to_string(),
        Column::Categorical(vec![name.to_string()], vec![0; n]),
    )
}

/// The table group's attributes naming the element it annotates.
fn annotation(region: &str, instance: &str) -> Value {
    json!({"spatialdata-encoding-type": "ngff:regions_table", "region": region,
           "region_key": "region", "instance_key": instance, "version": "0.2"})
}

fn spatialdata_attrs(region: &str, instance: &str) -> (String, Vec<(String, String)>) {
    (
        "spatialdata_attrs".into(),
        vec![
            ("region".into(), region.into()),
            ("region_key".into(), "region".into()),
            ("instance_key".into(), instance.into()),
        ],
    )
}

fn xyz_cols(p: &[[f64; 3]]) -> Vec<(String, arrow_array::ArrayRef)> {
    (0..3)
        .map(|a| {
            let v: Vec<f64> = p.iter().map(|c| c[a]).collect();
            col(["x", "y", "z"][a], Float64Array::from(v))
        })
        .collect()
}

/// A points element: `points.parquet/part.0.parquet` and its group.
fn points(
    w: &Writer<'_>,
    dir: &Path,
    name: &str,
    instance: &str,
    cols: Vec<(String, arrow_array::ArrayRef)>,
) -> Result<()> {
    let at = format!("/points/{name}");
    write_parquet(
        &dir.join("points")
            .join(name)
            .join("points.parquet")
            .join("part.0.parquet"),
        cols,
    )?;
    w.group(
        &at,
        json!({"encoding-type": "ngff:points", "axes": ["x", "y", "z"],
               "coordinateTransformations": [to_global(&["x", "y", "z"], None)],
               "spatialdata_attrs": {"version": "0.2", "instance_key": instance}}),
    )
}

/// The spots as points (centres in micrometres) and their measured expression table.
fn spots(
    w: &Writer<'_>,
    dir: &Path,
    store: &Store,
    rec: &crate::catalog::SampleRecord,
    set: &crate::catalog::SpotSetRecord,
) -> Result<()> {
    let all = store.spots(&rec.id)?;
    let vu = rec.voxel_um;
    let pos: Vec<[f64; 3]> = all
        .iter()
        .map(|(s, _)| {
            let p = s.position;
            [p[2] * vu[2], p[1] * vu[1], p[0] * vu[0]]
        })
        .collect();
    let idx: Vec<i64> = (0..all.len() as i64).collect();
    let mut cols = xyz_cols(&pos);
    cols.push(col("spot_index", Int64Array::from(idx)));
    let names: Vec<String> = all.iter().map(|(s, _)| s.id.clone()).collect();
    cols.push(col("spot", StringArray::from(names)));
    let kept: Vec<bool> = all.iter().map(|(s, _)| s.qc.kept).collect();
    cols.push(col("kept", BooleanArray::from(kept)));
    let total: Vec<f64> = all.iter().map(|(s, _)| s.qc.total_counts).collect();
    cols.push(col("total_counts", Float64Array::from(total)));
    points(w, dir, "spots", "spot_index", cols)?;
    let (mut rows, mut x, mut xy, mut n_genes, mut tc) = (vec![], vec![], vec![], vec![], vec![]);
    let mut names = vec![];
    for (i, (s, e)) in all.iter().enumerate() {
        if let Some(e) = e {
            rows.push(i as i64);
            names.push(s.id.clone());
            x.extend_from_slice(&e.normalized);
            xy.extend_from_slice(&pos[i]);
            n_genes.push(s.qc.n_genes as i64);
            tc.push(s.qc.total_counts);
        }
    }
    let n = rows.len();
    w.table(
        "/tables/spot_expression",
        &Table {
            obs_names: names,
            obs: vec![
                region("spots", n),
                ("spot_index".into(), Column::I64(rows)),
                ("n_genes".into(), Column::I64(n_genes)),
                ("total_counts".into(), Column::F64(tc)),
                ("kept".into(), Column::Bool(vec![true; n])),
            ],
            var_names: set.panel.clone(),
            x,
            obsm: vec![("spatial".into(), xy, 3)],
            attrs: annotation("spots", "spot_index"),
            uns: vec![spatialdata_attrs("spots", "spot_index")],
        },
    )
}

/// The source volume resampled (nearest) onto the export grid: uint8, channel-major,
/// with its channel count (1 or 3) and shape; an error text when it cannot be read.
fn source_volume(
    rec: &crate::catalog::SampleRecord,
    d: usize,
) -> std::result::Result<(Vec<u8>, usize, [usize; 3]), String> {
    let mut src = crate::volume::open(Path::new(&rec.source), None)
        .map_err(|e| format!("source {} cannot be read ({e})", rec.source))?;
    let info = src.info().clone();
    if info.shape != rec.source_shape {
        return Err(format!(
            "source {} is {:?} now, {:?} when ingested",
            rec.source, info.shape, rec.source_shape
        ));
    }
    let shape = rec.grid.shape.map(|n| n.div_ceil(d));
    let channels = if info.channels == 3 { 3 } else { 1 };
    let page = shape[1] * shape[2];
    let mut out = vec![0u8; channels * shape[0] * page];
    let h = crate::query::heatmap::Heatmap {
        shape,
        downsample: d,
        data: vec![],
    };
    for z in 0..shape[0] {
        let u = crate::render::underlay(src.as_mut(), rec, &h, z)
            .ok_or_else(|| format!("slice {z} of {} cannot be read", rec.source))?;
        for c in 0..channels {
            for i in 0..page {
                out[(c * shape[0] + z) * page + i] = (u[c * page + i] * 255.0).round() as u8;
            }
        }
    }
    Ok((out, channels, shape))
}
