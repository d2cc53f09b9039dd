"""Ingest of one shard: what a Ray task (or the local backend) runs for each group of
samples. It creates the shard (built beside its final place and renamed in, so a
shard directory is always a store), registers the archive's model (a different one is
refused), then runs each sample's ingest calls; a sample already complete is skipped
and an interrupted one resumes through the store's own resumable ingest, so a task
killed and retried stores nothing twice. Progress goes to a small JSON file per shard
that the driver reads for the archive's one progress bar."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import ArchiveError
from ._catalog import PROGRESS_DIR, SHARDS_DIR, model_identity

# What a sample spec may hold besides its id and shard: the image ingest (one of them)
# and the spots; each is a path or a dict of the Store call's keyword arguments.
IMAGE_KINDS = {"volume": "path", "sections": "images", "image": "path", "hest": "root"}
SPEC_KEYS = {"sample", "shard", "spots", *IMAGE_KINDS}


def normalise_spec(spec: Any, where: str) -> dict:
    """A sample spec checked and with every source as a dict (``{"path": ...}``)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("sample"), str):
        raise ArchiveError(f"{where}: a sample spec is a dict with a 'sample' id")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ArchiveError(f"{where}: unknown key(s) {sorted(unknown)}; a spec has {sorted(SPEC_KEYS)}")
    kinds = [k for k in IMAGE_KINDS if k in spec]
    if len(kinds) > 1:
        raise ArchiveError(f"{where}: sample {spec['sample']!r} names {kinds}; give at most one image source")
    if not kinds and "spots" not in spec:
        raise ArchiveError(f"{where}: sample {spec['sample']!r} names nothing to ingest")
    out = {"sample": spec["sample"], "shard": spec.get("shard", spec["sample"])}
    for k, first in [*IMAGE_KINDS.items(), ("spots", "data")]:
        if k not in spec:
            continue
        v = spec[k]
        v = dict(v) if isinstance(v, dict) else {first: v}
        if first not in v:
            raise ArchiveError(f"{where}: sample {spec['sample']!r}: {k} needs {first!r}")
        if first != "images":
            v[first] = os.fspath(v[first])
        else:
            v[first] = [os.fspath(p) for p in v[first]]
        out[k] = v
    return out


class _Progress:
    """Writes ``.progress/<shard>.json`` (pid, host, sample, done, total) at most every
    0.2 s, atomically; the driver sums these into one bar."""

    def __init__(self, root: Path, shard: str):
        self.dir = root / PROGRESS_DIR
        self.dir.mkdir(exist_ok=True)
        self.path = self.dir / f"{shard}.json"
        self.state = {"pid": os.getpid(), "host": socket.gethostname(), "shard": shard}
        self.last = 0.0

    def __call__(self, sample: str, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        self.state.update(sample=sample, done=int(done), total=int(total), time=time.time())
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


def _open_shard(root: Path, shard: str, model_spec: str, model: dict):
    """The shard's store, created (with the model) if it does not exist yet."""
    from .. import create, open  # noqa: A004

    final = root / SHARDS_DIR / shard
    if not final.exists():
        tmp = root / SHARDS_DIR / f".new-{shard}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        with create(tmp) as s:
            s.add_model(model_spec)
        os.replace(tmp, final)
    store = open(final)
    got = model_identity(store.models())
    if got != {"name": model["name"], "checksum": model["checksum"]}:
        store.close()
        raise ArchiveError(
            f"shard {shard!r} ({final}) embeds with model {got['name']!r} (checksum {got['checksum'][:12]}...); "
            f"the archive's is {model['name']!r} ({model['checksum'][:12]}...)"
        )
    return store


def ingest_shard(
    root: str, shard: str, specs: list[dict], model_spec: str, model: dict, threads: int, device: str
) -> dict:
    """Ingest ``specs`` (normalised sample specs) into shard ``shard`` of the archive at
    ``root``; returns the shard's catalog row. Safe to run again after a kill."""
    rootp = Path(root)
    progress = _Progress(rootp, shard)
    store = _open_shard(rootp, shard, model_spec, model)
    try:
        for spec in specs:
            sid = spec["sample"]
            info = store.info()
            status = {s["id"]: s["status"] for s in info["samples"]}
            kind = next((k for k in IMAGE_KINDS if k in spec), None)
            common = {"device": device, "threads": threads}
            if kind is not None and status.get(sid) != "complete":
                # The spec's own device / threads, where it names them, win.
                kw = {**common, **spec[kind]}

                def cb(done: int, total: int, stored: int, sid: str = sid) -> None:
                    progress(sid, done, total)

                kw.setdefault("progress", cb)
                if kind == "volume":
                    store.ingest_volume(sid, kw.pop("path"), **kw)
                elif kind == "sections":
                    store.ingest_sections(sid, kw.pop("images"), **kw)
                elif kind == "image":
                    store.ingest_image(sid, kw.pop("path"), **kw)
                else:
                    store.ingest_hest(sid, kw.pop("root"), **kw)
            has_spots = {s["sample"] for s in store.info()["spot_sets"]}
            if "spots" in spec and sid not in has_spots:
                kw = {**common, **spec["spots"]}
                store.ingest_spots(sid, kw.pop("data"), **kw)
            progress(sid, 1, 1, force=True)
        return shard_row(store, rootp, shard, [s["sample"] for s in specs])
    finally:
        store.close()


def shard_row(store: Any, root: Path, shard: str, want: list[str] | None = None) -> dict:
    """A shard's catalog row from its store: model identity, path and per sample its
    kind, status, patches, spots (``want``: these samples must be complete)."""
    info = store.info()
    spots = {s["sample"]: s for s in info["spot_sets"]}
    rows: dict[str, dict] = {}
    for s in info["samples"]:
        rows[s["id"]] = {
            "id": s["id"],
            "kind": s["kind"],
            "status": s["status"],
            "patches": int(s["patches"]),
            "source": s["source"],
            "spots": 0,
        }
    for sid, sp in spots.items():
        row = rows.setdefault(sid, {"id": sid, "kind": "spots", "status": "complete", "patches": 0, "source": None})
        row["spots"] = int(sp["kept"])
    for sid in want or []:
        if sid not in rows or rows[sid]["status"] != "complete":
            raise ArchiveError(f"shard {shard!r}: sample {sid!r} is not complete after its ingest")
    path = Path(store.path)
    try:
        rel = os.fspath(path.resolve().relative_to(root.resolve()))
    except ValueError:
        rel = os.fspath(path.resolve())
    return {
        "shard": shard,
        "path": rel,
        "model": model_identity(store.models()),
        "samples": [rows[k] for k in sorted(rows)],
    }
