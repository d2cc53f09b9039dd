"""``python -m vortexdb archive ...`` (and ``vortexdb archive ...``, which runs it): a thin
face over :mod:`vortexdb.archive`. ``--json`` prints one JSON object on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """The ``archive`` subcommands."""
    a = sub.add_parser("archive", help="archives of shards, ingested and queried on Ray")
    asub = a.add_subparsers(dest="archive_command", required=True)

    def common(p: argparse.ArgumentParser, backend: bool = True) -> None:
        p.add_argument("root", help="the archive directory")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if backend:
            p.add_argument("--backend", choices=["ray", "local"], default="ray", help="where the work runs")
            p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")

    p = asub.add_parser("create", help="create an empty archive for a model")
    common(p)
    p.add_argument("--model", default="default", help="model directory, or 'default' (the built-in one)")
    p = asub.add_parser("ingest", help="ingest the samples of a JSON spec list, one Ray task per shard")
    common(p)
    p.add_argument("specs", help="JSON file: a list of sample specs (see docs/SCALING.md)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per shard task")
    p.add_argument("--device", default="cpu", help="cpu or cuda (a GPU per task)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a task whose worker died")
    p = asub.add_parser("list", help="the samples: shard, kind, status, patches, spots")
    common(p, backend=False)
    p = asub.add_parser("check", help="check every shard without writing (exit 1 on a problem)")
    common(p, backend=False)
    p = asub.add_parser("add-shard", help="attach an existing store as a shard")
    common(p, backend=False)
    p.add_argument("store", help="the store directory")
    p.add_argument("--name", default=None, help="shard name (default: the directory's name)")
    p = asub.add_parser("query", help="a molecular query (--genes) or patch retrieval (--patch) over every shard")
    common(p)
    p.add_argument("--genes", default=None, help="comma-separated genes of interest")
    p.add_argument("--patch", default=None, metavar="SAMPLE", help="retrieve patches like this sample's patch at --at")
    p.add_argument("--at", default=None, help="z,y,x inside the query patch (with --patch)")
    p.add_argument("--top", type=int, default=10, help="best patches to list")
    p.add_argument("--sample", action="append", default=None, help="score only this sample (repeatable)")
    p.add_argument("--exact", action="store_true", help="exact search for --patch")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a shard may take before it is named missing")


def run(args: argparse.Namespace) -> int:
    """Run one ``archive`` subcommand; the exit status."""
    from . import create
    from . import open as open_archive

    cmd = args.archive_command
    out: dict[str, Any]
    if cmd == "create":
        a = create(args.root, args.model, backend=args.backend, address=args.address)
        out = {"root": str(a.root), "model": a.catalog.model}
        text = f"created archive {a.root} for model {a.catalog.model['name']}"
    elif cmd == "ingest":
        with open(args.specs) as f:
            specs = json.load(f)
        with open_archive(args.root, backend=args.backend, address=args.address) as a:
            out = a.ingest(
                specs, threads=args.threads, device=args.device, max_retries=args.max_retries, progress=not args.json
            )
        text = (
            f"committed {len(out['committed'])} shard(s), skipped {len(out['skipped'])} sample(s) "
            f"already in the archive, in {out['seconds']:.1f} s"
        )
    elif cmd == "list":
        a = open_archive(args.root, backend="local")
        rows = a.catalog.samples()
        out = {"model": a.catalog.model, "samples": rows}
        lines = [
            f"archive {a.root}: {len(a.catalog.shards)} shards, {len(rows)} samples, model {a.catalog.model['name']}"
        ]
        for r in rows:
            lines.append(
                f"  {r['shard']:<16} {r['id']:<16} {r['kind']:<6} {r['status']:<9} "
                f"{r['patches']:>8} patches {r['spots']:>6} spots"
            )
        text = "\n".join(lines)
    elif cmd == "check":
        out = open_archive(args.root, backend="local").check()
        lines = [f"archive {args.root}: {'ok' if out['ok'] else 'PROBLEMS'}"]
        for shard, probs in out["shards"].items():
            lines.append(f"  {shard}: {'ok' if not probs else '; '.join(probs)}")
        text = "\n".join(lines)
    elif cmd == "add-shard":
        a = open_archive(args.root, backend="local")
        out = a.add_shard(args.store, name=args.name)
        text = f"attached {args.store} as a shard of {args.root}: {len(out['samples'])} sample(s)"
    else:
        out, text = _query(args)
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print(text)
    return 1 if cmd == "check" and not out["ok"] else 0


def _query(args: argparse.Namespace) -> tuple[dict, str]:
    from . import open as open_archive

    if (args.genes is None) == (args.patch is None):
        raise SystemExit("archive query: give --genes or --patch SAMPLE --at z,y,x")
    with open_archive(args.root, backend=args.backend, address=args.address) as a:
        if args.genes is not None:
            r = a.query_genes(args.genes.split(","), sample=args.sample, top=args.top, timeout=args.timeout)
            top = r.top.to_dict(orient="records")
            out = {"query": r.query, "threshold": r.threshold, "patches": r.patches, "top": top}
            out.update(triage=r.triage.to_dict(orient="records"), partial=r.partial, missing=r.missing)
            lines = [f"{r.query.get('spots_selected', 0)} spots selected; {r.patches} patches scored over the shards"]
            for i, t in enumerate(top, 1):
                lines.append(
                    f"  {i:>3}  {t['sample']:<14} [{t['z']},{t['y']},{t['x']}]  {t['score']:.4f}  ({t['shard']})"
                )
            lines.append(f"triage (share of patches above {r.threshold:.4f}):")
            for t in out["triage"]:
                lines.append(f"  {t['sample']:<16} {t['patches']:>7} patches {100 * t['fraction_above']:5.1f}% above")
        else:
            if args.at is None:
                raise SystemExit("archive query --patch needs --at z,y,x")
            at = [int(v) for v in args.at.split(",")]
            df = a.query_patch(args.patch, at, top=args.top, within=args.sample, exact=args.exact, timeout=args.timeout)
            top = df.to_dict(orient="records")
            out = {
                "query": df.attrs["query"],
                "hits": top,
                "partial": df.attrs["partial"],
                "missing": df.attrs["missing"],
            }
            lines = [f"{len(top)} patches most similar to {df.attrs['query']}:"]
            for i, h in enumerate(top, 1):
                lines.append(f"  {i:>3}  {h['sample']:<14} {list(h['origin'])}  {h['similarity']:.4f}  ({h['shard']})")
        if out["partial"]:
            lines.append(f"PARTIAL: no answer from {sorted(out['missing'])}")
    return out, "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run it, printing a vortexdb error as one line on stderr (exit 2)."""
    from ..errors import Error

    try:
        return run(args)
    except Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
