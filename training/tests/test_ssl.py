"""Self-supervised pretraining: tissue tiles, H&E augmentations, NT-Xent, and weights
that load into the model's backbone; colour augmentation in the supervised stages."""

import numpy as np
import pytest
import torch

from vortex_train.config import StageConfig
from vortex_train.model import Vortex, load_pretrained_vit
from vortex_train.ssl import augment_views, nt_xent, pretrain, tiles_from_image
from vortex_train.train import make_batches, run_stage


def test_tiles_keep_tissue_and_drop_background():
    rgb = np.full((400, 600, 3), 245, np.uint8)  # white glass
    rgb[100:300, 200:400] = (180, 90, 160)  # an H&E-pink square: tiles (1..2, 2..3) of 100 px
    tiles = tiles_from_image(rgb, um_per_px=0.5, tile_um=50.0, image_size=16)
    assert tiles.shape == (4, 3, 16, 16) and tiles.dtype == np.uint8
    assert np.all(tiles[:, 0] == 180) and np.all(tiles[:, 1] == 90)
    assert len(tiles_from_image(rgb, 0.5, 50.0, 16, max_tiles=3)) == 3
    with pytest.raises(ValueError, match="expected an RGB image"):
        tiles_from_image(rgb[..., 0], 0.5, 50.0, 16)


def test_nt_xent_equals_the_formula():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    z = torch.cat([a, b])
    tau, n, want = 0.2, 3, 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = torch.exp(z[i] @ z[j] / tau)
        den = sum(torch.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        want += float(-torch.log(num / den)) / (2 * n)
    assert float(nt_xent(a, b, tau)) == pytest.approx(want, rel=1e-5)


def test_augmentation_is_a_dihedral_map_at_strength_zero_and_shared_across_channels():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    y = augment_views(x, 0.0, torch.Generator().manual_seed(1))
    for i in range(6):
        maps = [torch.flip(torch.rot90(x[i], k, (-2, -1)), (-1,)) if f else torch.rot90(x[i], k, (-2, -1))
                for k in range(4) for f in (False, True)]  # fmt: skip
        assert any(torch.allclose(y[i], m) for m in maps)
    # An RGB plane and a grey 3-slice stack of the same tile, augmented with equally
    # seeded generators, move their one bright pixel to the same place.
    plane = torch.full((4, 3, 16, 16), 0.2)
    plane[:, :, 3, 11] = 1.0
    stack = plane.mean(1, keepdim=True).unsqueeze(1).repeat(1, 3, 1, 1, 1)
    a = augment_views(plane, 0.5, torch.Generator().manual_seed(7))
    b = augment_views(stack, 0.5, torch.Generator().manual_seed(7))
    assert a.shape == plane.shape and b.shape == stack.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    for i in range(4):
        want = int(a[i].sum(0).argmax())
        assert all(int(b[i, d, 0].argmax()) == want for d in range(3))
    assert not torch.allclose(augment_views(plane, 1.0, torch.Generator().manual_seed(2)), plane)


def test_pretraining_lowers_its_loss_and_loads_into_the_backbone(tiny_cfg, tmp_path):
    rng = np.random.default_rng(0)
    # Two tissue-like textures: stripes and blobs, in two stains.
    yy, xx = np.mgrid[:16, :16]
    tiles = []
    for i in range(64):
        pattern = np.sin(xx * (0.5 + i % 4) + yy * (i % 3)) if i % 2 else np.cos(np.hypot(yy - 8, xx - 8) * (i % 5 + 1))
        rgb = np.stack([120 + 60 * pattern, 60 + 40 * pattern * (i % 3 - 1), 150 + 50 * pattern], 0)
        tiles.append(np.clip(rgb + rng.normal(0, 5, rgb.shape), 0, 255).astype(np.uint8))
    out = tmp_path / "ssl.pt"
    info = pretrain(tiny_cfg, np.stack(tiles), out, epochs=12, batch_size=32, lr=3e-3, log=lambda *_: None)
    losses = info["losses"]
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
    m = Vortex(tiny_cfg)
    r = load_pretrained_vit(m.image_2d, str(out))
    assert r["missing"] == [] and r["skipped"] == []
    state = torch.load(out, weights_only=True)
    assert torch.equal(m.image_2d.vit.patch.weight, state["patch.weight"])
    with pytest.raises(ValueError, match="at least 2 tiles"):
        pretrain(tiny_cfg, np.zeros((1, 3, 16, 16), np.uint8), out)


def test_colour_augmentation_in_the_stages(tiny_cfg, tiny_set):
    genes = (tiny_set.select_genes(tiny_cfg.encoder_genes), tiny_set.select_genes(tiny_cfg.predicted_genes))
    idx = np.arange(8)
    norms = (tiny_cfg.norm(3), tiny_cfg.norm(1))  # RGB planes, grey stacks
    plain = make_batches(tiny_set, genes, idx, augment=False)
    jit = make_batches(tiny_set, genes, idx, augment=True, colour=1.0, norms=norms)
    assert jit["img2d"].shape == plain["img2d"].shape and jit["img3d"].shape == plain["img3d"].shape
    assert not torch.allclose(jit["img2d"], plain["img2d"])
    torch.manual_seed(0)
    m = Vortex(tiny_cfg)
    losses = run_stage(m, "I", tiny_set, StageConfig(epochs=2, batch_size=8, augment=1.0))
    assert len(losses) == 2 and np.isfinite(losses).all()
