"""Results as NumPy, pandas and AnnData objects."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import anndata
    import pandas as pd

    from ._store import Store


class _Heatmaps(Mapping):
    """Sample -> 3D heatmap, computed on first access and kept: for a
    :class:`QueryResult`, or anything with ``samples`` and ``heatmap_of(sample)`` (an
    archive's result, whose heatmaps come from the sample's shard)."""

    def __init__(self, result: Any):
        self._r = result
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, sample: str) -> np.ndarray:
        if sample not in self._cache:
            self._cache[sample] = self._r.heatmap_of(sample)
        return self._cache[sample]

    def __iter__(self) -> Iterator[str]:
        return iter(self._r.samples)

    def __len__(self) -> int:
        return len(self._r.samples)

    def __repr__(self) -> str:
        return f"<heatmaps of {', '.join(self._r.samples)}>"


class QueryResult:
    """A molecular or profile query's answer.

    ``top``: the best patches (DataFrame: sample, id, z, y, x, score, percentile;
    origins in model voxels); ``patches``: every scored patch; ``triage``: one row per
    sample (fraction above the threshold, best patch); ``spots``: the spots a molecular
    query averaged; ``heatmap``: sample -> 3D float32 array (overlap-averaged
    similarity, NaN outside the patches), as ``vortexdb query --out`` writes it.
    """

    def __init__(self, native: Any, store: Store, *, top: int = 10, downsample: int | None = None):
        self._q = native
        self._store = store
        self._top = top
        self.downsample = downsample
        self.summary: dict = native.summary(top)
        self.threshold: float = self.summary["threshold"]
        self.heatmap: Mapping[str, np.ndarray] = _Heatmaps(self)
        self._patches: pd.DataFrame | None = None

    @property
    def samples(self) -> list[str]:
        """Samples scored, in triage order."""
        return [row["sample"] for row in self.summary["triage"]]

    @property
    def patches(self) -> pd.DataFrame:
        """Every scored patch, best first."""
        import pandas as pd

        if self._patches is None:
            self._patches = pd.DataFrame(self._q.ranked())
        return self._patches

    @property
    def top(self) -> pd.DataFrame:
        """The best ``top`` patches."""
        return self.patches.head(self._top).reset_index(drop=True)

    @property
    def triage(self) -> pd.DataFrame:
        """Per sample: patches, fraction above the threshold, max and mean score and
        the best patch's origin."""
        import pandas as pd

        return pd.DataFrame(self.summary["triage"])

    @property
    def spots(self) -> pd.DataFrame:
        """The (sample, spot) pairs a molecular query averaged (empty for profiles)."""
        import pandas as pd

        return pd.DataFrame(self._q.spots(), columns=["sample", "spot"])

    @property
    def embedding(self) -> np.ndarray:
        """The query embedding."""
        return self._q.embedding()

    def heatmap_of(self, sample: str, downsample: int | None = None) -> np.ndarray:
        """The heatmap of ``sample`` (``downsample`` model voxels per output voxel;
        default: the result's, or the smallest keeping it under 64M voxels)."""
        d = self.downsample if downsample is None else downsample
        return self._q.heatmap(self._store._s, sample, d)

    def write(
        self,
        dir: str | os.PathLike[str],  # noqa: A002 - the CLI's word
        *,
        top: int | None = None,
        downsample: int | None = None,
        slices: int = 3,
        ome_zarr: bool = False,
    ) -> list[str]:
        """Write the files of ``vortexdb query --out DIR``; returns their paths. With
        ``ome_zarr`` each heatmap is also an OME-Zarr image (``--ome-zarr``)."""
        return self._q.write(
            os.fspath(dir),
            self._store._s,
            top=self._top if top is None else top,
            downsample=self.downsample if downsample is None else downsample,
            slices=slices,
            ome_zarr=ome_zarr,
        )

    def __repr__(self) -> str:
        return repr(self._q)


@dataclass
class Domains:
    """Spatial domains of a sample: ``labels`` per patch (aligned with ``ids`` and
    ``predictions.obs``), the ``label_volume`` (uint8, domain + 1, 0 = no patch),
    per-domain ``summary`` (DataFrame), ``ari`` against a segmentation when given."""

    sample: str
    k: int
    ids: np.ndarray
    labels: np.ndarray
    label_volume: np.ndarray
    summary: pd.DataFrame
    inertia: float
    ari: float | None
    ari_patches: int | None
    predictions: anndata.AnnData = field(repr=False)

    @classmethod
    def from_native(cls, d: dict) -> Domains:
        import pandas as pd

        return cls(
            sample=d["sample"],
            k=d["k"],
            ids=d["ids"],
            labels=d["labels"],
            label_volume=d["label_volume"],
            summary=pd.DataFrame(d["domains"]),
            inertia=d["inertia"],
            ari=d["ari"],
            ari_patches=d["ari_patches"],
            predictions=predictions_anndata(d["predictions"]),
        )


def predictions_anndata(p: dict) -> anndata.AnnData:
    """Predictions (the native dict) as AnnData; X is the Rust vector (no copy)."""
    import anndata
    import pandas as pd

    origins = p["origins"]
    obs = pd.DataFrame(
        {"sample": p["sample"], "z": origins[:, 0], "y": origins[:, 1], "x": origins[:, 2], "tissue": p["tissue"]},
        index=pd.Index([str(i) for i in p["ids"]], name="patch_id"),
    )
    obs["sample"] = obs["sample"].astype("category")
    var = pd.DataFrame(index=pd.Index(p["genes"], name="gene"))
    a = anndata.AnnData(X=p["expression"], obs=obs, var=var)
    a.obsm["hidden"] = p["hidden"]
    a.obsm["spatial"] = np.ascontiguousarray(origins[:, [2, 1]]).astype(np.float64)
    a.uns["vortexdb"] = {"sample": p["sample"], "method": p["method"]}
    if p.get("ridge") is not None:
        a.uns["vortexdb"]["ridge"] = p["ridge"]
    return a


def spots_anndata(s: dict) -> anndata.AnnData:
    """Stored spots (the native dict) as AnnData."""
    import anndata
    import pandas as pd

    cols = [
        "pixel_x",
        "pixel_y",
        "array_x",
        "array_y",
        "z",
        "y",
        "x",
        "n_genes",
        "total_counts",
        "mito_fraction",
        "kept",
    ]
    obs = pd.DataFrame({c: s[c] for c in cols}, index=pd.Index(s["id"], name="spot"))
    var = pd.DataFrame(index=pd.Index(s["panel"], name="gene"))
    a = anndata.AnnData(X=s["normalized"], obs=obs, var=var)
    a.layers["smoothed"] = s["smoothed"]
    a.obsm["spatial"] = np.stack([s["pixel_x"], s["pixel_y"]], axis=1)
    if "image_embedding" in s:
        a.obsm["image_embedding"] = s["image_embedding"]
    a.uns["vortexdb"] = s["set"]
    return a
