"""Peak memory and speed of `vortexdb ingest volume` on one large uint8 volume held two
ways: an OME-Zarr image (NGFF 0.5 on Zarr v3, zstd chunks, two pyramid levels) and the
same array as NPY, interleaved in the same run.

    .venv-py/bin/python benches/volume_formats.py                      # 1024 x 2048 x 2048
    .venv-py/bin/python benches/volume_formats.py --shape 256,1024,1024 --rounds 2

The volume is runtime_ingest.py's synthetic one (a textured tissue cylinder over 25% of
each slice); level 0 is at the default model's 4 um voxel, so the ingest reads it at
full resolution. Overlap 0 keeps the patch count (and the run time) small: memory is
bounded by the chunk depth, the patch window and the batches, not by the patch count.
Writes bench-data/volume-formats/result.json and prints Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_ingest import synthetic_volume

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "vortexdb"
WORK = ROOT / "bench-data" / "volume-formats"


def to_ome_zarr(
    npy: Path, out: Path, chunks: tuple[int, int, int], voxel_um: float
) -> None:
    """The NPY array as an NGFF 0.5 image: level 0 as is, level 1 halved in y and x,
    written one chunk-deep slab at a time (never the whole volume in memory)."""
    import zarr

    src = np.load(npy, mmap_mode="r")
    z, y, x = src.shape
    g = zarr.open_group(out, mode="w", zarr_format=3)
    a0 = g.create_array("0", shape=(z, y, x), chunks=chunks, dtype=np.uint8)
    a1 = g.create_array("1", shape=(z, y // 2, x // 2), chunks=chunks, dtype=np.uint8)
    for z0 in range(0, z, chunks[0]):
        slab = np.ascontiguousarray(src[z0 : z0 + chunks[0]])
        a0[z0 : z0 + len(slab)] = slab
        a1[z0 : z0 + len(slab)] = slab[:, ::2, ::2][:, : y // 2, : x // 2]
    um = "micrometer"
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": n, "type": "space", "unit": um} for n in "zyx"],
                "datasets": [
                    {
                        "path": p,
                        "coordinateTransformations": [{"type": "scale", "scale": s}],
                    }
                    for p, s in [
                        ("0", [voxel_um] * 3),
                        ("1", [voxel_um, 2 * voxel_um, 2 * voxel_um]),
                    ]
                ],
            }
        ],
    }


def ingest(path: Path, batch: int) -> dict:
    db = WORK / "db"
    shutil.rmtree(db, ignore_errors=True)
    subprocess.run([str(BIN), "init", str(db)], check=True, capture_output=True)
    subprocess.run(
        [str(BIN), "models", "add", str(db), "default"], check=True, capture_output=True
    )
    t = time.perf_counter()
    cmd = [
        str(BIN),
        "--json",
        "ingest",
        "volume",
        str(db),
        "--sample",
        "big",
        str(path),
    ]
    r = subprocess.run(
        [*cmd, "--overlap", "0", "--batch", str(batch)],
        check=False,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"ingest {path} failed: {r.stderr[-2000:]}")
    rep = json.loads(r.stdout)
    rep["wall_seconds"] = time.perf_counter() - t
    shutil.rmtree(db)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="1024,2048,2048")
    ap.add_argument("--chunks", default="64,256,256")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--keep", action="store_true", help="keep the generated volumes")
    a = ap.parse_args()
    z, y, x = (int(v) for v in a.shape.split(","))
    assert y == x, "the synthetic volume has square slices"
    chunks = tuple(int(v) for v in a.chunks.split(","))
    WORK.mkdir(parents=True, exist_ok=True)
    npy = WORK / f"synthetic_{z}x{y}x{x}.npy"
    zarr_dir = WORK / f"synthetic_{z}x{y}x{x}.ome.zarr"
    if not npy.exists():
        t = time.perf_counter()
        synthetic_volume(npy, z, y)
        print(f"wrote {npy} in {time.perf_counter() - t:.0f} s", flush=True)
    if not zarr_dir.exists():
        t = time.perf_counter()
        to_ome_zarr(npy, zarr_dir, chunks, 4.0)
        print(f"wrote {zarr_dir} in {time.perf_counter() - t:.0f} s", flush=True)
    zarr_bytes = sum(f.stat().st_size for f in zarr_dir.rglob("*") if f.is_file())
    rows: dict[str, list[dict]] = {"ome-zarr": [], "npy": []}
    for r in range(a.rounds):
        for name, path in [("ome-zarr", zarr_dir), ("npy", npy)]:
            rep = ingest(path, a.batch)
            rows[name].append(rep)
            print(f"round {r + 1} {name}: {rep['patches_new']} patches, {rep['patches_per_second']:.1f} "
                  f"patches/s, peak RSS {rep['peak_rss_bytes'] / 2**20:.0f} MiB, "
                  f"{rep['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    best = {k: max(v, key=lambda r: r["patches_per_second"]) for k, v in rows.items()}
    peak = {k: max(r["peak_rss_bytes"] for r in v) for k, v in rows.items()}
    assert best["ome-zarr"]["patches_new"] == best["npy"]["patches_new"], (
        "the two paths stored different patches"
    )
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "shape": [z, y, x],
        "chunks": list(chunks),
        "npy_bytes": npy.stat().st_size,
        "zarr_bytes": zarr_bytes,
        "rounds": rows,
    }
    (WORK / "result.json").write_text(json.dumps(out, indent=1))
    print(
        f"\n| source | on disk | patches | peak RSS | patches/s (best of {a.rounds}) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for k, size in [("npy", npy.stat().st_size), ("ome-zarr", zarr_bytes)]:
        print(f"| {k} | {size / 2**20:.0f} MiB | {best[k]['patches_new']} | {peak[k] / 2**20:.0f} MiB | "
              f"{best[k]['patches_per_second']:.1f} |")  # fmt: skip
    print(f"OME-Zarr / NPY: peak RSS {peak['ome-zarr'] / peak['npy']:.2f}x, patches/s "
          f"{best['ome-zarr']['patches_per_second'] / best['npy']['patches_per_second']:.2f}x")  # fmt: skip
    if not a.keep:
        npy.unlink()
        shutil.rmtree(zarr_dir)


if __name__ == "__main__":
    main()
