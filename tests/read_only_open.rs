//! A read-only open never writes to the store (issue 38): a store whose writer was
//! killed (redb must run its recovery) opens read-only from a recovered private copy
//! of its database, answers with every acknowledged batch, and leaves every file of
//! the store byte-identical; a writable open then recovers it in place.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{bin, clustered, expect_ok, files, s, write_npy};
use vortexdb::{SearchOptions, Store};

#[test]
fn a_read_only_open_of_a_store_needing_recovery_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vectors.npy");
    let store_dir = dir.path().join("db");
    let rows = clustered(60_000, 16, 20, 3);
    write_npy(&file, &rows);
    expect_ok(&["init", s(&store_dir)]);
    // Kill the import once a few batches are acknowledged.
    let mut child = Command::new(bin())
        .args(["vectors", "import"])
        .arg(&store_dir)
        .args(["--collection", "c", "--batch-size", "500", "--ack"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if let Some(v) = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("acked_rows").and_then(|x| x.as_u64()))
        {
            acked = v;
            if acked >= 2_000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-import
    child.wait().unwrap();
    assert!(acked >= 2_000, "the import ended before it was killed");
    let before = files(&store_dir);

    let store = Store::open_read_only(&store_dir).unwrap();
    let warnings = store.take_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("recovered private copy")),
        "{warnings:?}"
    );
    let info = store.collection("c").unwrap();
    assert!(
        info.live >= acked,
        "{} stored, {acked} acknowledged",
        info.live
    );
    let hits = store
        .search(
            "c",
            &[rows[0].clone()],
            &SearchOptions {
                k: 1,
                exact: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        hits[0][0].id, 0,
        "the first stored vector does not find itself"
    );
    drop(store);
    let after = files(&store_dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the read-only open added or removed files"
    );
    for (p, b) in &before {
        assert!(after[p] == *b, "the read-only open changed {}", p.display());
    }

    // A writable open recovers the store itself; read-only then reads it directly.
    drop(Store::open(&store_dir).unwrap());
    let store = Store::open_read_only(&store_dir).unwrap();
    assert!(store.take_warnings().is_empty());
    assert!(store.collection("c").unwrap().live >= acked);
}
