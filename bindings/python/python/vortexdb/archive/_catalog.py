"""The archive's catalog: one JSON file (``archive.json``) at the archive's root naming
the model every shard embeds with (name and checksum), and per shard its directory,
status and samples with their summary figures. Written whole, atomically (a temporary
file, fsync, rename, fsync of the directory), under an exclusive lock, and only by the
driver: a shard's row is committed when the shard is complete."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchiveError

CATALOG = "archive.json"
FORMAT = "vortexdb-archive"
VERSION = 1
SHARDS_DIR = "shards"
PROGRESS_DIR = ".progress"
LOCK = ".catalog.lock"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def shard_name(name: str) -> str:
    """``name`` if it can name a shard directory (letters, digits, ``._-``, at most 128,
    not starting with a dot), else an :class:`ArchiveError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArchiveError(f"shard name {name!r}: use 1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    return name


def model_identity(models: list[dict]) -> dict:
    """The model a store embeds with, as the catalog records it: its name and a
    checksum over the sha256 of each of its files (the store's own record)."""
    if len(models) != 1:
        names = [m["name"] for m in models]
        raise ArchiveError(f"a shard holds exactly one model; this one holds {len(models)} ({names})")
    m = models[0]
    files = sorted((str(f), str(h)) for f, h in m["files"])
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()
    return {"name": m["name"], "checksum": digest}


@dataclass
class Catalog:
    """What ``archive.json`` holds."""

    model: dict
    shards: dict[str, dict] = field(default_factory=dict)

    # -- reading ------------------------------------------------------------------
    @classmethod
    def load(cls, root: Path) -> Catalog:
        """Read and validate the catalog of the archive at ``root``."""
        path = root / CATALOG
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ArchiveError(f"{root}: not an archive (no {CATALOG})") from None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot be read: {e}") from None

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
            keys = [k for k, _ in pairs]
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise ArchiveError(f"{path}: key {dup[0]!r} appears twice in one object")
            return dict(pairs)

        try:
            raw = json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as e:
            raise ArchiveError(f"{path}: not JSON ({e})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ArchiveError(f"{path}: not a vortexdb archive catalog (format is not {FORMAT!r})")
        if raw.get("version") != VERSION:
            raise ArchiveError(f"{path}: catalog version {raw.get('version')!r}; this vortexdb reads {VERSION}")
        model = raw.get("model")
        if not isinstance(model, dict) or not {"name", "checksum"} <= set(model):
            raise ArchiveError(f"{path}: the catalog names no model (name and checksum)")
        shards = raw.get("shards")
        if not isinstance(shards, dict):
            raise ArchiveError(f"{path}: 'shards' is not an object")
        cat = cls(model=model, shards={})
        owner: dict[str, str] = {}
        for name, row in shards.items():
            shard_name(name)
            if not isinstance(row, dict) or not isinstance(row.get("samples"), list):
                raise ArchiveError(f"{path}: shard {name!r} has no sample list")
            for s in row["samples"]:
                sid = s.get("id") if isinstance(s, dict) else None
                if not isinstance(sid, str):
                    raise ArchiveError(f"{path}: shard {name!r} lists a sample without an id")
                if sid in owner:
                    raise ArchiveError(
                        f"{path}: the catalog names sample {sid!r} twice (shards {owner[sid]!r} and {name!r})"
                    )
                owner[sid] = name
            cat.shards[name] = row
        return cat

    def to_json(self) -> dict:
        """The catalog as written."""
        return {"format": FORMAT, "version": VERSION, "model": self.model, "shards": self.shards}

    def save(self, root: Path) -> None:
        """Write the catalog atomically (rename over the old one)."""
        path = root / CATALOG
        tmp = root / f".{CATALOG}.{os.getpid()}.tmp"
        with tmp.open("w") as f:
            json.dump(self.to_json(), f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- questions ----------------------------------------------------------------
    def owner(self, sample: str) -> str | None:
        """The shard holding ``sample``, or None."""
        for name, row in self.shards.items():
            if any(s["id"] == sample for s in row["samples"]):
                return name
        return None

    def samples(self) -> list[dict]:
        """Every sample row, with its shard, in shard then sample order."""
        out = []
        for name in sorted(self.shards):
            for s in self.shards[name]["samples"]:
                out.append({"shard": name, **s})
        return out

    def shard_path(self, root: Path, name: str) -> Path:
        """The directory of shard ``name`` (relative paths are under ``root``)."""
        p = Path(self.shards[name]["path"])
        return p if p.is_absolute() else root / p


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the archive's catalog lock (exclusive, released with the process)."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def commit_shard(root: Path, name: str, report: dict) -> Catalog:
    """Record a complete shard (its ingest task's report) in the catalog, refusing a
    shard whose model is not the archive's or whose samples another shard holds."""
    with locked(root):
        cat = Catalog.load(root)
        if report["model"] != {"name": cat.model["name"], "checksum": cat.model["checksum"]}:
            raise ArchiveError(
                f"shard {name!r} embeds with model {report['model']['name']!r} "
                f"(checksum {report['model']['checksum'][:12]}...); the archive's is "
                f"{cat.model['name']!r} ({cat.model['checksum'][:12]}...)"
            )
        for s in report["samples"]:
            other = cat.owner(s["id"])
            if other is not None and other != name:
                raise ArchiveError(f"sample {s['id']!r} of shard {name!r} is already in shard {other!r}")
        cat.shards[name] = {
            "path": report["path"],
            "status": "complete",
            "samples": report["samples"],
            "committed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        cat.save(root)
        return cat
