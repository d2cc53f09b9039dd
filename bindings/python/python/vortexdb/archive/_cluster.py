"""Where an archive's work runs: Ray (a cluster, or a local Ray started on demand) or
this process (``backend="local"``: the same calls on a thread pool, no Ray needed).

Queries go to :class:`ShardReader` objects that keep their shards open read-only
(Ray actors, several shards each); every call names its shard. A call that fails
because its worker died, or that has not answered within the timeout, is reported
with the shard's name and never silently dropped; an error of vortexdb itself (an
unknown gene, say) is raised as it is."""

from __future__ import annotations

import collections
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

import numpy as np

from ..errors import ArchiveError, ClusterUnreachable
from ..errors import Error as VortexError

# Score histogram bins over [-1, 1] (cosine): the archive's exact percentile reads the
# counts, then only the scores of the one or two bins holding it.
BINS = 16384


def score_bins(scores: np.ndarray) -> np.ndarray:
    """The histogram bin of each score (the same arithmetic in every shard)."""
    b = np.floor((scores.astype(np.float64) + 1.0) * (0.5 * BINS))
    return np.clip(b, 0, BINS - 1).astype(np.int64)


class ShardReader:
    """Shards opened read-only, and the per-shard calls of the archive's queries.
    Query results stay here for their heatmaps: the last ``KEEP`` per shard (each
    holds every scored patch: ~56 bytes a patch, 112 MB for a 2M-patch volume)."""

    KEEP = 2

    def __init__(self) -> None:
        self.stores: dict[str, Any] = {}
        self.results: collections.OrderedDict[tuple[str, str], Any] = collections.OrderedDict()

    def open(self, shard: str, path: str) -> int:
        """Open ``shard`` (read-only) unless open; returns this process's pid."""
        from .. import open as open_store

        if shard not in self.stores:
            self.stores[shard] = open_store(path, read_only=True)
        return os.getpid()

    def close(self) -> None:
        """Close every shard."""
        for s in self.stores.values():
            s.close()
        self.stores.clear()
        self.results.clear()

    def spot_pool(self, shard: str, model: str | None, samples: list[str]) -> bytes:
        """The shard's spot pool of ``samples``."""
        return self.stores[shard]._s.spot_pool(model, samples)

    def score(
        self,
        shard: str,
        qid: str,
        embedding: list[float],
        samples: list[str],
        exclude: list[str],
        model: str | None,
        target: str,
        top: int,
    ) -> dict:
        """Score ``embedding`` against the shard's patches of ``samples``: the best
        ``top`` rows, the patch count and the score histogram."""
        r = self.stores[shard]._s.query_embedding(
            embedding, samples=samples, exclude=exclude, model=model, target=target
        )
        self.results[(shard, qid)] = r
        while len(self.results) > self.KEEP * max(1, len(self.stores)):
            self.results.popitem(last=False)
        scores = r.scores()
        summary = r.summary(top)
        return {
            "n": int(scores.size),
            "top": summary["top"],
            "hist": np.bincount(score_bins(scores), minlength=BINS).astype(np.int64),
        }

    def bin_values(self, shard: str, qid: str, bins: list[int]) -> dict[int, np.ndarray]:
        """The scores falling in ``bins``, sorted ascending (float64)."""
        scores = self.results[(shard, qid)].scores()
        b = score_bins(scores)
        return {int(k): np.sort(scores[b == k].astype(np.float64)) for k in bins}

    def triage(self, shard: str, qid: str, threshold: float) -> list[dict]:
        """The shard's triage rows at the archive's threshold."""
        return self.results[(shard, qid)].triage_at(float(threshold))

    def heatmap(self, shard: str, qid: str, sample: str, downsample: int | None) -> np.ndarray:
        """The heatmap of ``sample`` for query ``qid``."""
        return self.results[(shard, qid)].heatmap(self.stores[shard]._s, sample, downsample)

    def patch(self, shard: str, kwargs: dict) -> dict:
        """``query_patch`` in the shard (a stored patch, or ``vector``)."""
        return self.stores[shard]._s.query_patch(**kwargs)

    def profile_embedding(self, shard: str, kwargs: dict) -> np.ndarray:
        """The embedding of a profile query, computed by the shard's model."""
        return self.stores[shard]._s.query_profile(**kwargs).embedding()


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse a Ray address whose host and port do not accept a connection."""
    a = address.split("://", 1)[-1]
    host, _, port = a.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachable(f"Ray address {address!r}: expected HOST:PORT (or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ClusterUnreachable(f"Ray cluster at {address!r} cannot be reached: {e}") from None


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local Ray (``None``), once."""
    try:
        import ray
    except ImportError:
        raise ArchiveError("backend 'ray' needs Ray: pip install 'vortexdb[ray]' (or use backend='local')") from None
    remote = address is not None and address not in ("", "local")
    if address is not None and remote:
        check_address(address)
    if ray.is_initialized():
        return
    if remote:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def _unwrap(e: BaseException) -> BaseException:
    """A vortexdb error raised in a Ray worker, as itself; anything else as is."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, VortexError):
        return cause
    return e


class LocalBackend:
    """The calls run in this process, on ``threads`` threads (the Rust work releases
    the GIL)."""

    name = "local"

    def __init__(self, threads: int = 2):
        self.reader = ShardReader()
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def ensure(self, shards: dict[str, str]) -> None:
        """Open ``shards`` (name -> path)."""
        for name, path in shards.items():
            self.reader.open(name, path)

    def call(self, calls: list[tuple[str, str, tuple]], timeout: float | None) -> tuple[list, dict[str, str]]:
        """Run ``(shard, method, args)`` calls; their results in order (None where
        missing) and the shards that failed or did not answer, with why."""
        futs = [self.pool.submit(getattr(self.reader, m), s, *a) for s, m, a in calls]
        done, _ = futures_wait(futs, timeout=timeout)
        out: list = []
        missing: dict[str, str] = {}
        for (shard, _, _), f in zip(calls, futs, strict=True):
            if f not in done:
                f.cancel()
                missing[shard] = f"no answer within {timeout} s"
                out.append(None)
                continue
            e = f.exception()
            if isinstance(e, VortexError):
                raise e
            if e is not None:
                missing[shard] = f"{type(e).__name__}: {e}"
                out.append(None)
                continue
            out.append(f.result())
        return out, missing

    def close(self) -> None:
        """Close the shards and the threads."""
        self.reader.close()
        self.pool.shutdown(wait=False)


class RayBackend:
    """The calls run on Ray actors (``ShardReader``), each holding some shards open;
    at most ``readers`` actors (default: the cluster's CPUs, at most the shards)."""

    name = "ray"

    def __init__(self, address: str | None = None, readers: int | None = None):
        connect(address)
        import ray

        self.ray = ray
        self.readers = readers
        self.actors: list[Any] = []
        self.where: dict[str, Any] = {}

    def _actor(self, i: int) -> Any:
        while len(self.actors) <= i:
            cls: Any = self.ray.remote(ShardReader)
            self.actors.append(cls.options(num_cpus=0, max_concurrency=2).remote())
        return self.actors[i]

    def ensure(self, shards: dict[str, str]) -> None:
        """Open ``shards`` (name -> path), spread over the readers."""
        new = [s for s in sorted(shards) if s not in self.where]
        if not new:
            return
        n = self.readers or max(1, min(int(self.ray.cluster_resources().get("CPU", 1)), len(shards)))
        refs = []
        base = len(self.where)
        for k, s in enumerate(new):
            a = self._actor((base + k) % n)
            refs.append(a.open.remote(s, shards[s]))
            self.where[s] = a
        try:
            self.ray.get(refs)
        except Exception as e:
            for s in new:
                self.where.pop(s, None)
            raise _unwrap(e) from None

    def call(self, calls: list[tuple[str, str, tuple]], timeout: float | None) -> tuple[list, dict[str, str]]:
        """As :meth:`LocalBackend.call`, on the actors."""
        refs = [getattr(self.where[s], m).remote(s, *a) for s, m, a in calls]
        t0 = time.monotonic()
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        ready_set = set(ready)
        out: list = []
        missing: dict[str, str] = {}
        for (shard, _, _), r in zip(calls, refs, strict=True):
            if r not in ready_set:
                self.ray.cancel(r, force=False)
                missing[shard] = f"no answer within {timeout} s"
                out.append(None)
                continue
            try:
                out.append(self.ray.get(r))
            except Exception as e:
                u = _unwrap(e)
                if isinstance(u, VortexError):
                    raise u from None
                missing[shard] = f"{type(e).__name__} after {time.monotonic() - t0:.1f} s: {str(e).splitlines()[0]}"
                out.append(None)
        return out, missing

    def close(self) -> None:
        """Stop the readers."""
        for a in self.actors:
            self.ray.kill(a)
        self.actors.clear()
        self.where.clear()
