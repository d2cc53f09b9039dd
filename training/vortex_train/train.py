"""The three VORTEX training stages, with checkpoints after every epoch and resume.

Stage I   (2D): image_2d + genes + predictor. Symmetric InfoNCE image<->genes, MSE of
          the predicted expression, domain-adversarial loss across sources.
Stage II  (3D): image_3d starts from image_2d; image_2d and genes frozen. InfoNCE
          3D<->genes and 3D<->2D, L2 between 2D and 3D reconstruction tokens, MSE.
Stage III (3D, volume of interest): stage II's losses on the volume's own sections,
          with only the last `trainable_blocks` ViT blocks (plus poolers and the
          predictor) trained.
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import StageConfig
from .data import SpotSet
from .losses import DomainAdversarial, InfoNCE, TokenL2
from .model import Vortex
from .ssl import augment_views

STAGES = ("I", "II", "III")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def trainable_parameters(model: Vortex, stage: str, cfg: StageConfig) -> list[torch.nn.Parameter]:
    """Set requires_grad for a stage and return the parameters it trains."""
    for p in model.parameters():
        p.requires_grad_(False)
    if stage == "I":
        mods = [model.image_2d, model.genes, model.predictor, model.domain]
    elif stage == "II":
        mods = [model.image_3d, model.predictor]
    else:
        enc = model.image_3d
        mods = [enc.contrast, enc.recon, enc.proj, model.predictor]
        blocks = list(enc.vit.blocks)
        n = len(blocks) if cfg.trainable_blocks < 0 else min(cfg.trainable_blocks, len(blocks))
        mods += blocks[len(blocks) - n :] + enc.vit.tail()
        if n == len(blocks):  # everything: stem and position embeddings too
            mods += [enc.vit]
            enc.depth_emb.requires_grad_(True)
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _augment(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def stage_loss(model: Vortex, stage: str, batch: dict, cfg: StageConfig) -> tuple[torch.Tensor, dict]:
    """The loss of one batch for `stage`, with its terms for logging."""
    nce = InfoNCE(cfg.tau)
    terms: dict[str, torch.Tensor] = {}
    eg = model.genes(batch["enc"])
    if stage == "I":
        e2, t2 = model.image_2d(batch["img2d"].unsqueeze(1))
        pred, _ = model.predictor(t2)
        terms["nce_img_genes"] = nce(e2, eg)
        terms["mse"] = cfg.mse_weight * F.mse_loss(pred, batch["pred"])
        if model.cfg.n_domains > 1:
            terms["adversarial"] = DomainAdversarial(model.domain, cfg.adv_lambda)(e2, batch["domain"])
    else:
        with torch.no_grad():
            e2, t2 = model.image_2d(batch["img2d"].unsqueeze(1))
        e3, t3 = model.image_3d(batch["img3d"])
        pred, _ = model.predictor(t3)
        terms["nce_3d_genes"] = nce(e3, eg)
        terms["nce_3d_2d"] = nce(e3, e2)
        terms["tokens_l2"] = cfg.token_weight * TokenL2()(t3, t2)
        terms["mse"] = cfg.mse_weight * F.mse_loss(pred, batch["pred"])
    loss = sum(terms.values())
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def make_batches(data: SpotSet, genes: tuple[np.ndarray, np.ndarray], idx: np.ndarray, augment: bool,
                 colour: float = 0.0, norms: tuple | None = None) -> dict:  # fmt: skip
    """Tensors of rows `idx`: images (optionally rotated/flipped alike), encoder and
    predictor gene values (`genes`, selected once per stage), domains.

    With `colour` > 0 (and `norms` = ((mean, std) of the 2D images, (mean, std) of the
    3D ones)) the images get `ssl.augment_views` at that strength instead: stain and
    colour jitter, blur, and the same rotation, flip and crop for a spot's 2D and 3D
    patch."""
    enc, pred = genes
    b = {
        "img2d": torch.from_numpy(data.img2d[idx]),
        "enc": torch.from_numpy(enc[idx]),
        "pred": torch.from_numpy(pred[idx]),
        "domain": torch.from_numpy(data.domain[idx].astype(np.int64)),
    }
    if data.img3d is not None:
        b["img3d"] = torch.from_numpy(data.img3d[idx])
    if augment and colour > 0 and norms is not None:
        seed = random.randrange(1 << 62)
        for key, (mean, std) in zip(("img2d", "img3d"), norms, strict=True):
            if key in b:
                shape = (-1, 1, 1) if b[key].ndim == 4 else (1, -1, 1, 1)
                m, s = (torch.tensor(v, dtype=torch.float32).reshape(shape) for v in (mean, std))
                x = augment_views(b[key] * s + m, colour, torch.Generator().manual_seed(seed))
                b[key] = (x - m) / s
    elif augment:
        k, flip = random.randrange(4), random.random() < 0.5
        b["img2d"] = _augment(b["img2d"], k, flip)
        if "img3d" in b:
            b["img3d"] = _augment(b["img3d"], k, flip)
    return b


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# Fields added after checkpoints were first written: left out of the fingerprint while
# at their defaults, so that checkpoints of earlier releases still resume.
_LATER_FIELDS = {
    "backbone": "",
    "backbone_kwargs": {},
    "image_mean": None,
    "image_std": None,
    "max_steps": 0,
    "augment": 0.0,
}


def _fingerprint(model: Vortex, cfg: StageConfig, spots: int) -> dict:
    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}

    return {"model": strip(model.cfg.to_json()), "stage": strip(dict(vars(cfg))), "spots": spots}


def run_stage(model: Vortex, stage: str, data: SpotSet, cfg: StageConfig, ckpt_dir: Path | None = None,
              log=print) -> list[float]:  # fmt: skip
    """Train `stage` on `data`; returns the mean loss of every epoch.

    With `ckpt_dir`, a checkpoint (weights, optimiser, schedule, RNG) is written
    atomically after every epoch and an interrupted stage resumes from it; a finished
    stage is loaded and skipped.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    if stage != "I" and data.img3d is None:
        raise ValueError(f"stage {stage} needs 3D patches")
    seed_everything(cfg.seed)
    params = trainable_parameters(model, stage, cfg)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data.expr)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(n // bs, 1)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps > 0:
        total = min(total, cfg.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, total, int(cfg.warmup_frac * total)))
    start, history = 0, []
    ckpt = None if ckpt_dir is None else Path(ckpt_dir) / f"stage_{stage}.pt"
    fingerprint = _fingerprint(model, cfg, n)
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(f"{ckpt}: checkpoint of a different model, stage settings or data; "
                             "remove it or choose another --work directory")  # fmt: skip
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        log(f"stage {stage}: resumed after epoch {start}/{cfg.epochs}")
    genes = (data.select_genes(model.cfg.encoder_genes), data.select_genes(model.cfg.predicted_genes))
    norms = (model.cfg.norm(data.img2d.shape[1]),
             model.cfg.norm(data.img3d.shape[2] if data.img3d is not None else data.img2d.shape[1]))  # fmt: skip
    model.train()
    epochs = -(-total // steps_per_epoch)  # fewer than cfg.epochs with max_steps
    for epoch in range(start, epochs):
        t0 = time.time()
        perm = np.random.permutation(n)
        losses, parts = [], {}
        for s in range(steps_per_epoch):
            if epoch * steps_per_epoch + s >= total:
                break
            batch = make_batches(data, genes, np.sort(perm[s * bs : (s + 1) * bs]), augment=True,
                                 colour=cfg.augment, norms=norms)  # fmt: skip
            loss, terms = stage_loss(model, stage, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            for k, v in terms.items():
                parts[k] = parts.get(k, 0.0) + v / steps_per_epoch
        history.append(float(np.mean(losses)))
        detail = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
        log(f"stage {stage} epoch {epoch + 1}/{epochs} loss {history[-1]:.4f} ({detail}) "
            f"lr {sched.get_last_lr()[0]:.2e} {time.time() - t0:.1f}s")  # fmt: skip
        if ckpt is not None:
            tmp = ckpt.with_suffix(".tmp")
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch + 1, "history": history, "fingerprint": fingerprint,
                     "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                     "python_rng": random.getstate()}  # fmt: skip
            torch.save(state, tmp)
            tmp.replace(ckpt)
        sys.stdout.flush()
    model.eval()
    return history
