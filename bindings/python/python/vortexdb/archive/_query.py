"""Queries over an archive, answered as one store holding every sample would answer
them:

* the molecular query's embedding is built once, from the spot pools of every shard
  named (``vortexdb._native.gene_profile`` over the merged pools: the same spot
  selection, correlated genes and percentile rule as one store);
* each shard scores it against its patches and returns its best ``top`` rows, its
  patch count and a histogram of its scores; the triage threshold (a percentile of
  all scores) is then found exactly from the histograms plus the scores of the one or
  two bins that hold it, and each shard gives its triage rows at that threshold;
* morphology retrieval: the query patch's embedding is read in its own shard and every
  shard returns its ``top`` best with exact scores, so the merged top is exact.

A shard that fails or does not answer within the timeout is named in ``missing`` and
the result says it is ``partial``."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _native
from .._results import _Heatmaps
from ..errors import NothingSelected, UnknownSample
from ._cluster import BINS

if TYPE_CHECKING:
    import pandas as pd

    from . import Archive

TARGET_KINDS = {"3d": {"3d", "2.5d"}, "2d": {"2d"}}


def _names(x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return [str(v) for v in x]


class _Deadline:
    def __init__(self, timeout: float | None):
        self.end = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout

    def left(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())


class ArchiveQueryResult:
    """A molecular or profile query over an archive. ``top``, ``triage``, ``spots``,
    ``embedding``, ``threshold`` and ``heatmap`` as :class:`vortexdb.QueryResult`'s
    (``top`` also names each patch's ``shard``); ``partial`` is True when a shard did
    not answer, and ``missing`` maps each such shard to why."""

    def __init__(self, archive: Archive, qid: str, owners: dict[str, str]):
        self._archive = archive
        self._qid = qid
        self._owners = owners
        self.query: dict = {}
        self.embedding = np.zeros(0, np.float32)
        self.spots_used: list[tuple[str, str]] = []
        self.top_rows: list[dict] = []
        self.triage_rows: list[dict] = []
        self.patches = 0
        self.threshold = 0.0
        self.threshold_percentile = 90.0
        self.missing: dict[str, str] = {}
        self.downsample: int | None = None
        # Seconds per phase: pools (spot pools read), profile (the query embedding),
        # score (every shard scores), threshold (the bins' scores), triage.
        self.timings: dict[str, float] = {}
        self.heatmap: Mapping[str, np.ndarray] = _Heatmaps(self)

    @property
    def partial(self) -> bool:
        """True when some shard's answer is missing (see ``missing``)."""
        return bool(self.missing)

    @property
    def samples(self) -> list[str]:
        """Samples scored, in triage order."""
        return [r["sample"] for r in self.triage_rows]

    @property
    def top(self) -> pd.DataFrame:
        """The best patches over all shards: shard, sample, id (the shard's vector id),
        z, y, x, score, percentile."""
        import pandas as pd

        rows = [
            {
                "shard": r["shard"],
                "sample": r["sample"],
                "id": r["id"],
                "z": r["origin"][0],
                "y": r["origin"][1],
                "x": r["origin"][2],
                "score": r["score"],
                "percentile": r["percentile"],
            }
            for r in self.top_rows
        ]
        return pd.DataFrame(rows, columns=["shard", "sample", "id", "z", "y", "x", "score", "percentile"])

    @property
    def triage(self) -> pd.DataFrame:
        """One row per sample over every shard, in triage order."""
        import pandas as pd

        return pd.DataFrame(self.triage_rows)

    @property
    def spots(self) -> pd.DataFrame:
        """The (sample, spot) pairs a molecular query averaged."""
        import pandas as pd

        return pd.DataFrame(self.spots_used, columns=["sample", "spot"])

    def heatmap_of(self, sample: str, downsample: int | None = None) -> np.ndarray:
        """The heatmap of ``sample``, computed in its shard."""
        shard = self._owners.get(sample)
        if shard is None:
            raise UnknownSample(f"sample {sample!r} was not scored by this query (scored: {sorted(self._owners)})")
        d = self.downsample if downsample is None else downsample
        out, missing = self._archive._backend.call([(shard, "heatmap", (self._qid, sample, d))], None)
        if missing:
            raise NothingSelected(f"shard {shard!r} holding {sample!r} did not answer: {missing[shard]}")
        return out[0]

    def __repr__(self) -> str:
        part = f", partial: {sorted(self.missing)} missing" if self.missing else ""
        return f"<archive query over {len(self.samples)} samples, {self.patches} patches{part}>"


def scored_samples(archive: Archive, samples: list[str], exclude: list[str], target: str) -> dict[str, list[str]]:
    """Shard -> its complete samples of ``target``'s kinds (``samples``: only these)."""
    cat = archive.catalog
    known = {r["id"]: r for r in cat.samples()}
    for s in samples + exclude:
        if s not in known:
            raise UnknownSample(f"sample {s!r} is not in the archive {archive.root} (known: {sorted(known)})")
    kinds = TARGET_KINDS.get(target)
    if kinds is None:
        raise NothingSelected(f"target {target!r}: use '3d' or '2d'")
    out: dict[str, list[str]] = {}
    for r in cat.samples():
        if samples and r["id"] not in samples:
            continue
        if r["id"] in exclude or r["kind"] not in kinds or r["status"] != "complete" or r["patches"] == 0:
            continue
        out.setdefault(r["shard"], []).append(r["id"])
    if not out:
        raise NothingSelected(f"no {target} patches in the archive's samples to score")
    return out


def _percentile_of(hist: np.ndarray, values: dict[int, np.ndarray], n: int, p: float) -> float:
    """numpy's linear percentile of all scores from the counts and the scores of the
    bins holding the two order statistics it needs (the library's own rule)."""
    pos = (n - 1) * p / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    cum = np.cumsum(hist)

    def kth(k: int) -> float:
        b = int(np.searchsorted(cum, k, side="right"))
        before = int(cum[b - 1]) if b > 0 else 0
        return float(values[b][k - before])

    v_lo, v_hi = kth(lo), kth(hi)
    return float(np.float32(v_lo + (v_hi - v_lo) * (pos - lo)))


def _bins_needed(hist: np.ndarray, n: int, p: float) -> list[int]:
    pos = (n - 1) * p / 100.0
    cum = np.cumsum(hist)
    return sorted({int(np.searchsorted(cum, k, side="right")) for k in (math.floor(pos), math.ceil(pos))})


def score_everywhere(
    archive: Archive,
    result: ArchiveQueryResult,
    embedding: np.ndarray,
    by_shard: dict[str, list[str]],
    *,
    target: str,
    top: int,
    threshold_percentile: float,
    deadline: _Deadline,
) -> ArchiveQueryResult:
    """Score ``embedding`` in every shard of ``by_shard`` and merge (see the module)."""
    b = archive._backend
    emb = [float(x) for x in np.asarray(embedding, np.float32)]
    shards = sorted(by_shard)
    calls: list[tuple[str, str, tuple]] = [
        (s, "score", (result._qid, emb, by_shard[s], [], None, target, top)) for s in shards
    ]
    t0 = time.perf_counter()
    out, missing = b.call(calls, deadline.left())
    result.timings["score"] = time.perf_counter() - t0
    result.missing.update(missing)
    answered = [(s, o) for s, o in zip(shards, out, strict=True) if o is not None]
    result.embedding = np.asarray(embedding, np.float32)
    result.threshold_percentile = threshold_percentile
    result._owners = {x: s for s, _ in answered for x in by_shard[s]}
    n = sum(o["n"] for _, o in answered)
    result.patches = n
    if n == 0:
        return result
    hist = np.zeros(BINS, np.int64)
    for _, o in answered:
        hist += o["hist"]
    bins = _bins_needed(hist, n, threshold_percentile)
    calls = [(s, "bin_values", (result._qid, bins)) for s, o in answered]
    t0 = time.perf_counter()
    vals, missing = b.call(calls, deadline.left())
    result.missing.update(missing)
    if missing:
        return result
    merged = {k: np.sort(np.concatenate([v[k] for v in vals])) for k in bins}
    result.threshold = _percentile_of(hist, merged, n, threshold_percentile)
    result.timings["threshold"] = time.perf_counter() - t0
    calls = [(s, "triage", (result._qid, result.threshold)) for s, _ in answered]
    t0 = time.perf_counter()
    tri, missing = b.call(calls, deadline.left())
    result.timings["triage"] = time.perf_counter() - t0
    result.missing.update(missing)
    rows = [r for t in tri if t is not None for r in t]
    rows.sort(key=lambda r: (-r["fraction_above"], -r["max_score"], r["sample"]))
    result.triage_rows = rows
    tops = [dict(r, shard=s) for s, o in answered for r in o["top"]]
    tops.sort(key=lambda r: (-r["score"], r["sample"], r["id"]))
    result.top_rows = tops[:top]
    return result


def query_genes(
    archive: Archive,
    genes: list[str],
    *,
    sample: list[str],
    spots_from: list[str],
    exclude: list[str],
    min_pcc: float,
    percentile: float,
    min_fraction: float,
    threshold_percentile: float,
    top: int,
    target: str,
    timeout: float | None,
) -> ArchiveQueryResult:
    """The molecular query over the archive (see the module)."""
    cat = archive.catalog
    with_spots = {r["id"]: r["shard"] for r in cat.samples() if r["spots"] > 0}
    for s in spots_from:
        if s not in with_spots:
            raise UnknownSample(
                f"spots_from: sample {s!r} has no spots in the archive {archive.root} "
                f"(with spots: {sorted(with_spots)})"
            )
    if not with_spots:
        raise NothingSelected(f"the archive {archive.root} holds no spots")
    chosen = spots_from or sorted(with_spots)
    by_shard: dict[str, list[str]] = {}
    for s in chosen:
        by_shard.setdefault(with_spots[s], []).append(s)
    scored = scored_samples(archive, sample, exclude, target)
    deadline = _Deadline(timeout)
    archive._open(set(by_shard) | set(scored))

    # Spot pools are read once per shard and kept by the archive (a shard in the
    # catalog is complete: its spots do not change; the key has its commit time).
    def key(s: str) -> tuple:
        return (s, cat.shards[s].get("committed"), tuple(by_shard[s]))

    shards = sorted(by_shard)
    todo = [s for s in shards if key(s) not in archive._pools]
    t0 = time.perf_counter()
    read, missing = archive._backend.call([(s, "spot_pool", (None, by_shard[s])) for s in todo], deadline.left())
    for s, p in zip(todo, read, strict=True):
        if p is not None:
            archive._pools[key(s)] = p
    pools = [archive._pools.get(key(s)) for s in shards]
    result = ArchiveQueryResult(archive, uuid.uuid4().hex, {})
    result.timings["pools"] = time.perf_counter() - t0
    result.missing.update(missing)
    if all(p is None for p in pools):
        return result
    prof = _native.gene_profile(
        [p for p in pools if p is not None],
        cat.model["name"],
        genes,
        min_pcc=float(min_pcc),
        percentile=float(percentile),
        min_fraction=float(min_fraction),
    )
    result.timings["profile"] = time.perf_counter() - t0 - result.timings["pools"]
    result.query = {
        "genes": prof["genes"],
        "correlated": prof["correlated"],
        "thresholds": prof["thresholds"],
        "spots_total": prof["spots_total"],
        "spots_selected": len(prof["spots"]),
    }
    result.spots_used = [tuple(x) for x in prof["spots"]]
    return score_everywhere(
        archive,
        result,
        prof["embedding"],
        scored,
        target=target,
        top=top,
        threshold_percentile=threshold_percentile,
        deadline=deadline,
    )


def query_profile(
    archive: Archive,
    kwargs: dict,
    *,
    sample: list[str],
    exclude: list[str],
    threshold_percentile: float,
    top: int,
    target: str,
    timeout: float | None,
) -> ArchiveQueryResult:
    """The profile query: the embedding from one shard's copy of the model (every
    shard's is the same, checked by checksum), then scored everywhere."""
    scored = scored_samples(archive, sample, exclude, target)
    deadline = _Deadline(timeout)
    archive._open(set(scored))
    first = sorted(scored)[0]
    kw = dict(kwargs, samples=scored[first], target=target)
    out, missing = archive._backend.call([(first, "profile_embedding", (kw,))], deadline.left())
    result = ArchiveQueryResult(archive, uuid.uuid4().hex, {})
    if missing:
        result.missing.update(missing)
        return result
    result.query = {"profile": kwargs}
    return score_everywhere(
        archive,
        result,
        out[0],
        scored,
        target=target,
        top=top,
        threshold_percentile=threshold_percentile,
        deadline=deadline,
    )


def query_patch(
    archive: Archive,
    sample: str,
    at: tuple[int, int, int],
    *,
    top: int,
    within: list[str],
    exclude_self: bool,
    exact: bool,
    target: str,
    timeout: float | None,
) -> pd.DataFrame:
    """Morphology retrieval over the archive: a DataFrame of the best ``top`` (shard,
    sample, id, origin, similarity); ``attrs`` hold the query, ``partial`` and
    ``missing``."""
    import pandas as pd

    owner = archive.catalog.owner(sample)
    if owner is None:
        raise UnknownSample(f"sample {sample!r} is not in the archive {archive.root}")
    scope = scored_samples(archive, within, [sample] if exclude_self else [], target)
    deadline = _Deadline(timeout)
    archive._open(set(scope) | {owner})
    own_scope = scope.get(owner) or [sample]
    first = {"sample": sample, "at": at, "top": top, "within": own_scope, "exclude_self": exclude_self}
    first.update(exact=exact, target=target)
    out, missing = archive._backend.call([(owner, "patch", (first,))], deadline.left())
    if missing:
        raise NothingSelected(f"shard {owner!r} holding the query patch did not answer: {missing[owner]}")
    hits = [dict(h, shard=owner) for h in out[0]["hits"]] if owner in scope else []
    emb = [float(x) for x in out[0]["embedding"]]
    others = sorted(s for s in scope if s != owner)
    calls = [
        (s, "patch", ({"vector": emb, "top": top, "within": scope[s], "exact": exact, "target": target},))
        for s in others
    ]
    res, missing = archive._backend.call(calls, deadline.left())
    for s, r in zip(others, res, strict=True):
        if r is not None:
            hits.extend(dict(h, shard=s) for h in r["hits"])
    hits.sort(key=lambda h: (-h["similarity"], h["sample"], h["id"]))
    df = pd.DataFrame(hits[:top], columns=["shard", "sample", "id", "origin", "similarity"])
    df.attrs.update(query=out[0]["query"], partial=bool(missing), missing=missing)
    df.attrs["embedding"] = np.asarray(emb, np.float32)
    return df
