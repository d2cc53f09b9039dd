"""k-means on 1M x 512 (issue 8): vortexdb's k-means against scikit-learn's
KMeans(algorithm="lloyd") in the same run, same k, restarts and iteration cap.

Data look like learned embeddings: 100 clusters in a 32-d latent space mapped linearly
to 512-d, plus noise (design.md section 7), written once to bench-data/.

    python -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install numpy scikit-learn
    /tmp/skvenv/bin/python benches/kmeans.py [--n 1000000] [--rounds 2]

Prints one JSON object; the figures go to BENCHMARKS.md.
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

ROOT = Path(__file__).resolve().parent.parent


def make_data(path: Path, n: int, d: int) -> None:
    rng = np.random.default_rng(8)
    latent, clusters = 32, 100
    centres = rng.normal(size=(clusters, latent)) * 3.0
    mapping = rng.normal(size=(latent, d)).astype(np.float32) / np.sqrt(latent)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        z = centres[rng.integers(0, clusters, m)] + rng.normal(size=(m, latent))
        out[i : i + m] = (z.astype(np.float32) @ mapping) + 0.05 * rng.normal(
            size=(m, d)
        ).astype(np.float32)
    out.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--max-iter", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    data_dir = ROOT / "bench-data"
    data_dir.mkdir(exist_ok=True)
    path = data_dir / f"kmeans-{a.n}x{a.d}.npy"
    if not path.exists():
        make_data(path, a.n, a.d)
    subprocess.run(
        ["cargo", "bench", "--bench", "kmeans", "--no-run"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    x = np.load(path)
    rust, sk = [], []
    for r in range(a.rounds):
        cmd = [
            "cargo",
            "bench",
            "--bench",
            "kmeans",
            "--",
            "--input",
            str(path),
            "--k",
            str(a.k),
            "--restarts",
            str(a.restarts),
            "--max-iter",
            str(a.max_iter),
            "--tol",
            "0",
            "--seed",
            str(r),
        ]
        out = subprocess.run(
            cmd, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        rust.append(json.loads(out.strip().splitlines()[-1]))
        t = time.perf_counter()
        km = KMeans(
            n_clusters=a.k,
            n_init=a.restarts,
            max_iter=a.max_iter,
            tol=0.0,
            random_state=r,
            algorithm="lloyd",
        ).fit(x)
        sk.append(
            {
                "seconds": time.perf_counter() - t,
                "inertia": float(km.inertia_),
                "iterations": int(km.n_iter_),
            }
        )
    best_r = min(x["seconds"] for x in rust)
    best_s = min(x["seconds"] for x in sk)
    ratio_inertia = [r["inertia"] / s["inertia"] for r, s in zip(rust, sk)]
    print(
        json.dumps(
            {
                "n": a.n,
                "d": a.d,
                "k": a.k,
                "restarts": a.restarts,
                "max_iter": a.max_iter,
                "vortexdb": rust,
                "sklearn": sk,
                "best_seconds": {"vortexdb": best_r, "sklearn": best_s},
                "speedup_vs_sklearn": best_s / best_r,
                "inertia_ratio_per_round": ratio_inertia,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
