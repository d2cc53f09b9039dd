//! Every metric against its reference implementation (scipy, scikit-image,
//! scikit-learn, esda/libpysal) on the fixed inputs of
//! `tests/reference/make_metric_reference.py`, within 1e-6.

use serde_json::Value;
use vortexdb::{SpatialWeights, adjusted_rand_index, gearys_c, morans_i, pearson, spearman, ssim};

fn reference() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/metrics_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6,
        "{what}: got {got}, reference {want}"
    );
}

#[test]
fn correlations_match_scipy() {
    let r = reference();
    let cases = r["correlation"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (i, c) in cases.iter().enumerate() {
        let (a, b) = (f64s(&c["a"]), f64s(&c["b"]));
        close(
            pearson(&a, &b),
            c["pearson"].as_f64().unwrap(),
            &format!("pearson {i}"),
        );
        close(
            spearman(&a, &b),
            c["spearman"].as_f64().unwrap(),
            &format!("spearman {i}"),
        );
    }
}

#[test]
fn ssim_matches_scikit_image() {
    let r = reference();
    for (i, c) in r["ssim"].as_array().unwrap().iter().enumerate() {
        let (h, w) = (
            c["h"].as_u64().unwrap() as usize,
            c["w"].as_u64().unwrap() as usize,
        );
        let win = c["win"].as_u64().unwrap() as usize;
        let got = ssim(&f64s(&c["a"]), &f64s(&c["b"]), h, w, 1.0, win).unwrap();
        close(
            got,
            c["ssim"].as_f64().unwrap(),
            &format!("ssim {i} ({h}x{w})"),
        );
    }
    let e = ssim(&[0.0; 30], &[0.0; 30], 5, 6, 1.0, 7).unwrap_err();
    assert!(e.to_string().contains("smaller than the 7 x 7"), "{e}");
}

#[test]
fn ari_matches_scikit_learn() {
    let r = reference();
    let u32s = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    for (i, c) in r["ari"].as_array().unwrap().iter().enumerate() {
        let got = adjusted_rand_index(&u32s(&c["a"]), &u32s(&c["b"])).unwrap();
        close(got, c["ari"].as_f64().unwrap(), &format!("ari {i}"));
    }
}

#[test]
fn morans_i_and_gearys_c_match_esda() {
    let r = reference();
    let coords: Vec<[f64; 2]> = r["autocorr"]["coords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect();
    let knn = SpatialWeights::knn(&coords, 6).unwrap();
    let band = SpatialWeights::distance_band(&coords, 1.5);
    let cases = r["autocorr"]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for (i, c) in cases.iter().enumerate() {
        let w = match c["weights"].as_str().unwrap() {
            "knn6" => &knn,
            "band1.5" => &band,
            other => panic!("unknown weights {other}"),
        };
        let x = f64s(&c["x"]);
        close(
            morans_i(&x, w),
            c["moran_i"].as_f64().unwrap(),
            &format!("moran {i}"),
        );
        close(
            gearys_c(&x, w),
            c["geary_c"].as_f64().unwrap(),
            &format!("geary {i}"),
        );
    }
}
