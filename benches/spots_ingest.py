"""`vortexdb ingest spots` throughput on the six her2st sections, against a Python peer
measured in the same run.

vortexdb: one `vortexdb ingest spots` process per section into a fresh store (read the
counts TSV.gz and the selection table, QC, normalise + log1p, HVG and top-expressed
panels, kNN smoothing, gene encoder through ONNX Runtime, one durable redb
transaction). Peer: the same sections through this repository's Python path (pandas
read, QC mask, normalise + log1p, panel selection, onnxruntime gene encoder; no HVG, no
smoothing, no store) in one process. Both use an untrained model over a her2st panel
(64 encoder genes), 2 threads; best of `--repeat` interleaved rounds.

    .venv/bin/python benches/spots_ingest.py [--repeat 3]

Writes bench-data/spots-ingest.json and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
from vortex_train.data import (
    her2st_hvg,
    her2st_panel,
    normalize_log1p,
    qc_mask,
    read_her2st_section,
)
from vortex_train.export import export_untrained_panel_model

BIN = ROOT / "target" / "release" / "vortexdb"
DATA = ROOT.parent / "shared" / "data" / "her2st"
WORK = ROOT / "bench-data" / "spots"
SECTIONS = ["C1", "C2", "C3", "C4", "C5", "C6"]


def run(*args) -> str:
    r = subprocess.run(
        [str(BIN), *map(str, args)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise SystemExit(f"vortexdb {' '.join(map(str, args))}: {r.stderr}")
    return r.stdout


def rust_round(model: Path) -> tuple[float, int]:
    store = WORK / "store"
    shutil.rmtree(store, ignore_errors=True)
    run("init", store)
    run("models", "add", store, model)
    spots = 0
    t0 = time.perf_counter()
    for name in SECTIONS:
        rep = json.loads(run("--json", "ingest", "spots", store, "--sample", name, DATA / "counts" / f"{name}.tsv.gz",
                             "--threads", 2))  # fmt: skip
        spots += rep["qc"]["spots_in"]
    return time.perf_counter() - t0, spots


def python_round(model: Path, enc: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(
        str(model / "genes.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    spots = 0
    for name in SECTIONS:
        sec = read_her2st_section(DATA, name)
        keep = qc_mask(sec.counts, sec.genes)
        pos = {g.upper(): j for j, g in enumerate(sec.genes)}
        x = normalize_log1p(sec.counts[keep])[:, [pos[g.upper()] for g in enc]]
        sess.run(["embedding"], {"values": x.astype(np.float32)})
        spots += len(sec.spot_ids)
    return time.perf_counter() - t0, spots


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not (DATA / "counts" / "C1.tsv.gz").exists():
        raise SystemExit(f"{DATA} is absent")
    WORK.mkdir(parents=True, exist_ok=True)
    secs = [read_her2st_section(DATA, n) for n in SECTIONS]
    enc, panel = her2st_hvg(secs, 64), her2st_panel(secs, 250)
    vals = [
        normalize_log1p(s.counts)[
            :, [{g: j for j, g in enumerate(s.genes)}[g] for g in enc]
        ]
        for s in secs
    ]
    model = export_untrained_panel_model(
        np.concatenate(vals), enc, panel, WORK / "model", "her2st-bench"
    )
    rust, py = [], []
    for _ in range(args.repeat):
        rust.append(rust_round(model))
        py.append(python_round(model, enc))
    (rs, n), (ps, _) = min(rust), min(py)
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "sections": SECTIONS,
        "spots": n,
        "rust_seconds": rs,
        "python_seconds": ps,
        "rust_spots_per_second": n / rs,
        "python_spots_per_second": n / ps,
        "ratio": ps / rs,
        "rounds": {"rust": [r[0] for r in rust], "python": [p[0] for p in py]},
    }
    (ROOT / "bench-data" / "spots-ingest.json").write_text(json.dumps(res, indent=1))
    print("| pipeline | seconds (6 sections) | spots/s |")
    print("| --- | ---: | ---: |")
    print(f"| `vortexdb ingest spots` (6 processes) | {rs:.2f} | {n / rs:.0f} |")
    print(f"| Python peer (one process) | {ps:.2f} | {n / ps:.0f} |")
    print(f"ratio (vortexdb / Python spots/s): {ps / rs:.2f}; {n} spots")


if __name__ == "__main__":
    main()
