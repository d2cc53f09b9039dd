"""NumPy in and out, threads, Ctrl-C, AnnData out."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

import vortexdb
from vortexdb import errors


def test_returned_arrays_are_the_rust_buffers(stores):
    with vortexdb.open(stores["py"], read_only=True) as db:
        q = db.query_genes("TUM01")
        h = q.heatmap["ph7"]
        assert q.heatmap["ph7"] is h  # computed once
        # NumPy does not own the data: it is the library's vector, handed over.
        assert not h.flags.owndata and h.base is not None
        raw = db._s.predict("ph7")
        a = vortexdb._results.predictions_anndata(raw)
        assert np.shares_memory(a.X, raw["expression"])
        assert not raw["expression"].flags.owndata
        ids, dist = db.search("vortex-tiny-phantom:3d", q.embedding, k=3, exact=True)
        assert not ids.flags.owndata and ids.shape == (1, 3)
        assert ids[0, 0] == q.top["id"][0]


def test_predict_anndata_works_with_scanpy(stores):
    import scanpy as sc

    with vortexdb.open(stores["py"], read_only=True) as db:
        a = db.predict("ph7")
    sc.pp.pca(a, n_comps=5)
    assert a.obsm["X_pca"].shape == (a.n_obs, 5)
    sc.pp.neighbors(a, n_neighbors=5, use_rep="hidden")
    assert a.obsp["connectivities"].shape == (a.n_obs, a.n_obs)


def test_non_contiguous_and_float64_inputs_are_converted(tmp_path):
    x = np.random.default_rng(1).normal(size=(500, 32))
    with vortexdb.create(tmp_path / "db") as db:
        db.import_vectors("v", np.asfortranarray(x))  # float64, Fortran order
        ids, _ = db.search("v", x[::7], k=1, exact=True)
        np.testing.assert_array_equal(ids[:, 0], np.arange(0, 500, 7))
        with pytest.raises(errors.BadInput, match="C-contiguous"):
            db.ingest_volume("v", np.zeros((8, 64, 64), np.uint8)[:, ::2, :])


def test_two_threads_query_one_store_concurrently(stores):
    with vortexdb.open(stores["py"], read_only=True) as db:
        want = db.query_genes("TUM01").top["id"].tolist()
        results, errs = [], []

        def work():
            try:
                for _ in range(3):
                    results.append(db.query_genes("TUM01").top["id"].tolist())
            except Exception as e:  # pragma: no cover - reported below
                errs.append(e)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errs and results == [want] * 6


def test_ctrl_c_stops_an_ingest_cleanly_and_it_resumes(phantom, tmp_path):
    vol = np.ascontiguousarray(np.load(phantom["volume"])[:16])
    with vortexdb.create(tmp_path / "ref") as db:
        db.add_model("default")
        full = db.ingest_volume("s", vol, progress=False, batch=16)
    calls = []

    def ctrl_c(done, total, stored):
        calls.append(done)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does

    # Python's own Ctrl-C handler, whatever this process inherited: a job started in
    # the background by a non-interactive shell (a CI runner) starts with SIGINT
    # ignored, and then the signal never arrives.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_and_resume(vol, full, ctrl_c, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_and_resume(vol, full, ctrl_c, tmp_path):
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        with pytest.raises(errors.Interrupted) as e:
            db.ingest_volume("s", vol, progress=ctrl_c, batch=16)
        assert isinstance(e.value, KeyboardInterrupt) and 0 < e.value.done < e.value.total
        assert db.info()["samples"][0]["status"] != "complete"
        again = db.ingest_volume("s", vol, progress=False, batch=16)
        assert again["resumed_from"] > 0
        assert again["patches_total"] == full["patches_total"]
        assert db.info()["samples"][0]["status"] == "complete"
        # A different array under the same sample id is refused, not resumed.
        with pytest.raises(errors.InvalidArgument, match="sample"):
            db.ingest_volume("s", vol[::-1].copy(), progress=False)


def test_sections_and_images_from_arrays_equal_their_files(phantom, tmp_path):
    from PIL import Image

    planes = [np.asarray(Image.open(p).convert("RGB")) for p in phantom["planes"][:2]]
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        a = db.ingest_sections("arr", planes, spacing_um=64, um_per_px=4, progress=False)
        f = db.ingest_sections("file", phantom["planes"][:2], spacing_um=64, um_per_px=4, progress=False)
        assert a["patches_total"] == f["patches_total"] > 0
        i = db.ingest_image("img", planes[0], um_per_px=4, progress=False)
        j = db.ingest_image("imgf", phantom["planes"][0], um_per_px=4, progress=False)
        assert i["patches_total"] == j["patches_total"] > 0
        # Stain-normalised to another plane: an array and its file still agree.
        ref = phantom["planes"][1]
        n = db.ingest_sections("arrn", planes, spacing_um=64, um_per_px=4, stain_reference=ref, progress=False)
        m = db.ingest_sections(
            "filen", phantom["planes"][:2], spacing_um=64, um_per_px=4, stain_reference=ref, progress=False
        )
        assert n["patches_total"] == m["patches_total"] > 0


def test_progress_bar_and_callback(phantom, tmp_path):
    plane = phantom["planes"][0]
    seen = []
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        db.ingest_image("a", plane, um_per_px=4, progress=True)  # a tqdm bar (installed here)
        db.ingest_image("b", plane, um_per_px=4, batch=4, progress=lambda *p: seen.append(p))
    assert seen and 0 < seen[-1][0] <= seen[-1][1] and seen[-1][2] > 0
    assert len({total for _, total, _ in seen}) == 1
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_quantized_collections_rescore_on_the_stored_vectors(tmp_path, quantization):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, 64)).astype(np.float32) * 3
    base = centres[rng.integers(0, 20, 3000)] + rng.standard_normal((3000, 64)).astype(np.float32)
    with vortexdb.create(tmp_path / "db") as db:
        db.import_vectors("q", base, metric="l2", quantization=quantization)
        (col,) = db.info()["collections"]
        assert col["quantization"] == quantization
        assert col["packed_bytes"] == 3000 * (64 * 4 + 4)
        queries = base[:50] + 0.01
        ids, dist = db.search("q", queries, k=10, rescore=64)
        exact_ids, exact_dist = db.search("q", queries, k=10, exact=True)
        assert (ids[:, 0] == np.arange(50)).all()
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids, strict=True)])
        assert recall >= 0.9, recall
        # Rescored distances are the exact L2 distances to the stored vectors.
        want = np.linalg.norm(base[ids] - queries[:, None, :], axis=2)
        np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(errors.InvalidArgument, match="quantization"):
        with vortexdb.create(tmp_path / "db2") as db:
            db.import_vectors("q", base, quantization="int3")


def test_an_int8_model_collection_gives_the_same_heatmap(stores, phantom, tmp_path):
    """Heatmaps are computed on the stored f32 vectors whatever the graph holds."""
    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        db.ingest_volume("ph7", np.load(phantom["volume"]), quantization="int8", progress=False)
        db.ingest_spots("ph7", phantom["spots"])
        kinds = {c["name"]: c["quantization"] for c in db.info()["collections"]}
        assert kinds["vortex-tiny-phantom:3d"] == "int8", kinds
        got = db.query_genes("TUM01")
        with vortexdb.open(stores["py"], read_only=True) as ref:
            want = ref.query_genes("TUM01")
            np.testing.assert_allclose(got.heatmap["ph7"], want.heatmap["ph7"], rtol=0, atol=1e-6, equal_nan=True)
            assert list(got.top["id"][:10]) == list(want.top["id"][:10])


def test_an_array_written_to_during_an_ingest_does_not_change_what_is_stored(phantom, tmp_path):
    """The ingest releases the GIL, so Python code runs while it reads the array (here:
    the progress callback zeroes the array after the first batch). What is stored is the
    array as it was at the call: vortexdb copies it first."""
    vol = np.ascontiguousarray(np.load(phantom["volume"])[:16])
    with vortexdb.create(tmp_path / "ref") as db:
        db.add_model("default")
        ref = db.ingest_volume("s", vol.copy(), progress=False, batch=16)
        want = db.predict("s").X.copy()
    calls = []

    def overwrite(done, total, stored):
        calls.append(done)
        vol[:] = 0  # a write from Python while the ingest is running

    with vortexdb.create(tmp_path / "db") as db:
        db.add_model("default")
        got = db.ingest_volume("s", vol, progress=overwrite, batch=16)
        assert len(calls) > 1 and not vol.any()
        assert got["patches_total"] == ref["patches_total"] and got["threshold"] == ref["threshold"]
        np.testing.assert_array_equal(db.predict("s").X, want)
