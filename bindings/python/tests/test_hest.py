"""A HEST-1k-layout sample (made by make_hest_fixture.py with anndata and tifffile from
the held-out phantom) ingests in one command, `vortexdb ingest hest`, and answers a gene
query over the slide's 2D patches: the patches under the spots richest in the tumour
genes score above those under the poorest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from make_hest_fixture import make_hest

import vortexdb

from conftest import cli, cli_json


@pytest.fixture(scope="module")
def hest(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("hest")
    ph = vortexdb.phantom(d / "phantom", seed=7, shape=(16, 480, 480))
    info = make_hest(d / "hest", ph)
    return {"root": d / "hest", "phantom": ph, **info}


def test_a_hest_sample_ingests_in_one_command_and_answers_a_gene_query(hest, tmp_path):
    db = tmp_path / "db"
    cli("init", db)
    cli("models", "add", db, "default")
    r = cli_json("ingest", "hest", db, hest["root"], "--sample", hest["id"])
    # The 4 um/px level of the 1 um/px slide, the metadata's pixel size.
    assert r["hest"]["um_per_px"] == 1.0
    assert r["image"]["source_shape"] == [1, 480, 480]
    assert r["image"]["patches_total"] > 500
    assert r["spots"]["embedded"] == hest["spots"] > 30
    out = tmp_path / "q"
    q = cli_json("query", "genes", db, "--genes", "TUM01,TUM02,TUM03", "--target", "2d", "--out", out)
    assert any(f.endswith(f"heatmap_{hest['id']}.npy") for f in q["files"])
    heat = np.load(out / f"heatmap_{hest['id']}.npy")
    assert heat.shape == (1, 480, 480)
    # Spot positions (model pixels = slide pixels / 4) against their tumour counts.
    with vortexdb.open(db, read_only=True) as s:
        spots = s.spots(hest["id"])
    # Slide pixels (obsm) scaled onto the slide's model pixels (obs x, y): the phantom's.
    xy = spots.obs[["x", "y"]].to_numpy()
    truth = pd.read_parquet(hest["phantom"]["spots"]).set_index("spot").loc[spots.obs_names]
    np.testing.assert_allclose(xy, truth[["x", "y"]].to_numpy())
    np.testing.assert_allclose(np.asarray(spots.obsm["spatial"]), 4 * xy)
    tum = np.asarray(spots[:, ["TUM01", "TUM02", "TUM03"]].X).sum(axis=1)
    at = heat[0, xy[:, 1].astype(int), xy[:, 0].astype(int)]
    hi, lo = at[tum >= np.quantile(tum, 0.75)], at[tum <= np.quantile(tum, 0.25)]
    # NaN where no tissue patch covers the spot's centre.
    assert np.isfinite(hi).sum() >= 10 and np.isfinite(lo).sum() >= 10
    assert np.nanmean(hi) > np.nanmean(lo) + 0.3, (np.nanmean(hi), np.nanmean(lo))


def test_a_hest_sample_without_pixel_size_is_refused_and_nothing_written(hest, tmp_path):
    import shutil

    root = tmp_path / "hest"
    shutil.copytree(hest["root"], root)
    md = root / "metadata" / f"{hest['id']}.json"
    m = json.loads(md.read_text())
    m["pixel_size_um_estimated"] = None
    md.write_text(json.dumps(m))
    db = tmp_path / "db"
    cli("init", db)
    cli("models", "add", db, "default")
    r = cli("ingest", "hest", db, root, "--sample", hest["id"], ok=False)
    assert r.returncode == 1 and str(md) in r.stderr and "pixel_size_um" in r.stderr
    (root / "st" / f"{hest['id']}.h5ad").unlink()
    m["pixel_size_um_estimated"] = 1.0
    md.write_text(json.dumps(m))
    r = cli("ingest", "hest", db, root, "--sample", hest["id"], ok=False)
    assert r.returncode == 1 and f"st/{hest['id']}.h5ad" in r.stderr
    with vortexdb.open(db, read_only=True) as s:
        assert s.info()["samples"] == []


def test_python_ingests_a_hest_sample_like_the_cli(hest, tmp_path):
    a, b = tmp_path / "cli", tmp_path / "py"
    cli("init", a)
    cli("models", "add", a, "default")
    want = cli_json("ingest", "hest", a, hest["root"], "--sample", "s1", "--id", hest["id"])
    with vortexdb.create(b) as s:
        s.add_model("default")
        got = s.ingest_hest("s1", hest["root"], hest_id=hest["id"], progress=False)
        assert got["image"]["patches_total"] == want["image"]["patches_total"] > 500
        assert got["spots"]["embedded"] == want["spots"]["embedded"]
        mine = s.spots("s1")
    with vortexdb.open(a, read_only=True) as s:
        ref = s.spots("s1")
    assert list(mine.obs_names) == list(ref.obs_names)
    np.testing.assert_array_equal(mine.X, ref.X)
    np.testing.assert_array_equal(mine.obs[["x", "y"]].to_numpy(), ref.obs[["x", "y"]].to_numpy())
