"""Per-slice image backbones: the built-in tiny ViT, or a timm model (ViT, ResNet, ...)
for users who bring their own pathology encoder (UNI, CONCH, H-Optimus, Virchow and
most published ones are timm models or wrap one).

A backbone maps slices (N, C, H, W) to a token sequence (N, T, width); the attentional
poolers of `model.ImageEncoder` read those tokens, whatever produced them. CNN feature
maps (N, width, h, w) become h * w tokens.

`load_backbone_weights` reads a local state dict (`.pt`/`.pth`/`.bin` via torch, or
`.safetensors`) in the layouts published encoders ship: timm's own keys, possibly under
`module.`, `model.`, `backbone.`, `trunk.` or `visual.trunk.` (open_clip/CONCH), wrapped
in `{"state_dict": ...}` or `{"model": ...}`. timm's checkpoint filter of the model family
adapts what it can (e.g. position embeddings resampled to another input size).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

PREFIXES = ("module.", "model.", "backbone.", "visual.trunk.", "visual.", "trunk.", "vit.", "encoder.")
TIMM = "timm:"


def is_timm(name: str) -> bool:
    """True when `name` (ModelConfig.backbone) selects a timm model (`timm:<model name>`)."""
    return name.startswith(TIMM)


def timm_norm(name: str, kwargs: dict | None = None) -> tuple[list[float], list[float]]:
    """The input mean and std a timm model family expects (its pretrained config; for
    most pathology encoders ImageNet's)."""
    import timm

    model = timm.create_model(name[len(TIMM) :], pretrained=False, num_classes=0, **(kwargs or {}))
    cfg = model.pretrained_cfg
    return [float(x) for x in cfg.get("mean", (0.5,) * 3)], [float(x) for x in cfg.get("std", (0.25,) * 3)]


class TimmBackbone(nn.Module):
    """A timm model without its classifier, as a token sequence producer.

    `name` is timm's model name (e.g. `vit_base_patch16_224`, `resnet50`); ViTs are
    built for `image_size` (timm resamples position embeddings of a checkpoint made at
    another size when it is loaded), CNNs take any size.
    """

    def __init__(self, name: str, channels: int, image_size: int, kwargs: dict | None = None):
        super().__init__()
        import timm

        kw = {"pretrained": False, "num_classes": 0, "in_chans": channels, **(kwargs or {})}
        try:
            self.net = timm.create_model(name, img_size=image_size, **kw)
        except TypeError:  # CNNs and other families without an input size
            self.net = timm.create_model(name, **kw)
        self.width = int(self.net.num_features)
        self.blocks = getattr(self.net, "blocks", None) or getattr(self.net, "stages", None) or nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> tokens (N, T, width)."""
        t = self.net.forward_features(x)
        if t.ndim == 4:  # CNN feature map
            t = t.flatten(2).transpose(1, 2)
        return t

    def tail(self) -> list[nn.Module]:
        """Modules after the last block (trained with it in stage III)."""
        return [m for m in (getattr(self.net, "norm", None), getattr(self.net, "fc_norm", None)) if m is not None]


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such backbone weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise ValueError(f"{path}: not a readable state dict ({type(e).__name__}: {e})") from e
    for key in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a mapping of tensor names to tensors")
    out = {}
    for k, v in state.items():
        for prefix in PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a local state dict into `backbone` (a `TimmBackbone` or the built-in ViT).

    Returns the keys `loaded`, the backbone's keys left at their initial values
    (`missing`) and the file's keys not used (`skipped`: other names or shapes, e.g. a
    classifier head). Raises ValueError naming the file when nothing matches.
    """
    path = Path(path)
    state = _read_state(path)
    target = backbone.net if isinstance(backbone, TimmBackbone) else backbone
    if isinstance(backbone, TimmBackbone):
        family = importlib.import_module(type(target).__module__)
        filt = getattr(family, "checkpoint_filter_fn", None)
        if filt is not None:
            try:
                state = filt(state, target)
            except Exception as e:  # noqa: BLE001 - a layout the filter does not know
                raise ValueError(f"{path}: timm could not adapt this checkpoint to {type(target).__name__}: {e}") from e
    own = target.state_dict()
    loaded, skipped = [], []
    for k, v in state.items():
        if k in own and own[k].shape != v.shape and v.ndim == 4 and own[k].shape[1] != v.shape[1]:
            from timm.models import adapt_input_conv

            v = adapt_input_conv(own[k].shape[1], v)  # RGB stem -> grey (or more) channels
        if k in own and own[k].shape == v.shape:
            own[k] = v.to(own[k].dtype)
            loaded.append(k)
        else:
            skipped.append(k)
    if not loaded:
        raise ValueError(
            f"{path}: none of its {len(state)} tensors matches the backbone ({type(target).__name__}, "
            f"keys like {next(iter(own))!r}); check --backbone and the input size"
        )
    target.load_state_dict(own)
    return {"loaded": loaded, "missing": sorted(set(own) - set(loaded)), "skipped": skipped}
