"""A sample exported as SpatialData (`vortexdb export`, `Store.export_spatialdata`) is
read by the reference reader, ``spatialdata.read_zarr``, with the elements, shapes,
micrometre scales and values of the files the other commands write: heatmap = the
query's heatmap NPY, predicted = the per-gene volumes, domains = domains.npy, the
predictions table = the predictions Parquet, the spot table = the exported spots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spatialdata

import vortexdb

from conftest import cli, cli_json

D = 2  # model voxels per image voxel
GENES = ["TUM01", "GLD03"]


@pytest.fixture(scope="module")
def exported(phantom, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("spatialdata")
    db = d / "db"
    cli("init", db)
    cli("models", "add", db, "default")
    cli("ingest", "volume", db, "--sample", "ph", phantom["volume"])
    cli("ingest", "spots", db, "--sample", "ph", phantom["spots"])
    cli("domains", db, "--sample", "ph", "--k", "4", "--out", d / "dom", "--downsample", D)
    cli("query", "genes", db, "--genes", "TUM01", "--out", d / "q", "--downsample", D)
    g = ",".join(GENES)
    cli("predict", db, "--sample", "ph", "--out", d / "pred.parquet", "--genes", g,
        "--volumes", d / "vol", "--downsample", D)
    cli("spots", "export", db, "--sample", "ph", "--out", d / "spots")
    out = d / "ph.zarr"
    report = cli_json("export", db, "--sample", "ph", "--out", out, "--genes", g,
                      "--query", "TUM01", "--downsample", D)
    return {"db": db, "dir": d, "out": out, "report": report}


def level0(element) -> np.ndarray:
    """Full-resolution values of an image or labels element (a multiscale tree or one
    array)."""
    if hasattr(element, "children") and "scale0" in element.children:
        element = element["scale0"].image
    return np.asarray(element.values)


def test_spatialdata_reads_every_element(exported, phantom):
    from spatialdata.transformations import get_transformation

    r = exported["report"]
    assert r["images"] == ["volume", "heatmap", "predicted"]
    assert r["labels"] == ["domains"] and r["points"] == ["patches", "spots"]
    assert r["tables"] == ["predictions", "spot_expression"] and r["skipped"] == []
    s = spatialdata.read_zarr(exported["out"])
    assert set(s.images) == {"volume", "heatmap", "predicted"}
    assert set(s.labels) == {"domains"} and set(s.points) == {"patches", "spots"}
    assert set(s.tables) == {"predictions", "spot_expression"}
    d = exported["dir"]
    heat = np.load(d / "q" / "heatmap_ph.npy")
    # Every raster: (c,) z, y, x at D model voxels of 4 um each, in micrometres.
    for name in ["volume", "heatmap", "predicted"]:
        t = get_transformation(s.images[name], to_coordinate_system="global")
        assert np.allclose(t.to_affine_matrix(("z", "y", "x"), ("z", "y", "x")).diagonal()[:3],
                           [4.0 * D] * 3)
        assert level0(s.images[name]).shape[1:] == heat.shape
    assert np.array_equal(level0(s.images["heatmap"])[0], heat, equal_nan=True)
    # The source (uint8, 4 um voxels) at the centre voxel of every D-voxel block.
    src = np.load(phantom["volume"])[D // 2 :: D, D // 2 :: D, D // 2 :: D]
    assert np.array_equal(level0(s.images["volume"])[0], src)
    pred = level0(s.images["predicted"])
    assert list(s.images["predicted"].coords["c"].values) == GENES
    for i, g in enumerate(GENES):
        assert np.array_equal(pred[i], np.load(d / "vol" / f"{g}.npy"), equal_nan=True)
    dom = level0(s.labels["domains"])
    assert np.array_equal(dom, np.load(d / "dom" / "domains.npy"))
    assert set(np.unique(dom)) == {0, 1, 2, 3, 4}


def test_tables_and_points_hold_the_predictions_and_spots(exported, phantom):
    s = spatialdata.read_zarr(exported["out"])
    d = exported["dir"]
    want = pd.read_parquet(d / "pred.parquet").sort_values("patch_id")
    t = s.tables["predictions"]
    assert t.uns["spatialdata_attrs"] == {"region": "patches", "region_key": "region",
                                          "instance_key": "patch_id"}
    assert list(t.var_names) == [c for c in want.columns
                                 if c not in ("patch_id", "z", "y", "x", "tissue")]
    order = np.argsort(t.obs["patch_id"].to_numpy())
    assert np.array_equal(t.obs["patch_id"].to_numpy()[order], want["patch_id"].to_numpy())
    assert np.array_equal(np.asarray(t.X)[order], want[list(t.var_names)].to_numpy())
    for a in "zyx":
        assert np.array_equal(t.obs[f"origin_{a}"].to_numpy()[order], want[a].to_numpy())
    # Patch centres in micrometres: (origin + half a 16 x 32 x 32 patch) x 4 um.
    pts = s.points["patches"].compute().sort_values("patch_id")
    half = {"z": 8, "y": 16, "x": 16}
    for a in "zyx":
        assert np.allclose(pts[a].to_numpy(), (want[a].to_numpy() + half[a]) * 4.0)
    assert np.allclose(np.asarray(t.obsm["spatial"])[order], pts[["x", "y", "z"]].to_numpy())
    domains = pd.read_csv(d / "dom" / "domains.csv").sort_values("patch_id")
    assert np.array_equal(pts["domain"].to_numpy(), domains["domain"].to_numpy())  # label values
    # Spots: every spot as a point, the kept ones' normalised expression as a table.
    spots = pd.read_csv(d / "spots" / "spots.csv")
    sp = s.points["spots"].compute()
    assert list(sp["spot"]) == list(spots["spot"])
    st = s.tables["spot_expression"]
    kept = spots[spots["kept"] == 1]
    assert list(st.obs_names) == list(kept["spot"])
    assert list(st.var_names) == Path(d / "spots" / "panel.txt").read_text().split()
    assert np.array_equal(np.asarray(st.X), np.load(d / "spots" / "expression.npy"))
    # The phantom's voxels are the model's 4 um: spot centres (x, y) in micrometres.
    assert np.allclose(sp["x"].to_numpy(), spots["x"].to_numpy() * 4.0)
    assert np.allclose(sp["y"].to_numpy(), spots["y"].to_numpy() * 4.0)


def test_python_export_equals_the_cli(exported, tmp_path):
    out = tmp_path / "py.zarr"
    with vortexdb.open(exported["db"], read_only=True) as db:
        r = db.export_spatialdata("ph", out, genes=GENES, query="TUM01", downsample=D)
    assert r["images"] == exported["report"]["images"]
    a, b = spatialdata.read_zarr(exported["out"]), spatialdata.read_zarr(out)
    for name in a.images:
        assert np.array_equal(level0(a.images[name]), level0(b.images[name]), equal_nan=True)
    assert np.array_equal(level0(a.labels["domains"]), level0(b.labels["domains"]))
    assert np.array_equal(np.asarray(a.tables["predictions"].X),
                          np.asarray(b.tables["predictions"].X))


def test_export_refuses_what_it_did_not_write(exported, tmp_path):
    db = exported["db"]
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("keep me")
    r = cli("export", db, "--sample", "ph", "--out", keep, ok=False)
    assert r.returncode == 1 and str(keep) in r.stderr and "not a SpatialData store" in r.stderr
    assert (keep / "notes.txt").read_text() == "keep me" and len(list(keep.iterdir())) == 1
    # A bad gene fails before anything is written.
    out = tmp_path / "x.zarr"
    r = cli("export", db, "--sample", "ph", "--out", out, "--genes", "NOPE1", ok=False)
    assert r.returncode == 1 and "NOPE1" in r.stderr and not out.exists()
    assert not any(p.name.startswith(".x.zarr") for p in tmp_path.iterdir())
    # Its own earlier export is replaced.
    first = cli_json("export", db, "--sample", "ph", "--out", out)
    again = cli_json("export", db, "--sample", "ph", "--out", out, "--genes", "TUM01")
    assert first["images"] == ["volume"] and again["images"] == ["volume", "predicted"]
    assert json.loads((out / "zarr.json").read_text())["attributes"]["spatialdata_attrs"]
    r = cli("export", db, "--sample", "nope", "--out", tmp_path / "y.zarr", ok=False)
    assert r.returncode == 1 and "nope" in r.stderr and not (tmp_path / "y.zarr").exists()


def test_large_images_get_a_pyramid(tmp_path):
    """Images over 256 a side get coarser levels (y and x halved, NaN-ignoring means)
    that SpatialData reads as one multiscale element with the right scales."""
    from spatialdata.transformations import get_transformation

    ph = vortexdb.phantom(tmp_path / "ph", seed=7, shape=(16, 544, 544))
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        db.ingest_volume("big", ph["volume"], progress=False)
        r = db.export_spatialdata("big", tmp_path / "big.zarr", genes="TUM01", downsample=1)
    assert r["images"] == ["volume", "predicted"] and r["labels"] == []
    assert sorted(r["skipped"]) == [
        "labels domains: no stored domains of these patches (run `domains`)",
        "points spots: no spot set 'big'",
    ]
    s = spatialdata.read_zarr(tmp_path / "big.zarr")
    assert list(s.images["volume"].children) == ["scale0", "scale1", "scale2"]
    tree = s.images["predicted"]
    assert list(tree.children) == ["scale0", "scale1", "scale2"]
    # The uint8 source at the model's voxel: the volume image is the source itself.
    vol = np.asarray(s.images["volume"]["scale0"].image.values)
    assert vol.shape == (1, 16, 544, 544) and np.array_equal(vol[0], np.load(ph["volume"]))
    full, half = (np.asarray(tree[k].image.values)[0] for k in ("scale0", "scale1"))
    assert full.shape == (16, 544, 544) and half.shape == (16, 272, 272)
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        want = np.nanmean(full.reshape(16, 272, 2, 272, 2), axis=(2, 4))
    assert np.allclose(half, want, equal_nan=True, atol=1e-6)
    for k, f in (("scale0", 1), ("scale1", 2), ("scale2", 4)):
        t = get_transformation(tree[k].image, to_coordinate_system="global")
        m = t.to_affine_matrix(("z", "y", "x"), ("z", "y", "x")).diagonal()[:3]
        assert np.allclose(m, [4.0, 4.0 * f, 4.0 * f])


def test_export_over_the_memory_budget_is_refused(exported, tmp_path, monkeypatch):
    """The predicted image holds every chosen gene at once: over the memory budget the
    export is refused up front (exit 1, the remedy named), nothing written."""
    monkeypatch.setenv("VORTEX_MEMORY_BUDGET", "1M")
    out = tmp_path / "big.zarr"
    r = cli("export", exported["db"], "--sample", "ph", "--out", out, "--genes", ",".join(GENES),
            "--downsample", "1", ok=False)  # fmt: skip
    assert r.returncode == 1 and "predicted-genes image" in r.stderr and "--downsample" in r.stderr
    assert not out.exists() and not any(p.name.startswith(".big.zarr") for p in tmp_path.iterdir())
