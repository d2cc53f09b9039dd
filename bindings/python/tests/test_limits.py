"""One set of limits: each numeric option and sample id goes through one table of
values (0, 1, negative, huge; empty, path-like, overlong ids) and the CLI and the
Python package (which calls the library) accept or refuse it alike, as the library's
own table (``vortexdb.arg_rules()``) says."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import vortexdb

from conftest import cli

RULES = {r["key"]: r for r in vortexdb.arg_rules()}
NUMBERS = [0, 1, 2, -1, 4_000_000_000]
IDS = ["", "../../x", "x" * 100_000, "a/b", "ok-id"]


def expected(key: str, v: int) -> bool:
    r = RULES[key]
    return r["lo"] <= v <= r["hi"]


def refused_by_python(call) -> bool:
    try:
        call()
    except vortexdb.BadInput:
        return True
    except (OverflowError, TypeError):  # a negative number for an unsigned argument
        return True
    return False


@pytest.fixture(scope="module")
def writable(stores, tmp_path_factory) -> dict:
    """Private copies of the two stores (``domains`` and imports write to them)."""
    d = tmp_path_factory.mktemp("limits")
    shutil.copytree(stores["cli"], d / "cli")
    shutil.copytree(stores["py"], d / "py")
    return {"cli": d / "cli", "py": d / "py", "dir": d}


def test_the_table_is_the_libraries(stores):
    assert {"batch", "downsample", "top", "k", "domains.k", "um"} <= set(RULES)
    assert RULES["batch"]["lo"] == 1 and RULES["downsample"]["hi"] == 1_048_576


@pytest.mark.parametrize("v", NUMBERS)
def test_numeric_options_are_accepted_or_refused_alike(stores, writable, tmp_path, v):
    vecs = tmp_path / "v.npy"
    cases = {
        "top": (
            ["query", "genes", stores["cli"], "--genes", "TUM01", "--top", str(v)],
            lambda db: db.query_genes("TUM01", top=v),
            stores["py"],
        ),
        "downsample": (
            ["query", "genes", stores["cli"], "--genes", "TUM01", "--out", tmp_path / "q", "--downsample", str(v)],
            lambda db: db.query_genes("TUM01", downsample=v).heatmap["ph7"],
            stores["py"],
        ),
        "domains.k": (
            ["domains", writable["cli"], "--sample", "ph7", "--k", str(v)],
            lambda db: db.domains("ph7", k=v),
            writable["py"],
        ),
        "batch": (
            ["vectors", "import", writable["cli"], "--collection", f"raw{v}", "--batch-size", str(v), vecs],
            lambda db: db.import_vectors(f"raw{v}", np.ones((4, 8), np.float32), batch_size=v),
            writable["py"],
        ),
    }
    np.save(tmp_path / "v.npy", np.ones((4, 8), np.float32))
    for key, (args, call, py_store) in cases.items():
        want = expected(key, v)
        r = cli(*args, ok=False)
        with vortexdb.open(py_store) as db:
            py_refused = refused_by_python(lambda: call(db))  # noqa: B023 - called at once
        assert (r.returncode == 0) == want, f"{key}={v}: CLI exit {r.returncode}: {r.stderr}"
        assert py_refused == (not want), f"{key}={v}: Python {'refused' if py_refused else 'accepted'}"
        if not want and v >= 0:
            # A value of the right type out of range: our error (exit 1) naming it.
            assert r.returncode == 1 and key.split(".")[-1] in r.stderr, (key, v, r.stderr)


@pytest.mark.parametrize("sample", IDS, ids=["empty", "path", "long", "slash", "ok"])
def test_sample_ids_follow_one_rule_everywhere(writable, tmp_path, sample):
    np.save(tmp_path / "v.npy", np.ones((4, 8), np.float32))
    want = sample == "ok-id"
    vecs = tmp_path / "v.npy"
    r = cli("vectors", "import", writable["cli"], "--collection", "ids", "--sample", sample, vecs, ok=False)
    assert (r.returncode == 0) == want, r.stderr
    with vortexdb.open(writable["py"]) as db:
        py_refused = refused_by_python(lambda: db.import_vectors("ids", np.ones((4, 8), np.float32), sample=sample))
        assert py_refused == (not want)
        if not want:
            assert r.returncode == 1 and "sample" in r.stderr
            with pytest.raises(vortexdb.BadInput):
                db.ingest_volume(sample, np.zeros((8, 64, 64), np.uint8), progress=False)
