"""Registration from Python: the same library calls as ``vortexdb register``, their
files read back, and a failed registration raised as ``RegistrationFailed``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vortexdb
from vortexdb.errors import RegistrationFailed


@pytest.fixture(scope="module")
def ph(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reg") / "ph"
    vortexdb.phantom(out, seed=4, shape=(48, 256, 256))
    return out


def test_sections_are_registered_back(ph: Path, tmp_path: Path):
    a = Image.open(ph / "planes" / "plane_024.png").convert("RGB")
    canvas = Image.new("RGB", (360, 360), (246, 246, 246))
    canvas.paste(a, (52, 52))
    fixed = tmp_path / "fixed.png"
    canvas.save(fixed)
    # The moving image: the fixed one rotated by 20 degrees about its centre.
    moving = tmp_path / "moving.png"
    canvas.rotate(20, resample=Image.BILINEAR, fillcolor=(246, 246, 246)).save(moving)
    out = tmp_path / "t.json"
    t = vortexdb.register_sections([fixed, moving], out, reference=0)
    assert json.loads(out.read_text()) == t
    assert (tmp_path / t["pairs"][0]["qc"]).exists()
    # PIL's rotate(20) turns the picture counter-clockwise on screen: the map from the
    # moving image into the fixed one turns it back.
    assert abs(abs(t["pairs"][0]["rotation_deg"]) - 20.0) < 0.5, t["pairs"]
    m = np.array(t["sections"][1]).reshape(2, 3)
    c = m[:, :2] @ np.array([180.0, 180.0]) + m[:, 2]
    f = np.array(t["sections"][0]).reshape(2, 3)
    c0 = f[:, :2] @ np.array([180.0, 180.0]) + f[:, 2]
    assert np.linalg.norm(c - c0) < 1.0  # the centre stays put


def test_section_to_volume_and_spots_in_3d(ph: Path, tmp_path: Path):
    out = tmp_path / "plane.json"
    fit = vortexdb.register_section_to_volume(
        ph / "volume.npy", ph / "planes" / "plane_024.png", out, um_per_px=4, um_per_voxel=4
    )
    assert abs(fit["plane"]["origin"][2] - 24) < 1 and fit["tilt_total_deg"] < 1
    assert json.loads(out.read_text())["matrix"] == fit["matrix"]


def test_failures_raise_registration_failed(ph: Path, tmp_path: Path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (247, 247, 247)).save(blank)
    with pytest.raises(vortexdb.errors.BadInput, match="no tissue found"):
        vortexdb.register_sections([ph / "planes" / "plane_024.png", blank], tmp_path / "t.json")
    other = tmp_path / "other"
    vortexdb.phantom(other, seed=9, shape=(48, 256, 256))
    with pytest.raises(RegistrationFailed) as e:
        pair = [ph / "planes" / "plane_024.png", other / "planes" / "plane_024.png"]
        vortexdb.register_sections(pair, tmp_path / "u.json")
    assert e.value.score < 0.3 or e.value.overlap < 0.8
    assert not (tmp_path / "u.json").exists()


def test_spots_are_placed_by_a_plane_and_by_a_registered_section(tmp_path: Path):
    """`ingest_spots(plane=...)` puts a tilted section's spots at matrix (x, y, 1);
    `ingest_spots(transforms=..., section=i)` puts a serial section's spots in the
    registered stack's frame at z = i, through the section's field when it has one."""
    ph = tmp_path / "ph"
    vortexdb.phantom(ph, seed=4, shape=(48, 256, 256), oblique=1)
    truth = json.loads((ph / "phantom.json").read_text())["oblique"][0]
    plane = tmp_path / "plane.json"
    doc = {"format": "vortexdb-plane/1", "volume": "v.npy", "image": "s.png", "score": 1.0, "seconds": 0.0}
    plane.write_text(json.dumps({**doc, **truth}))
    spots = ph / "oblique" / "spots_00.parquet"
    with vortexdb.create(tmp_path / "store") as db:
        db.add_model("default")
        db.ingest_spots("tilted", spots, format="parquet", plane=plane)
        obs = db.spots("tilted").obs
        m = np.array(truth["matrix"])
        xyz = np.c_[obs["pixel_x"], obs["pixel_y"], np.ones(len(obs))] @ m.T
        assert np.allclose(obs[["x", "y", "z"]].to_numpy(), xyz, atol=1e-4)
        assert obs["z"].std() > 0.1  # a tilted section's spots lie at several depths

        # A stack of two sections whose second carries a field shifting by (3, -2) px.
        ident = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        field = {"origin": [0.0, 0.0], "step": 50.0, "grid": [2, 2], "dx": [3.0] * 4, "dy": [-2.0] * 4}
        stack = tmp_path / "t.json"
        sections = [ident, [1.0, 0.0, 10.0, 0.0, 1.0, 20.0]]
        doc = {"format": "vortexdb-transforms/2", "frame": [300, 300], "sections": sections}
        stack.write_text(json.dumps({**doc, "fields": [None, field]}))
        db.ingest_spots("serial", spots, format="parquet", transforms=stack, section=1)
        obs = db.spots("serial").obs
        # p + d(p) = A q  =>  p = A q - (3, -2).
        assert np.allclose(obs["x"], obs["pixel_x"] + 10.0 - 3.0)
        assert np.allclose(obs["y"], obs["pixel_y"] + 20.0 + 2.0)
        assert (obs["z"] == 1.0).all()
        with pytest.raises(vortexdb.errors.InvalidArgument, match="section 2 of a registration of 2"):
            db.ingest_spots("serial2", spots, format="parquet", transforms=stack, section=2)
        with pytest.raises(vortexdb.errors.InvalidArgument, match="go together"):
            db.ingest_spots("serial3", spots, format="parquet", transforms=stack)
