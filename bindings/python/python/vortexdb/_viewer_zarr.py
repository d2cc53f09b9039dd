"""Multiscale image data read by neuroglancer's own Zarr reader.

A sample ingested from an OME-Zarr image (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) is
served as it is: its directory, read-only, under ``/vortex/zarr/<sample>/`` on the
viewer's server, and the image layer's source is ``zarr2://`` or ``zarr3://`` over that
URL, so the browser reads the pyramid level the view needs (the coarsest first when the
whole slice is shown) with no Python in the loop.

A large single-resolution source (NPY, TIFF) gets a pyramid written once into a cache
directory (``pyramid_cache_dir``): levels 1.. as OME-Zarr (NGFF 0.4, Zarr v2, raw
chunks) beside a level 0 that is the source itself, whose chunks the same route cuts
from the memory-mapped array on request. Small sources stay ``LocalVolume``s.

Coordinates: neuroglancer puts an OME-Zarr voxel's centre at its index (NGFF), the
viewer's layers put voxel ``j`` over ``[j, j + 1)``; the layer's transform adds the half
voxel and states the level-0 voxel size in micrometres (the sample's recorded voxel
size times the level ratio), so the image lies where the ingest read it whatever units
the file names.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tornado.ioloop
import tornado.web

# What neuroglancer 2.41.2 decodes (src/datasource/zarr/metadata/parse.ts).
NG_V2_COMPRESSORS = {"blosc", "gzip", "zlib", "zstd"}
NG_V3_CODECS = {"bytes", "crc32c", "transpose", "gzip", "blosc", "zstd", "sharding_indexed"}
# Single-resolution sources from this many voxels on get a pyramid (smaller ones are
# LocalVolumes: neuroglancer downsamples them on the fly, fast enough at that size).
PYRAMID_MIN_VOXELS = 256 << 20
# Pyramid levels: halve until the largest y / x side is at most this.
COARSEST = 256
# Chunks of the pyramid's levels 1.. (isotropic: any panel orientation reads few) and of
# the level 0 cut from the source (flat: the xy panel at full resolution reads one slice).
CHUNK = (64, 64, 64)
CHUNK0 = (4, 256, 256)
CACHE_FORMAT = 1


@dataclass
class ZarrImage:
    """An image the route serves: an OME-Zarr directory (``root``), with optionally a
    level 0 cut from an array (``level0``: the pyramid cache of a single-resolution
    source)."""

    root: Path
    version: int
    dtype: np.dtype
    axes: list[str]
    channel_axis: int | None
    level0_um: list[float]
    offset: list[float]
    levels: list[dict]
    window: tuple[float, float]
    level0: np.ndarray | None = field(default=None, repr=False)
    level0_path: str = "0"
    level0_chunks: tuple[int, ...] = ()
    note: str = ""

    @property
    def channels(self) -> int:
        return 1 if self.channel_axis is None else int(self.levels[0]["shape"][self.channel_axis])


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr group (v2 ``.zgroup`` / ``.zattrs`` or v3 ``zarr.json``)."""
    return path.is_dir() and any((path / f).is_file() for f in ("zarr.json", ".zattrs", ".zgroup"))


def _json(p: Path) -> dict:
    with open(p, encoding="utf-8") as f:
        v = json.load(f)
    if not isinstance(v, dict):
        raise ValueError(f"{p}: not a JSON object")
    return v


