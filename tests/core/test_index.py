"""faiss indexes: exact vs approximate choice, recall measured at build, save/load with the
checkpoint key, adding without a rebuild, and refusing an index of another checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from idstudio.core import index as vindex
from idstudio.core.errors import UserError


def _data(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, d))
    x = centres[rng.integers(0, 40, n)] + 0.4 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_auto_choice_and_override():
    assert vindex.choose_kind(10, "auto", exact_max=100) == "exact"
    assert vindex.choose_kind(1000, "auto", exact_max=100) == "ivf"
    assert vindex.choose_kind(1000, "exact", exact_max=100) == "exact"
    with pytest.raises(UserError, match="Unknown index kind"):
        vindex.choose_kind(10, "lsh")


def test_exact_index_matches_brute_force():
    x = _data(500)
    ids = np.arange(1000, 1500)
    idx = vindex.build_index(x, ids, key="k1", dataset="d")
    assert idx.kind == "exact"
    scores, found = idx.search(x[:5], 10)
    truth = np.argsort(-(x[:5] @ x.T), axis=1)[:, :10] + 1000
    assert np.array_equal(found, truth)
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_ivf_measures_recall_and_reaches_target(tmp_path):
    x = _data(4000)
    idx = vindex.build_index(x, np.arange(4000), key="k1", dataset="d", kind="ivf", recall_k=20, target_recall=0.95)
    assert idx.kind == "ivf" and idx.params["nprobe"] >= 1
    assert idx.params["recall"] >= 0.95
    # The recorded figure is honest: an independent measurement agrees.
    assert idx.measure_recall(x, k=20, n_sample=200, seed=3) >= 0.9


def test_save_load_add_and_key_mismatch(tmp_path):
    x = _data(2500)
    idx = vindex.build_index(x[:2000], np.arange(2000), key="ckpt-A", dataset="d", kind="ivf", recall_k=10)
    path = idx.save(tmp_path / "g.faiss")
    again = vindex.VectorIndex.load(path, expected_key="ckpt-A")
    assert again.kind == "ivf" and len(again) == 2000 and again.params == idx.params
    again.add(x[2000:], np.arange(2000, 2500))  # no rebuild: same cells
    assert len(again) == 2500
    _, found = again.search(x[2100:2110], 1)
    assert (found[:, 0] == np.arange(2100, 2110)).mean() >= 0.9
    with pytest.raises(UserError, match="built with checkpoint ckpt-A, not ckpt-B"):
        vindex.VectorIndex.load(path, expected_key="ckpt-B")
    with pytest.raises(UserError, match="dimensions"):
        again.search(np.ones((1, 7), np.float32), 3)


def test_incomplete_index_is_refused(tmp_path):
    (tmp_path / "x.faiss").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a complete idstudio index"):
        vindex.VectorIndex.load(tmp_path / "x.faiss")


def test_auto_keeps_exact_search_when_it_is_measured_fast_enough(monkeypatch):
    x = _data(3000)
    monkeypatch.setattr(vindex, "EXACT_BUDGET_S", 10.0)  # any measured time is under it
    idx = vindex.build_index(x, np.arange(3000), key="k", dataset="d", kind="auto", exact_max=100, recall_k=20)
    assert idx.kind == "exact" and idx.params["exact_s_per_query"] > 0 and "fallback" not in idx.params


def test_auto_keeps_ivf_only_when_measured_faster(monkeypatch):
    x = _data(4000)
    monkeypatch.setattr(vindex, "EXACT_BUDGET_S", 0.0)  # exact is never fast enough: IVF is tried
    monkeypatch.setattr(vindex, "MIN_SPEEDUP", 0.0)  # any IVF that reaches the recall wins
    idx = vindex.build_index(x, np.arange(4000), key="k", dataset="d", kind="auto", exact_max=100, recall_k=20)
    assert idx.kind == "ivf" and idx.params["ivf_s_per_query"] > 0 and idx.params["exact_s_per_query"] > 0
    monkeypatch.setattr(vindex, "MIN_SPEEDUP", float("inf"))  # no IVF can be fast enough
    idx = vindex.build_index(x, np.arange(4000), key="k", dataset="d", kind="auto", exact_max=100, recall_k=20)
    assert idx.kind == "exact" and "faster" in idx.params["fallback"]


def test_auto_falls_back_to_exact_when_ivf_cannot_reach_the_target(monkeypatch):
    monkeypatch.setattr(vindex, "EXACT_BUDGET_S", 0.0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 64)).astype(np.float32)  # isotropic: no structure to exploit
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = vindex.build_index(x, np.arange(3000), key="k", dataset="d", kind="auto", exact_max=100, recall_k=50)
    assert idx.kind == "exact" and "fallback" in idx.params
    forced = vindex.build_index(x, np.arange(3000), key="k", dataset="d", kind="ivf", recall_k=50)
    assert forced.kind == "ivf"  # asked for explicitly: kept, with its honest recall
