"""Measures the viewer (docs/VIEWER.md, "Responsiveness"; BENCHMARKS.md, "Viewer"):
time from opening the page to the image drawn, from submitting a gene to its heatmap
drawn, and the server's memory.

    .venv-py/bin/python scripts/viewer-latency.py 96x640x640 [--workdir DIR]
    .venv-py/bin/python scripts/viewer-latency.py 128x256x256 --big 8 [--cold]
    .venv-py/bin/python scripts/viewer-latency.py --store STORE --sample ID [--cold]

Without --store, builds a phantom store (seed 7, the given shape, volume and spots) in
WORKDIR/SHAPE (default /tmp/vortex-viewer-work, reused when present); with --big F the
phantom is upsampled F times per axis into one NPY (128x256x256 --big 8: 1024 x 2048 x
2048 voxels of 0.5 um, 4 GiB), ingested at the model's 4 um, its spots moved with it. Starts
`python -m vortexdb view STORE --sample ID` in its own process and drives Debian's
headless chromium through Selenium:

* page open: from loading the page to the image drawn (a quarter of a 25 x 25 grid of
  pixels over the view brighter than the background) and to the view settled (no
  change for 2 s); then the time each of --z-steps slice steps ('.' in the view) takes
  to redraw;
* genes: types each gene, clicks Query, and takes screenshots until the grid changes;
  the last gene again is the cached case;
* k = 5 domains (--no-domains skips them): until the page reports them, at most
  --domains-timeout seconds.

Prints each time, the medians, and the server's memory from /proc/PID/status:
RssAnon (its own allocations) and RssFile (file pages it maps: the memory-mapped image,
the store's files, libraries), idle, page open, after the queries and after domains,
and VmHWM (peak RSS). --cold first evicts the sample's image files (source, and the
viewer's pyramid cache) from the page cache (posix_fadvise), as after a reboot.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import vortexdb
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

GENES = ["TUM01", "GLD01", "STR01", "FAT01", "IMM01", "TUM02"]
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--window-size=1280,900",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def build(shape: tuple[int, int, int], d: str) -> None:
    if os.path.exists(f"{d}/store"):
        return
    t = time.time()
    ph = vortexdb.phantom(f"{d}/ph", seed=7, shape=shape)
    with vortexdb.create(f"{d}/store") as db:
        db.add_model("default")
        db.ingest_volume("ph7", os.path.abspath(ph["volume"]), progress=False)
        db.ingest_spots("ph7", ph["spots"])
    print(f"built the store in {time.time() - t:.1f}s", flush=True)


def build_big(shape: tuple[int, int, int], factor: int, d: str) -> None:
    """A phantom of ``shape`` (seed 7, 4 um voxels) upsampled ``factor`` times along
    every axis into one NPY (``factor`` x the voxels per axis, 4 / factor um voxels: a
    large high-resolution volume), ingested at the model's 4 um; plus the phantom's
    spots."""
    if os.path.exists(f"{d}/store"):
        return
    t = time.time()
    ph = vortexdb.phantom(f"{d}/ph", seed=7, shape=shape)
    small = np.load(ph["volume"], mmap_mode="r")
    big_shape = tuple(n * factor for n in small.shape)
    out = np.lib.format.open_memmap(
        f"{d}/big.npy", mode="w+", dtype=small.dtype, shape=big_shape
    )
    for z in range(small.shape[0]):
        plane = np.repeat(
            np.repeat(np.asarray(small[z]), factor, axis=0), factor, axis=1
        )
        out[z * factor : (z + 1) * factor] = plane[None]
    out.flush()
    del out
    print(f"wrote {d}/big.npy {big_shape} in {time.time() - t:.1f}s", flush=True)
    # The spots' positions are voxels of the source: the same places in the big one.
    import pandas as pd

    sp = pd.read_parquet(ph["spots"])
    for c in ("x", "y", "z", "plane_z"):
        if c in sp:
            sp[c] = sp[c] * factor + (factor - 1) / 2
    spots = f"{d}/spots-big.parquet"
    sp.to_parquet(spots)
    t = time.time()
    with vortexdb.create(f"{d}/store") as db:
        db.add_model("default")
        db.ingest_volume(
            "big",
            os.path.abspath(f"{d}/big.npy"),
            um_per_voxel=4.0 / factor,
            progress=False,
        )
        db.ingest_spots("big", spots)
    print(f"built the store in {time.time() - t:.1f}s", flush=True)


def memory(pid: int) -> str:
    """RssAnon, RssFile and VmHWM of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    v = {
        k: int(re.search(k + r":\s+(\d+)", s).group(1)) // 1024
        for k in ("RssAnon", "RssFile", "VmHWM")
    }
    return (
        f"RssAnon {v['RssAnon']} MB, RssFile {v['RssFile']} MB (VmHWM {v['VmHWM']} MB)"
    )


