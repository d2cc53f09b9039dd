//! `--make-corpus`: the generated seeds of `tests/fuzz/corpus/` (small, valid files of
//! every layout each reader accepts). Regression seeds (`regress-*`) are kept as they
//! are; the Visium seeds are the test fixtures of `tests/fixtures/`.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeListBuilder, Float32Builder, Float64Builder, LargeListBuilder, ListBuilder,
};
use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use vortexdb::{HnswParams, Metric, VectorIndex};

use crate::image_seeds;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Write every generated seed under `root/<target>/`.
pub fn make_all(root: &Path) -> Res {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    let mut put = |target: &str, name: &str, bytes: &[u8]| -> Res {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        n += 1;
        Ok(())
    };
    for (name, b) in npy_vector_seeds() {
        put("npy_vectors", &name, &b)?;
    }
    for (name, b) in npy_volume_seeds() {
        put("npy_volume", &name, &b)?;
    }
    for (name, b) in image_seeds::tiff_seeds()? {
        put("tiff_volume", &name, &b)?;
    }
    for (name, b) in image_seeds::image_seeds()? {
        put("image", &name, &b)?;
    }
    for (name, b) in her2st_seeds()? {
        put("her2st_tsv", &name, &b)?;
    }
    let fx = manifest_dir.join("tests/fixtures");
    let mtx = fx.join("visium_mtx/filtered_feature_bc_matrix");
    for f in ["matrix.mtx", "barcodes.tsv", "features.tsv"] {
        let gz = std::fs::read(mtx.join(format!("{f}.gz")))?;
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain)?;
        put("visium_mtx", &format!("seed.{f}"), &plain)?;
        put("visium_mtx", &format!("seed.{f}.gz"), &gz)?;
    }
    for f in ["tissue_positions.csv", "scalefactors_json.json"] {
        let b = std::fs::read(fx.join("visium_mtx/spatial").join(f))?;
        put("visium_mtx", &format!("seed.{f}"), &b)?;
    }
    let h5 = std::fs::read(fx.join("visium_h5/filtered_feature_bc_matrix.h5"))?;
    put("visium_h5", "seed.h5", &h5)?;
    let pos = std::fs::read(fx.join("visium_h5/spatial/tissue_positions_list.csv"))?;
    put("visium_h5", "seed.tissue_positions_list.csv", &pos)?;
    for (name, b) in parquet_spot_seeds()? {
        put("parquet_spots", &name, &b)?;
    }
    for (name, b) in parquet_vector_seeds()? {
        put("parquet_vectors", &name, &b)?;
    }
    for (name, b) in manifest_seeds(manifest_dir)? {
        put("manifest", &name, &b)?;
    }
    for (name, b) in transforms_seeds()? {
        put("transforms", &name, &b)?;
    }
    for (name, b) in snapshot_seeds()? {
        put("snapshot", &name, &b)?;
    }
    for (name, b) in store_seeds()? {
        put("damaged_store", &name, &b)?;
    }
    println!("wrote {n} seed files under {}", root.display());
    Ok(())
}

/// An NPY file (format 1.0 or 2.0) with the given header fields and payload.
pub fn npy(descr: &str, shape: &[usize], version: u8, payload: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pre = if version == 1 { 10 } else { 12 };
    let pad = (64 - (pre + h.len() + 1) % 64) % 64;
    h.push_str(&" ".repeat(pad));
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((h.len() as u16).to_le_bytes());
    } else {
        out.extend((h.len() as u32).to_le_bytes());
    }
    out.extend(h.as_bytes());
    out.extend(payload);
    out
}

fn f32s(n: usize, be: bool) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let v = (i % 17) as f32 / 16.0;
            if be { v.to_be_bytes() } else { v.to_le_bytes() }
        })
        .collect()
}

