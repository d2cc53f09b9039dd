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


def test_load_pretrained_backbone_from_local_state_dict(tiny_cfg, tmp_path):
    from vortex_train.model import load_pretrained_vit

    torch.manual_seed(2)
    src = Vortex(tiny_cfg)
    ckpt = {"state_dict": {f"visual.trunk.{k}": v for k, v in src.image_2d.vit.state_dict().items()}}
    ckpt["state_dict"]["visual.trunk.head.weight"] = torch.zeros(3, 3)  # not in our backbone: ignored
    torch.save(ckpt, tmp_path / "conch.pt")
    torch.manual_seed(3)
    dst = Vortex(tiny_cfg)
    loaded = load_pretrained_vit(dst.image_2d, str(tmp_path / "conch.pt"))["loaded"]
    assert len(loaded) == len(src.image_2d.vit.state_dict())
    for k, v in src.image_2d.vit.state_dict().items():
        assert torch.equal(v, dst.image_2d.vit.state_dict()[k]), k
