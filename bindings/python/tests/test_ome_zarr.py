"""OME-Zarr images written by the reference ``ome-zarr`` package (NGFF 0.4 on Zarr v2,
0.5 on Zarr v3) ingest with the embeddings of the same array given as NPY: the level
nearest the model's voxel size is chosen from the ``coordinateTransformations``, and a
level named by the caller is read at its own voxel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vortexdb

from conftest import cli, cli_json

FORMATS = ["0.4", "0.5"]


def write_ome_zarr(vol: np.ndarray, path: Path, version: str) -> Path:
    """``vol`` (4 um voxels) upsampled 2x in y and x, written at 4 x 2 x 2 um with a
    nearest-neighbour pyramid of three levels: level 1 is ``vol`` again at 4 um."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    fmt = {"0.4": FormatV04(), "0.5": FormatV05()}[version]
    up = np.repeat(np.repeat(vol, 2, axis=1), 2, axis=2)
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    um = "micrometer"
    # Voxel sizes as coordinateTransformations: 4 x 2 x 2 um, then y and x halved.
    scales = [[{"type": "scale", "scale": [4.0, 2.0 * f, 2.0 * f]}] for f in (1, 2, 4)]
    write_image(
        up,
        group,
        scale_factors=(2, 4),
        method=Methods.NEAREST,
        fmt=fmt,
        axes=[{"name": a, "type": "space", "unit": um} for a in "zyx"],
        coordinate_transformations=scales,
        storage_options={"chunks": (8, 64, 64)},
    )
    return path


