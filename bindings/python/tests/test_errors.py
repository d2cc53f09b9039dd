"""Every bad input of the CLI's bad-input tests raises the matching Python exception,
with a message naming the file or argument, and writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import vortexdb
from vortexdb import errors


def rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def png(path: Path, w: int, h: int) -> Path:
    from PIL import Image

    Image.new("RGB", (w, h), (200, 120, 180)).save(path)
    return path


def listing(root: Path) -> dict:
    """Every file under ``root`` (but the lock and redb file, whose bytes change on a
    clean open) with its size."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in {"LOCK", "vortex.redb"}:
            out[str(p.relative_to(root))] = p.stat().st_size
    return out


@pytest.fixture()
def ctx(tmp_path):
    """A store with the default model and a 100 x 8 collection `c`."""
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        db.import_vectors("c", rows(100, 8))
    return tmp_path


def wrong_dimension_import(db, d):
    db.import_vectors("c", rows(10, 12))


def wrong_dimension_search(db, d):
    db.search("c", rows(2, 12))


def nan_in_vectors(db, d):
    x = rows(30_000, 8)
    x[25_001, 3] = np.nan
    db.import_vectors("new", x)


def inf_in_vectors(db, d):
    x = rows(300, 8)
    x[201, 0] = np.inf
    db.import_vectors("new", x)


