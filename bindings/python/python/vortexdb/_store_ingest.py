"""The store's ingest methods (volumes, sections, images, HEST samples, spots), mixed
into :class:`vortexdb.Store`: one method per library call."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._anndata import spots_from_anndata
from ._progress import ingest_progress
from ._results import spots_anndata

PathLike = str | os.PathLike[str]


def _triple(v: Sequence[float] | float | None) -> tuple[float, float, float] | None:
    """(z, y, x) from three numbers or one."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    z, y, x = (float(a) for a in v)
    return (z, y, x)


def _volume_arg(v: Any) -> dict:
    """A path or an array, as the native call takes it."""
    if isinstance(v, (str, os.PathLike)):
        return {"path": os.fspath(v)}
    return {"data": np.asarray(v)}


class IngestMethods:
    """What :class:`vortexdb.Store` can ingest (its ``_s`` is the native store)."""

    _s: Any

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
