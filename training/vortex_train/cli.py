"""Command line: `python -m vortex_train {phantom,her2st} ...` (see --help)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .backbones import TIMM, is_timm, timm_norm
from .config import ModelConfig, StageConfig, save_json
from .data import MARKERS, concat, her2st_hvg, her2st_panel, load_her2st, load_phantom, read_her2st_section
from .evaluate import bleep_predict, embed, pcc_per_gene, pcc_summary, retrieval_topk
from .export import export_model, parity
from .model import Vortex, load_pretrained_vit
from .probe import probe
from .train import run_stage


def _log(msg: str) -> None:
    print(msg, flush=True)


def _stage_cfg(args, stage: str) -> StageConfig:
    epochs = {"I": args.epochs_1, "II": args.epochs_2, "III": args.epochs_3}[stage]
    lr = args.lr if stage != "III" else args.lr * 0.3
    return StageConfig(epochs=epochs, batch_size=args.batch_size, lr=lr, seed=args.seed,
                       trainable_blocks=args.trainable_blocks if stage == "III" else -1,
                       max_steps=args.max_steps, augment=args.augment if stage != "III" else 0.0)  # fmt: skip


def _backbone(args) -> dict:
    """ModelConfig fields of --backbone / --backbone-kwargs: a timm model brings its
    input normalisation unless --image-mean/--image-std give it."""
    if not args.backbone:
        return {}
    try:
        kwargs = json.loads(args.backbone_kwargs or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"--backbone-kwargs: not JSON ({e})") from e
    name = args.backbone if is_timm(args.backbone) else TIMM + args.backbone
    mean, std = timm_norm(name, kwargs)
    return {"backbone": name, "backbone_kwargs": kwargs, "image_mean": args.image_mean or mean,
            "image_std": args.image_std or std}  # fmt: skip


def _new_model(cfg: ModelConfig, args) -> Vortex:
    """The seeded model, with --pretrained weights loaded into its 2D backbone."""
    torch.manual_seed(args.seed)
    model = Vortex(cfg)
    if args.pretrained:
        r = load_pretrained_vit(model.image_2d, args.pretrained)
        missing, skipped = r["missing"], r["skipped"]
        _log(f"pretrained backbone {args.pretrained}: {len(r['loaded'])} tensors loaded, "
             f"{len(missing)} left at init {missing[:4]}, {len(skipped)} skipped {skipped[:4]}")  # fmt: skip
    return model


def _scores(model: Vortex, data, use_3d: bool, markers=()) -> dict:
    e = embed(model, data, use_3d)
    s = retrieval_topk(e["image"], e["genes"])
    s.update(pcc_summary(e["pred"], data.select_genes(model.cfg.predicted_genes), model.cfg.predicted_genes, markers))
    s["spots"] = len(data.expr)
    s["chance_top1"] = 1.0 / len(data.expr)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}


def _phantom_seed(path) -> int:
    return int(json.loads((Path(path) / "phantom.json").read_text())["seed"])


def cmd_phantom(args) -> int:
    """Train all three stages on phantoms, evaluate on the held-out planes of the
    volume of interest after every stage, export, check ONNX parity."""
    torch.set_num_threads(args.threads)
    t0 = time.time()
    cohort = concat([load_phantom(p, args.image_size, args.depth, domain=i) for i, p in enumerate(args.cohort)])
    voi = load_phantom(args.voi, args.image_size, args.depth, domain=0)
    tune = voi.subset(np.flatnonzero(voi.group < args.voi_train_planes))
    held = voi.subset(np.flatnonzero(voi.group >= args.voi_train_planes))
    _log(f"data: cohort {len(cohort.expr)} spots from {len(args.cohort)} phantoms, volume of interest "
         f"{len(tune.expr)} tuning + {len(held.expr)} held-out spots, {len(cohort.genes)} genes "
         f"({time.time() - t0:.1f}s)")  # fmt: skip
    cfg = ModelConfig(image_size=args.image_size, max_depth=args.depth, channels_3d=1,
                      encoder_genes=list(cohort.genes), predicted_genes=list(cohort.genes),
                      n_domains=len(args.cohort), embed_dim=args.embed_dim, vit_width=args.width,
                      vit_layers=args.layers, gene_width=args.gene_width, gene_layers=args.gene_layers,
                      vit_patch=args.vit_patch, **_backbone(args))  # fmt: skip
    model = _new_model(cfg, args)
    model.genes.set_bin_edges(torch.from_numpy(cohort.expr))
    model.predictor.init_output_bias(torch.from_numpy(cohort.select_genes(cfg.predicted_genes).mean(0)))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    metrics, losses = {}, {}
    losses["I"] = run_stage(model, "I", cohort, _stage_cfg(args, "I"), work, _log)
    metrics["stage_I_2d"] = _scores(model, held, use_3d=False)
    model.init_3d_from_2d()
    metrics["stage_I_3d_init"] = _scores(model, held, use_3d=True)
    losses["II"] = run_stage(model, "II", cohort, _stage_cfg(args, "II"), work, _log)
    metrics["stage_II_3d"] = _scores(model, held, use_3d=True)
    losses["III"] = run_stage(model, "III", tune, _stage_cfg(args, "III"), work, _log)
    metrics["stage_III_3d"] = _scores(model, held, use_3d=True)
    # Baselines on the same held-out spots: BLEEP-style kNN over the final 3D
    # embeddings with the tuning planes + cohort as reference, and the mean expression.
    ref = concat([cohort, tune])
    eh, er = embed(model, held, True), embed(model, ref, True)
    genes = cfg.predicted_genes
    metrics["bleep_knn_3d"] = pcc_summary(bleep_predict(eh["image"], er["image"], ref.select_genes(genes)),
                                          held.select_genes(genes), genes)  # fmt: skip
    mean_pred = np.broadcast_to(ref.select_genes(genes).mean(0), (len(held.expr), len(genes)))
    metrics["mean_expression"] = {"mse": float(((mean_pred - held.select_genes(genes)) ** 2).mean()),
                                  "pcc_all": None, "note": "constant prediction: PCC undefined"}  # fmt: skip
    if held.truth is not None:
        truth_pcc = float(np.nanmean(pcc_per_gene(eh["pred"], held.truth)))
        metrics["stage_III_3d"]["pcc_all_vs_noise_free_truth"] = round(truth_pcc, 4)
    for k, v in metrics.items():
        _log(f"{k}: {json.dumps(v)}")
    training = {
        "stages": [{"stage": s, "epochs": len(losses[s]), "loss_first": losses[s][0] if losses[s] else None,
                    "loss_last": losses[s][-1] if losses[s] else None} for s in ("I", "II", "III")],
        "data": {"cohort": [str(p) for p in args.cohort], "volume_of_interest": str(args.voi),
                 "cohort_seeds": [_phantom_seed(p) for p in args.cohort], "voi_seed": _phantom_seed(args.voi),
                 "voi_tuning_planes": args.voi_train_planes},
        "metrics": metrics,
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
        "um_per_px_2d": 4.0,
    }  # fmt: skip
    patch = {"size_px": [cfg.image_size, cfg.image_size], "depth": cfg.max_depth, "um_per_px": 4.0, "channels": 1}
    export_model(model, Path(args.out), args.name, patch, training, external_data=args.external_data or None)
    diffs = parity(model, Path(args.out))
    worst = max(diffs.values())
    _log(f"exported {args.out}: ONNX parity max abs diff {worst:.2e}")
    torch.save({"config": cfg.to_json(), "model": model.state_dict()}, work / "final.pt")
    return 0 if worst <= 1e-4 else 2


def _cached(path: Path, build):
    """Patches are slow to cut from the 90-megapixel JPEGs: keep them beside the checkpoints."""
    import pickle

    if path.exists():
        return pickle.loads(path.read_bytes())
    value = build()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(value))
    tmp.replace(path)
    return value


def cmd_her2st(args) -> int:
    """Leave-one-section-out on her2st: 2D (stage I) and 2.5D (stage II) against
    BLEEP-style kNN and mean-expression baselines, all in this run."""
    torch.set_num_threads(args.threads)
    t0 = time.time()
    root = Path(args.data)
    with_images = [s for s in ("C2", "C3", "C4", "C5", "C6") if (root / "images" / f"{s}.jpg").exists()]
    if args.holdout not in with_images:
        _log(f"error: {root}/images/{args.holdout}.jpg: held-out section needs an image")
        return 1
    train_names = [s for s in with_images if s != args.holdout]
    secs = [read_her2st_section(root, s) for s in train_names]
    panel = her2st_panel(secs, args.top_genes)
    enc = her2st_hvg(secs, args.hvg)
    genes = list(dict.fromkeys(panel + enc))
    _log(f"panel: {len(panel)} predicted genes ({sum(m in panel for m in MARKERS)} markers present), "
         f"{len(enc)} encoder genes; train {train_names}, held out {args.holdout}")  # fmt: skip
    results = {"holdout": args.holdout, "train": train_names, "panel_size": len(panel)}
    cfg = ModelConfig(image_size=args.image_size, max_depth=3, channels_3d=3, encoder_genes=enc,
                      predicted_genes=panel, n_domains=len(train_names), embed_dim=args.embed_dim,
                      vit_width=args.width, vit_layers=args.layers, gene_width=args.gene_width,
                      gene_layers=args.gene_layers, vit_patch=args.vit_patch, **_backbone(args))  # fmt: skip
    model = _new_model(cfg, args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.pretrain_epochs > 0:
        results["pretrain"] = _pretrain_her2st(model, root, train_names, work, args)
    norm = None if cfg.image_mean is None else cfg.norm(3)
    key = f"{'-'.join(train_names)}_{args.holdout}_{args.image_size}px_{len(genes)}g_s{args.smooth_k}"
    if norm is not None:
        key += "_n" + hashlib.sha256(json.dumps(norm).encode()).hexdigest()[:8]
    tr25 = _cached(work / f"train_{key}.pkl", lambda: load_her2st(root, train_names, genes, args.image_size, depth=3,
                                                                    smooth_k=args.smooth_k, norm=norm))  # fmt: skip
    te25 = _cached(work / f"test_{key}.pkl", lambda: load_her2st(root, [args.holdout], genes, args.image_size, depth=3,
                                                                   smooth_k=args.smooth_k, norm=norm))  # fmt: skip
    _log(f"patches: {len(tr25.expr)} train, {len(te25.expr)} held-out spots ({time.time() - t0:.1f}s)")
    model.genes.set_bin_edges(torch.from_numpy(tr25.select_genes(enc)))
    model.predictor.init_output_bias(torch.from_numpy(tr25.select_genes(panel).mean(0)))
    truth = te25.select_genes(panel)

    def probe_pcc(f_tr: np.ndarray, f_te: np.ndarray) -> float:
        """HEST-style probe (PCA-256 + ridge, 50 most variable genes) fit on the training
        spots' features, PCC on the held-out section's."""
        section = np.array([train_names[g] for g in tr25.group] + [args.holdout] * len(truth))
        expr = np.concatenate([tr25.select_genes(panel), truth])
        x = np.concatenate([f_tr.reshape(len(f_tr), -1), f_te.reshape(len(f_te), -1)])
        return probe(x, expr, panel, section, test=[args.holdout])["pearson_mean"]

    e_te, e_tr = embed(model, te25, False), embed(model, tr25, False)
    results["probe"] = {"raw_pixels": probe_pcc(tr25.img2d, te25.img2d),
                        "init_2d": probe_pcc(e_tr["image"], e_te["image"])}  # fmt: skip
    run_stage(model, "I", tr25, _stage_cfg(args, "I"), work, _log)
    e_te, e_tr = embed(model, te25, False), embed(model, tr25, False)
    results["probe"]["vortex_2d"] = probe_pcc(e_tr["image"], e_te["image"])
    results["vortex_2d"] = pcc_summary(e_te["pred"], truth, panel, MARKERS)
    patch = {"size_px": [cfg.image_size, cfg.image_size], "um_per_px": 112.0 / cfg.image_size,
             "z_um": args.spacing_um, "channels": 3}  # fmt: skip
    data_info = {"dataset": str(root), "train": train_names, "holdout": args.holdout, "seed": args.seed}
    if args.export:
        # The 2D model: the stage-I 2D encoder in the 3D slot with depth 1, so vortexdb
        # ingests each section on its own (baseline (b) of the evaluation).
        m2 = _as_2d_model(model)
        training = {"data": data_info, "stages": ["I"], "metrics": {"holdout": results["vortex_2d"]}}
        export_model(m2, Path(args.export) / "2d", f"vortex-her2st-2d-no{args.holdout}", {**patch, "depth": 1},
                     {**training, "um_per_px_2d": patch["um_per_px"]},
                     external_data=args.external_data or None)  # fmt: skip
        _log(f"exported {args.export}/2d: ONNX parity {max(parity(m2, Path(args.export) / '2d').values()):.2e}")
    results["bleep_knn_2d"] = pcc_summary(
        bleep_predict(e_te["image"], e_tr["image"], tr25.select_genes(panel), args.k), truth, panel, MARKERS
    )
    model.init_3d_from_2d()
    run_stage(model, "II", tr25, _stage_cfg(args, "II"), work, _log)
    e_te, e_tr = embed(model, te25, True), embed(model, tr25, True)
    results["probe"]["vortex_2_5d"] = probe_pcc(e_tr["image"], e_te["image"])
    results["vortex_2_5d"] = pcc_summary(e_te["pred"], truth, panel, MARKERS)
    results["bleep_knn_2_5d"] = pcc_summary(
        bleep_predict(e_te["image"], e_tr["image"], tr25.select_genes(panel), args.k), truth, panel, MARKERS
    )
    mean_pred = np.broadcast_to(tr25.select_genes(panel).mean(0), truth.shape)
    results["mean_expression"] = {"mse": float(((mean_pred - truth) ** 2).mean()), "pcc_all": None,
                                  "note": "constant prediction: PCC undefined"}  # fmt: skip
    if args.export:
        training = {"data": data_info, "stages": ["I", "II"], "metrics": {"holdout": results["vortex_2_5d"]},
                    "um_per_px_2d": patch["um_per_px"]}  # fmt: skip
        export_model(model, Path(args.export) / "2_5d", f"vortex-her2st-2.5d-no{args.holdout}",
                     {**patch, "depth": 3}, training, external_data=args.external_data or None)  # fmt: skip
        _log(f"exported {args.export}/2_5d: ONNX parity {max(parity(model, Path(args.export) / '2_5d').values()):.2e}")
    results["seconds"] = round(time.time() - t0, 1)
    for k, v in results.items():
        _log(f"{k}: {json.dumps(v)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_json(results, out)
    return 0


def _pretrain_her2st(model: Vortex, root: Path, train_names: list[str], work: Path, args) -> dict:
    """SimCLR on every tissue tile of the training sections' images (never the held-out
    one), then the weights into the 2D backbone. Tiles and weights are kept in `work`,
    so a re-run reuses them."""
    from PIL import Image

    from .ssl import pretrain, tiles_from_image

    Image.MAX_IMAGE_PIXELS = None
    cfg = model.cfg
    key = f"{'-'.join(train_names)}_{cfg.image_size}px"
    tiles_path = work / f"tiles_{key}.npy"
    if tiles_path.exists():
        tiles = np.load(tiles_path)
    else:
        parts = []
        for s in train_names:
            sec = read_her2st_section(root, s)
            rgb = np.asarray(Image.open(sec.image_path).convert("RGB"))
            parts.append(tiles_from_image(rgb, sec.um_per_px, 112.0, cfg.image_size, max_tiles=args.pretrain_tiles,
                                          seed=args.seed))  # fmt: skip
            _log(f"pretrain tiles: {s} {len(parts[-1])}")
        tiles = np.concatenate(parts)
        np.save(tiles_path.with_suffix(".tmp.npy"), tiles)
        tiles_path.with_suffix(".tmp.npy").replace(tiles_path)
    arch = {k: v for k, v in cfg.to_json().items() if k.startswith(("vit_", "image_", "backbone"))}
    tag = hashlib.sha256(json.dumps([arch, args.pretrain_epochs, args.seed, len(tiles)]).encode()).hexdigest()[:8]
    weights = work / f"pretrained_{key}_{tag}.pt"
    info_path = weights.with_suffix(".json")
    if weights.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        info = pretrain(cfg, tiles, weights, epochs=args.pretrain_epochs, seed=args.seed, log=_log)
        save_json(info, info_path)
    r = load_pretrained_vit(model.image_2d, str(weights))
    _log(f"self-supervised backbone {weights}: {len(r['loaded'])} tensors loaded, {len(r['missing'])} missing")
    return {**info, "weights": weights.name, "loaded": len(r["loaded"])}


def _as_2d_model(model: Vortex) -> Vortex:
    """A copy of `model` whose 3D encoder is its 2D one (depth 1, RGB), for export."""
    import copy

    cfg = copy.deepcopy(model.cfg)
    cfg.max_depth, cfg.channels_3d = 1, cfg.channels_2d
    m2 = Vortex(cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("image_3d.")}
    m2.load_state_dict(state, strict=False)
    m2.image_3d.load_state_dict(model.image_2d.state_dict())
    return m2


def cmd_her2st_volume(args) -> int:
    """Register the her2st sections into one 2.5D volume for `vortexdb ingest sections`."""
    from .her2st_volume import build_volume

    t0 = time.time()
    meta = build_volume(Path(args.data), Path(args.out), args.um_per_px)
    _log(f"{args.out}: {len(meta['stack'])} sections {meta['stack']} of {meta['size_px']} px at "
         f"{args.um_per_px} um/px; max registration residual per section (um) "
         f"{meta['registration_max_residual_um']} ({time.time() - t0:.1f}s)")  # fmt: skip
    return 0


def cmd_her2st_report(args) -> int:
    """Tables and figures of the her2st evaluation from `scripts/her2st-eval.sh`'s work directory."""
    from .her2st_report import report

    res = report(Path(args.work), args.holdouts, Path(args.out), args.seconds)
    _log((Path(args.out) / "results.md").read_text())
    return 0 if res["prediction"] else 1