def _transform(ts: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, translation) of a list of NGFF ``coordinateTransformations``."""
    s, t = np.ones(ndim), np.zeros(ndim)
    for tr in ts or []:
        kind = tr.get("type")
        if kind == "scale":
            v = np.asarray(tr["scale"], float)
            s, t = s * v, t * v
        elif kind == "translation":
            t = t + np.asarray(tr["translation"], float)
        elif kind != "identity":
            raise ValueError(f"coordinate transformation '{kind}' is not supported")
    return s, t


def _array_meta(level_dir: Path, version: int) -> dict:
    """Shape, dtype and what neuroglancer must decode of one level."""
    if version == 3:
        m = _json(level_dir / "zarr.json")
        codecs: list[str] = []

        def walk(cs: Any) -> None:
            for c in cs or []:
                codecs.append(c.get("name", "?"))
                walk((c.get("configuration") or {}).get("codecs"))
                walk((c.get("configuration") or {}).get("index_codecs"))

        walk(m.get("codecs"))
        bad = sorted(set(codecs) - NG_V3_CODECS)
        if bad:
            raise ValueError(f"{level_dir}: codecs {bad} are not readable by neuroglancer")
        dt = np.dtype(str(m["data_type"]))
    else:
        m = _json(level_dir / ".zarray")
        comp = m.get("compressor")
        if comp is not None and comp.get("id") not in NG_V2_COMPRESSORS:
            raise ValueError(f"{level_dir}: compressor '{comp.get('id')}' is not readable by neuroglancer")
        if m.get("filters"):
            raise ValueError(
                f"{level_dir}: filters {[f.get('id') for f in m['filters']]} are not readable by neuroglancer"
            )
        dt = np.dtype(m["dtype"])
    return {"shape": [int(n) for n in m["shape"]], "dtype": dt}


def open_ome_zarr(root: Path, source_shape: list[int], voxel_um: list[float]) -> ZarrImage:
    """The OME-Zarr image at ``root`` of a sample ingested from it: the level whose
    (z, y, x) shape is ``source_shape`` is the one read, at ``voxel_um``."""
    root = root.resolve()
    version = 3 if (root / "zarr.json").is_file() else 2
    if version == 3:
        attrs = _json(root / "zarr.json").get("attributes") or {}
        attrs = attrs.get("ome", attrs)
    else:
        attrs = _json(root / ".zattrs") if (root / ".zattrs").is_file() else {}
    ms = (attrs.get("multiscales") or [None])[0]
    if not ms:
        raise ValueError(f"{root}: no OME-NGFF multiscales")
    axes = [a if isinstance(a, str) else str(a.get("name", "")) for a in ms.get("axes", [])]
    ndim = len(axes)
    if ndim < 2 or axes[-2:] != ["y", "x"]:
        raise ValueError(f"{root}: the axes {axes} do not end with y, x")
    c_axis = axes.index("c") if "c" in axes else None
    spatial = [axes.index(a) if a in axes else None for a in ("z", "y", "x")]
    top = _transform(ms.get("coordinateTransformations"), ndim)
    levels = []
    for d in ms.get("datasets") or []:
        s, t = _transform(d.get("coordinateTransformations"), ndim)
        s, t = s * top[0], t * top[0] + top[1]
        meta = _array_meta(root / str(d["path"]).strip("/"), version)
        if len(meta["shape"]) != ndim:
            raise ValueError(f"{root}: level '{d['path']}' has {len(meta['shape'])} dimensions, the axes {ndim}")
        levels.append({"path": str(d["path"]).strip("/"), "scale": s, "translation": t, **meta})
    if not levels:
        raise ValueError(f"{root}: multiscales lists no datasets")
    for i, a in enumerate(axes):
        if i != c_axis and i not in spatial and levels[0]["shape"][i] != 1:
            raise ValueError(f"{root}: axis '{a}' has length {levels[0]['shape'][i]}; one index is shown")
    zyx = [[lv["shape"][i] if i is not None else 1 for i in spatial] for lv in levels]
    if list(source_shape) not in zyx:
        raise ValueError(f"{root}: no level has the recorded source shape {list(source_shape)} (levels {zyx})")
    k = zyx.index(list(source_shape))
    l0, lk = levels[0], levels[k]
    um0, off = [], []
    for k_axis, ix in enumerate(spatial):
        if ix is None:
            um0.append(float(voxel_um[k_axis]))
            off.append(0.0)
            continue
        um0.append(float(voxel_um[k_axis]) * float(l0["scale"][ix]) / float(lk["scale"][ix]))
        # neuroglancer puts voxel i's centre at i + t / s: its lower corner goes to i.
        off.append(0.5 - float(l0["translation"][ix]) / float(l0["scale"][ix]))
    dt = l0["dtype"]
    return ZarrImage(
        root=root,
        version=version,
        dtype=dt,
        axes=axes,
        channel_axis=c_axis,
        level0_um=um0,
        offset=off,
        levels=[{"path": lv["path"], "shape": lv["shape"]} for lv in levels],
        window=_window(dt, attrs, root, levels[-1]["path"]),
    )


def _window(dt: np.dtype, attrs: dict, root: Path, coarsest: str) -> tuple[float, float]:
    """The grey range shown: the dtype's for uint8, else the OMERO window the file
    gives, else the 1st-99th percentile of the coarsest level when ``zarr`` is
    installed, else the dtype's range."""
    if dt == np.uint8:
        return (0.0, 255.0)
    try:
        w = attrs["omero"]["channels"][0]["window"]
        lo, hi = float(w["start"]), float(w["end"])
        if hi > lo:
            return (lo, hi)
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    try:
        import zarr

        a = np.asarray(zarr.open_array(str(root / coarsest), mode="r")[...], np.float64)
        lo, hi = (float(v) for v in np.nanpercentile(a, [1, 99]))
        if hi > lo:
            return (lo, hi)
    except Exception:
        pass
    if np.issubdtype(dt, np.integer):
        return (float(np.iinfo(dt).min), float(np.iinfo(dt).max))
    return (0.0, 1.0)


