//! `examples/workflow.rs` runs the whole workflow through the public API: this test
//! runs it and checks its figures and that it wrote nothing but its inputs, the store
//! and the one explicit export.

#[path = "../examples/workflow.rs"]
#[allow(dead_code)]
mod workflow;

#[test]
fn the_workflow_example_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let f = workflow::run(dir.path()).unwrap();
    // The phantom is 32 x 160 x 160 model voxels: the heatmap keeps that grid.
    assert_eq!(f.heatmap.0, [32, 160, 160]);
    assert!(f.heatmap.1 > 0.5 && f.heatmap.1 <= 1.0, "{}", f.heatmap.1);
    assert!(f.patches > 1000, "{}", f.patches);
    assert!(f.spots > 10, "{}", f.spots);
    // Seed 7 is held out from the default model: the figures of the demo's README
    // (PCC 0.67, ARI 0.78 on 48 x 256 x 256) with room for the smaller phantom.
    assert!(f.pcc > 0.4, "PCC {}", f.pcc);
    assert!(f.ari > 0.4, "ARI {}", f.ari);
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["model", "phantom", "q", "store"]);
    let q: Vec<String> = std::fs::read_dir(dir.path().join("q"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(q.contains(&"heatmap_ph7.npy".to_string()), "{q:?}");
}
