"""Market-1501 metrics: hand-made rankings worked out by hand, and an independent
brute-force implementation (plain Python loops) on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from idstudio.core import evaluate as ev
from idstudio.core.errors import UserError


def _features_for_order(order_scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A query and gallery features whose cosine similarities are exactly the given scores."""
    q = np.array([[1.0, 0.0]], np.float32)
    g = np.array([[s, math.sqrt(max(0.0, 1 - s * s))] for s in order_scores], np.float32)
    return q, g


def test_hand_made_ranking():
    # Query: identity 7, camera 1. Gallery in ranked order (scores descending):
    #   0: id 3 cam 2 -> wrong
    #   1: id 7 cam 1 -> same id same cam: removed
    #   2: id 7 cam 2 -> right  (rank 2 among kept)
    #   3: id -1       -> junk: removed
    #   4: id 0 cam 3  -> distractor: wrong (rank 3)
    #   5: id 7 cam 3  -> right (rank 4)
    #   6: id 5 cam 2  -> wrong (rank 5)
    q, g = _features_for_order([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    g_ids = [3, 7, 7, -1, 0, 7, 5]
    g_cams = ["c2", "c1", "c2", "c1", "c3", "c3", "c2"]
    res = ev.evaluate_features(q, g, [7], ["c1"], g_ids, g_cams, keep_top=7)
    # AP = (1/2 + 2/4) / 2 = 0.5; INP = 2 / 4 = 0.5; first hit at rank 2.
    assert res.ap[0] == pytest.approx(0.5)
    assert res.mAP == pytest.approx(0.5)
    assert res.mINP == pytest.approx(0.5)
    assert res.first_hit[0] == 2
    s = res.summary()
    assert s["rank1"] == 0.0 and s["rank5"] == 1.0 and s["n_queries"] == 1 and s["n_skipped"] == 0
    assert res.ranked[0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert res.status[0].tolist() == [ev.WRONG, ev.IGNORED, ev.RIGHT, ev.IGNORED, ev.WRONG, ev.RIGHT, ev.WRONG]


def test_hand_made_two_queries_and_skip():
    # Query A (id 1, cam a): kept ranking R W R -> AP = (1 + 2/3)/2 = 5/6, INP = 2/3, rank1 hit.
    # Query B (id 2, cam a): its only match is in the same camera -> skipped.
    # Query C (id 4, cam b): kept ranking W W W R -> AP = 1/4, INP = 1/4.
    g_ids = np.array([1, 9, 1, 2, 4])
    g_cams = ["b", "b", "c", "a", "a"]
    sim = np.array([
        [0.9, 0.8, 0.7, 0.1, 0.0],
        [0.9, 0.8, 0.7, 0.6, 0.5],
        [0.9, 0.8, 0.7, 0.6, 0.5],
    ])
    res = ev.evaluate_similarity(sim, [1, 2, 4], ["a", "a", "b"], g_ids, g_cams)
    assert res.n_queries == 2 and res.n_skipped == 1
    assert res.ap[0] == pytest.approx(5 / 6)
    assert np.isnan(res.ap[1])
    # C: kept order is 1(w) 9(w) 1(w) 2(w) 4(r) -> rank 5, AP 1/5.
    assert res.ap[2] == pytest.approx(1 / 5)
    assert res.mAP == pytest.approx((5 / 6 + 1 / 5) / 2)
    assert res.mINP == pytest.approx((2 / 3 + 1 / 5) / 2)
    assert res.rank(1) == 0.5 and res.rank(5) == 1.0


def test_distractor_and_junk_queries_are_skipped():
    sim = np.array([[0.9, 0.5], [0.9, 0.5]])
    res = ev.evaluate_similarity(sim, [-1, 0], ["a", "a"], [-1, 0], ["b", "b"])
    assert res.n_queries == 0 and res.n_skipped == 2 and res.mAP == 0.0


def test_empty_split_is_a_user_error():
    with pytest.raises(UserError, match="no query"):
        ev.evaluate_features(np.zeros((0, 4)), np.ones((3, 4)), [], [], [1, 2, 3], ["a"] * 3)
    with pytest.raises(UserError, match="no gallery"):
        ev.evaluate_features(np.ones((2, 4)), np.zeros((0, 4)), [1, 2], ["a"] * 2, [], [])


def brute_force(qf, gf, q_ids, q_cams, g_ids, g_cams, max_rank=20):
    """The protocol in plain Python, written independently of the vectorised code."""
    aps, inps, cmc_hits, skipped = [], [], [0] * max_rank, 0
    for i in range(len(qf)):
        qn = qf[i] / math.sqrt(sum(float(v) * float(v) for v in qf[i]))
        sims = []
        for j in range(len(gf)):
            gn = gf[j] / math.sqrt(sum(float(v) * float(v) for v in gf[j]))
            sims.append((-float(sum(float(a) * float(b) for a, b in zip(qn, gn))), j))
        sims.sort()
        kept = []
        for _, j in sims:
            if g_ids[j] == -1 or (g_ids[j] == q_ids[i] and g_cams[j] == q_cams[i]):
                continue
            kept.append(g_ids[j] == q_ids[i])
        if q_ids[i] <= 0 or not any(kept):
            skipped += 1
            continue
        found, precisions, last = 0, [], 0
        for rank, good in enumerate(kept, start=1):
            if good:
                found += 1
                precisions.append(found / rank)
                last = rank
        first = kept.index(True) + 1
        aps.append(sum(precisions) / found)
        inps.append(found / last)
        for r in range(max_rank):
            if first <= r + 1:
                cmc_hits[r] += 1
    n = len(aps)
    return {
        "mAP": sum(aps) / n if n else 0.0,
        "mINP": sum(inps) / n if n else 0.0,
        "cmc": [h / n for h in cmc_hits] if n else [0.0] * max_rank,
        "n_queries": n,
        "n_skipped": skipped,
        "aps": aps,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_random_data(seed):
    rng = np.random.default_rng(seed)
    nq, ng, d = 25, 120, 8
    q_ids = rng.integers(-1, 12, nq).tolist()
    g_ids = rng.integers(-1, 12, ng).tolist()
    q_cams = [f"c{c}" for c in rng.integers(1, 4, nq)]
    g_cams = [f"c{c}" for c in rng.integers(1, 4, ng)]
    centres = rng.standard_normal((13, d))
    qf = (centres[np.array(q_ids) + 1] + rng.standard_normal((nq, d)) * 1.2).astype(np.float32)
    gf = (centres[np.array(g_ids) + 1] + rng.standard_normal((ng, d)) * 1.2).astype(np.float32)
    ref = brute_force(qf, gf, q_ids, q_cams, g_ids, g_cams)
    res = ev.evaluate_features(qf, gf, q_ids, q_cams, g_ids, g_cams)
    assert res.n_queries == ref["n_queries"] and res.n_skipped == ref["n_skipped"]
    assert ref["n_queries"] > 5 and 0 < ref["mAP"] < 1
    assert res.mAP == pytest.approx(ref["mAP"], abs=1e-6)
    assert res.mINP == pytest.approx(ref["mINP"], abs=1e-6)
    assert np.allclose(res.cmc, ref["cmc"])
    assert np.allclose(res.ap[~np.isnan(res.ap)], ref["aps"])


def test_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(5)
    qf, gf = rng.standard_normal((40, 6)), rng.standard_normal((70, 6))
    args = (rng.integers(1, 6, 40), rng.integers(0, 3, 40), rng.integers(-1, 6, 70), rng.integers(0, 3, 70))
    whole = ev.evaluate_features(qf, gf, *args)
    monkeypatch.setattr(ev, "_chunk_rows", lambda n, budget=0: 3)
    chunked = ev.evaluate_features(qf, gf, *args)
    assert whole.mAP == chunked.mAP and np.array_equal(whole.cmc, chunked.cmc)


def stable_sort_reference(sim, q_ids, q_cams, g_ids, g_cams, k):
    """Ranks from a stable sort of every whole row (what the metrics must equal exactly)."""
    q_ids, g_ids, q_cams, g_cams = map(np.asarray, (q_ids, g_ids, q_cams, g_cams))
    order = np.argsort(-sim, axis=1, kind="stable")
    first, aps = [], []
    for i, row in enumerate(order):
        ignored = ((g_ids[row] == q_ids[i]) & (g_cams[row] == q_cams[i])) | (g_ids[row] == -1)
        good = (g_ids[row] == q_ids[i])[~ignored]
        if q_ids[i] <= 0 or not good.any():
            first.append(0)
            aps.append(np.nan)
            continue
        pos = np.flatnonzero(good) + 1
        first.append(pos[0])
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
    return np.array(first), np.array(aps), order[:, :k]


@pytest.mark.parametrize("seed", [0, 1])
def test_ties_keep_gallery_order_as_a_stable_sort_of_whole_rows(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    nq, ng = 30, 400
    g_ids, q_ids = rng.integers(-1, 8, ng), rng.integers(-1, 8, nq)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    sim = rng.integers(0, 6, (nq, ng)).astype(np.float32) / 6  # few distinct values: ties everywhere
    first, aps, top = stable_sort_reference(sim, q_ids, q_cams, g_ids, g_cams, 15)
    for rows in (64, 7):
        monkeypatch.setattr(ev, "_chunk_rows", lambda n, budget=0, rows=rows: rows)
        res = ev.evaluate_similarity(sim, q_ids, q_cams, g_ids, g_cams, keep_top=15)
        assert np.array_equal(res.first_hit, first)
        assert np.allclose(res.ap, aps, equal_nan=True)
        assert np.array_equal(res.ranked, top)
    assert (first > 0).sum() > 5 and (first > 1).any()


def test_a_float16_gallery_read_in_blocks_gives_the_whole_row_result(monkeypatch, tmp_path):
    rng = np.random.default_rng(3)
    nq, ng, d = 20, 500, 8
    g_ids, q_ids = rng.integers(-1, 10, ng), rng.integers(0, 10, nq)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    qf = rng.standard_normal((nq, d)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "g.npy", mode="w+", dtype=np.float16, shape=(ng, d))
    mm[:] = rng.standard_normal((ng, d))
    sim = ev.normalize(qf) @ ev.normalize(np.asarray(mm, np.float32)).T
    first, aps, top = stable_sort_reference(sim, q_ids, q_cams, g_ids, g_cams, 10)
    for block in (ev.GALLERY_BLOCK, 64, 7):  # one block, and many (the large-gallery path)
        monkeypatch.setattr(ev, "GALLERY_BLOCK", block)
        res = ev.evaluate_features(qf, mm, q_ids, q_cams, g_ids, g_cams, keep_top=10)
        assert np.array_equal(res.first_hit, first)
        assert np.allclose(res.ap, aps, equal_nan=True)
        assert np.array_equal(res.ranked, top)