fn npy_vector_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "seed-5x4.npy".into(),
            npy("<f4", &[5, 4], 1, &f32s(20, false)),
        ),
        (
            "seed-v2-3x8.npy".into(),
            npy("<f4", &[3, 8], 2, &f32s(24, false)),
        ),
        (
            "seed-nd-2x3x4.npy".into(),
            npy("<f4", &[2, 3, 4], 1, &f32s(24, false)),
        ),
        ("seed-1d.npy".into(), npy("<f4", &[6], 1, &f32s(6, false))),
        ("seed-f8.npy".into(), npy("<f8", &[2, 2], 1, &[0u8; 32])),
    ]
}

fn npy_volume_seeds() -> Vec<(String, Vec<u8>)> {
    let ramp = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7) as u8).collect() };
    let u16s = |n: usize, be: bool| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let v = (i * 997) as u16;
                if be { v.to_be_bytes() } else { v.to_le_bytes() }
            })
            .collect()
    };
    vec![
        ("seed-u8.npy".into(), npy("|u1", &[4, 8, 8], 1, &ramp(256))),
        (
            "seed-u16.npy".into(),
            npy("<u2", &[3, 6, 5], 1, &u16s(90, false)),
        ),
        (
            "seed-u16be.npy".into(),
            npy(">u2", &[2, 4, 4], 1, &u16s(32, true)),
        ),
        (
            "seed-f32.npy".into(),
            npy("<f4", &[3, 4, 4], 1, &f32s(48, false)),
        ),
        (
            "seed-f32be.npy".into(),
            npy(">f4", &[2, 3, 3], 2, &f32s(18, true)),
        ),
        (
            "seed-rgb.npy".into(),
            npy("|u1", &[2, 6, 6, 3], 1, &ramp(216)),
        ),
        (
            "seed-c1.npy".into(),
            npy("|u1", &[2, 4, 4, 1], 1, &ramp(32)),
        ),
    ]
}

fn gzip(b: &[u8]) -> Res<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b)?;
    Ok(e.finish()?)
}

/// A synthetic her2st section in the published layout (counts: a blank first header
/// cell, spot ids `XxY`, one column per gene; selection: array and pixel positions).
fn her2st_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let genes = [
        "FO538757.1",
        "SAMD11",
        "NOC2L",
        "MT-CO1",
        "ERBB2",
        "GATA3",
        "MYC",
        "ESR1",
    ];
    let spots = [(10, 16), (10, 17), (11, 16), (11, 17), (12, 18), (13, 18)];
    let mut counts = format!("\t{}\n", genes.join("\t"));
    for (k, (x, y)) in spots.iter().enumerate() {
        let row: Vec<String> = (0..genes.len())
            .map(|g| ((k * 3 + g * 5) % 7).to_string())
            .collect();
        counts.push_str(&format!("{x}x{y}\t{}\n", row.join("\t")));
    }
    let mut sel = String::from("x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected\n");
    for (k, (x, y)) in spots.iter().chain([(30, 30)].iter()).enumerate() {
        let px = *x as f64 * 291.2 + 13.5;
        let py = *y as f64 * 290.7 - 4.25;
        let selected = if k == 4 { 0 } else { 1 };
        sel.push_str(&format!(
            "{x}\t{y}\t{:.3}\t{:.3}\t{px:.2}\t{py:.2}\t{selected}\n",
            *x as f64 + 0.05,
            *y as f64 - 0.03
        ));
    }
    Ok(vec![
        ("seed.counts.tsv".into(), counts.clone().into_bytes()),
        ("seed.counts.tsv.gz".into(), gzip(counts.as_bytes())?),
        ("seed.selection.tsv".into(), sel.into_bytes()),
    ])
}

fn parquet_bytes(batch: RecordBatch) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)?;
        w.write(&batch)?;
        w.close()?;
    }
    Ok(out)
}

