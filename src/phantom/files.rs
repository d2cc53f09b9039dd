//! Writing the phantom: the output directory, the NPY volumes, the PNG planes, the
//! Parquet spot tables and `phantom.json`.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, UInt32Array};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::spots::{Spot, spot_axis};
use super::{
    COMPARTMENTS, FORMAT, IMMUNE_RADIUS, IMMUNE_WEIGHT, LIBRARY_LOG_SD, LIBRARY_MEAN, NB_SHAPE,
    ObliqueTruth, PITCH, PROGRAMS, Phantom, PhantomFiles, PhantomSummary, SECTION_UM, SPOT_DIAM,
    SPOT_DIAMETER_UM, SPOT_PITCH_UM, VOXEL_UM, gene_names,
};
use crate::error::{Error, Result};
use crate::vecio;

pub(super) fn prepare_dir(dir: &Path, overwrite: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::bad_file(dir, "exists and is not a directory"));
        }
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.next().is_some() && !overwrite {
            return Err(Error::OutputExists {
                path: dir.to_path_buf(),
                message: "output directory exists and is not empty".into(),
                can_overwrite: true,
            });
        }
    }
    for d in [dir.to_path_buf(), dir.join("planes"), dir.join("truth")] {
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    Ok(())
}

fn other(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

fn write_png(path: &Path, rgb: &[u8], ny: usize, nx: usize) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), nx as u32, ny as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header().map_err(|e| other(path, e))?;
    w.write_image_data(rgb).map_err(|e| other(path, e))?;
    w.finish().map_err(|e| other(path, e))
}

fn write_parquet(path: &Path, columns: Vec<(String, ArrayRef)>) -> Result<()> {
    let batch = RecordBatch::try_from_iter(columns).map_err(|e| other(path, e))?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| other(path, e))?;
    w.write(&batch).map_err(|e| other(path, e))?;
    w.close().map_err(|e| other(path, e))?;
    Ok(())
}

/// The wide spot table's columns: spot, plane_z, z, y, x, row, col, then one count
/// column per gene (`z` is the plane's for axis-aligned planes, 0 for oblique sections).
fn spot_columns(s: &[Spot], genes: &[String], plane_z: bool) -> Vec<(String, ArrayRef)> {
    let z = |s: &Spot| if plane_z { s.plane_z as f64 } else { 0.0 };
    let mut cols: Vec<(String, ArrayRef)> = vec![
        (
            "spot".into(),
            Arc::new(StringArray::from_iter_values(s.iter().map(|s| &s.name))),
        ),
        (
            "plane_z".into(),
            Arc::new(Int32Array::from_iter_values(
                s.iter().map(|s| s.plane_z as i32),
            )),
        ),
        (
            "z".into(),
            Arc::new(Float64Array::from_iter_values(s.iter().map(z))),
        ),
        (
            "y".into(),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.y))),
        ),
        (
            "x".into(),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.x))),
        ),
        (
            "row".into(),
            Arc::new(Int32Array::from_iter_values(s.iter().map(|s| s.row as i32))),
        ),
        (
            "col".into(),
            Arc::new(Int32Array::from_iter_values(s.iter().map(|s| s.col as i32))),
        ),
    ];
    for (g, name) in genes.iter().enumerate() {
        cols.push((
            name.clone(),
            Arc::new(UInt32Array::from_iter_values(s.iter().map(|s| s.counts[g]))),
        ));
    }
    cols
}

/// `phantom.json`, fields in this order.
#[derive(Serialize)]
struct Meta<'a> {
    format: &'a str,
    seed: u64,
    shape: [usize; 3],
    voxel_um: [f64; 3],
    dtype: &'a str,
    compartments: [&'a str; 5],
    plane_step: usize,
    planes_z: &'a [usize],
    spot: serde_json::Value,
    n_spots: usize,
    genes: &'a [String],
    programs: Programs<'a>,
    expression: serde_json::Value,
    tissue_fraction: f64,
    compartment_fractions: [f64; 4],
    files: serde_json::Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    oblique: Vec<ObliqueTruth>,
}

/// Gene programs in [`PROGRAMS`] order.
#[derive(Serialize)]
struct Programs<'a> {
    gland: &'a [f64],
    tumour: &'a [f64],
    stroma: &'a [f64],
    fat: &'a [f64],
    immune: &'a [f64],
}

fn oblique_file(i: usize, what: &str, ext: &str) -> String {
    format!("oblique/{what}_{i:02}.{ext}")
}

fn plane_file(z: usize) -> String {
    format!("planes/plane_{z:03}.png")
}

