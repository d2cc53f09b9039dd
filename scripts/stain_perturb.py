"""Perturb an H&E image as another slide, lab or scanner would, once for the whole image:
    python scripts/stain_perturb.py IN.png OUT.png KIND
KIND: hedNN (HED stain jitter with strength s = NN/100: each stain of the Ruifrok-Johnston
deconvolution (optical density) scaled by 1 +- s and, on tissue, shifted by +- s/10 OD;
signs fixed per channel (haematoxylin up, eosin down, DAB up) so a run is reproducible),
blurN (Gaussian blur, sigma N pixels), jpegQ (JPEG round trip at quality
Q). White background stays white under HED jitter (zero optical density stays zero up
to the shift, which is clipped)."""

from __future__ import annotations

import io
import sys

import numpy as np
from PIL import Image, ImageFilter

# Ruifrok & Johnston (2001) stain vectors: haematoxylin, eosin, DAB (rows, RGB optical density).
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def hed_jitter(rgb: np.ndarray, s: float) -> np.ndarray:
    od = -np.log(np.clip(rgb.astype(np.float64), 1, 255) / 255.0)
    hed = od.reshape(-1, 3) @ HED_FROM_RGB
    # One draw per slide, fixed: haematoxylin stronger, eosin weaker, DAB shifted.
    scale = np.array([1 + s, 1 - s, 1 + s])
    shift = np.array([s, -s, s]) * 0.1
    tissue = (od.reshape(-1, 3).sum(axis=1) > 0.15)[:, None]
    hed = hed * scale + shift * tissue
    out = np.exp(-(hed @ RGB_FROM_HED)) * 255.0
    return np.clip(out.reshape(rgb.shape), 0, 255).round().astype(np.uint8)


def perturb(img: Image.Image, kind: str) -> Image.Image:
    if kind.startswith("hed"):
        return Image.fromarray(
            hed_jitter(np.asarray(img.convert("RGB")), int(kind[3:]) / 100.0)
        )
    if kind.startswith("blur"):
        return img.filter(ImageFilter.GaussianBlur(radius=float(kind[4:])))
    if kind.startswith("jpeg"):
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=int(kind[4:]))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    raise SystemExit(f"unknown perturbation {kind!r}: hedNN, blurN or jpegQ")


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    src, dst, kind = sys.argv[1:]
    perturb(Image.open(src), kind).save(dst)


if __name__ == "__main__":
    main()