def evict(paths: list[Path]) -> int:
    """Drop the files under ``paths`` from the page cache; returns the bytes evicted."""
    n = 0
    for p in paths:
        files = (
            [p]
            if p.is_file()
            else [f for f in p.rglob("*") if f.is_file()]
            if p.is_dir()
            else []
        )
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += f.stat().st_size
            finally:
                os.close(fd)
    return n


def image_files(store: str, sample: str) -> list[Path]:
    """The sample's source and the viewer's pyramid cache beside the store."""
    with vortexdb.open(store, read_only=True) as db:
        rec = next(s for s in db.info()["samples"] if s["id"] == sample)
    src = Path(rec["source"])
    if not src.is_absolute():
        src = Path(store).resolve().parent / src
    return [src, Path(store).resolve().parent / ".vortex-view-cache"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "shape",
        nargs="?",
        default="32x160x160",
        help="phantom shape ZxYxX (without --store)",
    )
    ap.add_argument("--workdir", default="/tmp/vortex-viewer-work")
    ap.add_argument("--store", help="an existing store instead of a phantom")
    ap.add_argument(
        "--big",
        type=int,
        default=0,
        metavar="F",
        help="the phantom upsampled F times per axis (SHAPE is before)",
    )
    ap.add_argument("--sample", help="the sample shown (default: the store's first)")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="evict the sample's image files from the page cache first",
    )
    ap.add_argument(
        "--z-steps", type=int, default=10, help="slice steps timed after the page opens"
    )
    ap.add_argument("--no-genes", action="store_true")
    ap.add_argument("--no-domains", action="store_true")
    ap.add_argument("--domains-timeout", type=float, default=900.0)
    a = ap.parse_args()
    if a.store:
        store = a.store
    else:
        shape = tuple(int(v) for v in a.shape.split("x"))
        d = os.path.join(
            a.workdir, "x".join(map(str, shape)) + (f"-big{a.big}" if a.big else "")
        )
        if a.big:
            build_big((shape[0], shape[1], shape[2]), a.big, d)
        else:
            build((shape[0], shape[1], shape[2]), d)
        store = f"{d}/store"
    with vortexdb.open(store, read_only=True) as db:
        samples = {s["id"]: s for s in db.info()["samples"]}
    sample = a.sample or next(iter(sorted(samples)))
    rec = samples[sample]
    print(
        f"sample {sample}: {rec['patches']} patches, source {rec['source']} {rec['source_shape']}"
    )
    if a.cold:
        print(
            f"evicted {evict(image_files(store, sample)) / 2**30:.2f} GiB from the page cache"
        )
    t = time.time()
    cmd = [sys.executable, "-m", "vortexdb", "view", store, "--sample", sample]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    url = re.search(r"http://\S+", srv.stdout.readline()).group(0)
    print(f"server up after {time.time() - t:.1f}s")
    print("idle server:", memory(srv.pid), flush=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for f in FLAGS:
        opts.add_argument(f)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        t0 = time.time()
        drv.get(url)
        while not drv.find_elements(By.CSS_SELECTOR, "#sample option"):
            time.sleep(0.05)
        frame = drv.find_element(By.ID, "ng").rect
        drv.switch_to.frame(drv.find_element(By.ID, "ng"))
        while not drv.find_elements(
            By.CSS_SELECTOR, ".neuroglancer-rendered-data-panel"
        ):
            time.sleep(0.05)
        r = drv.execute_script(
            "const r=document.querySelector('.neuroglancer-rendered-data-panel').getBoundingClientRect();"
            "return [r.left, r.top, r.width, r.height];"
        )
        drv.switch_to.default_content()
        ys = (frame["y"] + r[1] + np.linspace(0.2, 0.8, 25) * r[3]).astype(int)
        xs = (frame["x"] + r[0] + np.linspace(0.2, 0.8, 25) * r[2]).astype(int)

        def probe() -> np.ndarray:
            px = np.asarray(
                Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB")
            ).astype(int)
            return px[np.ix_(ys, xs)]

        # The image drawn: a quarter of the grid brighter than the (black) background.
        last = probe()
        while (last.max(axis=2) > 10).mean() < 0.25 and time.time() - t0 < 120:
            last = probe()
        drawn = time.time() - t0
        changed = time.time()
        while time.time() - changed < 2.0 and time.time() - t0 < 180:
            now = probe()
            if np.abs(now - last).mean() > 0.5:
                changed, last = time.time(), now
        print(
            f"page open: image drawn after {drawn:.2f}s, settled after {changed - t0:.2f}s"
        )
        print("page open:", memory(srv.pid), flush=True)
        if a.z_steps:
            drv.switch_to.frame(drv.find_element(By.ID, "ng"))
            panel = drv.find_element(
                By.CSS_SELECTOR, ".neuroglancer-rendered-data-panel"
            )
            webdriver.ActionChains(drv).move_to_element(panel).click().perform()
            drv.switch_to.default_content()
            steps = []
            for _ in range(a.z_steps):
                before = probe()
                drv.switch_to.frame(drv.find_element(By.ID, "ng"))
                webdriver.ActionChains(drv).send_keys(".").perform()
                drv.switch_to.default_content()
                ts = time.time()
                while np.abs(probe() - before).mean() < 0.5 and time.time() - ts < 30:
                    pass
                steps.append(time.time() - ts)
            print(
                f"slice steps: median {statistics.median(steps):.2f}s, max {max(steps):.2f}s "
                f"({', '.join(f'{s:.2f}' for s in steps)})"
            )
            print("after slice steps:", memory(srv.pid), flush=True)
        if not a.no_genes:
            times = []
            for genes in [*GENES, GENES[3]]:  # the last one again: cached
                before = probe()
                box = drv.find_element(By.ID, "genes")
                box.clear()
                box.send_keys(genes)
                t = time.time()
                drv.find_element(By.ID, "genes-go").click()
                while np.abs(probe() - before).mean() < 8 and time.time() - t < 120:
                    pass
                times.append(time.time() - t)
                print(
                    f"{genes}: drawn after {times[-1]:.2f}s [{drv.find_element(By.ID, 'msg').text}]",
                    flush=True,
                )
                time.sleep(2.5)
            print(
                f"median of {len(GENES)} new genes {statistics.median(times[:-1]):.2f}s "
                f"(range {min(times[:-1]):.2f}-{max(times[:-1]):.2f}s); cached {times[-1]:.2f}s"
            )
            print("after the queries:", memory(srv.pid), flush=True)
        if not a.no_domains:
            box = drv.find_element(By.ID, "k")
            box.clear()
            box.send_keys("5")
            t = time.time()
            drv.find_element(By.ID, "domains-go").click()
            msg = ""
            while time.time() - t < a.domains_timeout:
                msg = drv.find_element(By.ID, "msg").text
                if "domains on" in msg or "[" in msg:
                    break
                time.sleep(0.2)
            print(f"k = 5 domains: answered after {time.time() - t:.1f}s [{msg}]")
            time.sleep(3)
            print("after the domains:", memory(srv.pid), flush=True)
    finally:
        drv.quit()
        srv.send_signal(2)
        srv.wait(30)


if __name__ == "__main__":
    main()
