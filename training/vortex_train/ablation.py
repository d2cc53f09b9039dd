"""The ablation table of `scripts/her2st-ablation.sh`: one row per configuration, the
held-out figures of `vortex_train her2st` averaged over the held-out sections (with
their per-section values), and the time and peak memory of each run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

CONFIGS = {
    "base": "today's model (32 px at 3.5 um/px, no pretraining)",
    "res": "resolution: 112 px at 1 um/px, 16-px tokens",
    "ssl": "pretraining: SimCLR on every tissue tile + colour augmentation in stages I/II",
    "res_ssl": "both",
}
COLUMNS = [
    ("2.5D PCC", ("vortex_2_5d", "pcc_all")),
    ("2D PCC", ("vortex_2d", "pcc_all")),
    ("kNN 2.5D PCC", ("bleep_knn_2_5d", "pcc_all")),
    ("2.5D top 50", ("vortex_2_5d", "pcc_top50")),
    ("probe 2.5D", ("probe", "vortex_2_5d")),
    ("probe 2D", ("probe", "vortex_2d")),
    ("probe before stage I", ("probe", "init_2d")),
    ("probe raw pixels", ("probe", "raw_pixels")),
]


def _time(path: Path) -> tuple[float, float]:
    """(wall minutes, peak resident GiB) from a `/usr/bin/time -v` report."""
    text = path.read_text() if path.exists() else ""
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    minutes = float("nan")
    if wall:
        h, m, s = wall.groups()
        minutes = int(h or 0) * 60 + int(m) + float(s) / 60
    return minutes, (int(rss.group(1)) / 2**20 if rss else float("nan"))


def report(work: Path, configs: list[str], holdouts: list[str]) -> tuple[str, dict]:
    """Markdown table and the same values as a dict; missing runs are named, not skipped."""
    work = Path(work)
    rows, values = [], {}
    head = "| config | " + " | ".join(c for c, _ in COLUMNS) + " | train min | peak GiB |"
    rows += [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for c in configs:
        res = {}
        for h in holdouts:
            p = work / f"{c}-{h}.json"
            if not p.exists():
                raise FileNotFoundError(f"{p}: run `bash scripts/her2st-ablation.sh` first (config {c}, held out {h})")
            res[h] = json.loads(p.read_text())
        cells, vals = [], {}
        for name, (a, b) in COLUMNS:
            per = [res[h].get(a, {}).get(b) for h in holdouts]
            per = [float("nan") if v is None else float(v) for v in per]
            vals[name] = {"mean": float(np.mean(per)), **dict(zip(holdouts, per, strict=True))}
            cells.append(f"{np.mean(per):.3f} ({' / '.join(f'{v:.3f}' for v in per)})")
        times = [_time(work / f"{c}-{h}.time") for h in holdouts]
        vals["train_minutes"] = [t[0] for t in times]
        vals["peak_gib"] = [t[1] for t in times]
        minutes, peak = np.nanmean([t[0] for t in times]), np.nanmax([t[1] for t in times])
        rows.append(f"| {c}: {CONFIGS.get(c, c)} | " + " | ".join(cells) + f" | {minutes:.1f} | {peak:.2f} |")
        values[c] = vals
    note = f"Held out: {', '.join(holdouts)}; cells: mean (per section, in that order)."
    return "\n".join(rows) + "\n\n" + note + "\n", values
