"""What the viewer shows, as arrays and coordinate spaces: a sample's geometry (source
voxels and model voxels), its image data, and the neuroglancer layers built from the
library's answers (heatmaps, domains, spots, the patch grid, retrieved patches).

Coordinates: patch origins and heatmap voxels are model voxels (the model's voxel size,
``model_um``); the image and the spots are in the source's own voxels (``voxel_um``). A
model voxel ``i`` spans ``[i, i + 1) * model_um`` micrometres, a source voxel ``j``
``[j, j + 1) * voxel_um`` (what ``vortexdb query --out`` and the demo's overlays
assume), so every layer gets its own coordinate space in micrometres and neuroglancer
places them on one another.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

AXES = ["z", "y", "x"]
# Annotations live in the viewer state, which every change copies and sends: a few
# thousand boxes keep a change well under 100 ms.
MAX_GRID_BOXES = 4_000
# Heatmap voxels outside every patch (NaN in the library's heatmap) become this value:
# the shader draws nothing below -1.5 (similarities are cosines, in [-1, 1]).
OUTSIDE = -2.0

HEATMAP_SHADER = """#uicontrol invlerp normalized(range=[%(lo).6f, %(hi).6f])
#uicontrol float opacity slider(min=0, max=1, default=0.8)
void main() {
  float raw = getDataValue();
  if (raw < -1.5) { emitTransparent(); return; }
  float v = clamp(normalized(), 0.0, 1.0);
  vec3 c = vec3(clamp(3.0 * v, 0.0, 1.0), clamp(3.0 * v - 1.0, 0.0, 1.0), clamp(3.0 * v - 2.0, 0.0, 1.0));
  emitRGBA(vec4(c, opacity));
}
"""

GRAY_SHADER = """#uicontrol invlerp normalized(range=[%(lo).6g, %(hi).6g])
void main() { emitGrayscale(normalized()); }
"""

RGB_SHADER = """void main() {
  emitRGB(vec3(toNormalized(getDataValue(0)), toNormalized(getDataValue(1)), toNormalized(getDataValue(2))));
}
"""

SPOT_SHADER = """void main() {
  float v = clamp(prop_expression(), 0.0, 1.0);
  setColor(vec4(v, v, 1.0 - v, 1.0));
  setPointMarkerSize(12.0);
}
"""

RETRIEVED_SHADER = """void main() {
  if (prop_query() > 0.5) { setColor(vec4(1.0, 0.0, 1.0, 1.0)); } else { setColor(vec4(0.0, 1.0, 1.0, 1.0)); }
  setLineWidth(2.0);
}
"""


@dataclass
class SampleGeometry:
    """One sample of the store: its record, voxel sizes and where its image is."""

    id: str
    kind: str
    source: str
    model: str
    patches: int
    voxel_um: list[float]
    source_shape: list[int]
    model_um: list[float]
    patch: list[int]
    grid_shape: list[int]
    image: Any = field(default=None, repr=False)
    image_note: str = ""
    # Voxel size of ``image`` when it is not the source's (recorded sections read
    # averaged over pixel blocks).
    image_um: list[float] | None = None

    @property
    def target(self) -> str:
        """The query target whose heatmaps cover this sample."""
        return "2d" if self.kind == "2d" else "3d"

    def model_to_source(self, v: np.ndarray | list[float]) -> np.ndarray:
        """Model-voxel coordinates -> source-voxel coordinates (z, y, x)."""
        return np.asarray(v, float) * np.asarray(self.model_um) / np.asarray(self.voxel_um)

    def source_to_model(self, v: np.ndarray | list[float]) -> np.ndarray:
        """Source-voxel coordinates -> model-voxel coordinates (z, y, x)."""
        return np.asarray(v, float) * np.asarray(self.voxel_um) / np.asarray(self.model_um)

    def public(self) -> dict:
        """What the page shows about the sample."""
        return {
            "id": self.id,
            "kind": self.kind,
            "patches": self.patches,
            "source": self.source,
            "source_shape": self.source_shape,
            "voxel_um": self.voxel_um,
            "model_voxel_um": self.model_um,
            "image": self.image is not None,
            "image_note": self.image_note,
        }


def _resampled_len(n: int, scale: float) -> int:
    """The library's ``resampled_len``: the model-resolution length of an axis."""
    return n if abs(scale - 1.0) < 1e-9 else max(0, math.floor(n * scale))


