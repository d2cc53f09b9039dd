"""Summarise WORK_DIR/stain.json of scripts/her2st-stain.sh as Markdown:
    python scripts/stain_summary.py WORK_DIR/stain.json

For every perturbation and stain handling (as read, normalised at ingest): the mean and
the worst change in PCC, against the unperturbed sample as read, of the stored readout,
the raw-feature readout and the predictor head over the held-out sections and models;
then one row per section and model."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

KEYS = ("stored_readout", "raw_features_readout", "predictor")


def main() -> None:
    with open(sys.argv[1]) as f:
        rows = json.load(f)
    base = {
        (r["holdout"], r["model"]): r
        for r in rows
        if r["perturbation"] == "none" and r["stain"] == "read"
    }
    deltas: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        b = base[(r["holdout"], r["model"])]
        for k in KEYS:
            deltas[(r["perturbation"], r["stain"])][k].append(r[k] - b[k])
    print(
        "| perturbation | stain | stored readout mean (worst) | raw-feature readout | predictor head |"
    )
    print("|---|---|---|---|---|")
    for (p, s), d in deltas.items():
        cells = [
            f"{sum(v) / len(v):+.3f} ({min(v):+.3f})" for v in (d[k] for k in KEYS)
        ]
        print(f"| {p} | {s} | " + " | ".join(cells) + " |")
    print()
    print(
        "| held out | model | perturbation | stain | stored readout | raw-feature readout | predictor head |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['holdout']} | {r['model']} | {r['perturbation']} | {r['stain']} | "
            + " | ".join(f"{r[k]:.4f}" for k in KEYS)
            + " |"
        )


if __name__ == "__main__":
    main()
