"""Compare two output trees of scripts/cli-outputs.sh: every file byte for byte, except
JSON, where keys that hold wall times or paths are ignored."""

import json
import re
import sys
from pathlib import Path

VOLATILE = ("secs", "seconds", "elapsed", "wall", "per_s", "rate", "time", "took")


def scrub(v, a, b):
    if isinstance(v, dict):
        return {
            k: scrub(x, a, b)
            for k, x in v.items()
            if not any(t in k.lower() for t in VOLATILE)
        }
    if isinstance(v, list):
        return [scrub(x, a, b) for x in v]
    if isinstance(v, str):
        for root in sorted((a, b), key=len, reverse=True):
            v = v.replace(root, "ROOT")
        return v
    return v


def scrub_text(t, a, b):
    """Text output with paths and wall times (and rates) replaced."""
    for root in sorted((a, b), key=len, reverse=True):
        t = t.replace(root, "ROOT")
    t = re.sub(r"\d+(\.\d+)?\s?s\b", "T s", t)
    t = re.sub(r"\d+(\.\d+)? (patches|spots|rows)/s", "R/s", t)
    return t


def main() -> int:
    a, b = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    bad = 0
    for p in sorted(fa ^ fb):
        print(f"only in one tree: {p}")
        bad += 1
    same = 0
    for p in sorted(fa & fb):
        if "store" in p.parts or p.name in ("report.html", "vortex.redb", "LOCK"):
            continue  # redb pages and the report carry timings; compared through JSON
        x, y = (a / p).read_bytes(), (b / p).read_bytes()
        if p.suffix == ".json":
            try:
                jx = scrub(json.loads(x), str(a), str(b))
                jy = scrub(json.loads(y), str(a), str(b))
            except ValueError:
                jx, jy = x, y
            if jx != jy:
                print(f"differs: {p}")
                bad += 1
                continue
        elif p.suffix == ".txt":
            tx, ty = (scrub_text(v.decode(), str(a), str(b)) for v in (x, y))
            if tx != ty:
                print(f"differs: {p}")
                for lx, ly in zip(tx.splitlines(), ty.splitlines()):
                    if lx != ly:
                        print(f"  - {lx}\n  + {ly}")
                bad += 1
                continue
        elif x != y:
            print(f"differs: {p}")
            bad += 1
            continue
        same += 1
    print(f"{same} files equal, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
