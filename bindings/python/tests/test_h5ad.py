"""AnnData `.h5ad` files written by the `anndata` package (dense, CSR and CSC `X`, a
counts layer under a normalised `X`, `raw`) store exactly what the reader of the same
spots in another layout stores: the phantom's Parquet table here, her2st's TSVs in
test_her2st.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import vortexdb

from conftest import cli, cli_json


def h5ad_variants(adata, out: Path) -> dict[str, tuple[Path, list[str]]]:
    """``adata`` (raw counts in a dense ``X``) written five ways, each with the CLI
    options that name its counts."""
    import anndata
    import scanpy as sc
    import scipy.sparse as sp

    out.mkdir(parents=True, exist_ok=True)
    counts = np.asarray(adata.X, dtype=np.float32)
    files: dict[str, tuple[Path, list[str]]] = {}

    def write(name: str, a, opts: list[str]) -> None:
        p = out / f"{name}.h5ad"
        a.write_h5ad(p)
        files[name] = (p, opts)

    for name, x in [("dense", counts), ("csr", sp.csr_matrix(counts)), ("csc", sp.csc_matrix(counts))]:
        a = adata.copy()
        a.X = x
        write(name, a, [])
    # A processed file: normalised X, the counts in a layer.
    a = adata.copy()
    a.layers["counts"] = sp.csr_matrix(counts)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    write("layer", a, ["--layer", "counts"])
    # Raw counts of every gene in .raw, X a normalised subset of the genes.
    a = adata.copy()
    a.X = sp.csr_matrix(counts)
    a.raw = a.copy()  # normalize_total below works in place
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a = anndata.AnnData(X=a.X[:, : a.n_vars // 2], obs=a.obs, var=a.var.iloc[: a.n_vars // 2], obsm=a.obsm, raw=a.raw)
    write("raw", a, ["--raw"])
    return files


def assert_same_spots(got, want) -> None:
    assert got.n_obs == want.n_obs > 0
    assert list(got.obs_names) == list(want.obs_names)
    # Every column (positions, grid, section, QC) of both, in the same order.
    assert list(got.obs.columns) == list(want.obs.columns)
    assert {"pixel_x", "pixel_y", "array_x", "array_y", "z", "n_genes", "kept"} <= set(got.obs.columns)
    for col in got.obs.columns:
        np.testing.assert_array_equal(got.obs[col].to_numpy(), want.obs[col].to_numpy(), err_msg=col)
    assert list(got.var_names) == list(want.var_names)
    np.testing.assert_array_equal(got.X, want.X)
    np.testing.assert_array_equal(got.layers["smoothed"], want.layers["smoothed"])
    for k in ["hvg", "top_expressed", "encoder_missing", "qc_summary", "normalize_total"]:
        assert got.uns["vortexdb"][k] == want.uns["vortexdb"][k], k


def phantom_anndata(spots: Path):
    """The phantom's spot table as AnnData, the way a user converts it."""
    import anndata

    t = pd.read_parquet(spots)
    # The Parquet reader's non-gene columns (src/spots/parquet_spots.rs).
    reserved = {"spot", "sample", "x", "y", "z", "plane_z", "pixel_x", "pixel_y", "row", "col"}
    genes = [c for c in t.columns if c not in reserved]
    a = anndata.AnnData(X=t[genes].to_numpy(np.float32))
    a.obs_names = t["spot"].astype(str).to_list()
    a.var_names = genes
    a.obsm["spatial"] = t[["x", "y"]].to_numpy(np.float64)
    a.obs["array_col"] = t["col"].to_numpy()
    a.obs["array_row"] = t["row"].to_numpy()
    a.obs["z"] = t["z"].to_numpy()
    return a


def test_h5ad_files_store_what_the_parquet_reader_stores(stores, phantom, tmp_path):
    adata = phantom_anndata(Path(phantom["spots"]))
    store = tmp_path / "db"
    cli("init", store)
    cli("models", "add", store, "default")
    for name, (path, opts) in h5ad_variants(adata, tmp_path / "h5ad").items():
        r = cli_json("ingest", "spots", store, "--sample", f"ph7-{name}", path, *opts)
        assert r["format"] == "h5ad", name
    with vortexdb.open(stores["cli"], read_only=True) as ref:
        want = ref.spots("ph7")
    with vortexdb.open(store, read_only=True) as db:
        for name in ["dense", "csr", "csc", "layer", "raw"]:
            assert_same_spots(db.spots(f"ph7-{name}"), want)


def test_h5ad_path_and_object_agree_through_python(stores, phantom, tmp_path):
    """The Python package reads a path natively and an object through its arrays:
    both store the same, for `raw=True` too; the spot diameter comes from `uns`."""
    adata = phantom_anndata(Path(phantom["spots"]))
    files = h5ad_variants(adata, tmp_path / "h5ad")
    import anndata

    raw_file = files["raw"][0]
    with_diameter = anndata.read_h5ad(files["dense"][0])
    with_diameter.uns["spatial"] = {"lib1": {"scalefactors": {"spot_diameter_fullres": 6.5}}}
    with_diameter.write_h5ad(tmp_path / "diameter.h5ad")
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        a = db.ingest_spots("file", raw_file, raw=True)
        b = db.ingest_spots("object", anndata.read_h5ad(raw_file), raw=True)
        assert a["format"] == "h5ad" and b["format"] == "arrays"
        assert_same_spots(db.spots("file"), db.spots("object"))
        db.ingest_spots("diameter", tmp_path / "diameter.h5ad")
        db.ingest_spots("diameter-object", with_diameter)
        got = [db.spots(s).uns["vortexdb"]["spot_diameter_px"] for s in ["diameter", "diameter-object", "file"]]
        assert got == [6.5, 6.5, None]
