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
        vec!["vectors", "--help"],
        vec!["vectors", "import", "--help"],
        vec!["vectors", "search", "--help"],
        vec!["vectors", "delete", "--help"],
        vec!["vectors", "compact", "--help"],
    ] {
        let out = expect_ok(&args);
        assert!(out.contains("Usage: vortexdb"), "{args:?}: {out}");
    }
    let o = vortexdb(&["vectors", "import"]);
    assert_eq!(o.status.code(), Some(2), "clap usage errors exit with 2");
}

#[test]
fn demo_runs_and_reports_success() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let stdout = expect_ok(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--n",
        "3000",
        "--dim",
        "32",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["recall_at_10"].as_f64().unwrap() >= 0.95, "{v}");
    assert_eq!(v["deleted_returned"], 0);
    assert_eq!(v["live"], 2995);
    assert!(out.join("summary.json").is_file());
    // Running it again replaces the earlier store.
    expect_ok(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--n",
        "3000",
        "--dim",
        "32",
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
