"""Measures archives on Ray (BENCHMARKS.md, "Archive on Ray"; docs/SCALING.md):

    .venv-py/bin/python scripts/archive-bench.py [--shape 48x256x256] [--ingest 4]
        [--samples 16] [--rounds 3] [--workdir DIR]

1. Ingest: ``--ingest`` phantom samples (volume + spots, seeds 101...) ingested (a) into
   an archive through Ray, one task per sample with 1 thread each, on a local Ray of
   ``os.cpu_count()`` CPUs, and (b) directly in this process, one after another, with
   ``os.cpu_count()`` threads each: the same total threads; (c) as (b) with 1 thread,
   to show what one ingest gains from a second thread. Rounds alternate (a), (b), (c);
   the ratio is direct time / Ray time (>= 1: Ray is as fast).
2. Queries: ``--samples`` phantom samples held (a) by one store, (b) by archives of 1,
   4 and 16 shards (stores built directly and attached with ``add_shard``). A molecular
   query (each of 6 genes, top 10) and a patch retrieval (exact, top 10) over all
   samples, timed per archive on the Ray backend and the local backend (this process,
   2 threads), rounds interleaved; medians and the ratio to the one store's. Every
   archive answer is checked equal to the one store's (top scores within 1e-6).
3. Memory (RssAnon and RssFile, MB, from /proc) of this process and of the Ray
   workers after the queries.

Reuses WORKDIR (default /tmp/vortex-archive-bench) when the stores exist.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import vortexdb
from vortexdb import archive

GENES = ["TUM01", "GLD01", "STR01", "FAT01", "IMM01", "TUM02"]


def memory(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    return tuple(
        int(re.search(k + r":\s+(\d+)", s).group(1)) // 1024
        for k in ("RssAnon", "RssFile")
    )


def ray_pids() -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", "ray::"], check=False, capture_output=True, text=True
    ).stdout.split()
    return [int(p) for p in out]


def phantoms(work: Path, n: int, shape: tuple[int, int, int], first_seed: int) -> dict:
    d = work / f"phantoms-{shape[0]}x{shape[1]}x{shape[2]}"
    out = {}
    for i in range(n):
        sid = f"s{i + 1:02d}"
        p = d / sid
        if not (p / "phantom.json").exists():
            vortexdb.phantom(p, seed=first_seed + i, shape=shape)
        out[sid] = {"volume": str(p / "volume.npy"), "spots": str(p / "spots.parquet")}
    return out


def build_store(path: Path, samples: dict, threads: int) -> None:
    if (path / "vortex.redb").exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with vortexdb.create(tmp) as db:
        db.add_model("default")
        for sid, ph in samples.items():
            db.ingest_volume(sid, ph["volume"], threads=threads, progress=False)
            db.ingest_spots(sid, ph["spots"], threads=threads)
    tmp.rename(path)


def bench_ingest(work: Path, shape, n: int, rounds: int) -> None:
    cpus = os.cpu_count() or 2
    ph = phantoms(work, n, shape, 101)
    specs = [
        {"sample": s, "volume": p["volume"], "spots": p["spots"]} for s, p in ph.items()
    ]
    ray_t, direct_t, one_t = [], [], []
    for r in range(rounds):
        root = work / "ingest-ray"
        shutil.rmtree(root, ignore_errors=True)
        a = archive.create(root)
        t0 = time.perf_counter()
        rep = a.ingest(specs, threads=1, progress=False)
        ray_t.append(time.perf_counter() - t0)
        assert len(rep["committed"]) == n
        patches = int(a.samples()["patches"].sum())
        a.close()
        d = work / "ingest-direct"
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        build_store(d, ph, cpus)
        direct_t.append(time.perf_counter() - t0)
        shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        build_store(d, ph, 1)
        one_t.append(time.perf_counter() - t0)
        print(
            f"  round {r + 1}: Ray {ray_t[-1]:.1f} s, direct {direct_t[-1]:.1f} s, "
            f"direct 1 thread {one_t[-1]:.1f} s ({patches} patches)",
            flush=True,
        )
    mr, md, m1 = (
        statistics.median(ray_t),
        statistics.median(direct_t),
        statistics.median(one_t),
    )
    print(
        f"ingest of {n} samples {shape} ({patches} patches), {cpus} CPUs: Ray (one task per sample, 1 thread) "
        f"median {mr:.1f} s, direct (one process, {cpus} threads) {md:.1f} s: ratio direct/Ray {md / mr:.2f}; "
        f"per patch: Ray {1e3 * mr / patches:.2f} ms, direct {1e3 * md / patches:.2f} ms; "
        f"direct with 1 thread {m1:.1f} s ({1e3 * m1 / patches:.2f} ms per patch)",
        flush=True,
    )
    shutil.rmtree(work / "ingest-ray", ignore_errors=True)
    shutil.rmtree(work / "ingest-direct", ignore_errors=True)


def layouts(work: Path, ph: dict, n_shards: list[int]) -> dict[int, Path]:
    """Archives of each shard count, from stores built directly (reused)."""
    out = {}
    ids = sorted(ph)
    for k in n_shards:
        root = work / f"archive-{k}"
        if not (root / "archive.json").exists():
            shutil.rmtree(root, ignore_errors=True)
            a = archive.create(root, backend="local")
            per = len(ids) // k
            for j in range(k):
                part = {s: ph[s] for s in ids[j * per : (j + 1) * per]}
                st = work / f"stores-{k}" / f"shard{j:02d}"
                build_store(st, part, os.cpu_count() or 2)
                a.add_shard(st)
        out[k] = root
    return out


def bench_queries(work: Path, shape, n: int, rounds: int) -> None:
    ph = phantoms(work, n, shape, 201)
    one = work / "one-store"
    build_store(one, ph, os.cpu_count() or 2)
    roots = layouts(work, ph, [1, 4, 16] if n >= 16 else [1, n])
    db = vortexdb.open(one, read_only=True)
    arcs = {}
    for k, r in roots.items():
        arcs[("ray", k)] = archive.open(r)
        arcs[("local", k)] = archive.open(r, backend="local")
    # Warm up every path once and check the answers are the one store's.
    want = db.query_genes(GENES[0], top=10)
    wp = db.query_patch("s01", (8, 60, 60), top=10, exact=True)
    for a in arcs.values():
        got = a.query_genes(GENES[0], top=10)
        assert (
            np.allclose(got.top["score"], want.top["score"], atol=1e-6)
            and not got.partial
        )
        gp = a.query_patch("s01", (8, 60, 60), top=10, exact=True)
        assert np.allclose(gp["similarity"], wp["similarity"], atol=1e-6)
    times: dict = {("store", 0, "genes"): [], ("store", 0, "patch"): []}
    for key in arcs:
        times[(*key, "genes")] = []
        times[(*key, "patch")] = []
    phases: dict = {}
    for _ in range(rounds):
        for g in GENES:
            t0 = time.perf_counter()
            db.query_genes(g, top=10)
            times[("store", 0, "genes")].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            db.query_patch("s01", (8, 60, 60), top=10, exact=True)
            times[("store", 0, "patch")].append(time.perf_counter() - t0)
            for key, a in arcs.items():
                t0 = time.perf_counter()
                r = a.query_genes(g, top=10)
                times[(*key, "genes")].append(time.perf_counter() - t0)
                for phase, sec in r.timings.items():
                    phases.setdefault(key, {}).setdefault(phase, []).append(sec)
                t0 = time.perf_counter()
                a.query_patch("s01", (8, 60, 60), top=10, exact=True)
                times[(*key, "patch")].append(time.perf_counter() - t0)
    patches = sum(s["patches"] for s in db.info()["samples"])
    print(
        f"queries over {n} samples {shape} ({patches} patches), medians of {rounds * len(GENES)}:"
    )
    for kind in ("genes", "patch"):
        base = statistics.median(times[("store", 0, kind)])
        print(f"  {kind:<5} one store: {1e3 * base:.1f} ms")
        for key in arcs:
            m = statistics.median(times[(*key, kind)])
            line = f"  {kind:<5} {key[0]:<5} {key[1]:>2} shards: {1e3 * m:.1f} ms ({m / base:.2f}x the one store)"
            if kind == "genes":
                parts = ", ".join(
                    f"{p} {1e3 * statistics.median(v):.1f}"
                    for p, v in phases[key].items()
                )
                line += f"; phases (ms): {parts}"
            print(line)
    anon, file = memory(os.getpid())
    wa = wf = 0
    pids = ray_pids()
    for p in pids:
        try:
            a_, f_ = memory(p)
        except (OSError, AttributeError):
            continue
        wa, wf = wa + a_, wf + f_
    print(
        f"memory: this process RssAnon {anon} MB, RssFile {file} MB; {len(pids)} Ray workers RssAnon {wa} MB, RssFile {wf} MB"
    )
    for a in arcs.values():
        a.close()
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="48x256x256")
    ap.add_argument(
        "--ingest", type=int, default=4, help="samples of the ingest benchmark"
    )
    ap.add_argument(
        "--samples", type=int, default=16, help="samples of the query benchmark"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/vortex-archive-bench")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-queries", action="store_true")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(
        f"ray {ray.__version__}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if not args.skip_ingest:
        bench_ingest(work, shape, args.ingest, args.rounds)
    if not args.skip_queries:
        bench_queries(work, shape, args.samples, args.rounds)


if __name__ == "__main__":
    main()
