"""A HEST-1k-layout sample made from a vortexdb phantom with the libraries HEST uses
(anndata, tifffile): ``wsis/<id>.tif`` (a tiled pyramidal TIFF with JPEG tiles and no
pixel size in the file, as HEST's slides), ``st/<id>.h5ad`` (raw counts in ``X``, spot
positions in full-resolution slide pixels in ``obsm["spatial"]``, HEST's obs columns)
and ``metadata/<id>.json`` (``pixel_size_um_estimated``, ``spot_diameter``, ...).

The slide is the phantom's H&E plane (4 um/px) upsampled 4x: 1 um/px at full
resolution, with 2 and 4 um/px levels; the spots are the plane's.

    .venv-py/bin/python bindings/python/tests/make_hest_fixture.py OUT [--seed 7]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

UPSAMPLE = 4  # full resolution = 1 um/px over the phantom's 4 um/px
GENE_COLUMNS = {"spot", "plane_z", "z", "y", "x", "row", "col"}


def make_hest(out: Path, phantom: dict, sample_id: str = "PHANTOM7") -> dict:
    """Write the sample under ``out``; returns its id, plane and spot count."""
    import anndata
    import pandas as pd
    import tifffile
    from PIL import Image

    meta = json.loads(Path(phantom["meta"]).read_text())
    plane_z = meta["planes_z"][0]
    png = next(p for p in phantom["planes"] if p.endswith(f"plane_{plane_z:03d}.png"))
    plane = np.asarray(Image.open(png).convert("RGB"))
    full = np.repeat(np.repeat(plane, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
    for d in ["wsis", "st", "metadata"]:
        (out / d).mkdir(parents=True, exist_ok=True)
    opts = {"tile": (256, 256), "compression": "jpeg", "compressionargs": {"level": 95}, "photometric": "rgb"}
    with tifffile.TiffWriter(out / "wsis" / f"{sample_id}.tif", bigtiff=True) as t:
        for k, f in enumerate([1, 2, 4]):
            level = full[::f, ::f] if f > 1 else full
            t.write(level, subfiletype=int(k > 0), metadata=None, **opts)
    spots = pd.read_parquet(phantom["spots"])
    spots = spots[spots["plane_z"] == plane_z]
    genes = [c for c in spots.columns if c not in GENE_COLUMNS]
    a = anndata.AnnData(X=spots[genes].to_numpy(np.float32))
    a.obs_names = spots["spot"].astype(str).to_list()
    a.var_names = genes
    # Slide pixels at full resolution: model voxel (x, y) x 4.
    xy = spots[["x", "y"]].to_numpy(np.float64) * UPSAMPLE
    a.obsm["spatial"] = xy
    a.obs["in_tissue"] = 1
    a.obs["pxl_col_in_fullres"] = xy[:, 0]
    a.obs["pxl_row_in_fullres"] = xy[:, 1]
    a.obs["array_col"] = spots["col"].to_numpy()
    a.obs["array_row"] = spots["row"].to_numpy()
    a.write_h5ad(out / "st" / f"{sample_id}.h5ad")
    h, w = full.shape[:2]
    md = {
        "dataset_title": "vortexdb phantom in the HEST-1k layout",
        "id": sample_id,
        "st_technology": "Visium",
        "species": "Synthetic",
        "organ": "Phantom",
        "pixel_size_um_embedded": None,
        "pixel_size_um_estimated": 1.0,
        "magnification": "10x",
        "fullres_px_width": w,
        "fullres_px_height": h,
        "spot_diameter": meta["spot"]["diameter_um"],
        "inter_spot_dist": meta["spot"]["pitch_um"],
        "spots_under_tissue": int(a.n_obs),
    }
    (out / "metadata" / f"{sample_id}.json").write_text(json.dumps(md, indent=1))
    return {"id": sample_id, "plane_z": plane_z, "spots": int(a.n_obs), "genes": genes}


def main() -> None:
    import vortexdb

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    ph = vortexdb.phantom(a.out / "phantom", seed=a.seed, shape=(16, 480, 480))
    print(make_hest(a.out / "hest", ph))


if __name__ == "__main__":
    main()
