//! OME-Zarr volumes: NGFF 0.4 on Zarr v2 (written here by hand: `.zgroup`, `.zattrs`,
//! `.zarray` and raw chunks, as the spec lays them out) and NGFF 0.5 on Zarr v3
//! (written with `zarrs`, gzip chunks) read back slice by slice as written, the level
//! chosen by voxel size, the phantom ingested from OME-Zarr storing exactly what its
//! NPY stores, and bad images refused with the file named and nothing written.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{expect_ok, expect_user_error, new_model_store, phantom, s};
use serde_json::json;
use vortexdb::{LevelChoice, Store, VolumeSource, ZarrVolume};

/// A (z, y, x) uint8 image and its pyramid: level i halves y and x i times.
struct Pyramid {
    levels: Vec<(Vec<u8>, [usize; 3], [f64; 3])>,
}

fn pyramid(base: Vec<u8>, shape: [usize; 3], voxel: [f64; 3], n: usize) -> Pyramid {
    let mut levels = vec![(base, shape, voxel)];
    for _ in 1..n {
        let (prev, [z, y, x], [vz, vy, vx]) = levels.last().unwrap().clone();
        let (y2, x2) = (y / 2, x / 2);
        let mut next = vec![0u8; z * y2 * x2];
        for k in 0..z {
            for j in 0..y2 {
                for i in 0..x2 {
                    let at =
                        |dj: usize, di: usize| prev[(k * y + 2 * j + dj) * x + 2 * i + di] as u32;
                    next[(k * y2 + j) * x2 + i] =
                        ((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4) as u8;
                }
            }
        }
        levels.push((next, [z, y2, x2], [vz, vy * 2.0, vx * 2.0]));
    }
    Pyramid { levels }
}

fn multiscales(p: &Pyramid, version: &str) -> serde_json::Value {
    let axes: Vec<_> = ["z", "y", "x"]
        .iter()
        .map(|a| json!({"name": a, "type": "space", "unit": "micrometer"}))
        .collect();
    let datasets: Vec<_> = p
        .levels
        .iter()
        .enumerate()
        .map(|(i, (_, _, v))| {
            json!({"path": i.to_string(),
                   "coordinateTransformations": [{"type": "scale", "scale": v}]})
        })
        .collect();
    json!([{"version": version, "name": "test", "axes": axes, "datasets": datasets}])
}

/// NGFF 0.4 on Zarr v2 with uncompressed chunks of `chunk` (edge chunks padded).
fn write_v2(dir: &Path, p: &Pyramid, chunk: [usize; 3]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    let attrs = json!({"multiscales": multiscales(p, "0.4")});
    std::fs::write(dir.join(".zattrs"), attrs.to_string()).unwrap();
    for (l, (data, shape, _)) in p.levels.iter().enumerate() {
        let ld = dir.join(l.to_string());
        std::fs::create_dir_all(&ld).unwrap();
        let meta = json!({"zarr_format": 2, "shape": shape, "chunks": chunk, "dtype": "|u1",
                          "compressor": null, "fill_value": 0, "order": "C", "filters": null});
        std::fs::write(ld.join(".zarray"), meta.to_string()).unwrap();
        let n: Vec<usize> = (0..3).map(|a| shape[a].div_ceil(chunk[a])).collect();
        let mut keys = Vec::new();
        for a in 0..n[0] {
            for b in 0..n[1] {
                for c in 0..n[2] {
                    keys.push((a, b, c));
                }
            }
        }
        for (cz, cy, cx) in keys {
            let mut bytes = vec![0u8; chunk[0] * chunk[1] * chunk[2]];
            for k in 0..chunk[0] {
                for j in 0..chunk[1] {
                    for i in 0..chunk[2] {
                        let (z, y, x) = (cz * chunk[0] + k, cy * chunk[1] + j, cx * chunk[2] + i);
                        if z < shape[0] && y < shape[1] && x < shape[2] {
                            bytes[(k * chunk[1] + j) * chunk[2] + i] =
                                data[(z * shape[1] + y) * shape[2] + x];
                        }
                    }
                }
            }
            std::fs::write(ld.join(format!("{cz}.{cy}.{cx}")), bytes).unwrap();
        }
    }
    dir.to_path_buf()
}

/// NGFF 0.5 on Zarr v3, gzip chunks, written by `zarrs`.
fn write_v3(dir: &Path, p: &Pyramid, chunk: [u64; 3]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let store = Arc::new(zarrs::filesystem::FilesystemStore::new(dir).unwrap());
    let attrs = json!({"ome": {"version": "0.5", "multiscales": multiscales(p, "0.5")}});
    zarrs::group::GroupBuilder::new()
        .attributes(attrs.as_object().unwrap().clone())
        .build(store.clone(), "/")
        .unwrap()
        .store_metadata()
        .unwrap();
    for (l, (data, shape, _)) in p.levels.iter().enumerate() {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let a = zarrs::array::ArrayBuilder::new(
            shape,
            chunk.to_vec(),
            zarrs::array::data_type::uint8(),
            0u8,
        )
        .bytes_to_bytes_codecs(vec![Arc::new(
            zarrs::array::codec::GzipCodec::new(5).unwrap(),
        )])
        .build(store.clone(), &format!("/{l}"))
        .unwrap();
        a.store_metadata().unwrap();
        a.store_array_subset(&a.subset_all(), data.as_slice())
            .unwrap();
    }
    dir.to_path_buf()
}

fn test_image() -> Pyramid {
    let shape = [13, 40, 36];
    let data: Vec<u8> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    pyramid(data, shape, [4.0, 2.0, 2.0], 3)
}

#[test]
fn v2_and_v3_images_read_back_as_written_at_the_chosen_level() {
    let dir = tempfile::tempdir().unwrap();
    let p = test_image();
    let v2 = write_v2(&dir.path().join("v2.zarr"), &p, [5, 16, 16]);
    let v3 = write_v3(&dir.path().join("v3.ome.zarr"), &p, [4, 32, 32]);
    for path in [&v2, &v3] {
        for level in 0..3 {
            let mut v = ZarrVolume::open(path, LevelChoice::Index(level), None).unwrap();
            let (data, shape, voxel) = &p.levels[level];
            assert_eq!(v.info().shape, *shape, "{path:?} level {level}");
            assert_eq!(v.info().channels, 1);
            assert_eq!(v.voxel_um(), Some(*voxel));
            let plane = shape[1] * shape[2];
            // Out of order too: a slab is reloaded when needed.
            for z in (0..shape[0]).rev().chain(0..shape[0]) {
                let sl = v.read_slice(z).unwrap();
                let want: Vec<f32> = data[z * plane..(z + 1) * plane]
                    .iter()
                    .map(|&b| b as f32 / 255.0)
                    .collect();
                assert_eq!(sl.data, want, "{path:?} level {level} slice {z}");
            }
            assert!(v.read_slice(shape[0]).is_err());
        }
        // Nearest voxel size (log distance summed over the axes).
        for (want, level) in [
            ([4.0, 2.0, 2.0], 0),
            ([4.0, 4.0, 4.0], 1),
            ([4.0, 7.0, 7.0], 2),
        ] {
            let v = ZarrVolume::open(path, LevelChoice::Nearest(want), None).unwrap();
            assert_eq!(v.level(), level, "{path:?} nearest {want:?}");
            assert_eq!(v.levels().len(), 3);
        }
        assert!(ZarrVolume::open(path, LevelChoice::Index(3), None).is_err());
    }
}

/// Every stored (origin -> vector) of a sample.
fn stored(db: &Path, sample: &str) -> Vec<([i64; 3], Vec<f32>)> {
    common::stored_patches(db, "vortex-tiny-phantom:3d", sample)
}

fn read_npy_u8(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<u8>().unwrap())
}

