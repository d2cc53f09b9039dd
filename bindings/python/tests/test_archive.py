"""Archives on Ray (vortexdb.archive): four shards of phantom samples answer every
query as one store holding the four samples; a worker killed mid-ingest is retried
and resumes; bad input is refused with nothing written."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import vortexdb
from vortexdb import archive

ray = pytest.importorskip("ray", reason="Ray is installed by scripts/setup-python-package.sh")

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
