"""Overhead of the Python package against the Rust library doing the same work.

One run, interleaved round by round (Rust, Python, Rust, Python, ...), best of
`--rounds` for each side:

1. Import: the same (N, D) float32 array into a fresh store, collection `v`, L2, batches
   of 10 000, default HNSW parameters. Rust: `examples/vector_ops.rs` timing only
   `vortexdb::import_array`; Python: `db.import_vectors("v", arr)` after
   `vortexdb.create`.
2. Search: every query row, k 10, ef 0 (= k) and 64 (the library's default), over the store the Rust
   side built in that round, both sides after one warm-up query (which loads the graph
   snapshot). Rust: `Store::search` over borrowed rows; Python: `db.search`, which also
   packs the (N, k) id and distance arrays. The ids found by the two sides are compared.
3. Threads: with one store open in Python, the same single-query `db.search` calls (and
   batches of 10) in 1 thread and split across 2 `threading.Thread`s; the throughput
   ratio shows whether the GIL is released during the search.
4. Zero-copy: what the id / distance arrays returned by `search` are backed by.

    cargo build --release --example vector_ops
    bash scripts/setup-python-package.sh   # .venv-py with the package built
    .venv-py/bin/python benches/python_overhead.py --json /tmp/python_overhead.json

Data are synthetic "embedding-like" vectors: 64 Gaussian cluster centres plus noise,
generated with NumPy from a fixed seed and handed to both sides as NPY files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import numpy as np
import vortexdb

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "target" / "release" / "examples" / "vector_ops"
K = 10


def embeddings(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """`n` rows around random cluster centres, C-contiguous float32."""
    labels = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    return np.ascontiguousarray(centres[labels] + np.float32(0.35) * noise)


def rust(store: Path, npy: Path, op: str, *extra: object) -> dict:
    cmd = [str(EXAMPLE), str(store), str(npy), op, *map(str, extra)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def python_import(store: Path, arr: np.ndarray) -> dict:
    db = vortexdb.create(store)
    try:
        t0 = time.perf_counter()
        report = db.import_vectors("v", arr)
        seconds = time.perf_counter() - t0
    finally:
        db.close()
    return {"seconds": seconds, "library_seconds": report["seconds"]}


def python_search(store: Path, queries: np.ndarray, ef: int) -> tuple[dict, np.ndarray]:
    db = vortexdb.open(store)
    try:
        t0 = time.perf_counter()
        db.search("v", queries[:1], k=K, ef=ef)
        warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids, _ = db.search("v", queries, k=K, ef=ef)
        seconds = time.perf_counter() - t0
    finally:
        db.close()
    return {"seconds": seconds, "warmup_seconds": warmup}, ids


def threaded(
    db: vortexdb.Store, queries: np.ndarray, batch: int, threads: int, ef: int
) -> float:
    """Queries per second of `db.search` over `queries` in calls of `batch` rows, the
    calls dealt round-robin to `threads` Python threads started together."""
    starts = list(range(0, len(queries), batch))
    barrier = threading.Barrier(threads + 1)

    def work(mine: list[int]) -> None:
        barrier.wait()
        for s in mine:
            db.search("v", queries[s : s + batch], k=K, ef=ef)

    pool = [
        threading.Thread(target=work, args=(starts[i::threads],))
        for i in range(threads)
    ]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return len(queries) / (time.perf_counter() - t0)


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy, and stolen by the hypervisor."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / hz, steal / hz


def own_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    s, c = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Foreign:
    """Context: CPU time the machine spent on anything but this benchmark (other
    processes, stolen by the hypervisor) while it ran; large values flag noise."""

    def __enter__(self) -> Self:
        (self.busy, self.steal), self.own = machine_cpu(), own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        (busy, steal), own = machine_cpu(), own_cpu()
        self.figures = {
            "foreign_cpu_s": max(0.0, (busy - self.busy) - (own - self.own)),
            "steal_s": steal - self.steal,
            "own_cpu_s": own - self.own,
        }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=100_000, help="vectors imported")
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument(
        "--ef", type=int, nargs="+", default=[0, 64], help="search ef values"
    )
    ap.add_argument(
        "--thread-queries", type=int, default=2_000, help="queries of the thread test"
    )
    ap.add_argument("--thread-ef", type=int, default=64, help="ef of the thread test")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--example", "vector_ops"],
            check=True,
            cwd=ROOT,
        )
    if not EXAMPLE.exists():
        raise SystemExit(
            f"{EXAMPLE} missing: cargo build --release --example vector_ops"
        )

    machine = {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "processor": platform.processor(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "vortexdb_package": vortexdb.__file__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
    }
    print(
        f"machine: nproc={machine['nproc']} (affinity {machine['affinity']}), "
        f"processor={machine['processor']!r}, cpu={machine['cpu']!r}, "
        f"{machine['platform']}, Python {machine['python']}, "
        f"NumPy {machine['numpy']}, {machine['date']}, "
        f"load average {machine['loadavg_start'][0]:.2f}",
        flush=True,
    )

    tmp = Path(tempfile.mkdtemp(prefix="vortexdb-pyoverhead-", dir="/tmp"))
    try:
        rng = np.random.default_rng(args.seed)
        centres = rng.standard_normal((64, args.dim), dtype=np.float32)
        arr = embeddings(rng, centres, args.n)
        queries = embeddings(rng, centres, args.queries)
        vectors_npy, queries_npy = tmp / "vectors.npy", tmp / "queries.npy"
        np.save(vectors_npy, arr)
        np.save(queries_npy, queries)
        print(
            f"data: {args.n} x {args.dim} vectors, {args.queries} queries, "
            f"seed {args.seed}, in {tmp}",
            flush=True,
        )

        ops = ["import", *(f"search_ef{ef}" for ef in args.ef)]
        runs: dict[str, list[dict]] = {
            f"{side}_{op}": [] for op in ops for side in ("rust", "python")
        }
        ids_equal: dict[str, list[bool]] = {f"ef{ef}": [] for ef in args.ef}
        for r in range(args.rounds):
            rust_store, py_store = tmp / f"rust-{r}", tmp / f"python-{r}"
            with Foreign() as f:
                res = rust(rust_store, vectors_npy, "import")
            runs["rust_import"].append(res | f.figures)
            with Foreign() as f:
                res = python_import(py_store, arr)
            runs["python_import"].append(res | f.figures)
            rs, ps = (
                runs["rust_import"][-1]["seconds"],
                runs["python_import"][-1]["seconds"],
            )
            line = [
                f"round {r + 1}/{args.rounds}: import rust {rs:.2f} s, python {ps:.2f} s"
            ]
            for ef in args.ef:
                ids_npy = tmp / f"rust-ids-ef{ef}.npy"
                with Foreign() as f:
                    res = rust(rust_store, queries_npy, "search", ef, ids_npy)
                runs[f"rust_search_ef{ef}"].append(res | f.figures)
                with Foreign() as f:
                    res, py_ids = python_search(rust_store, queries, ef)
                runs[f"python_search_ef{ef}"].append(res | f.figures)
                ids_equal[f"ef{ef}"].append(
                    bool(np.array_equal(np.load(ids_npy), py_ids))
                )
                line.append(
                    f"search ef {ef} rust {runs[f'rust_search_ef{ef}'][-1]['seconds']:.3f} s, "
                    f"python {res['seconds']:.3f} s, ids equal {ids_equal[f'ef{ef}'][-1]}"
                )
            foreign = sum(x[-1]["foreign_cpu_s"] for x in runs.values())
            line.append(f"foreign CPU {foreign:.1f} s")
            print("; ".join(line), flush=True)
            if r + 1 < args.rounds:
                shutil.rmtree(py_store)
                shutil.rmtree(rust_store)

        best = {k: min(x["seconds"] for x in v) for k, v in runs.items()}
        ratio = {op: best[f"python_{op}"] / best[f"rust_{op}"] for op in ops}

        # Threads and zero-copy, on the last round's Python-built store.
        db = vortexdb.open(py_store)
        try:
            tq = np.ascontiguousarray(queries[: args.thread_queries])
            db.search("v", tq[:1], k=K, ef=args.thread_ef)
            thread_rates: dict[str, dict] = {}
            for batch in (1, 10):
                one, two = [], []
                with Foreign() as f:
                    for _ in range(args.rounds):
                        one.append(threaded(db, tq, batch, 1, args.thread_ef))
                        two.append(threaded(db, tq, batch, 2, args.thread_ef))
                thread_rates[f"batch_{batch}"] = {
                    "calls": len(range(0, len(tq), batch)),
                    "one_thread_qps": max(one),
                    "two_threads_qps": max(two),
                    "ratio": max(two) / max(one),
                    "one_thread_runs": one,
                    "two_threads_runs": two,
                    **f.figures,
                }
            ids, dist = db.search("v", queries[:100], k=K)
            # The Python-built store against the Rust-built one on the same queries.
            ef_cmp = args.ef[-1]
            py_store_ids, _ = db.search("v", queries, k=K, ef=ef_cmp)
        finally:
            db.close()
        store_agreement = float(
            np.mean(np.load(tmp / f"rust-ids-ef{ef_cmp}.npy") == py_store_ids)
        )

        def flags(a: np.ndarray) -> dict:
            return {
                "dtype": str(a.dtype),
                "shape": list(a.shape),
                "owndata": bool(a.flags.owndata),
                "base": type(a.base).__name__,
                "c_contiguous": bool(a.flags.c_contiguous),
                "writeable": bool(a.flags.writeable),
            }

        zero_copy = {
            "ids": flags(ids),
            "distances": flags(dist),
            "queries_passed_in_place": np.ascontiguousarray(queries, dtype=np.float32)
            is queries,
            "vectors_passed_in_place": np.ascontiguousarray(arr, dtype=np.float32)
            is arr,
        }

        def foreign_of(op: str) -> float:
            return sum(
                x["foreign_cpu_s"]
                for s in ("rust", "python")
                for x in runs[f"{s}_{op}"]
            )

        def rounds_of(key: str) -> str:
            return ", ".join(f"{x['seconds']:.3f}" for x in runs[key])

        print()
        print(
            f"## Python package vs Rust library, best of {args.rounds} interleaved rounds"
        )
        print()
        print(
            "| work | Rust best (s) | Python best (s) | Python / Rust | Rust rounds "
            "| Python rounds | foreign CPU (s) |"
        )
        print("|---|---:|---:|---:|---|---|---:|")
        for op in ops:
            if op == "import":
                what = f"import {args.n} x {args.dim} (HNSW build)"
            else:
                what = f"search {args.queries} queries, k {K}, ef {op.removeprefix('search_ef')}"
            print(
                f"| {what} | {best['rust_' + op]:.3f} | {best['python_' + op]:.3f} "
                f"| {ratio[op]:.3f} | {rounds_of('rust_' + op)} | {rounds_of('python_' + op)} "
                f"| {foreign_of(op):.1f} |"
            )
        print()
        lib_py = min(x["library_seconds"] for x in runs["python_import"])
        print(
            f"Import, the library's own timer (ImportReport.seconds) inside Python's "
            f"import_vectors: best {lib_py:.3f} s (Python wall {best['python_import']:.3f} s)."
        )
        for ef in args.ef:
            rw = min(x["warmup_seconds"] for x in runs[f"rust_search_ef{ef}"])
            pw = min(x["warmup_seconds"] for x in runs[f"python_search_ef{ef}"])
            print(
                f"Search ef {ef}: warm-up query (graph snapshot load) Rust {rw:.3f} s, "
                f"Python {pw:.3f} s; same ids from both sides on the same store in every "
                f"round: {all(ids_equal[f'ef{ef}'])}."
            )
        print(
            f"Ids from the Python-built store vs the Rust-built store (ef {ef_cmp}): "
            f"{store_agreement:.1%} of slots equal."
        )
        print()
        print(
            f"## Python threads, one open store ({len(tq)} queries, ef {args.thread_ef}, "
            f"best of {args.rounds})"
        )
        print()
        print("| calls | 1 thread (q/s) | 2 threads (q/s) | 2 / 1 | foreign CPU (s) |")
        print("|---|---:|---:|---:|---:|")
        for batch in (1, 10):
            t = thread_rates[f"batch_{batch}"]
            print(
                f"| {t['calls']} x {batch} quer{'y' if batch == 1 else 'ies'} "
                f"| {t['one_thread_qps']:.0f} | {t['two_threads_qps']:.0f} | {t['ratio']:.2f} "
                f"| {t['foreign_cpu_s']:.1f} |"
            )
        print()
        print(
            "foreign CPU: machine-wide CPU seconds spent outside this benchmark (other "
            "processes, hypervisor steal) during the measurements; large values mean noise."
        )
        print(
            f"Zero-copy: ids {zero_copy['ids']['dtype']} owndata="
            f"{zero_copy['ids']['owndata']} base={zero_copy['ids']['base']}; "
            f"distances {zero_copy['distances']['dtype']} owndata="
            f"{zero_copy['distances']['owndata']} base={zero_copy['distances']['base']}; "
            f"C-contiguous float32 inputs passed in place: queries "
            f"{zero_copy['queries_passed_in_place']}, vectors "
            f"{zero_copy['vectors_passed_in_place']}."
        )

        if args.json:
            result = {
                "machine": machine,
                "params": {
                    "n": args.n,
                    "queries": args.queries,
                    "dim": args.dim,
                    "seed": args.seed,
                    "rounds": args.rounds,
                    "k": K,
                    "ef": args.ef,
                    "thread_queries": len(tq),
                    "thread_ef": args.thread_ef,
                },
                "runs": runs,
                "best_seconds": best,
                "python_over_rust": ratio,
                "ids_equal_same_store": ids_equal,
                "ids_agreement_python_vs_rust_store": store_agreement,
                "threads": thread_rates,
                "zero_copy": zero_copy,
                "loadavg_end": os.getloadavg(),
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"\nwrote {args.json}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
