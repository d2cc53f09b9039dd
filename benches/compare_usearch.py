"""Measure usearch (f32, i8, b1, quantized ones with and without exact rescoring)
and vortexdb's own HNSW (f32, int8 and binary codes in RAM, natively rescored on its
packed f32 vectors) against hnswlib on the same embedding-like vectors, same run.

The data: N fixed-seed vectors from 100 Gaussian clusters in a 32-d latent space,
mapped linearly to D dimensions plus a little noise (the generator of
compare_hnswlib.py), normalised, cosine metric; Q queries from the same
distribution; exact top-10 by brute force (NumPy, in chunks).

Every side is built once (M = connectivity = 16, ef_construction = expansion_add =
200, the given thread count), saved, then served in fresh subprocesses, round by
round (A, B, C, ... A, B, C, ...), best q/s of the rounds kept. A serving process
reopens the saved index (usearch: memory-mapped, `Index.restore(path, view=True)`;
hnswlib: `load_index`; vortexdb: `open` + first query, which loads its graph
snapshot), runs the ef sweep (len(efs) x Q queries: 10,000 with the defaults) and
reads its own /proc/self/status, so no side pollutes another's memory figures.
"+ rescore xK" sides ask the quantized index for K x 10 candidates and re-rank them
by exact cosine on the f32 vectors, read from a memory-mapped .npy (file-backed
pages: on-disk data, not anonymous memory), in a pool of `--threads` Python threads;
their search effectively runs at max(ef, K x 10), as hnswlib's and usearch's do when
more results than ef are asked for. One more process per usearch index loads it
into memory (`view=False`) for the load-vs-view comparison. "build cpu" and "search
cpu util" are process CPU seconds per wall second: about the threads really busy.

"vortexdb int8 / binary" sides are collections created with that quantization; their
"rescore xK" is the store's own rescoring (`search(..., rescore=K)`: K x 10 candidates
from the graph re-ranked on the packed f32 rows), not the Python one.

Needs Linux (/proc), NumPy and whichever of usearch, hnswlib and vortexdb are
installed (missing ones are skipped); `--sides` picks builds:

    python benches/compare_usearch.py --n 200000 --dim 512 --queries 2000 \\
        --json /tmp/compare_usearch.json
    python benches/compare_usearch.py --n 2000000 --dim 512 --queries 2000 \\
        --sides hnswlib,vortexdb,vortexdb-int8,vortexdb-binary --rounds 2
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bench_data import clustered

K = 10
BUILDS = [
    "hnswlib",
    "vortexdb",
    "vortexdb-int8",
    "vortexdb-binary",
    "usearch-f32",
    "usearch-i8",
    "usearch-b1",
]
NEEDS = {
    "hnswlib": "hnswlib",
    "vortexdb": "vortexdb",
    "vortexdb-int8": "vortexdb",
    "vortexdb-binary": "vortexdb",
    "usearch-f32": "usearch",
    "usearch-i8": "usearch",
    "usearch-b1": "usearch",
}
INDEX_FILE = {
    "hnswlib": "hnswlib.bin",
    "vortexdb": "vortexdb-store",
    "vortexdb-int8": "vortexdb-int8-store",
    "vortexdb-binary": "vortexdb-binary-store",
    "usearch-f32": "usearch-f32.usearch",
    "usearch-i8": "usearch-i8.usearch",
    "usearch-b1": "usearch-b1.usearch",
}


# -- data -------------------------------------------------------------------------


def normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(work: Path, n: int, dim: int, nq: int, seed: int) -> dict:
    """base.npy, queries.npy (both unit rows) and gt.npy (exact top-10 by cosine)."""
    meta = {"n": n, "dim": dim, "queries": nq, "seed": seed}
    meta_file = work / "data.json"
    if meta_file.exists() and json.loads(meta_file.read_text()) == meta:
        return {"generated": False}
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    latent_dim, clusters = 32, 100
    centres = (rng.standard_normal((clusters, latent_dim)) * 3.0).astype(np.float32)
    mapping = (rng.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)).astype(
        np.float32
    )
    base = np.concatenate(
        [
            normalised(clustered(min(100_000, n - i), dim, rng, centres, mapping))
            for i in range(0, n, 100_000)
        ]
    )
    queries = normalised(clustered(nq, dim, rng, centres, mapping))
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    best_s = np.full((nq, K), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, K), dtype=np.int64)
    step = 20_000
    for s in range(0, n, step):
        sims = queries @ base[s : s + step].T
        idx = np.argpartition(-sims, K, axis=1)[:, :K]
        all_s = np.concatenate([best_s, np.take_along_axis(sims, idx, 1)], 1)
        all_i = np.concatenate([best_i, idx + s], 1)
        order = np.argsort(-all_s, 1)[:, :K]
        best_s = np.take_along_axis(all_s, order, 1)
        best_i = np.take_along_axis(all_i, order, 1)
    np.save(work / "base.npy", base)
    np.save(work / "queries.npy", queries)
    np.save(work / "gt.npy", best_i)
    meta_file.write_text(json.dumps(meta))
    return {
        "generated": True,
        "generate_s": gen_s,
        "ground_truth_s": time.perf_counter() - t,
    }


# -- measuring helpers --------------------------------------------------------------


def proc_status() -> dict[str, int]:
    """This process's VmRSS, RssAnon, RssFile and VmHWM, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    return float((ids[:, :K, None] == gt[:, None, :]).any(2).sum() / gt.size)