def geometry(rec: dict, manifests: dict[str, dict]) -> SampleGeometry:
    """The geometry of the sample record ``rec`` (``Store.info()["samples"]``) under its
    model's manifest: model voxel size and patch size as the ingest used them."""
    man = manifests.get(rec["model"], {})
    voxel = [float(v) for v in rec["voxel_um"]]
    shape = [int(v) for v in rec["source_shape"]]
    if rec["kind"] == "2d":
        p = man.get("patch_2d") or man.get("patch") or {}
        um = float(p.get("um_per_px", voxel[1]))
        model_um = [voxel[0], um, um]
        size = p.get("size_px", [32, 32])
        patch = [1, int(size[0]), int(size[1])]
    else:
        p = man.get("patch") or {}
        um = float(p.get("um_per_px", voxel[1]))
        model_um = [float(p.get("z_um") or um), um, um]
        size = p.get("size_px", [32, 32])
        patch = [int(p.get("depth", 1)), int(size[0]), int(size[1])]
    grid = [_resampled_len(shape[a], voxel[a] / model_um[a]) for a in range(3)]
    return SampleGeometry(
        id=rec["id"],
        kind=rec["kind"],
        source=str(rec.get("source", "")),
        model=rec["model"],
        patches=int(rec.get("patches", 0)),
        voxel_um=voxel,
        source_shape=shape,
        model_um=model_um,
        patch=patch,
        grid_shape=grid,
    )


def _candidates(source: str, store_path: str) -> list[Path]:
    p = Path(source)
    if p.is_absolute():
        return [p]
    store = Path(store_path).resolve()
    return [Path.cwd() / p, store.parent / p, store / p]


