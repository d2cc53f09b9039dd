"""The image files a section stack or an image was ingested from, read through the
store where it recorded them (``Store.read_image_slice``: the sections stacked and
registered as the ingest did), as a lazily read array the viewer's image layer serves.

A whole-slide section is large (her2st: 9,300 x 9,900 RGB pixels, 275 MB per section),
so slices are read averaged over ``f x f`` pixel blocks, ``f`` the smallest factor that
keeps each side under ``MAX_SIDE``, and at most ``CACHED`` slices are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

# Longest side of a slice as shown (pixels after averaging).
MAX_SIDE = 4096
# Slices kept decoded.
CACHED = 6


def block_factor(shape_yx: list[int], max_side: int = MAX_SIDE) -> int:
    """The smallest block size keeping both sides of a slice at most ``max_side``."""
    f = 1
    while max(-(-int(n) // f) for n in shape_yx) > max_side:
        f += 1
    return f


class RecordedImage:
    """A (Z, Y, X[, C]) uint8 array-like over ``db.read_image_slice(sample, z, f)``:
    ``shape``, ``dtype``, ``ndim`` and basic-slice indexing, which is what neuroglancer's
    ``LocalVolume`` asks of its data. Slices are read on first use and cached."""

    def __init__(self, db: Any, sample: str, source_shape: list[int], factor: int):
        self.db = db
        self.sample = sample
        self.factor = int(factor)
        self._zyx = [int(source_shape[0])] + [-(-int(n) // self.factor) for n in source_shape[1:]]
        self._channels: int | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.dtype = np.dtype(np.uint8)

    def slice(self, z: int) -> np.ndarray:
        """Slice ``z`` as (Y, X, C) uint8 (read once, then from the cache)."""
        with self._lock:
            hit = self._cache.get(z)
            if hit is not None:
                self._cache.move_to_end(z)
                return hit
        a = np.asarray(self.db.read_image_slice(self.sample, z, self.factor))
        if list(a.shape[:2]) != self._zyx[1:]:
            raise ValueError(
                f"slice {z} of '{self.sample}' reads as {list(a.shape[:2])}, not the recorded "
                f"{self._zyx[1:]} (at 1/{self.factor}): the image files changed since the ingest"
            )
        with self._lock:
            self._channels = int(a.shape[2])
            self._cache[z] = a
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        return a

    @property
    def channels(self) -> int:
        if self._channels is None:
            self.slice(0)
        assert self._channels is not None
        return self._channels

    @property
    def shape(self) -> tuple[int, ...]:
        c = self.channels
        return (*self._zyx, c) if c > 1 else tuple(self._zyx)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self._zyx[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        idx = idx if isinstance(idx, tuple) else (idx,)
        zs = idx[0] if idx else slice(None)
        rest = idx[1:]
        if isinstance(zs, (int, np.integer)):
            a = self.slice(int(zs))
            a = a if self.channels > 1 else a[..., 0]
            return a[rest] if rest else a
        planes = [self.slice(z) for z in range(*zs.indices(self._zyx[0]))]
        if planes:
            out = np.stack(planes)
        else:
            out = np.zeros((0, *self._zyx[1:], self.channels), np.uint8)
        out = out if self.channels > 1 else out[..., 0]
        return out[(slice(None), *rest)] if rest else out
