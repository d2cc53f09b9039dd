"""Every stage learns on a fixed tiny batch; an interrupted stage resumes exactly."""

import pytest
import torch

from vortex_train.config import StageConfig
from vortex_train.model import Vortex
from vortex_train.train import run_stage


def _model(cfg, data):
    torch.manual_seed(0)
    m = Vortex(cfg)
    m.genes.set_bin_edges(torch.from_numpy(data.expr))
    return m


@pytest.mark.parametrize("stage", ["I", "II", "III"])
def test_stage_loss_decreases(tiny_cfg, tiny_set, stage):
    m = _model(tiny_cfg, tiny_set)
    if stage != "I":
        m.init_3d_from_2d()
    cfg = StageConfig(epochs=40, batch_size=16, lr=2e-3, warmup_frac=0.05, trainable_blocks=1)
    hist = run_stage(m, stage, tiny_set, cfg, log=lambda _: None)
    assert len(hist) == 40
    first, last = sum(hist[:3]) / 3, sum(hist[-3:]) / 3
    assert last < 0.8 * first, (stage, first, last)


def test_stage_three_trains_only_chosen_blocks(tiny_cfg, tiny_set):
    m = _model(tiny_cfg, tiny_set)
    m.init_3d_from_2d()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    run_stage(m, "III", tiny_set, StageConfig(epochs=2, batch_size=16, lr=1e-3, trainable_blocks=1), log=lambda _: None)
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("image_3d.vit.blocks.1.") for k in changed)
    assert not any(k.startswith("image_3d.vit.blocks.0.") for k in changed)
    assert not any(k.startswith(("image_2d.", "genes.")) for k in changed)


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tiny_set, tmp_path):
    cfg = StageConfig(epochs=5, batch_size=8, lr=1e-3)
    ref = _model(tiny_cfg, tiny_set)
    ref_hist = run_stage(ref, "I", tiny_set, cfg, log=lambda _: None)

    class Crash(Exception):
        pass

    def crash_at_three(msg):
        if "epoch 3/5" in msg:
            raise Crash

    m = _model(tiny_cfg, tiny_set)
    with pytest.raises(Crash):
        run_stage(m, "I", tiny_set, cfg, tmp_path, log=crash_at_three)
    m2 = _model(tiny_cfg, tiny_set)
    lines = []
    hist = run_stage(m2, "I", tiny_set, cfg, tmp_path, log=lines.append)
    assert lines[0].startswith("stage I: resumed after epoch 2/5")
    assert hist == pytest.approx(ref_hist, rel=1e-6)
    for k, v in ref.state_dict().items():
        assert torch.allclose(v, m2.state_dict()[k], atol=1e-6), k


def test_unknown_stage_and_missing_3d(tiny_cfg, tiny_set):
    m = _model(tiny_cfg, tiny_set)
    with pytest.raises(ValueError, match="unknown stage"):
        run_stage(m, "IV", tiny_set, StageConfig(epochs=1))
    flat = tiny_set.subset(list(range(4)))
    flat.img3d = None
    with pytest.raises(ValueError, match="needs 3D patches"):
        run_stage(m, "II", flat, StageConfig(epochs=1))


def test_resume_refuses_checkpoint_of_other_settings(tiny_cfg, tiny_set, tmp_path):
    m = _model(tiny_cfg, tiny_set)
    run_stage(m, "I", tiny_set, StageConfig(epochs=1, batch_size=8), tmp_path, log=lambda _: None)
    with pytest.raises(ValueError, match="stage_I.pt: checkpoint of a different model"):
        run_stage(m, "I", tiny_set, StageConfig(epochs=2, batch_size=8), tmp_path, log=lambda _: None)
