"""AnnData in: what ``Store.ingest_spots`` reads from an AnnData object."""

from __future__ import annotations

from typing import Any

import numpy as np


def _csr(x: Any):
    """Raw counts as (indptr, indices, data) of a CSR matrix (dense, CSR or CSC input)."""
    import scipy.sparse as sp

    if sp.issparse(x):
        m = x.tocsr()
    else:
        m = sp.csr_matrix(np.asarray(x))
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int64),
        np.ascontiguousarray(m.data, dtype=np.float64),
    )


def _diameter(adata: Any, library_id: str | None) -> float | None:
    spatial = adata.uns.get("spatial") if hasattr(adata, "uns") else None
    if not isinstance(spatial, dict) or not spatial:
        return None
    if library_id is None:
        if len(spatial) != 1:
            return None
        library_id = next(iter(spatial))
    scale = (spatial.get(library_id) or {}).get("scalefactors") or {}
    d = scale.get("spot_diameter_fullres")
    return None if d is None else float(d)


def spots_from_anndata(
    adata: Any, *, layer: str | None, spatial_key: str, library_id: str | None, raw: bool = False
) -> dict:
    """The arrays ``_native.Store.ingest_spots_arrays`` takes, from an AnnData object.

    Counts: ``.layers[layer]``, ``.raw.X`` (with ``raw``; genes ``.raw.var_names``) or
    ``.X``. Positions: ``.obsm[spatial_key]`` (x, y in
    pixels of the full-resolution image). Array coordinates: ``obs["array_col"]`` and
    ``obs["array_row"]`` when both exist; sections: ``obs["z"]``.
    """
    from .errors import BadInput

    if not hasattr(adata, "obsm") or not hasattr(adata, "var_names"):
        raise BadInput(f"spots: expected an AnnData object or a path, got {type(adata).__name__}")
    genes = adata.var_names
    if raw and layer is not None:
        raise BadInput("spots: give either a layer or raw=True, not both")
    if raw:
        if adata.raw is None:
            raise BadInput("spots: raw=True but the AnnData object has no .raw")
        x, genes = adata.raw.X, adata.raw.var_names
    elif layer is not None:
        if layer not in adata.layers:
            raise BadInput(f"spots: no layer '{layer}' (layers: {sorted(adata.layers)})")
        x = adata.layers[layer]
    else:
        x = adata.X
    if x is None:
        raise BadInput("spots: the AnnData object has no counts in .X")
    if spatial_key not in adata.obsm:
        raise BadInput(f"spots: no obsm['{spatial_key}'] with spot positions (obsm: {sorted(adata.obsm)})")
    pixel = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    if pixel.ndim != 2 or pixel.shape[1] < 2:
        raise BadInput(f"spots: obsm['{spatial_key}'] has shape {pixel.shape}, not (n, 2)")
    obs = adata.obs
    array_xy = None
    if "array_col" in obs and "array_row" in obs:
        array_xy = np.ascontiguousarray(
            np.stack([obs["array_col"].to_numpy(np.float64), obs["array_row"].to_numpy(np.float64)], axis=1)
        )
    z = obs["z"].to_numpy(np.float64) if "z" in obs else None
    indptr, indices, data = _csr(x)
    return {
        "name": "AnnData .raw" if raw else "AnnData" if layer is None else f"AnnData layer '{layer}'",
        "ids": [str(i) for i in adata.obs_names],
        "genes": [str(g) for g in genes],
        "indptr": indptr,
        "indices": indices,
        "data": data,
        "pixel": np.ascontiguousarray(pixel[:, :2]),
        "array_xy": array_xy,
        "z": None if z is None else np.ascontiguousarray(z),
        "spot_diameter_px": _diameter(adata, library_id),
    }
