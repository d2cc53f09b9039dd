//! The tools a user reaches for when something is already wrong never make it worse:
//! `check` writes nothing (every file's bytes are the same after it, on a healthy and
//! on each damaged store), takes no lock (a writer runs beside it and is never
//! blocked) and reports only damage that is there (20 checks beside a writer, none
//! false); it verifies model manifests; `backup` of a damaged store never panics, and
//! yields a store that passes `check` holding every record the source can still give;
//! `repair` writes a repaired copy; a destination inside the store is refused. The
//! damage is made here: a flipped byte of a table's type name, zeroed 4 KiB pages, a
//! garbage manifest.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::{MODEL, files, s, vortexdb};
use vortexdb::{
    CollectionSpec, Metric, NewVector, PatchRecord, SearchOptions, Store, check_store, repair_store,
};

/// A store with a registered model, 1500 tagged vectors in 3 batches and a search run
/// (so that an index snapshot exists).
fn store(dir: &Path) -> PathBuf {
    let db = dir.join("db");
    let st = Store::create(&db).unwrap();
    st.add_model_or_builtin(Path::new(MODEL)).unwrap();
    st.create_collection(&CollectionSpec::raw("v", 16, Metric::Cosine))
        .unwrap();
    let rows = common::clustered(1500, 16, 6, 3);
    for (b, chunk) in rows.chunks(500).enumerate() {
        let recs: Vec<PatchRecord> = (0..chunk.len())
            .map(|i| PatchRecord {
                sample: format!("s{b}"),
                origin: [b as i64, i as i64, 0],
                size: [1, 1, 1],
                tissue_fraction: 1.0,
            })
            .collect();
        let batch: Vec<NewVector> = chunk
            .iter()
            .zip(&recs)
            .map(|(v, r)| NewVector {
                vector: v,
                record: Some(r.clone()),
            })
            .collect();
        st.insert("v", &batch, None).unwrap();
    }
    st.search("v", &[rows[0].clone()], &SearchOptions::default())
        .unwrap();
    st.save_snapshot("v").unwrap();
    db
}

/// `check` through the CLI: its exit code and output.
fn cli_check(db: &Path) -> (i32, String) {
    let o = vortexdb(&["check", s(db)]);
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), text)
}

/// Whether what a user runs on `db` works: `info`, and a search through a read-only
/// open.
fn works(db: &Path) -> bool {
    let search = Store::open_read_only(db)
        .and_then(|st| st.search("v", &[vec![1.0; 16]], &SearchOptions::default()));
    vortexdb(&["info", s(db)]).status.success() && search.is_ok()
}

/// Flip one byte of the first table type name redb stores ("&[u8]") in vortex.redb.
fn flip_type_name(db: &Path) {
    let f = db.join("vortex.redb");
    let mut b = std::fs::read(&f).unwrap();
    let at = b
        .windows(5)
        .position(|w| w == b"&[u8]")
        .expect("a table type name in the file");
    b[at + 1] ^= 0x20;
    std::fs::write(&f, b).unwrap();
}

#[test]
fn check_writes_nothing_on_a_healthy_store_and_runs_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let before = files(&db);
    let (code, out) = cli_check(&db);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 1500 vectors verified"), "{out}");
    assert_eq!(files(&db), before, "check changed a byte of the store");
    // A writer holds the store: check neither waits for it nor stops it.
    let w = Store::open(&db).unwrap();
    let r = check_store(&db, None).unwrap();
    assert!(r.is_clean() && r.vectors == 1500, "{r}");
    w.insert(
        "v",
        &[NewVector {
            vector: &[0.5; 16],
            record: None,
        }],
        None,
    )
    .unwrap();
    drop(w);
}

#[test]
fn twenty_checks_beside_a_busy_writer_report_no_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let writer = sc.spawn(|| {
            let w = Store::open(&db).unwrap();
            let rows = common::clustered(2000, 16, 6, 9);
            let mut batches = 0;
            for chunk in rows.chunks(50).cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch: Vec<NewVector> = chunk
                    .iter()
                    .map(|v| NewVector {
                        vector: v,
                        record: None,
                    })
                    .collect();
                w.insert("v", &batch, None).unwrap();
                batches += 1;
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            batches
        });
        let mut seen = Vec::new();
        for trial in 0..20 {
            let r = check_store(&db, None).unwrap();
            assert!(
                r.is_clean(),
                "trial {trial}: false damage beside a writer: {r}"
            );
            seen.push(r.vectors);
        }
        stop.store(true, Ordering::Relaxed);
        let batches = writer.join().unwrap();
        assert!(batches > 0, "the writer was blocked");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    });
}

