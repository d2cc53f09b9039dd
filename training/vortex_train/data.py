"""Data: spot tables, expression preprocessing and image patches for training.

Three sources, all reduced to one `SpotSet` of aligned arrays:
- the project's synthetic phantom (`vortexdb phantom`): microCT-like volume, H&E-like
  planes and spots on those planes;
- her2st-style sections (counts TSV.gz + spot selection table + H&E JPEG), with 2.5D
  context from the neighbouring sections, registered through the `warped_x/y`
  coordinates of the cluster-label tables;
- a generic layout: spots as Parquet (`sample, spot, y, x` + one column per gene) and
  one image per sample.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMG_MEAN = 0.5
IMG_STD = 0.25


@dataclass
class SpotSet:
    """Aligned per-spot arrays. Images are normalised float32."""

    img2d: np.ndarray  # (N, C, H, W)
    img3d: np.ndarray | None  # (N, D, C, H, W)
    expr: np.ndarray  # (N, G) log1p(normalised) expression over `genes`
    genes: list[str]
    group: np.ndarray  # (N,) int: section / plane index (for splits)
    domain: np.ndarray  # (N,) int: source domain (for the adversarial loss)
    spot_ids: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None  # (N, G) noise-free expected expression (phantom)

    def subset(self, idx: np.ndarray) -> SpotSet:
        """Rows `idx` of every array."""
        return SpotSet(
            self.img2d[idx],
            None if self.img3d is None else self.img3d[idx],
            self.expr[idx],
            self.genes,
            self.group[idx],
            self.domain[idx],
            [self.spot_ids[i] for i in idx] if self.spot_ids else [],
            None if self.truth is None else self.truth[idx],
        )

    def select_genes(self, genes: list[str]) -> np.ndarray:
        """Expression columns for `genes` (case-insensitive); missing genes are zero."""
        pos = {g.upper(): i for i, g in enumerate(self.genes)}
        out = np.zeros((len(self.expr), len(genes)), np.float32)
        for j, g in enumerate(genes):
            i = pos.get(g.upper())
            if i is not None:
                out[:, j] = self.expr[:, i]
        return out


def concat(sets: list[SpotSet]) -> SpotSet:
    """Stack spot sets that share a gene list."""
    genes = sets[0].genes
    for s in sets:
        if s.genes != genes:
            raise ValueError("spot sets have different gene lists")
    return SpotSet(
        np.concatenate([s.img2d for s in sets]),
        None if any(s.img3d is None for s in sets) else np.concatenate([s.img3d for s in sets]),
        np.concatenate([s.expr for s in sets]),
        genes,
        np.concatenate([s.group for s in sets]),
        np.concatenate([s.domain for s in sets]),
        sum((s.spot_ids for s in sets), []),
        None if any(s.truth is None for s in sets) else np.concatenate([s.truth for s in sets]),
    )


def normalize_log1p(counts: np.ndarray, target: float = 1e4) -> np.ndarray:
    """Scale every spot to `target` total counts, then log1p (scanpy's normalize_total + log1p)."""
    counts = counts.astype(np.float64)
    tot = counts.sum(1, keepdims=True)
    tot[tot == 0] = 1.0
    return np.log1p(counts / tot * target).astype(np.float32)


def smooth_knn(values: np.ndarray, coords: np.ndarray, k: int) -> np.ndarray:
    """Average each spot with its k nearest spots (itself included) by position."""
    if k <= 1:
        return values
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    nn_idx = np.argsort(d, axis=1)[:, :k]
    return values[nn_idx].mean(1).astype(np.float32)


def qc_mask(counts: np.ndarray, genes: list[str], min_genes: int = 25, max_mito: float = 0.2) -> np.ndarray:
    """Spots with >= `min_genes` detected genes and < `max_mito` mitochondrial counts."""
    mito = np.array([g.upper().startswith("MT-") for g in genes])
    tot = counts.sum(1)
    frac = np.where(tot > 0, counts[:, mito].sum(1) / np.maximum(tot, 1), 0.0)
    return ((counts > 0).sum(1) >= min_genes) & (frac < max_mito)


def _crop(img: np.ndarray, cy: float, cx: float, half: float, fill: float) -> np.ndarray:
    """Crop a (..., Y, X) array to [cy-half, cy+half) x [cx-half, cx+half), padding with `fill`."""
    y0, x0 = int(round(cy - half)), int(round(cx - half))
    size = int(round(2 * half))
    out = np.full(img.shape[:-2] + (size, size), fill, dtype=img.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + size, img.shape[-2]), min(x0 + size, img.shape[-1])
    if ye > ys and xe > xs:
        out[..., ys - y0 : ye - y0, xs - x0 : xe - x0] = img[..., ys:ye, xs:xe]
    return out


def _norm(u8: np.ndarray, norm: tuple[list[float], list[float]] | None = None) -> np.ndarray:
    """(C, H, W) uint8 -> float32 scaled to [0, 1], minus the mean, over the std (per
    channel with `norm`, else IMG_MEAN / IMG_STD)."""
    x = u8.astype(np.float32) / 255.0
    if norm is None:
        return (x - IMG_MEAN) / IMG_STD
    mean, std = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in norm)
    return (x - mean) / std