def patches(db: vortexdb.Store, sample: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch origins, predictions and the predictor's hidden representation, in origin
    order (all three follow from the patch's pixels through the model)."""
    p = db.predict(sample)
    origin = p.obs[["z", "y", "x"]].to_numpy()
    order = np.lexsort(origin.T[::-1])
    return origin[order], np.asarray(p.X)[order], np.asarray(p.obsm["hidden"])[order]


def heatmap(store: Path, sample: str, tmp: Path) -> np.ndarray:
    """Scores of every patch of ``sample`` for a gene query (cosine against its
    embedding), as the CLI writes them."""
    out = tmp / f"q-{sample}"
    cli("query", "genes", store, "--genes", "TUM01", "--sample", sample, "--out", out)
    return np.load(out / f"heatmap_{sample}.npy")


@pytest.fixture(scope="module")
def zarr_store(phantom, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("ome-zarr")
    vol = np.load(phantom["volume"])
    files = {v: write_ome_zarr(vol, d / f"ph-{v}.zarr", v) for v in FORMATS}
    db = d / "db"
    cli("init", db)
    cli("models", "add", db, "default")
    reports = {"npy": cli_json("ingest", "volume", db, "--sample", "npy", phantom["volume"])}
    cli("ingest", "spots", db, "--sample", "npy", phantom["spots"])  # gene queries need spots
    for v, f in files.items():
        reports[v] = cli_json("ingest", "volume", db, "--sample", f"z{v}", f)
    with vortexdb.open(db) as s:
        # The Python path reads the same file natively; level 0 at its own voxel size.
        reports["py"] = s.ingest_volume("py", files["0.5"], progress=False)
        reports["level0"] = s.ingest_volume("level0", files["0.4"], level=0, progress=False)
    return {"db": db, "files": files, "reports": reports, "shape": list(vol.shape)}


@pytest.mark.parametrize("version", FORMATS)
def test_ome_zarr_level_nearest_the_model_equals_the_npy(zarr_store, version, tmp_path):
    r = zarr_store["reports"]
    # Level 1 (4 um, the model's voxel) was chosen: no resampling.
    assert r[version]["source_shape"] == r[version]["model_shape"] == zarr_store["shape"]
    assert r[version]["patches_total"] == r["npy"]["patches_total"] > 100
    with vortexdb.open(zarr_store["db"], read_only=True) as db:
        want = patches(db, "npy")
        got = patches(db, f"z{version}")
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        heatmap(zarr_store["db"], f"z{version}", tmp_path), heatmap(zarr_store["db"], "npy", tmp_path)
    )


def test_python_reads_ome_zarr_like_the_cli(zarr_store):
    r = zarr_store["reports"]
    assert r["py"]["source_shape"] == r["0.5"]["source_shape"]
    with vortexdb.open(zarr_store["db"], read_only=True) as db:
        for a, b in zip(patches(db, "py"), patches(db, "npy"), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_named_level_is_read_at_its_own_voxel_size(zarr_store):
    r = zarr_store["reports"]["level0"]
    z, y, x = zarr_store["shape"]
    # Level 0 is 4 x 2 x 2 um: read at full size, resampled to the model's 4 um.
    assert r["source_shape"] == [z, 2 * y, 2 * x]
    assert r["model_shape"] == [z, y, x]
    assert r["patches_total"] > 100


def test_the_reference_reader_sees_what_vortexdb_read(zarr_store):
    """The files are what ome-zarr itself reads back (three levels, 4 x 2 x 2 um)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for f in zarr_store["files"].values():
        node = next(iter(Reader(parse_url(str(f)))()))
        assert [tuple(a.shape) for a in node.data][1] == tuple(zarr_store["shape"])
        scale = node.metadata["coordinateTransformations"][0][0]["scale"]
        assert scale == [4.0, 2.0, 2.0]


def read_levels(path: Path) -> tuple[list[np.ndarray], list[list[float]], dict]:
    """Every level of an OME-Zarr image as the ``ome-zarr`` reader sees it."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(path)))()))
    data = [np.asarray(a) for a in node.data]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    return data, scales, node.metadata


def test_heatmaps_predicted_genes_and_domains_open_as_ome_zarr(zarr_store, tmp_path):
    db = zarr_store["db"]
    # A gene query's heatmap at downsample 2: 8 um voxels.
    q = tmp_path / "q"
    cli("query", "genes", db, "--genes", "TUM01", "--sample", "npy", "--out", q, "--downsample", "2", "--ome-zarr")
    data, scales, meta = read_levels(q / "heatmap_npy.ome.zarr")
    want = np.load(q / "heatmap_npy.npy")
    np.testing.assert_array_equal(data[0], want)  # NaN where no patch, as in the NPY
    assert scales[0] == [8.0, 8.0, 8.0]
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
    # Predicted gene volumes.
    v = tmp_path / "vol"
    cli("predict", db, "--sample", "npy", "--out", tmp_path / "p.parquet", "--genes", "TUM01",
        "--volumes", v, "--ome-zarr")  # fmt: skip
    data, scales, _ = read_levels(v / "TUM01.ome.zarr")
    np.testing.assert_array_equal(data[0], np.load(v / "TUM01.npy"))
    assert scales[0] == [4.0, 4.0, 4.0]
    # Domains: the label volume as an image and as its NGFF labels image.
    d = tmp_path / "dom"
    cli("domains", db, "--sample", "npy", "--k", "4", "--out", d, "--ome-zarr")
    import zarr

    g = zarr.open_group(d / "domains.ome.zarr", mode="r")
    labels = np.load(d / "domains.npy")
    np.testing.assert_array_equal(g["0"][:], labels)
    np.testing.assert_array_equal(g["labels/domains/0"][:], labels)
    assert g["labels"].attrs["ome"]["labels"] == ["domains"]
    colors = g["labels/domains"].attrs["ome"]["image-label"]["colors"]
    assert sorted(c["label-value"] for c in colors) == sorted(set(np.unique(labels)) - {0})
    data, scales, _ = read_levels(d / "domains.ome.zarr")
    assert data[0].dtype == np.uint8 and scales[0] == [4.0, 4.0, 4.0]


def test_a_default_ome_zarr_named_at_full_resolution_equals_the_npy(phantom, tmp_path):
    """ome-zarr's ``write_image`` with its defaults (only the required axes): a pyramid
    at scales 1 / 2 / 4 / ... in y and x (0.15 writes five levels), axes without a
    unit. ``--um-per-voxel
    4,4,4`` names level 0's voxel, so level 0 (the model's 4 um) is read: the same
    patches and embeddings as the NPY of the same array. Without the option the unitless
    scales are not taken as micrometres: the file is refused, naming it and the fix."""
    import zarr
    from ome_zarr.writer import write_image

    vol = np.load(phantom["volume"])
    assert vol.shape == (32, 160, 160)
    img = tmp_path / "v.zarr"
    write_image(vol, zarr.open_group(img, mode="w"), axes="zyx")
    meta = zarr.open_group(img, mode="r").attrs.asdict()
    ms = (meta.get("ome") or meta)["multiscales"][0]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales[:3] == [[1.0, 1.0, 1.0], [1.0, 2.0, 2.0], [1.0, 4.0, 4.0]], scales
    assert all("unit" not in a for a in ms["axes"])
    db = tmp_path / "db"
    cli("init", db)
    cli("models", "add", db, "default")
    um = ("--um-per-voxel", "4,4,4")
    npy = cli_json("ingest", "volume", db, "--sample", "npy", phantom["volume"], *um)
    got = cli_json("ingest", "volume", db, "--sample", "zarr", img, *um)
    assert got["source_shape"] == got["model_shape"] == [32, 160, 160]
    assert got["patches_total"] == npy["patches_total"] > 100
    bare = cli("ingest", "volume", db, "--sample", "bare", img, ok=False)
    assert bare.returncode == 1, bare.stderr
    assert str(img) in bare.stderr and "no unit" in bare.stderr and "--um-per-voxel" in bare.stderr
    with vortexdb.open(db) as s:
        py = s.ingest_volume("py", img, um_per_voxel=(4, 4, 4), progress=False)
        assert py["source_shape"] == [32, 160, 160]
        with pytest.raises(vortexdb.BadFile, match="no unit"):
            s.ingest_volume("py-bare", img, progress=False)
        want = patches(s, "npy")
        for sample in ("zarr", "py"):
            for a, b in zip(patches(s, sample), want, strict=True):
                np.testing.assert_array_equal(a, b)
        assert "bare" not in [x["id"] for x in s.info()["samples"]]
