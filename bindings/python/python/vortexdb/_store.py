"""The store: one method per library call, with Pythonic arguments and results."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import _native
from ._anndata import spots_from_anndata
from ._progress import ingest_progress
from ._results import Domains, QueryResult, predictions_anndata, spots_anndata

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


def _triple(v: Sequence[float] | float | None) -> tuple[float, float, float] | None:
    """(z, y, x) from three numbers or one."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    z, y, x = (float(a) for a in v)
    return (z, y, x)


def _names(x: str | Iterable[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def _scales(x: Iterable[float] | None) -> list[float] | None:
    """Context scales as the native call takes them (None: chosen by the store)."""
    return None if x is None else [float(v) for v in x]


def _volume_arg(v: Any) -> dict:
    """A path or an array, as the native call takes it."""
    if isinstance(v, (str, os.PathLike)):
        return {"path": os.fspath(v)}
    return {"data": np.asarray(v)}


class Store:
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

    # -- ingest -------------------------------------------------------------------
    @staticmethod
    def _ingest_args(
        sample: str, model, overlap, min_tissue, tissue, intensity_range, batch, device, threads, progress, quantization
    ) -> dict:
        return {
            "sample": sample,
            "model": model,
            "overlap": float(overlap),
            "min_tissue": float(min_tissue),
            "tissue": tissue,
            "intensity_range": None if intensity_range is None else tuple(intensity_range),
            "batch": int(batch),
            "device": device,
            "threads": int(threads),
            "progress": progress,
            "quantization": quantization,
        }

    def ingest_volume(
        self,
        sample: str,
        volume: Any,
        *,
        um_per_voxel: Sequence[float] | float | None = None,
        model: str | None = None,
        overlap: float = 0.75,
        min_tissue: float = 0.25,
        tissue: str | None = None,
        intensity_range: tuple[float, float] | None = None,
        batch: int = 64,
        device: str = "cpu",
        threads: int = 0,
        progress: bool | Callable[[int, int, int], None] = True,
        quantization: str | None = None,
        level: int | None = None,
    ) -> dict:
        """Embed every tissue patch of a 3D volume: a path (NPY, TIFF, an OME-Zarr image,
        slice directory) or a C-contiguous array (Z, Y, X) or (Z, Y, X, C) of uint8,
        uint16 or float32 (copied before the work starts, so Python code may keep using
        it). ``um_per_voxel`` is the full-resolution voxel size, (z, y, x) or one
        number; ``None`` takes the OME-Zarr metadata's, else the model's. An OME-Zarr
        image is read at ``level`` (0 = full resolution), by default the level whose
        voxel size is nearest the model's; one whose axes name no unit needs
        ``um_per_voxel``. Resumable: after Ctrl-C (``errors.Interrupted``)
        the same call continues. ``quantization`` (``"f32"``, ``"int8"``, ``"binary"``)
        is what the model's collection holds in RAM when this call creates it.
        Returns the ingest report."""
        with ingest_progress(progress, sample) as cb:
            args = self._ingest_args(
                sample, model, overlap, min_tissue, tissue, intensity_range, batch, device, threads, cb, quantization
            )
            return self._s.ingest_volume(args, um_per_voxel=_triple(um_per_voxel), level=level, **_volume_arg(volume))

    def ingest_sections(
        self,
        sample: str,
        images: Sequence[PathLike] | np.ndarray,
        *,
        spacing_um: float,
        um_per_px: float | None = None,
        level: int | None = None,
        transforms: PathLike | None = None,
        stain_reference: PathLike | None = None,
        model: str | None = None,
        overlap: float = 0.75,
        min_tissue: float = 0.25,
        tissue: str | None = None,
        intensity_range: tuple[float, float] | None = None,
        batch: int = 64,
        device: str = "cpu",
        threads: int = 0,
        progress: bool | Callable[[int, int, int], None] = True,
        quantization: str | None = None,
    ) -> dict:
        """Stack serial H&E sections into a 2.5D volume and embed it: image paths (with
        an optional ``transforms`` JSON registering them) or arrays of one shape, a
        list of (Y, X[, C]) images or one (sections, Y, X[, C]) stack (a list is
        stacked, i.e. copied, once). Pyramidal TIFFs (OME-TIFF, SVS) are read at ``level``
        or the level nearest the model's pixel size, with the pixel size they record
        unless ``um_per_px`` (the full-resolution one) is given; arrays and PNG/JPEG
        need ``um_per_px``. ``stain_reference``: an H&E image whose stain every section
        is normalised to before embedding (Macenko, per section), as
        ``--stain-reference``."""
        with ingest_progress(progress, sample) as cb:
            args = self._ingest_args(
                sample, model, overlap, min_tissue, tissue, intensity_range, batch, device, threads, cb, quantization
            )
            kw: dict[str, Any] = {
                "spacing_um": float(spacing_um),
                "um_per_px": None if um_per_px is None else float(um_per_px),
                "level": level,
                "stain_reference": None if stain_reference is None else os.fspath(stain_reference),
            }
            if isinstance(images, np.ndarray):
                kw["stack"] = images
            elif all(isinstance(i, (str, os.PathLike)) for i in images):
                kw["images"] = [os.fspath(i) for i in images]
                kw["transforms"] = None if transforms is None else os.fspath(transforms)
            else:
                kw["stack"] = np.ascontiguousarray(np.stack([np.asarray(i) for i in images]))
            if transforms is not None and "stack" in kw:
                kw["transforms"] = os.fspath(transforms)
            return self._s.ingest_sections(args, **kw)

    def ingest_image(
        self,
        sample: str,
        image: PathLike | np.ndarray,
        *,
        um_per_px: float | None = None,
        model: str | None = None,
        overlap: float = 0.75,
        min_tissue: float = 0.25,
        tissue: str | None = None,
        intensity_range: tuple[float, float] | None = None,
        batch: int = 64,
        device: str = "cpu",
        threads: int = 0,
        progress: bool | Callable[[int, int, int], None] = True,
        quantization: str | None = None,
        level: int | None = None,
        stain_reference: PathLike | None = None,
    ) -> dict:
        """Embed one H&E image (a path or a (Y, X[, C]) array) through the 2D encoder.
        A TIFF, also a pyramidal whole-slide OME-TIFF / SVS, is read at ``level`` (by
        default the level nearest the model's pixel size) with the file's pixel size
        when ``um_per_px`` is ``None``; PNG, JPEG and arrays need ``um_per_px``.
        ``stain_reference``: an H&E image whose stain the image is normalised to before
        embedding (Macenko), as ``--stain-reference``."""
        with ingest_progress(progress, sample) as cb:
            args = self._ingest_args(
                sample, model, overlap, min_tissue, tissue, intensity_range, batch, device, threads, cb, quantization
            )
            um = None if um_per_px is None else float(um_per_px)
            ref = None if stain_reference is None else os.fspath(stain_reference)
            return self._s.ingest_image(args, um, level=level, stain_reference=ref, **_volume_arg(image))

    def ingest_hest(
        self,
        sample: str,
        root: PathLike,
        *,
        hest_id: str | None = None,
        level: int | None = None,
        layer: str | None = None,
        raw: bool = False,
        min_genes: int = 25,
        max_mito: float = 0.2,
        model: str | None = None,
        overlap: float = 0.75,
        min_tissue: float = 0.25,
        batch: int = 64,
        device: str = "cpu",
        threads: int = 0,
        progress: bool | Callable[[int, int, int], None] = True,
        quantization: str | None = None,
    ) -> dict:
        """A HEST-1k sample in one call, as ``vortexdb ingest hest``: the slide
        ``root/wsis/<id>.tif`` at the pixel size of ``root/metadata/<id>.json`` through the
        2D encoder, then the spots ``root/st/<id>.h5ad`` into the same sample (``hest_id``
        defaults to ``sample``). Returns ``{"hest", "image", "spots"}`` reports."""
        with ingest_progress(progress, sample) as cb:
            args = self._ingest_args(
                sample, model, overlap, min_tissue, None, None, batch, device, threads, cb, quantization
            )
            return self._s.ingest_hest(
                args,
                os.fspath(root),
                id=hest_id,
                level=level,
                layer=layer,
                raw=raw,
                min_genes=int(min_genes),
                max_mito=float(max_mito),
            )

    def ingest_spots(
        self,
        sample: str,
        data: Any,
        *,
        format: str | None = None,  # noqa: A002
        positions: PathLike | None = None,
        layer: str | None = None,
        raw: bool = False,
        spatial_key: str = "spatial",
        library_id: str | None = None,
        model: str | None = None,
        min_genes: int = 25,
        max_mito: float = 0.2,
        smooth_k: int = 10,
        hvg: int = 1200,
        top: int = 250,
        affine: Sequence[float] | None = None,
        z: float = 0.0,
        plane: PathLike | None = None,
        transforms: PathLike | None = None,
        section: int | None = None,
        batch: int = 256,
        device: str = "cpu",
        threads: int = 0,
    ) -> dict:
        """Ingest spot expression (``plane``: a plane file of
        :func:`register_section_to_volume`, placing a tilted section's spots in 3D instead
        of ``affine`` and ``z``; ``transforms`` + ``section``: a transforms file of
        :func:`register_sections` and the index of the spots' section in it, placing them
        in the registered stack's frame, its non-rigid field included): an AnnData
        object or ``.h5ad`` file (raw counts in
        ``.X``, ``.layers[layer]`` or, with ``raw``, ``.raw.X``, dense or sparse;
        positions in ``.obsm[spatial_key]`` (image pixels); array coordinates from
        ``obs["array_col"/"array_row"]`` and section indices from ``obs["z"]`` when
        present; the spot diameter from ``.uns["spatial"][library_id]["scalefactors"]``),
        or another path (her2st counts, Visium output, Parquet; ``format`` names the
        layout when the name does not). QC, normalisation, smoothing and the gene
        encoder run as for the CLI."""
        opts = {
            "sample": sample,
            "model": model,
            "min_genes": int(min_genes),
            "max_mito": float(max_mito),
            "smooth_k": int(smooth_k),
            "hvg": int(hvg),
            "top": int(top),
            "affine": None if affine is None else tuple(map(float, affine)),
            "z": float(z),
            "plane": None if plane is None else os.fspath(plane),
            "transforms": None if transforms is None else os.fspath(transforms),
            "section": None if section is None else int(section),
            "batch": int(batch),
            "device": device,
            "threads": int(threads),
        }
        if isinstance(data, (str, os.PathLike)):
            return self._s.ingest_spots_file(
                opts,
                os.fspath(data),
                format,
                None if positions is None else os.fspath(positions),
                layer=layer,
                raw=raw,
                spatial_key=spatial_key,
                library_id=library_id,
            )
        arrays = spots_from_anndata(data, layer=layer, raw=raw, spatial_key=spatial_key, library_id=library_id)
        return self._s.ingest_spots_arrays(opts, **arrays)

    def spots(self, sample: str, image: str | None = None):
        """The stored spots of ``sample`` as AnnData: obs = every spot with its
        positions and QC (``kept``), var = the model's gene panel, X = normalised
        log1p expression (NaN rows for spots QC removed), ``layers["smoothed"]``,
        ``obsm["spatial"]`` (image pixels). With ``image`` (a volume or section
        sample the spots lie in), ``obsm["image_embedding"]``: the mean stored
        embedding of its patches containing each spot, the frozen features of a
        linear probe (as ``vortexdb spots export --image``)."""
        return spots_anndata(self._s.spots(sample, image))

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