fn parquet_spot_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let ids = ["s0", "s1", "s2", "s3", "s4"];
    let col = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let wide = RecordBatch::try_from_iter([
        (
            "spot",
            Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
        ),
        ("x", col(vec![10.0, 20.0, 30.0, 40.0, 50.0])),
        ("y", col(vec![5.0, 5.0, 15.0, 15.0, 25.0])),
        (
            "z",
            Arc::new(Int64Array::from(vec![0, 0, 1, 1, 2])) as ArrayRef,
        ),
        (
            "row",
            Arc::new(Int64Array::from(vec![0, 0, 1, 1, 2])) as ArrayRef,
        ),
        (
            "col",
            Arc::new(Int64Array::from(vec![0, 1, 0, 1, 0])) as ArrayRef,
        ),
        (
            "GENE_A",
            Arc::new(Int64Array::from(vec![1, 0, 3, 0, 5])) as ArrayRef,
        ),
        ("GENE_B", col(vec![0.0, 2.0, 0.0, 4.0, 1.0])),
        (
            "GENE_C",
            Arc::new(Int32Array::from(vec![7, 7, 0, 0, 1])) as ArrayRef,
        ),
        (
            "MT-ND1",
            Arc::new(Int64Array::from(vec![0, 1, 0, 1, 0])) as ArrayRef,
        ),
    ])?;
    let long = RecordBatch::try_from_iter([
        (
            "spot",
            Arc::new(StringArray::from(vec!["a", "a", "b", "c", "c", "c"])) as ArrayRef,
        ),
        (
            "gene",
            Arc::new(StringArray::from(vec!["G1", "G2", "G1", "G1", "G2", "G3"])) as ArrayRef,
        ),
        (
            "count",
            Arc::new(Int64Array::from(vec![3, 1, 4, 1, 5, 9])) as ArrayRef,
        ),
        ("x", col(vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0])),
        ("y", col(vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0])),
    ])?;
    Ok(vec![
        ("seed-wide.parquet".into(), parquet_bytes(wide)?),
        ("seed-long.parquet".into(), parquet_bytes(long)?),
    ])
}

fn parquet_vector_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let rows = 6;
    let mut list = ListBuilder::new(Float32Builder::new());
    for r in 0..rows {
        for k in 0..4 {
            list.values().append_value((r * 4 + k) as f32 * 0.25);
        }
        list.append(true);
    }
    let ints = |v: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
    let with_meta = RecordBatch::try_from_iter([
        ("vector", Arc::new(list.finish()) as ArrayRef),
        (
            "sample",
            Arc::new(StringArray::from(vec!["a", "a", "b", "b", "c", "c"])) as ArrayRef,
        ),
        ("z", ints(vec![0, 0, 1, 1, 2, 2])),
        ("y", ints(vec![0, 8, 0, 8, 0, 8])),
        ("x", ints(vec![0, 0, 8, 8, 16, 16])),
    ])?;
    let mut fixed = FixedSizeListBuilder::new(Float64Builder::new(), 3);
    for r in 0..5 {
        for k in 0..3 {
            fixed.values().append_value((r * 3 + k) as f64);
        }
        fixed.append(true);
    }
    let fixed = RecordBatch::try_from_iter([("vector", Arc::new(fixed.finish()) as ArrayRef)])?;
    let mut large = LargeListBuilder::new(Float32Builder::new());
    for r in 0..3 {
        for k in 0..2 {
            large.values().append_value((r + k) as f32);
        }
        large.append(true);
    }
    let large = RecordBatch::try_from_iter([("vector", Arc::new(large.finish()) as ArrayRef)])?;
    Ok(vec![
        ("seed-list.parquet".into(), parquet_bytes(with_meta)?),
        ("seed-fixed.parquet".into(), parquet_bytes(fixed)?),
        ("seed-large.parquet".into(), parquet_bytes(large)?),
    ])
}

/// The network file every manifest seed lists (not ONNX: only its checksum is read).
pub const DUMMY_NETWORK: &[u8] = b"not really an ONNX graph\n";