# -- a pyramid for a single-resolution source --------------------------------------------


def pyramid_cache_dir(store_path: str) -> Path:
    """Where pyramids are written: ``.vortex-view-cache`` beside the store (its parent
    directory) when that is writable, else ``$XDG_CACHE_HOME/vortexdb/view`` (default
    ``~/.cache/vortexdb/view``); ``VORTEX_VIEW_CACHE`` overrides both."""
    env = os.environ.get("VORTEX_VIEW_CACHE")
    if env:
        return Path(env)
    parent = Path(store_path).resolve().parent
    if os.access(parent, os.W_OK):
        return parent / ".vortex-view-cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vortexdb" / "view"


def _factors(shape: list[int], um: list[float]) -> list[list[int]]:
    """Halving factors (z, y, x) of each level after the first: the finest axes (and
    those within 1.5x of them) halve, until the largest y / x side is at most COARSEST."""
    out: list[list[int]] = []
    s, u = list(shape), list(um)
    while max(s[1], s[2]) > COARSEST and len(out) < 12:
        finest = min(u[a] for a in range(3) if s[a] > 1)
        f = [2 if s[a] > 1 and u[a] <= 1.5 * finest else 1 for a in range(3)]
        out.append(f)
        s = [-(-s[a] // f[a]) for a in range(3)]
        u = [u[a] * f[a] for a in range(3)]
    return out


def _down(x: np.ndarray, f: list[int]) -> np.ndarray:
    """Block means of ``x`` (Z, Y, X[, C]) over ``f``, the last block of an odd side
    padded with its edge; rounded back to the dtype."""
    pad = [(0, (-x.shape[a]) % f[a]) for a in range(3)] + [(0, 0)] * (x.ndim - 3)
    if any(p[1] for p in pad):
        x = np.pad(x, pad, mode="edge")
    z, y, w = (x.shape[a] // f[a] for a in range(3))
    r = x.reshape(z, f[0], y, f[1], w, f[2], *x.shape[3:])
    m = r.mean(axis=(1, 3, 5), dtype=np.float32)
    if np.issubdtype(x.dtype, np.integer):
        m = np.rint(m)
    return m.astype(x.dtype)


def _zarray(shape: list[int], chunks: list[int], dt: np.dtype) -> dict:
    fill: Any = 0.0 if dt.kind == "f" else 0
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": dt.str,
        "compressor": None,
        "fill_value": fill,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _chunk_bytes(a: np.ndarray, idx: tuple[int, ...], chunks: tuple[int, ...]) -> bytes | None:
    """The raw C-order bytes of chunk ``idx`` of ``a`` (the edge padded with zeros), or
    None when the chunk lies outside ``a``."""
    lo = [i * c for i, c in zip(idx, chunks, strict=True)]
    if any(i < 0 for i in idx) or any(lo_ >= n for lo_, n in zip(lo, a.shape, strict=True)):
        return None
    part = np.asarray(a[tuple(slice(s, s + c) for s, c in zip(lo, chunks, strict=True))])
    if part.shape != tuple(chunks):
        full = np.zeros(chunks, a.dtype)
        full[tuple(slice(0, n) for n in part.shape)] = part
        part = full
    return np.ascontiguousarray(part).tobytes()


def _write_level(a: np.ndarray, d: Path, chunks: tuple[int, ...]) -> None:
    d.mkdir(parents=True)
    (d / ".zarray").write_text(json.dumps(_zarray(list(a.shape), list(chunks), a.dtype)))
    grid = [-(-n // c) for n, c in zip(a.shape, chunks, strict=True)]
    for idx in np.ndindex(*grid):
        b = _chunk_bytes(a, idx, chunks)
        if b is not None and any(b):
            p = d.joinpath(*map(str, idx))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b)


def _key(source: Path, a: np.ndarray, um: list[float]) -> str:
    st = source.stat()
    h = hashlib.sha256(
        json.dumps(
            [str(source.resolve()), st.st_size, st.st_mtime_ns, list(a.shape), a.dtype.str, um, CACHE_FORMAT]
        ).encode()
    )
    return h.hexdigest()[:16]


@dataclass
class PendingPyramid:
    """A large single-resolution source whose pyramid is written (or found in the
    cache) when the sample is first shown."""

    array: np.ndarray = field(repr=False)
    source: Path
    voxel_um: list[float]
    cache: Path
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def build(self) -> ZarrImage:
        return build_pyramid(self.array, self.source, self.voxel_um, self.cache, self.name)


def build_pyramid(a: np.ndarray, source: Path, voxel_um: list[float], cache: Path, name: str = "") -> ZarrImage:
    """The pyramid of ``a`` (Z, Y, X[, C], read from ``source``) in ``cache``: written
    once (levels 1.., OME-Zarr NGFF 0.4, raw chunks) and found again while the source
    file is unchanged (its path, size and modification time key the directory)."""
    um = [float(v) for v in voxel_um]
    tag = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:40]
    root = cache / f"{tag}-{_key(source, a, um)}" if tag else cache / _key(source, a, um)
    fs = _factors(list(a.shape[:3]), um)
    if not (root / ".zattrs").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            _write_pyramid(a, fs, um, tmp)
            try:
                os.rename(tmp, root)
            except OSError:  # another process wrote it meanwhile
                if not (root / ".zattrs").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _cached_image(root, a, fs, um)


def _ngff(shapes: list[list[int]], scales: list[list[float]], channels: bool) -> dict:
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    if channels:
        axes.append({"name": "c", "type": "channel"})
    datasets = []
    for i, s in enumerate(scales):
        sc = [*s, 1.0] if channels else list(s)
        datasets.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": sc}]})
    return {"multiscales": [{"version": "0.4", "name": "vortexdb view cache", "axes": axes, "datasets": datasets}]}


def _write_pyramid(a: np.ndarray, fs: list[list[int]], um: list[float], out: Path) -> None:
    (out / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    channels = a.ndim == 4
    c = a.shape[3:]
    shapes, scales = [list(a.shape)], [list(um)]
    # Level 0 is the source: only its metadata (the route cuts its chunks).
    d0 = out / "0"
    d0.mkdir()
    (d0 / ".zarray").write_text(json.dumps(_zarray(list(a.shape), [*CHUNK0, *c], a.dtype)))
    prev: np.ndarray = a
    tmpfile = None
    for i, f in enumerate(fs, 1):
        shape = [-(-prev.shape[k] // f[k]) for k in range(3)] + list(c)
        if i == 1 and math.prod(shape) > (64 << 20):
            # Level 1 of a large source goes through a file (bounded memory), slab by slab.
            tmpfile = out / "level1.npy"
            nxt: np.ndarray = np.lib.format.open_memmap(tmpfile, mode="w+", dtype=a.dtype, shape=tuple(shape))
        else:
            nxt = np.empty(shape, a.dtype)
        step = f[0] * max(1, (32 << 20) // max(1, math.prod(prev.shape[1:])))
        for z0 in range(0, prev.shape[0], step):
            nxt[z0 // f[0] : -(-(z0 + step) // f[0])] = _down(np.asarray(prev[z0 : z0 + step]), f)
        _write_level(nxt, out / str(i), (*CHUNK, *c))
        shapes.append(shape)
        scales.append([scales[-1][k] * f[k] for k in range(3)])
        prev = nxt
    del prev
    if tmpfile is not None:
        tmpfile.unlink()
    (out / ".zattrs").write_text(json.dumps(_ngff(shapes, scales, channels)))


def _array_window(a: np.ndarray) -> tuple[float, float]:
    """The grey range of an array: the dtype's for uint8, else the 1st-99th percentile
    of at most ~4M voxels picked on a regular grid."""
    if a.dtype == np.uint8:
        return (0.0, 255.0)
    st = max(1, round((math.prod(a.shape[:3]) / 4e6) ** (1 / 3)))
    v = np.asarray(a[::st, ::st, ::st], np.float64)
    lo, hi = (float(x) for x in np.nanpercentile(v, [1, 99]))
    return (lo, hi if hi > lo else lo + 1.0)


def _cached_image(root: Path, a: np.ndarray, fs: list[list[int]], um: list[float]) -> ZarrImage:
    channels = a.ndim == 4
    shapes = [list(a.shape)]
    for f in fs:
        shapes.append([-(-shapes[-1][k] // f[k]) for k in range(3)] + list(a.shape[3:]))
    win = _array_window(a)
    return ZarrImage(
        root=root.resolve(),
        version=2,
        dtype=a.dtype,
        axes=["z", "y", "x", "c"] if channels else ["z", "y", "x"],
        channel_axis=3 if channels else None,
        level0_um=list(um),
        offset=[0.5, 0.5, 0.5],
        levels=[{"path": str(i), "shape": s} for i, s in enumerate(shapes)],
        window=win,
        level0=a,
        level0_chunks=(*CHUNK0, *a.shape[3:]),
    )


# -- the layer -------------------------------------------------------------------------


def source_url(sample: str, img: ZarrImage) -> str:
    """The layer source: neuroglancer's Zarr reader over this server's route."""
    import neuroglancer

    base = neuroglancer.server.global_server.server_url.rstrip("/")
    return f"zarr{img.version}://{base}/vortex/zarr/{urllib.parse.quote(sample, safe='')}/"


def layer_source(sample: str, img: ZarrImage) -> Any:
    """The image layer's data source: the Zarr URL with a transform placing level-0
    voxel ``j`` over ``[j, j + 1) x level0_um`` (micrometres)."""
    import neuroglancer

    names, units, scales = [], [], []
    rank = len(img.axes)
    m = np.zeros((rank, rank + 1))
    for i, a in enumerate(img.axes):
        m[i, i] = 1.0
        if i == img.channel_axis:
            names.append("c'")
            units.append("")
            scales.append(1.0)
            continue
        k = "zyx".index(a) if a in ("z", "y", "x") else None
        names.append(a)
        units.append("um" if k is not None else "")
        scales.append(img.level0_um[k] if k is not None else 1.0)
        if k is not None:
            m[i, rank] = img.offset[k]
    dims = neuroglancer.CoordinateSpace(names=names, units=units, scales=scales)
    return neuroglancer.LayerDataSource(
        url=source_url(sample, img),
        transform=neuroglancer.CoordinateSpaceTransform(output_dimensions=dims, matrix=m),
    )


# -- the route -------------------------------------------------------------------------


class ZarrHandler(tornado.web.StaticFileHandler):
    """``/vortex/zarr/<sample>/<path>``: a file of the sample's Zarr image directory,
    read-only (byte ranges and HEAD as tornado's static files answer them). A path
    outside the directory (``..``, an absolute path, a symlink leading out) is a 403, a
    missing file or a directory a 404, an unknown sample or one with no Zarr image a
    404 with the samples that have one."""

    get_viewer: Callable[[], Any]
    image: ZarrImage

    def initialize(self, get_viewer: Callable[[], Any]) -> None:  # type: ignore[override]
        super().initialize(path=os.devnull)
        self.get_viewer = get_viewer

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")

    def _image(self, sample: str) -> ZarrImage:
        viewer = self.get_viewer()
        samples = getattr(viewer, "samples", {}) if viewer is not None else {}
        g = samples.get(sample)
        if g is None or not isinstance(g.image, ZarrImage):
            known = sorted(s for s, v in samples.items() if isinstance(v.image, ZarrImage))
            self._message = f"sample '{sample}' has no Zarr image served here"
            self._known = known
            raise tornado.web.HTTPError(404)
        return g.image

    async def get(self, sample: str, path: str, include_body: bool = True) -> None:  # type: ignore[override]
        img = self._image(sample)
        self.image = img
        self.root = str(img.root)
        if img.level0 is not None:
            b = await tornado.ioloop.IOLoop.current().run_in_executor(None, self._level0_chunk, path)
            if b is not None:
                self.set_header("Content-Type", "application/octet-stream")
                self.set_header("Content-Length", str(len(b)))
                self.set_extra_headers(path)
                if include_body:
                    self.write(b)
                return
        await super().get(path, include_body)

    def head(self, sample: str, path: str) -> Any:  # type: ignore[override]
        return self.get(sample, path, include_body=False)

    def _level0_chunk(self, path: str) -> bytes | None:
        """A chunk of the level cut from the source (``0/i/j/k``): zeros when outside
        it, None when ``path`` names no such chunk (served from the directory)."""
        img = self.image
        parts = path.split("/")
        if parts[0] != img.level0_path or len(parts) != 1 + len(img.level0_chunks):
            return None
        if not all(p.isdigit() and len(p) < 10 for p in parts[1:]):
            return None
        assert img.level0 is not None
        b = _chunk_bytes(img.level0, tuple(int(p) for p in parts[1:]), img.level0_chunks)
        if b is None:
            raise tornado.web.HTTPError(404)
        return b

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        real_root = os.path.realpath(root)
        real = os.path.realpath(absolute_path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise tornado.web.HTTPError(403)
        if os.path.isdir(real):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def compute_etag(self) -> str | None:
        # The file's modification time and size (tornado's default hashes the content
        # and keeps every hash for the life of the process).
        p = getattr(self, "absolute_path", None)
        if p is None:
            return None
        st = os.stat(p)
        return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        msg = getattr(self, "_message", None) or {
            403: "that path is outside the sample's image directory",
            404: "no such file in the sample's image directory",
        }.get(status_code, self._reason)
        body: dict[str, Any] = {"error": msg}
        if getattr(self, "_known", None) is not None:
            body["known"] = self._known
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))
