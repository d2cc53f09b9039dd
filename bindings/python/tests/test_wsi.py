"""Pyramidal whole-slide TIFFs through Python: ``ingest_image`` reads the level nearest
the model's pixel size with the file's pixel size (tifffile-written fixtures of
tests/wsi_tests.rs), like the CLI; without a pixel size it asks for one."""

from __future__ import annotations

import pytest

import vortexdb

from conftest import ROOT, cli_json

WSI = ROOT / "tests" / "fixtures" / "wsi"


def test_python_reads_a_pyramid_like_the_cli(tmp_path):
    db = tmp_path / "db"
    with vortexdb.create(db) as s:
        s.add_model("default")
        r = s.ingest_image("ome", WSI / "ome_jpeg.ome.tif", progress=False)
        assert r["source_shape"] == [1, 96, 128]  # level 2 of 4: 4 um/px, the model's
        lvl = s.ingest_image("svs0", WSI / "svs_lzw.tif", level=0, progress=False)
        assert lvl["source_shape"] == [1, 384, 512]
        with pytest.raises(vortexdb.errors.InvalidArgument, match="no pixel size"):
            s.ingest_image("plain", WSI / "plain_deflate.tif", progress=False)
        with pytest.raises(vortexdb.errors.InvalidArgument, match="no pixel size"):
            s.ingest_image("png", WSI / "level2.png", progress=False)
        assert {x["id"] for x in s.info()["samples"]} == {"ome", "svs0"}
    c = cli_json("ingest", "image", db, "--sample", "ome-cli", WSI / "ome_jpeg.ome.tif")
    assert c["patches_total"] == r["patches_total"] > 20


def test_python_stacks_pyramidal_sections_like_the_cli(tmp_path):
    """``ingest_sections`` reads each pyramid at the level nearest the model, with the
    pixel size it records, and stores what the CLI stores from the same files."""
    db = tmp_path / "db"
    files = [WSI / "svs_lzw.tif"] * 4
    with vortexdb.create(db) as s:
        s.add_model("default")
        r = s.ingest_sections("py", files, spacing_um=16, progress=False)
        assert r["source_shape"] == [4, 96, 128]  # level 2: 4 um/px
        with pytest.raises(vortexdb.errors.InvalidArgument, match="no pixel size"):
            s.ingest_sections("png", [WSI / "level2.png"] * 4, spacing_um=16, progress=False)
    c = cli_json("ingest", "sections", db, "--sample", "cli", "--spacing-um", "16", *files)
    assert c["patches_total"] == r["patches_total"] > 5
    with vortexdb.open(db, read_only=True) as s:
        a, b = s.predict("py"), s.predict("cli")
        assert (a.X == b.X).all() and (a.obs[["z", "y", "x"]].values == b.obs[["z", "y", "x"]].values).all()