# --- phantom -----------------------------------------------------------------------


def load_phantom(path: Path, image_size: int = 32, depth: int = 8, domain: int = 0) -> SpotSet:
    """Spots of a `vortexdb phantom` directory with their 2D (H&E plane) and 3D
    (microCT) patches centred on each spot. `group` is the plane index."""
    import pyarrow.parquet as pq
    from PIL import Image

    path = Path(path)
    if not (path / "phantom.json").is_file():
        raise ValueError(
            f"{path}: not a vortexdb phantom directory (no phantom.json); make one with `vortexdb phantom`"
        )
    meta = json.loads((path / "phantom.json").read_text())
    genes = list(meta["genes"])
    vol = np.load(path / "volume.npy", mmap_mode="r")
    table = pq.read_table(path / "spots.parquet").to_pydict()
    counts = np.stack([np.asarray(table[g], np.float64) for g in genes], 1)
    expr = normalize_log1p(counts)
    truth = None
    tpath = path / "truth" / "spots_truth.parquet"
    if tpath.exists():
        t = pq.read_table(tpath).to_pydict()
        truth = np.stack([np.asarray(t[f"expected_{g}"], np.float32) for g in genes], 1)
    planes = sorted(set(int(z) for z in table["plane_z"]))
    plane_img = {}
    for z in planes:
        arr = np.asarray(Image.open(path / "planes" / f"plane_{z:03d}.png").convert("RGB"))
        plane_img[z] = arr.transpose(2, 0, 1)  # C, Y, X
    n = len(table["spot"])
    half = image_size / 2
    img2d = np.empty((n, 3, image_size, image_size), np.float32)
    img3d = np.empty((n, depth, 1, image_size, image_size), np.float32)
    group = np.empty(n, np.int64)
    for i in range(n):
        z, y, x = int(table["plane_z"][i]), float(table["y"][i]), float(table["x"][i])
        img2d[i] = _norm(_crop(plane_img[z], y, x, half, 255))
        z0 = z - depth // 2
        zs = np.clip(np.arange(z0, z0 + depth), 0, vol.shape[0] - 1)
        sub = np.asarray(vol[zs[0] : zs[-1] + 1])[zs - zs[0]]
        img3d[i, :, 0] = _norm(_crop(sub, y, x, half, 0))
        group[i] = planes.index(z)
    return SpotSet(img2d, img3d, expr, genes, group, np.full(n, domain), list(table["spot"]), truth)


# --- her2st ------------------------------------------------------------------------

HER2DX = ["RRM2", "FGFR4", "BAG1", "PHGDH", "MLPH", "MYC"]
ANTI_HER2 = ["CDH1", "ERBB3", "ESR1", "KMT2C", "MAP2K4", "MDM2", "PTEN", "ARID1A", "ERBB2", "FGFR1",
             "GATA3", "KMT2D", "MAP3K1", "TP53"]  # fmt: skip
MARKERS = HER2DX + ANTI_HER2


@dataclass
class Her2stSection:
    """One her2st section: selected spots, raw counts and image geometry."""

    name: str
    genes: list[str]
    counts: np.ndarray  # (N, G) raw counts
    spot_ids: list[str]
    pixel: np.ndarray  # (N, 2) pixel x, y in the section image
    array: np.ndarray  # (N, 2) array x, y
    to_ref: np.ndarray | None  # (3, 2) affine pixel -> reference (C1) pixel frame
    image_path: Path | None
    um_per_px: float


