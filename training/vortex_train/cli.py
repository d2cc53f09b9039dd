"""Command line: `python -m vortex_train {phantom,her2st} ...` (see --help)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig, StageConfig, save_json
from .data import MARKERS, concat, her2st_hvg, her2st_panel, load_her2st, load_phantom, read_her2st_section
from .evaluate import bleep_predict, embed, pcc_per_gene, pcc_summary, retrieval_topk
from .export import export_model, parity
from .model import Vortex, load_pretrained_vit
from .train import run_stage


def _log(msg: str) -> None:
    print(msg, flush=True)


def _stage_cfg(args, stage: str) -> StageConfig:
    epochs = {"I": args.epochs_1, "II": args.epochs_2, "III": args.epochs_3}[stage]
    lr = args.lr if stage != "III" else args.lr * 0.3
    return StageConfig(epochs=epochs, batch_size=args.batch_size, lr=lr, seed=args.seed,
                       trainable_blocks=args.trainable_blocks if stage == "III" else -1)  # fmt: skip


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
                      vit_layers=args.layers, gene_width=args.gene_width, gene_layers=args.gene_layers)  # fmt: skip
    torch.manual_seed(args.seed)
    model = Vortex(cfg)
    if args.pretrained:
        _log(f"pretrained backbone: {len(load_pretrained_vit(model.image_2d, args.pretrained))} tensors loaded")
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
    export_model(model, Path(args.out), args.name, patch, training)
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
                      gene_layers=args.gene_layers)  # fmt: skip
    torch.manual_seed(args.seed)
    model = Vortex(cfg)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    key = f"{'-'.join(train_names)}_{args.holdout}_{args.image_size}px_{len(genes)}g_s{args.smooth_k}"
    tr25 = _cached(work / f"train_{key}.pkl", lambda: load_her2st(root, train_names, genes, args.image_size, depth=3,
                                                                    smooth_k=args.smooth_k))  # fmt: skip
    te25 = _cached(work / f"test_{key}.pkl", lambda: load_her2st(root, [args.holdout], genes, args.image_size, depth=3,
                                                                   smooth_k=args.smooth_k))  # fmt: skip
    _log(f"patches: {len(tr25.expr)} train, {len(te25.expr)} held-out spots ({time.time() - t0:.1f}s)")
    model.genes.set_bin_edges(torch.from_numpy(tr25.select_genes(enc)))
    model.predictor.init_output_bias(torch.from_numpy(tr25.select_genes(panel).mean(0)))
    truth = te25.select_genes(panel)
    run_stage(model, "I", tr25, _stage_cfg(args, "I"), work, _log)
    e_te, e_tr = embed(model, te25, False), embed(model, tr25, False)
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
                     {**training, "um_per_px_2d": patch["um_per_px"]})  # fmt: skip
        _log(f"exported {args.export}/2d: ONNX parity {max(parity(m2, Path(args.export) / '2d').values()):.2e}")
    results["bleep_knn_2d"] = pcc_summary(
        bleep_predict(e_te["image"], e_tr["image"], tr25.select_genes(panel), args.k), truth, panel, MARKERS
    )
    model.init_3d_from_2d()
    run_stage(model, "II", tr25, _stage_cfg(args, "II"), work, _log)
    e_te, e_tr = embed(model, te25, True), embed(model, tr25, True)
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
                     {**patch, "depth": 3}, training)  # fmt: skip
        _log(f"exported {args.export}/2_5d: ONNX parity {max(parity(model, Path(args.export) / '2_5d').values()):.2e}")
    results["seconds"] = round(time.time() - t0, 1)
    for k, v in results.items():
        _log(f"{k}: {json.dumps(v)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_json(results, out)
    return 0


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
    from .probe import load_features, probe, write_results

    f = load_features(Path(args.features))
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


def _common(p: argparse.ArgumentParser, epochs=(40, 30, 10)) -> None:
    p.add_argument("--work", default="training/work", help="checkpoint directory (resumes from it)")
    p.add_argument("--epochs-1", type=int, default=epochs[0], help="stage I epochs")
    p.add_argument("--epochs-2", type=int, default=epochs[1], help="stage II epochs")
    p.add_argument("--epochs-3", type=int, default=epochs[2], help="stage III epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate (cosine, warm-up)")
    p.add_argument("--trainable-blocks", type=int, default=1, help="ViT blocks trained in stage III (-1 all)")
    p.add_argument("--image-size", type=int, default=32, help="patch side in pixels")
    p.add_argument("--embed-dim", type=int, default=64, help="shared embedding size E")
    p.add_argument("--width", type=int, default=64, help="ViT width")
    p.add_argument("--layers", type=int, default=2, help="ViT blocks")
    p.add_argument("--gene-width", type=int, default=64, help="gene encoder width")
    p.add_argument("--gene-layers", type=int, default=1, help="gene encoder blocks")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)


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
    p.add_argument("--pretrained", help="local ViT/CONCH state dict for the 2D backbone")
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
    p.add_argument(
        "--features", required=True, help="NPZ: embeddings (spots x d), expression (log1p), genes, section[, patient]"
    )
    p.add_argument("--out", required=True, help="directory for results_kfold.json and split<i>/results.json")
    p.add_argument("--genes", type=int, default=50, help="most variable genes probed")
    p.add_argument("--latent-dim", type=int, default=256, help="PCA dimensions")
    p.add_argument("--test", nargs="+", help="held-out sections (patients) to score (default: each in turn)")
    p.set_defaults(func=cmd_probe)
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
