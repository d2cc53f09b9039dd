"""The interactive viewer (``vortexdb.view``) in a real headless Chromium driven by
Selenium, on a store of three phantoms (seeds 7, 11, 13): the page loads with no
request leaving 127.0.0.1 (from Chromium's NetLog, which also sees the web worker's
chunk requests); a typed gene query draws a heatmap brighter over tumour; the domains
layer holds k labels; a double-click retrieves mostly tumour patches; the triage panel
follows ``query_genes``' triage. Plus one HTTP test per kind of bad input (urllib).

Chromium and chromedriver come from Debian (``scripts/setup-browser.sh``); without them
the browser tests skip, unless ``VORTEX_REQUIRE_BROWSER=1``, which makes that a failure.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import vortexdb

neuroglancer = pytest.importorskip("neuroglancer", reason="neuroglancer is not installed (requirements-test.txt)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-test.txt)")

from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

TUMOUR = 2  # phantom.json "compartments": background, gland, tumour, stroma, fat
SEEDS = {"ph7": 7, "ph11": 11, "ph13": 13}
W, H = 1280, 900
# Chromium's own services (sign-in, component updates): the host resolver rule below
# makes their look-ups fail, so they never connect; any other outside host fails the test.
CHROMIUM_SERVICES = {
    "accounts.google.com",
    "clients2.google.com",
    "update.googleapis.com",
    "clientservices.googleapis.com",
    "content-autofill.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
    "www.google.com",
}


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver (Debian's, or VORTEX_CHROMIUM / VORTEX_CHROMEDRIVER),
    or a skip (a failure with VORTEX_REQUIRE_BROWSER=1)."""
    chrome = os.environ.get("VORTEX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = os.environ.get("VORTEX_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if os.path.isfile(chrome) and os.path.isfile(driver):
        return chrome, driver
    why = "chromium/chromedriver absent (bash scripts/setup-browser.sh installs them)"
    if os.environ.get("VORTEX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VORTEX_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(f"SKIPPED: {why}")


@pytest.fixture(scope="module")
def archive(tmp_path_factory, phantom) -> dict:
    """A store of three phantoms (volumes from their NPY paths, so the viewer finds
    them, and spots), with each one's compartment labels."""
    d = tmp_path_factory.mktemp("viewer")
    ph = {"ph7": phantom}
    for s in ("ph11", "ph13"):
        ph[s] = vortexdb.phantom(d / s, seed=SEEDS[s], shape=(32, 160, 160))
    store = d / "store"
    with vortexdb.create(store) as db:
        db.add_model("default")
        for s, p in ph.items():
            db.ingest_volume(s, str(Path(p["volume"]).resolve()), progress=False)
            db.ingest_spots(s, p["spots"])
    labels = {s: np.load(p["labels"]) for s, p in ph.items()}
    return {"store": store, "labels": labels, "dir": d}


@pytest.fixture(scope="module")
def viewer(archive):
    v = vortexdb.view(archive["store"], sample="ph7")
    yield v
    v.stop()


def chrome(netlog: Path | None = None):
    """Debian's headless Chromium with software WebGL, its own background services off
    and every host but 127.0.0.1 unresolvable; with ``netlog``, its NetLog written
    there (``drv.netlog``) when it quits."""
    chrome_path, driver_path = browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome_path
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        f"--window-size={W},{H}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]
    if netlog is not None:
        flags += [f"--log-net-log={netlog}", "--net-log-capture-mode=Default"]
    for f in flags:
        opts.add_argument(f)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    drv.netlog = netlog
    return drv


@pytest.fixture(scope="module")
def browser(viewer, archive):
    drv = chrome(archive["dir"] / "netlog.json")
    drv.get(viewer.url)
    yield drv
    try:
        drv.quit()
    except Exception:
        pass


def wait(cond, timeout=30.0, what="condition"):
    t = time.time()
    while time.time() - t < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def page_ready(drv, n_samples):
    drv.switch_to.default_content()
    wait(lambda: len(drv.find_elements(By.CSS_SELECTOR, "#sample option")) == n_samples, what="the sample list")
    drv.switch_to.frame(drv.find_element(By.ID, "ng"))
    wait(lambda: drv.find_elements(By.CSS_SELECTOR, ".neuroglancer-rendered-data-panel"), what="neuroglancer")
    drv.switch_to.default_content()


def panel_rect(drv) -> dict:
    """The xy data panel's rectangle in page pixels (the iframe's offset added)."""
    drv.switch_to.default_content()
    f = drv.find_element(By.ID, "ng").rect
    drv.switch_to.frame(drv.find_element(By.ID, "ng"))
    r = drv.execute_script(
        "const r=document.querySelector('.neuroglancer-rendered-data-panel').getBoundingClientRect();"
        "return {x:r.left,y:r.top,w:r.width,h:r.height};"
    )
    drv.switch_to.default_content()
    return {"x": f["x"] + r["x"], "y": f["y"] + r["y"], "w": r["w"], "h": r["h"]}


def to_screen(viewer, rect, y, x):
    """Page pixel of the centre of source voxel (y, x) in the shown xy slice."""
    st = viewer.ng.state
    pos, s = np.asarray(st.position, float), float(st.cross_section_scale)
    cx, cy = rect["x"] + rect["w"] / 2, rect["y"] + rect["h"] / 2
    return cx + (x + 0.5 - pos[2]) / s, cy + (y + 0.5 - pos[1]) / s


def pixels(drv) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB")).astype(int)


def settled(drv, before: np.ndarray, timeout: float = 20.0) -> np.ndarray:
    """The screenshot once it differs from ``before`` and stops changing."""
    t = time.time()
    last = pixels(drv)
    while time.time() - t < timeout:
        time.sleep(0.3)
        now = pixels(drv)
        if np.array_equal(now, last) and not np.array_equal(now, before):
            return now
        last = now
    raise AssertionError("the view did not settle")


def compartment_points(labels2d, c, n=300, erode=4, seed=0):
    m = ndimage.binary_erosion(labels2d == c, iterations=erode)
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return np.zeros((0, 2), int)
    pick = np.random.default_rng(seed).choice(len(ys), min(n, len(ys)), replace=False)
    return np.stack([ys[pick], xs[pick]], 1)


def brightness(px, pts_screen):
    v = [px[int(round(y)), int(round(x))].sum() for x, y in pts_screen]
    return float(np.mean(v))


def submit_genes(drv, genes):
    drv.switch_to.default_content()
    box = drv.find_element(By.ID, "genes")
    box.clear()
    box.send_keys(genes)
    drv.find_element(By.ID, "genes-go").click()


def test_typing_a_gene_draws_a_heatmap_brighter_over_tumour(viewer, browser, archive):
    drv = browser
    page_ready(drv, 3)
    z = int(viewer.ng.state.position[0])
    lab = archive["labels"]["ph7"][z]
    rect = panel_rect(drv)
    pts = {c: [to_screen(viewer, rect, y, x) for y, x in compartment_points(lab, c)] for c in range(5)}
    tum = pts[TUMOUR]
    before = brightness(pixels(drv), tum)
    t0 = time.time()
    submit_genes(drv, "TUM01")
    # The heatmap is drawn when the tumour pixels change (saturating colours).
    wait(lambda: abs(brightness(pixels(drv), tum) - before) > 60, timeout=60, what="the heatmap drawn")
    latency = time.time() - t0
    assert "heatmap" in [m.name for m in viewer.ng.state.layers]
    time.sleep(1.0)  # let the remaining chunks arrive
    px = pixels(drv)
    Image.fromarray(px.astype(np.uint8)).save(archive["dir"] / "viewer_tum01.png")
    if os.environ.get("VORTEX_VIEWER_SCREENSHOT"):  # README's picture: the page as drawn
        drv.switch_to.default_content()
        drv.save_screenshot(os.environ["VORTEX_VIEWER_SCREENSHOT"])
    # The heatmap alone (the phantom's tumour is also bright in the image itself).
    with viewer.ng.txn() as s:
        s.layers["image"].visible = False
    alone = settled(drv, px)
    with viewer.ng.txn() as s:
        s.layers["image"].visible = True
    means = {c: brightness(alone, p) for c, p in pts.items() if p}
    print(f"\nTUM01 heatmap drawn {latency:.2f}s after submit; brightness (R+G+B) per compartment {means}")
    others = {c: m for c, m in means.items() if c != TUMOUR}
    assert all(means[TUMOUR] > m + 100 for m in others.values()), means


def test_the_triage_panel_lists_every_sample_in_triage_order(viewer, browser, archive):
    drv = browser
    page_ready(drv, 3)
    if "heatmap" not in [m.name for m in viewer.ng.state.layers]:
        submit_genes(drv, "TUM01")
    rows = wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#triage tbody tr"), what="the triage table")
    shown = [r.get_attribute("data-sample") for r in rows]
    with vortexdb.open(archive["store"], read_only=True) as db:
        want = db.query_genes("TUM01").triage["sample"].tolist()
    assert shown == want and sorted(shown) == sorted(SEEDS), (shown, want)
    # Clicking a row opens that sample, with the query's heatmap.
    other = shown[1] if shown[0] == "ph7" else shown[0]
    rows[shown.index(other)].click()
    wait(lambda: viewer.current == other, what=f"sample {other} opened")
    wait(lambda: "heatmap" in [m.name for m in viewer.ng.state.layers], what="the heatmap on the new sample")
    drv.find_elements(By.CSS_SELECTOR, "#triage tbody tr")[shown.index("ph7")].click()
    wait(lambda: viewer.current == "ph7", what="ph7 back")


def test_the_domains_layer_shows_k_labels(viewer, browser):
    drv = browser
    page_ready(drv, 3)
    k = 4
    box = drv.find_element(By.ID, "k")
    box.clear()
    box.send_keys(str(k))
    drv.find_element(By.ID, "domains-go").click()
    wait(lambda: f"{k} domains on" in drv.find_element(By.ID, "msg").text, what="the domains answer")
    layer = wait(lambda: next((m for m in viewer.ng.state.layers if m.name == "domains"), None), what="the layer")
    assert layer.type == "segmentation"
    assert sorted(int(s) for s in layer.segments) == list(range(1, k + 1))
    vol = viewer._domains[("ph7", k)][0]
    assert sorted(set(np.unique(vol).tolist()) - {0}) == list(range(1, k + 1))
    # The browser holds the same state (neuroglancer syncs it both ways).
    drv.switch_to.frame(drv.find_element(By.ID, "ng"))
    js = drv.execute_script(
        "const v = window.viewer; if (!v) return null; const l = v.state.toJSON().layers;"
        "return l.filter(x => x.name === 'domains').map(x => x.segments)[0] || null;"
    )
    drv.switch_to.default_content()
    if js is not None:
        assert sorted(int(s) for s in js) == list(range(1, k + 1))


def test_double_clicking_a_tumour_patch_retrieves_mostly_tumour(viewer, browser, archive):
    drv = browser
    page_ready(drv, 3)
    if viewer.current != "ph7":
        viewer.open_sample("ph7")
    z = int(viewer.ng.state.position[0])
    lab = archive["labels"]["ph7"]
    y, x = compartment_points(lab[z], TUMOUR, n=1, erode=10, seed=3)[0]
    rect = panel_rect(drv)
    sx, sy = to_screen(viewer, rect, y, x)
    v0 = viewer.last_retrieval()["version"]
    drv.switch_to.frame(drv.find_element(By.ID, "ng"))
    panel = drv.find_element(By.CSS_SELECTOR, ".neuroglancer-rendered-data-panel")
    off = (sx - (rect["x"] + rect["w"] / 2), sy - (rect["y"] + rect["h"] / 2))
    ActionChains(drv).move_to_element_with_offset(
        panel, int(round(off[0])), int(round(off[1]))
    ).double_click().perform()
    drv.switch_to.default_content()
    r = wait(lambda: (lambda r: r if r["version"] > v0 else None)(viewer.last_retrieval()), what="the retrieval")
    assert "error" not in r, r
    at = r["at"]
    assert abs(at[1] - y) <= 2 and abs(at[2] - x) <= 2, (at, (y, x))
    assert lab[tuple(at)] == TUMOUR
    p = r["patch"]

    def majority(h):
        lv = archive["labels"][h["sample"]]
        oz, oy, ox = h["origin"]
        box = lv[oz : oz + p[0], oy : oy + p[1], ox : ox + p[2]]
        return int(np.bincount(box.ravel(), minlength=5).argmax())

    hits = r["hits"]
    tumour = sum(majority(h) == TUMOUR for h in hits)
    assert len(hits) >= 5 and tumour > len(hits) / 2, [(h["sample"], h["origin"], majority(h)) for h in hits]
    marked = next(m for m in viewer.ng.state.layers if m.name == "retrieved")
    assert len(marked.annotations) == 1 + sum(h["sample"] == "ph7" for h in hits)
    items = wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#hits li"), what="hits listed in the page")
    assert len(items) == len(hits)


def test_an_unknown_gene_is_shown_in_the_page_with_suggestions(viewer, browser):
    drv = browser
    page_ready(drv, 3)
    submit_genes(drv, "TUM0x")
    msg = wait(lambda: (lambda t: t if "[400]" in t else None)(drv.find_element(By.ID, "msg").text), what="message")
    assert "TUM0x" in msg and "TUM01" in msg and "error" in drv.find_element(By.ID, "msg").get_attribute("class")


def test_a_predicted_gene_channel_is_brighter_over_tumour(viewer, browser, archive):
    """The predicted-expression control: TUM01 from the model's predictor head, drawn
    as the ``predicted`` layer (one value per patch), brighter over tumour."""
    drv = browser
    page_ready(drv, 3)
    if viewer.current != "ph7":
        viewer.open_sample("ph7")
    wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#method option"), what="the method list")
    assert [o.get_attribute("value") for o in drv.find_elements(By.CSS_SELECTOR, "#method option")] == ["predictor"]
    z = int(viewer.ng.state.position[0])
    lab = archive["labels"]["ph7"][z]
    rect = panel_rect(drv)
    pts = {c: [to_screen(viewer, rect, y, x) for y, x in compartment_points(lab, c)] for c in range(5)}
    # Only the predicted layer: the image and the heatmap hidden.
    with viewer.ng.txn() as s:
        for m in s.layers:
            m.visible = m.name in ("predicted",)
    before = pixels(drv)
    box = drv.find_element(By.ID, "pgene")
    box.clear()
    box.send_keys("TUM01")
    drv.find_element(By.ID, "predict-go").click()
    wait(lambda: "predicted TUM01" in drv.find_element(By.ID, "msg").text, timeout=60, what="the prediction")
    layer = next(m for m in viewer.ng.state.layers if m.name == "predicted")
    assert layer.type == "image" and viewer.predicted == ("TUM01", "predictor")
    with viewer.ng.txn() as s:
        for m in s.layers:
            m.visible = m.name == "predicted"
    px = settled(drv, before, timeout=30)
    with viewer.ng.txn() as s:
        for m in s.layers:
            m.visible = m.name not in ("patches",)
    means = {c: brightness(px, p) for c, p in pts.items() if p}
    print(f"\npredicted TUM01 brightness (R+G+B) per compartment {means}")
    assert all(means[TUMOUR] > m + 60 for c, m in means.items() if c != TUMOUR), means


def test_the_spots_are_coloured_by_the_gene_chosen(viewer, browser, archive):
    drv = browser
    page_ready(drv, 3)
    if viewer.current != "ph7":
        viewer.open_sample("ph7")
    with vortexdb.open(archive["store"], read_only=True) as db:
        spots = db.spots("ph7")
    kept = np.asarray(spots.obs["kept"], bool)
    for gene in ("STR01", "TUM01"):
        box = drv.find_element(By.ID, "sgene")
        box.clear()
        box.send_keys(gene)
        drv.find_element(By.ID, "spots-go").click()
        wait(lambda g=gene: f"coloured by {g}" in drv.find_element(By.ID, "msg").text, what=f"spots by {gene}")
        layer = next(m for m in viewer.ng.state.layers if m.name == "spots")
        shown = np.array([float(a.props[0]) for a in layer.annotations])
        col = np.nan_to_num(np.asarray(spots[:, gene].X, np.float32).ravel())[kept]
        assert len(shown) == kept.sum() and np.allclose(shown, col / col.max(), atol=1e-5), gene
    assert viewer.spot_gene == "TUM01"
    # A gene the spots do not measure: a message with suggestions, the colours kept.
    box = drv.find_element(By.ID, "sgene")
    box.clear()
    box.send_keys("TUM1")
    drv.find_element(By.ID, "spots-go").click()
    msg = wait(lambda: (lambda t: t if "[400]" in t else None)(drv.find_element(By.ID, "msg").text), what="message")
    assert "TUM1" in msg and "Suggestions" in msg and viewer.spot_gene == "TUM01"


def test_the_page_loads_with_no_request_leaving_localhost(viewer, browser):
    """Runs last: quits the browser so the NetLog is complete."""
    drv = browser
    page_ready(drv, 3)
    drv.get(viewer.url)
    page_ready(drv, 3)
    time.sleep(2.0)
    drv.quit()
    text = Path(drv.netlog).read_text()
    urls = set(re.findall(r'"url":\s*"([^"]+)"', text))
    ours = [u for u in urls if urllib.parse.urlparse(u).hostname == "127.0.0.1"]
    assert any("/vortex/static/viewer.js" in u for u in ours) and any("/neuroglancer/" in u for u in ours), ours
    outside = sorted(
        u
        for u in urls
        if urllib.parse.urlparse(u).scheme in ("http", "https", "ws", "wss")
        and urllib.parse.urlparse(u).hostname not in ("127.0.0.1", "~notfound")
    )
    assert all(urllib.parse.urlparse(u).hostname in CHROMIUM_SERVICES for u in outside), outside
    # Nothing connected anywhere else: every resolved or connected address is loopback.
    addrs = re.findall(r'"(?:address_list|remote_address)":\s*(\[[^\]]*\]|"[^"]*")', text)
    flat = [a for s in addrs for a in (json.loads(s) if s.startswith("[") else [json.loads(s)])]
    assert flat and all(a.startswith("127.0.0.1:") for a in flat), flat


# -- bad input over HTTP (no browser) ---------------------------------------------------


def fetch(viewer, path: str) -> tuple[int, dict]:
    base = viewer.url.split("/vortex/")[0]
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_unknown_gene_is_a_400_with_suggestions(viewer):
    status, body = fetch(viewer, "/vortex/api/query?genes=TUM0x&sample=ph7")
    assert status == 400 and "TUM0x" in body["error"]
    assert "TUM01" in body["suggestions"]["TUM0x"]


def test_an_unknown_sample_is_a_404(viewer):
    for path in ("/vortex/api/open?sample=nope", "/vortex/api/query?genes=TUM01&sample=nope"):
        status, body = fetch(viewer, path)
        assert status == 404 and "nope" in body["error"] and "ph7" in body["known"], (path, body)


@pytest.mark.parametrize(
    "path",
    [
        "/vortex/static/../../../../../../etc/passwd",
        "/vortex/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/vortex/static/%2e%2e/_store.py",
        "/vortex/static/..%2f_viewer.py",
    ],
)
def test_a_path_outside_the_static_folder_is_refused(viewer, path):
    status, body = fetch(viewer, path)
    assert status in (403, 404) and "static folder" in body["error"], (status, body)
    assert "root:" not in json.dumps(body)


@pytest.mark.parametrize(
    "query",
    ["genes=%ZZ", "genes=TUM01&genes=TUM02", "genes=TUM01&bogus=1", "genes", "genes=%FF%FE", "genes=a&&b=1"],
)
def test_a_malformed_query_string_is_a_400(viewer, query):
    status, body = fetch(viewer, "/vortex/api/query?" + query)
    assert status == 400 and body["error"].startswith("malformed query string"), (query, body)


def test_bad_values_are_400s_and_the_server_keeps_serving(viewer):
    for path in ("/vortex/api/domains?k=x", "/vortex/api/domains?k=1", "/vortex/api/query?genes=", "/vortex/api/patch"):
        status, body = fetch(viewer, path)
        assert status == 400 and body["error"], (path, body)
    status, body = fetch(viewer, "/vortex/api/info")
    assert status == 200 and [s["id"] for s in body["samples"]] == ["ph11", "ph13", "ph7"]


def test_prediction_and_spot_requests_refuse_bad_input(viewer):
    cases = [
        ("/vortex/api/predict?gene=TUM0x&sample=ph7", 400, "TUM0x"),
        ("/vortex/api/predict?gene=TUM01&method=nope&sample=ph7", 400, "nope"),
        ("/vortex/api/predict?gene=TUM01,TUM02", 400, "one gene"),
        ("/vortex/api/predict?gene=TUM01&sample=nope", 404, "nope"),
        ("/vortex/api/spots?gene=XYZ9&sample=ph7", 400, "XYZ9"),
        ("/vortex/api/spots?sample=ph7", 400, "gene"),
        ("/vortex/api/spots?set=nope&sample=ph7", 404, "nope"),
    ]
    for path, code, word in cases:
        status, body = fetch(viewer, path)
        assert status == code and word in body["error"], (path, status, body)
    status, body = fetch(viewer, "/vortex/api/predict?gene=TUM0x&sample=ph7")
    assert "TUM01" in body["suggestions"]["TUM0x"]


def test_the_server_listens_on_localhost_only(viewer):
    assert viewer.url.startswith("http://127.0.0.1:") and viewer.url.endswith("/vortex/")
    port = urllib.parse.urlparse(viewer.url).port
    import socket

    addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None) if a[0] == socket.AF_INET}
    for a in addrs - {"127.0.0.1"}:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((a, port)) != 0, f"{a}:{port} accepts connections"


