"""Held-out evaluation: cross-modal retrieval, expression PCC, and two baselines
(BLEEP-style k-nearest reference spots, mean expression) measured in the same run."""

from __future__ import annotations

import numpy as np
import torch

from .data import SpotSet
from .model import Vortex


@torch.no_grad()
def embed(model: Vortex, data: SpotSet, use_3d: bool, batch: int = 128) -> dict[str, np.ndarray]:
    """Image and gene embeddings and predicted expression / hidden state for every spot."""
    model.eval()
    enc_vals = data.select_genes(model.cfg.encoder_genes)
    out: dict[str, list] = {"image": [], "genes": [], "pred": [], "hidden": []}
    for s in range(0, len(data.expr), batch):
        sl = slice(s, s + batch)
        if use_3d:
            e, t = model.image_3d(torch.from_numpy(data.img3d[sl]))
        else:
            e, t = model.image_2d(torch.from_numpy(data.img2d[sl]).unsqueeze(1))
        p, h = model.predictor(t)
        out["image"].append(e.numpy())
        out["genes"].append(model.genes(torch.from_numpy(enc_vals[sl])).numpy())
        out["pred"].append(p.numpy())
        out["hidden"].append(h.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def retrieval_topk(img: np.ndarray, genes: np.ndarray, ks=(1, 5)) -> dict[str, float]:
    """Image -> spot retrieval: fraction of spots whose own gene embedding ranks in the
    top k of all candidates by cosine similarity."""
    sim = img @ genes.T
    own = np.diag(sim)
    rank = (sim > own[:, None]).sum(1)  # 0 = best
    return {f"top{k}": float((rank < k).mean()) for k in ks}


def pcc_per_gene(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson correlation per gene across spots; NaN where either side is constant."""
    p = pred - pred.mean(0)
    t = true - true.mean(0)
    den = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (p * t).sum(0) / den, np.nan)


def pcc_summary(pred: np.ndarray, true: np.ndarray, genes: list[str], markers: list[str] = ()) -> dict:
    """Mean PCC over all genes, the top 50 genes (by PCC, as in the method's tables) and markers."""
    r = pcc_per_gene(pred, true)
    ok = ~np.isnan(r)
    out = {"pcc_all": float(np.nanmean(r)) if ok.any() else float("nan"), "genes_scored": int(ok.sum())}
    out["pcc_top50"] = float(np.sort(r[ok])[::-1][:50].mean()) if ok.any() else float("nan")
    mk = [i for i, g in enumerate(genes) if g in set(markers) and ok[i]]
    if mk:
        out["pcc_markers"] = float(r[mk].mean())
    out["mse"] = float(((pred - true) ** 2).mean())
    return out


def bleep_predict(query: np.ndarray, ref: np.ndarray, ref_expr: np.ndarray, k: int = 50) -> np.ndarray:
    """BLEEP-style prediction: similarity-weighted mean expression of the k reference
    spots whose image embeddings are closest (cosine) to each query."""
    sim = query @ ref.T
    k = min(k, ref.shape[0])
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    w = np.take_along_axis(sim, idx, 1).clip(min=0) + 1e-6
    w = w / w.sum(1, keepdims=True)
    return (ref_expr[idx] * w[..., None]).sum(1)
