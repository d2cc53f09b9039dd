"""The HEST-style probe (vortex_train.probe) on her2st patient C: the floors of the
probe table, raw pixels and a random-init 2D encoder of the evaluation's architecture
(scripts/her2st-eval.sh's defaults), leave one section out over the sections with
images, scored on the held-out sections of the evaluation (C3, C4, C5).

    PYTHONPATH=training .venv/bin/python scripts/her2st-probe.py [--data DIR] [--out F.json]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from vortex_train.config import ModelConfig
from vortex_train.data import her2st_hvg, her2st_panel, load_her2st, read_her2st_section
from vortex_train.evaluate import embed
from vortex_train.model import Vortex
from vortex_train.probe import probe

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--data", default="../shared/data/her2st")
ap.add_argument("--out", default="eval-work/probe.json")
ap.add_argument("--test", nargs="+", default=["C3", "C4", "C5"])
args = ap.parse_args()
root = Path(args.data)
names = [
    s for s in ("C2", "C3", "C4", "C5", "C6") if (root / "images" / f"{s}.jpg").exists()
]
t0 = time.time()
secs = [read_her2st_section(root, s) for s in names]
panel = her2st_panel(secs, 250)
enc = her2st_hvg(secs, 128)
data = load_her2st(root, names, list(dict.fromkeys(panel + enc)), 32, depth=1)
section = np.array([names[g] for g in data.group])
expr = data.select_genes(panel)
features = {"raw_pixels": data.img2d.reshape(len(expr), -1)}
torch.manual_seed(0)
cfg = ModelConfig(image_size=32, max_depth=3, channels_3d=3, encoder_genes=enc, predicted_genes=panel,
                  n_domains=len(names) - 1, embed_dim=64, vit_width=64, vit_layers=2, gene_width=64,
                  gene_layers=1)  # fmt: skip
with torch.no_grad():
    features["random_init_2d"] = embed(Vortex(cfg), data, False)["image"]
summary = {"spots": len(expr), "sections": names, "test": args.test}
for name, x in features.items():
    r = probe(x, expr, panel, section, test=args.test)
    summary[name] = {"pearson_mean": r["pearson_mean"], "pearson_std": r["pearson_std"], "dim": r["dim"],
                     "per_section": {g: f["pearson_mean"] for g, f in r["folds"].items()}}  # fmt: skip
summary["seconds"] = round(time.time() - t0, 1)
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
