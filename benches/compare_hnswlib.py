"""Compare vortexdb's index with hnswlib on the same clustered vectors, same run.

Generates a fixed-seed data set that looks like learned embeddings (a mixture of
clusters in a low-dimensional latent space, mapped linearly to D dimensions, plus a
little noise), computes exact top-10 neighbours, measures hnswlib (build time,
recall@10 and queries/s at several ef) and then runs `cargo bench --bench index` on
the same files with the same thread count. Prints a table of ratios and writes
bench-data/results-n{N}-d{D}.json.

    .venv/bin/python benches/compare_hnswlib.py --n 100000 --dim 512
    .venv/bin/python benches/compare_hnswlib.py --n 1000000 --dim 128
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import hnswlib
import numpy as np
from bench_data import clustered

ROOT = Path(__file__).resolve().parent.parent


def make_data(out: Path, n: int, dim: int, nq: int, seed: int) -> None:
    if (out / "gt.npy").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    latent_dim, clusters = 32, 100
    centres = (rng.standard_normal((clusters, latent_dim)) * 3.0).astype(np.float32)
    mapping = (rng.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)).astype(
        np.float32
    )
    base = np.concatenate(
        [
            clustered(min(100_000, n - i), dim, rng, centres, mapping)
            for i in range(0, n, 100_000)
        ]
    )
    queries = clustered(nq, dim, rng, centres, mapping)
    np.save(out / "base.npy", base)
    np.save(out / "queries.npy", queries)
    # exact top-10 by squared L2, in chunks
    qn = (queries**2).sum(1)
    best_d = np.full((nq, 10), np.inf, dtype=np.float32)
    best_i = np.zeros((nq, 10), dtype=np.int64)
    for s in range(0, n, 50_000):
        chunk = base[s : s + 50_000]
        d = qn[:, None] - 2 * queries @ chunk.T + (chunk**2).sum(1)[None, :]
        idx = np.argpartition(d, 10, axis=1)[:, :10]
        cd = np.take_along_axis(d, idx, 1)
        all_d = np.concatenate([best_d, cd], 1)
        all_i = np.concatenate([best_i, idx + s], 1)
        order = np.argsort(all_d, 1)[:, :10]
        best_d = np.take_along_axis(all_d, order, 1)
        best_i = np.take_along_axis(all_i, order, 1)
    np.save(out / "gt.npy", best_i.astype(np.float32))


def bench_hnswlib(data: Path, threads: int, efs: list[int]) -> dict:
    base = np.load(data / "base.npy")
    queries = np.load(data / "queries.npy")
    gt = np.load(data / "gt.npy").astype(np.int64)
    n, dim = base.shape
    index = hnswlib.Index(space="l2", dim=dim)
    index.init_index(max_elements=n, ef_construction=200, M=16, random_seed=100)
    index.set_num_threads(threads)
    t = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=threads)
    build = time.perf_counter() - t
    print(f"hnswlib build {build:.1f}s", file=sys.stderr)
    runs = []
    for ef in efs:
        index.set_ef(ef)
        s = float("inf")
        for _ in range(3):  # best of 3, as on the Rust side
            t = time.perf_counter()
            labels, _ = index.knn_query(queries, k=10, num_threads=threads)
            s = min(s, time.perf_counter() - t)
        rec = np.mean(
            [len(set(labels[i]) & set(gt[i])) / 10 for i in range(len(queries))]
        )
        print(
            f"hnswlib ef {ef}: recall {rec:.4f}, {len(queries) / s:.0f} q/s",
            file=sys.stderr,
        )
        runs.append({"ef": ef, "recall": float(rec), "qps": len(queries) / s})
    return {"build_s": build, "search": runs}


def qps_at_recall(runs: list[dict], target: float) -> float | None:
    """Queries/s at `target` recall, interpolated linearly between measured ef."""
    pts = sorted((r["recall"], r["qps"]) for r in runs)
    for (r0, q0), (r1, q1) in itertools.pairwise(pts):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--efs", default="16,32,64,128,256")
    args = ap.parse_args()
    efs = [int(x) for x in args.efs.split(",")]
    data = ROOT / "bench-data" / f"n{args.n}-d{args.dim}"
    t = time.perf_counter()
    make_data(data, args.n, args.dim, args.queries, args.seed)
    print(f"data ready in {time.perf_counter() - t:.1f}s: {data}", file=sys.stderr)
    ours_out = subprocess.run(
        [
            "cargo",
            "bench",
            "--bench",
            "index",
            "--",
            "--data",
            str(data),
            "--threads",
            str(args.threads),
            "--efs",
            args.efs,
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAYON_NUM_THREADS": str(args.threads)},
    ).stdout
    ours = json.loads(ours_out.strip().splitlines()[-1])
    theirs = bench_hnswlib(data, args.threads, efs)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "threads": args.threads,
        "vortexdb": ours,
        "hnswlib": theirs,
    }
    print(
        f"\n## {args.n} x {args.dim}, M=16, ef_construction=200, {args.threads} threads\n"
    )
    print(
        f"| build | vortexdb graph {ours['graph_build_s']:.1f} s | hnswlib {theirs['build_s']:.1f} s "
        f"| ratio {ours['graph_build_s'] / theirs['build_s']:.2f}x |"
    )
    print(
        "\n| ef | recall vortexdb (graph) | q/s vortexdb (graph) | recall vortexdb (store) "
        "| q/s vortexdb (store) | recall hnswlib | q/s hnswlib |"
    )
    print("|---|---|---|---|---|---|---|")
    store_runs = (ours.get("store") or {}).get("search") or [{}] * len(efs)
    for g, s, h in zip(ours["graph_search"], store_runs, theirs["search"]):
        print(
            f"| {g['ef']} | {g['recall']:.4f} | {g['qps']:.0f} | {s.get('recall', float('nan')):.4f} "
            f"| {s.get('qps', float('nan')):.0f} | {h['recall']:.4f} | {h['qps']:.0f} |"
        )
    print()
    for target in (0.90, 0.95, 0.99):
        b = qps_at_recall(theirs["search"], target)
        for label, runs in (
            ("graph", ours["graph_search"]),
            ("store", store_runs if ours.get("store") else None),
        ):
            a = qps_at_recall(runs, target) if runs else None
            if a and b:
                print(
                    f"q/s at recall {target}: vortexdb {label} {a:.0f}, hnswlib {b:.0f}, ratio {a / b:.2f}x"
                )
                result[f"qps_ratio_{label}_at_{target}"] = a / b
    if ours.get("store"):
        st = ours["store"]
        print(
            f"\nstore: redb writes {st['redb_write_s']:.1f} s, index + snapshot {st['index_and_snapshot_s']:.1f} s, "
            f"reopen + first query {st['reopen_first_query_s']:.2f} s, vortex.redb {st['db_bytes'] / 2**20:.0f} MiB"
        )
    result["build_ratio"] = ours["graph_build_s"] / theirs["build_s"]
    (ROOT / "bench-data" / f"results-n{args.n}-d{args.dim}.json").write_text(
        json.dumps(result, indent=1)
    )


if __name__ == "__main__":
    main()
