"""The viewer's multiscale image data (``_viewer_zarr``) in headless Chromium: a sample
ingested from an OME-Zarr image (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) is drawn by
neuroglancer's own Zarr reader through ``/vortex/zarr/<sample>/``, and a large NPY
volume gets a pyramid written once into the cache, whose coarse levels the browser reads
when the view is zoomed out. Paths outside the served directory are refused (403), an
unknown sample is a 404, and no request leaves 127.0.0.1. Small arrays only: the
pyramid's thresholds are lowered for the 32 x 160 x 160 phantom."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import vortexdb

pytest.importorskip("neuroglancer", reason="neuroglancer is not installed (requirements-test.txt)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-test.txt)")
pytest.importorskip("ome_zarr", reason="ome-zarr is not installed (requirements-test.txt)")

from test_ome_zarr import write_ome_zarr  # noqa: E402
from test_viewer import CHROMIUM_SERVICES, chrome, page_ready, panel_rect, pixels, wait  # noqa: E402

from vortexdb import _viewer_zarr as vz  # noqa: E402

SAMPLES = ["npy", "z04", "z05"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, phantom) -> dict:
    """The seed-7 phantom three times: as its NPY (a pyramid once the thresholds are
    lowered), and as OME-Zarr v2 and v3 images (4 x 2 x 2 um, three levels; the
    level nearest the model, 4 um, is the phantom itself)."""
    d = tmp_path_factory.mktemp("multiscale")
    vol = np.load(phantom["volume"])
    z04 = write_ome_zarr(vol, d / "ph-0.4.zarr", "0.4")
    z05 = write_ome_zarr(vol, d / "ph-0.5.zarr", "0.5")
    store = d / "store"
    with vortexdb.create(store) as db:
        db.add_model("default")
        db.ingest_volume("npy", str(Path(phantom["volume"]).resolve()), progress=False)
        db.ingest_volume("z04", str(z04), progress=False)
        db.ingest_volume("z05", str(z05), progress=False)
    return {"store": store, "dir": d, "volume": vol}


@pytest.fixture(scope="module")
def requests_seen() -> list:
    return []


@pytest.fixture(scope="module")
def viewer(archive, requests_seen):
    """The viewer with the pyramid thresholds lowered (any volume gets one; levels
    down to 32 voxels) and every answer of the Zarr route recorded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vz, "PYRAMID_MIN_VOXELS", 1)
        mp.setattr(vz, "COARSEST", 32)
        mp.setenv("VORTEX_VIEW_CACHE", str(archive["dir"] / "cache"))
        finish = vz.ZarrHandler.on_finish

        def record(self):
            requests_seen.append((self.request.method, self.request.path, self.get_status()))
            finish(self)

        mp.setattr(vz.ZarrHandler, "on_finish", record)
        v = vortexdb.view(archive["store"], sample="z04")
        yield v
        v.stop()


@pytest.fixture(scope="module")
def browser(viewer, archive):
    drv = chrome(archive["dir"] / "netlog.json")
    drv.get(viewer.url)
    yield drv
    try:
        drv.quit()
    except Exception:
        pass


def fetch(viewer, path: str) -> tuple[int, bytes]:
    base = viewer.url.split("/vortex/")[0]
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def open_in_page(drv, sample: str) -> None:
    drv.switch_to.default_content()
    drv.execute_script(
        "const s = document.getElementById('sample'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('change', {bubbles: true}));",
        sample,
    )


def show(viewer, drv, sample: str) -> vz.ZarrImage:
    """Open ``sample`` in the page; its image once the layer reads it from the route."""
    page_ready(drv, len(SAMPLES))
    if viewer.current != sample:
        open_in_page(drv, sample)
    want = f"/vortex/zarr/{sample}/"
    wait(
        lambda: "image" in viewer.ng.state.layers and want in viewer.ng.state.layers["image"].source[0].url,
        what=f"the image layer of {sample} reading {want}",
    )
    return viewer.samples[sample].image


def drawn_like(viewer, drv, vol: np.ndarray, n: int = 400) -> float:
    """Mean absolute difference (grey levels) between the drawn xy slice and the
    volume's voxels at ``n`` random positions of the shown slice: 0 when the image lies
    where the ingest read it (one voxel off gives ~10 on the phantom)."""
    st = viewer.ng.state
    pos, scale = np.asarray(st.position, float), float(st.cross_section_scale)
    z = int(pos[0])
    rect = panel_rect(drv)
    rng = np.random.default_rng(0)
    ys = rng.integers(2, vol.shape[1] - 2, n)
    xs = rng.integers(2, vol.shape[2] - 2, n)
    px = pixels(drv)
    sx = np.rint(rect["x"] + rect["w"] / 2 + (xs + 0.5 - pos[2]) / scale).astype(int)
    sy = np.rint(rect["y"] + rect["h"] / 2 + (ys + 0.5 - pos[1]) / scale).astype(int)
    return float(np.abs(px[sy, sx, 0] - vol[z, ys, xs].astype(float)).mean())


@pytest.mark.parametrize("sample", ["z04", "z05", "npy"])
def test_the_image_is_drawn_through_the_zarr_route(viewer, browser, archive, requests_seen, sample):
    drv = browser
    img = show(viewer, drv, sample)
    assert isinstance(img, vz.ZarrImage), img
    assert img.version == (3 if sample == "z05" else 2)
    port = urllib.parse.urlparse(viewer.url).port
    src = viewer.ng.state.layers["image"].source[0].url
    assert src == f"zarr{img.version}://http://127.0.0.1:{port}/vortex/zarr/{sample}/", src
    # The pixels drawn are the volume's (the sample's recorded voxels): grey = value.
    (diff,) = wait(
        lambda: (lambda d: [d] if d < 3 else None)(drawn_like(viewer, drv, archive["volume"])),
        timeout=120,
        what=f"{sample}'s image drawn",
    )
    print(f"\n{sample}: mean |drawn - voxel| = {diff:.1f} grey levels")
    chunks = [p for m, p, s in requests_seen if p.startswith(f"/vortex/zarr/{sample}/") and s == 200]
    assert any(re.search(r"/\d+/\d+/\d+$", p) for p in chunks), chunks