def packed(x: np.ndarray) -> np.ndarray:
    """Sign bits, 8 dimensions a byte, for usearch's b1 / Hamming index."""
    return np.packbits(x > 0, axis=1)


# -- worker: build ------------------------------------------------------------------


def build(side: str, work: Path, threads: int, m: int, efc: int) -> dict:
    base = np.load(work / "base.npy")
    n, dim = base.shape
    path = work / INDEX_FILE[side]
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    out: dict = {}
    if side == "usearch-b1":
        base = packed(base)
    before = proc_status()
    c0, t0 = cpu_s(), time.perf_counter()
    if side == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=dim)
        index.init_index(max_elements=n, ef_construction=efc, M=m, random_seed=100)
        index.set_num_threads(threads)
        index.add_items(base, np.arange(n), num_threads=threads)
        build_s, c1 = time.perf_counter() - t0, cpu_s()
        after = proc_status()
        t = time.perf_counter()
        index.save_index(str(path))
        out["save_s"] = time.perf_counter() - t
        out["version"] = _version("hnswlib")
    elif side.startswith("vortexdb"):
        import vortexdb

        quantization = side.split("-")[1] if "-" in side else "f32"
        with vortexdb.create(path) as db:
            report = db.import_vectors(
                "v",
                base,
                metric="cosine",
                m=m,
                ef_construction=efc,
                quantization=quantization,
            )
            build_s, c1 = time.perf_counter() - t0, cpu_s()
            after = proc_status()
        out["import_report"] = report
        out["note"] = "build = import_vectors: packed writes + graph + snapshot"
        out["snapshot_bytes"] = disk_bytes(path / "index")
        out["packed_bytes"] = disk_bytes(path / "vectors")
        out["redb_bytes"] = disk_bytes(path / "vortex.redb")
        out["version"] = _version("vortexdb")
    else:
        from usearch.index import Index

        dtype = side.split("-")[1]
        index = Index(
            ndim=dim,
            metric="hamming" if dtype == "b1" else "cos",
            dtype=dtype,
            connectivity=m,
            expansion_add=efc,
        )
        index.add(np.arange(n), base, threads=threads)
        build_s, c1 = time.perf_counter() - t0, cpu_s()
        after = proc_status()
        out["memory_usage"] = int(index.memory_usage)
        out["serialized_length"] = int(index.serialized_length)
        out["hardware_acceleration"] = index.hardware_acceleration
        t = time.perf_counter()
        index.save(str(path))
        out["save_s"] = time.perf_counter() - t
        out["version"] = _version("usearch")
    out.update(
        build_s=build_s,
        build_cpu_util=(c1 - c0) / build_s,
        rss_delta=after["VmRSS"] - before["VmRSS"],
        anon_delta=after["RssAnon"] - before["RssAnon"],
        peak_rss=after["VmHWM"],
        disk_bytes=disk_bytes(path),
    )
    return out


# -- worker: serve ------------------------------------------------------------------


def rescored(
    cands: np.ndarray, queries: np.ndarray, vectors: np.ndarray, threads: int
) -> np.ndarray:
    """Top K of each row of `cands` by exact cosine (dot of unit rows) on `vectors`."""
    n = cands.shape[0]
    out = np.empty((n, K), dtype=np.int64)
    size = vectors.shape[0]
    step = 25  # queries a task: keeps the gathered candidate block small

    def chunk(s: int) -> None:
        c = cands[s : s + step].astype(np.int64)
        bad = (c < 0) | (c >= size)
        c[bad] = 0
        v = vectors[c.ravel()].reshape(c.shape[0], c.shape[1], -1)
        sims = np.matmul(v, queries[s : s + step, :, None])[:, :, 0]
        sims[bad] = -np.inf
        top = np.argpartition(-sims, K - 1, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, 1), 1)
        out[s : s + step] = np.take_along_axis(c, np.take_along_axis(top, order, 1), 1)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(chunk, range(0, n, step)))
    return out


