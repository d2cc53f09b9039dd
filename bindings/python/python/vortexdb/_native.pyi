"""Type stubs of the extension module ``vortexdb._native`` (the Rust bindings). The
public API is the Python layer (``vortexdb.Store`` and friends); these are the calls it
makes. Arrays named "borrowed" are read in place while the call runs (no copy); every
array returned owns a buffer the Rust library filled (no copy either)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

ORT_VERSION: str
FORMAT_VERSION: int

Json = Any
Progress = Callable[[int, int, int], None]

class Store:
    """A store opened by :func:`create` or :func:`open`."""

    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    def close(self) -> None: ...
    # `info()["samples"][i]`: id, kind, source, model, status, patches, voxel_um,
    # source_shape, and for a sample ingested from image files where they are:
    # images (list[str], absolute, section order), transforms (str | None),
    # levels (list[int | None], the pyramid level read of each image),
    # um_per_px (float); these four are None when nothing is recorded (volumes,
    # arrays, stores written before the record existed).
    def info(self) -> dict[str, Json]: ...
    def read_image_slice(self, sample: str, z: int, downsample: int = 1) -> np.ndarray: ...
    def backup(self, dest: str) -> dict[str, Json]: ...
    def add_model(self, dir: str) -> dict[str, Json]: ...
    def models(self) -> list[dict[str, Json]]: ...
    def spots(self, sample: str, image: str | None = None) -> dict[str, Any]: ...
    # Ingest. `args`: sample, model, overlap, min_tissue, tissue, intensity_range, batch,
    # device, threads, progress (a callable (done, total, stored) or None), quantization.
    def ingest_volume(
        self,
        args: dict[str, Any],
        path: str | None = None,
        data: npt.NDArray[np.uint8 | np.uint16 | np.float32] | None = None,
        um_per_voxel: tuple[float, float, float] | None = None,
        level: int | None = None,
    ) -> dict[str, Json]: ...
    def ingest_sections(
        self,
        args: dict[str, Any],
        spacing_um: float,
        um_per_px: float | None = None,
        images: list[str] | None = None,
        stack: npt.NDArray[Any] | None = None,
        transforms: str | None = None,
        level: int | None = None,
        stain_reference: str | None = None,
    ) -> dict[str, Json]: ...
    def ingest_image(
        self,
        args: dict[str, Any],
        um_per_px: float | None = None,
        path: str | None = None,
        data: npt.NDArray[Any] | None = None,
        level: int | None = None,
        stain_reference: str | None = None,
    ) -> dict[str, Json]: ...
    def ingest_hest(
        self,
        args: dict[str, Any],
        root: str,
        id: str | None = None,  # noqa: A002 - HEST's word
        level: int | None = None,
        layer: str | None = None,
        raw: bool = False,
        min_genes: int = 25,
        max_mito: float = 0.2,
    ) -> dict[str, Json]: ...
    # `options`: sample, model, min_genes, max_mito, smooth_k, hvg, top, affine, z,
    # batch, device, threads.
    def ingest_spots_file(
        self,
        options: dict[str, Any],
        path: str,
        format: str | None = None,
        positions: str | None = None,
        layer: str | None = None,
        raw: bool = False,
        spatial_key: str | None = None,
        library_id: str | None = None,
    ) -> dict[str, Json]: ...
    def ingest_spots_arrays(
        self,
        options: dict[str, Any],
        name: str,
        ids: list[str],
        genes: list[str],
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int64],
        data: npt.NDArray[np.float64],
        pixel: npt.NDArray[np.float64],
        array_xy: npt.NDArray[np.float64] | None = None,
        z: npt.NDArray[np.float64] | None = None,
        spot_diameter_px: float | None = None,
    ) -> dict[str, Json]: ...
    def query_genes(
        self,
        genes: list[str],
        spots_from: list[str] | None = None,
        min_pcc: float = 0.5,
        percentile: float = 75.0,
        min_fraction: float = 0.5,
        samples: list[str] = ...,
        exclude: list[str] = ...,
        model: str | None = None,
        threshold_percentile: float = 90.0,
        target: str = "3d",
    ) -> QueryResult: ...
    def query_profile(
        self,
        values: list[tuple[str, float]] | None = None,
        markers: list[str] | None = None,
        counts: bool = False,
        samples: list[str] = ...,
        exclude: list[str] = ...,
        model: str | None = None,
        threshold_percentile: float = 90.0,
        target: str = "3d",
    ) -> QueryResult: ...
    def query_patch(
        self,
        sample: str | None = None,
        at: tuple[int, int, int] | None = None,
        image: str | None = None,
        top: int = 10,
        within: list[str] = ...,
        exclude_self: bool = False,
        model: str | None = None,
        exact: bool = False,
        target: str = "3d",
        vector: list[float] | None = None,
    ) -> dict[str, Json]: ...
    def predict(
        self,
        sample: str,
        knn: int | None = None,
        reference: list[str] = ...,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: list[float] | None = None,
        readout: str | None = None,
    ) -> dict[str, Any]: ...
    def fit_readout(
        self,
        name: str,
        sample: str,
        reference: list[str],
        alpha: float | None = None,
        context_um: list[float] | None = None,
        per_sample: bool = True,
        anchored: bool = False,
        replace: bool = False,
    ) -> dict[str, Json]: ...
    def readouts(self) -> list[dict[str, Json]]: ...
    def domains(
        self,
        sample: str,
        k: int = 5,
        seed: int = 0,
        restarts: int = 10,
        max_iter: int = 300,
        segmentation: str | None = None,
        downsample: int = 1,
    ) -> dict[str, Any]: ...
    def export_spatialdata(
        self,
        sample: str,
        out: str,
        genes: list[str] = ...,
        query: QueryResult | None = None,
        downsample: int | None = None,
        knn: int | None = None,
        reference: list[str] = ...,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: list[float] | None = None,
        readout: str | None = None,
    ) -> dict[str, Json]: ...
    def evaluate(
        self,
        sample: str,
        spots: str | None = None,
        genes: list[str] = ...,
        markers: list[str] = ...,
        smoothed: bool = False,
        segmentation: str | None = None,
        knn: int | None = None,
        reference: list[str] = ...,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: list[float] | None = None,
        allow_in_sample: bool = False,
        readout: str | None = None,
    ) -> dict[str, Json]: ...
    def import_vectors(
        self,
        collection: str,
        vectors: npt.NDArray[np.float32],
        metric: str = "l2",
        batch_size: int = 10000,
        sample: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        quantization: str | None = None,
    ) -> dict[str, Json]: ...
    def import_vectors_file(
        self,
        collection: str,
        path: str,
        metric: str = "l2",
        batch_size: int = 10000,
        sample: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        column: str = "vector",
        quantization: str | None = None,
    ) -> dict[str, Json]: ...
    # Archives (vortexdb.archive): a shard's spot pool as bytes, and a query embedding
    # scored like a molecular query's.
    def spot_pool(self, model: str | None = None, samples: list[str] | None = None) -> bytes: ...
    def query_embedding(
        self,
        embedding: list[float],
        samples: list[str] = ...,
        exclude: list[str] = ...,
        model: str | None = None,
        threshold_percentile: float = 90.0,
        target: str = "3d",
    ) -> QueryResult: ...
    def search(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        k: int = 10,
        ef: int | None = None,
        exact: bool = False,
        samples: list[str] | None = None,
        exclude: list[str] = ...,
        region: str | None = None,
        rescore: int = 0,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...

class QueryResult:
    """A molecular or profile query's result, held by the Rust library."""

    def summary(self, top: int = 10) -> dict[str, Json]: ...
    def ranked(self) -> dict[str, Any]: ...
    def heatmap(self, store: Store, sample: str, downsample: int | None = None) -> npt.NDArray[np.float32]: ...
    def embedding(self) -> npt.NDArray[np.float32]: ...
    def spots(self) -> list[tuple[str, str]]: ...
    def triage_at(self, threshold: float) -> list[dict[str, Json]]: ...
    def scores(self) -> npt.NDArray[np.float32]: ...
    def write(
        self,
        dir: str,
        store: Store,
        top: int = 10,
        downsample: int | None = None,
        slices: int = 3,
        ome_zarr: bool = False,
    ) -> list[str]: ...

def create(path: str) -> Store: ...
def open(path: str, read_only: bool = False) -> Store: ...
def prefer_runtime_library(path: str) -> bool: ...
def gene_profile(
    pools: list[bytes],
    model: str,
    genes: list[str],
    min_pcc: float = 0.5,
    percentile: float = 75.0,
    min_fraction: float = 0.5,
) -> dict[str, Any]: ...
def arg_rules() -> list[dict[str, Json]]: ...
def check(path: str, scratch: str | None = None) -> dict[str, Json]: ...
def repair(path: str, dest: str, scratch: str | None = None) -> dict[str, Json]: ...
def loaded_runtime_library() -> str | None: ...
def phantom(
    out: str, seed: int = 7, shape: tuple[int, int, int] = (32, 160, 160), oblique: int = 0
) -> dict[str, Json]: ...
def register_sections(
    images: list[str],
    out: str,
    reference: int | None,
    motion: str,
    max_side: int,
    direct: bool,
    min_score: float,
    min_overlap: float,
    nonrigid: bool,
) -> dict[str, Json]: ...
def register_section_to_volume(
    volume: str, image: str, out: str, um_per_px: float, um_per_voxel: float, max_tilt: float, min_score: float
) -> dict[str, Json]: ...
