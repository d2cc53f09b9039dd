"""The committed default model (models/default): checksums, dynamic shapes, and its
recorded held-out metrics reproduced through onnxruntime on a regenerated phantom."""

import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from vortex_train.data import load_phantom
from vortex_train.evaluate import pcc_summary, retrieval_topk
from vortex_train.export import read_manifest, sha256

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default"
BIN = ROOT / "target" / "release" / "vortexdb"


def _session(net: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL / f"{net}.onnx"), providers=["CPUExecutionProvider"])


def test_manifest_and_checksums():
    man = read_manifest(MODEL / "manifest.json")
    for net in ("image_3d", "image_2d", "genes", "predictor"):
        entry = man["networks"][net]
        assert entry["sha256"] == sha256(MODEL / entry["file"]), net
    size = sum(p.stat().st_size for p in MODEL.iterdir())
    assert size < 8 << 20, f"default model is {size} bytes; keep it small enough for the repo"
    m = man["training"]["metrics"]
    # every stage improves its target metric over the stage before (recorded at training
    # on the held-out planes): stage II's 3D encoder beats the stage I model applied to
    # the 3D patches, and stage I's 2D encoder on the same spots in top-5 retrieval and
    # PCC; stage III (tuned on the volume's own planes) beats stage II in PCC.
    assert m["stage_II_3d"]["top5"] > m["stage_I_3d_init"]["top5"]
    assert m["stage_II_3d"]["top5"] > m["stage_I_2d"]["top5"]
    assert m["stage_II_3d"]["pcc_all"] > m["stage_I_2d"]["pcc_all"]
    assert m["stage_III_3d"]["pcc_all"] > m["stage_II_3d"]["pcc_all"]


def test_dynamic_batch_and_depth():
    man = read_manifest(MODEL / "manifest.json")
    p = man["patch"]
    h, w = p["size_px"]
    s = _session("image_3d")
    for b, d in ((1, p["depth"]), (5, p["depth"]), (2, 1)):
        emb, tok = s.run(None, {"patches": np.zeros((b, d, p["channels"], h, w), np.float32)})
        assert emb.shape == (b, man["embedding_dim"])
        assert tok.shape == (b, man["recon_queries"], man["embedding_dim"])
        assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)


@pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built (cargo build --release)")
def test_recorded_metrics_reproduce_through_onnxruntime(tmp_path):
    man = read_manifest(MODEL / "manifest.json")
    data = man["training"]["data"]
    out = tmp_path / "voi"
    cmd = [str(BIN), "phantom", "--seed", str(data["voi_seed"]), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    p = man["patch"]
    voi = load_phantom(out, p["size_px"][0], p["depth"])
    held = voi.subset(np.flatnonzero(voi.group >= data["voi_tuning_planes"]))
    emb, tok = _session("image_3d").run(None, {"patches": held.img3d})
    genes = man["encoder_genes"]["names"]
    (gemb,) = _session("genes").run(None, {"values": held.select_genes(genes)})
    pred, hidden = _session("predictor").run(None, {"tokens": tok})
    got = retrieval_topk(emb, gemb)
    got.update(pcc_summary(pred, held.select_genes(man["predicted_genes"]), man["predicted_genes"]))
    want = man["training"]["metrics"]["stage_III_3d"]
    assert abs(got["top1"] - want["top1"]) < 0.02 and abs(got["top5"] - want["top5"]) < 0.02, (got, want)
    assert abs(got["pcc_all"] - want["pcc_all"]) < 0.01, (got, want)
    assert got["top5"] > 10 * 5 * want["chance_top1"]  # far above chance
    assert hidden.shape == (len(held.expr), man["predictor_hidden"])


def test_report_prints_every_recorded_evaluation(capsys):
    from vortex_train.cli import main

    assert main(["report", str(MODEL)]) == 0
    out = capsys.readouterr().out
    for name in read_manifest(MODEL / "manifest.json")["training"]["metrics"]:
        assert f"| {name} |" in out
