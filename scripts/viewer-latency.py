"""Measures the viewer (docs/VIEWER.md, "Responsiveness"): time from submitting a gene
in the page to the heatmap drawn, and the server's memory.

    ORT_DYLIB_PATH=... .venv-py/bin/python scripts/viewer-latency.py 32x160x160 [WORKDIR]

Builds a phantom store (seed 7, the given shape) in WORKDIR (default /tmp/vortex-viewer-work,
reused when present), starts `python -m vortexdb view` in its own process, drives
Debian's headless chromium through Selenium: types each gene, clicks Query, and takes
screenshots until a 25 x 25 grid of pixels over the view changes. Prints each time, the
median, and the server's RSS (/proc/PID/status) idle, with the page open, and after the
queries and k = 5 domains.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import subprocess
import sys
import time

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


def rss(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    cur, peak = (
        int(re.search(k + r":\s+(\d+)", s).group(1)) // 1024 for k in ("VmRSS", "VmHWM")
    )
    return f"RSS {cur} MB (peak {peak} MB)"


def main() -> None:
    shape = tuple(
        int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "32x160x160").split("x")
    )
    d = os.path.join(
        sys.argv[2] if len(sys.argv) > 2 else "/tmp/vortex-viewer-work",
        "x".join(map(str, shape)),
    )
    build((shape[0], shape[1], shape[2]), d)
    with vortexdb.open(f"{d}/store", read_only=True) as db:
        print("patches", db.info()["samples"][0]["patches"])
    cmd = [sys.executable, "-m", "vortexdb", "view", f"{d}/store"]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    url = re.search(r"http://\S+", srv.stdout.readline()).group(0)
    print("idle server:", rss(srv.pid))
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for f in FLAGS:
        opts.add_argument(f)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        drv.get(url)
        while not drv.find_elements(By.CSS_SELECTOR, "#sample option"):
            time.sleep(0.1)
        frame = drv.find_element(By.ID, "ng").rect
        drv.switch_to.frame(drv.find_element(By.ID, "ng"))
        while not drv.find_elements(
            By.CSS_SELECTOR, ".neuroglancer-rendered-data-panel"
        ):
            time.sleep(0.1)
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

        time.sleep(4)
        print("page open:", rss(srv.pid))
        times = []
        for genes in [*GENES, GENES[3]]:  # the last one again: cached
            before = probe()
            box = drv.find_element(By.ID, "genes")
            box.clear()
            box.send_keys(genes)
            t = time.time()
            drv.find_element(By.ID, "genes-go").click()
            while np.abs(probe() - before).mean() < 8 and time.time() - t < 60:
                pass
            times.append(time.time() - t)
            print(
                f"{genes}: drawn after {times[-1]:.2f}s [{drv.find_element(By.ID, 'msg').text}]",
                flush=True,
            )
            time.sleep(2.5)
        print(
            f"median of {len(GENES)} new genes {statistics.median(times[:-1]):.2f}s; cached {times[-1]:.2f}s"
        )
        box = drv.find_element(By.ID, "k")
        box.clear()
        box.send_keys("5")
        drv.find_element(By.ID, "domains-go").click()
        time.sleep(5)
        print("after the queries and domains:", rss(srv.pid))
    finally:
        drv.quit()
        srv.send_signal(2)
        srv.wait(30)


if __name__ == "__main__":
    main()
