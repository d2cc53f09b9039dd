//! Pyramidal whole-slide TIFFs written by tifffile (tests/fixtures/make_wsi_fixture.py):
//! an OME-TIFF with JPEG tiles and SubIFD levels, an Aperio-like LZW pyramid down the
//! main IFD chain (thumbnail and label skipped), a deflate pyramid without pixel size.
//! `ingest image` picks the level nearest the model's 4 um/px from the file's pixel
//! size and stores the embeddings of that level saved as PNG; bad files are refused
//! with the file named and nothing written.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{expect_ok, expect_user_error, new_model_store, s};
use vortexdb::{LevelChoice, PyramidTiff, Store, VolumeSource};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wsi")
        .join(name)
}

/// Every stored (origin -> vector) of a sample.
fn stored(db: &Path, sample: &str) -> Vec<([i64; 3], Vec<f32>)> {
    common::stored_patches(db, "vortex-tiny-phantom:2d", sample)
}

fn ingest(db: &Path, sample: &str, file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "ingest",
        "image",
        s(db),
        "--sample",
        sample,
        s(file),
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&expect_ok(&args)).unwrap()
}

fn png_pixels(path: &Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

#[test]
fn levels_and_pixel_sizes_are_found_in_ome_svs_and_plain_pyramids() {
    let near = LevelChoice::Nearest([4.0, 4.0, 4.0]);
    for (name, um) in [
        ("ome_jpeg.ome.tif", None),
        ("svs_lzw.tif", None),
        ("plain_deflate.tif", Some(1.0)),
    ] {
        let mut t = PyramidTiff::open(&fixture(name), um, near, None).unwrap();
        let sizes: Vec<[u32; 2]> = t.levels().iter().map(|l| l.size).collect();
        assert_eq!(
            sizes,
            [[512, 384], [256, 192], [128, 96], [64, 48]],
            "{name}"
        );
        let ums: Vec<f64> = t.levels().iter().map(|l| l.um_per_px).collect();
        assert_eq!(ums, [1.0, 2.0, 4.0, 8.0], "{name}");
        assert!(
            t.levels().iter().all(|l| l.tile == Some([128, 128])),
            "{name}"
        );
        assert_eq!(t.level(), 2, "{name}: the 4 um level");
        assert_eq!(t.info().shape, [1, 96, 128]);
        assert_eq!(t.voxel_um(), Some([4.0, 4.0, 4.0]));
        let slice = t.read_slice(0).unwrap();
        assert_eq!((slice.channels, slice.h, slice.w), (3, 96, 128));
    }
    // LZW and deflate levels decode to exactly what was written (level2.png).
    let want = png_pixels(&fixture("level2.png"));
    for name in ["svs_lzw.tif", "plain_deflate.tif"] {
        let mut t = PyramidTiff::open(&fixture(name), Some(1.0), near, None).unwrap();
        let sl = t.read_slice(0).unwrap();
        let n = 96 * 128;
        let got: Vec<u8> = (0..n * 3)
            .map(|i| (sl.data[(i % 3) * n + i / 3] * 255.0).round() as u8)
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // JPEG tiles (YCbCr) decode to within a few levels of libjpeg-turbo's RGB (tifffile).
    let want = png_pixels(&fixture("ome_jpeg_level2.png"));
    let mut t = PyramidTiff::open(&fixture("ome_jpeg.ome.tif"), None, near, None).unwrap();
    let sl = t.read_slice(0).unwrap();
    let n = 96 * 128;
    let worst = (0..n * 3)
        .map(|i| ((sl.data[(i % 3) * n + i / 3] * 255.0).round() - want[i] as f32).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 4.0, "JPEG decode differs by {worst}");
    // A named level; an override of the file's pixel size moves the nearest level.
    let t = PyramidTiff::open(&fixture("svs_lzw.tif"), None, LevelChoice::Index(0), None).unwrap();
    assert_eq!(t.info().shape, [1, 384, 512]);
    let t = PyramidTiff::open(&fixture("svs_lzw.tif"), Some(0.5), near, None).unwrap();
    assert_eq!((t.level(), t.um_per_px()), (3, 4.0));
}

#[test]
fn a_pyramid_level_ingests_like_that_level_saved_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_model_store(dir.path(), "db");
    ingest(&db, "png", &fixture("level2.png"), &["--um-per-px", "4"]);
    ingest(
        &db,
        "jpeg-png",
        &fixture("ome_jpeg_level2.png"),
        &["--um-per-px", "4"],
    );
    let png = stored(&db, "png");
    assert!(png.len() > 20, "{} patches", png.len());
    for (sample, file, extra) in [
        ("svs", "svs_lzw.tif", &[][..]),
        ("plain", "plain_deflate.tif", &["--um-per-px", "1"][..]),
    ] {
        let r = ingest(&db, sample, &fixture(file), extra);
        assert_eq!(r["source_shape"], serde_json::json!([1, 96, 128]), "{r}");
        assert_eq!(stored(&db, sample), png, "{file}");
    }
    // JPEG tiles: vortexdb's decoder and tifffile's (libjpeg-turbo) may round an IDCT
    // differently, so the embeddings agree to a cosine, not bit for bit.
    ingest(&db, "ome", &fixture("ome_jpeg.ome.tif"), &[]);
    let (a, b) = (stored(&db, "ome"), stored(&db, "jpeg-png"));
    assert_eq!(a.len(), b.len());
    for ((oa, va), (ob, vb)) in a.iter().zip(&b) {
        assert_eq!(oa, ob);
        let dot: f32 = va.iter().zip(vb).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            dot / (n(va) * n(vb)) > 0.999,
            "{oa:?}: cosine {}",
            dot / (n(va) * n(vb))
        );
    }
}

