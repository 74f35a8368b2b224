"""Mining on hand-built tracks: exact pairs, gate, relative reliability, bounded components."""

from __future__ import annotations

import numpy as np
import pytest

from idstudio.core.mining import MiningParams, components, ground_truth_stats, mine


def _world(n_frames=20, people=4, videos=2, noise=0.05, seed=0, dim=16):
    rng = np.random.default_rng(seed)
    rows = []
    protos = rng.normal(size=(videos, people, dim))
    for v in range(videos):
        for t in range(n_frames):
            for p in range(people):
                e = protos[v, p] + noise * rng.normal(size=dim)
                rows.append((v, t, p + 1, 100 * p + 2 * t, 50.0, 40.0, 100.0, e))
    rng.shuffle(rows)
    video = np.array([r[0] for r in rows]); frame = np.array([r[1] for r in rows])
    ident = np.array([r[2] + 10 * r[0] for r in rows])
    boxes = np.array([r[3:7] for r in rows], dtype=np.float32)
    emb = np.stack([r[7] for r in rows]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + len(rows))
    return ids, video, frame, boxes, emb, ident


def test_exact_pairs_precision_recall():
    ids, video, frame, boxes, emb, ident = _world()
    res = mine(ids, video, frame, boxes, emb, MiningParams(gaps=[1, 3]), identity=ident)
    # 2 videos * 4 people * ((20-1) + (20-3)) pairs
    assert len(res) == 2 * 4 * (19 + 17)
    assert res.stats["precision"] == 1.0 and res.stats["recall"] == 1.0
    pos = {i: k for k, i in enumerate(ids)}
    fa = np.array([frame[pos[i]] for i in res.a]); fb = np.array([frame[pos[i]] for i in res.b])
    assert np.all(fb - fa == res.gap)
    assert np.all((res.reliability >= 0) & (res.reliability <= 1))
    # components stay within one person and one window
    for c in np.unique(res.component[res.component >= 0]):
        members = np.concatenate([res.a[res.component == c], res.b[res.component == c]])
        assert len({ident[pos[i]] for i in members}) == 1


def test_reliability_is_relative_not_raw_cosine():
    """From a random start every cosine is ≈0.995; the margin still ranks a clear pair over
    an ambiguous one."""
    base = np.array([1.0, 0.0, 0.0])
    emb = np.array([base + [0, 0.1, 0], base + [0, 0.1, 0.001], base + [0, 0.0, 0.1],  # frame 0
                    base + [0, 0.1, 0], base + [0, 0.1, 0.0015], base + [0, 0.0, 0.1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    frame = np.array([0, 0, 0, 1, 1, 1]); video = np.zeros(6, int)
    boxes = np.zeros((6, 4), np.float32) + [0, 0, 10, 20]
    res = mine(np.arange(6), video, frame, boxes, emb, MiningParams(gaps=[1]))
    assert (emb @ emb.T).min() > 0.98
    rel = dict(zip(res.a.tolist(), res.reliability.tolist()))
    assert rel[2] > rel[0] and rel[2] > rel[1]  # the distinct person is the most reliable


def test_spatial_gate_and_min_similarity():
    ids, video, frame, boxes, emb, ident = _world(noise=0.0)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=emb.shape).astype(np.float32)  # embeddings carry no identity
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    blind = mine(ids, video, frame, boxes, noise, MiningParams(gaps=[1]), identity=ident)
    gated = mine(ids, video, frame, boxes, noise, MiningParams(gaps=[1], spatial_gate=True), identity=ident)
    assert blind.stats["precision"] < 0.6
    assert gated.stats["precision"] == 1.0
    none = mine(ids, video, frame, boxes, emb, MiningParams(gaps=[1], min_similarity=1.1))
    assert len(none) == 0 and none.stats["n_pairs"] == 0


def test_components_bounded_by_window_and_cut():
    ids, video, frame, boxes, emb, ident = _world(n_frames=40, videos=1, people=2)
    res = mine(ids, video, frame, boxes, emb, MiningParams(gaps=[1], component_window=10, component_min_reliability=0.0))
    # each person is cut into 4 windows of 10 frames
    assert res.stats["n_components"] == 8
    assert res.stats["largest_component_share"] == pytest.approx(11 / 80, abs=1e-6)
    assert list(components(4, np.array([0, 2]), np.array([1, 3]))) == [0, 0, 1, 1]


def test_recall_counts_missed_pairs():
    video = np.zeros(4, int); frame = np.array([0, 1, 0, 1]); ident = np.array([1, 1, 2, 2])
    stats = ground_truth_stats(np.array([0]), np.array([1]), np.array([1]), video, frame, ident, [1])
    assert stats["precision"] == 1.0 and stats["recall"] == 0.5


def test_ground_truth_figures_match_a_brute_force_count():
    from idstudio.core.mining import ground_truth_stats

    rng = np.random.default_rng(3)
    n = 400
    video, frame, identity = rng.integers(0, 3, n), rng.integers(0, 40, n), rng.integers(-1, 8, n)
    ra, rb = rng.integers(0, n, 900).astype(np.int32), rng.integers(0, n, 900).astype(np.int32)
    gap = rng.choice([1, 2, 4], 900).astype(np.int32)
    out = ground_truth_stats(ra, rb, gap, video, frame, identity, [1, 2, 4])
    known = {(int(v), int(i), int(f)) for v, i, f in zip(video, identity, frame) if i > 0}
    n_true = sum((v, i, f + g) in known for v, i, f in known for g in (1, 2, 4))
    labelled = [(a, b, g) for a, b, g in zip(ra, rb, gap) if identity[a] > 0 and identity[b] > 0]
    correct = [(a, g) for a, b, g in labelled if identity[a] == identity[b]]
    hits = {(int(video[a]), int(identity[a]), int(frame[a]), int(g)) for a, g in correct}
    assert out["n_true_pairs"] == n_true and out["n_labelled_pairs"] == len(labelled)
    assert out["precision"] == pytest.approx(len(correct) / len(labelled))
    assert out["recall"] == pytest.approx(len(hits) / n_true)
