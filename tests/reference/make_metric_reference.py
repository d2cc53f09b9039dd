"""Reference values for src/metrics (tests/metrics_tests.rs).

Writes tests/reference/metrics_reference.json: fixed inputs drawn from a seeded NumPy
generator and what the field's reference implementations return for them. Only the
numbers are committed; re-run with

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy scipy scikit-image scikit-learn esda libpysal
    /tmp/refvenv/bin/python tests/reference/make_metric_reference.py
"""

import json
from importlib.metadata import version
from pathlib import Path

import esda
import libpysal
import numpy as np
from scipy import stats
from skimage.metrics import structural_similarity
from sklearn.metrics import adjusted_rand_score


def main() -> None:
    rng = np.random.default_rng(7)
    out: dict = {
        "versions": {
            p: version(p)
            for p in [
                "numpy",
                "scipy",
                "scikit-image",
                "scikit-learn",
                "esda",
                "libpysal",
            ]
        }
    }

    # Correlations: continuous, tied (small integers) and anti-correlated pairs.
    pairs = []
    a = rng.normal(size=60)
    pairs.append((a, 0.6 * a + rng.normal(size=60)))
    t = rng.integers(0, 5, size=60).astype(float)
    pairs.append((t, t + rng.integers(0, 3, size=60)))
    b = rng.gamma(2.0, size=40)
    pairs.append((b, -np.log1p(b) + 0.1 * rng.normal(size=40)))
    out["correlation"] = [
        {
            "a": x.tolist(),
            "b": y.tolist(),
            "pearson": float(stats.pearsonr(x, y)[0]),
            "spearman": float(stats.spearmanr(x, y)[0]),
        }
        for x, y in pairs
    ]

    # SSIM: random images, a noisy copy, and two gridded spot maps with empty cells.
    ssim = []
    for h, w, noise, win in [
        (20, 17, 0.3, 7),
        (9, 7, 1.0, 7),
        (32, 30, 0.05, 7),
        (5, 6, 0.3, 5),
        (6, 8, 0.2, 3),
    ]:
        x = rng.random((h, w))
        y = np.clip(x + noise * rng.normal(size=(h, w)), 0, None)
        x = (x - x.min()) / (x.max() - x.min())
        y = (y - y.min()) / (y.max() - y.min())
        y[rng.random((h, w)) < 0.2] = 0.0
        ssim.append(
            {
                "h": h,
                "w": w,
                "a": x.ravel().tolist(),
                "b": y.ravel().tolist(),
                "win": win,
                "ssim": float(
                    structural_similarity(x, y, data_range=1.0, win_size=win)
                ),
            }
        )
    out["ssim"] = ssim

    # ARI: noisy copies of a 4-cluster labelling, and independent labellings.
    ari = []
    truth = rng.integers(0, 4, size=500)
    for flip in [0.1, 0.4, 1.0]:
        pred = truth.copy()
        m = rng.random(500) < flip
        pred[m] = rng.integers(0, 5, size=int(m.sum()))
        pred = (pred * 7 + 3) % 11  # different label values, same partition
        ari.append(
            {
                "a": truth.tolist(),
                "b": pred.tolist(),
                "ari": float(adjusted_rand_score(truth, pred)),
            }
        )
    out["ari"] = ari

    # Moran's I and Geary's C: a smooth field plus noise on scattered points.
    coords = rng.random((90, 2)) * 10
    field = np.sin(coords[:, 0] / 2) + np.cos(coords[:, 1] / 3)
    xs = [field + 0.2 * rng.normal(size=90), rng.normal(size=90)]
    autocorr = []
    for name, wt in [
        ("knn6", libpysal.weights.KNN.from_array(coords, k=6)),
        (
            "band1.5",
            libpysal.weights.DistanceBand.from_array(
                coords, threshold=1.5, binary=True, silence_warnings=True
            ),
        ),
    ]:
        wt.transform = "r"
        for x in xs:
            autocorr.append(
                {
                    "weights": name,
                    "x": x.tolist(),
                    "moran_i": float(esda.Moran(x, wt, permutations=0).I),
                    "geary_c": float(esda.Geary(x, wt, permutations=0).C),
                }
            )
    out["autocorr"] = {"coords": coords.tolist(), "cases": autocorr}

    path = Path(__file__).with_name("metrics_reference.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