#[test]
fn bad_whole_slide_images_are_refused_with_the_file_named_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = new_model_store(d, "db");
    let refused = |path: &Path, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["ingest", "image", s(&db), "--sample", "bad", s(path)];
        args.extend_from_slice(extra);
        let err = expect_user_error(&args, needles);
        assert!(err.contains(s(path)), "{err}");
        let store = Store::open_read_only(&db).unwrap();
        assert!(store.samples().unwrap().is_empty(), "a sample was recorded");
    };
    // No pixel size in the file and none given.
    refused(
        &fixture("plain_deflate.tif"),
        &[],
        &["no pixel size", "--um-per-px"],
    );
    refused(&fixture("level2.png"), &[], &["--um-per-px"]);
    // A level that does not exist; a level of a PNG.
    refused(
        &fixture("svs_lzw.tif"),
        &["--level", "9"],
        &["level 9 does not exist"],
    );
    refused(
        &fixture("level2.png"),
        &["--um-per-px", "4", "--level", "1"],
        &["only TIFF"],
    );
    let bytes = std::fs::read(fixture("svs_lzw.tif")).unwrap();
    // Truncated: the tiles of the later levels lie past the end.
    for keep in [bytes.len() / 2, bytes.len() * 9 / 10] {
        let p = d.join(format!("cut{keep}.tif"));
        std::fs::write(&p, &bytes[..keep]).unwrap();
        refused(&p, &[], &["truncated"]);
    }
    // A corrupt tile of the chosen level (LZW data overwritten): an error, not a crash.
    let p = d.join("corrupt.tif");
    let mut b = bytes.clone();
    let (start, end) = lzw_level2_span(&fixture("svs_lzw.tif"));
    for x in &mut b[start..end] {
        *x = 0xFF;
    }
    std::fs::write(&p, &b).unwrap();
    refused(&p, &[], &["tile"]);
    // Levels that disagree: a reduced level of another aspect ratio.
    let um = ["--um-per-px", "1"];
    refused(
        &fixture("disagree_chain.tif"),
        &um,
        &["does not match", "aspect ratio"],
    );
    refused(
        &fixture("disagree_subifd.tif"),
        &um,
        &["levels disagree", "level 1"],
    );
}

