"""vortexdb: an embedded morphology-transcriptome vector database for the VORTEX method.

Open a store, ingest 3D volumes, serial sections, H&E images and spot expression
(NumPy arrays, AnnData objects or files), query genes to 3D heatmaps, predict
expression and find spatial domains, and look at it all in the browser
(``vortexdb.view(store)``, ``python -m vortexdb view STORE``)::

    import vortexdb
    with vortexdb.create("store") as db:
        db.add_model("default")
        db.ingest_volume("s1", volume)              # a (Z, Y, X) uint8 array
        db.ingest_spots("s1", adata)                # AnnData with obsm["spatial"]
        q = db.query_genes(["ERBB2"])
        q.heatmap["s1"]                             # 3D float32 array

The work is done by the Rust library (``vortexdb._native``); this package turns its
results into NumPy, pandas and AnnData objects. Errors are the classes of
:mod:`vortexdb.errors` (the common ones also as ``vortexdb.Error``, ``vortexdb.BadInput``,
...).
"""

from __future__ import annotations

from . import _runtime, errors
from ._native import FORMAT_VERSION, ORT_VERSION, arg_rules, loaded_runtime_library
from ._results import Domains, QueryResult
from ._store import (
    Store,
    check,
    create,
    open,  # noqa: A004 - vortexdb.open is the API
    phantom,
    register_section_to_volume,
    register_sections,
    repair,
)
from ._viewer import Viewer, view
from .errors import BadFile, BadInput, Error, Interrupted, StoreLocked, UnknownGenes, UnknownSample

__version__ = "0.1.0"

_runtime.use_wheel_library()

__all__ = [
    "FORMAT_VERSION",
    "ORT_VERSION",
    "BadFile",
    "BadInput",
    "Error",
    "Interrupted",
    "StoreLocked",
    "UnknownGenes",
    "UnknownSample",
    "arg_rules",
    "check",
    "repair",
    "register_sections",
    "register_section_to_volume",
    "Domains",
    "QueryResult",
    "Store",
    "create",
    "errors",
    "loaded_runtime_library",
    "open",
    "phantom",
    "view",
    "Viewer",
]