def serve(
    side: str, mode: str, rescore: int, work: Path, threads: int, efs: list[int]
) -> dict:
    queries = np.load(work / "queries.npy")
    gt = np.load(work / "gt.npy")
    path = work / INDEX_FILE[side]
    native = side.startswith("vortexdb")  # rescoring inside the store
    kk = K * rescore if rescore and not native else K
    vectors = (
        np.load(work / "base.npy", mmap_mode="r") if rescore and not native else None
    )
    if side == "hnswlib":
        import hnswlib
    elif native:
        import vortexdb
    else:
        from usearch.index import Index
    baseline = proc_status()
    t0 = time.perf_counter()
    if side == "hnswlib":
        index = hnswlib.Index(space="cosine", dim=queries.shape[1])
        index.load_index(str(path))
        index.set_num_threads(threads)

        def search(q: np.ndarray, ef: int) -> np.ndarray:
            index.set_ef(max(ef, kk))
            return index.knn_query(q, k=kk, num_threads=threads)[0]

    elif native:
        db = vortexdb.open(path)

        def search(q: np.ndarray, ef: int) -> np.ndarray:
            return db.search("v", q, k=kk, ef=ef, rescore=rescore)[0]

    else:
        index = Index.restore(str(path), view=mode == "view")
        b1 = side == "usearch-b1"

        def search(q: np.ndarray, ef: int) -> np.ndarray:
            index.expansion_search = ef
            data = packed(q) if b1 else q
            return np.asarray(index.search(data, kk, threads=threads).keys)

    reopen_s = time.perf_counter() - t0
    t = time.perf_counter()
    search(queries[:1], 64)
    first_query_s = time.perf_counter() - t
    after_open = proc_status()
    runs = []
    for ef in efs:
        c0, t = cpu_s(), time.perf_counter()
        ids = search(queries, ef)
        if vectors is not None:
            ids = rescored(ids, queries, vectors, threads)
        wall = time.perf_counter() - t
        runs.append(
            {
                "ef": ef,
                "recall": recall(ids, gt),
                "qps": len(queries) / wall,
                "cpu_util": (cpu_s() - c0) / wall,
            }
        )
    after = proc_status()
    out = {
        "reopen_s": reopen_s,
        "first_query_s": first_query_s,
        "queries_run": len(efs) * len(queries) + 1,
        "baseline": baseline,
        "after_open": after_open,
        "after_queries": after,
        "anon_after_queries": after["RssAnon"] - baseline["RssAnon"],
        "file_after_queries": after["RssFile"] - baseline["RssFile"],
        "search": runs,
    }
    if side.startswith("usearch"):
        out["memory_usage"] = int(index.memory_usage)
        out["hardware_acceleration"] = index.hardware_acceleration
    return out


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


# -- orchestration ------------------------------------------------------------------


def worker(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--workdir",
        str(args.workdir),
        "--threads",
        str(args.threads),
        "--efs",
        args.efs,
        "--n",
        str(args.n),
        "--dim",
        str(args.dim),
        "--queries",
        str(args.queries),
        "--seed",
        str(args.seed),
        *extra,
    ]
    t = str(args.threads)
    env = {
        **os.environ,
        "RAYON_NUM_THREADS": t,
        "OMP_NUM_THREADS": t,
        "OPENBLAS_NUM_THREADS": t,
        "MKL_NUM_THREADS": t,
    }
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def qps_at_recall(runs: list[dict], target: float) -> tuple[float | None, bool]:
    """Queries/s at `target` recall, interpolated linearly along the measured
    recall/q/s frontier (ef steps another ef dominates are dropped), and whether it is
    only a lower bound (every measured ef already beats `target`)."""
    front: list[tuple[float, float]] = []  # recall falling, q/s rising
    for rc, q in sorted(((r["recall"], r["qps"]) for r in runs), reverse=True):
        if not front or q > front[-1][1]:
            front.append((rc, q))
    if not front or front[0][0] < target:
        return None, False
    for (r1, q1), (r0, q0) in itertools.pairwise(front):
        if r0 <= target <= r1:
            q = q1 if r1 == r0 else q1 + (q0 - q1) * (r1 - target) / (r1 - r0)
            return q, False
    return front[-1][1], True


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mib(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f}"


