"""Bring your own encoder, end to end on her2st (issue 22, item 4):

1. ViT-B/16: a randomly initialised timm `vit_base_patch16_224` (with its classifier
   head) saved as a local state dict in timm's layout (no weights can be downloaded
   here); loaded as the per-slice backbone of a 112 px (1 um/px) model, its position
   embeddings resampled from 14 x 14 to 7 x 7 by timm; stage I on her2st (C4 held out)
   for a few steps; exported to ONNX with parity against PyTorch; registered in a store;
   one whole section (C4's H&E) ingested by vortexdb through its 2D encoder.
2. ViT-L/16: the same for `vit_large_patch16_224` without training: exported (its
   1.2 GB networks go to external data files), parity, registered, and a crop of C4
   ingested.
Each step's wall time and the process's peak resident memory go to OUT/byo.json, and
the ingest's patches/s beside those of the default-size her2st model (ViT width 64,
2 blocks, 112 px) measured in the same run.

    PYTHONPATH=training .venv/bin/python scripts/byo-encoder.py [--data DIR] [--work DIR]
"""

import argparse
import json
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from vortex_train.backbones import timm_norm
from vortex_train.config import ModelConfig, StageConfig
from vortex_train.data import her2st_hvg, her2st_panel, load_her2st, read_her2st_section
from vortex_train.export import export_model, parity
from vortex_train.model import Vortex, load_pretrained_vit
from vortex_train.train import run_stage

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--data", default="../shared/data/her2st")
ap.add_argument("--work", default="byo-work")
ap.add_argument(
    "--steps", type=int, default=3, help="stage I optimiser steps of the ViT-B model"
)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--skip-large", action="store_true", help="ViT-B only")
ap.add_argument(
    "--huge", action="store_true", help="also ViT-H/14 (2.5 GB networks; ~16 GB of RAM)"
)
ap.add_argument("--only-huge", action="store_true", help="ViT-H/14 only")
args = ap.parse_args()
torch.set_num_threads(args.threads)
import timm

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "vortexdb"
data = Path(args.data)
work = Path(args.work)
work.mkdir(parents=True, exist_ok=True)
# Steps of earlier runs stay (a later --only-huge run adds to them).
report: dict = (
    json.loads((work / "byo.json").read_text()) if (work / "byo.json").exists() else {}
)
report["threads"] = args.threads
t_all = time.time()


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def step(name: str, t0: float, **extra) -> None:
    report[name] = {
        "seconds": round(time.time() - t0, 1),
        "peak_rss_gib": round(peak_gib(), 2),
        **extra,
    }
    print(name, json.dumps(report[name]), flush=True)
    (work / "byo.json").write_text(json.dumps(report, indent=2))


def vortexdb(*a: str) -> dict:
    r = subprocess.run(
        [str(BIN), "--json", *a], check=False, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"vortexdb {' '.join(a)}: {r.stderr}")
    return json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}


train = ["C2", "C3", "C5", "C6"]
secs = [read_her2st_section(data, s) for s in train]
panel = her2st_panel(secs, 250)
enc = her2st_hvg(secs, 128)
c4 = read_her2st_section(data, "C4")
section_png = work / "C4.png"
if not section_png.exists():
    Image.MAX_IMAGE_PIXELS = None
    Image.open(c4.image_path).convert("RGB").save(section_png)
crop_png = work / "C4_crop.png"
if not crop_png.exists():
    im = Image.open(section_png)
    cx, cy = (int(v) for v in np.median(c4.pixel, 0))
    half = round(560 / c4.um_per_px)  # 1.12 mm square around the spots' median
    im.crop((cx - half, cy - half, cx + half, cy + half)).save(crop_png)


def cfg_for(backbone: str) -> ModelConfig:
    mean, std = timm_norm(backbone)
    return ModelConfig(image_size=112, max_depth=1, channels_3d=3, encoder_genes=enc, predicted_genes=panel,
                       n_domains=len(train), embed_dim=64, gene_width=64, gene_layers=1, backbone=backbone,
                       image_mean=mean, image_std=std)  # fmt: skip


def ingest(model_dir: Path, name: str, image: Path) -> dict:
    store = work / f"store-{name}"
    subprocess.run(["rm", "-rf", str(store)], check=True)
    vortexdb("init", str(store))
    t0 = time.time()
    vortexdb("models", "add", str(store), str(model_dir))
    add_s = time.time() - t0
    t0 = time.time()
    r = vortexdb("ingest", "image", str(store), "--sample", "C4", "--overlap", "0", "--um-per-px",
                 str(c4.um_per_px), "--threads", str(args.threads), str(image))  # fmt: skip
    return {"models_add_seconds": round(add_s, 1), "wall_seconds": round(time.time() - t0, 1),
            **{k: r[k] for k in ("patches_total", "seconds", "inference_seconds", "patches_per_second",
                                 "peak_rss_bytes")}}  # fmt: skip


