"""Self-supervised pretraining of the per-slice image backbone on unlabelled H&E tiles.

Every tissue tile of every training section is used, not only the tiles under spots
(about 4x more images on her2st). The objective is SimCLR's NT-Xent: two augmented
views of a tile are positives, the other 2N - 2 views of the batch negatives. The
augmentations are those H&E needs to be invariant to: stain and colour jitter (per
channel scale and shift, brightness, saturation), flips and 90-degree rotations, a small
crop-and-resize, Gaussian blur. The pretrained weights are saved as a plain state dict
of the backbone (`SliceViT` or a timm model) that `--pretrained` loads before stage I,
the same path a user's own encoder takes.

`tiles_from_image` cuts the tiles (tissue = not white, saturated enough), at the pixel
size of the model's patches; `augment_views` is the augmentation, also used (milder) in
stages I and II by `train.make_batches`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .model import make_backbone


def tiles_from_image(rgb: np.ndarray, um_per_px: float, tile_um: float, image_size: int,
                     min_tissue: float = 0.5, max_tiles: int | None = None, seed: int = 0) -> np.ndarray:  # fmt: skip
    """Non-overlapping `tile_um` tiles of an RGB image (H, W, 3) uint8 whose tissue
    fraction is at least `min_tissue`, resampled to `image_size` px: (N, 3, S, S) uint8.

    Tissue is a pixel that is not background: mean intensity below 220 or saturation
    (max - min over RGB) above 20. With `max_tiles`, a seeded random subset.
    """
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
    step = tile_um / um_per_px
    if step < 2:
        raise ValueError(f"tile of {tile_um} um is under 2 pixels at {um_per_px} um/px")
    ny, nx = int(rgb.shape[0] // step), int(rgb.shape[1] // step)
    out = []
    for i in range(ny):
        for j in range(nx):
            y0, x0 = int(round(i * step)), int(round(j * step))
            t = rgb[y0 : y0 + int(round(step)), x0 : x0 + int(round(step))]
            mean = t.mean(-1)
            sat = t.max(-1).astype(np.int16) - t.min(-1)
            if ((mean < 220) | (sat > 20)).mean() < min_tissue:
                continue
            pil = Image.fromarray(np.ascontiguousarray(t)).resize((image_size, image_size), Image.BILINEAR)
            out.append(np.asarray(pil).transpose(2, 0, 1))
    tiles = np.stack(out) if out else np.zeros((0, 3, image_size, image_size), np.uint8)
    if max_tiles is not None and len(tiles) > max_tiles:
        tiles = tiles[np.sort(np.random.default_rng(seed).choice(len(tiles), max_tiles, replace=False))]
    return tiles


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) with one sigma (pixels) per image (0 = none)."""
    radius = max(1, int(math.ceil(2 * float(sigma.max()))))
    r = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    k = torch.where(sigma[:, None] > 0, k, (r[None] == 0).to(x.dtype))
    k = k / k.sum(1, keepdim=True)  # (N, K)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    kk = k.repeat_interleave(c, 0)  # (N*C, K)
    y = F.conv2d(y, kk[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kk[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def augment_views(x: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random H&E augmentation of images in [0, 1], (N, C, H, W) or (N, D, C, H, W)
    (the slices of one patch get the same transform, so 2.5D context stays aligned).

    Per image, with strength s: stain/colour jitter (contrast 1 +- 0.1s, per-channel
    scale +- 0.1s and shift +- 0.05s, saturation 1 +- 0.2s), a 90-degree rotation and a
    flip, a crop of 80-100% of the side resized back (when s >= 1), Gaussian blur (sigma
    up to s px, with probability 0.3).
    """
    g = generator
    stacked = x.ndim == 5
    n = x.shape[0]
    d = x.shape[1] if stacked else 1
    y = x if stacked else x.unsqueeze(1)  # (N, D, C, H, W)
    c, h, w = y.shape[2:]

    def u(*shape):
        return torch.rand(*shape, generator=g) * 2 - 1

    # Geometry first, colour after: two calls with equally seeded generators transform
    # images of other channel counts (an H&E plane and a grey microCT stack) alike.
    rots = torch.randint(0, 4, (n,), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    crops = 1 - 0.2 * torch.rand(n, generator=g)
    offsets = torch.rand(n, 2, generator=g)
    sigma = torch.where(torch.rand(n, generator=g) < 0.3, strength * torch.rand(n, generator=g), torch.zeros(n))
    if strength < 1:
        crops = torch.ones(n)
    scale = 1 + 0.1 * strength * u(n, 1, 1, 1, 1) + 0.1 * strength * u(n, 1, c, 1, 1)
    shift = 0.05 * strength * u(n, 1, c, 1, 1)
    y = y * scale + shift
    if c == 3:
        grey = y.mean(2, keepdim=True)
        sat = 1 + 0.2 * strength * u(n, 1, 1, 1, 1)
        y = grey + (y - grey) * sat
    y = y.clamp(0, 1)
    out = torch.empty_like(y)
    for i in range(n):
        t = y[i]
        if crops[i] < 0.999:
            side = max(2, int(round(float(crops[i]) * h)))
            oy = int(offsets[i, 0] * (h - side + 1))
            ox = int(offsets[i, 1] * (w - side + 1))
            t = F.interpolate(t[:, :, oy : oy + side, ox : ox + side], size=(h, w), mode="bilinear",
                              align_corners=False)  # fmt: skip
        t = torch.rot90(t, int(rots[i]), dims=(-2, -1))
        out[i] = torch.flip(t, dims=(-1,)) if flips[i] else t
    if float(sigma.max()) > 0.05:
        out = _blur(out.reshape(n * d, c, h, w), sigma.repeat_interleave(d)).reshape(n, d, c, h, w)
    return out if stacked else out[:, 0]


def nt_xent(a: torch.Tensor, b: torch.Tensor, tau: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N unit vectors: row i of `a` and of `b` are positives,
    every other view of the batch a negative."""
    z = torch.cat([a, b])
    sim = z @ z.t() / tau
    sim.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


class SimCLR(nn.Module):
    """Backbone + mean over tokens + a 2-layer projection head (dropped after training)."""

    def __init__(self, cfg: ModelConfig, channels: int = 3, proj_dim: int = 64):
        super().__init__()
        self.backbone = make_backbone(cfg, channels)
        w = self.backbone.width
        self.head = nn.Sequential(nn.Linear(w, w), nn.BatchNorm1d(w), nn.GELU(), nn.Linear(w, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) normalised -> unit projections (N, proj_dim)."""
        return F.normalize(self.head(self.backbone(x).mean(1)), dim=-1)


def pretrain(cfg: ModelConfig, tiles: np.ndarray, out: Path, epochs: int = 10, batch_size: int = 128,
             lr: float = 1e-3, tau: float = 0.2, seed: int = 0, log=print) -> dict:  # fmt: skip
    """SimCLR on `tiles` (N, 3, S, S) uint8; saves the backbone's state dict to `out`
    (atomically) and returns the per-epoch losses and the time taken."""
    if len(tiles) < 2:
        raise ValueError(f"pretraining needs at least 2 tiles, got {len(tiles)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = SimCLR(cfg, tiles.shape[1])
    mean, std = (torch.tensor(v, dtype=torch.float32).reshape(1, -1, 1, 1) for v in cfg.norm(tiles.shape[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    bs = min(batch_size, len(tiles))
    steps = max(len(tiles) // bs, 1)
    total = steps * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(total // 10, 1)) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    t0 = time.time()
    history = []
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(tiles), generator=g)
        losses = []
        for s in range(steps):
            x = torch.from_numpy(tiles[np.sort(perm[s * bs : (s + 1) * bs].numpy())]).float() / 255.0
            v1 = (augment_views(x, 1.0, g) - mean) / std
            v2 = (augment_views(x, 1.0, g) - mean) / std
            loss = nt_xent(model(v1), model(v2), tau)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
        log(f"pretrain epoch {epoch + 1}/{epochs} NT-Xent {history[-1]:.4f} ({time.time() - t0:.0f}s)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(model.backbone.state_dict(), tmp)
    tmp.replace(out)
    return {"losses": history, "seconds": round(time.time() - t0, 1), "tiles": int(len(tiles)), "epochs": epochs}