#[test]
fn a_flipped_type_name_byte_is_reported_and_nothing_gets_worse() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    flip_type_name(&db);
    let worked = works(&db);
    let before = files(&db);
    let (code, out) = cli_check(&db);
    assert_eq!(code, 1, "damage must be reported: {out}");
    assert!(out.contains("DAMAGED"), "{out}");
    assert_eq!(files(&db), before, "check wrote to a damaged store");
    assert_eq!(
        works(&db),
        worked,
        "a command that worked before check fails after it"
    );
    // The repaired copy is a store that passes check; the source is untouched.
    let fixed = dir.path().join("fixed");
    let r = repair_store(&db, &fixed, None).unwrap();
    assert_eq!(files(&db), before, "repair wrote to the store");
    let c = check_store(&fixed, None).unwrap();
    assert!(c.is_clean(), "the repaired copy fails check: {c}\n{r}");
    assert!(works(&fixed));
}

#[test]
fn a_garbage_manifest_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let model = std::fs::read_dir(db.join("models"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(model.join("manifest.json"), b"garbage").unwrap();
    let (code, out) = cli_check(&db);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("model 'vortex-tiny-phantom'"), "{out}");
    // A backup leaves the damaged model out (and says so): its copy passes check.
    let copy = dir.path().join("copy");
    let o = vortexdb(&["backup", s(&db), s(&copy)]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("PARTIAL"));
    assert!(check_store(&copy, None).unwrap().is_clean());
}

#[test]
fn backup_of_stores_with_a_zeroed_page_never_panics_and_salvages_what_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let clean = store(dir.path());
    let pages = std::fs::metadata(clean.join("vortex.redb")).unwrap().len() / 4096;
    let (mut full, mut partial, mut refused) = (0, 0, 0);
    for page in 1..pages {
        let db = dir.path().join(format!("p{page}"));
        common::fixture::copy_dir(&clean, &db);
        let f = db.join("vortex.redb");
        let mut b = std::fs::read(&f).unwrap();
        b[(page * 4096) as usize..((page + 1) * 4096) as usize].fill(0);
        std::fs::write(&f, b).unwrap();
        let source = check_store(&db, None);
        let dest = dir.path().join(format!("b{page}"));
        let got =
            std::panic::catch_unwind(|| Store::open_read_only(&db).and_then(|st| st.backup(&dest)));
        let got = got.unwrap_or_else(|_| panic!("page {page}: backup panicked"));
        match got {
            Ok(r) => {
                let c = check_store(&dest, None).unwrap();
                assert!(
                    c.is_clean(),
                    "page {page}: the backup fails check: {c}\n{r}"
                );
                // Every record and vector the source still gives is in the copy.
                if let Ok(src) = &source {
                    assert!(c.vectors >= src.vectors, "page {page}: {c}\n{src}");
                    for (t, n) in &src.tables {
                        if t != "snapshots" {
                            let m = c.tables.get(t).copied().unwrap_or(0);
                            assert!(m >= *n, "page {page}: table {t}: {m} < {n}\n{r}");
                        }
                    }
                }
                if r.complete { full += 1 } else { partial += 1 }
            }
            // Nothing readable to copy from (the store does not open): a clear error.
            Err(e) => {
                assert!(!e.is_internal(), "page {page}: {e}");
                assert!(!dest.exists());
                refused += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&db);
        let _ = std::fs::remove_dir_all(&dest);
    }
    eprintln!("{pages} pages: {full} full copies, {partial} partial, {refused} refused");
    assert!(full + partial > 0);
}

#[test]
fn a_backup_inside_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    for dest in [db.join("copy"), db.join("index").join("copy")] {
        let o = vortexdb(&["backup", s(&db), s(&dest)]);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("inside the store"));
        assert!(!dest.exists());
    }
}
