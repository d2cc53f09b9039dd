"""Model and training configuration: plain dataclasses saved as JSON beside the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ModelConfig:
    """Shape of every VORTEX network. Defaults are the tiny phantom model."""

    embed_dim: int = 128  # E: shared embedding space
    vit_width: int = 96
    vit_layers: int = 3
    vit_heads: int = 4
    vit_patch: int = 8  # ViT token size in pixels
    image_size: int = 32  # patch side in pixels
    channels_2d: int = 3  # H&E RGB
    channels_3d: int = 1  # microCT grayscale (3 for 2.5D H&E stacks)
    max_depth: int = 8  # slices of a 3D patch (1 = 2D, 3 = 2.5D)
    recon_queries: int = 32  # reconstruction pooler queries (Q)
    gene_width: int = 96
    gene_layers: int = 2
    gene_heads: int = 4
    value_bins: int = 51  # 0 = zero expression, 1..50 quantile bins of non-zero values
    encoder_genes: list[str] = field(default_factory=list)
    predicted_genes: list[str] = field(default_factory=list)
    predictor_hidden: int = 256
    n_domains: int = 1  # sources for the domain-adversarial head
    # Per-slice backbone: "" = the built-in ViT above (vit_* fields), "timm:<name>" = a
    # timm model (e.g. timm:vit_base_patch16_224, timm:resnet50) built with
    # backbone_kwargs, whose width replaces vit_width (see backbones.py).
    backbone: str = ""
    backbone_kwargs: dict = field(default_factory=dict)
    # Input normalisation per RGB channel after scaling to [0, 1]; None = 0.5 / 0.25
    # (the built-in models), a timm backbone brings its own (usually ImageNet's).
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def norm(self, channels: int) -> tuple[list[float], list[float]]:
        """(mean, std) per channel for images of `channels` channels: the configured
        RGB values for 3 channels, their average for another count."""
        from .data import IMG_MEAN, IMG_STD

        mean = self.image_mean or [IMG_MEAN] * 3
        std = self.image_std or [IMG_STD] * 3
        if channels == len(mean):
            return list(mean), list(std)
        return [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels

    def to_json(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ModelConfig:
        """Inverse of `to_json`."""
        return cls(**d)


@dataclass
class StageConfig:
    """Optimisation settings of one training stage."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    tau: float = 0.1  # InfoNCE temperature
    adv_lambda: float = 0.1  # gradient-reversal strength (stage I)
    mse_weight: float = 1.0
    token_weight: float = 1.0  # L2 between 2D and 3D reconstruction tokens (stage II/III)
    trainable_blocks: int = -1  # last N ViT blocks of the 3D encoder trained in stage III (-1 = all)
    seed: int = 0
    max_steps: int = 0  # stop the stage after this many optimiser steps (0 = all epochs)
    # Strength of stain/colour jitter, blur and crops (ssl.augment_views); 0 = rotations
    # and flips only.
    augment: float = 0.0


def save_json(obj: dict, path: Path) -> None:
    """Write JSON atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
