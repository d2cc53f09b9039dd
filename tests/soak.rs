//! Crash soak in the style of Qdrant's crasher: a mixed workload (vector import,
//! volume ingest, spot ingest, deletes + compaction, spatial domains, queries) run
//! through the CLI while the writer is SIGKILLed at random moments. After every kill:
//! `check` passes, every acknowledged batch is stored, no partial batch is visible,
//! every stored patch equals the same patch of an uninterrupted reference ingest,
//! exact search equals brute force over what is stored and every index hit is live.
//! At the end every operation is re-run to completion and must resume without
//! duplicates to the reference's content.
//!
//! `cargo test --release --test soak` runs for `SOAK_SECS` seconds (default 60, the CI
//! pass); `SOAK_SECS=1200 cargo test --release --test soak -- --nocapture` is the long
//! run recorded in docs/RELIABILITY.md. Needs the ONNX Runtime library.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Rng, bin, brute_force, clustered, expect_ok, phantom, s, write_npy};
use vortexdb::{SearchOptions, Store};

const ROWS: usize = 12_000;
const DIM: usize = 16;
const BATCH: usize = 200;
const COLL3D: &str = "vortex-tiny-phantom:3d";

/// origin -> vector of every live patch of `sample`, failing on duplicates.
fn patches(st: &Store, sample: &str) -> BTreeMap<[i64; 3], Vec<f32>> {
    let Ok(info) = st.collection(COLL3D) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for id in 0..info.next_id {
        if let Some((v, Some(r))) = st.get(COLL3D, id).unwrap()
            && r.sample == sample
        {
            assert!(
                out.insert(r.origin, v).is_none(),
                "duplicate patch of {sample}"
            );
        }
    }
    out
}

#[derive(Default, Debug)]
struct Stats {
    rounds: u64,
    kills: u64,
    /// Batches acknowledged by the killed writers before their kill (all verified).
    acked_batches_at_kills: u64,
    lost: u64,
    partial: u64,
    wrong: u64,
    by_op: HashMap<&'static str, u64>,
}

struct World {
    db: PathBuf,
    vectors: PathBuf,
    rows: Vec<Vec<f32>>,
    volume: PathBuf,
    spots: PathBuf,
    reference: BTreeMap<[i64; 3], Vec<f32>>,
    spot_count: usize,
    samples: Vec<String>,
    /// Vector-import collections: the last one is being imported, the others are full.
    collections: Vec<String>,
}

/// (largest acknowledged rows or patches, acknowledgements seen) of a running child.
type Acks = Arc<Mutex<(u64, u64)>>;

/// Start a CLI child; a thread counts acknowledgements on stdout (`--ack` lines) or
/// stderr (`ingest:` progress lines) and keeps the largest acknowledged number.
fn start(args: &[&str]) -> (Child, Acks, Vec<std::thread::JoinHandle<()>>) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (largest acknowledged rows or patches, acknowledgements seen)
    let acked = Arc::new(Mutex::new((0u64, 0u64)));
    let mut threads = Vec::new();
    let out = child.stdout.take().unwrap();
    let a = acked.clone();
    threads.push(std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(v) = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("acked_rows").and_then(|x| x.as_u64()))
            {
                let mut g = a.lock().unwrap();
                *g = (v, g.1 + 1);
            }
        }
    }));
    let err = child.stderr.take().unwrap();
    let a = acked.clone();
    threads.push(std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(err).read_to_string(&mut text);
        for line in text.lines() {
            // "ingest: 40/1521 grid positions, 32 patches stored"
            if let Some(n) = line
                .strip_prefix("ingest: ")
                .and_then(|l| l.split(", ").nth(1))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
            {
                let mut g = a.lock().unwrap();
                *g = (g.0.max(n), g.1 + 1);
            }
        }
    }));
    (child, acked, threads)
}

