//! Crash safety: `vortexdb vectors import` is killed with SIGKILL at random moments;
//! after each kill the store must open, hold every acknowledged batch in full and no
//! partial batch, and its search must agree with exact search over what is stored.
//! Re-running the import resumes without duplicates until the file is fully stored.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Rng, bin, brute_force, clustered, write_npy};
use vortexdb::{SearchOptions, Store};

const ROWS: usize = 30_000;
const DIM: usize = 16;
const BATCH: usize = 250;
const KILLS: usize = 24;

/// Check the invariants; returns the number of rows stored.
fn verify(store_dir: &std::path::Path, rows: &[Vec<f32>], acked: u64, round: usize) -> u64 {
    let store = Store::open_read_only(store_dir)
        .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
    let info = match store.collection("c") {
        Ok(i) => i,
        Err(vortexdb::Error::UnknownCollection { .. }) => {
            assert_eq!(
                acked, 0,
                "round {round}: acknowledged rows but no collection"
            );
            return 0;
        }
        Err(e) => panic!("round {round}: {e}"),
    };
    let stored = info.live;
    assert!(
        stored >= acked,
        "round {round}: {acked} rows acknowledged but only {stored} stored"
    );
    assert!(
        stored % BATCH as u64 == 0 || stored == ROWS as u64,
        "round {round}: partial batch visible ({stored} rows, batch {BATCH})"
    );
    assert_eq!(
        info.next_id, stored,
        "round {round}: ids skipped or duplicated"
    );
    // Every stored row is the file's row with the same index (no duplicates, no gaps).
    let mut rng = Rng::new(round as u64);
    for _ in 0..300.min(stored) {
        let id = rng.below(stored);
        let (v, _) = store
            .get("c", id)
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: id {id} missing"));
        assert_eq!(
            v, rows[id as usize],
            "round {round}: row {id} differs from the file"
        );
    }
    if stored > 0 {
        let prefix = &rows[..stored as usize];
        let queries: Vec<Vec<f32>> = (0..8)
            .map(|i| rows[(i * 997) % stored as usize].clone())
            .collect();
        let exact = store
            .search(
                "c",
                &queries,
                &SearchOptions {
                    k: 10,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let approx = store
            .search(
                "c",
                &queries,
                &SearchOptions {
                    k: 10,
                    ef: 200,
                    ..Default::default()
                },
            )
            .unwrap();
        let mut agree = 0;
        for (i, q) in queries.iter().enumerate() {
            let truth = brute_force(prefix, q, 10);
            assert_eq!(
                exact[i].iter().map(|h| h.id).collect::<Vec<_>>(),
                truth,
                "round {round}: exact search wrong"
            );
            assert!(
                approx[i].iter().all(|h| h.id < stored),
                "round {round}: index returned an unstored id"
            );
            assert_eq!(
                approx[i][0].id, exact[i][0].id,
                "round {round}: stored vector does not find itself"
            );
            agree += approx[i].iter().filter(|h| truth.contains(&h.id)).count();
        }
        assert!(
            agree >= 76,
            "round {round}: index disagrees with exact search ({agree}/80)"
        );
    }
    for w in store.take_warnings() {
        eprintln!("round {round}: warning: {w}");
    }
    stored
}

#[test]
fn sigkill_during_import_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vectors.npy");
    let store_dir = dir.path().join("db");
    let rows = clustered(ROWS, DIM, 30, 7);
    write_npy(&file, &rows);
    assert!(
        Command::new(bin())
            .arg("init")
            .arg(&store_dir)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let mut rng = Rng::new(2026);
    let mut kills = 0;
    let mut round = 0;
    let mut last = 0;
    while kills < KILLS {
        round += 1;
        let mut child = Command::new(bin())
            .args(["vectors", "import"])
            .arg(&store_dir)
            .args([
                "--collection",
                "c",
                "--batch-size",
                &BATCH.to_string(),
                "--m",
                "8",
            ])
            .args(["--ef-construction", "64", "--ack"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(0u64));
        let reader = {
            let acked = acked.clone();
            let out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(v) = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v.get("acked_rows").and_then(|x| x.as_u64()))
                    {
                        *acked.lock().unwrap() = v;
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(30 + rng.below(600)));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = *acked.lock().unwrap();
        let stored = verify(&store_dir, &rows, acked, round);
        assert!(
            stored >= last,
            "round {round}: rows disappeared ({last} -> {stored})"
        );
        eprintln!("round {round}: acked {acked}, stored {stored}, finished {finished}");
        last = stored;
        if stored == ROWS as u64 {
            // Import completed before the kill; start again on a fresh store so the
            // remaining kills still land mid-import.
            std::fs::remove_dir_all(&store_dir).unwrap();
            assert!(
                Command::new(bin())
                    .arg("init")
                    .arg(&store_dir)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            );
            last = 0;
        }
    }
    // A final uninterrupted run completes the import, with nothing duplicated.
    let out = common::expect_ok(&[
        "vectors",
        "import",
        store_dir.to_str().unwrap(),
        "--collection",
        "c",
        "--batch-size",
        &BATCH.to_string(),
        file.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(v["rows"], ROWS as u64);
    assert_eq!(
        verify(&store_dir, &rows, ROWS as u64, round + 1),
        ROWS as u64
    );
    let store = Store::open_read_only(&store_dir).unwrap();
    assert!(
        store.info().unwrap().collections[0].1.fresh,
        "final snapshot not fresh"
    );
    eprintln!("{kills} kills over {round} rounds");
}
