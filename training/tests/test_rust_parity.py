"""The Rust runtime (`vortexdb models embed`, ONNX Runtime through the `ort` crate)
gives the same outputs as Python onnxruntime on the same inputs, for every network of
the default model. Needs the release binary (scripts/test.sh builds it first)."""

import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default"
BIN = ROOT / "target" / "release" / "vortexdb"

rng = np.random.default_rng(7)
CASES = [
    # network, output, input (a batch unlike the export example: 5 rows, depth 12 and 16)
    ("image_3d", "embedding", rng.normal(size=(5, 16, 1, 32, 32)).astype(np.float32)),
    ("image_3d", "tokens", rng.normal(size=(3, 12, 1, 32, 32)).astype(np.float32)),
    ("image_2d", "embedding", rng.normal(size=(5, 3, 32, 32)).astype(np.float32)),
    ("genes", "embedding", rng.gamma(1.0, 1.0, size=(7, 60)).astype(np.float32)),
    ("predictor", "expression", rng.normal(size=(4, 32, 64)).astype(np.float32)),
    ("predictor", "hidden", rng.normal(size=(4, 32, 64)).astype(np.float32)),
]


@pytest.mark.parametrize("network,output,x", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_rust_equals_python_onnxruntime(tmp_path, network, output, x):
    if not BIN.exists():
        pytest.fail(f"{BIN} missing: build it with `cargo build --release` (scripts/test.sh does)")
    inp, out = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(inp, x)
    r = subprocess.run(
        [str(BIN), "models", "embed", str(MODEL), "--network", network, "--output", output,
         "--input", str(inp), "--out", str(out), "--batch", "2"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    sess = ort.InferenceSession(str(MODEL / f"{network}.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    want = sess.run([output], {sess.get_inputs()[0].name: x})[0]
    assert output in names
    want = want.reshape(want.shape[0], -1)
    assert got.shape == want.shape
    diff = float(np.abs(got - want).max())
    assert diff <= 1e-4, f"{network}/{output}: max abs diff {diff}"