def _read_image(path: Path) -> np.ndarray:
    """An image file as an array (Z, Y, X[, C]): NPY memory-mapped, TIFF through
    tifffile when installed (memory-mapped when uncompressed), PNG / JPEG through
    Pillow."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        a = np.load(path, mmap_mode="r")
    elif suffix in (".tif", ".tiff"):
        import tifffile

        try:  # uncompressed and contiguous: memory-mapped like an NPY
            a = tifffile.memmap(path, mode="r")
        except Exception:
            a = tifffile.imread(path)
    else:
        from PIL import Image

        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16") else im)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4) and suffix not in (".npy",)):
        a = a[None]
    return a


def stack_images(images: Any) -> np.ndarray:
    """Section images (paths or arrays of one size, or one array) as one (S, Y, X[, C])
    stack; smaller images are padded at their bottom and right."""
    if isinstance(images, np.ndarray):
        return images if images.ndim >= 3 else images[None]
    if isinstance(images, (str, os.PathLike)):
        return _read_image(Path(images))
    planes = [_read_image(Path(i))[0] if isinstance(i, (str, os.PathLike)) else np.asarray(i) for i in images]
    h = max(p.shape[0] for p in planes)
    w = max(p.shape[1] for p in planes)
    out = np.zeros((len(planes), h, w, *planes[0].shape[2:]), planes[0].dtype)
    for i, p in enumerate(planes):
        out[i, : p.shape[0], : p.shape[1]] = p
    return out


def attach_image(g: SampleGeometry, store_path: str, given: Any = None) -> None:
    """Find the image data of ``g``: ``given`` (paths or arrays from the caller), else
    the source its record names (absolute, or relative to the working directory, the
    store's parent or the store): an OME-Zarr directory is served as it is (its own
    pyramid), a file is read memory-mapped where it can be, and one of at least
    ``PYRAMID_MIN_VOXELS`` voxels gets a pyramid written once into the cache (when
    first shown). When none is readable, ``image_note`` says why and the viewer shows
    the patch grid only."""
    from . import _viewer_zarr as vz

    try:
        if given is not None:
            g.image = _check_shape(stack_images(given), g)
            return
        no_path = (
            f"sample '{g.id}' was ingested from {g.source}: the store does not record "
            "an image path (pass images={...} to vortexdb.view); showing the patch grid only"
        )
        if g.source.startswith("<"):
            g.image_note = no_path
            return
        for c in _candidates(g.source, store_path):
            if vz.is_zarr(c):
                g.image = vz.open_ome_zarr(c, g.source_shape, g.voxel_um)
                return
        if not Path(g.source).suffix:
            g.image_note = no_path
            return
        for c in _candidates(g.source, store_path):
            if c.is_file():
                a = _check_shape(_read_image(c), g)
                if math.prod(a.shape[:3]) >= vz.PYRAMID_MIN_VOXELS:
                    g.image = vz.PendingPyramid(a, c, g.voxel_um, vz.pyramid_cache_dir(store_path), g.id)
                else:
                    g.image = a
                return
        g.image_note = f"the image of sample '{g.id}' ({g.source}) is not reachable; showing the patch grid only"
    except Exception as e:  # an unreadable file must not stop the viewer
        g.image = None
        g.image_note = f"the image of sample '{g.id}' cannot be read ({e}); showing the patch grid only"


def _check_shape(a: np.ndarray, g: SampleGeometry) -> np.ndarray:
    if a.ndim == 4 and a.shape[-1] == 4:
        a = a[..., :3]
    if list(a.shape[:3]) != g.source_shape:
        raise ValueError(f"shape {list(a.shape[:3])} is not the recorded source shape {g.source_shape}")
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


# -- neuroglancer objects ---------------------------------------------------------------


def space(scales: list[float]) -> Any:
    """A (z, y, x) coordinate space in micrometres with these voxel sizes."""
    import neuroglancer

    return neuroglancer.CoordinateSpace(names=AXES, units="um", scales=[float(s) for s in scales])


def image_layer(g: SampleGeometry) -> Any:
    """The sample's image as an image layer (grayscale or RGB), multiscale: an OME-Zarr
    source or a large volume's pyramid through neuroglancer's Zarr reader (the pyramid
    written on first use), else a ``LocalVolume`` that neuroglancer downsamples on the
    fly."""
    import neuroglancer

    from . import _viewer_zarr as vz

    if isinstance(g.image, vz.PendingPyramid):
        g.image = g.image.build()
    a = g.image
    um = g.image_um or g.voxel_um
    if isinstance(a, vz.ZarrImage):
        src = vz.layer_source(g.id, a)
        if a.channels == 3:
            return neuroglancer.ImageLayer(source=src, shader=RGB_SHADER)
        lo, hi = a.window
        return neuroglancer.ImageLayer(source=src, shader=GRAY_SHADER % {"lo": lo, "hi": hi})
    if a.ndim == 4:
        dims = neuroglancer.CoordinateSpace(names=[*AXES, "c^"], units=["um", "um", "um", ""], scales=[*um, 1.0])
        vol = neuroglancer.LocalVolume(data=a, dimensions=dims, volume_type="image")
        return neuroglancer.ImageLayer(source=vol, shader=RGB_SHADER)
    if a.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    else:
        sample = np.asarray(a[:: max(1, a.shape[0] // 8)], dtype=np.float64)
        lo, hi = (float(v) for v in np.nanpercentile(sample, [1, 99]))
        hi = hi if hi > lo else lo + 1.0
    vol = neuroglancer.LocalVolume(data=a, dimensions=space(um), volume_type="image")
    return neuroglancer.ImageLayer(source=vol, shader=GRAY_SHADER % {"lo": lo, "hi": hi})


def heatmap_layer(g: SampleGeometry, heat: np.ndarray, downsample: int) -> Any:
    """A gene query's heatmap as an image layer: a brightness-ordered colormap over the
    10th-90th percentile of the covered voxels (the CLI's PNG range), transparent
    outside the patches."""
    import neuroglancer

    inside = np.isfinite(heat)
    finite = heat[inside]
    finite = finite[:: max(1, finite.size // 1_000_000)]  # the range from <= ~1M voxels
    lo, hi = (float(v) for v in np.percentile(finite, [10, 90])) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1e-3
    data = np.array(heat, dtype=np.float32)
    data[~inside] = OUTSIDE
    vol = neuroglancer.LocalVolume(
        data=data, dimensions=space([u * downsample for u in g.model_um]), volume_type="image"
    )
    return neuroglancer.ImageLayer(source=vol, shader=HEATMAP_SHADER % {"lo": lo, "hi": hi})


def domains_layer(g: SampleGeometry, labels: np.ndarray, k: int, downsample: int) -> Any:
    """k-means domains as a segmentation layer: label d + 1 for domain d, all k shown."""
    import neuroglancer

    vol = neuroglancer.LocalVolume(
        data=np.ascontiguousarray(labels, dtype=np.uint32),
        dimensions=space([u * downsample for u in g.model_um]),
        volume_type="segmentation",
    )
    return neuroglancer.SegmentationLayer(source=vol, segments=list(range(1, k + 1)), selected_alpha=0.45)


def spots_layer(g: SampleGeometry, spots: Any, gene: str | None) -> Any:
    """The measured spots (kept by QC) as points at their source-voxel positions,
    coloured blue -> yellow by ``gene``'s normalised expression when it is measured."""
    import neuroglancer

    obs = spots.obs
    kept = np.asarray(obs["kept"], bool)
    values = np.zeros(len(obs), np.float32)
    if gene is not None and gene in list(spots.var_names):
        col = np.asarray(spots[:, gene].X, np.float32).ravel()
        col = np.nan_to_num(col, nan=0.0)
        top = float(col[kept].max()) if kept.any() else 0.0
        values = col / top if top > 0 else col
    ann = [
        neuroglancer.PointAnnotation(
            id=f"spot-{i}",
            point=[float(obs["z"].iloc[i]), float(obs["y"].iloc[i]), float(obs["x"].iloc[i])],
            props=[float(values[i])],
            description=str(obs.index[i]),
        )
        for i in np.nonzero(kept)[0]
    ]
    return neuroglancer.LocalAnnotationLayer(
        dimensions=space(g.voxel_um),
        annotation_properties=[neuroglancer.AnnotationPropertySpec(id="expression", type="float32", default=0)],
        annotations=ann,
        shader=SPOT_SHADER,
    )


def grid_layer(g: SampleGeometry, origins: np.ndarray) -> tuple[Any, str]:
    """The stored patches of the sample as boxes in model voxels (at most
    ``MAX_GRID_BOXES``, evenly picked); returns the layer and a note when capped."""
    import neuroglancer

    note = ""
    if len(origins) > MAX_GRID_BOXES:
        pick = np.linspace(0, len(origins) - 1, MAX_GRID_BOXES).astype(int)
        note = f"patch grid: {MAX_GRID_BOXES} of {len(origins)} patches drawn"
        origins = origins[pick]
    size = np.asarray(g.patch, float)
    ann = [
        neuroglancer.AxisAlignedBoundingBoxAnnotation(
            id=f"patch-{i}", point_a=[float(v) for v in o], point_b=[float(v) for v in o + size]
        )
        for i, o in enumerate(origins.astype(float))
    ]
    layer = neuroglancer.LocalAnnotationLayer(
        dimensions=space(g.model_um), annotations=ann, annotation_color="#ffffff40"
    )
    return layer, note


def retrieved_layer(g: SampleGeometry, query_origin: list[int] | None, hits: list[dict]) -> Any:
    """The query patch (magenta) and the retrieved patches of this sample (cyan) as
    boxes in model voxels."""
    import neuroglancer

    size = np.asarray(g.patch, float)
    ann = []
    rows = ([(query_origin, 1.0, "query")] if query_origin is not None else []) + [
        (h["origin"], 0.0, f"hit {h['rank']}") for h in hits if h["sample"] == g.id
    ]
    for i, (o, is_query, name) in enumerate(rows):
        a = np.asarray(o, float)
        ann.append(
            neuroglancer.AxisAlignedBoundingBoxAnnotation(
                id=f"retrieved-{i}",
                point_a=[float(v) for v in a],
                point_b=[float(v) for v in a + size],
                props=[is_query],
                description=name,
            )
        )
    return neuroglancer.LocalAnnotationLayer(
        dimensions=space(g.model_um),
        annotation_properties=[neuroglancer.AnnotationPropertySpec(id="query", type="float32", default=0)],
        annotations=ann,
        shader=RETRIEVED_SHADER,
    )


def auto_downsample(shape: list[int], budget: int = 64 << 20) -> int:
    """The smallest downsampling keeping a volume of ``shape`` under ``budget`` voxels."""
    d = 1
    while math.prod(-(-n // d) for n in shape) > budget:
        d += 1
    return d


# Predicted-channel voxels without a patch (any value is a possible prediction).
NO_PATCH = -1e30

PREDICTED_SHADER = """#uicontrol invlerp normalized(range=[%(lo).6g, %(hi).6g])
#uicontrol float opacity slider(min=0, max=1, default=0.8)
void main() {
  float raw = getDataValue();
  if (raw < -1e29) { emitTransparent(); return; }
  float v = clamp(normalized(), 0.0, 1.0);
  vec3 c = mix(mix(vec3(0.27, 0.0, 0.33), vec3(0.13, 0.57, 0.55), clamp(2.0 * v, 0.0, 1.0)),
               vec3(0.99, 0.91, 0.14), clamp(2.0 * v - 1.0, 0.0, 1.0));
  emitRGBA(vec4(c, opacity));
}
"""


def patch_cells(origins: np.ndarray, patch: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each patch's own cell for painting one value per patch: the grid's step around
    the patch centre (the voxels nearer that patch's centre than any neighbour's), on
    a grid of ``unit`` model voxels. Returns (unit per axis, per patch the first cell
    and the cells it spans as a (N, 2, 3) array of [start, stop) in units). The step is
    read from the origins (the gcd of their differences), the patch size where a
    sample has one position along an axis."""
    o = np.asarray(origins, np.int64).reshape(-1, 3)
    unit = np.ones(3, np.int64)
    span = np.zeros((len(o), 2, 3), np.int64)
    for a in range(3):
        vals = np.unique(o[:, a])
        step = int(np.gcd.reduce(np.diff(vals))) if len(vals) > 1 else int(patch[a])
        step = max(1, min(step, int(patch[a])))
        off = max(0, (int(patch[a]) - step) // 2)
        u = math.gcd(step, off) if off else step
        unit[a] = u
        span[:, 0, a] = (o[:, a] + off) // u
        span[:, 1, a] = (o[:, a] + off + step) // u
    return unit, span


def paint_cells(
    shape: list[int], unit: np.ndarray, span: np.ndarray, values: np.ndarray, budget: int
) -> tuple[np.ndarray, int]:
    """A float32 volume (NaN where no patch is) holding ``values[i]`` over patch i's
    cell, at ``unit * f`` model voxels per voxel, ``f`` the smallest factor keeping it
    under ``budget`` voxels (a coarser volume keeps, per voxel, the patch whose cell
    starts there last). Returns the volume and ``f``."""
    f = 1
    while math.prod(-(-int(n) // (int(u) * f)) for n, u in zip(shape, unit, strict=True)) > budget:
        f += 1
    dims = [max(1, -(-int(n) // (int(u) * f))) for n, u in zip(shape, unit, strict=True)]
    out = np.full(dims, np.nan, np.float32)
    lo = span[:, 0, :] // f
    hi = np.maximum(-(-span[:, 1, :] // f), lo + 1)
    ext = hi - lo
    vals = np.asarray(values, np.float32)
    # Patches share one cell size, so one broadcast per offset inside the cell paints
    # them all (a handful of offsets: usually 1 or 8).
    for dz in range(int(ext[:, 0].max(initial=1))):
        for dy in range(int(ext[:, 1].max(initial=1))):
            for dx in range(int(ext[:, 2].max(initial=1))):
                d = np.array([dz, dy, dx])
                ok = np.all(d < ext, axis=1)
                idx = lo[ok] + d
                keep = np.all(idx < np.asarray(dims), axis=1)
                idx = idx[keep]
                out[idx[:, 0], idx[:, 1], idx[:, 2]] = vals[ok][keep]
    return out, f


def predicted_layer(g: SampleGeometry, volume: np.ndarray, voxel_model: np.ndarray) -> Any:
    """A predicted gene channel as an image layer: one value per patch over its cell
    (``paint_cells``), a dark-blue-green-yellow colormap over the 2nd-98th percentile
    of the patches' predictions, transparent where no patch is."""
    import neuroglancer

    finite = volume[np.isfinite(volume)]
    finite = finite[:: max(1, finite.size // 1_000_000)]
    lo, hi = (float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1e-3
    data = np.where(np.isfinite(volume), volume, np.float32(NO_PATCH)).astype(np.float32)
    vol = neuroglancer.LocalVolume(
        data=data,
        dimensions=space([float(m) * float(u) for m, u in zip(g.model_um, voxel_model, strict=True)]),
        volume_type="image",
    )
    return neuroglancer.ImageLayer(source=vol, shader=PREDICTED_SHADER % {"lo": lo, "hi": hi})
