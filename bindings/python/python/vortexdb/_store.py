"""The store: one method per library call, with Pythonic arguments and results."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import _native
from ._results import Domains, QueryResult, predictions_anndata
from ._store_ingest import IngestMethods

PathLike = str | os.PathLike[str]


def create(path: PathLike) -> Store:
    """Create a store in the new directory ``path``."""
    return Store(_native.create(os.fspath(path)))


def open(path: PathLike, read_only: bool = False) -> Store:  # noqa: A001 - the API's name
    """Open the store at ``path``; ``read_only`` takes no lock and refuses writes."""
    return Store(_native.open(os.fspath(path), read_only))


def phantom(out: PathLike, seed: int = 7, shape: tuple[int, int, int] = (32, 160, 160), oblique: int = 0) -> dict:
    """Generate the synthetic tissue phantom (volume, H&E planes, spots, labels) in
    ``out``; returns the paths written. Seed 2 tuned the default model: use another
    seed for held-out figures. ``oblique``: also that many H&E sections on random
    oblique planes with their spots, the planes recorded in ``phantom.json``."""
    z, y, x = (int(v) for v in shape)
    return _native.phantom(os.fspath(out), seed, (z, y, x), int(oblique))


def register_sections(
    images: Sequence[PathLike],
    out: PathLike,
    *,
    reference: int | None = None,
    motion: str = "similarity",
    max_side: int = 1024,
    direct: bool = False,
    min_score: float = 0.3,
    min_overlap: float = 0.8,
    nonrigid: bool = False,
) -> dict:
    """Register serial section images (stacking order) from the images alone, as
    ``vortexdb register sections``: writes the transforms file ``out`` (which
    ``Store.ingest_sections(transforms=...)`` reads) and a QC overlay per pair beside
    it; returns the file's content (``"pairs"``: score, overlap, rotation per pair).
    ``nonrigid`` adds a smooth displacement field per section after its affine map
    (``"fields"``), kept where it raises the pair's score. Raises
    ``RegistrationFailed`` when a pair scores below the minimum."""
    return _native.register_sections(
        [os.fspath(p) for p in images],
        os.fspath(out),
        reference,
        motion,
        int(max_side),
        bool(direct),
        float(min_score),
        float(min_overlap),
        bool(nonrigid),
    )


def register_section_to_volume(
    volume: PathLike,
    image: PathLike,
    out: PathLike,
    *,
    um_per_px: float,
    um_per_voxel: float,
    max_tilt: float = 10.0,
    min_score: float = 0.3,
) -> dict:
    """Find the plane of ``volume`` that the section ``image`` was cut from (depth,
    tilt, in-plane rotation, translation, scale), as ``vortexdb register
    section-to-volume``: writes the plane file ``out`` (``Store.ingest_spots(plane=...)``
    reads it) and returns its content. Raises ``RegistrationFailed`` when no plane
    scores above ``min_score``."""
    return _native.register_section_to_volume(
        os.fspath(volume),
        os.fspath(image),
        os.fspath(out),
        float(um_per_px),
        float(um_per_voxel),
        float(max_tilt),
        float(min_score),
    )


def check(path: PathLike, scratch: PathLike | None = None) -> dict:
    """Verify the store at ``path`` without writing to it or taking its lock, as
    ``vortexdb check``: ``"damage"`` lists every finding (empty: intact)."""
    return _native.check(os.fspath(path), None if scratch is None else os.fspath(scratch))


def repair(path: PathLike, dest: PathLike, scratch: PathLike | None = None) -> dict:
    """Write a repaired copy of the store at ``path`` to ``dest`` (``path`` is not
    written), as ``vortexdb repair``: ``"skipped"`` lists what was lost."""
    s = None if scratch is None else os.fspath(scratch)
    return _native.repair(os.fspath(path), os.fspath(dest), s)


def _names(x: str | Iterable[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def _scales(x: Iterable[float] | None) -> list[float] | None:
    """Context scales as the native call takes them (None: chosen by the store)."""
    return None if x is None else [float(v) for v in x]


class Store(IngestMethods):
    """A vortexdb store (a directory). Use as a context manager to release it."""

    def __init__(self, native: _native.Store):
        self._s = native

    # -- life cycle ---------------------------------------------------------------
    @property
    def path(self) -> str:
        """The store directory."""
        return self._s.path

    @property
    def read_only(self) -> bool:
        """True when opened read-only."""
        return self._s.read_only

    def close(self) -> None:
        """Release the store and its lock; later calls raise ``errors.StoreClosed``."""
        self._s.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self):
        """A store pickles as its path and mode (the unpickled handle opens the store
        again, e.g. in a Ray task); a writable one then needs the writer's lock."""
        return (open, (self.path, self.read_only))

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"vortexdb.Store({self.path!r}, {mode})"

    def info(self) -> dict:
        """Collections, models, samples and spot sets (``vortexdb info --json``)."""
        return self._s.info()

    def read_image_slice(self, sample: str, z: int, downsample: int = 1) -> np.ndarray:
        """Slice ``z`` of the image files ``sample`` was ingested from, found where the
        store recorded them (``info()["samples"][i]["images"]``): serial sections stacked
        and registered with the recorded transforms as the ingest did, or the one image;
        uint8 (rows, columns, channels), averaged over ``downsample`` x ``downsample``
        pixel blocks. Raises ``NothingSelected`` for a sample that records no image
        files (a volume: open its ``source``; an array)."""
        return self._s.read_image_slice(sample, int(z), int(downsample))

    def backup(self, dest: PathLike) -> dict:
        """A consistent, verified copy of the store at ``dest`` (a new directory outside
        it; works beside a writer), as ``vortexdb backup``: what cannot be read is left
        out and listed under ``"skipped"`` (``"complete"`` is then False)."""
        return self._s.backup(os.fspath(dest))

    # -- models -------------------------------------------------------------------
    def add_model(self, dir_or_default: PathLike = "default") -> dict:
        """Register a model directory, or the built-in model with ``"default"``."""
        return self._s.add_model(os.fspath(dir_or_default))

    def models(self) -> list[dict]:
        """The registered models (name, files, manifest)."""
        return self._s.models()

    # -- queries ------------------------------------------------------------------
    def query_genes(
        self,
        genes: str | Iterable[str],
        *,
        sample: str | Iterable[str] | None = None,
        spots_from: str | Iterable[str] | None = None,
        min_pcc: float = 0.5,
        percentile: float = 75.0,
        min_fraction: float = 0.5,
        exclude: str | Iterable[str] | None = None,
        model: str | None = None,
        threshold_percentile: float = 90.0,
        top: int = 10,
        downsample: int | None = None,
        target: str = "3d",
    ) -> QueryResult:
        """Zero-shot molecular query: the spots high in ``genes`` (and genes correlated
        with them, PCC >= ``min_pcc``) -> their mean embedding -> the similarity of
        every 3D patch of ``sample`` (default: all; ``target="2d"``: every patch of the
        images and whole slides from ``ingest_image``). See :class:`QueryResult`."""
        r = self._s.query_genes(
            _names(genes),
            spots_from=_names(spots_from) or None,
            min_pcc=float(min_pcc),
            percentile=float(percentile),
            min_fraction=float(min_fraction),
            samples=_names(sample),
            exclude=_names(exclude),
            model=model,
            threshold_percentile=float(threshold_percentile),
            target=target,
        )
        return QueryResult(r, self, top=top, downsample=downsample)

    def query_profile(
        self,
        values: dict[str, float] | None = None,
        *,
        markers: str | Iterable[str] | None = None,
        counts: bool = False,
        sample: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        model: str | None = None,
        threshold_percentile: float = 90.0,
        top: int = 10,
        downsample: int | None = None,
        target: str = "3d",
    ) -> QueryResult:
        """Query by an expression profile (gene -> value, normalised log1p unless
        ``counts``) or by marker genes set high; ``target`` as in :meth:`query_genes`."""
        r = self._s.query_profile(
            values=None if values is None else [(str(g), float(v)) for g, v in values.items()],
            markers=None if markers is None else _names(markers),
            counts=counts,
            samples=_names(sample),
            exclude=_names(exclude),
            model=model,
            threshold_percentile=float(threshold_percentile),
            target=target,
        )
        return QueryResult(r, self, top=top, downsample=downsample)

    def query_patch(
        self,
        sample: str | None = None,
        at: Sequence[int] | None = None,
        *,
        image: PathLike | None = None,
        top: int = 10,
        within: str | Iterable[str] | None = None,
        exclude_self: bool = False,
        model: str | None = None,
        exact: bool = False,
        target: str = "3d",
    ):
        """The patches most similar to the stored patch of ``sample`` at origin ``at``
        (z, y, x), or to an image file; a DataFrame (rank order)."""
        import pandas as pd

        r = self._s.query_patch(
            sample=sample,
            at=None if at is None else (int(at[0]), int(at[1]), int(at[2])),
            image=None if image is None else os.fspath(image),
            top=int(top),
            within=_names(within),
            exclude_self=exclude_self,
            model=model,
            exact=exact,
            target=target,
        )
        df = pd.DataFrame(r["hits"])
        df.attrs["query"] = r["query"]
        return df

    # -- analysis -----------------------------------------------------------------
    def predict(
        self,
        sample: str,
        *,
        knn: int | None = None,
        reference: str | Iterable[str] | None = None,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: Iterable[float] | None = None,
        readout: str | None = None,
    ):
        """Predicted expression of every patch of ``sample`` as AnnData: obs = patches
        (sample, z, y, x in model voxels, tissue), var = predicted genes, X = float32
        predictions (no copy), ``obsm["hidden"]`` = the predictor's hidden
        representation. ``knn`` + ``reference`` use the k-nearest-spots baseline;
        ``ridge=True`` + ``reference`` the ridge readout of the stored features fitted
        on those spots (measured on this sample; ``alpha`` the penalty and
        ``context_um`` the spatial context scales in micrometres, ``[]`` for none, both
        chosen by leave-one-reference-out cross-validation by default); the fit is in
        ``uns["vortexdb"]["ridge"]``. ``readout``: a readout stored with
        :meth:`fit_readout` (fitted once, on this sample's spots or another's)."""
        return predictions_anndata(
            self._s.predict(
                sample,
                knn=knn,
                reference=_names(reference),
                ridge=ridge,
                alpha=alpha,
                context_um=_scales(context_um),
                readout=readout,
            )
        )

    def domains(
        self,
        sample: str,
        k: int = 5,
        seed: int = 0,
        *,
        restarts: int = 10,
        max_iter: int = 300,
        segmentation: PathLike | None = None,
        downsample: int = 1,
    ) -> Domains:
        """k-means spatial domains of ``sample`` (stored in the store, as the CLI does);
        ``segmentation`` (an NPY label volume) adds the ARI against it."""
        d = self._s.domains(
            sample,
            k=int(k),
            seed=int(seed),
            restarts=int(restarts),
            max_iter=int(max_iter),
            segmentation=None if segmentation is None else os.fspath(segmentation),
            downsample=int(downsample),
        )
        return Domains.from_native(d)

    def export_spatialdata(
        self,
        sample: str,
        out: PathLike,
        *,
        genes: str | Iterable[str] | None = None,
        query: QueryResult | str | Iterable[str] | None = None,
        downsample: int | None = None,
        knn: int | None = None,
        reference: str | Iterable[str] | None = None,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: Iterable[float] | None = None,
        readout: str | None = None,
    ) -> dict:
        """Write ``sample`` as a SpatialData Zarr store at ``out`` (what ``vortexdb
        export`` writes; ``spatialdata.read_zarr(out)`` opens it): images ``volume``,
        ``heatmap`` (of ``query``: a :class:`QueryResult` or genes for
        :meth:`query_genes` over this sample) and ``predicted`` (one channel per gene
        of ``genes``); labels ``domains`` (the stored ones, from :meth:`domains`);
        points ``patches`` and ``spots``; tables ``predictions`` and
        ``spot_expression``. Returns what was written and what was left out."""
        if query is not None and not isinstance(query, QueryResult):
            query = self.query_genes(query, sample=sample)
        return self._s.export_spatialdata(
            sample,
            os.fspath(out),
            genes=_names(genes),
            query=None if query is None else query._q,
            downsample=downsample,
            knn=knn,
            reference=_names(reference),
            ridge=ridge,
            alpha=alpha,
            context_um=_scales(context_um),
            readout=readout,
        )

    def evaluate(
        self,
        sample: str,
        *,
        spots: str | None = None,
        genes: str | Iterable[str] | None = None,
        markers: str | Iterable[str] | None = None,
        smoothed: bool = False,
        segmentation: PathLike | None = None,
        knn: int | None = None,
        reference: str | Iterable[str] | None = None,
        ridge: bool = False,
        alpha: float | None = None,
        context_um: Iterable[float] | None = None,
        allow_in_sample: bool = False,
        readout: str | None = None,
    ) -> dict:
        """Predicted against measured expression at the spots of ``spots`` (default:
        the sample's): the numbers of ``vortexdb eval --json`` (PCC, SSIM, Moran's I,
        ...), and under ``"ridge"`` how the ridge readout was fitted.
        ``pandas.DataFrame(result["genes"])`` gives the per-gene table. Scoring spots
        that are also the ``reference`` is refused unless ``allow_in_sample``, and then
        marked ``"in_sample": True``."""
        return self._s.evaluate(
            sample,
            spots=spots,
            genes=_names(genes),
            markers=_names(markers),
            smoothed=smoothed,
            segmentation=None if segmentation is None else os.fspath(segmentation),
            knn=knn,
            reference=_names(reference),
            ridge=ridge,
            alpha=alpha,
            context_um=_scales(context_um),
            allow_in_sample=allow_in_sample,
            readout=readout,
        )

    def fit_readout(
        self,
        name: str,
        sample: str,
        reference: str | Iterable[str],
        *,
        alpha: float | None = None,
        context_um: Iterable[float] | None = None,
        per_sample: bool = True,
        anchored: bool = False,
        replace: bool = False,
    ) -> dict:
        """Fit the ridge readout on the ``reference`` spots of ``sample`` and store it
        under ``name`` next to the sample's model (as ``vortexdb readout fit``);
        ``predict``, ``evaluate`` and ``export_spatialdata`` then apply it with
        ``readout=name`` to any sample of that model, spots or not. ``per_sample``
        standardises every feature over its own sample's patches at both ends;
        ``anchored`` fits what the predictor head leaves (helps with few reference
        spots). An existing name is refused unless ``replace``. Returns the fit
        (without weights)."""
        return self._s.fit_readout(
            name,
            sample,
            _names(reference),
            alpha=alpha,
            context_um=_scales(context_um),
            per_sample=bool(per_sample),
            anchored=bool(anchored),
            replace=bool(replace),
        )

    def readouts(self) -> list[dict]:
        """The stored readouts: name, model, reference, genes, penalty, context, CV PCC."""
        return self._s.readouts()

    # -- raw vectors --------------------------------------------------------------
    def import_vectors(
        self,
        collection: str,
        vectors: Any,
        *,
        metric: str = "l2",
        batch_size: int = 10_000,
        sample: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        quantization: str | None = None,
    ) -> dict:
        """Import an (N, D) float32 array (copied once when C-contiguous float32,
        converted otherwise) or an NPY/Parquet file into a raw collection, created
        with ``metric`` and ``quantization`` (what its graph holds in RAM: ``"f32"``,
        ``"int8"`` or ``"binary"``) when missing. Resumable like the CLI's import."""
        if isinstance(vectors, (str, os.PathLike)):
            return self._s.import_vectors_file(
                collection,
                os.fspath(vectors),
                metric=metric,
                batch_size=batch_size,
                sample=sample,
                m=m,
                ef_construction=ef_construction,
                quantization=quantization,
            )
        a = np.ascontiguousarray(vectors, dtype=np.float32)
        return self._s.import_vectors(
            collection,
            a,
            metric=metric,
            batch_size=batch_size,
            sample=sample,
            m=m,
            ef_construction=ef_construction,
            quantization=quantization,
        )

    def search(
        self,
        collection: str,
        queries: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        exact: bool = False,
        filter: dict | None = None,  # noqa: A002
        rescore: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each row of ``queries`` ((N, D) or (D,),
        copied once while the GIL is held): ``(ids, distances)``, int64 and
        float32 arrays of shape (N, k), padded with -1 / NaN. ``filter`` may hold
        ``samples``, ``exclude`` (sample ids) and ``region`` (``"z0:z1,y0:y1,x0:x1"``).
        ``rescore``: candidates per neighbour rescored on the f32 vectors for an int8
        or binary collection (0: the default, 4 and 16)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        f = dict(filter or {})
        unknown = set(f) - {"samples", "exclude", "region"}
        if unknown:
            from .errors import InvalidArgument

            raise InvalidArgument(f"filter: unknown key(s) {sorted(unknown)}; use samples, exclude, region")
        samples = f.get("samples")
        return self._s.search(
            collection,
            q,
            k=int(k),
            ef=None if ef is None else int(ef),
            exact=exact,
            samples=None if samples is None else _names(samples),
            exclude=_names(f.get("exclude")),
            region=f.get("region"),
            rescore=int(rescore),
        )
