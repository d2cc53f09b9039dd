"""The HEST-style probe: folds by section (or patient), PCA fit on the training spots
only, ridge without intercept at HEST's alpha (checked against the closed form), and
floors: features that carry the expression score high, noise scores near zero."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vortex_train.cli import main
from vortex_train.probe import probe, probe_fold, top_variable_genes


def synthetic(seed: int = 0, n: int = 240, g: int = 80, d: int = 32, informative: bool = True):
    """Spots of three sections: expression driven by 6 latent programs; embeddings a
    noisy linear view of those programs (or pure noise)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    expr = np.log1p(np.exp(z @ rng.normal(size=(6, g)) * 0.5 + rng.normal(size=(n, g)) * 0.3))
    emb = z @ rng.normal(size=(6, d)) + 0.1 * rng.normal(size=(n, d)) if informative else rng.normal(size=(n, d))
    section = np.repeat(["A", "B", "C"], n // 3)
    return emb.astype(np.float32), expr.astype(np.float32), [f"G{i:02d}" for i in range(g)], section


def test_informative_features_score_high_and_noise_near_zero():
    emb, expr, genes, sec = synthetic()
    good = probe(emb, expr, genes, sec)
    assert good["folds_by"] == "section" and sorted(good["folds"]) == ["A", "B", "C"]
    assert len(good["genes"]) == 50 and good["pearson_mean"] > 0.6, good["pearson_mean"]
    noise = probe(synthetic(informative=False)[0], expr, genes, sec)
    assert abs(noise["pearson_mean"]) < 0.15, noise["pearson_mean"]
    # Every fold holds one section out and trains on the other two.
    for f in good["folds"].values():
        assert (f["n_train"], f["n_test"]) == (160, 80)
    # HEST's aggregate: the mean and spread of the per-fold means.
    means = [f["pearson_mean"] for f in good["folds"].values()]
    assert good["mean_per_split"] == means and np.isclose(good["pearson_std"], np.std(means))


def test_the_ridge_is_hests_no_intercept_alpha_over_dims_times_genes():
    emb, expr, genes, _ = synthetic(seed=3)
    y = expr[:, :10].astype(np.float64)
    tr, te = slice(0, 160), slice(160, 240)
    r = probe_fold(emb[tr], y[tr], emb[te], y[te], genes[:10], latent_dim=16)
    # Closed form on the same standardised PCA-16 features (PCA via SVD of the
    # centred, scaled training rows; the sign of a component does not change a ridge
    # fit's predictions).
    x = emb[tr].astype(np.float64)
    mu, sd = x.mean(0), x.std(0)
    xs = (x - mu) / sd
    _, _, vt = np.linalg.svd(xs - xs.mean(0), full_matrices=False)
    p = lambda a: (((a - mu) / sd) - xs.mean(0)) @ vt[:16].T  # noqa: E731
    alpha = 100 / (16 * 10)
    assert np.isclose(r["alpha"], alpha)
    w = np.linalg.solve(p(x).T @ p(x) + alpha * np.eye(16), p(x).T @ y[tr])
    pred = p(emb[te].astype(np.float64)) @ w
    want = [np.corrcoef(y[te][:, j], pred[:, j])[0, 1] for j in range(10)]
    got = [c["pearson_corr"] for c in r["pearson_corrs"]]
    assert np.allclose(got, want, atol=1e-3)  # lsqr stops at its tolerance (1e-4)
    # No intercept: the errors are those of the closed form, far from a fit with one.
    l2 = ((pred - y[te]) ** 2).mean(axis=0)
    assert np.allclose(r["l2_errors"], l2, rtol=1e-2)
    centred = p(emb[te].astype(np.float64)) @ w + (y[tr] - p(x) @ w).mean(axis=0)
    assert np.all(((centred - y[te]) ** 2).mean(axis=0) < 0.5 * np.array(r["l2_errors"]))


def test_folds_go_by_patient_when_there_are_several_and_genes_by_variance():
    emb, expr, genes, sec = synthetic(seed=5)
    patient = np.where(sec == "C", "P2", "P1")
    r = probe(emb, expr, genes, sec, patient)
    assert r["folds_by"] == "patient" and sorted(r["folds"]) == ["P1", "P2"]
    var = expr.var(axis=0)
    assert [genes[i] for i in top_variable_genes(expr, genes, 5)] == [genes[i] for i in np.argsort(-var)[:5]]
    only = probe(emb, expr, genes, sec, test=["B"])
    assert list(only["folds"]) == ["B"] and only["folds"]["B"] == probe(emb, expr, genes, sec)["folds"]["B"]
    with pytest.raises(ValueError, match="have no spots"):
        probe(emb, expr, genes, sec, test=["Z"])
    with pytest.raises(ValueError, match="at least two"):
        probe(emb, expr, genes, np.repeat("A", len(emb)))
    with pytest.raises(ValueError, match="NaN"):
        probe(np.full_like(emb, np.nan), expr, genes, sec)


def test_cli_writes_hest_results(tmp_path, capsys):
    emb, expr, genes, sec = synthetic(seed=7)
    f = tmp_path / "feat.npz"
    np.savez(f, embeddings=emb, expression=expr, genes=np.array(genes), section=sec)
    assert main(["probe", "--features", str(f), "--out", str(tmp_path / "res")]) == 0
    k = json.loads((tmp_path / "res" / "results_kfold.json").read_text())
    assert {"pearson_corrs", "pearson_mean", "pearson_std", "mean_per_split"} <= set(k)
    assert k["pearson_corrs"][0]["mean"] >= k["pearson_corrs"][-1]["mean"]
    split = json.loads((tmp_path / "res" / "split0" / "results.json").read_text())
    assert split["test"] == "A" and len(split["pearson_corrs"]) == 50
    assert "PCC" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", embeddings=emb)
    assert main(["probe", "--features", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "x")]) == 1
    assert "missing arrays" in capsys.readouterr().err


