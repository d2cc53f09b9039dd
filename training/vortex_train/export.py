"""Export every VORTEX network to ONNX (dynamic batch, and depth for the 3D encoder)
and write the model directory's manifest.json, the contract with the Rust store."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import save_json
from .model import Vortex

FORMAT = "vortexdb-model/1"


class _Image3D(nn.Module):
    def __init__(self, m: Vortex):
        super().__init__()
        self.enc = m.image_3d

    def forward(self, patches: torch.Tensor):
        return self.enc(patches)


class _Image2D(nn.Module):
    def __init__(self, m: Vortex):
        super().__init__()
        self.enc = m.image_2d

    def forward(self, patches: torch.Tensor):
        return self.enc(patches.unsqueeze(1))


def _networks(model: Vortex) -> dict:
    c = model.cfg
    s = c.image_size
    return {
        "image_3d": (_Image3D(model), {"patches": torch.randn(2, c.max_depth, c.channels_3d, s, s)},
                     {"patches": {0: "B", 1: "D"}}, ["embedding", "tokens"], "B,D,C,H,W"),
        "image_2d": (_Image2D(model), {"patches": torch.randn(2, c.channels_2d, s, s)},
                     {"patches": {0: "B"}}, ["embedding", "tokens"], "B,C,H,W"),
        "genes": (model.genes, {"values": torch.rand(2, len(c.encoder_genes)) * 3},
                  {"values": {0: "B"}}, ["embedding"], "B,G"),
        "predictor": (model.predictor, {"tokens": torch.randn(2, c.recon_queries, c.embed_dim)},
                      {"tokens": {0: "B"}}, ["expression", "hidden"], "B,Q,E"),
    }  # fmt: skip


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Networks whose weights reach this size keep them in one external data file beside
# the graph (`<network>.onnx.data`): a protobuf file cannot exceed 2 GiB.
EXTERNAL_DATA_BYTES = 1 << 30


def _export_network(module, example: dict, axes: dict, outputs: list[str], path: Path,
                    external_data: bool | None) -> list[str]:  # fmt: skip
    """Export one network to `path`; returns the external data file names (none or one).

    The exporter writes into a scratch directory first (over 2 GiB it writes one file per
    tensor), then the graph is saved with its weights inline, or all in `<file>.data`.
    """
    import shutil

    import onnx

    dyn = dict(axes)
    for o in outputs:
        dyn[o] = {0: "B"}
    scratch = path.parent / f".{path.name}.export"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    data = path.with_name(path.name + ".data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(example.values()), str(scratch / path.name), input_names=list(example),
                              output_names=outputs, dynamic_axes=dyn, opset_version=17, dynamo=False)  # fmt: skip
        files = list(scratch.iterdir())
        weights = sum(p.numel() * p.element_size() for p in module.parameters())
        if external_data is None:
            external_data = len(files) > 1 or weights >= EXTERNAL_DATA_BYTES
        data.unlink(missing_ok=True)  # onnx appends to an existing data file
        if not external_data:
            (scratch / path.name).replace(path)
            return []
        graph = onnx.load(str(scratch / path.name))  # reads any per-tensor files beside it
        onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)  # fmt: skip
        return [data.name]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def export_model(model: Vortex, out: Path, name: str, patch: dict, training: dict,
                 external_data: bool | None = None) -> dict:  # fmt: skip
    """Write `<network>.onnx` for every network plus manifest.json into `out`.

    `patch` describes the 3D patch geometry (size_px, depth, um_per_px, channels) and
    `training` the stages, data and metrics; both go into the manifest verbatim. Weights
    go to external data files (listed under the network's `data`, with checksums) when
    `external_data` is True, or with None when a network's weights reach 1 GiB.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    cfg = model.cfg
    nets = {}
    for net, (module, example, axes, outputs, in_shape) in _networks(model).items():
        path = out / f"{net}.onnx"
        data = _export_network(module, example, axes, outputs, path, external_data)
        out_shapes = {"embedding": "B,E", "tokens": "B,Q,E", "expression": "B,G", "hidden": "B,H"}
        nets[net] = {"file": path.name, "sha256": sha256(path), "inputs": {list(example)[0]: in_shape},
                     "outputs": {o: out_shapes[o] for o in outputs}}  # fmt: skip
        if data:
            nets[net]["data"] = [{"file": f, "sha256": sha256(out / f)} for f in data]
    mean3, std3 = cfg.norm(patch.get("channels", 1))
    mean2, std2 = cfg.norm(cfg.channels_2d)
    manifest = {
        "format": FORMAT,
        "name": name,
        "embedding_dim": cfg.embed_dim,
        "normalized": True,
        "patch": {**patch, "mean": mean3, "std": std3},
        "patch_2d": {
            "size_px": [cfg.image_size, cfg.image_size],
            "channels": cfg.channels_2d,
            "um_per_px": training.get("um_per_px_2d", patch.get("um_per_px")),
            "mean": mean2,
            "std": std2,
        },  # fmt: skip
        "expression": {"normalize_total": 1e4, "log1p": True},
        "encoder_genes": {
            "names": cfg.encoder_genes,
            "bins": cfg.value_bins,
            "bin_edges": [float(x) for x in model.genes.edges],
        },  # fmt: skip
        "predicted_genes": cfg.predicted_genes,
        "recon_queries": cfg.recon_queries,
        "predictor_hidden": cfg.predictor_hidden,
        "networks": nets,
        "config": cfg.to_json(),
        "training": training,
    }
    save_json(manifest, out / "manifest.json")
    return manifest


def parity(model: Vortex, out: Path, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Max abs difference between PyTorch and onnxruntime on random inputs, per
    network output (batch size differs from the export example on purpose)."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    s = c.image_size
    inputs = {
        "image_3d": torch.randn(batch, max(c.max_depth - 1, 1), c.channels_3d, s, s, generator=g),
        "image_2d": torch.randn(batch, c.channels_2d, s, s, generator=g),
        "genes": torch.rand(batch, len(c.encoder_genes), generator=g) * 4,
        "predictor": torch.randn(batch, c.recon_queries, c.embed_dim, generator=g),
    }
    diffs = {}
    nets = _networks(model)
    model.eval()
    for net, x in inputs.items():
        module, example, _, outputs, _ = nets[net]
        with torch.no_grad():
            ref = module(x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        sess = ort.InferenceSession(str(Path(out) / f"{net}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(outputs, {list(example)[0]: x.numpy()})
        for o, r, y in zip(outputs, ref, got, strict=False):
            diffs[f"{net}.{o}"] = float(np.abs(r.numpy() - y).max())
    return diffs


def read_manifest(path: Path) -> dict:
    """Load and minimally validate a manifest.json."""
    m = json.loads(Path(path).read_text())
    if m.get("format") != FORMAT:
        raise ValueError(f"{path}: format {m.get('format')!r}, expected {FORMAT!r}")
    return m


def export_untrained_panel_model(
    encoder_values: np.ndarray, encoder_genes: list[str], predicted_genes: list[str], out: Path, name: str
) -> Path:
    """A small untrained model over a given gene panel (bin edges from `encoder_values`,
    spots x encoder genes of log1p expression), exported like a trained one. For tests
    and benchmarks of the spot path, where the weights do not matter."""
    from .config import ModelConfig

    cfg = ModelConfig(embed_dim=32, vit_width=32, vit_layers=1, vit_heads=2, vit_patch=8, image_size=16,
                      max_depth=3, channels_3d=3, recon_queries=4, gene_width=32, gene_layers=1, gene_heads=2,
                      value_bins=11, encoder_genes=encoder_genes, predicted_genes=predicted_genes,
                      predictor_hidden=32, n_domains=2)  # fmt: skip
    torch.manual_seed(0)
    model = Vortex(cfg)
    model.genes.set_bin_edges(torch.from_numpy(np.asarray(encoder_values, np.float32)))
    patch = {"size_px": [16, 16], "depth": 3, "um_per_px": 1.0, "channels": 3}
    export_model(model, Path(out), name, patch, {"note": "untrained, for tests and benchmarks"})
    return Path(out)
