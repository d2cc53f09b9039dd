//! Stores written by earlier releases open and answer as they did: the schema-2 store
//! of `tests/fixtures/store_v2` (written before the library-first change, commit
//! f46256e) is read as it is, through the library and through the CLI.

mod common;

use std::path::Path;

use common::fixture::{answers_as_recorded, store_from_fixture};
use common::{expect_ok, s};
use vortexdb::{
    FORMAT_VERSION, Method, OLDEST_SUPPORTED, PatchQuery, PatchSource, SearchOptions, Store,
    predict, query_patch, read_vectors,
};

const FIXTURE: &str = "tests/fixtures/store_v2";

fn json_file(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap()).unwrap()
}

#[test]
fn format_constants_cover_the_fixtures() {
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(OLDEST_SUPPORTED, 1);
}

#[test]
fn a_schema_2_store_of_the_previous_release_answers_as_before() {
    let (_dir, store) = store_from_fixture(Path::new(FIXTURE));
    // Opening it for writing moves its vectors into packed files (schema 3).
    let db = Store::open(&store).unwrap();
    assert_eq!(db.info().unwrap().schema_version, 3);
    let warnings = db.take_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("migrated from schema 2 to schema 3")),
        "{warnings:?}"
    );
    assert!(store.join("vortex.redb").exists());
    let packed: Vec<_> = std::fs::read_dir(store.join(vortexdb::VECTORS_DIR))
        .unwrap()
        .flatten()
        .collect();
    assert!(!packed.is_empty(), "no packed vector files after migration");
    // Library: the same hits as the previous release's CLI printed.
    let q = PatchQuery {
        top: 5,
        exact: true,
        ..PatchQuery::new(PatchSource::Stored {
            sample: "ph5".into(),
            at: [8, 48, 48],
        })
    };
    // Through text, as the fixture was: both sides parsed by the same float parser.
    let text = serde_json::to_string(&query_patch(&db, &q).unwrap()).unwrap();
    let got: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want = json_file("query_patch.json");
    assert_eq!(got["hits"], want["hits"]);
    assert_eq!(got["query"], want["query"]);
    // Raw vectors with two deletes, searched exactly: the ids of the previous release.
    let (queries, _) = read_vectors(&Path::new(FIXTURE).join("queries.npy"), None).unwrap();
    let opts = SearchOptions {
        k: 3,
        exact: true,
        ..Default::default()
    };
    let hits = db.search("raw", &queries, &opts).unwrap();
    let (ids, _) = read_i64_npy(&Path::new(FIXTURE).join("search_ids.npy"));
    let got: Vec<i64> = hits.iter().flatten().map(|h| h.id as i64).collect();
    assert_eq!(got, ids);
    assert!(
        !got.contains(&3) && !got.contains(&7),
        "a deleted vector came back"
    );
    // Predictions and domains stored by the previous release are read.
    let pred = predict(&db, "ph5", &Method::Predictor).unwrap();
    assert_eq!(pred.len(), 81);
    let dom = db.domains("ph5").unwrap().expect("domains of the fixture");
    assert_eq!((dom.k, dom.ids.len()), (3, 81));
    drop(db);
    // CLI: the same JSON answers.
    answers_as_recorded(Path::new(FIXTURE), &store);
    assert!(expect_ok(&["check", s(&store)]).starts_with("ok: 123 vectors"));
}

/// An N x K int64 NPY (little endian, C order) as a flat vector and its shape.
fn read_i64_npy(path: &Path) -> (Vec<i64>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'<i8'"), "{header}");
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    let data = bytes[10 + hlen..]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (data, shape)
}
