"""Archives: many vortexdb stores (shards) under one root, ingested and queried on Ray.

An archive is a directory (local disk or a filesystem every machine mounts) holding
``archive.json`` (the catalog: the model every shard embeds with, by name and
checksum, and per shard its directory, status and samples with their patch and spot
counts) and ``shards/<name>/``, each an ordinary store that ``vortexdb.open`` and the
``vortexdb`` command read as usual::

    from vortexdb import archive
    a = archive.create("arch")                       # the built-in model
    a.ingest([{"sample": "s1", "volume": "s1.npy", "spots": "s1.parquet"},
              {"sample": "s2", "volume": "s2.npy"}])  # one Ray task per shard
    q = a.query_genes(["TUM01"])                     # as one store holding both
    q.top, q.triage, q.heatmap["s2"], q.partial

Ray does the scheduling, retries and resources (``backend="ray"``, the default: the
cluster at ``address``, or a local Ray started on demand); ``backend="local"`` runs
the same calls in this process. See docs/SCALING.md.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from .. import check as check_store
from .. import create as create_store
from ..errors import ArchiveError, OutputExists
from ..errors import Error as VortexError
from ._catalog import CATALOG, PROGRESS_DIR, SHARDS_DIR, Catalog, commit_shard, locked, model_identity, shard_name
from ._cluster import LocalBackend, RayBackend, connect
from ._ingest import ingest_shard, normalise_spec, shard_row
from ._query import ArchiveQueryResult, _names
from ._query import query_genes as _query_genes
from ._query import query_patch as _query_patch
from ._query import query_profile as _query_profile

__all__ = ["Archive", "ArchiveQueryResult", "create", "open"]


def create(root: str | os.PathLike[str], model: str = "default", *, backend: str = "ray", address: str | None = None):
    """Create an empty archive at ``root`` (a new directory) for ``model`` (a model
    directory, or ``"default"`` for the built-in one)."""
    r = Path(root)
    if r.exists() and any(r.iterdir()):
        raise OutputExists(f"{r}: exists and is not empty; an archive is created in a new directory")
    if backend == "ray" and address not in (None, "", "local"):
        connect(address)  # an unreachable cluster is refused before anything is written
    probe = r.parent / f".{r.name}.model-probe-{os.getpid()}"
    try:
        with create_store(probe) as s:
            s.add_model(os.fspath(model))
            ident = model_identity(s.models())
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    r.mkdir(parents=True, exist_ok=True)
    (r / SHARDS_DIR).mkdir(exist_ok=True)
    with locked(r):
        Catalog(model={**ident, "spec": os.fspath(model)}).save(r)
    return Archive(r, backend=backend, address=address)


def open(root: str | os.PathLike[str], *, backend: str = "ray", address: str | None = None):  # noqa: A001
    """Open the archive at ``root``."""
    return Archive(Path(root), backend=backend, address=address)


class Archive:
    """An archive of shards (see the module). ``backend``: ``"ray"`` (``address``: a
    cluster, default a local Ray) or ``"local"`` (this process, ``threads`` threads)."""

    def __init__(self, root: Path, *, backend: str = "ray", address: str | None = None, threads: int = 2):
        if backend not in ("ray", "local"):
            raise ArchiveError(f"backend {backend!r}: use 'ray' or 'local'")
        self.root = Path(root)
        self.catalog = Catalog.load(self.root)
        self.backend_name = backend
        self.address = address
        self.threads = threads
        self._b: Any = None
        # (shard, commit time, samples) -> that shard's spot pool (bytes).
        self._pools: dict[tuple, bytes] = {}

    # -- life cycle ---------------------------------------------------------------
    @property
    def _backend(self) -> Any:
        if self._b is None:
            self._b = RayBackend(self.address) if self.backend_name == "ray" else LocalBackend(self.threads)
        return self._b

    def _open(self, shards: set[str]) -> None:
        for s in shards:
            p = self.catalog.shard_path(self.root, s)
            if not (p / "vortex.redb").is_file():
                raise ArchiveError(f"shard {s!r}: {p} is missing or not a store (run `vortexdb archive check`)")
        try:
            self._backend.ensure({s: os.fspath(self.catalog.shard_path(self.root, s)) for s in shards})
        except VortexError as e:
            raise ArchiveError(f"a shard of {self.root} cannot be opened: {e}") from e

    def close(self) -> None:
        """Release the shards (and the Ray readers)."""
        if self._b is not None:
            self._b.close()
            self._b = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n = len(self.catalog.samples())
        return f"vortexdb.archive.Archive({os.fspath(self.root)!r}, {len(self.catalog.shards)} shards, {n} samples)"

    # -- what it holds ------------------------------------------------------------
    def samples(self):
        """One row per sample: shard, id, kind, status, patches, spots, source."""
        import pandas as pd

        cols = ["shard", "id", "kind", "status", "patches", "spots", "source"]
        return pd.DataFrame(self.catalog.samples(), columns=cols)

    def store_of(self, sample: str, read_only: bool = True):
        """The store (shard) holding ``sample``, opened: for per-sample work such as
        ``domains`` and ``predict``."""
        from .. import open as open_store
        from ..errors import UnknownSample

        shard = self.catalog.owner(sample)
        if shard is None:
            raise UnknownSample(f"sample {sample!r} is not in the archive {self.root}")
        return open_store(self.catalog.shard_path(self.root, shard), read_only=read_only)

    def check(self) -> dict:
        """Check every shard without writing: it exists and is a sound store
        (``vortexdb.check``), embeds with the archive's model, and holds the catalog's
        samples, complete. ``{"ok": bool, "shards": {name: [problems]}}``."""
        from .. import open as open_store

        report: dict[str, list[str]] = {}
        for name in sorted(self.catalog.shards):
            probs: list[str] = []
            p = self.catalog.shard_path(self.root, name)
            if not p.is_dir():
                report[name] = [f"{p}: missing"]
                continue
            try:
                damage = check_store(p).get("damage") or []
                if damage:
                    probs.append(f"{p}: damaged: {'; '.join(map(str, damage))[:500]}")
                with open_store(p, read_only=True) as s:
                    row = shard_row(s, self.root, name)
            except Exception as e:  # any failure to read the shard is its problem
                report[name] = probs + [f"{p}: cannot be read: {e}"]
                continue
            want = self.catalog.model
            if row["model"] != {"name": want["name"], "checksum": want["checksum"]}:
                probs.append(f"model {row['model']['name']!r} is not the archive's {want['name']!r}")
            have = {s["id"]: s for s in row["samples"]}
            for s in self.catalog.shards[name]["samples"]:
                got = have.get(s["id"])
                if got is None:
                    probs.append(f"sample {s['id']!r} listed in the catalog is not in the shard")
                elif got["status"] != "complete" or got["patches"] != s["patches"]:
                    probs.append(
                        f"sample {s['id']!r}: {got['status']}, {got['patches']} patches; "
                        f"the catalog says {s['patches']}"
                    )
            report[name] = probs
        return {"ok": all(not v for v in report.values()), "shards": report}

    def add_shard(self, path: str | os.PathLike[str], name: str | None = None) -> dict:
        """Attach an existing store as a shard (it stays where it is): refused, with
        the catalog unchanged, when its model is not the archive's, a sample is not
        complete, or a sample is already in another shard. Returns its catalog row."""
        from .. import open as open_store

        p = Path(path)
        name = shard_name(name or p.name)
        if name in self.catalog.shards:
            raise ArchiveError(f"shard {name!r} is already in the archive {self.root}")
        with open_store(p, read_only=True) as s:
            row = shard_row(s, self.root, name)
        bad = [x["id"] for x in row["samples"] if x["status"] != "complete"]
        if bad:
            raise ArchiveError(f"{p}: sample(s) {bad} are not complete; finish their ingest first")
        self.catalog = commit_shard(self.root, name, row)
        return self.catalog.shards[name]

    # -- ingest -------------------------------------------------------------------
    def ingest(
        self,
        specs: list[dict],
        *,
        threads: int = 1,
        device: str = "cpu",
        max_retries: int = 3,
        progress: bool = True,
    ) -> dict:
        """Ingest samples, one task per shard (``spec["shard"]``, default the sample id)
        with ``threads`` CPUs (and a GPU with ``device="cuda"``). Each spec: ``sample``,
        one of ``volume`` / ``sections`` / ``image`` / ``hest`` and/or ``spots`` (a path,
        or a dict of the matching ``Store.ingest_*`` keyword arguments), optional
        ``shard``. A killed task is retried (``max_retries``) and resumes; a shard's
        catalog row is committed when it is complete; samples already in the catalog
        are skipped. Returns ``{"committed": [...], "skipped": [...], "seconds": ...}``;
        shards that failed raise an :class:`ArchiveError` naming them after the others
        are committed."""
        t0 = time.monotonic()
        norm = [normalise_spec(s, f"spec {i}") for i, s in enumerate(specs)]
        seen: dict[str, int] = {}
        for i, s in enumerate(norm):
            if s["sample"] in seen:
                raise ArchiveError(f"spec {i}: sample {s['sample']!r} is also spec {seen[s['sample']]}")
            seen[s["sample"]] = i
            shard_name(s["shard"])
        self.catalog = Catalog.load(self.root)
        groups: dict[str, list[dict]] = {}
        skipped = []
        for s in norm:
            owner = self.catalog.owner(s["sample"])
            if owner is not None and owner != s["shard"]:
                raise ArchiveError(f"sample {s['sample']!r} is already in shard {owner!r}, not {s['shard']!r}")
            if owner is not None:
                skipped.append(s["sample"])
                continue
            groups.setdefault(s["shard"], []).append(s)
        for shard in groups:
            if shard in self.catalog.shards:
                raise ArchiveError(f"shard {shard!r} is complete in the catalog; new samples go to a new shard")
        args = (self.catalog.model["spec"], self.catalog.model)
        failed: dict[str, str] = {}
        committed: list[str] = []
        if self.backend_name == "local":
            for shard, sp in groups.items():
                try:
                    rep = ingest_shard(os.fspath(self.root), shard, sp, *args, threads, device)
                except ArchiveError as e:
                    failed[shard] = str(e)
                    continue
                commit_shard(self.root, shard, rep)
                committed.append(shard)
        else:
            committed, failed = self._ingest_ray(groups, args, threads, device, max_retries, progress)
        self.catalog = Catalog.load(self.root)
        if failed:
            lines = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
            raise ArchiveError(f"{len(failed)} shard(s) failed (the others are committed): {lines}")
        return {"committed": committed, "skipped": skipped, "seconds": time.monotonic() - t0}

    def _ingest_ray(
        self, groups: dict[str, list[dict]], args: tuple, threads: int, device: str, max_retries: int, progress: bool
    ) -> tuple[list[str], dict[str, str]]:
        self._backend  # noqa: B018 - joins the cluster
        import ray

        task: Any = ray.remote(ingest_shard).options(
            num_cpus=max(1, threads),
            num_gpus=1 if device == "cuda" else 0,
            max_retries=max_retries,
            retry_exceptions=False,
        )
        root = os.fspath(self.root)
        refs = {task.remote(root, shard, sp, *args, threads, device): shard for shard, sp in groups.items()}
        bar = _Bar(self.root, list(groups), progress)
        committed: list[str] = []
        failed: dict[str, str] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for r in done:
                shard = refs[r]
                try:
                    rep = ray.get(r)
                    commit_shard(self.root, shard, rep)
                    committed.append(shard)
                except Exception as e:  # a shard that failed is reported by name
                    cause = getattr(e, "cause", None) or e
                    failed[shard] = f"{type(cause).__name__}: {str(cause).splitlines()[0]}"
            bar.update(len(committed) + len(failed))
        bar.close()
        return committed, failed

    # -- queries ------------------------------------------------------------------
    def query_genes(
        self,
        genes: str | list[str],
        *,
        sample: str | list[str] | None = None,
        spots_from: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        min_pcc: float = 0.5,
        percentile: float = 75.0,
        min_fraction: float = 0.5,
        threshold_percentile: float = 90.0,
        top: int = 10,
        target: str = "3d",
        timeout: float | None = 600.0,
    ) -> ArchiveQueryResult:
        """The molecular query over every shard, as ``Store.query_genes`` over one store
        holding all the samples; shards that do not answer within ``timeout`` seconds
        are named in ``result.missing``."""
        return _query_genes(
            self,
            _names(genes),
            sample=_names(sample),
            spots_from=_names(spots_from),
            exclude=_names(exclude),
            min_pcc=min_pcc,
            percentile=percentile,
            min_fraction=min_fraction,
            threshold_percentile=threshold_percentile,
            top=top,
            target=target,
            timeout=timeout,
        )

    def query_profile(
        self,
        values: dict[str, float] | None = None,
        *,
        markers: str | list[str] | None = None,
        counts: bool = False,
        sample: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        threshold_percentile: float = 90.0,
        top: int = 10,
        target: str = "3d",
        timeout: float | None = 600.0,
    ) -> ArchiveQueryResult:
        """The profile query over every shard (``Store.query_profile``)."""
        kw = {
            "values": None if values is None else [(str(g), float(v)) for g, v in values.items()],
            "markers": None if markers is None else _names(markers),
            "counts": counts,
        }
        return _query_profile(
            self,
            kw,
            sample=_names(sample),
            exclude=_names(exclude),
            threshold_percentile=threshold_percentile,
            top=top,
            target=target,
            timeout=timeout,
        )

    def query_patch(
        self,
        sample: str,
        at: tuple[int, int, int] | list[int],
        *,
        top: int = 10,
        within: str | list[str] | None = None,
        exclude_self: bool = False,
        exact: bool = False,
        target: str = "3d",
        timeout: float | None = 600.0,
    ):
        """Morphology retrieval over every shard (``Store.query_patch``): the best
        ``top`` patches as a DataFrame with a ``shard`` column."""
        return _query_patch(
            self,
            sample,
            (int(at[0]), int(at[1]), int(at[2])),
            top=top,
            within=_names(within),
            exclude_self=exclude_self,
            exact=exact,
            target=target,
            timeout=timeout,
        )


class _Bar:
    """The archive's one progress bar: shards finished, and the positions of the
    samples in progress (from the tasks' ``.progress`` files)."""

    def __init__(self, root: Path, shards: list[str], enabled: bool):
        self.root, self.shards, self.bar = root, shards, None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=len(shards), desc="archive ingest", unit="shards")
            except ImportError:
                self.bar = None

    def update(self, finished: int) -> None:
        if self.bar is None:
            return
        import json

        frac = 0.0
        for s in self.shards:
            try:
                p = json.loads((self.root / PROGRESS_DIR / f"{s}.json").read_text())
                frac += min(1.0, p["done"] / max(1, p["total"]))
            except (OSError, ValueError, KeyError):
                pass
        self.bar.n = round(max(float(finished), frac), 2)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# Names the CLI and docs use.
CATALOG_FILE = CATALOG