pub(super) fn write(ph: &Phantom, dir: &Path) -> Result<PhantomSummary> {
    let p = &ph.params;
    let [_, ny, nx] = p.shape;
    let genes = gene_names();

    // Stale planes of an earlier run (with --force) would contradict phantom.json.
    let planes_dir = dir.join("planes");
    let keep: Vec<String> = ph
        .planes
        .iter()
        .map(|(z, _)| format!("plane_{z:03}.png"))
        .collect();
    for e in std::fs::read_dir(&planes_dir).map_err(|e| Error::io(&planes_dir, e))? {
        let e = e.map_err(|e| Error::io(&planes_dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("plane_") && name.ends_with(".png") && !keep.contains(&name) {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }

    // Oblique sections of an earlier run (with --force) would contradict phantom.json.
    let oblique_dir = dir.join("oblique");
    if oblique_dir.is_dir() {
        std::fs::remove_dir_all(&oblique_dir).map_err(|e| Error::io(&oblique_dir, e))?;
    }
    if !ph.oblique.is_empty() {
        std::fs::create_dir_all(&oblique_dir).map_err(|e| Error::io(&oblique_dir, e))?;
    }
    let files = PhantomFiles {
        volume: dir.join("volume.npy"),
        labels: dir.join("labels.npy"),
        planes: ph
            .planes
            .iter()
            .map(|(z, _)| dir.join(plane_file(*z)))
            .collect(),
        spots: dir.join("spots.parquet"),
        truth: dir.join("truth/spots_truth.parquet"),
        meta: dir.join("phantom.json"),
    };
    vecio::write_u8_npy(&files.volume, &p.shape, &ph.volume)?;
    vecio::write_u8_npy(&files.labels, &p.shape, &ph.labels)?;
    ph.planes
        .par_iter()
        .zip(&files.planes)
        .try_for_each(|((_, rgb), path)| write_png(path, rgb, ny, nx))?;

    let s = &ph.spots;
    write_parquet(&files.spots, spot_columns(s, &genes, true))?;
    let mut oblique = Vec::new();
    for (i, o) in ph.oblique.iter().enumerate() {
        let (image, spots) = (
            oblique_file(i, "section", "png"),
            oblique_file(i, "spots", "parquet"),
        );
        write_png(&dir.join(&image), &o.rgb, o.side, o.side)?;
        write_parquet(&dir.join(&spots), spot_columns(&o.spots, &genes, false))?;
        oblique.push(ObliqueTruth {
            image,
            spots,
            plane: o.plane,
            matrix: o.plane.matrix(),
            depth_um: o.plane.depth_um(),
            tilt_total_deg: o.plane.tilt_total_deg(),
        });
    }

    let mut cols: Vec<(String, ArrayRef)> = vec![(
        "spot".into(),
        Arc::new(StringArray::from_iter_values(s.iter().map(|s| &s.name))),
    )];
    for (k, name) in PROGRAMS[..4].iter().enumerate() {
        cols.push((
            format!("frac_{name}"),
            Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.frac[k]))),
        ));
    }
    cols.push((
        "immune".into(),
        Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.immune))),
    ));
    for (g, name) in genes.iter().enumerate() {
        cols.push((
            format!("expected_{name}"),
            Arc::new(Float64Array::from_iter_values(
                s.iter().map(|s| s.expected[g]),
            )),
        ));
    }
    write_parquet(&files.truth, cols)?;

    let tissue: u64 = ph.label_counts[1..].iter().sum();
    let total: u64 = ph.label_counts.iter().sum();
    let compartment_fractions: [f64; 4] =
        std::array::from_fn(|k| ph.label_counts[k + 1] as f64 / tissue.max(1) as f64);
    let planes_z: Vec<usize> = ph.planes.iter().map(|(z, _)| *z).collect();
    let pr = &ph.programs;
    let meta = Meta {
        format: FORMAT,
        seed: p.seed,
        shape: p.shape,
        voxel_um: [VOXEL_UM; 3],
        dtype: "uint8",
        compartments: COMPARTMENTS,
        plane_step: p.plane_step,
        planes_z: &planes_z,
        spot: json!({
            "pitch_um": SPOT_PITCH_UM, "diameter_um": SPOT_DIAMETER_UM, "section_um": SECTION_UM,
            "pitch_vox": PITCH, "diameter_vox": SPOT_DIAM,
            "section_slices": "plane_z-2 ..= plane_z+1", "min_tissue_fraction": 0.5,
            "rows": spot_axis(ny).len(), "cols": spot_axis(nx).len(),
        }),
        n_spots: s.len(),
        genes: &genes,
        programs: Programs {
            gland: &pr[0],
            tumour: &pr[1],
            stroma: &pr[2],
            fat: &pr[3],
            immune: &pr[4],
        },
        expression: json!({
            "library_mean": LIBRARY_MEAN, "library_log_sd": LIBRARY_LOG_SD,
            "nb_shape": NB_SHAPE, "immune_weight": IMMUNE_WEIGHT,
            "immune_blur_radius_vox": IMMUNE_RADIUS,
            "expected": "log1p(1e4 * sum_k w_k p_k), w = (fractions, immune_weight * immune) / sum",
        }),
        tissue_fraction: tissue as f64 / total.max(1) as f64,
        compartment_fractions,
        files: json!({
            "volume": "volume.npy", "labels": "labels.npy",
            "planes": ph.planes.iter().map(|(z, _)| plane_file(*z)).collect::<Vec<_>>(),
            "spots": "spots.parquet", "truth": "truth/spots_truth.parquet",
        }),
        oblique,
    };
    let text = serde_json::to_string_pretty(&meta).expect("json") + "\n";
    std::fs::write(&files.meta, text).map_err(|e| Error::io(&files.meta, e))?;

    Ok(PhantomSummary {
        out_dir: dir.to_path_buf(),
        seed: p.seed,
        shape: p.shape,
        planes_z,
        n_spots: s.len(),
        genes,
        tissue_fraction: tissue as f64 / total.max(1) as f64,
        compartment_fractions,
        files,
        seconds: 0.0,
    })
}
