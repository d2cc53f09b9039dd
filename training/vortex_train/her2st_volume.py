"""her2st as a registered 2.5D volume for vortexdb (the evaluation's input).

The sections of patient C are cut 32 um apart but photographed separately: each JPEG
has its own size, offset and rotation. The cluster-label tables give every spot both
its pixel position and a `warped_x/y` position in one common frame, so a least-squares
affine per section (pixel -> common frame) registers the sections by their spot grids.
This module resamples every section image into that frame at the model's pixel size
(default 3.5 um/px = 112 um / 32 px), crops all of them to one box around the spots and
writes:

- `sections/C2.png ... C6.png`: RGB, all one size, white outside the photographed area;
- `spots_<S>.parquet`: long table `spot, gene, count, x, y, z, row, col` (x, y in pixels
  of the registered images, z the index of the section in the stack, row/col the array
  grid) for `vortexdb ingest spots`;
- `labels.csv`: section, spot, x, y, z, expression-cluster label (and C1's pathologist
  label, C1 placed at z = -1 as it has no image);
- `volume.json`: the frame (origin, scale), the stack order and the per-section
  registration residuals in micrometres;
- `transforms.json`: the same registration for `vortexdb ingest sections --transforms`
  on the original JPEGs (frame 4x finer than the PNGs, its `um_per_px` and `images`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from .data import _affine, apply_affine, read_her2st_section, section_to_frame

ORDER = ["C1", "C2", "C3", "C4", "C5", "C6"]


def _read_clusters(root: Path, name: str):
    import pandas as pd

    path = root / "labels" / "clusters" / f"{name}.tsv.gz"
    with gzip.open(path, "rt") as f:
        t = pd.read_csv(f, sep="\t")
    for col in ("x", "y", "pixel_x", "pixel_y", "warped_x", "warped_y", "label"):
        if col not in t.columns:
            raise ValueError(f"{path}: missing column {col!r}")
    return path, t


def build_volume(root: Path, out: Path, um_per_px: float = 3.5, margin_um: float = 400.0) -> dict:
    """Register the sections with images into one frame and write the files listed in
    the module docs; returns the contents of volume.json."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    root, out = Path(root), Path(out)
    stack = [s for s in ORDER if (root / "images" / f"{s}.jpg").exists()]
    if len(stack) < 2:
        raise ValueError(f"{root}/images: need at least two section images, found {stack}")
    secs = {s: read_her2st_section(root, s) for s in ORDER if (root / "counts" / f"{s}.tsv.gz").exists()}
    # Affine pixel -> common frame per section, from the cluster tables' spot pairs.
    to_ref, resid, labels = {}, {}, {}
    for s in secs:
        path, t = _read_clusters(root, s)
        src = t[["pixel_x", "pixel_y"]].to_numpy(float)
        dst = t[["warped_x", "warped_y"]].to_numpy(float)
        # The study's alignment, or the one computed from the images
        # (VORTEX_HER2ST_TRANSFORMS); the residual is against the study's either way.
        m = section_to_frame(root, s)
        to_ref[s] = m
        err = apply_affine(src, m) - dst
        resid[s] = float(np.sqrt((err**2).sum(1)).max())
        labels[s] = t
    # Every spot in the common frame, once per section.
    in_frame = {s: apply_affine(sec.pixel, to_ref[s]) for s, sec in secs.items()}
    # Scale of the common frame: micrometres per frame unit, from array (200 um grid) -> frame.
    ref_units = []
    for s in stack:
        sec, frame = secs[s], in_frame[s]
        ref_units.append(np.linalg.norm(_affine(sec.array, frame)[0]))
    um_per_unit = 200.0 / float(np.median(ref_units))
    k = um_per_px / um_per_unit  # frame units per output pixel
    allpts = np.vstack([in_frame[s] for s in stack])
    margin = margin_um / um_per_unit
    origin = allpts.min(0) - margin
    size = np.ceil((allpts.max(0) + margin - origin) / k).astype(int)  # (W, H)
    (out / "sections").mkdir(parents=True, exist_ok=True)
    for s in stack:
        sec = secs[s]
        img = Image.open(sec.image_path).convert("RGB")
        f = um_per_px / sec.um_per_px  # section pixels per output pixel (~4.5)
        small = img.resize((max(1, round(img.width / f)), max(1, round(img.height / f))), Image.BOX)
        fx, fy = img.width / small.width, img.height / small.height
        # output (u, v) -> frame w = origin + k (u, v) -> section pixel p -> small pixel p / f
        inv = _affine(in_frame[s], sec.pixel)  # frame -> pixel, (3, 2)
        a = inv[0:2].T  # 2x2: pixel = a @ w + b
        b = inv[2]
        lin = a * k
        off = a @ origin + b  # continuous coordinates throughout (PIL samples pixel centres)
        data = (lin[0, 0] / fx, lin[0, 1] / fx, off[0] / fx, lin[1, 0] / fy, lin[1, 1] / fy, off[1] / fy)
        reg = small.transform(
            (int(size[0]), int(size[1])), Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=(255, 255, 255)
        )
        reg.save(out / "sections" / f"{s}.png", optimize=False)
    # The same registration for `vortexdb ingest sections --transforms`, which resamples
    # the original JPEGs itself: a frame 4x finer than the PNGs (so that the ingest's
    # area-weighted resampling, not the warp, does the shrinking), image px -> frame px.
    fine = 4
    kf = k / fine
    tf = []
    for s in stack:
        m = to_ref[s]
        tf.append([m[0, 0] / kf, m[1, 0] / kf, (m[2, 0] - origin[0]) / kf,
                   m[0, 1] / kf, m[1, 1] / kf, (m[2, 1] - origin[1]) / kf])  # fmt: skip
    (out / "transforms.json").write_text(
        json.dumps(
            {
                "frame": [int(size[1]) * fine, int(size[0]) * fine],
                "sections": tf,
                "um_per_px": um_per_px / fine,
                "images": [str(secs[s].image_path) for s in stack],
            }
        )  # fmt: skip
    )
    rows = []
    for s, sec in secs.items():
        xy = (in_frame[s] - origin) / k
        z = stack.index(s) if s in stack else -1
        nz = np.nonzero(sec.counts)
        tbl = pa.table(
            {
                "spot": [sec.spot_ids[i] for i in nz[0]],
                "gene": [sec.genes[j] for j in nz[1]],
                "count": sec.counts[nz].astype(np.int64),
                "x": xy[nz[0], 0],
                "y": xy[nz[0], 1],
                "z": np.full(len(nz[0]), float(z)),
                "row": sec.array[nz[0], 1].round(),
                "col": sec.array[nz[0], 0].round(),
            }
        )
        pq.write_table(tbl, out / f"spots_{s}.parquet")
        lab = labels[s]
        key = {
            f"{int(round(a))}x{int(round(b))}": lb for a, b, lb in zip(lab["x"], lab["y"], lab["label"], strict=True)
        }
        for i, sid in enumerate(sec.spot_ids):
            rows.append(
                {
                    "section": s,
                    "spot": sid,
                    "x": xy[i, 0],
                    "y": xy[i, 1],
                    "z": z,
                    "cluster": key.get(sid, -1),
                    "pathologist": "",
                }
            )
    table = pd.DataFrame(rows)
    ppath = root / "labels" / "pathologist" / "C1.tsv"
    if ppath.exists() and "C1" in secs:
        p = pd.read_csv(ppath, sep="\t")
        plab = {f"{int(round(a))}x{int(round(b))}": lb for a, b, lb in zip(p["x"], p["y"], p["label"], strict=True)}
        c1 = table["section"] == "C1"
        table.loc[c1, "pathologist"] = [plab.get(s, "") for s in table.loc[c1, "spot"]]
    table.to_csv(out / "labels.csv", index=False)
    meta = {
        "stack": stack,
        "spacing_um": 32.0,
        "um_per_px": um_per_px,
        "size_px": [int(size[1]), int(size[0])],
        "frame_origin": origin.tolist(),
        "frame_units_per_px": k,
        "um_per_frame_unit": um_per_unit,
        "registration_max_residual_um": {s: round(r * um_per_unit, 2) for s, r in resid.items()},
        "spots": {s: len(sec.spot_ids) for s, sec in secs.items()},
    }
    (out / "volume.json").write_text(json.dumps(meta, indent=2))
    return meta