def test_a_large_npy_gets_a_pyramid_read_at_its_coarse_levels(viewer, browser, archive, requests_seen):
    drv = browser
    img = show(viewer, drv, "npy")
    vol = archive["volume"]
    # Levels halve every axis (4 um voxels) down to 32 voxels; level 0 is the source.
    assert [lv["shape"] for lv in img.levels] == [[32, 160, 160], [16, 80, 80], [8, 40, 40], [4, 20, 20]]
    assert img.root.parent == archive["dir"] / "cache" and img.level0 is not None
    status, body = fetch(viewer, "/vortex/zarr/npy/.zattrs")
    ms = json.loads(body)["multiscales"][0]
    assert status == 200 and [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [
        [4.0 * f] * 3 for f in (1, 2, 4, 8)
    ]
    # A chunk of level 3 is the source's 2 x 2 x 2 means taken three times; a chunk of
    # level 0 is the source itself.
    want = vol
    for _ in range(3):
        z, y, x = (n // 2 for n in want.shape)
        want = np.rint(want.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5))).astype(np.uint8)
    status, b = fetch(viewer, "/vortex/zarr/npy/3/0/0/0")
    assert status == 200 and np.array_equal(np.frombuffer(b, np.uint8).reshape(vz.CHUNK)[:4, :20, :20], want)
    c = vz.CHUNK0
    status, b = fetch(viewer, "/vortex/zarr/npy/0/1/0/0")
    got = np.frombuffer(b, np.uint8).reshape(c)
    assert status == 200 and np.array_equal(got[:, :160, :160], vol[c[0] : 2 * c[0]]) and not got[:, 160:].any()
    # Zoomed out (8 voxels a pixel), the browser reads the coarse levels' chunks (at
    # once, or already: neuroglancer draws coarse chunks first while finer ones load,
    # and keeps them).
    with viewer.ng.txn() as s:
        s.cross_section_scale = 8.0
    levels = wait(
        lambda: (
            {
                int(m.group(1))
                for _, p, st in requests_seen
                if st == 200 and (m := re.match(r"/vortex/zarr/npy/(\d+)/\d+/\d+/\d+$", p))
            }
            & {2, 3}
        ),
        timeout=60,
        what="chunks of a coarse level requested",
    )
    assert levels
    # Written once: the same file (path, size, modification time) finds the cache.
    src = Path(viewer.samples["npy"].source)
    stamp = (img.root / ".zattrs").stat().st_mtime_ns
    again = vz.PendingPyramid(np.load(src, mmap_mode="r"), src, [4.0] * 3, img.root.parent, "npy").build()
    assert again.root == img.root and again.levels == img.levels
    assert (img.root / ".zattrs").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "path",
    [
        "/vortex/zarr/z04/../../store/vortex.redb",
        "/vortex/zarr/z04/%2e%2e/store/vortex.redb",
        "/vortex/zarr/z04/..%2fph-0.5.zarr/zarr.json",
        "/vortex/zarr/z04//etc/passwd",
        "/vortex/zarr/z04/%2fetc%2fpasswd",
    ],
)
def test_a_path_outside_the_zarr_directory_is_refused(viewer, path):
    status, body = fetch(viewer, path)
    assert status == 403 and "outside the sample's image directory" in json.loads(body)["error"], (status, body)


def test_a_symlink_leading_out_of_the_zarr_directory_is_refused(viewer, archive):
    link = archive["dir"] / "ph-0.4.zarr" / "escape"
    link.symlink_to(archive["dir"] / "store")
    try:
        status, body = fetch(viewer, "/vortex/zarr/z04/escape/vortex.redb")
        assert status == 403, (status, body)
    finally:
        link.unlink()


def test_unknown_samples_and_missing_files_are_404s(viewer):
    status, body = fetch(viewer, "/vortex/zarr/nope/.zattrs")
    assert status == 404 and "nope" in json.loads(body)["error"] and "z04" in json.loads(body)["known"]
    for path in ("/vortex/zarr/z04/missing/.zarray", "/vortex/zarr/z04/s0", "/vortex/zarr/npy/0/99/0/0"):
        status, body = fetch(viewer, path)
        assert status == 404 and "error" in json.loads(body), (path, status, body)


def test_no_request_leaves_localhost(viewer, browser):
    """Runs last: quits the browser so the NetLog is complete."""
    drv = browser
    page_ready(drv, len(SAMPLES))
    time.sleep(1.0)
    drv.quit()
    text = Path(drv.netlog).read_text()
    urls = set(re.findall(r'"url":\s*"([^"]+)"', text))
    assert any("/vortex/zarr/" in u for u in urls), sorted(urls)[:20]
    outside = sorted(
        u
        for u in urls
        if urllib.parse.urlparse(u).scheme in ("http", "https", "ws", "wss")
        and urllib.parse.urlparse(u).hostname not in ("127.0.0.1", "~notfound")
    )
    assert all(urllib.parse.urlparse(u).hostname in CHROMIUM_SERVICES for u in outside), outside
    addrs = re.findall(r'"(?:address_list|remote_address)":\s*(\[[^\]]*\]|"[^"]*")', text)
    flat = [a for s in addrs for a in (json.loads(s) if s.startswith("[") else [json.loads(s)])]
    assert flat and all(a.startswith("127.0.0.1:") for a in flat), flat