def cmd_report(args) -> int:
    """Print a model's recorded held-out metrics as a Markdown table."""
    from .export import read_manifest

    m = read_manifest(Path(args.model) / "manifest.json")["training"]["metrics"]
    print("| evaluation | top-1 | top-5 | PCC all | PCC top 50 | MSE |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, v in m.items():
        cells = [v.get(k) for k in ("top1", "top5", "pcc_all", "pcc_top50", "mse")]
        print(f"| {name} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    return 0


def cmd_probe(args) -> int:
    from .probe import load_features, load_spot_exports, write_results

    if (args.features is None) == (args.spots is None):
        raise ValueError("probe: give either --features NPZ or --spots DIR... (vortexdb spots export --image)")
    f = load_features(Path(args.features)) if args.features else load_spot_exports([Path(d) for d in args.spots])
    res = probe(
        f["embeddings"],
        f["expression"],
        f["genes"],
        f["section"],
        f["patient"],
        n_genes=args.genes,
        latent_dim=args.latent_dim,
        test=args.test,
    )
    paths = write_results(res, Path(args.out))
    folds = ", ".join(f"{g} {r['pearson_mean']:.3f}" for g, r in res["folds"].items())
    print(
        f"probe: {res['n_spots']} spots, {res['dim']}-d embeddings, {len(res['genes'])} genes, "
        f"folds by {res['folds_by']}: PCC {res['pearson_mean']:.3f} +- {res['pearson_std']:.3f} ({folds})"
    )
    print(f"  {paths[0]}")
    return 0


def cmd_ablation_report(args) -> int:
    """The ablation table of scripts/her2st-ablation.sh (Markdown + JSON in --work)."""
    from .ablation import report

    text, values = report(Path(args.work), args.configs, args.holdouts)
    (Path(args.work) / "ablation.md").write_text(text)
    save_json(values, Path(args.work) / "ablation.json")
    print(text)
    return 0


def _common(p: argparse.ArgumentParser, epochs=(40, 30, 10)) -> None:
    p.add_argument("--work", default="training/work", help="checkpoint directory (resumes from it)")
    p.add_argument("--epochs-1", type=int, default=epochs[0], help="stage I epochs")
    p.add_argument("--epochs-2", type=int, default=epochs[1], help="stage II epochs")
    p.add_argument("--epochs-3", type=int, default=epochs[2], help="stage III epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate (cosine, warm-up)")
    p.add_argument("--trainable-blocks", type=int, default=1, help="ViT blocks trained in stage III (-1 all)")
    p.add_argument("--image-size", type=int, default=32, help="patch side in pixels")
    p.add_argument("--vit-patch", type=int, default=8, help="ViT token side in pixels (built-in backbone)")
    p.add_argument(
        "--augment",
        type=float,
        default=0.0,
        help="stain/colour jitter, blur and crop strength in stages I and II (0 = rotations/flips only)",
    )
    p.add_argument("--embed-dim", type=int, default=64, help="shared embedding size E")
    p.add_argument("--width", type=int, default=64, help="ViT width")
    p.add_argument("--layers", type=int, default=2, help="ViT blocks")
    p.add_argument("--gene-width", type=int, default=64, help="gene encoder width")
    p.add_argument("--gene-layers", type=int, default=1, help="gene encoder blocks")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="stop each stage after N optimiser steps (0 = all)")
    p.add_argument("--backbone", help="timm model as the per-slice backbone, e.g. vit_base_patch16_224, resnet50")
    p.add_argument("--backbone-kwargs", help='JSON keyword arguments of timm.create_model, e.g. {"init_values": 1e-5}')
    p.add_argument("--pretrained", help="local state dict (.pt/.pth/.bin/.safetensors) for the 2D backbone")
    p.add_argument("--image-mean", type=float, nargs=3, help="RGB input mean (default: the backbone's)")
    p.add_argument("--image-std", type=float, nargs=3, help="RGB input std (default: the backbone's)")
    p.add_argument("--external-data", action="store_true", help="export weights to <network>.onnx.data files")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m vortex_train`."""
    ap = argparse.ArgumentParser(prog="python -m vortex_train", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("phantom", help="three-stage training on vortexdb phantoms, ONNX export + manifest")
    p.add_argument("--cohort", nargs="+", required=True, help="phantom directories for stages I and II")
    p.add_argument("--voi", required=True, help="phantom directory of the volume of interest (stage III + eval)")
    p.add_argument("--voi-train-planes", type=int, default=2, help="planes of the VOI used for stage III")
    p.add_argument("--depth", type=int, default=16, help="slices per 3D patch (16 x 4 um = 64 um)")
    p.add_argument("--out", required=True, help="model directory to write (manifest.json + *.onnx)")
    p.add_argument("--name", default="vortex-tiny-phantom")
    _common(p)
    p.set_defaults(func=cmd_phantom)
    p = sub.add_parser("her2st", help="leave-one-section-out on her2st: 2D and 2.5D vs baselines")
    p.add_argument("--data", default="../shared/data/her2st")
    p.add_argument("--holdout", default="C4")
    p.add_argument("--top-genes", type=int, default=250)
    p.add_argument("--hvg", type=int, default=128, help="encoder genes (highest variance)")
    p.add_argument("--smooth-k", type=int, default=0, help="smooth targets over k nearest spots (0 = off)")
    p.add_argument("--k", type=int, default=50, help="neighbours of the BLEEP-style baseline")
    p.add_argument("--out", default="training/work/her2st.json")
    p.add_argument("--export", help="write the 2D and 2.5D models here (DIR/2d, DIR/2_5d) for vortexdb")
    p.add_argument("--spacing-um", type=float, default=32.0, help="distance between sections")
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="SimCLR epochs on every tissue tile of the training sections before stage I (0 = none)",
    )
    p.add_argument("--pretrain-tiles", type=int, help="at most this many tiles per section (default: all)")
    _common(p, (20, 15, 0))
    p.set_defaults(func=cmd_her2st)
    p = sub.add_parser("her2st-volume", help="register the her2st sections into one 2.5D volume + spot tables")
    p.add_argument("--data", default="../shared/data/her2st")
    p.add_argument("--out", required=True, help="directory to write (sections/, spots_*.parquet, labels.csv)")
    p.add_argument("--um-per-px", type=float, default=3.5, help="pixel size of the registered images")
    p.set_defaults(func=cmd_her2st_volume)
    p = sub.add_parser("her2st-report", help="tables and figures of scripts/her2st-eval.sh")
    p.add_argument("--work", default="eval-work", help="the evaluation's work directory")
    p.add_argument("--holdouts", nargs="+", default=["C3", "C4", "C5"])
    p.add_argument("--out", default="docs/eval", help="where results.md/json and the PNGs go")
    p.add_argument("--seconds", type=float, help="wall time of the whole evaluation, for the report")
    p.set_defaults(func=cmd_her2st_report)
    p = sub.add_parser("probe", help="HEST-style linear probe: PCA-256 + ridge from frozen embeddings to 50 genes")
    p.add_argument("--features", help="NPZ: embeddings (spots x d), expression (log1p), genes, section[, patient]")
    p.add_argument(
        "--spots", nargs="+", help="or: directories of `vortexdb spots export --image` (one per section), from a store"
    )
    p.add_argument("--out", required=True, help="directory for results_kfold.json and split<i>/results.json")
    p.add_argument("--genes", type=int, default=50, help="most variable genes probed")
    p.add_argument("--latent-dim", type=int, default=256, help="PCA dimensions")
    p.add_argument("--test", nargs="+", help="held-out sections (patients) to score (default: each in turn)")
    p.set_defaults(func=cmd_probe)
    p = sub.add_parser("ablation-report", help="table of scripts/her2st-ablation.sh's runs")
    p.add_argument("--work", default="ablation-work")
    p.add_argument("--configs", nargs="+", default=["base", "res", "ssl", "res_ssl"])
    p.add_argument("--holdouts", nargs="+", default=["C3", "C4", "C5"])
    p.set_defaults(func=cmd_ablation_report)
    p = sub.add_parser("report", help="print a model's recorded metrics as a Markdown table")
    p.add_argument("model", help="model directory (manifest.json)")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        # bad input: one line naming the file and the problem, exit code 1
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
