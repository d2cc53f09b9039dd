"""Model runtime and ingest benchmarks, every figure against a peer measured in the same run.

1. Inference: patches/s of the Rust runtime (`vortexdb models embed`, ONNX Runtime via the
   `ort` crate) vs Python onnxruntime on the same ONNX file, inputs, batch and threads,
   interleaved, best of `--repeat` rounds each (this machine is shared and noisy).
2. Pipeline: patches/s of the whole `vortexdb ingest volume` (read, resample, mask,
   extract, infer, durable redb batches) on a phantom volume vs pure Rust inference of
   the same number of patches with the same batch and threads, interleaved, best of
   `--repeat` rounds each.
3. Memory: peak RSS (VmHWM) of `ingest volume` on synthetic uint8 volumes of 256 MB and
   1 GB (Z x Y x Y); a straight line through peak RSS against slice area extrapolates to
   the method's 3200 x 1920 x 1300 volume (taking the worst orientation: 3200 x 1920
   slices).

    .venv/bin/python benches/runtime_ingest.py            # all three (~15 min on 2 cores)
    .venv/bin/python benches/runtime_ingest.py --only inference

Writes bench-data/runtime-ingest.json and prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "vortexdb"
MODEL = ROOT / "models" / "default"
WORK = ROOT / "bench-data" / "runtime"


def vortexdb(*args: str) -> dict:
    r = subprocess.run(
        [str(BIN), *args, "--json"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise SystemExit(f"vortexdb {' '.join(args)} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def python_rate(x: np.ndarray, batch: int, threads: int) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(
        str(MODEL / "image_3d.onnx"), so, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    t = time.perf_counter()
    for s in range(0, len(x), batch):
        sess.run(["embedding"], {name: x[s : s + batch]})
    return len(x) / (time.perf_counter() - t)


def rust_rate(inp: Path, batch: int, threads: int) -> float:
    out = vortexdb("models", "embed", str(MODEL), "--input", str(inp), "--out", str(WORK / "emb.npy"),
                   "--batch", str(batch), "--threads", str(threads))  # fmt: skip
    return out["rows_per_second"]


def bench_inference(n: int, batch: int, threads: list[int], repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 16, 1, 32, 32)).astype(np.float32)
    inp = WORK / "patches.npy"
    np.save(inp, x)
    rows = []
    for t in threads:
        py, rs = [], []
        for _ in range(repeat):  # interleaved so that machine noise hits both
            py.append(python_rate(x, batch, t))
            rs.append(rust_rate(inp, batch, t))
        rows.append({"threads": t, "batch": batch, "patches": n, "python": max(py), "rust": max(rs),
                     "ratio": max(rs) / max(py)})  # fmt: skip
        print(f"inference threads={t} batch={batch}: rust {max(rs):.1f}/s python {max(py):.1f}/s "
              f"ratio {max(rs) / max(py):.3f}", flush=True)  # fmt: skip
    return rows


def fresh_store(name: str) -> Path:
    db = WORK / name
    shutil.rmtree(db, ignore_errors=True)
    vortexdb("init", str(db))
    vortexdb("models", "add", str(db), str(MODEL))
    return db


def bench_pipeline(shape: str, batch: int, threads: int, repeat: int) -> dict:
    ph = WORK / "phantom"
    shutil.rmtree(ph, ignore_errors=True)
    vortexdb("phantom", "--seed", "2", "--out", str(ph), "--shape", shape)
    best_ing, best_inf, n = 0.0, 0.0, 0
    for i in range(repeat):
        db = fresh_store(f"pipe{i}")
        r = vortexdb("ingest", "volume", str(db), "--sample", "ph", str(ph / "volume.npy"),
                     "--batch", str(batch), "--threads", str(threads))  # fmt: skip
        n = r["patches_new"]
        best_ing = max(best_ing, r["patches_per_second"])
        if i == 0:
            x = (
                np.random.default_rng(1)
                .normal(size=(n, 16, 1, 32, 32))
                .astype(np.float32)
            )
            np.save(WORK / "pipe_patches.npy", x)
            del x
        best_inf = max(best_inf, rust_rate(WORK / "pipe_patches.npy", batch, threads))
        shutil.rmtree(db)
    row = {"shape": shape, "patches": n, "batch": batch, "threads": threads, "ingest": best_ing,
           "inference": best_inf, "ratio": best_ing / best_inf}  # fmt: skip
    print(f"pipeline {shape}: ingest {best_ing:.1f}/s, pure inference {best_inf:.1f}/s, "
          f"ratio {row['ratio']:.3f} ({n} patches)", flush=True)  # fmt: skip
    return row


def synthetic_volume(path: Path, z: int, yx: int) -> None:
    """uint8 volume: a bright tissue cylinder (25% of each slice) with texture, dark air
    around it, written slice by slice (never held whole in memory)."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(z, yx, yx))
    yy, xx = np.mgrid[0:yx, 0:yx]
    r = np.hypot(yy - yx / 2, xx - yx / 2)
    inside = r < yx * 0.28
    rng = np.random.default_rng(3)
    for k in range(z):
        s = np.full((yx, yx), 8, np.uint8)
        tex = (120 + 60 * np.sin(yy / 9.0 + k / 5.0) * np.cos(xx / 7.0)).astype(
            np.uint8
        )
        s[inside] = tex[inside] + rng.integers(0, 20, inside.sum(), dtype=np.uint8)
        arr[k] = s
    arr.flush()
    del arr