#[test]
fn the_phantom_ingested_from_ome_zarr_stores_what_its_npy_stores() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 2, [32, 128, 128], 16);
    let (shape, data) = read_npy_u8(&ph.join("volume.npy"));
    // The default model's voxel (4 um) at level 0, coarser levels beside it.
    let p = pyramid(data, [shape[0], shape[1], shape[2]], [4.0, 4.0, 4.0], 2);
    let z2 = write_v2(&dir.path().join("ph.zarr"), &p, [8, 64, 64]);
    let z3 = write_v3(&dir.path().join("ph3.zarr"), &p, [16, 64, 64]);
    let db = new_model_store(dir.path(), "db");
    let ingest = |sample: &str, path: &Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "--json",
            "ingest",
            "volume",
            s(&db),
            "--sample",
            sample,
            s(path),
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&expect_ok(&args)).unwrap()
    };
    ingest("npy", &ph.join("volume.npy"), &[]);
    let r2 = ingest("v2", &z2, &[]);
    let r3 = ingest("v3", &z3, &[]);
    let want = stored(&db, "npy");
    assert!(want.len() > 10);
    assert_eq!(stored(&db, "v2"), want);
    assert_eq!(stored(&db, "v3"), want);
    for r in [&r2, &r3] {
        assert_eq!(r["source_shape"], json!([32, 128, 128]), "{r}");
        assert_eq!(r["model_shape"], json!([32, 128, 128]), "{r}");
    }
    // Level 1 (8 um in y, x) is read at its own voxel size and resampled to the model's.
    let r = ingest("coarse", &z2, &["--level", "1"]);
    assert_eq!(r["source_shape"], json!([32, 64, 64]), "{r}");
    assert_eq!(r["model_shape"], json!([32, 128, 128]), "{r}");
    assert!(!stored(&db, "coarse").is_empty());
}

