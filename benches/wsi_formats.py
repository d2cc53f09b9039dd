"""Peak memory and speed of `vortexdb ingest image` on a generated pyramidal whole-slide
OME-TIFF (60,000 x 60,000 RGB at 0.25 um/px, 512 px JPEG tiles, five SubIFD levels,
written by tifffile) at the level matching the default model (4 um/px: level 4,
3750 x 3750), against that level saved as PNG and ingested with --um-per-px 4, in the
same run.

    .venv-py/bin/pip install imagecodecs==2026.3.6
    .venv-py/bin/python benches/wsi_formats.py                 # 60000 px a side
    .venv-py/bin/python benches/wsi_formats.py --size 8192     # a quick check

The slide is an H&E-like pattern defined in micrometres (pink stroma bands, purple
nuclei on a white background, tissue over about half the slide), evaluated tile by tile
at every level, so no level is ever held whole while writing. Overlap 0 keeps the patch
count small. Writes bench-data/wsi-formats/result.json and prints Markdown rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "vortexdb"
WORK = ROOT / "bench-data" / "wsi-formats"
TILE = 512


def tile_at(um: float, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
    """The pattern over pixels [y0, y0 + th) x [x0, x0 + tw) of a level of ``um`` um/px."""
    yy, xx = np.mgrid[y0 : y0 + th, x0 : x0 + tw].astype(np.float32) * um
    img = np.empty((th, tw, 3), np.uint8)
    img[...] = (242, 238, 240)
    tissue = (np.sin(yy / 300.0) + np.cos(xx / 450.0)) > 0.0
    stroma = tissue & (np.sin(yy / 40.0) * np.cos(xx / 55.0) > 0.1)
    nuclei = tissue & (np.sin(yy / 6.0) * np.sin(xx / 7.0) > 0.8)
    img[tissue] = (205, 125, 175)
    img[stroma] = (190, 100, 160)
    img[nuclei] = (105, 60, 150)
    return img


def write_slide(path: Path, size: int, um0: float, levels: int) -> None:
    import tifffile

    def tiles(um: float, n: int):
        for y0 in range(0, n, TILE):
            for x0 in range(0, n, TILE):
                yield tile_at(um, y0, x0, min(TILE, n - y0), min(TILE, n - x0))

    meta = {"axes": "YXS", "PhysicalSizeX": um0, "PhysicalSizeY": um0}
    opts = {"tile": (TILE, TILE), "compression": "jpeg", "compressionargs": {"level": 90}, "photometric": "rgb"}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as t:
        t.write(tiles(um0, size), shape=(size, size, 3), dtype=np.uint8, subifds=levels - 1,
                metadata=meta, **opts)  # fmt: skip
        for k in range(1, levels):
            n = size >> k
            t.write(
                tiles(um0 * (size / n), n),
                shape=(n, n, 3),
                dtype=np.uint8,
                subfiletype=1,
                **opts,
            )


def ingest(args: list[str]) -> dict:
    db = WORK / "db"
    shutil.rmtree(db, ignore_errors=True)
    subprocess.run([str(BIN), "init", str(db)], check=True, capture_output=True)
    subprocess.run(
        [str(BIN), "models", "add", str(db), "default"], check=True, capture_output=True
    )
    t = time.perf_counter()
    r = subprocess.run(
        [
            str(BIN),
            "--json",
            "ingest",
            "image",
            str(db),
            "--sample",
            "slide",
            "--overlap",
            "0",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"ingest {args} failed: {r.stderr[-2000:]}")
    rep = json.loads(r.stdout)
    rep["wall_seconds"] = time.perf_counter() - t
    shutil.rmtree(db)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=60000)
    ap.add_argument("--um", type=float, default=0.25, help="full-resolution pixel size")
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    a = ap.parse_args()
    import tifffile
    from PIL import Image

    WORK.mkdir(parents=True, exist_ok=True)
    slide = WORK / f"slide_{a.size}.ome.tif"
    if not slide.exists():
        t = time.perf_counter()
        write_slide(slide, a.size, a.um, a.levels)
        print(
            f"wrote {slide} ({slide.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    # The level the default model (4 um/px) reads, decoded by tifffile, as PNG.
    want = round(float(np.log2(4.0 / a.um)))
    png = WORK / f"slide_{a.size}_level{want}.png"
    if not png.exists():
        with tifffile.TiffFile(slide) as f:
            Image.fromarray(f.series[0].levels[want].asarray()).save(png)
    rows: dict[str, list[dict]] = {"pyramid": [], "png": []}
    for r in range(a.rounds):
        for name, args in [
            ("pyramid", [str(slide)]),
            ("png", ["--um-per-px", "4", str(png)]),
        ]:
            rep = ingest(args)
            rows[name].append(rep)
            print(f"round {r + 1} {name}: source {rep['source_shape']}, {rep['patches_new']} patches, "
                  f"{rep['patches_per_second']:.1f} patches/s, peak RSS {rep['peak_rss_bytes'] / 2**20:.0f} MiB, "
                  f"{rep['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    best = {k: max(v, key=lambda r: r["patches_per_second"]) for k, v in rows.items()}
    peak = {k: max(r["peak_rss_bytes"] for r in v) for k, v in rows.items()}
    assert best["pyramid"]["source_shape"] == best["png"]["source_shape"], (
        "different levels read"
    )
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "size": a.size,
        "um_per_px": a.um,
        "level": want,
        "slide_bytes": slide.stat().st_size,
        "png_bytes": png.stat().st_size,
        "rounds": rows,
    }
    (WORK / "result.json").write_text(json.dumps(out, indent=1))
    print(
        f"\n| source | on disk | level read | patches | peak RSS | patches/s (best of {a.rounds}) |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for k, size in [("pyramid", slide.stat().st_size), ("png", png.stat().st_size)]:
        b = best[k]
        print(f"| {k} | {size / 2**20:.0f} MiB | {b['source_shape'][1]} x {b['source_shape'][2]} | "
              f"{b['patches_new']} | {peak[k] / 2**20:.0f} MiB | {b['patches_per_second']:.1f} |")  # fmt: skip
    print(f"pyramid / PNG: peak RSS {peak['pyramid'] / peak['png']:.2f}x, patches/s "
          f"{best['pyramid']['patches_per_second'] / best['png']['patches_per_second']:.2f}x")  # fmt: skip
    if not a.keep:
        slide.unlink()
        png.unlink()


if __name__ == "__main__":
    main()