def bench_memory(batch: int, threads: int) -> list[dict]:
    rows = []
    for z, yx in ((256, 1024), (256, 2048)):
        vol = WORK / f"synthetic_{z}x{yx}x{yx}.npy"
        if not vol.exists():
            synthetic_volume(vol, z, yx)
        db = fresh_store(f"mem{yx}")
        t = time.perf_counter()
        # 0% overlap keeps the patch count (and so the run time) small; memory is bounded
        # by the slice window and the batches, not by the number of patches.
        r = vortexdb("ingest", "volume", str(db), "--sample", "big", str(vol), "--overlap", "0",
                     "--batch", str(batch), "--threads", str(threads))  # fmt: skip
        rows.append({"shape": [z, yx, yx], "bytes": vol.stat().st_size, "patches": r["patches_new"],
                     "seconds": time.perf_counter() - t, "peak_rss": r["peak_rss_bytes"]})  # fmt: skip
        print(f"memory {z}x{yx}x{yx} ({vol.stat().st_size / 1e9:.2f} GB): peak RSS "
              f"{r['peak_rss_bytes'] / 2**20:.0f} MiB, {r['patches_new']} patches", flush=True)  # fmt: skip
        shutil.rmtree(db)
    (a, b) = rows
    per_px = (b["peak_rss"] - a["peak_rss"]) / (b["shape"][1] ** 2 - a["shape"][1] ** 2)
    base = a["peak_rss"] - per_px * a["shape"][1] ** 2
    worst = base + per_px * 3200 * 1920
    print(f"memory model: {base / 2**20:.0f} MiB + {per_px:.1f} B per slice pixel -> 3200x1920 slices: "
          f"{worst / 2**30:.2f} GiB", flush=True)  # fmt: skip
    rows.append(
        {
            "extrapolated_3200x1920_slices_bytes": worst,
            "bytes_per_slice_px": per_px,
            "base": base,
        }
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["inference", "pipeline", "memory"])
    ap.add_argument("--patches", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--pipeline-shape", default="48,320,320")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, {cores} cores",
           "onnxruntime": ort.__version__}  # fmt: skip
    if args.only in (None, "inference"):
        res["inference"] = bench_inference(
            args.patches, args.batch, sorted({1, cores}), args.repeat
        )
    if args.only in (None, "pipeline"):
        res["pipeline"] = bench_pipeline(
            args.pipeline_shape, args.batch, cores, args.repeat
        )
    if args.only in (None, "memory"):
        res["memory"] = bench_memory(args.batch, cores)
    out = ROOT / "bench-data" / "runtime-ingest.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
