"""Archives on Ray (vortexdb.archive): four shards of phantom samples answer every
query as one store holding the four samples; a worker killed mid-ingest is retried
and resumes; bad input is refused with nothing written."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # installed by scripts/setup-python-package.sh (requirements-test.txt)

import vortexdb
from vortexdb import archive

SEEDS = {"p1": 7, "p2": 11, "p3": 13, "p4": 17}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("phantoms")
    return {s: vortexdb.phantom(d / s, seed=seed, shape=(32, 160, 160)) for s, seed in SEEDS.items()}


def specs(phantoms: dict) -> list[dict]:
    return [{"sample": s, "volume": ph["volume"], "spots": ph["spots"]} for s, ph in phantoms.items()]


@pytest.fixture(scope="module")
def one_store(tmp_path_factory, phantoms):
    """One store holding the four samples, ingested in sample order."""
    p = tmp_path_factory.mktemp("one") / "store"
    with vortexdb.create(p) as db:
        db.add_model("default")
        for s, ph in phantoms.items():
            db.ingest_volume(s, ph["volume"], threads=1, progress=False)
            db.ingest_spots(s, ph["spots"], threads=1)
    return p


@pytest.fixture(scope="module")
def arch(tmp_path_factory, phantoms, local_ray):
    """The same four samples as an archive of four shards, ingested on the local Ray."""
    root = tmp_path_factory.mktemp("arch") / "a"
    a = archive.create(root)
    rep = a.ingest(specs(phantoms), progress=False)
    assert sorted(rep["committed"]) == sorted(SEEDS)
    yield a
    a.close()


def test_catalog_lists_every_shard_complete(arch, one_store):
    df = arch.samples()
    assert sorted(df["id"]) == sorted(SEEDS)
    assert (df["status"] == "complete").all()
    with vortexdb.open(one_store, read_only=True) as db:
        want = {s["id"]: s["patches"] for s in db.info()["samples"]}
    assert dict(zip(df["id"], df["patches"], strict=True)) == want
    assert arch.check()["ok"]
    # Any shard opens as an ordinary store.
    with arch.store_of("p3") as s:
        assert [x["id"] for x in s.info()["samples"]] == ["p3"]


@pytest.mark.parametrize("genes", [["TUM01"], ["GLD01", "FAT01"]])
def test_query_genes_equals_one_store(arch, one_store, genes):
    with vortexdb.open(one_store, read_only=True) as db:
        want = db.query_genes(genes, top=25)
        got = arch.query_genes(genes, top=25)
        assert not got.partial
        assert got.query["spots_selected"] == len(want.spots)
        assert sorted(got.spots_used) == sorted(map(tuple, want.spots.to_numpy().tolist()))
        np.testing.assert_allclose(got.embedding, want.embedding, atol=1e-6)
        assert got.threshold == pytest.approx(want.threshold, abs=1e-6)
        wt = want.top
        gt = got.top
        for c in ["sample", "z", "y", "x"]:
            assert list(gt[c]) == list(wt[c])
        np.testing.assert_allclose(gt["score"], wt["score"], atol=1e-6)
        np.testing.assert_allclose(gt["percentile"], wt["percentile"], atol=1e-6)
        wtr, gtr = want.triage, got.triage
        assert list(gtr["sample"]) == list(wtr["sample"])
        for col in ["patches", "fraction_above", "max_score", "mean_score"]:
            np.testing.assert_allclose(gtr[col], wtr[col], atol=1e-6)
        assert [list(x) for x in gtr["best_origin"]] == [list(x) for x in wtr["best_origin"]]
        for s in SEEDS:
            np.testing.assert_allclose(got.heatmap[s], want.heatmap[s], atol=1e-6, equal_nan=True)


def test_query_profile_and_patch_equal_one_store(arch, one_store):
    with vortexdb.open(one_store, read_only=True) as db:
        want = db.query_profile(markers=["STR01", "STR02"], top=15)
        got = arch.query_profile(markers=["STR01", "STR02"], top=15)
        np.testing.assert_allclose(got.embedding, want.embedding, atol=1e-6)
        assert list(got.top["sample"]) == list(want.top["sample"])
        np.testing.assert_allclose(got.top["score"], want.top["score"], atol=1e-6)
        assert list(got.triage["sample"]) == list(want.triage["sample"])
        w = db.query_patch("p2", (8, 60, 60), top=20, exact=True)
        g = arch.query_patch("p2", (8, 60, 60), top=20, exact=True)
        assert not g.attrs["partial"]
        assert list(g["sample"]) == list(w["sample"])
        assert [tuple(o) for o in g["origin"]] == [tuple(o) for o in w["origin"]]
        np.testing.assert_allclose(g["similarity"], w["similarity"], atol=1e-6)
        assert set(g["shard"]) == set(g["sample"])


def test_same_answers_on_the_local_backend(arch, one_store):
    with archive.open(arch.root, backend="local") as a, vortexdb.open(one_store, read_only=True) as db:
        got = a.query_genes(["TUM01"], top=10)
        want = db.query_genes(["TUM01"], top=10)
        np.testing.assert_allclose(got.top["score"], want.top["score"], atol=1e-6)
        assert list(got.triage["sample"]) == list(want.triage["sample"])


def test_store_pickles_as_its_path(one_store):
    with vortexdb.open(one_store, read_only=True) as db:
        again = pickle.loads(pickle.dumps(db))
        assert again.path == db.path and again.read_only
        assert again.info()["samples"] == db.info()["samples"]
        again.close()


def test_a_dead_reader_and_a_timeout_are_named(arch):
    a = archive.open(arch.root)
    try:
        r = a.query_genes(["TUM01"], timeout=0.0)
        assert r.partial and set(r.missing) and all("no answer" in v for v in r.missing.values())
        a._open(set(a.catalog.shards))
        victim = a._backend.where["p2"]
        ray.kill(victim)
        r = a.query_genes(["TUM01"])
        assert r.partial and "p2" in r.missing
        assert "p2" not in r.samples
    finally:
        a.close()


def _probe_scores(path, sample: str) -> dict:
    """Every patch of ``sample`` -> its scores against three fixed probe embeddings:
    equal vectors give equal scores."""
    rng = np.random.default_rng(0)
    out: dict = {}
    with vortexdb.open(path, read_only=True) as db:
        dim = db.models()[0]["manifest"]["embedding_dim"]
        for _ in range(3):
            r = db._s.query_embedding([float(x) for x in rng.normal(size=dim)], samples=[sample]).ranked()
            for z, y, x, sc in zip(r["z"], r["y"], r["x"], r["score"], strict=True):
                out.setdefault((int(z), int(y), int(x)), []).append(float(sc))
    return out


def test_a_worker_killed_mid_ingest_is_retried_and_resumes(tmp_path, local_ray):
    ph = vortexdb.phantom(tmp_path / "big", seed=7, shape=(48, 256, 256))
    vol = {"path": ph["volume"], "batch": 16}
    direct = tmp_path / "direct"
    with vortexdb.create(direct) as db:
        db.add_model("default")
        db.ingest_volume("k1", ph["volume"], batch=16, threads=1, progress=False)
    root = tmp_path / "arch"
    a = archive.create(root)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(a.ingest([{"sample": "k1", "volume": vol}], progress=False)))
    t.start()
    prog = root / ".progress" / "k1.json"
    killed = None
    deadline = time.monotonic() + 120
    while t.is_alive() and time.monotonic() < deadline:
        # The catalog never lists the shard before it is complete.
        cat = json.loads((root / "archive.json").read_text())
        for row in cat["shards"].values():
            assert row["status"] == "complete" and all(s["status"] == "complete" for s in row["samples"])
            with vortexdb.open(root / row["path"], read_only=True) as s:
                assert all(x["status"] == "complete" for x in s.info()["samples"])
        try:
            p = json.loads(prog.read_text())
        except (OSError, ValueError):
            p = None
        if killed is None and p and 0 < p["done"] < p["total"] and p["sample"] == "k1":
            os.kill(p["pid"], signal.SIGKILL)
            killed = p
        time.sleep(0.05)
    t.join(120)
    assert killed is not None, "the ingest finished before it could be killed"
    assert result["committed"] == ["k1"]
    after = json.loads(prog.read_text())
    assert after["pid"] != killed["pid"], "the task was not run again in another worker"
    with vortexdb.open(root / "shards" / "k1", read_only=True) as s:
        info = s.info()
    want = _probe_scores(direct, "k1")
    got = _probe_scores(root / "shards" / "k1", "k1")
    # Nothing stored twice: one vector per patch, the same patches as the direct run.
    assert info["samples"][0]["patches"] == len(want)
    assert sum(c["live"] for c in info["collections"] if c["modality"] == "3d") == len(want)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-5)


@pytest.fixture()
def small(tmp_path, phantoms):
    """A two-shard archive built on the local backend (no Ray)."""
    root = tmp_path / "small"
    a = archive.create(root, backend="local")
    a.ingest([{"sample": s, "volume": phantoms[s]["volume"], "spots": phantoms[s]["spots"]} for s in ("p1", "p2")])
    return a


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".lock" not in p.name}


def test_a_shard_with_another_model_is_refused(small, tmp_path, phantoms):
    model = tmp_path / "other-model"
    shutil.copytree(Path(__file__).resolve().parents[3] / "models" / "default", model)
    m = json.loads((model / "manifest.json").read_text())
    m["name"] = "other-model"
    (model / "manifest.json").write_text(json.dumps(m))
    st = tmp_path / "other-store"
    with vortexdb.create(st) as db:
        db.add_model(model)
        db.ingest_volume("p3", phantoms["p3"]["volume"], progress=False)
    before = _snapshot(small.root)
    with pytest.raises(vortexdb.errors.ArchiveError, match="other-model"):
        small.add_shard(st)
    assert _snapshot(small.root) == before


def test_a_store_of_the_same_model_attaches(small, tmp_path, phantoms):
    st = tmp_path / "same"
    with vortexdb.create(st) as db:
        db.add_model("default")
        db.ingest_volume("p3", phantoms["p3"]["volume"], progress=False)
    small.add_shard(st, name="extra")
    assert small.catalog.owner("p3") == "extra"
    assert small.check()["ok"]
    with pytest.raises(vortexdb.errors.ArchiveError, match="already in shard"):
        small.add_shard(st, name="again")


def test_a_missing_or_damaged_shard_is_named(small):
    p2 = small.root / "shards" / "p2"
    redb = p2 / "vortex.redb"
    data = bytearray(redb.read_bytes())
    for i in range(4096, min(len(data), 4096 + 8192)):
        data[i] ^= 0xA5
    redb.write_bytes(bytes(data))
    rep = small.check()
    assert not rep["ok"] and rep["shards"]["p2"] and not rep["shards"]["p1"]
    shutil.rmtree(p2)
    rep = small.check()
    assert "missing" in rep["shards"]["p2"][0]
    with pytest.raises(vortexdb.errors.ArchiveError, match="shard 'p2'"):
        small.query_genes(["TUM01"])


def test_a_catalog_naming_a_sample_twice_is_refused(small):
    cat = json.loads((small.root / "archive.json").read_text())
    cat["shards"]["p2"]["samples"].append(dict(cat["shards"]["p1"]["samples"][0]))
    (small.root / "archive.json").write_text(json.dumps(cat))
    with pytest.raises(vortexdb.errors.ArchiveError, match="names sample 'p1' twice"):
        archive.open(small.root)


def test_unknown_sample_or_gene(small):
    before = _snapshot(small.root)
    with pytest.raises(vortexdb.errors.UnknownGenes):
        small.query_genes(["NOTAGENE"])
    with pytest.raises(vortexdb.errors.UnknownSample):
        small.query_genes(["TUM01"], sample="nope")
    with pytest.raises(vortexdb.errors.UnknownSample):
        small.query_patch("nope", (0, 0, 0))
    with pytest.raises(vortexdb.errors.UnknownSample):
        small.query_genes(["TUM01"], spots_from="nope")
    small.close()
    assert _snapshot(small.root) == before


def test_an_unreachable_ray_address_is_refused(tmp_path):
    root = tmp_path / "never"
    t0 = time.monotonic()
    with pytest.raises(vortexdb.errors.ClusterUnreachable, match="127.0.0.1:9"):
        archive.create(root, address="127.0.0.1:9")
    assert time.monotonic() - t0 < 30
    assert not root.exists()
    with pytest.raises(vortexdb.errors.ClusterUnreachable, match="HOST:PORT"):
        archive.create(root, address="no-port-here")


def test_bad_specs_are_refused_before_anything_runs(small):
    before = _snapshot(small.root)
    for bad, msg in [
        ([{"volume": "x.npy"}], "'sample' id"),
        ([{"sample": "q", "volume": "a", "image": "b"}], "at most one image source"),
        ([{"sample": "q", "colour": 1}], "unknown key"),
        ([{"sample": "q", "volume": "a"}, {"sample": "q", "volume": "b"}], "also spec 0"),
        ([{"sample": "q", "volume": "a", "shard": "../up"}], "shard name"),
        ([{"sample": "p1", "volume": "a", "shard": "elsewhere"}], "already in shard 'p1'"),
    ]:
        with pytest.raises(vortexdb.errors.ArchiveError, match=msg):
            small.ingest(bad)
    assert _snapshot(small.root) == before


def test_the_cli_lists_checks_and_queries(small, monkeypatch):
    from conftest import cli

    monkeypatch.setenv("VORTEX_PYTHON", sys.executable)
    out = json.loads(cli("archive", "list", small.root, "--json").stdout)
    assert sorted(s["id"] for s in out["samples"]) == ["p1", "p2"]
    q = cli("archive", "query", small.root, "--genes", "TUM01", "--backend", "local", "--top", "5", "--json")
    got = json.loads(q.stdout)
    want = small.query_genes(["TUM01"], top=5)
    assert [t["score"] for t in got["top"]] == pytest.approx(list(want.top["score"]), abs=1e-6)
    assert not got["partial"]
    assert cli("archive", "check", small.root).returncode == 0
    shutil.rmtree(small.root / "shards" / "p2")
    r = cli("archive", "check", small.root, ok=False)
    assert r.returncode == 1 and "missing" in r.stdout
    r = cli("archive", "query", small.root, "--genes", "TUM01", "--backend", "local", ok=False)
    assert r.returncode == 2 and "shard 'p2'" in r.stderr
