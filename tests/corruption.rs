//! Damaged files: a damaged index snapshot is rebuilt with a warning and never gives a
//! wrong answer; a damaged vortex.redb gives a clear error naming it, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{clustered, expect_ok, vortexdb, write_npy};

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    queries: PathBuf,
    out: PathBuf,
    rows: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("db");
    let file = dir.path().join("v.npy");
    let queries = dir.path().join("q.npy");
    let rows = clustered(3000, 16, 12, 11);
    write_npy(&file, &rows);
    write_npy(&queries, &clustered(20, 16, 12, 12));
    expect_ok(&["init", store.to_str().unwrap()]);
    expect_ok(&[
        "vectors",
        "import",
        store.to_str().unwrap(),
        "--collection",
        "c",
        file.to_str().unwrap(),
    ]);
    let out = dir.path().join("ids.npy");
    Fixture {
        store,
        queries,
        out,
        rows,
        _dir: dir,
    }
}

fn search(f: &Fixture, exact: bool) -> (Vec<u8>, String) {
    let mut args = vec![
        "vectors",
        "search",
        f.store.to_str().unwrap(),
        "--collection",
        "c",
        "--queries",
        f.queries.to_str().unwrap(),
        "--k",
        "10",
        "--ef",
        "200",
        "--out",
        f.out.to_str().unwrap(),
    ];
    if exact {
        args.push("--exact");
    }
    let o = vortexdb(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "search failed: {err}");
    (std::fs::read(&f.out).unwrap(), err)
}

fn snapshot_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(store.join("index")).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    assert_eq!(out.len(), 1, "expected one snapshot file: {out:?}");
    out
}

#[test]
fn damaged_snapshot_is_rebuilt_with_warning() {
    type Damage = fn(&Path);
    let damages: Vec<(&str, Damage)> = vec![
        ("truncated", |p| {
            let b = std::fs::read(p).unwrap();
            std::fs::write(p, &b[..b.len() / 2]).unwrap();
        }),
        ("byte flipped in links", |p| {
            let mut b = std::fs::read(p).unwrap();
            let i = b.len() / 3;
            b[i] ^= 0x10;
            std::fs::write(p, b).unwrap();
        }),
        ("byte flipped in vectors", |p| {
            let mut b = std::fs::read(p).unwrap();
            let i = b.len() * 5 / 6;
            b[i] ^= 0x01;
            std::fs::write(p, b).unwrap();
        }),
        ("footer damaged", |p| {
            let mut b = std::fs::read(p).unwrap();
            let i = b.len() - 1;
            b[i] ^= 0xff;
            std::fs::write(p, b).unwrap();
        }),
        ("emptied", |p| std::fs::write(p, b"").unwrap()),
        ("deleted", |p| std::fs::remove_file(p).unwrap()),
    ];
    for (name, damage) in damages {
        let f = fixture();
        let (good, err) = search(&f, false);
        assert!(
            !err.contains("warning"),
            "unexpected warning on a healthy store: {err}"
        );
        let (exact, _) = search(&f, true);
        let files = snapshot_files(&f.store);
        damage(&files[0]);
        let (after, err) = search(&f, false);
        assert!(
            err.contains("warning") && err.contains("rebuilding"),
            "{name}: no warning: {err}"
        );
        // The rebuilt graph answers like the original: compare with exact search.
        let agree = common_ids(&after, &exact);
        assert!(agree >= 190, "rebuilt index recall {agree}/200");
        assert!(common_ids(&good, &exact) >= 190);
        // `check` notes the derived snapshot (it writes nothing, so the note stays);
        // `repair --index-only` rewrites it for good.
        let checked = expect_ok(&["check", f.store.to_str().unwrap()]);
        assert!(checked.starts_with("ok: 3000 vectors"), "{checked}");
        assert!(checked.contains("repair --index-only"), "{checked}");
        expect_ok(&["repair", "--index-only", f.store.to_str().unwrap()]);
        let (_, err) = search(&f, false);
        assert!(
            !err.contains("warning"),
            "snapshot not repaired by repair --index-only: {err}"
        );
    }
}

fn common_ids(a: &[u8], b: &[u8]) -> usize {
    let read = |bytes: &[u8]| -> Vec<Vec<i64>> {
        let npy = npyz::NpyFile::new(bytes).unwrap();
        let v: Vec<i64> = npy.into_vec().unwrap();
        v.chunks(10).map(|c| c.to_vec()).collect()
    };
    let (a, b) = (read(a), read(b));
    a.iter()
        .zip(&b)
        .map(|(x, y)| x.iter().filter(|i| y.contains(i)).count())
        .sum()
}

#[test]
fn damaged_database_gives_clear_error_not_panic() {
    // (1) truncated, (2) header overwritten, (3) a stored vector's bytes flipped (in
    // its packed file: the error names that file).
    for case in 0..3 {
        let f = fixture();
        let db = if case == 2 {
            f.store.join(vortexdb::VECTORS_DIR).join("c0-e0.vec")
        } else {
            f.store.join("vortex.redb")
        };
        let named = if case == 2 {
            "c0-e0.vec"
        } else {
            "vortex.redb"
        };
        let mut bytes = std::fs::read(&db).unwrap();
        match case {
            0 => bytes.truncate(bytes.len() / 3),
            1 => bytes[..4096]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i * 7) as u8),
            _ => {
                let needle: Vec<u8> = f.rows[1234].iter().flat_map(|x| x.to_le_bytes()).collect();
                let at = bytes
                    .windows(needle.len())
                    .position(|w| w == needle)
                    .expect("vector bytes in file");
                bytes[at + 9] ^= 0x01;
            }
        }
        std::fs::write(&db, &bytes).unwrap();
        for args in [
            vec!["info", f.store.to_str().unwrap()],
            vec!["check", f.store.to_str().unwrap()],
            vec![
                "vectors",
                "search",
                f.store.to_str().unwrap(),
                "--collection",
                "c",
                "--exact",
                "--queries",
                f.queries.to_str().unwrap(),
                "--out",
                f.out.to_str().unwrap(),
            ],
        ] {
            let o = vortexdb(&args);
            // `check` prints its report (the damage it found) on stdout.
            let err = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            if case == 2 && args[0] == "info" {
                assert!(
                    o.status.success(),
                    "info reads no vector; should work: {err}"
                );
                continue;
            }
            assert!(
                !err.contains("panicked"),
                "case {case} {args:?}: panic: {err}"
            );
            assert_eq!(
                o.status.code(),
                Some(1),
                "case {case} {args:?}: exit {:?}: {err}",
                o.status.code()
            );
            assert!(
                err.contains(named) && err.contains("damaged"),
                "case {case} {args:?}: error does not name the file as damaged: {err}"
            );
        }
    }
}