#[test]
fn bad_ome_zarr_images_are_refused_with_the_file_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = new_model_store(d, "db");
    // Large enough for the model's 16 x 32 x 32 patches at 4 um.
    let shape = [40, 96, 96];
    let data: Vec<u8> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    let p = pyramid(data, shape, [4.0, 4.0, 4.0], 3);
    let ingest = |path: &Path, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["ingest", "volume", s(&db), "--sample", "bad", s(path)];
        args.extend_from_slice(extra);
        let err = expect_user_error(&args, needles);
        assert!(err.contains(s(path)), "{err}");
        let store = Store::open_read_only(&db).unwrap();
        assert!(store.samples().unwrap().is_empty(), "a sample was recorded");
    };
    let fresh = |name: &str| write_v2(&d.join(name), &p, [5, 16, 16]);
    // No multiscales, malformed .zattrs, a missing zarr.json of a level.
    let z = fresh("nomulti.zarr");
    std::fs::write(z.join(".zattrs"), "{}").unwrap();
    ingest(&z, &[], &["no OME-NGFF multiscales"]);
    let z = fresh("badjson.zarr");
    std::fs::write(z.join(".zattrs"), "{\"multiscales\": [").unwrap();
    ingest(&z, &[], &["not a readable Zarr group"]);
    let z = fresh("nolevel.zarr");
    std::fs::remove_file(z.join("1/.zarray")).unwrap();
    ingest(&z, &[], &["level '1' cannot be opened"]);
    // An unsupported codec is named.
    let z = fresh("codec.zarr");
    let meta = std::fs::read_to_string(z.join("0/.zarray")).unwrap();
    let meta = meta.replace("\"compressor\":null", "\"compressor\":{\"id\":\"lzma\"}");
    std::fs::write(z.join("0/.zarray"), meta).unwrap();
    ingest(&z, &[], &["lzma"]);
    // Levels that disagree: level 0 claims 8 um voxels, so its extent is twice level 1's.
    let z = fresh("disagree.zarr");
    let attrs = std::fs::read_to_string(z.join(".zattrs")).unwrap();
    std::fs::write(
        z.join(".zattrs"),
        attrs.replace("[4.0,4.0,4.0]", "[4.0,8.0,8.0]"),
    )
    .unwrap();
    ingest(&z, &["--level", "0"], &["levels disagree", "level '1'"]);
    // A truncated chunk and a missing one (v2 fills a missing chunk: that is no error,
    // but a chunk of the wrong length is).
    let z = fresh("cut.zarr");
    std::fs::write(z.join("0/1.0.0"), [1u8, 2, 3]).unwrap();
    ingest(
        &z,
        &["--level", "0", "--tissue", "all"],
        &["cannot read slices"],
    );
    // A level that does not exist.
    ingest(
        &fresh("level.zarr"),
        &["--level", "7"],
        &["level 7 does not exist"],
    );
}

#[test]
fn ome_zarr_outputs_read_back_at_every_level_with_their_voxel_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [3, 600, 520];
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| {
            if i % 97 == 0 {
                f32::NAN
            } else {
                (i % 251) as f32 / 250.0
            }
        })
        .collect();
    let img = dir.path().join("h.ome.zarr");
    vortexdb::write_ome_zarr(&img, "h", shape, &data, [4.0, 4.0, 4.0]).unwrap();
    // Level 0 as written (NaN stays NaN); levels 1 and 2 halve y and x, doubling the voxel.
    let mut v = ZarrVolume::open(&img, LevelChoice::Index(0), None).unwrap();
    let s = v.read_slice(1).unwrap();
    for (i, (&a, &b)) in s.data.iter().zip(&data[600 * 520..]).enumerate() {
        assert!(
            a == b || (a.is_nan() && b.is_nan()),
            "voxel {i}: {a} vs {b}"
        );
    }
    let voxels: Vec<[f64; 3]> = v.levels().iter().map(|l| l.voxel_um).collect();
    assert_eq!(
        voxels,
        [[4.0, 4.0, 4.0], [4.0, 8.0, 8.0], [4.0, 16.0, 16.0]]
    );
    let v = ZarrVolume::open(&img, LevelChoice::Index(2), None).unwrap();
    assert_eq!(v.info().shape, [3, 150, 130]);
    // Labels: the image and labels/<name> hold the same pyramid, sampled (not averaged).
    let labels: Vec<u8> = (0..n).map(|i| (i / 7 % 5) as u8).collect();
    let lab = dir.path().join("d.ome.zarr");
    vortexdb::write_ome_zarr_labels(&lab, "domains", shape, &labels, [4.0, 8.0, 8.0]).unwrap();
    for p in [lab.clone(), lab.join("labels/domains")] {
        let mut v = ZarrVolume::open(&p, LevelChoice::Index(1), None).unwrap();
        assert_eq!(v.info().shape, [3, 300, 260]);
        assert_eq!(v.levels()[1].voxel_um, [4.0, 16.0, 16.0]);
        let s = v.read_slice(0).unwrap();
        // Level 1 voxel (0, 1, 3) is level 0's (0, 2, 6).
        assert_eq!((s.data[260 + 3] * 255.0).round() as u8, labels[2 * 520 + 6]);
    }
    // Something else at the path is refused, not deleted.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    assert!(vortexdb::write_ome_zarr(&other, "h", shape, &data, [4.0; 3]).is_err());
    assert!(other.join("keep.txt").is_file());
}