def apply_affine(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Points (N, 2) through a (3, 2) affine as fitted by `_affine`: [pts, 1] @ m."""
    return np.hstack([pts, np.ones((len(pts), 1))]) @ m


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a = np.hstack([src, np.ones((len(src), 1))])
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return m  # (3, 2): dst = [src, 1] @ m


def _published_map(root: Path, name: str) -> np.ndarray | None:
    """The study's pixel -> common-frame affine of section `name` (3, 2), or None."""
    import pandas as pd

    lpath = Path(root) / "labels" / "clusters" / f"{name}.tsv.gz"
    if not lpath.exists():
        return None
    lab = pd.read_csv(lpath, sep="\t")
    return _affine(lab[["pixel_x", "pixel_y"]].to_numpy(float), lab[["warped_x", "warped_y"]].to_numpy(float))


def section_to_frame(root: Path, name: str) -> np.ndarray | None:
    """Section `name`'s pixel -> common-frame affine (3, 2).

    By default the study's published alignment. With VORTEX_HER2ST_TRANSFORMS naming a
    transforms file of `vortexdb register sections` (computed from the images, listing
    the section JPEGs), the sections it lists are placed by it instead: the common frame
    stays the study's as anchored by the reference section only (its published map), so
    every other section's position comes from the images alone."""
    published = _published_map(root, name)
    path = os.environ.get("VORTEX_HER2ST_TRANSFORMS")
    if not path:
        return published
    t = json.loads(Path(path).read_text())
    stems = [Path(p).stem for p in t["images"]]
    if name not in stems:
        return published
    ref = stems[t.get("reference", len(stems) // 2)]
    ref_map = _published_map(root, ref)

    def h(m6: list[float]) -> np.ndarray:
        return np.array([m6[0:3], m6[3:6], [0.0, 0.0, 1.0]])

    # pixel -> frame (computed) -> reference pixel -> common frame (published, reference only).
    a = np.linalg.inv(h(t["sections"][stems.index(ref)])) @ h(t["sections"][stems.index(name)])
    w = np.vstack([ref_map.T, [0.0, 0.0, 1.0]]) @ a
    return w[:2].T


def read_her2st_section(root: Path, name: str) -> Her2stSection:
    """Read counts, the spot selection and registration of section `name` (e.g. "C4")."""
    import pandas as pd

    root = Path(root)
    cpath = root / "counts" / f"{name}.tsv.gz"
    with gzip.open(cpath, "rt") as f:
        df = pd.read_csv(f, sep="\t", index_col=0)
    sel = pd.read_csv(root / "spots" / f"{name}_selection.tsv", sep="\t")
    sel = sel[sel["selected"] == 1]
    key = {f"{int(round(x))}x{int(round(y))}": (px, py, x, y)
           for x, y, px, py in zip(sel["x"], sel["y"], sel["pixel_x"], sel["pixel_y"], strict=False)}  # fmt: skip
    ids = [s for s in df.index if s in key]
    if not ids:
        raise ValueError(f"{cpath}: no spot id matches {name}_selection.tsv")
    counts = df.loc[ids].to_numpy(np.float64)
    if (counts < 0).any():
        raise ValueError(f"{cpath}: negative counts")
    pix = np.array([key[s][:2] for s in ids], np.float64)
    arr = np.array([key[s][2:] for s in ids], np.float64)
    um_per_px = 200.0 / np.linalg.norm(_affine(arr, pix)[0])
    to_ref = section_to_frame(root, name)
    img = root / "images" / f"{name}.jpg"
    return Her2stSection(
        name, list(df.columns), counts, ids, pix, arr, to_ref, img if img.exists() else None, um_per_px
    )


def her2st_panel(sections: list[Her2stSection], n_top: int = 250, markers: list[str] = MARKERS) -> list[str]:
    """The prediction panel: the `n_top` most expressed genes (mean normalised
    expression over `sections`) plus the marker genes present."""
    common = set(sections[0].genes)
    for s in sections[1:]:
        common &= set(s.genes)
    means = {}
    for s in sections:
        e = normalize_log1p(s.counts)
        for j, g in enumerate(s.genes):
            if g in common:
                means[g] = means.get(g, 0.0) + float(e[:, j].mean())
    ranked = sorted(means, key=lambda g: -means[g])
    ranked = [g for g in ranked if not g.upper().startswith(("MT-", "RPL", "RPS"))]
    panel = ranked[:n_top]
    panel += [m for m in markers if m in common and m not in panel]
    return panel


def her2st_hvg(sections: list[Her2stSection], n: int) -> list[str]:
    """Encoder genes: the `n` genes with the highest variance of log1p expression."""
    common = sorted(set.intersection(*(set(s.genes) for s in sections)))
    mats = []
    for s in sections:
        pos = {g: j for j, g in enumerate(s.genes)}
        mats.append(normalize_log1p(s.counts)[:, [pos[g] for g in common]])
    var = np.concatenate(mats).var(0)
    return [common[i] for i in np.argsort(-var)[:n]]


def load_her2st(root: Path, names: list[str], genes: list[str], image_size: int = 32, patch_um: float = 112.0,
                depth: int = 1, smooth_k: int = 0, norm: tuple | None = None) -> SpotSet:  # fmt: skip
    """her2st sections as a SpotSet over `genes`: 2D patches of `patch_um` resampled to
    `image_size` px, and with `depth` 3 a 2.5D stack (section below, section, section
    above; a missing neighbour or image repeats the centre section). `group` is the
    section's index in `names`, `domain` its index too (sections are the sources).
    `norm` = (mean, std) per RGB channel (default IMG_MEAN / IMG_STD)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    order = ["C1", "C2", "C3", "C4", "C5", "C6"]
    cache: dict[str, tuple] = {}

    def section(name: str) -> tuple:
        if name not in cache:
            sec = read_her2st_section(root, name)
            img = None if sec.image_path is None else np.asarray(Image.open(sec.image_path).convert("RGB"))
            cache[name] = (sec, img)
        return cache[name]

    out = []
    for gi, name in enumerate(names):
        sec, img = section(name)
        if img is None:
            raise ValueError(f"{root}/images/{name}.jpg: image missing; section {name} cannot be used for images")
        pos = {g.upper(): j for j, g in enumerate(sec.genes)}
        e = normalize_log1p(sec.counts)
        expr = np.zeros((len(e), len(genes)), np.float32)
        for j, g in enumerate(genes):
            if g.upper() in pos:
                expr[:, j] = e[:, pos[g.upper()]]
        expr = smooth_knn(expr, sec.array, smooth_k)
        n = len(sec.spot_ids)
        half_px = patch_um / sec.um_per_px / 2
        i = order.index(name)
        stack_names = [name] if depth == 1 else [order[max(i - 1, 0)], name, order[min(i + 1, len(order) - 1)]]
        img3d = np.empty((n, depth, 3, image_size, image_size), np.float32)
        for d, nb in enumerate(stack_names):
            nsec, nimg = section(nb) if nb != name else (sec, img)
            if nimg is None or nsec.to_ref is None or sec.to_ref is None:
                nsec, nimg, centres = sec, img, sec.pixel
            else:
                ref = apply_affine(sec.pixel, sec.to_ref)
                inv = _affine(apply_affine(nsec.pixel, nsec.to_ref), nsec.pixel)
                centres = apply_affine(ref, inv)
            for k in range(n):
                crop = _crop(nimg.transpose(2, 0, 1), centres[k, 1], centres[k, 0], half_px, 255)
                pil = Image.fromarray(crop.transpose(1, 2, 0)).resize((image_size, image_size), Image.BILINEAR)
                img3d[k, d] = _norm(np.asarray(pil).transpose(2, 0, 1), norm)
        centre = depth // 2
        out.append(SpotSet(img3d[:, centre].copy(), img3d if depth > 1 else None, expr, list(genes),
                           np.full(n, gi), np.full(n, gi), [f"{name}:{s}" for s in sec.spot_ids]))  # fmt: skip
    return concat(out)


# --- generic Parquet layout ----------------------------------------------------------


def load_parquet_spots(spots: Path, images: dict[str, Path], genes: list[str], image_size: int = 32,
                       patch_px: float = 32.0) -> SpotSet:  # fmt: skip
    """Generic layout: a Parquet table with columns `sample, spot, y, x` (pixels of that
    sample's image) and one count column per gene, plus one image per sample."""
    import pyarrow.parquet as pq
    from PIL import Image

    t = pq.read_table(spots).to_pydict()
    for col in ("sample", "spot", "y", "x"):
        if col not in t:
            raise ValueError(f"{spots}: missing column {col!r}")
    missing = [g for g in genes if g not in t]
    if len(missing) == len(genes):
        raise ValueError(f"{spots}: none of the {len(genes)} panel genes is a column")
    counts = np.stack([np.asarray(t[g], np.float64) if g in t else np.zeros(len(t["spot"])) for g in genes], 1)
    expr = normalize_log1p(counts)
    samples = sorted(set(t["sample"]))
    n = len(t["spot"])
    img2d = np.empty((n, 3, image_size, image_size), np.float32)
    loaded = {}
    for i in range(n):
        s = t["sample"][i]
        if s not in loaded:
            loaded[s] = np.asarray(Image.open(images[s]).convert("RGB")).transpose(2, 0, 1)
        crop = _crop(loaded[s], float(t["y"][i]), float(t["x"][i]), patch_px / 2, 255)
        pil = Image.fromarray(crop.transpose(1, 2, 0)).resize((image_size, image_size), Image.BILINEAR)
        img2d[i] = _norm(np.asarray(pil).transpose(2, 0, 1))
    group = np.array([samples.index(s) for s in t["sample"]])
    ids = [f"{a}:{b}" for a, b in zip(t["sample"], t["spot"], strict=True)]
    return SpotSet(img2d, None, expr, list(genes), group, group.copy(), ids)
