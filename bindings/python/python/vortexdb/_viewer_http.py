"""The viewer's own HTTP routes, mounted on neuroglancer's tornado server (same origin
as the neuroglancer client, which our page embeds in an iframe).

Every route answers JSON; bad input gets a non-200 status and ``{"error": message}``
(plus ``suggestions`` for unknown genes, ``known`` for unknown samples), which the page
shows. A request never stops the server: unexpected exceptions become a 500 answer.
"""

from __future__ import annotations

import json
import re
import traceback
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.ioloop
import tornado.web

from . import errors
from ._viewer_zarr import ZarrHandler

if TYPE_CHECKING:
    from ._viewer import Viewer

STATIC = Path(__file__).resolve().parent / "viewer_static"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


class HTTPFailure(Exception):
    """An answer other than 200, with the message the page shows."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.extra = extra


def parse_query(raw: str, allowed: set[str]) -> dict[str, str]:
    """The parameters of a query string, strictly: valid percent escapes and UTF-8,
    ``name=value`` pairs, each name known and given once. Anything else is a 400."""
    if _BAD_ESCAPE.search(raw):
        raise HTTPFailure(400, "malformed query string: '%' must be followed by two hex digits")
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPFailure(400, f"malformed query string: {e}") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        if k not in allowed:
            raise HTTPFailure(400, f"malformed query string: unknown parameter '{k}' (allowed: {sorted(allowed)})")
        if k in out:
            raise HTTPFailure(400, f"malformed query string: parameter '{k}' given twice")
        out[k] = v
    return out


def parse_genes(text: str) -> tuple[str, ...]:
    """Gene names from ``A,B C`` (comma or space separated)."""
    genes = tuple(g for g in re.split(r"[\s,;]+", text.strip()) if g)
    if not genes:
        raise HTTPFailure(400, "type at least one gene name")
    if len(genes) > 50:
        raise HTTPFailure(400, f"at most 50 genes per query ({len(genes)} given)")
    for g in genes:
        if not _NAME.match(g):
            raise HTTPFailure(400, f"'{g[:40]}' is not a gene name (letters, digits, '_', '-', '.', ':')")
    return genes


def parse_int(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer parameter within [lo, hi]."""
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise HTTPFailure(400, f"'{name}' must be an integer, got '{v[:40]}'") from None
    if not lo <= n <= hi:
        raise HTTPFailure(400, f"'{name}' must be between {lo} and {hi}, got {n}")
    return n


def failure_of(e: BaseException) -> HTTPFailure:
    """The answer for an exception of the library (or our own)."""
    if isinstance(e, HTTPFailure):
        return e
    if isinstance(e, errors.UnknownGenes):
        sugg = getattr(e, "suggestions", None) or {}
        return HTTPFailure(400, str(e), suggestions=sugg, genes=list(getattr(e, "genes", []) or []))
    if isinstance(e, errors.UnknownSample):
        return HTTPFailure(404, str(e), known=list(getattr(e, "known", []) or []))
    if isinstance(e, errors.ReadOnly):
        return HTTPFailure(409, f"{e} (the viewer opened the store read-only: another process holds it)")
    if isinstance(e, errors.BadInput):
        return HTTPFailure(400, str(e))
    if isinstance(e, errors.Error):
        return HTTPFailure(500, f"{type(e).__name__}: {e}")
    return HTTPFailure(500, f"internal error: {type(e).__name__}: {e}")


class _Base(tornado.web.RequestHandler):
    """JSON answers and error handling shared by the API routes."""

    allowed: set[str] = set()
    viewer: Viewer

    def initialize(self, get_viewer: Callable[[], Viewer | None]) -> None:
        self.get_viewer = get_viewer

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def reply(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, default=_jsonable))

    def fail(self, f: HTTPFailure) -> None:
        self.reply(f.status, {"error": str(f), **f.extra})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.reply(status_code, {"error": self._reason})

    async def get(self, *args: str) -> None:
        try:
            viewer = self.get_viewer()
            if viewer is None:
                raise HTTPFailure(503, "no viewer is running in this process")
            self.viewer = viewer
            params = parse_query(self.request.query, self.allowed)
            body = await tornado.ioloop.IOLoop.current().run_in_executor(self.viewer._pool, self.work, params)
            self.reply(200, body)
        except Exception as e:
            f = failure_of(e)
            if f.status >= 500:
                traceback.print_exc()
            self.fail(f)

    def work(self, params: dict[str, str]) -> dict:
        """The answer to a valid request (runs in a worker thread)."""
        raise NotImplementedError


class InfoHandler(_Base):
    """``/vortex/api/info``: the samples, the current state and the neuroglancer URL."""

    def work(self, params: dict[str, str]) -> dict:
        return self.viewer.describe()


class OpenHandler(_Base):
    """``/vortex/api/open?sample=S``: show sample S (404 when the store lacks it)."""

    allowed = {"sample"}

    def work(self, params: dict[str, str]) -> dict:
        return self.viewer.open_sample(_required(params, "sample"))


