//! The CLI as a person uses it: help texts, the demo, `--json` output, resumed import.

mod common;

use common::{clustered, expect_ok, vortexdb, write_npy};

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["init", "--help"],
        vec!["info", "--help"],
        vec!["check", "--help"],
        vec!["demo", "--help"],
        vec!["phantom", "--help"],
        vec!["models", "add", "--help"],
        vec!["models", "list", "--help"],
        vec!["models", "embed", "--help"],
        vec!["ingest", "volume", "--help"],
        vec!["ingest", "sections", "--help"],
        vec!["ingest", "spots", "--help"],
        vec!["spots", "export", "--help"],
        vec!["query", "genes", "--help"],
        vec!["query", "profile", "--help"],
        vec!["query", "patch", "--help"],
        vec!["predict", "--help"],
        vec!["domains", "--help"],
        vec!["eval", "--help"],
        vec!["vectors", "--help"],
        vec!["vectors", "import", "--help"],
        vec!["vectors", "search", "--help"],
        vec!["vectors", "delete", "--help"],
        vec!["vectors", "compact", "--help"],
        vec!["view", "--help"],
    ] {
        let out = expect_ok(&args);
        assert!(out.contains("Usage: vortexdb"), "{args:?}: {out}");
        // Every option and argument has a description (clap prints none otherwise).
        // Short form: "--opt  text"; long form: "--opt" then an indented line of text.
        let lines: Vec<&str> = out.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim_start();
            if !(l.starts_with("--") || l.starts_with("-h") || l.starts_with('<')) {
                continue;
            }
            let indent = line.len() - l.len();
            let next_is_text = lines.get(i + 1).is_some_and(|n| {
                let t = n.trim_start();
                !t.is_empty() && n.len() - t.len() > indent && !t.starts_with('-')
            });
            assert!(
                l.trim_end().contains("  ") || next_is_text,
                "{args:?}: option without help: {l}"
            );
        }
    }
    let top = expect_ok(&["--help"]);
    for cmd in ["ingest", "query", "predict", "domains", "eval", "demo"] {
        assert!(top.contains(cmd), "top-level help lists {cmd}");
    }
    let o = vortexdb(&["vectors", "import"]);
    assert_eq!(o.status.code(), Some(2), "clap usage errors exit with 2");
}

/// PNG images inlined in the report (base64 data URIs), decoded.
fn report_images(html: &str) -> Vec<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    html.split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|rest| {
            let b64 = &rest[..rest.find('"').unwrap()];
            let mut out = Vec::new();
            let mut acc = 0u32;
            let mut bits = 0;
            for c in b64.bytes().filter(|&c| c != b'=') {
                acc = acc << 6 | A.iter().position(|&x| x == c).expect("base64") as u32;
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push((acc >> bits) as u8);
                }
            }
            out
        })
        .collect()
}

#[test]
fn demo_runs_the_workflow_and_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let stdout = expect_ok(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--shape",
        "32,192,192",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["ingest"]["patches"].as_u64().unwrap() > 500, "{v}");
    let q = v["queries"].as_array().unwrap();
    assert_eq!(q.len(), 5);
    for x in &q[..2] {
        // Gland and tumour: the clearest programs.
        assert!(x["auc"].as_f64().unwrap() > 0.8, "{x}");
    }
    assert!(v["domains"]["ari"].as_f64().unwrap() > 0.3, "{v}");
    assert!(v["prediction"]["pcc_all"].as_f64().unwrap() > 0.3, "{v}");
    assert_eq!(v["retrieval"]["hits"].as_array().unwrap().len(), 10);
    assert!(out.join("summary.json").is_file());
    assert!(out.join("predictions.parquet").metadata().unwrap().len() > 1000);
    // The report: every image present, a decodable non-empty PNG; the figures present.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let imgs = report_images(&html);
    // H&E, truth, 5 queries, 3 predicted genes, domains, truth again.
    assert_eq!(imgs.len(), 12, "images in the report");
    for (i, png) in imgs.iter().enumerate() {
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "image {i} is not a PNG"
        );
        let img = image::load_from_memory(png).unwrap();
        assert!(
            img.width() >= 32 && img.height() >= 32,
            "image {i} is {}x{}",
            img.width(),
            img.height()
        );
        let rgb = img.to_rgb8();
        let first = rgb.get_pixel(0, 0);
        assert!(rgb.pixels().any(|p| p != first), "image {i} is blank");
    }
    for needle in [
        "id=\"queries\"",
        "id=\"retrieval\"",
        "id=\"metrics\"",
        "id=\"domains\"",
        "PCC, all genes",
        "ARI against the phantom",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    let ari = format!("{:.3}", v["domains"]["ari"].as_f64().unwrap());
    assert!(
        html.contains(&format!("id=\"ari\">{ari}<")),
        "report shows ARI {ari}"
    );
    assert_eq!(html.matches("<tr><td>GLD01</td>").count(), 1);
    // Running it again replaces the earlier store.
    expect_ok(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--shape",
        "32,192,192",
    ]);
}

#[test]
fn json_outputs_and_idempotent_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    let f = dir.path().join("v.npy");
    write_npy(&f, &clustered(1000, 8, 4, 1));
    let v: serde_json::Value =
        serde_json::from_str(expect_ok(&["init", store.to_str().unwrap(), "--json"]).trim())
            .unwrap();
    assert_eq!(v["ok"], true);
    let args = [
        "vectors",
        "import",
        store.to_str().unwrap(),
        "--collection",
        "c",
        f.to_str().unwrap(),
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_str(expect_ok(&args).trim()).unwrap();
    assert_eq!(first["imported"], 1000);
    let again: serde_json::Value = serde_json::from_str(expect_ok(&args).trim()).unwrap();
    assert_eq!(again["imported"], 0, "re-import duplicated rows");
    let info: serde_json::Value =
        serde_json::from_str(expect_ok(&["info", store.to_str().unwrap(), "--json"]).trim())
            .unwrap();
    assert_eq!(info["collections"][0]["live"], 1000);
    assert_eq!(info["collections"][0]["snapshot_fresh"], true);
    let o = vortexdb(&[
        "info",
        dir.path().join("nowhere").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(err["ok"], false);
    assert!(err["error"].as_str().unwrap().contains("nowhere"));
}
