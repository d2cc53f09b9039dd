"""The phantom workflow through Python gives the CLI's answers on the same data."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import vortexdb

from conftest import cli, cli_json


def test_python_ingest_stores_what_the_cli_stores(stores):
    with vortexdb.open(stores["cli"], read_only=True) as a, vortexdb.open(stores["py"], read_only=True) as b:
        sa = {s["id"]: s for s in a.info()["samples"]}
        sb = {s["id"]: s for s in b.info()["samples"]}
        assert sa["ph7"]["patches"] == sb["ph7"]["patches"] > 100
        assert sb["ph7"]["status"] == "complete"
        assert sa["ph7"]["source_shape"] == sb["ph7"]["source_shape"] == [32, 160, 160]
        spots_a, spots_b = a.spots("ph7"), b.spots("ph7")
        assert list(spots_a.obs_names) == list(spots_b.obs_names)
        np.testing.assert_array_equal(spots_a.X, spots_b.X)


@pytest.mark.parametrize("store", ["cli", "py"])
def test_query_heatmap_and_top_equal_the_cli(stores, tmp_path, store):
    out = tmp_path / "q"
    ref = cli_json("query", "genes", stores["cli"], "--genes", "TUM01", "--out", out)
    with vortexdb.open(stores[store], read_only=True) as db:
        q = db.query_genes("TUM01")
        assert [t["id"] for t in ref["top"]] == q.top["id"].tolist()
        np.testing.assert_allclose(q.top["score"], [t["score"] for t in ref["top"]], atol=1e-6)
        want = np.load(out / "heatmap_ph7.npy")
        got = q.heatmap["ph7"]
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True)
        assert q.triage["sample"].tolist() == ["ph7"]
        assert len(q.spots) > 0 and set(q.spots["sample"]) == {"ph7"}


def _cli_domains(store, out, k, seed):
    ref = cli_json("domains", store, "--sample", "ph7", "--k", k, "--seed", seed, "--out", out)
    with open(out / "domains.csv") as f:
        rows = list(csv.DictReader(f))
    return ref, rows


def test_domains_equal_the_cli_for_the_same_seed(stores, tmp_path):
    ref, rows = _cli_domains(stores["cli"], tmp_path / "d", 4, 3)
    with vortexdb.open(stores["py"]) as db:
        d = db.domains("ph7", k=4, seed=3)
    assert d.ids.tolist() == [int(r["patch_id"]) for r in rows]
    # domains.csv numbers domains from 1 (as domains.npy, where 0 = no patch).
    assert (d.labels + 1).tolist() == [int(r["domain"]) for r in rows]
    assert len(set(d.labels.tolist())) == 4
    assert d.inertia == pytest.approx(ref["inertia"], rel=1e-9)
    vol = np.load(tmp_path / "d" / "domains.npy")
    assert d.label_volume.shape == vol.shape
    np.testing.assert_array_equal(d.label_volume, vol)


def test_eval_numbers_equal_the_cli(stores):
    ref = cli_json("eval", stores["cli"], "--sample", "ph7")
    # The CLI's envelope (status and files written) is not part of the evaluation.
    assert ref.pop("ok") is True and ref.pop("files") == []
    with vortexdb.open(stores["py"], read_only=True) as db:
        got = db.evaluate("ph7")

    def close(a, b, path="eval"):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for k in a:
                close(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                close(x, y, f"{path}[{i}]")
        elif isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-6, abs=1e-9, nan_ok=True), path
        else:
            assert a == b, path

    close(ref, got)


def test_ridge_readout_equals_the_cli(stores):
    """``evaluate(ridge=True, reference=...)`` gives ``vortexdb eval --ridge`` numbers, the
    penalty and context chosen and the fit (with ``context_um=[]`` as ``--context-um 0``);
    ``predict(ridge=True)`` an AnnData of the same shape as the predictor's; mixing
    methods is refused."""
    ins = "--allow-in-sample"
    ref = cli_json("eval", stores["cli"], "--sample", "ph7", "--ridge", "--reference", "ph7", ins)
    bare = cli_json("eval", stores["cli"], "--sample", "ph7", "--ridge", "--reference", "ph7", "--context-um", "0", ins)
    with vortexdb.open(stores["cli"], read_only=True) as db:
        with pytest.raises(vortexdb.BadInput, match="also the readout's reference"):
            db.evaluate("ph7", ridge=True, reference="ph7")
        got = db.evaluate("ph7", ridge=True, reference="ph7", allow_in_sample=True)
        got_bare = db.evaluate("ph7", ridge=True, reference="ph7", context_um=[], allow_in_sample=True)
        a = db.predict("ph7", ridge=True, reference=["ph7"], alpha=10.0)
        b = db.predict("ph7")
        with pytest.raises(vortexdb.BadInput, match="give one"):
            db.predict("ph7", knn=5, ridge=True, reference="ph7")
        with pytest.raises(vortexdb.BadInput, match="alpha"):
            db.predict("ph7", alpha=1.0)
        with pytest.raises(vortexdb.BadInput, match="context_um"):
            db.predict("ph7", context_um=[200.0])
    assert got["method"] == ref["method"] == {
        "Ridge": {"reference": ["ph7"], "alpha": 100.0, "context_um": [200.0, 400.0]}
    }
    assert got["ridge"] == ref["ridge"] and got_bare["ridge"] == bare["ridge"]
    assert got["in_sample"] is True and ref["in_sample"] is True
    assert got_bare["ridge"]["context_um"] == [] and got_bare["ridge"]["features"] < got["ridge"]["features"]
    assert got["report"]["pcc_all"] == pytest.approx(ref["report"]["pcc_all"], rel=1e-6)
    assert got_bare["report"]["pcc_all"] == pytest.approx(bare["report"]["pcc_all"], rel=1e-6)
    assert a.shape == b.shape and not np.allclose(a.X, b.X)
    assert a.uns["vortexdb"]["ridge"]["alpha"] == 10.0 and "ridge" not in b.uns["vortexdb"]


def test_predict_gives_anndata(stores):
    with vortexdb.open(stores["py"], read_only=True) as db:
        a = db.predict("ph7")
        n = db.info()["samples"][0]["patches"]
    assert a.shape[0] == n and a.shape[1] > 0
    assert a.X.dtype == np.float32 and np.isfinite(a.X).all()
    assert a.obsm["hidden"].shape[0] == n
    assert {"sample", "z", "y", "x", "tissue"} <= set(a.obs.columns)
    assert a.uns["vortexdb"]["sample"] == "ph7"


def test_image_embeddings_at_spots_equal_the_cli_export(stores, tmp_path):
    """``spots(sample, image=...)`` holds the same image features as ``vortexdb spots
    export --image`` (its kept spots), for the linear probe; an unknown image is a
    ``UnknownSample`` naming it."""
    out = tmp_path / "spots"
    cli("spots", "export", stores["cli"], "--sample", "ph7", "--image", "ph7", "--out", out)
    want = np.load(out / "image_embeddings.npy")
    with vortexdb.open(stores["cli"], read_only=True) as db:
        a = db.spots("ph7", image="ph7")
        assert "image_embedding" not in db.spots("ph7").obsm
        with pytest.raises(vortexdb.UnknownSample, match="nosuch"):
            db.spots("ph7", image="nosuch")
    got = a.obsm["image_embedding"]
    assert got.shape == (a.n_obs, want.shape[1]) and np.isfinite(got).all()
    np.testing.assert_allclose(got[a.obs["kept"].to_numpy(bool)], want, rtol=0, atol=1e-6)


def test_vectors_search_equals_the_cli(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    q = rng.normal(size=(20, 16)).astype(np.float32)
    np.save(tmp_path / "q.npy", q)
    with vortexdb.create(tmp_path / "db") as db:
        r = db.import_vectors("v", x)
        assert r["imported"] == 2000 and r["file"] is None
        ids, dist = db.search("v", q, k=5)
        exact, _ = db.search("v", q, k=5, exact=True)
    cli(
        "vectors",
        "search",
        tmp_path / "db",
        "--collection",
        "v",
        "--queries",
        tmp_path / "q.npy",
        "--k",
        "5",
        "--out",
        tmp_path / "ids.npy",
    )
    np.testing.assert_array_equal(ids, np.load(tmp_path / "ids.npy"))
    assert ids.dtype == np.int64 and dist.shape == (20, 5)
    # Exact neighbours by brute force.
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(exact, np.argsort(d, axis=1)[:, :5])


def test_profile_and_patch_queries_equal_the_cli(stores, tmp_path):
    (tmp_path / "p.csv").write_text("gene,value\nTUM01,3.0\nTUM02,2.5\n")
    ref = cli_json("query", "profile", stores["cli"], "--profile", tmp_path / "p.csv")
    with vortexdb.open(stores["py"], read_only=True) as db:
        q = db.query_profile({"TUM01": 3.0, "TUM02": 2.5})
        assert [t["id"] for t in ref["top"]] == q.top["id"].tolist()
        best = q.top.iloc[0]
        at = f"{best['z']},{best['y']},{best['x']}"
    # Retrieval walks the HNSW graph, which two parallel builds need not make identical:
    # compared on the CLI's store.
    with vortexdb.open(stores["cli"], read_only=True) as db:
        hits = db.query_patch("ph7", at=(best["z"], best["y"], best["x"]), top=5)
    want = cli_json("query", "patch", stores["cli"], "--sample", "ph7", "--at", at, "--top", "5")
    assert hits["id"].tolist() == [h["id"] for h in want["hits"]]
    np.testing.assert_allclose(hits["similarity"], [h["similarity"] for h in want["hits"]], atol=1e-6)


def test_stored_readout_equals_the_cli(stores):
    """``fit_readout`` stores what ``vortexdb readout fit`` stores (same fit, same
    predictions through ``readout=``); a stored readout carries its reference, so mixing
    it with another method is refused, as is an unknown name or a second fit under the
    same name."""
    ref = cli_json("readout", "fit", stores["cli"], "--name", "r7", "--sample", "ph7", "--reference", "ph7")
    ref_eval = cli_json("eval", stores["cli"], "--sample", "ph7", "--readout", "r7", "--allow-in-sample")
    with vortexdb.open(stores["py"]) as db:
        fit = db.fit_readout("r7", "ph7", "ph7")
        for k in ("alpha", "context_um", "spots", "features", "anchored", "per_sample"):
            assert fit[k] == ref[k], k
        assert [r["name"] for r in db.readouts()] == ["r7"]
        with pytest.raises(vortexdb.BadInput, match="exists"):
            db.fit_readout("r7", "ph7", "ph7")
        with pytest.raises(vortexdb.BadInput, match="also the readout's reference"):
            db.evaluate("ph7", readout="r7")
        got = db.evaluate("ph7", readout="r7", allow_in_sample=True)
        a = db.predict("ph7", readout="r7")
        with pytest.raises(vortexdb.BadInput, match="no readout named 'nope'"):
            db.predict("ph7", readout="nope")
        with pytest.raises(vortexdb.BadInput, match="alone"):
            db.predict("ph7", readout="r7", reference="ph7")
    assert got["method"] == ref_eval["method"] == {"Readout": {"name": "r7", "reference": ["ph7"]}}
    assert got["report"]["pcc_all"] == pytest.approx(ref_eval["report"]["pcc_all"], rel=1e-5)
    assert a.shape[1] == 60
