//! k-means timing for `benches/kmeans.py` (issue 8), which runs scikit-learn on the
//! same file in the same run: reads an `n x d` float32 NPY, clusters it with
//! [`vortexdb::kmeans`] and prints one JSON object (seconds without the load,
//! inertia, iterations).
//!
//!     cargo bench --bench kmeans -- --input X.npy --k 5 --restarts 3 --max-iter 20 --tol 0 --seed 0

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use vortexdb::{KMeansOptions, kmeans};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let Some(input) = get("--input").map(PathBuf::from) else {
        eprintln!(
            "usage: cargo bench --bench kmeans -- --input X.npy [--k 5] [--restarts 3] [--max-iter 20] [--tol 0] [--seed 0]"
        );
        return;
    };
    let opts = KMeansOptions {
        k: get("--k").map(|v| v.parse().unwrap()).unwrap_or(5),
        restarts: get("--restarts").map(|v| v.parse().unwrap()).unwrap_or(3),
        max_iter: get("--max-iter").map(|v| v.parse().unwrap()).unwrap_or(20),
        tol: get("--tol").map(|v| v.parse().unwrap()).unwrap_or(0.0),
        seed: get("--seed").map(|v| v.parse().unwrap()).unwrap_or(0),
    };
    let (shape, data) = vortexdb::read_f32_nd(&input).expect("read input");
    assert_eq!(shape.len(), 2, "input must be n x d");
    let t = Instant::now();
    let km = kmeans(&data, shape[1], &opts).expect("kmeans");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"n": shape[0], "d": shape[1], "k": opts.k, "restarts": opts.restarts,
            "max_iter": opts.max_iter, "seconds": secs, "inertia": km.inertia,
            "iterations": km.iterations, "threads": rayon::current_num_threads()})
    );
}
