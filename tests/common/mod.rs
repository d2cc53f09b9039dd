//! Helpers shared by the integration tests: a deterministic generator of clustered
//! vectors (like learned embeddings), NPY writing, phantoms, new stores, and running
//! the CLI.
#![allow(dead_code)]

pub mod fixture;
pub mod seed7;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built-in default model's directory.
pub const MODEL: &str = "models/default";

/// A path as a CLI argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A new, empty store `dir/name` (through the CLI).
pub fn new_store(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    expect_ok(&["init", s(&db)]);
    db
}

/// A new store `dir/name` with the default model registered.
pub fn new_model_store(dir: &Path, name: &str) -> PathBuf {
    let db = new_store(dir, name);
    expect_ok(&["models", "add", s(&db), MODEL]);
    db
}

/// Every stored (origin -> vector) of `sample` in `collection`, in origin order,
/// failing on two patches at one origin.
pub fn stored_patches(db: &Path, collection: &str, sample: &str) -> Vec<([i64; 3], Vec<f32>)> {
    let store = vortexdb::Store::open_read_only(db).unwrap();
    let info = store.collection(collection).unwrap();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for id in 0..info.next_id {
        if let Some((v, Some(r))) = store.get(collection, id).unwrap()
            && r.sample == sample
        {
            assert!(seen.insert(r.origin), "duplicate patch at {:?}", r.origin);
            out.push((r.origin, v));
        }
    }
    out.sort_by_key(|x| x.0);
    out
}

/// The phantom of `seed` and `shape` (planes every `plane_step` slices) in `dir/ph`.
pub fn phantom(dir: &Path, seed: u64, shape: [usize; 3], plane_step: usize) -> PathBuf {
    let out = dir.join("ph");
    vortexdb::generate_phantom(
        &vortexdb::PhantomParams {
            seed,
            shape,
            plane_step,
            overwrite: false,
            oblique: 0,
        },
        &out,
    )
    .unwrap();
    out
}

/// xorshift64* generator: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Approximately standard normal (sum of uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 1.732 - 3.464
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `n` vectors of dimension `dim` drawn from `clusters` clusters in a low-dimensional
/// latent space mapped linearly to `dim`, plus a little noise.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let latent = 8.min(dim);
    let mut rng = Rng::new(seed);
    let map: Vec<f32> = (0..latent * dim).map(|_| rng.normal()).collect();
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..latent).map(|_| rng.normal() * 3.0).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.below(clusters as u64) as usize];
            let z: Vec<f32> = c.iter().map(|x| x + rng.normal()).collect();
            (0..dim)
                .map(|j| {
                    (0..latent).map(|l| z[l] * map[l * dim + j]).sum::<f32>() + 0.1 * rng.normal()
                })
                .collect()
        })
        .collect()
}

/// Write rows as a float32 NPY file.
pub fn write_npy(path: &Path, rows: &[Vec<f32>]) {
    vortexdb::write_f32_npy(path, rows, rows[0].len()).unwrap();
}

/// Path of the built CLI (`VORTEXDB_BIN` overrides it, e.g. for a long soak run on a
/// copy of the binary while the tree is rebuilt).
pub fn bin() -> PathBuf {
    std::env::var_os("VORTEXDB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vortexdb")))
}

/// Run the CLI with arguments.
pub fn vortexdb(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn vortexdb")
}

/// Address-space limit of bad-input runs: an attempted huge allocation aborts the
/// process (and fails the test) instead of succeeding by luck on a big machine.
pub const BAD_INPUT_AS_LIMIT: u64 = 3 << 30;

/// Run the CLI under `prlimit --as` ([`BAD_INPUT_AS_LIMIT`]) with a 1 GiB memory
/// budget (`VORTEX_MEMORY_BUDGET`), so sizes read from files are checked against it.
pub fn vortexdb_limited(args: &[&str]) -> Output {
    Command::new("prlimit")
        .arg(format!("--as={BAD_INPUT_AS_LIMIT}"))
        .arg("--")
        .arg(bin())
        .args(args)
        .env("VORTEX_MEMORY_BUDGET", "1G")
        .output()
        .expect("spawn prlimit (util-linux)")
}

/// Write rows as a Parquet vector file with a `sample` column (and z, y, x = row).
pub fn write_vector_parquet(path: &Path, rows: &[Vec<f32>], samples: &[String]) {
    use arrow_array::builder::{Float32Builder, ListBuilder};
    use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let mut lb = ListBuilder::new(Float32Builder::new());
    for r in rows {
        lb.values().append_slice(r);
        lb.append(true);
    }
    let list = Arc::new(lb.finish());
    let mut fields = vec![
        Field::new("vector", list.data_type().clone(), true),
        Field::new("sample", DataType::Utf8, false),
    ];
    let mut cols: Vec<arrow_array::ArrayRef> = vec![
        list,
        Arc::new(StringArray::from_iter_values(samples.iter())),
    ];
    for axis in ["z", "y", "x"] {
        fields.push(Field::new(axis, DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    write_batch(path, &batch);
}

/// One Arrow record batch as a Parquet file (default writer settings).
pub fn write_batch(path: &Path, batch: &arrow_array::RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Run (under the address-space limit of [`vortexdb_limited`]) and expect failure
/// with exit code 1 and a message containing every needle.
pub fn expect_user_error(args: &[&str], needles: &[&str]) -> String {
    let o = vortexdb_limited(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "args {args:?}: expected exit 1, got {:?}; stderr: {err}",
        o.status.code()
    );
    for n in needles {
        assert!(err.contains(n), "args {args:?}: stderr lacks '{n}': {err}");
    }
    assert!(!err.contains("panicked"), "panic leaked: {err}");
    err
}

/// Run and expect success; returns stdout.
pub fn expect_ok(args: &[&str]) -> String {
    let o = vortexdb(args);
    assert!(
        o.status.success(),
        "args {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Brute-force top-k by L2 over `rows` (ties by smaller id).
pub fn brute_force(rows: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.iter()
                    .zip(q)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt(),
                i as u64,
            )
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|x| x.1).collect()
}

/// Path -> bytes of every file under `dir`.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