fn manifest_seeds(manifest_dir: &Path) -> Res<Vec<(String, Vec<u8>)>> {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(DUMMY_NETWORK)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let m = serde_json::json!({
        "format": "vortexdb-model/1",
        "name": "fuzz-model",
        "embedding_dim": 8,
        "normalized": true,
        "patch": {"size_px": [16, 16], "depth": 4, "um_per_px": 4.0, "z_um": 8.0,
                  "channels": 1, "mean": [0.5], "std": [0.25]},
        "patch_2d": {"size_px": [16, 16], "depth": 1, "um_per_px": 1.0, "channels": 3,
                     "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
        "encoder_genes": {"names": ["G1", "G2", "G3"], "bins": 5},
        "predicted_genes": ["G1", "G2"],
        "expression": {"normalize_total": 10000.0, "log1p": true, "smooth_k": 3},
        "networks": {"image_3d": {"file": "image_3d.onnx", "sha256": sha,
                                  "inputs": {"patches": "B,D,C,H,W"},
                                  "outputs": {"embedding": "B,E"}}}
    });
    let default = std::fs::read(manifest_dir.join("models/default/manifest.json"))?;
    Ok(vec![
        ("seed.manifest.json".into(), serde_json::to_vec_pretty(&m)?),
        ("seed.image_3d.onnx".into(), DUMMY_NETWORK.to_vec()),
        ("default.manifest.json".into(), default),
    ])
}

fn transforms_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let t2 = serde_json::json!({"frame": [20, 24],
        "sections": [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.94, -0.34, 4.0, 0.34, 0.94, -2.5]]});
    let t1 = serde_json::json!({"frame": [16, 16], "sections": [[2.0, 0.0, -3.0, 0.0, 0.5, 1.0]]});
    let rgb: Vec<u8> = (0..24 * 20 * 3).map(|i| (i * 7 % 256) as u8).collect();
    Ok(vec![
        ("seed.transforms.json".into(), serde_json::to_vec(&t2)?),
        (
            "one.transforms.json".into(),
            serde_json::to_vec_pretty(&t1)?,
        ),
        (
            "seed.section.png".into(),
            image_seeds::png_bytes(
                24,
                20,
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                &rgb,
                None,
            )?,
        ),
    ])
}

/// A small store: a raw collection of 60 tagged 4-d vectors in two batches, one
/// deleted; its database and packed vector file.
fn store_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    let st = vortexdb::Store::create(&db)?;
    st.create_collection(&vortexdb::CollectionSpec::raw("v", 4, Metric::Cosine))?;
    let rows: Vec<Vec<f32>> = (0..60)
        .map(|i| {
            (0..4)
                .map(|k| 1.0 + ((i * 7 + k * 3) % 11) as f32)
                .collect()
        })
        .collect();
    for (b, chunk) in rows.chunks(30).enumerate() {
        let recs: Vec<vortexdb::PatchRecord> = (0..chunk.len())
            .map(|i| vortexdb::PatchRecord {
                sample: format!("s{b}"),
                origin: [0, i as i64, 0],
                size: [1, 1, 1],
                tissue_fraction: 1.0,
            })
            .collect();
        let batch: Vec<vortexdb::NewVector> = chunk
            .iter()
            .zip(&recs)
            .map(|(v, r)| vortexdb::NewVector {
                vector: v,
                record: Some(r.clone()),
            })
            .collect();
        st.insert("v", &batch, None)?;
    }
    st.delete("v", &[7])?;
    drop(st);
    Ok(vec![
        (
            "seed.vortex.redb".into(),
            std::fs::read(db.join("vortex.redb"))?,
        ),
        (
            "seed.c0-e0.vec".into(),
            std::fs::read(db.join("vectors").join("c0-e0.vec"))?,
        ),
    ])
}

fn snapshot_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (name, n, dim) in [
        ("seed-40x4.vxh", 40u64, 4usize),
        ("seed-1x3.vxh", 1, 3),
        ("seed-empty.vxh", 0, 2),
    ] {
        let mut ix = VectorIndex::new(dim, Metric::L2, HnswParams::default(), 64);
        let items: Vec<(u64, Vec<f32>)> = (0..n)
            .map(|i| {
                (
                    i * 3,
                    (0..dim)
                        .map(|k| ((i as usize * 7 + k * 3) % 11) as f32)
                        .collect(),
                )
            })
            .collect();
        ix.insert(&items);
        let dir = tempfile::tempdir()?;
        ix.save(dir.path())?;
        out.push((
            name.to_string(),
            std::fs::read(dir.path().join("graph.vxh"))?,
        ));
    }
    Ok(out)
}