def test_spot_exports_from_a_store_give_the_same_probe(tmp_path, capsys):
    """`--spots DIR...` (vortexdb spots export --image) reads the same spots as the NPZ:
    panels in another order or with extra genes are aligned on the common genes."""
    emb, expr, genes, sec = synthetic(seed=3)
    dirs = []
    for i, name in enumerate(["A", "B", "C"]):
        rows = sec == name
        order = list(range(len(genes)))[:: -1 if i == 1 else 1]  # B's panel reversed
        panel = [genes[j] for j in order] + (["EXTRA"] if i == 2 else [])
        e = expr[rows][:, order]
        if i == 2:
            e = np.concatenate([e, np.ones((e.shape[0], 1), np.float32)], axis=1)
        d = tmp_path / name
        d.mkdir()
        (d / "export.json").write_text(json.dumps({"sample": name, "image": "vol", "image_dim": emb.shape[1]}))
        (d / "panel.txt").write_text("\n".join(panel) + "\n")
        np.save(d / "expression.npy", e)
        np.save(d / "image_embeddings.npy", emb[rows])
        dirs.append(str(d))
    assert main(["probe", "--spots", *dirs, "--out", str(tmp_path / "res")]) == 0
    got = json.loads((tmp_path / "res" / "results_kfold.json").read_text())
    want = probe(emb, expr, genes, sec)
    assert got["pearson_mean"] == pytest.approx(want["pearson_mean"], abs=1e-6)
    assert got["genes"] == want["genes"]
    capsys.readouterr()
    (tmp_path / "A" / "image_embeddings.npy").unlink()
    assert main(["probe", "--spots", *dirs, "--out", str(tmp_path / "x")]) == 1
    assert "image_embeddings.npy" in capsys.readouterr().err


def test_the_gene_selection_names_the_spots_it_used():
    """HEST's protocol picks the genes on every spot, held-out ones included; the result
    says so, with the groups and the spot count, and the genes are those of all spots."""
    emb, expr, genes, sec = synthetic()
    r = probe(emb, expr, genes, sec)
    sel = r["gene_selection"]
    assert sel["includes_held_out_spots"] is True and sel["n_spots"] == len(emb)
    assert sel["sections"] == ["A", "B", "C"] and "most variable" in sel["rule"]
    assert r["genes"] == [genes[c] for c in top_variable_genes(expr, genes)]
