"""A HEST-Benchmark-style linear probe of frozen patch embeddings.

The protocol of HEST-Benchmark (Jaume et al., 2024), so that any encoder (ours, a
user's) gets a number comparable to its leaderboard: the 50 most variable genes
(log1p expression), folds by section (or by patient when there is more than one), on
each fold the training embeddings standardised and reduced by PCA to 256 dimensions
(fit on the training spots only), ridge regression without intercept with
alpha = 100 / (dimensions x genes), and the Pearson correlation of every gene on the
held-out spots. Results use HEST's keys: per fold ``pearson_corrs`` (name,
pearson_corr), ``pearson_mean``, ``pearson_std``, ``l2_errors``, ``r2_scores``; over
the folds (``results_kfold.json``) ``pearson_corrs`` (name, pearson_corrs, mean,
std), ``pearson_mean`` and ``pearson_std`` over the per-fold means, ``mean_per_split``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

N_GENES = 50
LATENT_DIM = 256


def top_variable_genes(expr: np.ndarray, genes: list[str], n: int = N_GENES) -> list[int]:
    """Columns of the ``n`` genes of highest variance over all spots (ties: first)."""
    if expr.shape[1] != len(genes):
        raise ValueError(f"expression has {expr.shape[1]} columns for {len(genes)} genes")
    var = np.var(expr, axis=0)
    return [int(i) for i in np.argsort(-var, kind="stable")[: min(n, len(genes))]]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else float("nan")


def probe_fold(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    genes: list[str],
    latent_dim: int = LATENT_DIM,
    seed: int = 1,
) -> dict:
    """One train/test split: standardise + PCA (fit on train), ridge, per-gene PCC."""
    k = min(latent_dim, x_train.shape[0], x_train.shape[1])
    pipe = Pipeline([("scaler", StandardScaler()), ("pca", PCA(n_components=k, random_state=seed))])
    z_train = pipe.fit_transform(x_train.astype(np.float64))
    z_test = pipe.transform(x_test.astype(np.float64))
    alpha = 100.0 / (z_train.shape[1] * y_train.shape[1])
    reg = Ridge(solver="lsqr", alpha=alpha, fit_intercept=False, max_iter=1000, random_state=seed)
    reg.fit(z_train, y_train)
    pred = reg.predict(z_test)
    pcc = [_pearson(y_test[:, j], pred[:, j]) for j in range(y_test.shape[1])]
    l2 = [float(np.mean((pred[:, j] - y_test[:, j]) ** 2)) for j in range(y_test.shape[1])]
    ss = ((y_test - y_test.mean(axis=0)) ** 2).sum(axis=0)
    r2 = [
        float(1 - ((y_test[:, j] - pred[:, j]) ** 2).sum() / ss[j]) if ss[j] > 0 else float("nan")
        for j in range(y_test.shape[1])
    ]
    return {
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "latent_dim": int(k),
        "alpha": alpha,
        "pearson_corrs": [{"name": g, "pearson_corr": p} for g, p in zip(genes, pcc, strict=True)],
        "pearson_mean": float(np.nanmean(pcc)),
        "pearson_std": float(np.nanstd(pcc)),
        "l2_errors": l2,
        "r2_scores": r2,
    }


def merge_folds(folds: list[dict]) -> dict:
    """HEST's ``results_kfold.json``: each gene's PCC over the folds, best first."""
    per_gene: dict[str, list[float]] = {}
    for f in folds:
        for item in f["pearson_corrs"]:
            per_gene.setdefault(item["name"], []).append(item["pearson_corr"])
    rows = [
        {"name": g, "pearson_corrs": v, "mean": float(np.nanmean(v)), "std": float(np.nanstd(v))}
        for g, v in per_gene.items()
    ]
    rows.sort(key=lambda r: r["mean"], reverse=True)
    means = [f["pearson_mean"] for f in folds]
    return {
        "pearson_corrs": rows,
        "pearson_mean": float(np.mean(means)),
        "pearson_std": float(np.std(means)),
        "mean_per_split": means,
    }


def probe(
    embeddings: np.ndarray,
    expression: np.ndarray,
    genes: list[str],
    section: np.ndarray,
    patient: np.ndarray | None = None,
    n_genes: int = N_GENES,
    latent_dim: int = LATENT_DIM,
    seed: int = 1,
    test: list[str] | None = None,
) -> dict:
    """The probe over every fold: leave one section out, or one patient out when the
    spots come from more than one patient; ``test`` names the held-out groups to score
    (default: each in turn), e.g. only the sections an encoder never saw.
    ``expression`` is log1p-normalised, one row per spot, like ``embeddings``."""
    n = len(embeddings)
    if expression.shape[0] != n or len(section) != n or (patient is not None and len(patient) != n):
        raise ValueError(f"{n} embeddings but {expression.shape[0]} expression rows / {len(section)} sections")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings hold NaN or infinite values")
    cols = top_variable_genes(expression, genes, n_genes)
    y = expression[:, cols].astype(np.float64)
    names = [genes[c] for c in cols]
    by = "patient" if patient is not None and len(set(patient.tolist())) > 1 else "section"
    key = np.asarray(patient if by == "patient" else section).astype(str)
    groups = sorted(set(key.tolist()))
    if len(groups) < 2:
        raise ValueError(f"the probe needs spots of at least two {by}s, got {groups}")
    unknown = sorted(set(test or []) - set(groups))
    if unknown:
        raise ValueError(f"held-out {by}s {unknown} have no spots (there are {groups})")
    folds = {}
    for g in test or groups:
        test = key == g
        folds[g] = probe_fold(embeddings[~test], y[~test], embeddings[test], y[test], names, latent_dim, seed)
    out = merge_folds(list(folds.values()))
    out.update({"folds_by": by, "folds": folds, "genes": names, "n_spots": int(n), "dim": int(embeddings.shape[1])})
    # HEST's protocol picks the genes on every spot, the held-out ones included: say so.
    out["gene_selection"] = {
        "rule": f"the {len(names)} most variable genes (log1p) over the spots of every {by}",
        by + "s": groups,
        "n_spots": int(n),
        "includes_held_out_spots": True,
    }
    return out


def load_features(path: Path) -> dict:
    """An NPZ of ``embeddings`` (spots x d), ``expression`` (spots x genes, log1p),
    ``genes``, ``section`` and optionally ``patient``."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable NPZ ({e})") from e
    missing = [k for k in ("embeddings", "expression", "genes", "section") if k not in z.files]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (has {z.files})")
    return {
        "embeddings": np.asarray(z["embeddings"], dtype=np.float32),
        "expression": np.asarray(z["expression"], dtype=np.float32),
        "genes": [str(g) for g in z["genes"]],
        "section": np.asarray(z["section"]).astype(str),
        "patient": np.asarray(z["patient"]).astype(str) if "patient" in z.files else None,
    }