def test_python_m_vortexdb_view_prints_the_url_and_stops_on_ctrl_c(archive, viewer):
    """The command line; the store is held by the module's viewer, so this one opens
    it read-only (domains then answer 409 with a message)."""
    import signal
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "vortexdb", "view", str(archive["store"]), "--sample", "ph11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/vortex/)", line)
        assert m, (line, p.stderr.read() if p.poll() is not None else "")
        base = m.group(1).split("/vortex/")[0]
        with urllib.request.urlopen(base + "/vortex/api/info", timeout=30) as r:
            info = json.loads(r.read())
        assert info["current"] == "ph11" and len(info["samples"]) == 3
        try:
            urllib.request.urlopen(base + "/vortex/api/domains?k=3", timeout=30)
            raise AssertionError("domains on a read-only store answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 409 and "read-only" in json.loads(e.read())["error"]
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_a_second_view_replaces_the_first(archive, viewer):
    """Runs last (it stops the module's viewer): one viewer per process, and the new
    one's routes answer, not the old one's."""
    old = viewer.url
    with vortexdb.open(archive["store"], read_only=True) as db:
        v2 = vortexdb.view(db, sample="ph13")
        try:
            with pytest.raises(OSError):
                urllib.request.urlopen(old.split("/vortex/")[0] + "/vortex/api/info", timeout=5)
            status, body = fetch(v2, "/vortex/api/info")
            assert status == 200 and body["current"] == "ph13"
        finally:
            v2.stop()
        v2.stop()  # idempotent
    assert db.read_only  # a Store passed in is left open for its owner (closed by `with`)
