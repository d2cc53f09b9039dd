"""`vortexdb ingest spots` on all six her2st sections: the Rust QC counts, kept spots,
normalised panel expression and gene-encoder embeddings equal this package's Python
preprocessing and Python onnxruntime on the same sections. The model is an untrained
one over a her2st gene panel, exported here (weights do not matter for equality).
Skips when ../shared/data/her2st is absent; needs the release binary."""

import json
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from vortex_train.data import her2st_hvg, her2st_panel, normalize_log1p, qc_mask, read_her2st_section
from vortex_train.export import export_untrained_panel_model

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "her2st"
BIN = ROOT / "target" / "release" / "vortexdb"
SECTIONS = ["C1", "C2", "C3", "C4", "C5", "C6"]


def vortexdb(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def sections():
    if not (DATA / "counts" / "C1.tsv.gz").exists():
        pytest.skip("../shared/data/her2st is absent")
    if not BIN.exists():
        pytest.fail(f"{BIN} missing: build it with `cargo build --release` (scripts/test.sh does)")
    return {n: read_her2st_section(DATA, n) for n in SECTIONS}


@pytest.fixture(scope="module")
def model_dir(sections, tmp_path_factory):
    secs = list(sections.values())
    enc, panel = her2st_hvg(secs, 64), her2st_panel(secs, 40)
    vals = []
    for s in secs:
        pos = {g: j for j, g in enumerate(s.genes)}
        vals.append(normalize_log1p(s.counts)[:, [pos[g] for g in enc]])
    out = tmp_path_factory.mktemp("model") / "her2st-test"
    return export_untrained_panel_model(np.concatenate(vals), enc, panel, out, "her2st-test")


def test_ingest_spots_matches_python_on_all_six_sections(sections, model_dir, tmp_path):
    store = tmp_path / "store"
    vortexdb("init", store)
    vortexdb("models", "add", store, model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    enc = manifest["encoder_genes"]["names"]
    sess = ort.InferenceSession(str(model_dir / "genes.onnx"), providers=["CPUExecutionProvider"])
    total = 0
    for name, sec in sections.items():
        rep = json.loads(vortexdb("--json", "ingest", "spots", store, "--sample", name,
                                  DATA / "counts" / f"{name}.tsv.gz").stdout)  # fmt: skip
        keep = qc_mask(sec.counts, sec.genes)
        assert rep["qc"]["spots_in"] == len(sec.spot_ids)
        assert rep["qc"]["kept"] == int(keep.sum())
        assert rep["embedded"] == int(keep.sum())
        assert rep["encoder_genes_found"] == len(enc)
        out = tmp_path / name
        vortexdb("spots", "export", store, "--sample", name, "--out", out)
        rows = [line.split(",") for line in (out / "spots.csv").read_text().splitlines()[1:]]
        assert [r[0] for r in rows] == sec.spot_ids
        assert [r[9] == "1" for r in rows] == keep.tolist()
        pos = {g: j for j, g in enumerate(sec.genes)}
        x = normalize_log1p(sec.counts[keep])[:, [pos[g] for g in enc]]
        panel = (out / "panel.txt").read_text().split()
        got_expr = np.load(out / "expression.npy")
        assert got_expr.shape == (int(keep.sum()), len(panel))
        assert float(np.abs(got_expr[:, : len(enc)] - x).max()) <= 1e-5
        want = sess.run(["embedding"], {"values": x.astype(np.float32)})[0]
        got = np.load(out / "embeddings.npy")
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-4, name
        total += int(keep.sum())
    info = json.loads(vortexdb("--json", "info", store).stdout)
    assert sum(s["kept"] for s in info["spot_sets"]) == total
    assert {c["name"]: c["live"] for c in info["collections"]}["her2st-test:spots"] == total