def truncated_npy(db, d):
    np.save(d / "t.npy", rows(50, 8))
    raw = (d / "t.npy").read_bytes()
    (d / "t.npy").write_bytes(raw[: len(raw) // 2])
    db.import_vectors("new", d / "t.npy")


def wrong_dtype_npy(db, d):
    np.save(d / "i.npy", np.arange(40, dtype=np.int64).reshape(5, 8))
    db.import_vectors("new", d / "i.npy")


def unknown_collection(db, d):
    db.search("nope", rows(1, 8))


def unknown_gene(db, d):
    db.query_genes(["TUM0l"])


def unknown_sample(db, d):
    db.predict("nope")


def bad_sample_id(db, d):
    db.ingest_volume("../x", np.zeros((8, 32, 32), np.uint8))


def volume_wrong_dtype(db, d):
    db.ingest_volume("v", np.zeros((8, 32, 32), np.int64))


def volume_wrong_shape(db, d):
    db.ingest_volume("v", np.zeros((32, 32), np.uint8))


def volume_missing_file(db, d):
    db.ingest_volume("v", d / "missing.npy")


def sections_transforms_do_not_fit(db, d):
    imgs = [png(d / f"s{i}.png", 40 + 10 * i, 40) for i in range(2)]
    (d / "t.json").write_text(json.dumps({"frame": [40, 40], "sections": [[1, 0, 0, 0, 1, 0]]}))
    db.ingest_sections("x", imgs, spacing_um=64, um_per_px=4, transforms=d / "t.json")


def sections_of_different_sizes(db, d):
    imgs = [png(d / f"s{i}.png", 40 + 10 * i, 40) for i in range(2)]
    db.ingest_sections("x", imgs, spacing_um=64, um_per_px=4)


def patch_target_missing(db, d):
    db.query_patch(image=png(d / "q.png", 64, 64))


def patch_bad_image(db, d):
    (d / "bad.png").write_bytes(b"not a png")
    db.ingest_image("x", d / "bad.png", um_per_px=4)


def stain_reference_without_tissue(db, d):
    from PIL import Image

    Image.new("RGB", (64, 64), (250, 250, 250)).save(d / "glass.png")
    db.ingest_image("x", png(d / "s.png", 64, 64), um_per_px=4, stain_reference=d / "glass.png")


def model_dir_without_manifest(db, d):
    (d / "m").mkdir()
    db.add_model(d / "m")


def spots_without_positions(db, d):
    import anndata

    db.ingest_spots("s", anndata.AnnData(X=np.ones((3, 2), np.float32)))


def spots_negative_counts(db, d):
    import anndata

    a = anndata.AnnData(X=np.array([[1.0, -2.0], [3.0, 4.0]], np.float32))
    a.obsm["spatial"] = np.array([[0.0, 0.0], [1.0, 1.0]])
    db.ingest_spots("s", a)


def spots_normalised_values(db, d):
    import anndata

    a = anndata.AnnData(X=np.array([[1.5, 2.0], [3.0, 4.0]], np.float32))
    a.obsm["spatial"] = np.array([[0.0, 0.0], [1.0, 1.0]])
    db.ingest_spots("s", a)


def small_h5ad(path: Path, x, *, spatial: bool = True, layers: dict | None = None) -> Path:
    """An .h5ad file written by anndata: 3 spots x 2 genes."""
    import anndata

    a = anndata.AnnData(X=np.asarray(x, np.float32))
    a.obs_names = ["s0", "s1", "s2"]
    a.var_names = ["G1", "G2"]
    if spatial:
        a.obsm["spatial"] = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    for k, v in (layers or {}).items():
        a.layers[k] = np.asarray(v, np.float32)
    a.write_h5ad(path)
    return path


COUNTS = [[1, 2], [3, 0], [0, 5]]


def h5ad_without_positions(db, d):
    db.ingest_spots("s", small_h5ad(d / "nopos.h5ad", COUNTS, spatial=False))


def h5ad_normalised_x(db, d):
    f = small_h5ad(d / "norm.h5ad", [[0.5, 1.2], [1.0, 0.0], [0.0, 2.1]], layers={"counts": COUNTS})
    db.ingest_spots("s", f)


def h5ad_missing_layer(db, d):
    db.ingest_spots("s", small_h5ad(d / "nolayer.h5ad", COUNTS), layer="counts")


def h5ad_without_raw(db, d):
    db.ingest_spots("s", small_h5ad(d / "noraw.h5ad", COUNTS), raw=True)


def h5ad_truncated(db, d):
    f = small_h5ad(d / "cut.h5ad", COUNTS)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    db.ingest_spots("s", f)


def h5ad_not_hdf5(db, d):
    (d / "text.h5ad").write_text("spot,gene,count\n")
    db.ingest_spots("s", d / "text.h5ad")


def bad_region(db, d):
    db.search("c", rows(1, 8), filter={"region": "0:1,2"})


def bad_k(db, d):
    db.search("c", rows(1, 8), k=0)


CASES = [
    (wrong_dimension_import, errors.DimensionMismatch, ["dimension 12", "dimension 8"]),
    (wrong_dimension_search, errors.DimensionMismatch, ["dimension 12"]),
    (nan_in_vectors, errors.BadInput, ["vectors", "row 25001"]),
    (inf_in_vectors, errors.BadInput, ["row 201"]),
    (truncated_npy, errors.BadFile, ["t.npy"]),
    (wrong_dtype_npy, errors.BadFile, ["i.npy"]),
    (unknown_collection, errors.UnknownCollection, ["nope"]),
    (unknown_gene, errors.NothingSelected, ["spots"]),
    (unknown_sample, errors.UnknownSample, ["nope"]),
    (bad_sample_id, errors.InvalidArgument, ["sample", "../x"]),
    (volume_wrong_dtype, errors.BadInput, ["volume", "int64"]),
    (volume_wrong_shape, errors.BadInput, ["shape"]),
    (volume_missing_file, errors.Error, ["missing.npy"]),
    (sections_transforms_do_not_fit, errors.BadFile, ["t.json", "1 transforms for 2 section images"]),
    (sections_of_different_sizes, errors.BadFile, ["s1.png", "different sizes"]),
    (patch_target_missing, errors.InvalidArgument, ["target", "no 3d patches"]),
    (patch_bad_image, errors.BadFile, ["bad.png"]),
    (stain_reference_without_tissue, errors.BadFile, ["glass.png", "too little stained tissue"]),
    (model_dir_without_manifest, errors.Error, ["manifest.json"]),
    (spots_without_positions, errors.BadInput, ["obsm['spatial']"]),
    (spots_negative_counts, errors.BadInput, ["AnnData", "negative"]),
    (spots_normalised_values, errors.BadInput, ["AnnData", "not an integer"]),
    (h5ad_without_positions, errors.BadFile, ["nopos.h5ad", "no obsm/spatial", "--spatial-key"]),
    (h5ad_normalised_x, errors.BadFile, ["norm.h5ad", "not an integer", "--layer", "layers: counts"]),
    (h5ad_missing_layer, errors.BadFile, ["nolayer.h5ad", "no layer 'counts'"]),
    (h5ad_without_raw, errors.BadFile, ["noraw.h5ad", "raw/X"]),
    (h5ad_truncated, errors.BadFile, ["cut.h5ad"]),
    (h5ad_not_hdf5, errors.BadFile, ["text.h5ad", "HDF5"]),
    (bad_region, errors.InvalidArgument, ["region"]),
    (bad_k, errors.InvalidArgument, ["k"]),
]


@pytest.mark.parametrize("case,cls,words", CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_input_raises_and_writes_nothing(ctx, case, cls, words):
    store = ctx / "db"

    def info():
        with vortexdb.open(store, read_only=True) as db:
            i = db.info()
        i.pop("db_bytes")  # the file grows when opened for writing
        i.pop("disk_bytes")  # (it counts vortex.redb too)
        return i

    before = info()
    files = listing(ctx)
    with vortexdb.open(store) as db:
        with pytest.raises(cls) as e:
            case(db, ctx)
        assert isinstance(e.value, errors.Error)
        for w in words:
            assert w in str(e.value), (w, str(e.value))
    after_files = {k: v for k, v in listing(ctx).items() if k in files}
    assert after_files == files, "a file was changed"
    assert info() == before, "the store was changed"


def test_store_level_errors(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    with pytest.raises(errors.NotAStore) as e:
        vortexdb.open(tmp_path / "plain")
    assert "plain" in str(e.value)
    with vortexdb.create(tmp_path / "db") as db:
        with pytest.raises(errors.StoreLocked) as e:
            vortexdb.open(tmp_path / "db")
        assert str(e.value.pid) == str(os.getpid())
        db.import_vectors("c", rows(10, 4))
    with vortexdb.open(tmp_path / "db", read_only=True) as ro:
        with pytest.raises(errors.ReadOnly):
            ro.import_vectors("c", rows(10, 4))
        assert ro.info()["collections"][0]["live"] == 10
    db = vortexdb.open(tmp_path / "db")
    db.close()
    with pytest.raises(errors.StoreClosed):
        db.info()
    # The Python classes are also the built-in ones a caller would catch.
    assert issubclass(errors.UnknownSample, LookupError) and issubclass(errors.BadInput, ValueError)
    assert issubclass(errors.Interrupted, KeyboardInterrupt)
    assert vortexdb.Error is errors.Error and vortexdb.StoreLocked is errors.StoreLocked


_RETRY = """
import os, sys
import numpy as np
import vortexdb
from vortexdb import errors
lib, root, vol = sys.argv[1], sys.argv[2], np.load(sys.argv[3])[:16].copy()
os.environ["ORT_DYLIB_PATH"] = "/nonexistent/libonnxruntime.so"
with vortexdb.create(root) as db:
    try:
        db.add_model("default")  # checks that the model runs: needs the runtime
    except errors.MissingRuntime as e:
        print("first:", e)
    else:
        raise SystemExit("the missing runtime was not reported")
    # The library appears (as after `pip install onnxruntime`): the next call loads it.
    os.environ["ORT_DYLIB_PATH"] = lib
    db.add_model("default")
    r = db.ingest_volume("s", vol, progress=False)
    print("second:", r["patches_total"], vortexdb.loaded_runtime_library())
"""


def test_a_failed_runtime_load_is_tried_again_not_kept(phantom, tmp_path):
    """A process that first finds no ONNX Runtime loads it on the next call once it is
    there, without a restart (the failure is not cached)."""
    import subprocess
    import sys

    lib = os.environ.get("ORT_DYLIB_PATH") or vortexdb.loaded_runtime_library()
    if lib is None:
        with vortexdb.create(tmp_path / "probe") as db:
            db.add_model("default")
            db.ingest_volume("p", np.load(phantom["volume"])[:16].copy(), progress=False)
        lib = vortexdb.loaded_runtime_library()
    assert lib is not None
    out = subprocess.run(
        [sys.executable, "-c", _RETRY, str(lib), str(tmp_path / "db"), str(phantom["volume"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "first:" in out.stdout and "/nonexistent/" in out.stdout
    second = [line for line in out.stdout.splitlines() if line.startswith("second:")][0]
    assert int(second.split()[1]) > 0 and str(lib) in second


def test_check_backup_and_repair_from_python(stores, tmp_path):
    """The repair tools' Python faces give the CLI's reports."""
    r = vortexdb.check(stores["cli"])
    assert r["damage"] == [] and r["vectors"] > 0
    with vortexdb.open(stores["py"], read_only=True) as db:
        b = db.backup(tmp_path / "b")
    assert b["complete"] and b["skipped"] == []
    assert vortexdb.check(tmp_path / "b")["damage"] == []
    fixed = vortexdb.repair(tmp_path / "b", tmp_path / "r")
    assert fixed["complete"] and vortexdb.check(tmp_path / "r")["vectors"] == r["vectors"]
    with pytest.raises(vortexdb.BadInput, match="inside the store"):
        vortexdb.repair(tmp_path / "b", tmp_path / "b" / "inner")
