"""Shared fixtures: the CLI binary, the held-out seed-7 phantom, and two stores holding
the same data, one built by the CLI and one through Python."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import vortexdb

ROOT = Path(__file__).resolve().parents[3]
HER2ST = ROOT.parent / "shared" / "data" / "her2st"


def cli_path() -> Path:
    p = Path(os.environ.get("VORTEXDB_BIN", ROOT / "target" / "release" / "vortexdb"))
    if not p.is_file():
        pytest.fail(f"the vortexdb CLI is not built at {p} (cargo build --release)")
    return p


def cli(*args: str | os.PathLike, ok: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI; with ``ok`` it must succeed."""
    r = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise AssertionError(f"vortexdb {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


def cli_json(*args: str | os.PathLike) -> dict:
    return json.loads(cli(*args, "--json").stdout)


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> dict:
    """Phantom seed 7 (held out from the default model), 32 x 160 x 160."""
    out = tmp_path_factory.mktemp("phantom") / "ph"
    return vortexdb.phantom(out, seed=7, shape=(32, 160, 160))


@pytest.fixture(scope="session")
def stores(tmp_path_factory, phantom) -> dict:
    """The same phantom ingested twice: ``cli`` by the vortexdb command, ``py`` through
    the Python package from a NumPy array (volume) and the spot Parquet file."""
    d = tmp_path_factory.mktemp("stores")
    a = d / "cli"
    cli("init", a)
    cli("models", "add", a, "default")
    cli("ingest", "volume", a, "--sample", "ph7", phantom["volume"])
    cli("ingest", "spots", a, "--sample", "ph7", phantom["spots"])
    b = d / "py"
    with vortexdb.create(b) as db:
        db.add_model("default")
        db.ingest_volume("ph7", np.load(phantom["volume"]), progress=False)
        db.ingest_spots("ph7", phantom["spots"])
    return {"cli": a, "py": b, "dir": d}


@pytest.fixture(scope="session")
def her2st() -> Path:
    if not (HER2ST / "counts" / "C1.tsv.gz").is_file():
        pytest.skip(f"SKIPPED: {HER2ST} is absent (the real-data tests need ../shared/data/her2st)")
    return HER2ST


_EXPORT = """
import sys
from pathlib import Path
from vortex_train.data import her2st_hvg, her2st_panel, normalize_log1p, read_her2st_section
from vortex_train.export import export_untrained_panel_model
root, out = Path(sys.argv[1]), Path(sys.argv[2])
sec = read_her2st_section(root, "C1")
enc, panel = her2st_hvg([sec], 64), her2st_panel([sec], 40)
pos = {g: j for j, g in enumerate(sec.genes)}
export_untrained_panel_model(normalize_log1p(sec.counts)[:, [pos[g] for g in enc]], enc, panel, out,
                             "her2st-test")
"""


@pytest.fixture(scope="session")
def her2st_model(her2st, tmp_path_factory) -> Path:
    """An untrained model over a her2st C1 gene panel (the weights do not matter for
    equality), exported by the training package in its own venv (.venv, PyTorch)."""
    py = ROOT / ".venv" / "bin" / "python"
    if not py.is_file():
        pytest.fail(f"{py} missing: scripts/setup-python.sh makes the training venv")
    out = tmp_path_factory.mktemp("model") / "her2st-test"
    r = subprocess.run(
        [str(py), "-c", _EXPORT, str(her2st), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "training")},
    )
    assert r.returncode == 0, r.stderr
    return out


# Skip policy: every skip is reported by name (`pytest -rs`); with VORTEX_REQUIRE_DATA=1
# (set by .ci/run, where ../shared/data/her2st is always present) a skip is a failure,
# except one for hardware this machine lacks (a GPU).
_ALLOWED_SKIP = ("GPU", "CUDA")
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(a in reason for a in _ALLOWED_SKIP):
            _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _skipped and os.environ.get("VORTEX_REQUIRE_DATA") == "1":
        print("\nVORTEX_REQUIRE_DATA=1 and these tests were skipped (they must run here):")
        for s in _skipped:
            print("  " + s)
        session.exitstatus = 1
