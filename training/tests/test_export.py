"""ONNX export: parity with PyTorch through onnxruntime, dynamic batch and depth,
manifest contents."""

import json

import torch

from vortex_train.export import FORMAT, export_model, parity, read_manifest, sha256
from vortex_train.model import Vortex


def test_onnx_parity_and_manifest(tiny_cfg, tmp_path):
    torch.manual_seed(1)
    m = Vortex(tiny_cfg)
    patch = {"size_px": [16, 16], "depth": 3, "um_per_px": 4.0, "channels": 1}
    export_model(m, tmp_path, "tiny", patch, {"metrics": {"x": 1}})
    diffs = parity(m, tmp_path, batch=3)  # batch 3 and depth 2: not the export example's
    assert set(diffs) == {"image_3d.embedding", "image_3d.tokens", "image_2d.embedding", "image_2d.tokens",
                          "genes.embedding", "predictor.expression", "predictor.hidden"}  # fmt: skip
    assert max(diffs.values()) <= 1e-4, diffs
    man = read_manifest(tmp_path / "manifest.json")
    assert man["format"] == FORMAT
    assert man["embedding_dim"] == 32
    assert man["predicted_genes"] == tiny_cfg.predicted_genes
    assert man["encoder_genes"]["names"] == tiny_cfg.encoder_genes
    assert len(man["encoder_genes"]["bin_edges"]) == tiny_cfg.value_bins - 1
    for net in ("image_3d", "image_2d", "genes", "predictor"):
        entry = man["networks"][net]
        assert entry["sha256"] == sha256(tmp_path / entry["file"])
    assert man["networks"]["image_3d"]["inputs"] == {"patches": "B,D,C,H,W"}
    assert json.loads((tmp_path / "manifest.json").read_text())["training"]["metrics"] == {"x": 1}


def test_read_manifest_rejects_other_format(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"format": "something/2"}))
    try:
        read_manifest(p)
    except ValueError as e:
        assert "manifest.json" in str(e) and "something/2" in str(e)
    else:
        raise AssertionError("accepted a wrong format")
