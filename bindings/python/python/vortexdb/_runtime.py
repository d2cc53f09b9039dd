"""Pointing the Rust library at the ONNX Runtime shared library of the installed
``onnxruntime`` (or ``onnxruntime-gpu``) wheel; ``ORT_DYLIB_PATH`` still wins."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from . import _native

_NAMES = ("libonnxruntime.so*", "libonnxruntime*.dylib", "onnxruntime.dll")


def wheel_library() -> Path | None:
    """The ONNX Runtime library inside the importable ``onnxruntime`` package, if any
    (found without importing the package)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        capi = Path(root) / "capi"
        found = [p for pattern in _NAMES for p in capi.glob(pattern) if p.is_file()]
        if found:
            # The fully versioned name is the real file.
            return max(found, key=lambda p: len(p.name))
    return None


def use_wheel_library() -> None:
    """Prefer the wheel's library unless ORT_DYLIB_PATH names one."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    lib = wheel_library()
    if lib is not None:
        _native.prefer_runtime_library(str(lib))