/// Byte range of the tiles of level 2 (IFD 3 of svs_lzw.tif: full, thumbnail, 1, 2).
fn lzw_level2_span(path: &Path) -> (usize, usize) {
    use tiff::tags::Tag;
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut d = tiff::decoder::Decoder::new(f).unwrap();
    d.seek_to_image(3).unwrap();
    let off = d.get_tag_u64_vec(Tag::TileOffsets).unwrap();
    let cnt = d.get_tag_u64_vec(Tag::TileByteCounts).unwrap();
    (off[0] as usize, (off[0] + cnt[0]) as usize)
}

#[test]
fn pyramidal_sections_ingest_like_their_level_saved_as_png_sections() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_model_store(dir.path(), "db");
    let sections = |sample: &str, files: &[&str], extra: &[&str]| {
        let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
        let mut args = vec!["--json", "ingest", "sections", s(&db), "--sample", sample];
        args.extend_from_slice(&["--spacing-um", "16"]);
        args.extend_from_slice(extra);
        args.extend(paths.iter().map(|p| s(p)));
        serde_json::from_str::<serde_json::Value>(&expect_ok(&args)).unwrap()
    };
    let stored3d = |sample: &str| common::stored_patches(&db, "vortex-tiny-phantom:3d", sample);
    sections("png", &["level2.png"; 4], &["--um-per-px", "4"]);
    let png = stored3d("png");
    assert!(png.len() > 5, "{} patches", png.len());
    // The LZW pyramid records its pixel size: level 2 (4 um/px) is read, no option.
    let r = sections("svs", &["svs_lzw.tif"; 4], &[]);
    assert_eq!(r["source_shape"], serde_json::json!([4, 96, 128]), "{r}");
    assert_eq!(stored3d("svs"), png);
    // Mixed: the deflate pyramid records none, so the full-resolution size is given.
    let mixed = [
        "svs_lzw.tif",
        "plain_deflate.tif",
        "svs_lzw.tif",
        "plain_deflate.tif",
    ];
    sections("mixed", &mixed, &["--um-per-px", "1"]);
    assert_eq!(stored3d("mixed"), png);
    // The level each section was read at, and its pixel size, are recorded.
    let store = Store::open_read_only(&db).unwrap();
    let read_at = |s: &str| {
        let i = store.sample_images(s).unwrap().expect("images recorded");
        (i.levels, i.um_per_px)
    };
    assert_eq!(read_at("png"), (vec![None; 4], 4.0));
    assert_eq!(read_at("svs"), (vec![Some(2); 4], 4.0));
    assert_eq!(read_at("mixed"), (vec![Some(2); 4], 4.0));
    drop(store);

    let refused = |files: &[&str], extra: &[&str], culprit: &str, needles: &[&str]| {
        let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
        let mut args = vec!["ingest", "sections", s(&db), "--sample", "bad"];
        args.extend_from_slice(&["--spacing-um", "16"]);
        args.extend_from_slice(extra);
        args.extend(paths.iter().map(|p| s(p)));
        let err = expect_user_error(&args, needles);
        assert!(err.contains(s(&fixture(culprit))), "{err}");
        let store = Store::open_read_only(&db).unwrap();
        assert!(
            store.sample("bad").unwrap().is_none(),
            "a sample was recorded"
        );
    };
    let deflate = ["svs_lzw.tif", "plain_deflate.tif"];
    refused(
        &deflate,
        &[],
        "plain_deflate.tif",
        &["no pixel size", "--um-per-px"],
    );
    let png_first = ["svs_lzw.tif", "level2.png"];
    refused(
        &png_first,
        &[],
        "level2.png",
        &["record no pixel size", "--um-per-px"],
    );
    // 2 um full resolution: the pyramid's 4 um level against a PNG taken at 2 um/px.
    refused(
        &png_first,
        &["--um-per-px", "2"],
        "level2.png",
        &["must share one pixel size"],
    );
    refused(
        &png_first,
        &["--um-per-px", "4", "--level", "1"],
        "level2.png",
        &["levels"],
    );
}