class QueryHandler(_Base):
    """``/vortex/api/query?genes=A,B[&sample=S]``: run (or reuse) the gene query and
    show its heatmap on the sample; answers the triage table of every sample."""

    allowed = {"genes", "sample"}

    def work(self, params: dict[str, str]) -> dict:
        genes = parse_genes(_required(params, "genes"))
        return self.viewer.show_genes(genes, params.get("sample") or None)


class DomainsHandler(_Base):
    """``/vortex/api/domains?k=5[&sample=S]``: k-means domains as a segmentation layer."""

    allowed = {"k", "sample"}

    def work(self, params: dict[str, str]) -> dict:
        k = parse_int(params, "k", 5, 2, 64)
        return self.viewer.show_domains(k, params.get("sample") or None)


class PredictHandler(_Base):
    """``/vortex/api/predict?gene=G[&method=M][&sample=S]``: gene G's predicted
    expression as the ``predicted`` layer (method ``predictor`` or a stored readout)."""

    allowed = {"gene", "method", "sample"}

    def work(self, params: dict[str, str]) -> dict:
        gene = _one_gene(_required(params, "gene"))
        method = params.get("method") or None
        if method is not None and not _NAME.match(method):
            raise HTTPFailure(400, f"'{method[:40]}' is not a method name")
        return self.viewer.show_prediction(gene, method, params.get("sample") or None)


class SpotsHandler(_Base):
    """``/vortex/api/spots?[gene=G][&set=T][&sample=S]``: show spot set T over sample S
    and colour the spots by gene G (one of them at least)."""

    allowed = {"gene", "set", "sample"}

    def work(self, params: dict[str, str]) -> dict:
        if not params.get("gene") and not params.get("set"):
            raise HTTPFailure(400, "give a gene to colour the spots by, or a spot set to show")
        gene = _one_gene(params["gene"]) if params.get("gene") else None
        return self.viewer.show_spots(gene, params.get("sample") or None, params.get("set") or None)


class PatchHandler(_Base):
    """``/vortex/api/patch?sample=S&z=&y=&x=[&top=10]``: morphology retrieval from the
    patch containing the model voxel (z, y, x), as a double-click in the view does."""

    allowed = {"sample", "z", "y", "x", "top"}

    def work(self, params: dict[str, str]) -> dict:
        sample = _required(params, "sample")
        at = [parse_int(params, a, -1, 0, 1 << 40) for a in "zyx"]
        if min(at) < 0:
            raise HTTPFailure(400, "give the voxel as z, y and x (model voxels)")
        top = parse_int(params, "top", 10, 1, 1000)
        return self.viewer.retrieve(sample, at, top=top)


class RetrievalHandler(_Base):
    """``/vortex/api/retrieval``: the latest retrieval (the page polls it after a
    double-click in the view)."""

    def work(self, params: dict[str, str]) -> dict:
        return self.viewer.last_retrieval()


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's files from the package folder; a path outside it is a 403 with a
    message, a missing file a 404."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        msg = {
            403: "that path is outside the viewer's static folder",
            404: "no such file in the viewer's static folder",
        }.get(status_code, self._reason)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": msg}))


class PageHandler(tornado.web.RequestHandler):
    """``/vortex/``: the page (``viewer_static/index.html``)."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish((STATIC / "index.html").read_bytes())


class RedirectHandler(tornado.web.RequestHandler):
    """``/vortex`` -> ``/vortex/``."""

    def get(self) -> None:
        self.redirect("/vortex/")


def _required(params: dict[str, str], name: str) -> str:
    v = params.get(name, "")
    if not v:
        raise HTTPFailure(400, f"missing parameter '{name}'")
    return v


def _one_gene(text: str) -> str:
    genes = parse_genes(text)
    if len(genes) != 1:
        raise HTTPFailure(400, f"give one gene, got {len(genes)}")
    return genes[0]


def _jsonable(o: Any) -> Any:
    """NumPy scalars and arrays in answers."""
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def routes(get_viewer: Callable[[], Viewer | None]) -> list:
    """The tornado routes, answering for the viewer ``get_viewer`` returns."""
    kw = {"get_viewer": get_viewer}
    return [
        (r"/vortex", RedirectHandler),
        (r"/vortex/", PageHandler),
        (r"/vortex/api/info", InfoHandler, kw),
        (r"/vortex/api/open", OpenHandler, kw),
        (r"/vortex/api/query", QueryHandler, kw),
        (r"/vortex/api/domains", DomainsHandler, kw),
        (r"/vortex/api/predict", PredictHandler, kw),
        (r"/vortex/api/spots", SpotsHandler, kw),
        (r"/vortex/api/patch", PatchHandler, kw),
        (r"/vortex/api/retrieval", RetrievalHandler, kw),
        (r"/vortex/static/(.*)", StaticHandler, {"path": str(STATIC)}),
        (r"/vortex/zarr/([^/]+)/(.*)", ZarrHandler, kw),
    ]
