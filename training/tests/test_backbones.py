"""Bring-your-own encoders: timm ViT / ResNet backbones load local state dicts in the
layouts published pathology encoders ship, train, export (inline or external-data ONNX)
with parity, and the store runs them unchanged."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vortex_train.backbones import load_backbone_weights, timm_norm
from vortex_train.config import ModelConfig, StageConfig
from vortex_train.export import export_model, parity, sha256
from vortex_train.model import Vortex, load_pretrained_vit
from vortex_train.train import run_stage

timm = pytest.importorskip("timm", reason="timm is in training/requirements.txt")

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "release" / "vortexdb"
# A small ViT of timm's ViT-B layout (same keys, fewer and narrower blocks).
SMALL_VIT = {"embed_dim": 48, "depth": 2, "num_heads": 3, "patch_size": 8}


def _cfg(backbone: str, kwargs: dict, size: int = 32, genes: int = 12) -> ModelConfig:
    g = [f"G{i}" for i in range(genes)]
    mean, std = timm_norm(backbone, kwargs)
    return ModelConfig(embed_dim=32, vit_heads=2, image_size=size, max_depth=3, channels_3d=3, recon_queries=4,
                       gene_width=32, gene_layers=1, gene_heads=2, value_bins=11, encoder_genes=g,
                       predicted_genes=g[:8], predictor_hidden=32, n_domains=2, backbone=backbone,
                       backbone_kwargs=kwargs, image_mean=mean, image_std=std)  # fmt: skip


def _timm_checkpoint(tmp_path: Path, name: str, kwargs: dict, size: int, fmt: str, prefix: str = "") -> Path:
    """A randomly initialised timm model (with its classifier head) saved as a local file."""
    torch.manual_seed(11)
    sized = {"img_size": size} if name.startswith("vit") else {}
    src = timm.create_model(name, pretrained=False, **sized, **kwargs)
    state = {prefix + k: v for k, v in src.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "weights.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "weights.pth"
        torch.save({"state_dict": state}, path)
    return path


def test_timm_vit_state_dict_loads_exactly_and_matches_timm(tmp_path):
    path = _timm_checkpoint(tmp_path, "vit_base_patch16_224", SMALL_VIT, 32, "pth")
    m = Vortex(_cfg("timm:vit_base_patch16_224", SMALL_VIT))
    r = load_pretrained_vit(m.image_2d, str(path))
    assert "head.weight" in r["skipped"] and r["missing"] == []
    ref = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, num_classes=0, **SMALL_VIT)
    ref.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=False)
    ref.eval()
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m.image_2d.vit(x), ref.forward_features(x))


def test_open_clip_prefix_safetensors_and_position_resampling(tmp_path):
    # CONCH-style keys (visual.trunk.*) in a safetensors file, made at 64 px, loaded
    # into a 32 px model: timm's filter resamples the position embeddings.
    path = _timm_checkpoint(tmp_path, "vit_base_patch16_224", SMALL_VIT, 64, "safetensors", prefix="visual.trunk.")
    m = Vortex(_cfg("timm:vit_base_patch16_224", SMALL_VIT))
    r = load_backbone_weights(m.image_2d.vit, path)
    assert "pos_embed" in r["loaded"] and "blocks.1.attn.qkv.weight" in r["loaded"]
    assert m.image_2d.vit.net.pos_embed.shape[1] == 1 + (32 // 8) ** 2


def test_bad_backbone_files_are_refused_naming_the_file(tmp_path):
    m = Vortex(_cfg("timm:vit_base_patch16_224", SMALL_VIT))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a readable state dict"):
        load_backbone_weights(m.image_2d.vit, junk)
    other = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="other.pth: none of its 1 tensors matches"):
        load_backbone_weights(m.image_2d.vit, other)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone_weights(m.image_2d.vit, tmp_path / "missing.pth")


def test_resnet_backbone_trains_and_exports_with_external_data(tmp_path, tiny_set):
    path = _timm_checkpoint(tmp_path, "resnet18", {}, 32, "pth", prefix="module.")
    cfg = _cfg("timm:resnet18", {})
    assert cfg.image_mean == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's, from timm
    torch.manual_seed(0)
    m = Vortex(cfg)
    assert len(load_pretrained_vit(m.image_2d, str(path))["loaded"]) > 50
    before = {k: v.clone() for k, v in m.image_2d.state_dict().items()}
    data = tiny_set.subset(np.arange(16))  # 16 px images, upsampled to the model's 32
    data.img2d = np.ascontiguousarray(data.img2d.repeat(2, -1).repeat(2, -2))
    data.img3d = np.ascontiguousarray(data.img3d.repeat(2, -1).repeat(2, -2))
    losses = run_stage(m, "I", data, StageConfig(epochs=5, batch_size=4, max_steps=3))
    assert len(losses) == 1 and np.isfinite(losses[0])  # 3 steps: within the first epoch
    changed = [k for k, v in m.image_2d.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("vit.net.layer4") for k in changed)
    m.init_3d_from_2d()
    out = tmp_path / "model"
    man = export_model(m, out, "byo-resnet", {"size_px": [32, 32], "depth": 3, "um_per_px": 1.0, "channels": 3},
                       {"note": "test"}, external_data=True)  # fmt: skip
    assert max(parity(m, out).values()) <= 1e-4
    for net in ("image_3d", "image_2d", "genes", "predictor"):
        (entry,) = man["networks"][net]["data"]
        assert entry["file"] == f"{net}.onnx.data" and entry["sha256"] == sha256(out / entry["file"])
        assert (out / f"{net}.onnx").stat().st_size < (out / entry["file"]).stat().st_size
    assert man["patch"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert not list(out.glob(".*"))  # no scratch left


def test_store_runs_an_external_data_model_unchanged(tmp_path):
    """A timm ViT exported with external data registers in a store, its copy keeps the
    data files, and ingesting an image through it gives Python onnxruntime's vectors."""
    if not BIN.exists():
        pytest.fail(f"{BIN} missing: build it with `cargo build --release` (scripts/test.sh does)")
    from PIL import Image

    torch.manual_seed(0)
    m = Vortex(_cfg("timm:vit_base_patch16_224", SMALL_VIT))
    m.init_3d_from_2d()
    model = tmp_path / "model"
    export_model(m, model, "byo-vit", {"size_px": [32, 32], "depth": 1, "um_per_px": 1.0, "channels": 3},
                 {"note": "test"}, external_data=True)  # fmt: skip
    store = tmp_path / "store"
    run = lambda *a: subprocess.run([str(BIN), *a], capture_output=True, text=True, cwd=ROOT)  # noqa: E731
    assert run("init", str(store)).returncode == 0
    r = run("models", "add", str(store), str(model))
    assert r.returncode == 0, r.stderr
    copy = store / "models" / "byo-vit"
    # The same files with the data file left out of the manifest: the graph cannot load
    # from the store's copy, so the model is refused and nothing is registered.
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    man = json.loads((bad / "manifest.json").read_text())
    man["name"] = "byo-vit-bad"
    del man["networks"]["image_3d"]["data"]
    (bad / "manifest.json").write_text(json.dumps(man))
    r = run("models", "add", str(store), str(bad))
    assert r.returncode == 1 and "image_3d.onnx" in r.stderr and "external data" in r.stderr, r.stderr
    assert not (store / "models" / "byo-vit-bad").exists()
    assert not [p.name for p in (store / "models").iterdir() if p.name.startswith(".")]
    assert sha256(copy / "image_3d.onnx.data") == sha256(model / "image_3d.onnx.data")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "tile.png")
    r = run("--json", "ingest", "image", str(store), "--sample", "tile", "--um-per-px", "1", str(tmp_path / "tile.png"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["patches_total"] > 0
    # The same network through `models embed` equals Python onnxruntime on it.
    import onnxruntime as ort

    x = rng.normal(size=(3, 1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run("models", "embed", str(copy), "--network", "image_3d", "--output", "embedding",
            "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(str(model / "image_3d.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(["embedding"], {"patches": x})[0]
    assert float(np.abs(np.load(tmp_path / "y.npy") - want).max()) <= 1e-4
