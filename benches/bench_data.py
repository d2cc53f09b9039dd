"""The embedding-like test vectors the index benchmarks share: Gaussian clusters in a
low-dimensional latent space, mapped linearly to `dim` dimensions, plus noise."""

import numpy as np


def clustered(
    n: int, dim: int, rng: np.random.Generator, centres: np.ndarray, mapping: np.ndarray
) -> np.ndarray:
    labels = rng.integers(0, len(centres), size=n)
    latent = centres[labels] + rng.standard_normal((n, centres.shape[1])).astype(
        np.float32
    )
    x = latent @ mapping
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    return x.astype(np.float32)
