"""Feature centralization (Pose2ID's NFC): which neighbours are averaged, and what it fixes."""

from __future__ import annotations

import numpy as np
import pytest

from idstudio.core import centralize as fc
from idstudio.core import evaluate as ev
from idstudio.core.errors import UserError
from idstudio.core.index import build_index

# One query (identity 1, camera 1) and six gallery items, in 3-d. Gallery 0 is the query's
# own identity in its own camera (ignored by the protocol, but a neighbour all the same);
# gallery 2 is the match that counts (identity 1, camera 2); gallery 3 is an impostor
# (identity 2) that the query sees as its second nearest, while the impostor's own two
# nearest are its identity's other images. So the query's only *mutual* 2-neighbour is
# gallery 0; a one-sided 2-NN average would also pull in the impostor.
CASE = np.array([[0.68, 0.49, -0.54],  # query
                 [0.83, -0.41, 0.37], [0.95, -0.04, -0.31], [0.92, -0.32, -0.21],
                 [0.33, 0.85, 0.41], [0.09, 0.96, -0.27], [-0.25, 0.97, -0.01]], np.float32)
Q_ID, Q_CAM = [1], [1]
G_ID, G_CAM = [1, 1, 1, 2, 2, 2], [2, 1, 2, 2, 2, 2]


def first_hit(qf, gf) -> int:
    return int(ev.evaluate_features(qf, gf, Q_ID, Q_CAM, G_ID, G_CAM).first_hit[0])


def one_sided(feats: np.ndarray, k: int) -> np.ndarray:
    """The wrong rule, for contrast: every one of the k nearest, mutual or not."""
    f = fc._unit(feats)
    return fc._unit(f + f[fc.neighbours(f, k)].sum(axis=1))


def test_only_mutual_neighbours_are_kept():
    f = fc._unit(CASE)
    assert set(fc.neighbours(f, 2)[0]) == {2, 5}  # the query's 2-NN: its own-camera twin and the impostor
    mutual = fc.mutual_neighbours(f, 2).toarray()
    assert np.flatnonzero(mutual[0]).tolist() == [2]
    assert (mutual == mutual.T).all() and not mutual.diagonal().any()


def test_centralization_fixes_a_rank_that_one_sided_neighbours_make_worse():
    qf, gf = CASE[:1], CASE[1:]
    assert first_hit(qf, gf) == 2  # the impostor comes first
    cq, cg = fc.centralize_split(qf, gf, 2)
    assert first_hit(cq, cg) == 1
    wrong = one_sided(CASE, 2)
    assert first_hit(wrong[:1], wrong[1:]) > 2
    # The weighting: self plus the mean of its mutual neighbours (here one), then normalised.
    f = fc._unit(CASE)
    np.testing.assert_allclose(cq[0], fc._unit((f[0] + f[2])[None])[0], atol=1e-6)


def test_a_tracklet_replaces_the_neighbours():
    rng = np.random.default_rng(0)
    f = fc._unit(rng.standard_normal((8, 16)))
    groups = np.array([0, 0, 0, -1, -1, 1, 1, -1])
    out = fc.centralize(f, 2, groups)
    # self plus the mean of its tracklet mates
    np.testing.assert_allclose(out[0], fc._unit((f[0] + (f[1] + f[2]) / 2)[None])[0], atol=1e-6)
    np.testing.assert_allclose(out[2], fc._unit((f[2] + (f[0] + f[1]) / 2)[None])[0], atol=1e-6)
    np.testing.assert_allclose(out[5], fc._unit((f[5] + f[6])[None])[0], atol=1e-6)
    mutual = fc.mutual_neighbours(f, 2).toarray()
    assert mutual[[3, 4, 7]].sum() > 0  # the others have mutual neighbours, tracklet members among them
    for row in (3, 4, 7):
        mean = mutual[row] @ f / max(mutual[row].sum(), 1)
        np.testing.assert_allclose(out[row], fc._unit((f[row] + mean)[None])[0], atol=1e-6)
    # with k = 0 only the tracklets move
    still = fc.centralize(f, 0, groups)
    np.testing.assert_allclose(still[[3, 4, 7]], f[[3, 4, 7]], atol=1e-6)


def test_k0_and_lonely_rows_keep_their_feature_and_duplicates_are_not_their_own_neighbour():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((6, 8)).astype(np.float32) * 3
    np.testing.assert_allclose(fc.centralize(f, 0), fc._unit(f), atol=1e-6)
    dup = np.concatenate([f, f[:1]])  # rows 0 and 6 are identical
    nn = fc.neighbours(fc._unit(dup), 1)
    assert nn[0, 0] == 6 and nn[6, 0] == 0
    assert all(nn[i, 0] != i for i in range(len(dup)))


def test_clustered_retrieval_improves():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((30, 32))
    ids = np.repeat(np.arange(1, 31), 6)
    feats = centres[ids - 1] + 1.5 * rng.standard_normal((len(ids), 32))
    cams = np.tile([1, 2, 3, 4, 5, 6], 30)
    q = cams == 1
    args = (ids[q], cams[q], ids[~q], cams[~q])
    plain = ev.evaluate_features(feats[q], feats[~q], *args).mAP
    cq, cg = fc.centralize_split(feats[q], feats[~q], 5)
    centred = ev.evaluate_features(cq, cg, *args).mAP
    # Seeded data: plain mAP 0.544, centralized 0.581.
    assert centred > plain + 0.04, (plain, centred)


def test_large_sets_take_the_ivf_index_and_find_the_same_neighbours(monkeypatch):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((16, 32))
    feats = fc._unit(centres[np.repeat(np.arange(16), 150)] + 0.3 * rng.standard_normal((2400, 32)))
    from idstudio.core import index as vindex

    # At this size exact search is fast, and the automatic choice rightly keeps it; make it look
    # slow so the IVF path (the one a million-row gallery takes) is what runs.
    monkeypatch.setattr(vindex, "EXACT_BUDGET_S", 0.0)
    monkeypatch.setattr(vindex, "MIN_SPEEDUP", 0.0)
    index = build_index(feats, np.arange(len(feats)), "k", "d", kind="auto", exact_max=500)
    assert index.kind == "ivf"  # such data keeps the IVF index (it does not fall back to exact search)
    exact = fc.neighbours(feats, 5)
    searched = []
    real_exact = vindex.exact_search
    monkeypatch.setattr(vindex, "exact_search", lambda db, q, k: searched.append(len(q)) or real_exact(db, q, k))
    approx = fc.neighbours(feats, 5, exact_max=500)  # 2,400 rows > 500: through that IVF index
    assert searched and max(searched) < len(feats)  # exact search only for the index's recall sample
    assert approx.shape == exact.shape and (approx != np.arange(len(feats))[:, None]).all()
    same = np.mean([len(np.intersect1d(a, e)) / 5 for a, e in zip(approx, exact)])
    assert same > 0.9, same


@pytest.mark.parametrize("k, words", [(-1, "k >= 0"), (7, "more neighbours than the gallery's 6")])
def test_bad_k_is_one_sentence(k, words):
    with pytest.raises(UserError, match=words):
        fc.centralize_split(CASE[:1], CASE[1:], k)
