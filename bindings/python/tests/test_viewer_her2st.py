"""The viewer on real data: a her2st store of three serial H&E sections (C2, C3, C4)
registered from the images (``register_sections``) and ingested as one 2.5D stack,
with C3's spots placed in the stack's frame. The page shows the registered sections
from the files the store recorded (no ``images=`` needed), the spots land on tissue,
and the domains, gene-query and spot controls work on it.

Needs ``../shared/data/her2st`` (skipped by name when absent; a failure under
``VORTEX_REQUIRE_DATA=1``) and the browser (as ``test_viewer.py``).
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from test_viewer import chrome, page_ready, panel_rect, pixels, to_screen, wait

import vortexdb

pytest.importorskip("neuroglancer", reason="neuroglancer is not installed (requirements-test.txt)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-test.txt)")
from selenium.webdriver.common.by import By  # noqa: E402

SECTIONS = ["C2", "C3", "C4"]
UM_PER_PX = 0.69  # data/her2st/README.md: ~0.69 um per image pixel


@pytest.fixture(scope="module")
def her2st_view_store(her2st, her2st_model, tmp_path_factory) -> dict:
    """Sections C2-C4 registered and ingested, C3's spots. The test model's 16-px
    patches are read at 4 um per pixel (its manifest edited: the weights do not matter
    here), 64-um patches: ~11,000 over the three sections instead of ~3.4 million."""
    d = tmp_path_factory.mktemp("her2st-view")
    model = d / "model"
    shutil.copytree(her2st_model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    for key in ("patch", "patch_2d"):
        manifest[key]["um_per_px"] = 4.0
    (model / "manifest.json").write_text(json.dumps(manifest, indent=2))
    images = [her2st / "images" / f"{s}.jpg" for s in SECTIONS]
    reg = d / "reg" / "transforms.json"
    t = time.time()
    vortexdb.register_sections(images, reg)
    print(f"\nregistered in {time.time() - t:.1f}s", flush=True)
    store = d / "store"
    with vortexdb.create(store) as db:
        db.add_model(model)
        t = time.time()
        r = db.ingest_sections("her2st", images, spacing_um=32, um_per_px=UM_PER_PX, transforms=reg, overlap=0.0,
                               progress=False)
        print(f"ingested {r.get('patches')} patches in {time.time() - t:.1f}s", flush=True)
        db.ingest_spots("C3", her2st / "counts" / "C3.tsv.gz", format="her2st", transforms=reg, section=1)
        info = db.info()
        genes = list(db.models()[0]["manifest"]["encoder_genes"]["names"])
    return {"store": store, "info": info, "genes": genes, "images": images, "reg": reg}


def test_the_store_records_where_the_sections_are(her2st_view_store):
    rec = next(s for s in her2st_view_store["info"]["samples"] if s["id"] == "her2st")
    assert rec["images"] == [str(p.resolve()) for p in her2st_view_store["images"]]
    assert rec["transforms"] == str(her2st_view_store["reg"].resolve())
    with vortexdb.open(her2st_view_store["store"], read_only=True) as db:
        a = db.read_image_slice("her2st", 1, 8)
        assert a.dtype == np.uint8 and a.shape[2] == 3
        assert list(a.shape[:2]) == [-(-n // 8) for n in rec["source_shape"][1:]]
        with pytest.raises(vortexdb.errors.InvalidArgument, match="slice 3"):
            db.read_image_slice("her2st", 3)
        with pytest.raises(vortexdb.errors.UnknownSample):
            db.read_image_slice("C9", 0)


@pytest.fixture(scope="module")
def her2st_view(her2st_view_store):
    v = vortexdb.view(her2st_view_store["store"], sample="her2st")
    yield v
    v.stop()


@pytest.fixture(scope="module")
def her2st_browser(her2st_view):
    drv = chrome()
    drv.get(her2st_view.url)
    yield drv
    drv.quit()


def test_the_registered_sections_are_shown_with_the_spots_on_tissue(her2st_view, her2st_browser, her2st_view_store):
    v, drv = her2st_view, her2st_browser
    page_ready(drv, 1)
    g = v.samples["her2st"]
    assert g.image is not None and not g.image_note, g.image_note
    names = [m.name for m in v.ng.state.layers]
    assert "image" in names and "spots" not in names  # no spot set is named 'her2st'
    # C3's spots, coloured by a gene they measure, over the sample.
    gene = her2st_view_store["genes"][0]
    drv.switch_to.default_content()
    wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#spotset option"), what="the spot sets")
    box = drv.find_element(By.ID, "sgene")
    box.clear()
    box.send_keys(gene)
    drv.find_element(By.ID, "spots-go").click()
    wait(lambda: f"coloured by {gene}" in drv.find_element(By.ID, "msg").text, what="the spots")
    spots = next(m for m in v.ng.state.layers if m.name == "spots")
    pts = np.array([a.point for a in spots.annotations], float)
    assert len(pts) > 100 and np.allclose(pts[:, 0], pts[0, 0])  # one section
    # The view at C3's depth with the image alone: the spots' pixels are tissue (H&E
    # stained, not the white glass around it).
    with v.ng.txn() as s:
        s.position = [float(pts[0, 0]) + 0.5, *list(s.position)[1:]]
        for m in s.layers:
            m.visible = m.name == "image"
    time.sleep(1.0)
    rect = panel_rect(drv)

    def image_drawn(px: np.ndarray) -> np.ndarray:
        """Pixels of the panel that are not its plain grey background."""
        yy, xx = np.mgrid[0 : px.shape[0], 0 : px.shape[1]]
        inside = (xx > rect["x"]) & (xx < rect["x"] + rect["w"]) & (yy > rect["y"]) & (yy < rect["y"] + rect["h"])
        return inside & (np.abs(px - 128).max(axis=2) > 4)

    # Until the image has arrived (a section slice is decoded from its JPEG on first
    # use: seconds) and stopped changing.
    last, px = None, pixels(drv)
    for _ in range(240):
        time.sleep(0.5)
        last, px = px, pixels(drv)
        if np.array_equal(last, px) and image_drawn(px).mean() > 0.1:
            break
    scr = [to_screen(v, rect, y, x) for _, y, x in pts]
    on = np.array([px[int(round(sy)), int(round(sx))].sum() for sx, sy in scr])
    tissue = float(np.mean(on < 600))
    # The spots cover the array's area, part tissue, part glass (white): they land on
    # the tissue far more often than the image under their bounding box is tissue.
    ys, xs = np.mgrid[0 : px.shape[0], 0 : px.shape[1]]
    lo, hi = np.min(scr, axis=0), np.max(scr, axis=0)
    box = image_drawn(px) & (xs >= lo[0]) & (xs <= hi[0]) & (ys >= lo[1]) & (ys <= hi[1])
    assert box.sum() > 10000, "no image drawn under the spots"
    area = float(np.mean(px.sum(axis=2)[box] < 600))
    with v.ng.txn() as s:
        for m in s.layers:
            m.visible = m.name != "patches"
    print(f"\nher2st C3: {len(pts)} spots, {tissue:.0%} on tissue; {area:.0%} of the image under them")
    assert tissue >= 0.8 and tissue >= area + 0.15, (tissue, area)


def test_domains_and_a_gene_query_on_the_her2st_stack(her2st_view, her2st_view_store):
    v = her2st_view
    r = v.show_domains(3, "her2st")
    layer = next(m for m in v.ng.state.layers if m.name == "domains")
    assert r["labels"] == [1, 2, 3] and sorted(int(s) for s in layer.segments) == [1, 2, 3]
    gene = her2st_view_store["genes"][0]
    q = v.show_genes([gene], "her2st")
    assert [t["sample"] for t in q["triage"]] == ["her2st"]
    assert "heatmap" in [m.name for m in v.ng.state.layers]