def at(s: dict, target: float) -> str:
    q = s[f"qps_at_{target}"]
    if q is None:
        return "-"
    return (">= " if s[f"qps_at_{target}_lower_bound"] else "") + f"{q:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--efs", default="16,32,64,128,256")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument(
        "--rescore",
        default="4,10",
        help="candidate multiples of k for the i8 rescoring sides (comma list)",
    )
    ap.add_argument(
        "--rescore-b1",
        default="4,10,40",
        help="candidate multiples of k for the b1 rescoring sides (comma list)",
    )
    ap.add_argument(
        "--rescore-vx",
        default="2,4,8",
        help="rescore multiples for the vortexdb int8 side (native; comma list)",
    )
    ap.add_argument(
        "--rescore-vx-binary",
        default="16,32,64",
        help="rescore multiples for the vortexdb binary side (native; comma list)",
    )
    ap.add_argument(
        "--sides", help="builds to run (comma list; default: all installed)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--workdir", type=Path, help="data and indexes (default /tmp/...)")
    ap.add_argument("--cleanup", action="store_true", help="remove workdir at the end")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workdir is None:
        args.workdir = Path(f"/tmp/compare_usearch-n{args.n}-d{args.dim}")
    efs = [int(x) for x in args.efs.split(",")]
    if args.worker:  # a subprocess: one step, a JSON line on stdout
        kind, *rest = args.worker
        if kind == "data":
            r = make_data(args.workdir, args.n, args.dim, args.queries, args.seed)
        elif kind == "build":
            r = build(rest[0], args.workdir, args.threads, args.m, args.ef_construction)
        else:
            side, mode, rescore = rest[0], rest[1], int(rest[2])
            r = serve(side, mode, rescore, args.workdir, args.threads, efs)
        print(json.dumps(r))
        return

    t_all = time.perf_counter()
    log = sys.stderr
    wanted = args.sides.split(",") if args.sides else BUILDS
    builds = [
        b
        for b in BUILDS
        if b in wanted and importlib.util.find_spec(NEEDS[b]) is not None
    ]
    skipped = sorted(set(BUILDS) - set(builds))
    if skipped:
        print(f"skipping (not installed): {', '.join(skipped)}", file=log)
    multiples = {
        "usearch-i8": [int(x) for x in args.rescore.split(",") if x],
        "usearch-b1": [int(x) for x in args.rescore_b1.split(",") if x],
        "vortexdb-int8": [int(x) for x in args.rescore_vx.split(",") if x],
        "vortexdb-binary": [int(x) for x in args.rescore_vx_binary.split(",") if x],
    }
    serves: list[tuple[str, str, int]] = []  # (label, build, rescore multiple)
    for b in builds:
        name = b.replace("-", " ")
        if b not in ("vortexdb-int8", "vortexdb-binary"):  # those always rescore
            serves.append((name, b, 0))
        serves += [(f"{name} + rescore x{r}", b, r) for r in multiples.get(b, [])]

    data = worker(args, "--worker", "data")
    print(f"data: {data}", file=log)
    built = {}
    for b in builds:
        built[b] = worker(args, "--worker", "build", b)
        print(
            f"{b}: build {built[b]['build_s']:.1f} s "
            f"(cpu {built[b]['build_cpu_util']:.2f}), "
            f"{built[b]['disk_bytes'] / 2**20:.0f} MiB on disk",
            file=log,
        )
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in serves}
    for r in range(args.rounds):
        for label, b, mult in serves:
            res = worker(args, "--worker", "serve", b, "view", str(mult))
            rounds[label].append(res)
            best = max(res["search"], key=lambda x: x["recall"])
            print(
                f"round {r + 1} {label}: reopen {res['reopen_s']:.3f} s, "
                f"anon {mib(res['anon_after_queries'])} MiB, "
                f"ef {best['ef']} recall {best['recall']:.4f} {best['qps']:.0f} q/s",
                file=log,
            )
    loaded = {}
    for b in builds:
        if b.startswith("usearch"):
            loaded[b] = worker(args, "--worker", "serve", b, "load", "0")

    sides = {}
    for label, b, mult in serves:
        rs = rounds[label]
        search = []
        for i, ef in enumerate(efs):
            passes = [x["search"][i] for x in rs]
            search.append(
                {
                    "ef": ef,
                    "recall": passes[0]["recall"],
                    "recall_spread": max(p["recall"] for p in passes)
                    - min(p["recall"] for p in passes),
                    "qps": max(p["qps"] for p in passes),
                    "qps_passes": [p["qps"] for p in passes],
                    "cpu_util": max(p["cpu_util"] for p in passes),
                }
            )
        extra_disk = (
            disk_bytes(args.workdir / "base.npy")
            if mult and not b.startswith("vortexdb")
            else 0
        )  # f32 vectors read by the Python rescoring (vortexdb's are in its store)
        sides[label] = {
            "build": b,
            "rescore_multiple": mult,
            "build_s": built[b]["build_s"],
            "disk_bytes": built[b]["disk_bytes"],
            "rescore_vectors_bytes": extra_disk,
            "reopen_s": min(x["reopen_s"] for x in rs),
            "reopen_first_query_s": min(x["reopen_s"] + x["first_query_s"] for x in rs),
            "anon_after_queries": max(x["anon_after_queries"] for x in rs),
            "anon_total_after_queries": max(x["after_queries"]["RssAnon"] for x in rs),
            "file_after_queries": max(x["file_after_queries"] for x in rs),
            "search": search,
            "rounds": rs,
        }
        for target in (0.90, 0.95, 0.99):
            q, bound = qps_at_recall(search, target)
            sides[label][f"qps_at_{target}"] = q
            sides[label][f"qps_at_{target}_lower_bound"] = bound

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {cpu_model()}",
        "python": platform.python_version(),
        "versions": {
            m: _version(m) for m in ("numpy", "usearch", "hnswlib", "vortexdb")
        },
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "threads": args.threads,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "efs": efs,
        "rounds": args.rounds,
        "data": data,
        "builds": built,
        "sides": sides,
        "usearch_loaded": loaded,
        "total_s": time.perf_counter() - t_all,
    }

    print(
        f"\n## {args.n} x {args.dim}, cosine, M=16, ef_construction=200, "
        f"{args.threads} threads, {args.queries} queries, best of {args.rounds} "
        f"rounds\n\n{result['machine']}; {result['date']}; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v)
        + "\n"
    )
    print(
        "| side | build s | build cpu | on disk MiB | + f32 for rescoring MiB "
        "| reopen s | reopen + 1st query s | RssAnon MiB after reopen + queries "
        "(delta / process) | RssFile delta MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, s in sides.items():
        b = built[s["build"]]
        print(
            f"| {label} | {s['build_s']:.1f} | {b['build_cpu_util']:.2f} "
            f"| {mib(s['disk_bytes'])} | {mib(s['rescore_vectors_bytes'] or None)} "
            f"| {s['reopen_s']:.3f} | {s['reopen_first_query_s']:.3f} "
            f"| {mib(s['anon_after_queries'])} / {mib(s['anon_total_after_queries'])} "
            f"| {mib(s['file_after_queries'])} |"
        )
    print("\nrecall@10 / queries per second at each ef (expansion_search):\n")
    print("| side | " + " | ".join(f"ef {ef}" for ef in efs) + " |")
    print("|---|" + "---|" * len(efs))
    for label, s in sides.items():
        cells = [f"{x['recall']:.4f} / {x['qps']:.0f}" for x in s["search"]]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        "\nq/s at equal recall (interpolated along the measured frontier; "
        "'>=' where the smallest ef already beats it):\n"
    )
    print("| side | recall 0.90 | recall 0.95 | recall 0.99 | search cpu util |")
    print("|---|---|---|---|---|")
    for label, s in sides.items():
        util = max(x["cpu_util"] for x in s["search"])
        print(
            f"| {label} | {at(s, 0.9)} | {at(s, 0.95)} | {at(s, 0.99)} | {util:.2f} |"
        )
    if loaded:
        print("\nusearch memory-mapped (view) vs loaded:\n")
        print(
            "| index | reopen s view | reopen s load | RssAnon MiB view | "
            "RssAnon MiB load | memory_usage MiB (after build) | q/s ef 64 view "
            "| q/s ef 64 load |"
        )
        print("|---|---|---|---|---|---|---|---|")
        i64 = efs.index(64) if 64 in efs else len(efs) // 2
        for b, ld in loaded.items():
            v = sides[b.replace("-", " ")]
            print(
                f"| {b} | {v['reopen_s']:.4f} | {ld['reopen_s']:.4f} "
                f"| {mib(v['anon_after_queries'])} | {mib(ld['anon_after_queries'])} "
                f"| {mib(built[b]['memory_usage'])} | {v['search'][i64]['qps']:.0f} "
                f"| {ld['search'][i64]['qps']:.0f} |"
            )
    print(f"\ntotal {result['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.cleanup:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
