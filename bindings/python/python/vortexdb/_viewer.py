"""The interactive viewer: a local web page over a store (``vortexdb.view``).

Neuroglancer (the PyPI package, which bundles its JavaScript client) draws the data;
its tornado server, bound to 127.0.0.1, also serves our page (``/vortex/``: sample
selector, gene box, domains control, triage panel and retrieval hits) and our JSON
routes (``_viewer_http``). The page embeds neuroglancer in an iframe from the same
origin. Every query runs in the library through the server, in a worker thread.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _viewer_data as vd
from . import _viewer_recorded as vr
from . import errors
from ._store import Store
from ._store import open as open_store

NEUROGLANCER_VERSION = "2.41.2"
# Bottom to top: later layers draw over earlier ones.
LAYER_ORDER = ["image", "heatmap", "predicted", "domains", "spots", "patches", "retrieved"]
# Heatmaps and domain volumes shown are downsampled to stay under this many voxels.
VOXEL_BUDGET = 16 << 20
# Entries per cache (queries, heatmap layers, domains).
CACHE = 8
# Prediction tables kept (one per (sample, method): patches x genes, the largest).
PREDICTION_CACHE = 2
# The prediction method of the model's own predictor head (the others are readouts).
PREDICTOR = "predictor"

_active: Viewer | None = None
_active_lock = threading.Lock()


def _neuroglancer() -> Any:
    """The neuroglancer package, checked against the version whose server internals
    (``server.global_server.app``) the viewer uses."""
    try:
        import neuroglancer
    except ImportError as e:
        raise ImportError(f"the viewer needs neuroglancer=={NEUROGLANCER_VERSION}: pip install 'vortexdb[view]'") from e
    v = importlib.metadata.version("neuroglancer")
    if v != NEUROGLANCER_VERSION:
        warnings.warn(f"vortexdb's viewer is tested with neuroglancer {NEUROGLANCER_VERSION}, found {v}", stacklevel=3)
    return neuroglancer


class Viewer:
    """A running viewer over one store: ``url`` is the page to open, ``stop()`` ends it.

    The methods the page calls are public too (``open_sample``, ``show_genes``,
    ``show_domains``, ``retrieve``), so a notebook can drive the same view.
    """

    def __init__(
        self,
        db: Store,
        *,
        own_store: bool,
        sample: str | None = None,
        port: int = 0,
        images: Mapping[str, Any] | None = None,
    ):
        ng = _neuroglancer()
        self.db = db
        self._own = own_store
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vortex-view")
        self._lock = threading.RLock()
        # Caches, least recently used first, at most CACHE entries each: query results,
        # heatmap layers (genes, sample) and domains (sample, k) as (labels, summary).
        self._queries: OrderedDict[tuple[tuple[str, ...], str], Any] = OrderedDict()
        self._heat: OrderedDict[tuple[tuple[str, ...], str], Any] = OrderedDict()
        self._domains: OrderedDict[tuple[str, int], tuple[np.ndarray, list]] = OrderedDict()
        self._predictions: OrderedDict[tuple[str, str], tuple[np.ndarray, list[str], np.ndarray]] = OrderedDict()
        self._origins: dict[str, np.ndarray] = {}
        self._origin_notes: dict[str, str] = {}
        self._spots: dict[str, Any] = {}
        self._retrieval: dict = {"version": 0, "hits": []}
        self.genes: tuple[str, ...] | None = None
        self.k: int | None = None
        # The predicted channel shown (gene, method) and the gene colouring the spots
        # (None: the first queried gene).
        self.predicted: tuple[str, str] | None = None
        self.spot_gene: str | None = None
        # The spot set shown over each sample (default: the one named like the sample;
        # a section stack's sections can carry spot sets of their own names).
        self.spot_set: dict[str, str | None] = {}
        self.notes: list[str] = []
        info = db.info()
        manifests = {m["name"]: m.get("manifest", {}) for m in db.models()}
        self._panel = {name: list((m.get("encoder_genes") or {}).get("names") or []) for name, m in manifests.items()}
        self.samples: dict[str, vd.SampleGeometry] = {}
        for rec in info.get("samples", []):
            g = vd.geometry(rec, manifests)
            given = (images or {}).get(g.id)
            if given is None and rec.get("images"):
                # Sections or an image ingested from files the store recorded: read
                # through the library, registered as at ingest.
                f = vr.block_factor(g.source_shape[1:])
                g.image = vr.RecordedImage(db, g.id, g.source_shape, f)
                g.image_um = [g.voxel_um[0], g.voxel_um[1] * f, g.voxel_um[2] * f]
            else:
                vd.attach_image(g, db.path, given)
            self.samples[g.id] = g
        self._spot_samples = [s["sample"] for s in info.get("spot_sets", [])]
        self._readouts = {r["name"]: r for r in db.readouts()}
        running = ng.server.is_server_running()
        ng.set_server_bind_address("127.0.0.1", bind_port=int(port))
        self.ng = ng.Viewer()
        app = ng.server.global_server.app
        # Our routes go on the server once and answer for the active viewer: tornado
        # matches rules in the order added, so a second set would never be reached.
        if not getattr(app, "_vortex_routes", False):
            app.add_handlers(r".*", _routes(current))
            app._vortex_routes = True
        self.neuroglancer_url: str = self.ng.get_viewer_url()
        base = ng.server.global_server.server_url.rstrip("/")
        self.url: str = base + "/vortex/"
        if running and port and not base.endswith(f":{int(port)}"):
            warnings.warn(f"neuroglancer's server was already running: the viewer is at {self.url}", stacklevel=2)
        self.ng.actions.add("vortex-retrieve", self._on_dblclick)
        with self.ng.config_state.txn() as c:
            c.input_event_bindings.data_view["dblclick0"] = "vortex-retrieve"
            c.status_messages["vortex"] = "vortexdb: double-click a patch to retrieve similar ones"
        self.current: str | None = None
        first = sample if sample is not None else next(iter(self.samples), None)
        if first is not None:
            self.open_sample(first)
        global _active
        with _active_lock:
            _active = self

    # -- life cycle ------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the server (every URL of this viewer stops answering); closes the store
        when ``view`` opened it from a path."""
        global _active
        import neuroglancer

        with _active_lock:
            if self._stopped:
                return
            self._stopped = True
            if _active is self:
                _active = None
        neuroglancer.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own:
            self.db.close()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"vortexdb.Viewer({self.url!r}, store={self.db.path!r})"

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">vortexdb viewer: {self.url}</a>'

    # -- what the page asks --------------------------------------------------------------
    def describe(self) -> dict:
        """The samples (with whether their image is shown), the current sample, genes
        and k, and the neuroglancer URL (path only: same origin as the page)."""
        from urllib.parse import urlparse

        cur = self.samples.get(self.current or "")
        return {
            "store": self.db.path,
            "samples": [g.public() for g in self.samples.values()],
            "current": self.current,
            "genes": list(self.genes or []),
            "k": self.k,
            "predicted": list(self.predicted) if self.predicted else None,
            "spot_gene": self._spot_gene(),
            "methods": self.prediction_methods(cur) if cur is not None else [PREDICTOR],
            "spot_sets": self._spot_samples,
            "spot_set": self._spot_set_of(cur.id) if cur is not None else None,
            "neuroglancer": urlparse(self.neuroglancer_url).path,
            "notes": self.notes + ([cur.image_note] if cur is not None and cur.image_note else []),
        }

    def _sample(self, sample: str | None) -> vd.SampleGeometry:
        s = self.current if sample is None else sample
        if s is None or s not in self.samples:
            known = list(self.samples)
            e = errors.UnknownSample(f"sample '{s}' is not in this store (samples: {', '.join(known)})")
            e.sample, e.known = s, known  # type: ignore[attr-defined]
            raise e
        return self.samples[s]

    def open_sample(self, sample: str) -> dict:
        """Show ``sample``: its image (or the patch grid when the image is not
        reachable), its spots, patch grid, and the current query's heatmap and domains."""
        g = self._sample(sample)
        with self._lock:
            self.current = g.id
            layers: dict[str, Any] = {}
            if g.image is not None:
                layers["image"] = vd.image_layer(g)
            grid, note = vd.grid_layer(g, self._patch_origins(g))
            layers["patches"] = grid
            spots = self._spot_data(self._spot_set_of(g.id))
            if spots is not None:
                layers["spots"] = vd.spots_layer(g, spots, self._spot_gene())
            notes = [n for n in (note, self._origin_notes.get(g.id)) if n]
            # The current query and domains follow the sample where the library can
            # give them (a 2D image has no domains, a sample may lack spots, ...).
            if self.genes:
                try:
                    layers["heatmap"] = self._heatmap_layer(self.genes, g)
                except errors.Error as e:
                    notes.append(f"no heatmap of {','.join(self.genes)} here: {e}")
            if self.k:
                try:
                    layers["domains"] = self._domains_layer(self.k, g)
                except errors.Error as e:
                    notes.append(f"no domains here: {e}")
            if self.predicted:
                try:
                    layers["predicted"] = self._predicted_layer(g, *self.predicted)
                except errors.Error as e:
                    notes.append(f"no predicted {self.predicted[0]} here: {e}")
            hits = self._retrieval.get("hits", []) if self._retrieval.get("sample") == g.id else []
            layers["retrieved"] = vd.retrieved_layer(g, None, hits)
            ng = self.ng
            with ng.txn() as s:
                s.dimensions = vd.space(g.voxel_um)
                s.layers.clear()
                for name in LAYER_ORDER:
                    if name in layers:
                        s.layers[name] = layers[name]
                s.layers["patches"].visible = g.image is None
                s.layout = "xy"
                s.display_dimensions = ["x", "y", "z"]
                s.position = [n // 2 + 0.5 for n in g.source_shape]
                extent = max(g.source_shape[1], g.source_shape[2])
                s.cross_section_scale = max(extent / 560.0, 1e-3)
                s.show_axis_lines = False
                s.show_default_annotations = False
                s.selected_layer.visible = False
            self.notes = notes
        return {"sample": g.id, **self.describe()}

    def _set_layers(self, layers: dict[str, Any]) -> None:
        """Add or replace layers in one state change, keeping LAYER_ORDER (the others
        keep the state the user gave them in the view, e.g. hidden)."""
        with self.ng.txn() as s:
            for name, layer in layers.items():
                s.layers[name] = layer
            ordered = sorted(s.layers, key=lambda m: LAYER_ORDER.index(m.name) if m.name in LAYER_ORDER else 99)
            s.layers.clear()
            for m in ordered:
                s.layers.append(m)

    def _query(self, genes: tuple[str, ...], target: str) -> Any:
        key = (genes, target)
        with self._lock:
            q = _cached(self._queries, key)
        if q is None:
            q = self.db.query_genes(list(genes), target=target)
            with self._lock:
                _keep(self._queries, key, q)
        return q

    def _heatmap_layer(self, genes: tuple[str, ...], g: vd.SampleGeometry) -> Any:
        """The heatmap layer of (genes, sample), built once: a repeated query reuses the
        volume, which the browser has cached."""
        key = (genes, g.id)
        with self._lock:
            layer = _cached(self._heat, key)
        if layer is None:
            d = vd.auto_downsample(g.grid_shape, VOXEL_BUDGET)
            layer = vd.heatmap_layer(g, self._query(genes, g.target).heatmap_of(g.id, d), d)
            with self._lock:
                _keep(self._heat, key, layer)
        return layer

    def show_genes(self, genes: tuple[str, ...] | list[str] | str, sample: str | None = None) -> dict:
        """Run the gene query (cached per genes; heatmaps per (genes, sample)), show its
        heatmap on ``sample`` (default: the current one) and return its triage table
        over every sample of the store (the order of ``query_genes(...).triage``)."""
        genes = (genes,) if isinstance(genes, str) else tuple(genes)
        g = self._sample(sample)
        t0 = time.perf_counter()
        cached = (genes, g.id) in self._heat
        q = self._query(genes, "3d" if any(s.target == "3d" for s in self.samples.values()) else "2d")
        layer = self._heatmap_layer(genes, g)
        with self._lock:
            if g.id != self.current:
                self.open_sample(g.id)
            self.genes = genes
            layers = {"heatmap": layer}
            spots = self._spot_data(self._spot_set_of(g.id))
            if spots is not None and self.spot_gene is None:
                layers["spots"] = vd.spots_layer(g, spots, genes[0])
            self._set_layers(layers)
        triage = [dict(r) for r in q.summary["triage"]]
        listed = {r["sample"] for r in triage}
        triage += [
            {"sample": s, "patches": g2.patches, "note": "not scored by this query's target"}
            for s, g2 in self.samples.items()
            if s not in listed
        ]
        return {
            "genes": list(genes),
            "sample": g.id,
            "triage": triage,
            "top": q.summary["top"],
            "threshold": q.threshold,
            "cached": cached,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
        }

    def _domains_layer(self, k: int, g: vd.SampleGeometry) -> Any:
        labels, _ = self._domain_result(k, g)
        return vd.domains_layer(g, labels, k, self._domain_downsample(g))

    @staticmethod
    def _domain_downsample(g: vd.SampleGeometry) -> int:
        return vd.auto_downsample(g.grid_shape, VOXEL_BUDGET)

    def _domain_result(self, k: int, g: vd.SampleGeometry) -> tuple[np.ndarray, list]:
        """The label volume and per-domain summary (the predictions are not kept)."""
        key = (g.id, k)
        with self._lock:
            hit = _cached(self._domains, key)
        if hit is None:
            d = self.db.domains(g.id, k=k, downsample=self._domain_downsample(g))
            hit = (d.label_volume, d.summary.to_dict("records"))
            with self._lock:
                _keep(self._domains, key, hit)
        return hit

    def show_domains(self, k: int, sample: str | None = None) -> dict:
        """k-means domains of ``sample`` (default: the current one) as a segmentation
        layer with the k labels shown; returns each domain's size and top genes."""
        g = self._sample(sample)
        layer = self._domains_layer(k, g)
        with self._lock:
            if g.id != self.current:
                self.open_sample(g.id)
            self.k = k
            self._set_layers({"domains": layer})
        _, summary = self._domain_result(k, g)
        return {"sample": g.id, "k": k, "labels": list(range(1, k + 1)), "domains": summary}

    # -- predicted channels and spot colours ----------------------------------------------
    def prediction_methods(self, g: vd.SampleGeometry) -> list[str]:
        """How the sample's expression can be predicted here: the model's predictor head
        and every stored readout of its model (``Store.fit_readout``)."""
        return [PREDICTOR] + [n for n, r in self._readouts.items() if r.get("model") == g.model]

    def _prediction(self, g: vd.SampleGeometry, method: str) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(origins, genes, patches x genes) of ``predict(sample)`` or of a readout."""
        key = (g.id, method)
        with self._lock:
            hit = _cached(self._predictions, key)
        if hit is None:
            p = self.db.predict(g.id) if method == PREDICTOR else self.db.predict(g.id, readout=method)
            obs = p.obs
            hit = (obs[["z", "y", "x"]].to_numpy(np.int64), [str(v) for v in p.var_names], np.asarray(p.X))
            with self._lock:
                _keep(self._predictions, key, hit, PREDICTION_CACHE)
        return hit

    def _predicted_layer(self, g: vd.SampleGeometry, gene: str, method: str) -> Any:
        origins, genes, x = self._prediction(g, method)
        if gene not in genes:
            raise _unknown_genes([gene], genes, f"'{gene}' is not among the genes {method} predicts for '{g.id}'")
        unit, span = vd.patch_cells(origins, g.patch)
        vol, f = vd.paint_cells(g.grid_shape, unit, span, x[:, genes.index(gene)], VOXEL_BUDGET)
        return vd.predicted_layer(g, vol, unit * f)

    def show_prediction(self, gene: str, method: str | None = None, sample: str | None = None) -> dict:
        """Show ``gene``'s predicted expression on ``sample`` (default: the current one)
        as the ``predicted`` layer: the predictor head (``method`` None or
        ``"predictor"``) or a stored readout by name; one value per patch over the voxels
        nearest its centre. Returns the genes the method predicts and the gene's range."""
        g = self._sample(sample)
        method = method or PREDICTOR
        methods = self.prediction_methods(g)
        if method not in methods:
            raise errors.InvalidArgument(
                f"no prediction method '{method}' for sample '{g.id}' (methods: {', '.join(methods)})"
            )
        t0 = time.perf_counter()
        layer = self._predicted_layer(g, gene, method)
        _, genes, x = self._prediction(g, method)
        col = x[:, genes.index(gene)]
        with self._lock:
            if g.id != self.current:
                self.open_sample(g.id)
            self.predicted = (gene, method)
            self._set_layers({"predicted": layer})
        return {
            "sample": g.id,
            "gene": gene,
            "method": method,
            "patches": int(len(col)),
            "min": float(np.min(col)) if len(col) else None,
            "max": float(np.max(col)) if len(col) else None,
            "genes": genes,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
        }

    def _spot_gene(self) -> str | None:
        return self.spot_gene or (self.genes[0] if self.genes else None)

    def _spot_set_of(self, sample: str) -> str | None:
        if sample in self.spot_set:
            return self.spot_set[sample]
        return sample if sample in self._spot_samples else None

    def show_spots(self, gene: str | None = None, sample: str | None = None, spots: str | None = None) -> dict:
        """Show the spot set ``spots`` (default: the one shown, or the one named like the
        sample) over ``sample`` (default: the current one), its positions taken in that
        sample's frame, and colour the spots by ``gene``'s expression (blue = none,
        yellow = the set's maximum; default: the gene chosen before, else the first
        queried). The gene stays the spots' gene for every sample until changed."""
        g = self._sample(sample)
        name = spots if spots is not None else self._spot_set_of(g.id)
        if name is None or name not in self._spot_samples:
            known = self._spot_samples
            what = f"no spot set '{name}'" if name is not None else f"no spot set is named '{g.id}'"
            e = errors.UnknownSample(f"{what} in this store (spot sets: {', '.join(known) or 'none'})")
            e.sample, e.known = name, known  # type: ignore[attr-defined]
            raise e
        table = self._spot_data(name)
        if table is None:
            raise errors.NothingSelected(f"the spots of '{name}' cannot be read")
        gene = gene or self._spot_gene()
        measured = [str(v) for v in table.var_names]
        if gene is not None and gene not in measured:
            raise _unknown_genes([gene], measured, f"'{gene}' is not measured in the spots of '{name}'")
        with self._lock:
            if g.id != self.current:
                self.open_sample(g.id)
            self.spot_set[g.id] = name
            if gene is not None:
                self.spot_gene = gene
            self._set_layers({"spots": vd.spots_layer(g, table, gene)})
        kept = np.asarray(table.obs["kept"], bool)
        top = None
        if gene is not None and kept.any():
            top = float(np.nan_to_num(np.asarray(table[:, gene].X, np.float32).ravel())[kept].max())
        return {"sample": g.id, "spot_set": name, "gene": gene, "spots": int(kept.sum()), "max": top}

    def retrieve(self, sample: str, at: list[int] | tuple[int, int, int], top: int = 10) -> dict:
        """Morphology retrieval from the stored patch of ``sample`` nearest the model
        voxel ``at`` (z, y, x): marks the query patch and the hits of the shown sample
        in the ``retrieved`` layer; the answer lists every hit (all samples)."""
        g = self._sample(sample)
        at3 = [int(v) for v in at]
        hits = self.db.query_patch(g.id, at=at3, top=top)
        query = str(hits.attrs.get("query", ""))
        m = re.search(r"at \[(-?\d+), (-?\d+), (-?\d+)\]", query)
        qo = [int(v) for v in m.groups()] if m else None
        rows = [
            {
                "rank": i + 1,
                "sample": str(r["sample"]),
                "id": int(r["id"]),
                "origin": [int(v) for v in r["origin"]],
                "similarity": float(r["similarity"]),
            }
            for i, r in enumerate(hits.to_dict("records"))
        ]
        with self._lock:
            res = {
                "version": self._retrieval["version"] + 1,
                "sample": g.id,
                "at": at3,
                "query": query,
                "query_origin": qo,
                "patch": g.patch,
                "hits": rows,
            }
            self._retrieval = res
            if g.id == self.current:
                self._set_layers({"retrieved": vd.retrieved_layer(g, qo, rows)})
        return res

    def last_retrieval(self) -> dict:
        """The latest retrieval (``version`` 0: none yet)."""
        with self._lock:
            return dict(self._retrieval)

    def _on_dblclick(self, action_state: Any) -> None:
        """neuroglancer action (double-click in a data view): the mouse position is in
        the global space (the shown sample's source voxels)."""
        pos = action_state.mouse_voxel_coordinates
        g = self.samples.get(self.current or "")
        if pos is None or g is None:
            return
        m = np.floor(g.source_to_model(np.asarray(pos, float)[:3])).astype(int)
        m = np.clip(m, 0, np.maximum(np.asarray(g.grid_shape) - 1, 0))
        self._pool.submit(self._retrieve_logged, g.id, [int(v) for v in m])

    def _retrieve_logged(self, sample: str, at: list[int]) -> None:
        try:
            self.retrieve(sample, at)
        except Exception as e:  # shown by the page, never raised into the server
            with self._lock:
                self._retrieval = {
                    "version": self._retrieval["version"] + 1,
                    "sample": sample,
                    "at": at,
                    "error": f"{type(e).__name__}: {e}",
                    "hits": [],
                }

    # -- per-sample data -----------------------------------------------------------------
    def _patch_origins(self, g: vd.SampleGeometry) -> np.ndarray:
        """Origins (model voxels) of the stored patches of ``g``: a marker query over the
        sample (a cosine per patch, cheap) lists them."""
        with self._lock:
            o = self._origins.get(g.id)
        if o is not None:
            return o
        panel = self._panel.get(g.model) or []
        o = np.zeros((0, 3), int)
        if panel:
            try:
                q = self.db.query_profile(markers=[panel[0]], sample=g.id, model=g.model, target=g.target)
                p = q.patches
                o = p.loc[p["sample"] == g.id, ["z", "y", "x"]].to_numpy(int)
            except errors.Error as e:
                self._origin_notes[g.id] = f"patch grid unavailable: {e}"
        with self._lock:
            self._origins[g.id] = o
        return o

    def _spot_data(self, sample: str | None) -> Any:
        if sample is None or sample not in self._spot_samples:
            return None
        with self._lock:
            if sample in self._spots:
                return self._spots[sample]
        try:
            s = self.db.spots(sample)
        except errors.Error:
            s = None
        with self._lock:
            self._spots[sample] = s
        return s


def _cached(cache: OrderedDict, key: Any) -> Any:
    """The cached value of ``key`` (marked most recently used), or None."""
    v = cache.get(key)
    if v is not None:
        cache.move_to_end(key)
    return v


def _keep(cache: OrderedDict, key: Any, value: Any, limit: int = CACHE) -> None:
    """Cache ``value``, dropping the least recently used entries beyond ``limit``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _unknown_genes(genes: list[str], known: list[str], message: str) -> errors.UnknownGenes:
    """``UnknownGenes`` with the closest known names as ``suggestions`` (as the
    library's own gene errors carry)."""
    import difflib

    def close(g: str) -> list[str]:
        scored = [(difflib.SequenceMatcher(None, g.upper(), k.upper()).ratio(), k) for k in known]
        return [k for r, k in sorted(scored, key=lambda t: (-t[0], t[1])) if r >= 0.5][:5]

    sugg = {g: close(g) for g in genes}
    e = errors.UnknownGenes(message)
    e.genes, e.suggestions = genes, sugg  # type: ignore[attr-defined]
    return e


def current() -> Viewer | None:
    """The running viewer of this process, if any."""
    with _active_lock:
        return _active


def _routes(get_viewer: Callable[[], Viewer | None]) -> list:
    from ._viewer_http import routes

    return routes(get_viewer)


def view(
    db_or_path: Store | str | os.PathLike[str],
    *,
    sample: str | None = None,
    port: int = 0,
    images: Mapping[str, Any] | None = None,
) -> Viewer:
    """Start the interactive viewer on 127.0.0.1 (``port`` 0: a free one) over a store
    (an open :class:`Store` or a path, opened read-write so domains can be stored, or
    read-only when another process holds it) and return it; open ``Viewer.url`` in a
    browser. ``sample``: the sample shown first (default: the first). ``images``: image
    data per sample whose record names no readable file (serial sections ingested from
    arrays, a moved volume): paths or arrays. One viewer runs per process: starting
    another stops the previous one."""
    global _active
    with _active_lock:
        prev, _active = _active, None
    if prev is not None:
        prev.stop()
    own = not isinstance(db_or_path, Store)
    if isinstance(db_or_path, Store):
        db = db_or_path
    else:
        try:
            db = open_store(db_or_path)
        except errors.StoreLocked:
            db = open_store(db_or_path, read_only=True)
    try:
        return Viewer(db, own_store=own, sample=sample, port=port, images=images)
    except BaseException:
        if own:
            db.close()
        raise
