"""One set of limits: each numeric option and sample id goes through one table of
values (0, 1, negative, huge; empty, path-like, overlong ids) and the CLI and the
Python package (which calls the library) accept or refuse it alike, as the library's
own table (``vortexdb.arg_rules()``) says."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    """Whether the call was refused by an argument check: out of range, or a negative
    number for an unsigned argument. An error later on (a query that selects no spot)
    means the value was accepted."""
    try:
        call()
    except vortexdb.BadInput as e:
        return "out of range" in str(e) or "sample" in str(e)
    except (OverflowError, TypeError):
        return True
    except vortexdb.Error:
        return False
    return False


def refused_by_cli(r) -> bool:
    """The same for a CLI run: our range error, or clap refusing a negative count."""
    return r.returncode != 0 and ("out of range" in r.stderr or "invalid digit" in r.stderr or "sample" in r.stderr)


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


REALS = [-2.0, -1.0, 0.0, 0.5, 1.0, 100.0, 101.0, float("nan"), float("inf")]


def cases(stores, writable, tmp: Path) -> dict:
    """Rule key -> (CLI arguments for a value, the same through Python, whether the
    store is written). Every numeric option that both faces take."""
    ro, rw = stores["cli"], writable["cli"]
    q = ["query", "genes", ro, "--genes", "TUM01"]
    vecs, queries = tmp / "v.npy", tmp / "q.npy"
    one = np.ones((4, 8), np.float32)
    return {
        "top": (lambda v: [*q, f"--top={v}"], lambda db, v: db.query_genes("TUM01", top=v), False),
        "downsample": (
            lambda v: [*q, "--out", tmp / "q", f"--downsample={v}"],
            lambda db, v: db.query_genes("TUM01", downsample=v).heatmap["ph7"],
            False,
        ),
        "min_pcc": (lambda v: [*q, f"--min-pcc={v}"], lambda db, v: db.query_genes("TUM01", min_pcc=v), False),
        "percentile": (
            lambda v: [*q, f"--percentile={v}"],
            lambda db, v: db.query_genes("TUM01", percentile=v),
            False,
        ),
        "min_fraction": (
            lambda v: [*q, f"--min-fraction={v}"],
            lambda db, v: db.query_genes("TUM01", min_fraction=v),
            False,
        ),
        "knn": (
            lambda v: ["predict", ro, "--sample", "ph7", "--out", tmp / "p.parquet", f"--knn={v}", "--reference=ph7"],
            lambda db, v: db.predict("ph7", knn=v, reference="ph7"),
            False,
        ),
        "domains.k": (
            lambda v: ["domains", rw, "--sample", "ph7", f"--k={v}"],
            lambda db, v: db.domains("ph7", k=v),
            True,
        ),
        "restarts": (
            lambda v: ["domains", rw, "--sample", "ph7", "--k", "2", f"--restarts={v}"],
            lambda db, v: db.domains("ph7", k=2, restarts=v),
            True,
        ),
        "max_iter": (
            lambda v: ["domains", rw, "--sample", "ph7", "--k", "2", f"--max-iter={v}"],
            lambda db, v: db.domains("ph7", k=2, max_iter=v),
            True,
        ),
        "batch": (
            lambda v: ["vectors", "import", rw, "--collection", f"b{v}", f"--batch-size={v}", vecs],
            lambda db, v: db.import_vectors(f"b{v}", one, batch_size=v),
            True,
        ),
        "m": (
            lambda v: ["vectors", "import", rw, "--collection", f"m{v}", f"--m={v}", vecs],
            lambda db, v: db.import_vectors(f"m{v}", one, m=v),
            True,
        ),
        "ef_construction": (
            lambda v: ["vectors", "import", rw, "--collection", f"e{v}", f"--ef-construction={v}", vecs],
            lambda db, v: db.import_vectors(f"e{v}", one, ef_construction=v),
            True,
        ),
        "k": (
            lambda v: ["vectors", "search", ro, "--collection", "vortex-tiny-phantom:3d", "--queries", queries,
                       "--out", tmp / "ids.npy", f"--k={v}"],
            lambda db, v: db.search("vortex-tiny-phantom:3d", np.ones(64, np.float32), k=v),
            False,
        ),  # fmt: skip
        "ef": (
            lambda v: ["vectors", "search", ro, "--collection", "vortex-tiny-phantom:3d", "--queries", queries,
                       "--out", tmp / "ids.npy", f"--ef={v}"],
            lambda db, v: db.search("vortex-tiny-phantom:3d", np.ones(64, np.float32), ef=v),
            False,
        ),  # fmt: skip
    }


def test_every_rule_of_both_faces_is_in_the_table(stores, writable, tmp_path):
    """The cases below cover every rule that the CLI and Python both take; the rest
    (`slices`, `um`) are options of one face only or of an ingest."""
    assert set(cases(stores, writable, tmp_path)) | {"slices", "um"} == set(RULES)


@pytest.mark.parametrize("key", sorted(set(RULES) - {"slices", "um"}))
def test_numeric_options_are_accepted_or_refused_alike(stores, writable, tmp_path, key):
    np.save(tmp_path / "v.npy", np.ones((4, 8), np.float32))
    np.save(tmp_path / "q.npy", np.ones((1, 64), np.float32))
    cli_args, call, writes = cases(stores, writable, tmp_path)[key]
    integer = RULES[key]["integer"]
    for v in NUMBERS if integer else REALS:
        want = v == v and abs(v) != float("inf") and RULES[key]["lo"] <= v <= RULES[key]["hi"]
        r = cli(*cli_args(str(v)), ok=False)
        with vortexdb.open(writable["py"] if writes else stores["py"], read_only=not writes) as db:
            py_refused = refused_by_python(lambda: call(db, v))  # noqa: B023 - called at once
        assert refused_by_cli(r) == (not want), f"{key}={v}: CLI exit {r.returncode}: {r.stderr}"
        assert py_refused == (not want), f"{key}={v}: Python {'refused' if py_refused else 'accepted'}"
        if not want and (not integer or v >= 0):
            # A value of the right type out of range: our error (exit 1) naming it.
            assert r.returncode == 1 and key.split(".")[-1] in r.stderr.replace("-", "_"), (key, v, r.stderr)


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
