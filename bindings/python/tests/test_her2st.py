"""Real data: her2st section C1 read by scanpy into AnnData, ingested through Python or
written as `.h5ad` files (dense, CSR, CSC, a counts layer, raw) and ingested by the
CLI, stores exactly what `vortexdb ingest spots --format her2st` stores."""

from __future__ import annotations

import pandas as pd
import pytest
from test_h5ad import assert_same_spots, h5ad_variants

import vortexdb

from conftest import cli, cli_json


def c1_anndata(root):
    """C1 as a scanpy user builds it: counts by ``sc.read_csv``, the spots under the
    tissue from the selection table, pixel positions in ``obsm["spatial"]``."""
    import scanpy as sc

    adata = sc.read_csv(root / "counts" / "C1.tsv.gz", delimiter="\t")
    sel = pd.read_csv(root / "spots" / "C1_selection.tsv", sep="\t")
    sel.index = [f"{round(x)}x{round(y)}" for x, y in zip(sel["x"], sel["y"], strict=True)]
    sel = sel[sel["selected"] == 1]
    adata = adata[adata.obs_names.isin(sel.index)].copy()
    s = sel.loc[adata.obs_names]
    adata.obsm["spatial"] = s[["pixel_x", "pixel_y"]].to_numpy()
    adata.obs["array_col"] = s["x"].to_numpy()
    adata.obs["array_row"] = s["y"].to_numpy()
    return adata


@pytest.fixture(scope="module")
def her2st_store(her2st, her2st_model, tmp_path_factory):
    """C1 ingested by the her2st reader."""
    a = tmp_path_factory.mktemp("her2st") / "cli"
    cli("init", a)
    cli("models", "add", a, her2st_model)
    cli("ingest", "spots", a, "--sample", "C1", "--format", "her2st", her2st / "counts" / "C1.tsv.gz")
    return a


def test_h5ad_files_equal_the_her2st_reader(her2st, her2st_model, her2st_store, tmp_path):
    store = tmp_path / "db"
    cli("init", store)
    cli("models", "add", store, her2st_model)
    variants = h5ad_variants(c1_anndata(her2st), tmp_path / "h5ad")
    for name, (path, opts) in variants.items():
        r = cli_json("ingest", "spots", store, "--sample", f"C1-{name}", path, *opts)
        assert r["format"] == "h5ad" and r["qc"]["kept"] > 100, name
    with vortexdb.open(her2st_store, read_only=True) as ref_db:
        want = ref_db.spots("C1")
    with vortexdb.open(store, read_only=True) as db:
        for name in variants:
            assert_same_spots(db.spots(f"C1-{name}"), want)


def test_anndata_spots_equal_the_her2st_reader(her2st, her2st_model, her2st_store, tmp_path):
    a = her2st_store
    adata = c1_anndata(her2st)
    with vortexdb.create(tmp_path / "py") as db:
        db.add_model(her2st_model)
        r = db.ingest_spots("C1", adata)
        assert r["format"] == "arrays"
        got = db.spots("C1")
    with vortexdb.open(a, read_only=True) as ref_db:
        want = ref_db.spots("C1")
    assert got.n_obs == adata.n_obs > 100
    assert_same_spots(got, want)
    assert got.obs["kept"].sum() == r["qc"]["kept"]
