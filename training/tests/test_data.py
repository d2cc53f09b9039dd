"""Loaders and expression preprocessing: her2st (skips without the data), the generic
Parquet layout, the phantom (skips without a built vortexdb binary)."""

import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vortex_train.data import (
    MARKERS,
    her2st_panel,
    load_her2st,
    load_parquet_spots,
    load_phantom,
    normalize_log1p,
    qc_mask,
    read_her2st_section,
    smooth_knn,
)

ROOT = Path(__file__).resolve().parents[2]
HER2ST = ROOT.parent / "shared" / "data" / "her2st"
BIN = ROOT / "target" / "release" / "vortexdb"


def test_normalize_log1p_by_hand():
    c = np.array([[1.0, 3.0], [0.0, 0.0]])
    e = normalize_log1p(c)
    assert np.allclose(e[0], np.log1p([2500.0, 7500.0]))
    assert np.allclose(e[1], 0)


def test_qc_mask_rules():
    genes = ["A", "B", "MT-CO1"]
    counts = np.array([[5, 5, 0], [5, 0, 5], [0, 0, 0]], float)
    assert qc_mask(counts, genes, min_genes=1, max_mito=0.2).tolist() == [True, False, False]
    assert qc_mask(counts, genes, min_genes=2, max_mito=0.6).tolist() == [True, True, False]


def test_smooth_knn_averages_neighbours():
    v = np.array([[0.0], [2.0], [10.0]], np.float32)
    xy = np.array([[0, 0], [1, 0], [100, 0]], float)
    assert smooth_knn(v, xy, 2)[:, 0].tolist() == [1.0, 1.0, 6.0]


def test_parquet_layout(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    img[:32] = 200
    Image.fromarray(img).save(tmp_path / "s1.png")
    t = pa.table({"sample": ["s1", "s1"], "spot": ["a", "b"], "y": [16.0, 48.0], "x": [32.0, 32.0],
                  "GENE1": [10, 0], "GENE2": [0, 10]})  # fmt: skip
    pq.write_table(t, tmp_path / "spots.parquet")
    s = load_parquet_spots(tmp_path / "spots.parquet", {"s1": tmp_path / "s1.png"}, ["GENE1", "GENE2", "ABSENT"], 16,
                           patch_px=16)  # fmt: skip
    assert s.img2d.shape == (2, 3, 16, 16)
    assert s.img2d[0].mean() > s.img2d[1].mean()  # bright top half vs dark bottom half
    assert s.expr[0, 0] > 0 and s.expr[0, 1] == 0 and (s.expr[:, 2] == 0).all()
    with pytest.raises(ValueError, match="none of the 1 panel genes"):
        load_parquet_spots(tmp_path / "spots.parquet", {"s1": tmp_path / "s1.png"}, ["NOPE"])


@pytest.mark.skipif(not HER2ST.exists(), reason=f"her2st data absent at {HER2ST}")
def test_her2st_sections_and_2_5d_registration():
    c4 = read_her2st_section(HER2ST, "C4")
    assert 150 < len(c4.spot_ids) < 250
    assert c4.counts.shape == (len(c4.spot_ids), len(c4.genes))
    # from the spot table: ~291 px per 200 um array step (the README says ~255.6)
    assert 0.65 < c4.um_per_px < 0.8
    panel = her2st_panel([c4, read_her2st_section(HER2ST, "C3")])
    assert 250 < len(panel) <= 270 and "ERBB2" in panel
    assert sum(m in panel for m in MARKERS) >= 15
    s = load_her2st(HER2ST, ["C4"], panel[:20], image_size=16, depth=3)
    assert s.img3d.shape == (len(c4.spot_ids), 3, 3, 16, 16)
    # registered neighbours look like tissue, not the white background they would be
    # if the registration threw the centres off the section
    assert (s.img3d[:, 0].mean((1, 2, 3)) < s.img3d.max()).mean() > 0.9
    assert abs(s.img3d[:, 0].mean() - s.img3d[:, 1].mean()) < 0.5


@pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built (cargo build --release)")
def test_phantom_loader(tmp_path):
    out = tmp_path / "ph"
    subprocess.run([str(BIN), "phantom", "--seed", "3", "--shape", "32,256,256", "--out", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    s = load_phantom(out, image_size=32, depth=8)
    n = len(s.spot_ids)
    assert n > 5
    assert s.img2d.shape == (n, 3, 32, 32) and s.img3d.shape == (n, 8, 1, 32, 32)
    assert s.truth is not None and s.truth.shape == s.expr.shape
    assert len(s.genes) == 60 and s.group.max() >= 1


def test_cli_bad_input_is_one_line_and_exit_1(tmp_path, capsys):
    from vortex_train.cli import main

    code = main(["phantom", "--cohort", str(tmp_path / "nope"), "--voi", str(tmp_path), "--out", str(tmp_path / "m")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and "phantom.json" in err