impl World {
    fn verify(&self, round: u64, acked: &HashMap<String, u64>, stats: &mut Stats, all: bool) {
        let st = Store::open(&self.db)
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        let r = vortexdb::check_store(&self.db, None)
            .unwrap_or_else(|e| panic!("round {round}: check fails after SIGKILL: {e}"));
        assert!(
            r.is_clean(),
            "round {round}: check finds damage after SIGKILL: {r}"
        );
        // Vector imports: acknowledged rows present, whole batches only, rows = file rows.
        let nc = self.collections.len();
        let from = if all { 0 } else { nc.saturating_sub(2) };
        for c in &self.collections[from..] {
            let Ok(info) = st.collection(c) else { continue };
            let stored = info.next_id;
            let want = acked.get(c).copied().unwrap_or(0);
            if stored < want {
                stats.lost += 1;
                panic!("round {round}: {c}: {want} rows acknowledged, {stored} stored");
            }
            if stored % BATCH as u64 != 0 && stored != ROWS as u64 {
                stats.partial += 1;
                panic!("round {round}: {c}: partial batch visible ({stored} rows)");
            }
            let mut rng = Rng::new(round);
            for _ in 0..100.min(stored) {
                let id = rng.below(stored);
                let (v, _) = st.get(c, id).unwrap().expect("stored id");
                assert_eq!(v, self.rows[id as usize], "round {round}: {c} row {id}");
            }
            if stored > 0 {
                self.check_search(&st, c, stored as usize, round, stats);
            }
        }
        // Deletes + compaction on "d": exact search = brute force over the live rows.
        if let Ok(info) = st.collection("d") {
            let live: Vec<(u64, Vec<f32>)> = (0..info.next_id)
                .filter_map(|id| st.get("d", id).unwrap().map(|(v, _)| (id, v)))
                .collect();
            assert_eq!(live.len() as u64, info.live, "round {round}: live count");
            let rows: Vec<Vec<f32>> = live.iter().map(|x| x.1.clone()).collect();
            let q: Vec<Vec<f32>> = self.rows[..4].to_vec();
            let exact = st
                .search(
                    "d",
                    &q,
                    &SearchOptions {
                        k: 5,
                        exact: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            for (i, qi) in q.iter().enumerate() {
                let truth: Vec<u64> = brute_force(&rows, qi, 5)
                    .into_iter()
                    .map(|j| live[j as usize].0)
                    .collect();
                let got: Vec<u64> = exact[i].iter().map(|h| h.id).collect();
                if got != truth {
                    stats.wrong += 1;
                    panic!("round {round}: exact search on 'd' {got:?} != {truth:?}");
                }
            }
        }
        // Volume samples: acknowledged patches present, each equal to the reference.
        // The samples still being written, in full; finished ones at the end.
        let n = self.samples.len();
        let recent = if all { 0 } else { n.saturating_sub(2) };
        for sample in &self.samples[recent..] {
            let got = patches(&st, sample);
            let want = acked.get(sample).copied().unwrap_or(0);
            if (got.len() as u64) < want {
                stats.lost += 1;
                panic!(
                    "round {round}: {sample}: {want} patches acknowledged, {} stored",
                    got.len()
                );
            }
            for (o, v) in &got {
                if self.reference.get(o) != Some(v) {
                    stats.wrong += 1;
                    panic!("round {round}: {sample} patch {o:?} differs from the reference");
                }
            }
        }
        // Spots: one transaction, all or nothing.
        if let Some(set) = st.spot_set("sp").unwrap() {
            let n = st.spots("sp").unwrap().len();
            if n != self.spot_count || set.spots != n {
                stats.partial += 1;
                panic!(
                    "round {round}: spots of 'sp' partial ({n} of {})",
                    self.spot_count
                );
            }
        }
        st.take_warnings();
    }

    fn check_search(&self, st: &Store, c: &str, stored: usize, round: u64, stats: &mut Stats) {
        let prefix = &self.rows[..stored];
        let q: Vec<Vec<f32>> = (0..6)
            .map(|i| self.rows[(i * 911) % stored].clone())
            .collect();
        let exact = st
            .search(
                c,
                &q,
                &SearchOptions {
                    k: 10,
                    exact: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let approx = st
            .search(
                c,
                &q,
                &SearchOptions {
                    k: 10,
                    ef: 200,
                    ..Default::default()
                },
            )
            .unwrap();
        for (i, qi) in q.iter().enumerate() {
            let truth = brute_force(prefix, qi, 10);
            let got: Vec<u64> = exact[i].iter().map(|h| h.id).collect();
            if got != truth || approx[i].iter().any(|h| h.id >= stored as u64) {
                stats.wrong += 1;
                panic!("round {round}: search wrong: exact {got:?}, truth {truth:?}");
            }
        }
    }
}

#[test]
fn mixed_workload_survives_random_sigkills() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let ph = phantom(dir.path(), 6, [24, 160, 160], 8);
    let rows = clustered(ROWS, DIM, 20, 11);
    let vectors = dir.path().join("v.npy");
    write_npy(&vectors, &rows);
    // The uninterrupted reference ingest.
    let refdb = dir.path().join("ref");
    expect_ok(&["init", s(&refdb)]);
    expect_ok(&["models", "add", s(&refdb), "models/default"]);
    let volume = ph.join("volume.npy");
    expect_ok(&["ingest", "volume", s(&refdb), "--sample", "ref", s(&volume)]);
    let reference = patches(&Store::open_read_only(&refdb).unwrap(), "ref");
    let spots = ph.join("spots.parquet");
    let spot_count =
        vortexdb::read_spots(&spots, vortexdb::SpotFormat::Parquet, &Default::default())
            .unwrap()
            .ids
            .len();

    let db = dir.path().join("db");
    expect_ok(&["init", s(&db)]);
    expect_ok(&["models", "add", s(&db), "models/default"]);
    let d_rows = dir.path().join("d.npy");
    write_npy(&d_rows, &rows[..3000]);
    expect_ok(&["vectors", "import", s(&db), "--collection", "d", s(&d_rows)]);
    let mut w = World {
        db,
        vectors,
        rows,
        volume,
        spots,
        reference,
        spot_count,
        samples: vec!["v0".into()],
        collections: vec!["c0".into()],
    };
    let mut stats = Stats::default();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut rng = Rng::new(20261201);
    let t0 = Instant::now();
    let db = w.db.clone();
    while t0.elapsed() < Duration::from_secs(secs) {
        stats.rounds += 1;
        let round = stats.rounds;
        let sample = w.samples.last().unwrap().clone();
        let coll = w.collections.last().unwrap().clone();
        let ids: String = (0..5)
            .map(|_| rng.below(3000).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let (op, args): (&'static str, Vec<String>) = match rng.below(11) {
            0..=2 => (
                "import",
                vec![
                    "vectors".into(),
                    "import".into(),
                    s(&db).into(),
                    "--collection".into(),
                    coll.clone(),
                    "--batch-size".into(),
                    BATCH.to_string(),
                    "--m".into(),
                    "8".into(),
                    "--ack".into(),
                    s(&w.vectors).into(),
                ],
            ),
            3..=5 => (
                "ingest",
                vec![
                    "ingest".into(),
                    "volume".into(),
                    s(&db).into(),
                    "--sample".into(),
                    sample.clone(),
                    "--batch".into(),
                    "8".into(),
                    s(&w.volume).into(),
                ],
            ),
            6 => (
                "spots",
                vec![
                    "ingest".into(),
                    "spots".into(),
                    s(&db).into(),
                    "--sample".into(),
                    "sp".into(),
                    "--format".into(),
                    "parquet".into(),
                    s(&w.spots).into(),
                ],
            ),
            7 => (
                "delete",
                vec![
                    "vectors".into(),
                    "delete".into(),
                    s(&db).into(),
                    "--collection".into(),
                    "d".into(),
                    "--ids".into(),
                    ids,
                ],
            ),
            8 => (
                "compact",
                vec![
                    "vectors".into(),
                    "compact".into(),
                    s(&db).into(),
                    "--collection".into(),
                    "d".into(),
                ],
            ),
            9 => (
                "domains",
                vec![
                    "domains".into(),
                    s(&db).into(),
                    "--sample".into(),
                    "v0".into(),
                    "--k".into(),
                    "3".into(),
                ],
            ),
            _ => (
                "query",
                vec![
                    "query".into(),
                    "patch".into(),
                    s(&db).into(),
                    "--sample".into(),
                    "v0".into(),
                    "--at".into(),
                    "8,80,80".into(),
                    "--top".into(),
                    "5".into(),
                ],
            ),
        };
        *stats.by_op.entry(op).or_default() += 1;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, ack, threads) = start(&refs);
        // Most operations take 0.3-5 s here: kill within the first 0.9 s.
        std::thread::sleep(Duration::from_millis(10 + rng.below(900)));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            stats.kills += 1;
        }
        let status = child.wait().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        let (a, events) = *ack.lock().unwrap();
        if !finished {
            stats.acked_batches_at_kills += events;
        }
        let key = match op {
            "import" => coll.clone(),
            "ingest" => sample.clone(),
            _ => String::new(),
        };
        if !key.is_empty() {
            let e = acked.entry(key).or_default();
            *e = (*e).max(a);
        }
        w.verify(round, &acked, &mut stats, false);
        if finished && op == "ingest" && status.success() {
            // The sample is complete: further ingests start a new one.
            let next = format!("v{}", w.samples.len());
            w.samples.push(next);
        }
        if finished && op == "import" && status.success() {
            // Complete: the next imports go to a new collection, so kills keep landing
            // mid-import.
            let next = format!("c{}", w.collections.len());
            w.collections.push(next);
        }
    }
    // Re-run everything to completion: resumes without duplicates to the reference.
    for sample in w.samples.clone() {
        expect_ok(&[
            "ingest",
            "volume",
            s(&db),
            "--sample",
            &sample,
            s(&w.volume),
        ]);
    }
    for c in w.collections.clone() {
        expect_ok(&[
            "vectors",
            "import",
            s(&db),
            "--collection",
            &c,
            "--batch-size",
            &BATCH.to_string(),
            "--m",
            "8",
            s(&w.vectors),
        ]);
        acked.insert(c, ROWS as u64);
    }
    w.verify(stats.rounds + 1, &acked, &mut stats, true);
    let st = Store::open_read_only(&db).unwrap();
    for sample in &w.samples {
        assert_eq!(
            patches(&st, sample),
            w.reference,
            "{sample} differs from the reference"
        );
    }
    let summary = serde_json::json!({
        "seconds": t0.elapsed().as_secs_f64(), "rounds": stats.rounds, "kills": stats.kills,
        "acknowledged_batches_at_kills": stats.acked_batches_at_kills, "lost": stats.lost,
        "partial": stats.partial, "wrong": stats.wrong, "samples": w.samples.len(),
        "ops": stats.by_op,
    });
    eprintln!("soak: {summary}");
    if let Ok(p) = std::env::var("SOAK_REPORT") {
        std::fs::write(p, summary.to_string()).unwrap();
    }
    assert!(stats.kills > 0, "no kill landed mid-operation");
}
