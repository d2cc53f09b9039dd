"""The her2st evaluation's pieces: the 2D export model, the report's AUC and ARI, and
the registration of the real sections (skipped without ../shared/data/her2st)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vortex_train.cli import _as_2d_model
from vortex_train.her2st_report import ari, auc
from vortex_train.model import Vortex

HER2ST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "her2st"


def test_2d_export_model_is_the_2d_encoder(tiny_cfg):
    cfg = tiny_cfg
    cfg.channels_3d, cfg.max_depth = 1, 4
    torch.manual_seed(0)
    m = Vortex(cfg)
    with torch.no_grad():
        for p in m.image_2d.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    m2 = _as_2d_model(m)
    assert m2.cfg.max_depth == 1 and m2.cfg.channels_3d == cfg.channels_2d
    assert m.cfg.max_depth == 4, "the original config must not change"
    x = torch.randn(3, 1, cfg.channels_2d, cfg.image_size, cfg.image_size)
    m.eval(), m2.eval()
    with torch.no_grad():
        e2, t2 = m.image_2d(x)
        e3, t3 = m2.image_3d(x)
        p, _ = m.predictor(t2)
        p2, _ = m2.predictor(t3)
    assert torch.allclose(e2, e3) and torch.allclose(t2, t3) and torch.allclose(p, p2)
    assert torch.equal(m.genes.edges, m2.genes.edges)


def test_auc_and_ari_known_values():
    lab = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), lab) == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), lab) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), lab) == 0.5
    assert np.isnan(auc(np.array([1.0, 2.0]), np.array([True, True])))
    a = np.array([0, 0, 1, 1, 2, 2])
    assert ari(a, a) == pytest.approx(1.0)
    assert ari(a, np.array([5, 5, 7, 7, 9, 9])) == pytest.approx(1.0)
    # scikit-learn's adjusted_rand_score([0,0,1,1,2,2], [0,0,1,2,2,2]) = 0.4444...
    assert ari(a, np.array([0, 0, 1, 2, 2, 2])) == pytest.approx(4 / 9)


@pytest.mark.skipif(not (HER2ST / "counts").is_dir(), reason="../shared/data/her2st absent")
def test_registered_sections_overlap(tmp_path):
    from PIL import Image

    from vortex_train.her2st_volume import build_volume

    meta = build_volume(HER2ST, tmp_path, um_per_px=14.0)
    assert meta["stack"] == ["C2", "C3", "C4", "C5", "C6"]
    masks = [np.asarray(Image.open(tmp_path / "sections" / f"{s}.png").convert("L")) < 200 for s in meta["stack"]]
    assert len({m.shape for m in masks}) == 1
    for a, b in zip(masks, masks[1:], strict=False):
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice > 0.8, f"neighbouring sections overlap only {dice:.2f} after registration"
    # A section shifted by a quarter of the frame no longer overlaps: the check can fail.
    shifted = np.roll(masks[1], masks[1].shape[1] // 4, axis=1)
    assert 2 * (masks[0] & shifted).sum() / (masks[0].sum() + shifted.sum()) < 0.8
    import pandas as pd

    lab = pd.read_csv(tmp_path / "labels.csv")
    inside = lab[lab["z"] >= 0]
    h, w = meta["size_px"]
    assert inside["x"].between(0, w).all() and inside["y"].between(0, h).all()
    # transforms.json (for `vortexdb ingest sections --transforms`) sends every spot's
    # pixel in its own JPEG to the same place, on a frame 4x finer.
    import json

    from vortex_train.data import read_her2st_section

    tf = json.loads((tmp_path / "transforms.json").read_text())
    assert tf["frame"] == [h * 4, w * 4] and len(tf["sections"]) == len(meta["stack"])
    for name, m in zip(meta["stack"], tf["sections"], strict=True):
        sec = read_her2st_section(HER2ST, name)
        fx = m[0] * sec.pixel[:, 0] + m[1] * sec.pixel[:, 1] + m[2]
        fy = m[3] * sec.pixel[:, 0] + m[4] * sec.pixel[:, 1] + m[5]
        ref = lab[lab["section"] == name].set_index("spot").loc[sec.spot_ids]
        assert np.abs(fx - 4 * ref["x"].to_numpy()).max() < 1e-6
        assert np.abs(fy - 4 * ref["y"].to_numpy()).max() < 1e-6