def load_spot_exports(dirs: list[Path]) -> dict:
    """The probe's inputs read from a store: directories written by ``vortexdb spots
    export --image IMAGE`` (one per spot sample), each with ``export.json`` (its sample
    = the section), ``panel.txt``, ``expression.npy`` (log1p) and
    ``image_embeddings.npy`` (the image sample's stored patch embeddings at the spots).
    Genes are those in every panel, in the first panel's order."""
    parts = []
    for d in dirs:
        try:
            meta = json.loads((d / "export.json").read_text())
            panel = (d / "panel.txt").read_text().split()
            expr = np.load(d / "expression.npy", allow_pickle=False)
            emb = np.load(d / "image_embeddings.npy", allow_pickle=False)
        except FileNotFoundError as e:
            raise ValueError(f"{d}: not a `vortexdb spots export --image` directory ({e.filename} missing)") from e
        except (OSError, ValueError) as e:
            raise ValueError(f"{d}: unreadable spots export ({e})") from e
        if emb.ndim != 2 or expr.shape != (emb.shape[0], len(panel)):
            raise ValueError(
                f"{d}: image_embeddings.npy {emb.shape} and expression.npy {expr.shape} do not match {len(panel)} genes"
            )
        parts.append((str(meta["sample"]), panel, expr, emb))
    dims = {p[3].shape[1] for p in parts}
    if len(dims) != 1:
        raise ValueError(f"the exports hold embeddings of different widths {sorted(dims)}")
    common = set.intersection(*(set(p[1]) for p in parts))
    genes = [g for g in parts[0][1] if g in common]
    cols = [[{g: i for i, g in enumerate(p[1])}[g] for g in genes] for p in parts]
    return {
        "embeddings": np.concatenate([p[3] for p in parts]).astype(np.float32),
        "expression": np.concatenate([p[2][:, c] for p, c in zip(parts, cols, strict=True)]).astype(np.float32),
        "genes": genes,
        "section": np.concatenate([np.full(len(p[3]), p[0]) for p in parts]),
        "patient": None,
    }


def write_results(res: dict, out: Path) -> list[Path]:
    """``results_kfold.json`` (HEST's format) and ``split<i>/results.json`` per fold."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results_kfold.json"]
    kfold = {k: res[k] for k in ("pearson_corrs", "pearson_mean", "pearson_std", "mean_per_split")}
    kfold.update({k: res[k] for k in ("folds_by", "genes", "n_spots", "dim")})
    kfold["splits"] = list(res["folds"])
    paths[0].write_text(json.dumps(kfold, indent=2, sort_keys=True))
    for i, (g, f) in enumerate(res["folds"].items()):
        d = out / f"split{i}"
        d.mkdir(exist_ok=True)
        (d / "results.json").write_text(json.dumps({**f, "test": g}, indent=2, sort_keys=True))
        paths.append(d / "results.json")
    return paths