def vit_b() -> None:
    """ViT-B/16 and the tiny peer: load, stage I, export, parity, store, C4."""
    t0 = time.time()
    ckpt = work / "vit_base_patch16_224.pth"
    if not ckpt.exists():
        torch.manual_seed(0)
        src = timm.create_model(
            "vit_base_patch16_224", pretrained=False
        )  # 224 px, 1000-class head
        torch.save(src.state_dict(), ckpt)
        del src
    cfg = cfg_for("timm:vit_base_patch16_224")
    torch.manual_seed(0)
    model = Vortex(cfg)
    loaded = load_pretrained_vit(model.image_2d, str(ckpt))
    step("vit_b_load", t0, file_mb=round(ckpt.stat().st_size / 2**20), loaded=len(loaded["loaded"]),
         missing=loaded["missing"], skipped=loaded["skipped"])  # fmt: skip
    t0 = time.time()
    genes = list(dict.fromkeys(panel + enc))
    spots = load_her2st(data, train, genes, 112, depth=1, norm=cfg.norm(3))
    model.genes.set_bin_edges(torch.from_numpy(spots.select_genes(enc)))
    model.predictor.init_output_bias(
        torch.from_numpy(spots.select_genes(panel).mean(0))
    )
    step("her2st_patches_112px", t0, spots=len(spots.expr))
    t0 = time.time()
    before = model.image_2d.vit.net.blocks[-1].mlp.fc2.weight.clone()
    losses = run_stage(model, "I", spots, StageConfig(epochs=1, batch_size=args.batch_size, max_steps=args.steps),
                       log=lambda *_: None)  # fmt: skip
    changed = not torch.equal(before, model.image_2d.vit.net.blocks[-1].mlp.fc2.weight)
    step("vit_b_stage_I", t0, steps=args.steps, batch_size=args.batch_size, loss=losses[-1], last_block_changed=changed,
         seconds_per_step=round((time.time() - t0) / args.steps, 1))  # fmt: skip
    t0 = time.time()
    model.init_3d_from_2d()
    out_b = work / "model-vit-b"
    man = export_model(model, out_b, "byo-vit-b16", {"size_px": [112, 112], "depth": 1, "um_per_px": 1.0, "channels": 3},
                       {"note": "scripts/byo-encoder.py: random-init timm ViT-B/16, stage I for a few steps"})  # fmt: skip
    export_s = time.time() - t0
    t0 = time.time()
    diffs = parity(model, out_b)
    step("vit_b_export", t0 - export_s, export_seconds=round(export_s, 1), parity_seconds=round(time.time() - t0, 1),
         parity_max_abs=max(diffs.values()), external_data=any("data" in n for n in man["networks"].values()),
         onnx_mb=round(sum(p.stat().st_size for p in out_b.iterdir()) / 2**20))  # fmt: skip
    del model
    t0 = time.time()
    step("vit_b_store_section", t0, **ingest(out_b, "vit-b", section_png))

    # --- the peer: the built-in tiny ViT at the same patch geometry ---------------------------
    t0 = time.time()
    tiny = ModelConfig(image_size=112, vit_patch=16, max_depth=1, channels_3d=3, encoder_genes=enc, predicted_genes=panel,
                       n_domains=len(train), embed_dim=64, vit_width=64, vit_layers=2, gene_width=64, gene_layers=1)  # fmt: skip
    torch.manual_seed(0)
    m = Vortex(tiny)
    m.init_3d_from_2d()
    out_t = work / "model-tiny"
    export_model(
        m,
        out_t,
        "tiny-112",
        {"size_px": [112, 112], "depth": 1, "um_per_px": 1.0, "channels": 3},
        {"note": "peer"},
    )
    step("tiny_store_section", t0, **ingest(out_t, "tiny", section_png))
    step("tiny_store_crop", time.time(), **ingest(out_t, "tiny-crop", crop_png))


def export_large(backbone: str, name: str, key: str) -> None:
    """A random-init timm encoder without training: export (its networks' weights in
    external data files), parity, then `models add` and the C4 crop through the store."""
    t0 = time.time()
    cfg = cfg_for(backbone)
    torch.manual_seed(0)
    model = Vortex(cfg)
    model.init_3d_from_2d()
    out = work / f"model-{key.replace('_', '-')}"
    man = export_model(model, out, name, {"size_px": [112, 112], "depth": 1, "um_per_px": 1.0, "channels": 3},
                       {"note": f"scripts/byo-encoder.py: random-init timm {backbone}"})  # fmt: skip
    export_s = time.time() - t0
    t1 = time.time()
    diffs = parity(model, out)
    params = sum(p.numel() for p in model.image_2d.parameters())
    del model
    step(f"{key}_export", t0, export_seconds=round(export_s, 1), parity_seconds=round(time.time() - t1, 1),
         parity_max_abs=max(diffs.values()), image_encoder_params_m=round(params / 1e6, 1),
         data_mb={d["file"]: round((out / d["file"]).stat().st_size / 2**20)
                  for n in man["networks"].values() for d in n.get("data", [])},
         onnx_mb=round(sum(p.stat().st_size for p in out.iterdir()) / 2**20))  # fmt: skip
    step(
        f"{key}_store_crop", time.time(), **ingest(out, key.replace("_", "-"), crop_png)
    )


if not args.only_huge:
    vit_b()
    if not args.skip_large:
        export_large(
            "timm:vit_large_patch16_224", "byo-vit-l16", "vit_l"
        )  # ViT-L/16: 1.2 GB networks
if args.huge or args.only_huge:
    export_large(
        "timm:vit_huge_patch14_224", "byo-vit-h14", "vit_h"
    )  # ViT-H/14: over 2 GiB, 8 x 8 tokens
report["seconds"] = round(time.time() - t_all, 1)
(work / "byo.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
