//! Online backup (`vortexdb backup`): a copy taken while `ingest volume` writes in
//! another process passes `check`, holds exactly the source's content at the backup's
//! generation (a prefix of the ingest, no partial batch), and resumes to the same end
//! state as the source.
//!
//! Needs the ONNX Runtime library (`bash scripts/setup-ort.sh`, run by scripts/test.sh).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, expect_ok, expect_user_error, new_model_store, phantom, s};
use vortexdb::Store;

const COLLECTION: &str = "vortex-tiny-phantom:3d";

/// origin -> (id, vector) of every live patch of `sample`.
fn patches(db: &Path, sample: &str) -> BTreeMap<[i64; 3], (u64, Vec<f32>)> {
    let st = Store::open_read_only(db).unwrap();
    let info = st.collection(COLLECTION).unwrap();
    let mut out = BTreeMap::new();
    for id in 0..info.next_id {
        if let Some((v, Some(r))) = st.get(COLLECTION, id).unwrap()
            && r.sample == sample
        {
            assert!(out.insert(r.origin, (id, v)).is_none(), "duplicate patch");
        }
    }
    out
}

#[test]
fn backup_during_ingest_is_consistent_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 6, [32, 192, 192], 16);
    let db = new_model_store(dir.path(), "db");
    let vol = ph.join("volume.npy");
    let mut child = Command::new(bin())
        .args([
            "ingest",
            "volume",
            s(&db),
            "--sample",
            "ph",
            "--batch",
            "4",
            s(&vol),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    for _ in 0..5 {
        line.clear();
        err.read_line(&mut line).unwrap();
    }
    let backup = dir.path().join("backup");
    let out = expect_ok(&["backup", s(&db), s(&backup)]);
    assert!(out.contains("generation"), "{out}");
    // Drain the writer's progress lines so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    let status = child.wait().unwrap();
    assert!(status.success());

    assert!(expect_ok(&["check", s(&backup)]).starts_with("ok:"));
    let source = patches(&db, "ph");
    let copy = patches(&backup, "ph");
    let st = Store::open_read_only(&backup).unwrap();
    let rec = st.sample("ph").unwrap().unwrap();
    assert_eq!(
        rec.status, "ingesting",
        "the backup was meant to be taken mid-ingest ({} patches)",
        rec.patches
    );
    drop(st);
    assert!(
        !copy.is_empty() && copy.len() < source.len(),
        "{} of {}",
        copy.len(),
        source.len()
    );
    // The copy is a prefix of what the source stored: same ids, same vectors.
    for (origin, (id, v)) in &copy {
        let (sid, sv) = &source[origin];
        assert_eq!(
            (id, v),
            (sid, sv),
            "patch at {origin:?} differs from the source"
        );
    }
    // Whole batches only: every id below the copy's next id is present.
    let next = Store::open_read_only(&backup)
        .unwrap()
        .collection(COLLECTION)
        .unwrap()
        .next_id;
    assert_eq!(
        copy.len() as u64,
        next,
        "a partial batch is visible in the backup"
    );
    // A search on the copy equals exact search on the copy.
    let q = dir.path().join("q.npy");
    let rows: Vec<Vec<f32>> = copy.values().take(5).map(|(_, v)| v.clone()).collect();
    common::write_npy(&q, &rows);
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    for (out, extra) in [(&a, None), (&b, Some("--exact"))] {
        let mut args = vec![
            "vectors",
            "search",
            s(&backup),
            "--collection",
            COLLECTION,
            "--queries",
            s(&q),
            "--out",
            s(out),
            "--k",
            "5",
        ];
        args.extend(extra);
        expect_ok(&args);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Restoring is opening the copy: the interrupted ingest resumes to the source's end.
    let out = expect_ok(&[
        "ingest",
        "volume",
        s(&backup),
        "--sample",
        "ph",
        "--batch",
        "4",
        s(&vol),
    ]);
    assert!(out.contains("resumed at"), "{out}");
    let resumed = patches(&backup, "ph");
    assert_eq!(resumed.len(), source.len());
    for (origin, (_, v)) in &resumed {
        assert_eq!(v, &source[origin].1, "patch at {origin:?}");
    }
    // A backup never overwrites anything.
    expect_user_error(
        &["backup", s(&db), s(&backup)],
        &["backup", "already exists"],
    );
}
